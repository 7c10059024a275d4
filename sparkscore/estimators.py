"""An estimator file in one of mlflow's scikit-learn serialization formats, read without mlflow.

mlflow writes scikit-learn estimators, and lightgbm's scikit-learn API models, as skops (its
default since mlflow 3), pickle or cloudpickle: one reader serves both flavors.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from typing import Any

from sparkscore.errors import ModelFormatError, UntrustedTypeError

__all__ = ["FORMATS", "deserialize"]

FORMATS = ("skops", "pickle", "cloudpickle")


def deserialize(
    file: str, fmt: str, *, path: str, field: str, trusted: Sequence[str] | None
) -> Any:
    """The estimator in `file`; skops loads only the `trusted` types the model declares.

    `path` is the model directory and `field` the MLmodel field that gave `fmt`, for errors.
    """
    if fmt == "skops":
        import skops.io
        from skops.io.exceptions import UntrustedTypesFoundException

        allowed = list(trusted or [])
        try:
            return skops.io.load(file, trusted=allowed or None)
        except UntrustedTypesFoundException:
            untrusted = [t for t in skops.io.get_untrusted_types(file=file) if t not in allowed]
            raise UntrustedTypeError(path=path, types=untrusted) from None
    if fmt == "cloudpickle":
        import cloudpickle

        with open(file, "rb") as f:
            return cloudpickle.load(f)
    if fmt == "pickle":
        with open(file, "rb") as f:
            return pickle.load(f)
    raise ModelFormatError(
        path=os.path.join(path, "MLmodel"),
        field=field,
        reason=f"is {fmt!r}; sparkscore reads pickle, cloudpickle and skops.",
    )
