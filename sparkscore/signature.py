"""Model signatures: MLflow's JSON specs parsed into frozen dataclasses, and inference params.

Names and JSON shapes follow mlflow.types (DataType, ColSpec, TensorSpec, ParamSpec) so that a
signature written by mlflow reads back unchanged. The scalar types (DataType) and what each is
in numpy, Arrow and Spark are in sparkscore.dtypes. Input data is held to a signature in
sparkscore.enforcement, one column's values converted in sparkscore.values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sparkscore.dtypes import DataType
from sparkscore.errors import ParamError

__all__ = [
    "AnyType",
    "ArrayType",
    "ColSpec",
    "ColumnType",
    "DataType",
    "MapType",
    "ObjectType",
    "ParamSpec",
    "Schema",
    "Signature",
    "Spec",
    "TensorSpec",
    "enforce_params",
    "type_name",
]


@dataclass(frozen=True)
class ArrayType:
    """`{"type": "array", "items": ...}`: a list per row."""

    items: ColumnType

    def to_dict(self) -> dict[str, Any]:
        return {"type": "array", "items": _type_to_dict(self.items)}


@dataclass(frozen=True)
class ObjectType:
    """`{"type": "object", "properties": ...}`: a mapping per row, fields by name."""

    properties: tuple[tuple[str, ColumnType, bool], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                name: {**_type_to_dict(t), "required": req} for name, t, req in self.properties
            },
        }


@dataclass(frozen=True)
class MapType:
    """`{"type": "map", "values": ...}`: string keys to values of one type."""

    values: ColumnType

    def to_dict(self) -> dict[str, Any]:
        return {"type": "map", "values": _type_to_dict(self.values)}


@dataclass(frozen=True)
class AnyType:
    """`{"type": "any"}`: no constraint."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": "any"}


ColumnType = DataType | ArrayType | ObjectType | MapType | AnyType


@dataclass(frozen=True)
class ColSpec:
    type: ColumnType
    name: str | None = None
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        d = _type_to_dict(self.type)
        if self.name is not None:
            d["name"] = self.name
        d["required"] = self.required
        return d


@dataclass(frozen=True)
class TensorSpec:
    dtype: np.dtype
    shape: tuple[int, ...]
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": "tensor",
            "tensor-spec": {"dtype": self.dtype.name, "shape": list(self.shape)},
        }
        if self.name is not None:
            d["name"] = self.name
        return d


@dataclass(frozen=True)
class ParamSpec:
    """One inference parameter; mlflow writes a scalar or an object type, and a value for any
    other type fails when it is passed."""

    name: str
    type: ColumnType
    default: Any = None
    shape: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "default": self.default,
            "shape": list(self.shape) if self.shape is not None else None,
            **_type_to_dict(self.type),
        }


Spec = ColSpec | TensorSpec


@dataclass(frozen=True)
class Schema:
    """An ordered list of column or tensor specs (never a mix, as in mlflow)."""

    specs: tuple[Spec, ...]

    @property
    def is_tensor(self) -> bool:
        return bool(self.specs) and isinstance(self.specs[0], TensorSpec)

    @property
    def has_names(self) -> bool:
        return bool(self.specs) and all(s.name is not None for s in self.specs)

    def names(self) -> list[str]:
        return [s.name if s.name is not None else str(i) for i, s in enumerate(self.specs)]

    def required_names(self) -> list[str]:
        return [
            s.name
            for s in self.specs
            if s.name is not None and (isinstance(s, TensorSpec) or s.required)
        ]

    def to_list(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.specs]

    @classmethod
    def from_list(cls, items: Sequence[Mapping[str, Any]]) -> Schema:
        if not isinstance(items, list):
            raise TypeError(f"a schema is a JSON list of specs, got {type(items).__name__}")
        specs: list[Spec] = []
        for item in items:
            if item.get("type") == "tensor":
                ts = item["tensor-spec"]
                specs.append(
                    TensorSpec(
                        dtype=np.dtype(ts["dtype"]),
                        shape=tuple(int(d) for d in ts["shape"]),
                        name=item.get("name"),
                    )
                )
            else:
                specs.append(
                    ColSpec(
                        type=_type_from_dict(item),
                        name=item.get("name"),
                        required=bool(item.get("required", True)),
                    )
                )
        kinds = {isinstance(s, TensorSpec) for s in specs}
        if len(kinds) > 1:
            raise ValueError("a schema cannot mix tensor and column specs")
        return cls(tuple(specs))


@dataclass(frozen=True)
class Signature:
    inputs: Schema | None = None
    outputs: Schema | None = None
    params: tuple[ParamSpec, ...] | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Signature:
        """From the parsed JSON of MLmodel's `signature` (inputs / outputs / params)."""
        params = None
        if d.get("params"):
            params = tuple(
                ParamSpec(
                    name=p["name"],
                    # mlflow writes "type" (older versions "dtype"); a dict param is an object
                    type=_type_from_dict({**p, "type": p.get("type") or p["dtype"]}),
                    default=p.get("default"),
                    shape=tuple(p["shape"]) if p.get("shape") is not None else None,
                )
                for p in d["params"]
            )
        return cls(
            inputs=Schema.from_list(d["inputs"]) if d.get("inputs") else None,
            outputs=Schema.from_list(d["outputs"]) if d.get("outputs") else None,
            params=params,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs.to_list() if self.inputs else None,
            "outputs": self.outputs.to_list() if self.outputs else None,
            "params": [p.to_dict() for p in self.params] if self.params else None,
        }


def _type_from_dict(d: Mapping[str, Any]) -> ColumnType:
    t = d["type"]
    if t == "array":
        return ArrayType(_type_from_dict(d["items"]))
    if t == "object":
        return ObjectType(
            tuple(
                (name, _type_from_dict(p), bool(p.get("required", True)))
                for name, p in d["properties"].items()
            )
        )
    if t == "map":
        return MapType(_type_from_dict(d["values"]))
    if t == "any":
        return AnyType()
    return DataType(t)


def type_name(t: ColumnType) -> str:
    """A column type as the signature names it: `double`, `array`, `object`, `map`."""
    return t.value if isinstance(t, DataType) else _type_to_dict(t)["type"]


def _type_to_dict(t: ColumnType) -> dict[str, Any]:
    return {"type": t.value} if isinstance(t, DataType) else t.to_dict()


# ---------------------------------------------------------------------------------------------
# Params

_PARAM_WIDENING = {
    DataType.long: (DataType.integer,),
    # a Python float is mlflow's own value for a float param (its defaults are written so)
    DataType.float: (DataType.integer, DataType.long, DataType.double),
    DataType.double: (DataType.integer, DataType.long, DataType.float),
}


def enforce_params(
    params: Mapping[str, Any] | None, specs: Sequence[ParamSpec] | None
) -> dict[str, Any] | None:
    """Validate inference params against the model's ParamSchema and fill in defaults."""
    if params is not None and not isinstance(params, Mapping):
        raise ParamError(
            name="params",
            reason=f"params must be a dict of parameter names to values, got "
            f"{type(params).__name__}.",
        )
    params = dict(params or {})
    if not specs:
        if params:
            name = sorted(params)[0]
            raise ParamError(
                name=name,
                reason="the model declares no inference parameters, so none can be "
                "passed; remove params.",
            )
        return None
    by_name = {p.name: p for p in specs}
    unknown = sorted(set(params) - set(by_name))
    if unknown:
        raise ParamError(
            name=unknown[0],
            reason=f"is not a parameter of this model; its parameters are "
            f"{', '.join(sorted(by_name))}.",
        )
    result = {}
    for spec in specs:
        value = params.get(spec.name)
        if value is None:  # mlflow validates defaults too: a datetime default is read as one
            value = spec.default
        result[spec.name] = None if value is None else _param_value(spec, value)
    return result


def _param_value(spec: ParamSpec, value: Any) -> Any:
    if spec.shape is not None:
        if not isinstance(value, (list, tuple, np.ndarray)):
            raise ParamError(
                name=spec.name, reason=f"must be a list of {type_name(spec.type)}, got {value!r}."
            )
        return [_param_scalar(spec, v) for v in value]
    return _param_scalar(spec, value)


def _param_scalar(spec: ParamSpec, value: Any) -> Any:
    t = spec.type
    if isinstance(t, ObjectType):
        if not isinstance(value, Mapping):
            raise ParamError(
                name=spec.name,
                reason=f"must be an object (a dict with "
                f"{', '.join(n for n, _, _ in t.properties)}), got {value!r}.",
            )
        missing = [n for n, _, required in t.properties if required and n not in value]
        if missing:
            raise ParamError(
                name=spec.name,
                reason=f"is missing the required property '{missing[0]}', got {value!r}.",
            )
        return value  # as mlflow: checked, passed on unchanged
    kind = _python_kind(value)
    if isinstance(t, DataType) and (kind is t or kind in _PARAM_WIDENING.get(t, ())):
        return {
            DataType.long: int,
            DataType.integer: int,
            DataType.float: float,
            DataType.double: float,
            DataType.boolean: bool,
            DataType.string: str,
            DataType.binary: bytes,
        }.get(t, lambda v: v)(value)
    if t is DataType.datetime and isinstance(value, (str, dt.date, np.datetime64)):
        try:
            return pd.Timestamp(value).to_pydatetime()
        except ValueError:
            pass
    raise ParamError(
        name=spec.name,
        reason=f"must be of type {type_name(t)}, got {value!r} "
        f"({type(value).__name__}), which cannot be converted safely.",
    )


def _python_kind(value: Any) -> DataType | None:
    if isinstance(value, (bool, np.bool_)):
        return DataType.boolean
    if isinstance(value, (int, np.integer)):
        return DataType.integer if -(2**31) <= int(value) < 2**31 else DataType.long
    if isinstance(value, np.float32):
        return DataType.float
    if isinstance(value, (float, np.floating)):
        return DataType.double
    if isinstance(value, str):
        return DataType.string
    if isinstance(value, bytes):
        return DataType.binary
    if isinstance(value, dt.datetime):
        return DataType.datetime
    return None
