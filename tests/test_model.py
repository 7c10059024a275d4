"""MLmodel parsing: what the real mlflow writes reads back whole; a broken model fails clearly."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sparkscore.model
from sparkscore.errors import ModelFormatError
from sparkscore.model import (
    ModelSpec,
    PyFuncFlavor,
    SklearnFlavor,
    read_spec,
)
from sparkscore.modelfiles import ModelFile, directory_sha256, model_files
from sparkscore.signature import ColSpec, DataType, Schema, Signature, TensorSpec

HAND_WRITTEN = """\
artifact_path: pipeline
flavors:
  python_function:
    env: conda.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    python_version: 3.8.5
    model_config:
      threshold: 0.7
      labels: [neg, pos]
    extra_key: kept
  sklearn:
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.1.2
model_uuid: 04bd660a1b8b4b1e84b9198c46cfd117
run_id: 22874b7e-b069-43f0-b90c-1c57793c7854
signature:
  inputs: '[{"name": "age", "type": "long"}, {"name": "thal", "type": "string"}]'
  outputs: '[{"type": "long"}]'
utc_time_created: '2022-10-13 00:55:57.543663'
metadata:
  owner: team-a
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LogisticRegression saved by the real mlflow, as a user would save it."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    x = pd.DataFrame({"a": [0.1, 0.5, -1.0, 2.0], "b": [1, 2, 3, 4]})
    y = np.array([0, 1, 0, 1])
    path = tmp_path_factory.mktemp("saved") / "model"
    with pytest.warns(UserWarning):  # mlflow's hint about integer columns
        signature = infer_signature(x, y)
    mlflow.sklearn.save_model(LogisticRegression().fit(x, y), str(path), signature=signature)
    return path


def write_model(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "MLmodel").write_text(text, encoding="utf-8")
    return root


def minimal(extra: str = "", pyfunc: str = "") -> str:
    return f"flavors:\n  python_function:\n    loader_module: my.loader\n{pyfunc}{extra}"


def format_error(path: Path) -> ModelFormatError:
    with pytest.raises(ModelFormatError) as info:
        read_spec(path)
    return info.value


# ---------------------------------------------------------------------------------------------
# What the real mlflow writes


def test_read_spec_reads_the_pyfunc_flavor_mlflow_wrote(saved: Path) -> None:
    import platform

    spec = read_spec(saved)

    assert spec.pyfunc == PyFuncFlavor(
        loader_module="mlflow.sklearn",
        model_path="model.skops",
        env={"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
        predict_fn="predict",
        python_version=platform.python_version(),
    )


def test_read_spec_reads_the_sklearn_flavor_mlflow_wrote(saved: Path) -> None:
    import sklearn

    spec = read_spec(saved)

    assert spec.sklearn == SklearnFlavor(
        pickled_model="model.skops",
        serialization_format="skops",
        sklearn_version=sklearn.__version__,
    )
    assert spec.flavor == "sklearn"
    assert sorted(spec.flavors) == ["python_function", "sklearn"]


def test_read_spec_reads_metadata_and_signature_mlflow_wrote(saved: Path) -> None:
    import mlflow
    import yaml

    doc = yaml.safe_load((saved / "MLmodel").read_text())
    spec = read_spec(saved)

    assert spec.path == str(saved)
    assert spec.mlflow_version == mlflow.__version__
    assert spec.model_uuid == doc["model_uuid"] and len(spec.model_uuid) == 32
    assert spec.utc_time_created == doc["utc_time_created"]
    assert spec.run_id is None
    assert spec.signature == Signature(
        inputs=Schema((ColSpec(DataType.double, "a"), ColSpec(DataType.long, "b"))),
        outputs=Schema((TensorSpec(np.dtype("int64"), (-1,)),)),
    )


def test_read_spec_env_files_lists_dependency_files_mlflow_wrote(saved: Path) -> None:
    spec = read_spec(saved)

    assert spec.env_files() == {
        name: str(saved / name) for name in ("requirements.txt", "conda.yaml", "python_env.yaml")
    }


def test_model_spec_record_names_the_model(saved: Path) -> None:
    import mlflow

    spec = read_spec(saved)
    record = spec.record()

    assert list(record) == [
        "path",
        "flavor",
        "loader_module",
        "signature",
        "mlflow_version",
        "model_uuid",
        "run_id",
        "utc_time_created",
        "python_version",
    ]
    assert record["path"] == str(saved)
    assert record["flavor"] == "sklearn"
    assert record["loader_module"] == "mlflow.sklearn"
    assert record["mlflow_version"] == mlflow.__version__
    assert record["signature"] == {
        "inputs": [
            {"type": "double", "name": "a", "required": True},
            {"type": "long", "name": "b", "required": True},
        ],
        "outputs": [{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}],
        "params": None,
    }


# ---------------------------------------------------------------------------------------------
# Hand-written MLmodel files


def test_read_spec_reads_env_as_a_plain_string_and_model_config(tmp_path: Path) -> None:
    spec = read_spec(write_model(tmp_path / "m", HAND_WRITTEN))

    assert spec == ModelSpec(
        path=str(tmp_path / "m"),
        pyfunc=PyFuncFlavor(
            loader_module="mlflow.sklearn",
            model_path="model.pkl",
            env="conda.yaml",
            python_version="3.8.5",
            model_config={"threshold": 0.7, "labels": ["neg", "pos"]},
            extra={"extra_key": "kept"},
        ),
        flavors=spec.flavors,
        signature=Signature(
            inputs=Schema((ColSpec(DataType.long, "age"), ColSpec(DataType.string, "thal"))),
            outputs=Schema((ColSpec(DataType.long),)),
        ),
        sklearn=SklearnFlavor(
            pickled_model="model.pkl", serialization_format="cloudpickle", sklearn_version="1.1.2"
        ),
        model_uuid="04bd660a1b8b4b1e84b9198c46cfd117",
        run_id="22874b7e-b069-43f0-b90c-1c57793c7854",
        utc_time_created="2022-10-13 00:55:57.543663",
        artifact_path="pipeline",
        metadata={"owner": "team-a"},
    )
    assert spec.env_files() == {}


def test_read_spec_without_signature_or_optional_fields(tmp_path: Path) -> None:
    spec = read_spec(write_model(tmp_path / "m", minimal()))

    assert spec.signature is None
    assert spec.pyfunc == PyFuncFlavor(loader_module="my.loader")
    assert spec.flavor == "python_function"
    assert spec.sklearn is None


def test_read_spec_flavor_names_the_first_non_pyfunc_flavor(tmp_path: Path) -> None:
    spec = read_spec(write_model(tmp_path / "m", minimal("  keras: {}\n")))

    assert spec.flavor == "keras"


def test_read_spec_accepts_a_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_model(tmp_path / "m", minimal())
    monkeypatch.chdir(tmp_path)

    assert read_spec("m").path == str(tmp_path / "m")


def test_read_spec_accepts_a_symlink_that_stays_inside(tmp_path: Path) -> None:
    root = write_model(tmp_path / "m", minimal(pyfunc="    data: link\n"))
    (root / "real").mkdir()
    os.symlink(root / "real", root / "link")

    assert read_spec(root).pyfunc.data == "link"


# ---------------------------------------------------------------------------------------------
# Errors, each its own


def test_read_spec_path_that_does_not_exist(tmp_path: Path) -> None:
    error = format_error(tmp_path / "nope")

    assert str(error) == (
        f"{tmp_path / 'nope'}: does not exist; point --model at an MLflow model directory "
        "(the folder that holds the MLmodel file)."
    )
    assert (error.path, error.field) == (str(tmp_path / "nope"), None)


def test_read_spec_file_instead_of_a_directory(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text(minimal())

    error = format_error(tmp_path / "MLmodel")

    assert error.reason.startswith("is not a directory;")


def test_read_spec_directory_without_mlmodel(tmp_path: Path) -> None:
    error = format_error(tmp_path)

    assert str(error) == (
        f"{tmp_path}: has no MLmodel file, so it is not an MLflow model directory; "
        "point --model at the folder that holds MLmodel."
    )


def test_read_spec_mlmodel_that_is_not_yaml(tmp_path: Path) -> None:
    root = write_model(tmp_path / "m", "flavors: [a\n")

    error = format_error(root)

    mlmodel = root / "MLmodel"
    assert str(error) == (
        f'{mlmodel}: is not valid YAML (while parsing a flow sequence in "{mlmodel}", '
        f"line 1, column 10 expected ',' or ']', but got '<stream end>' in \"{mlmodel}\", "
        "line 2, column 1)."
    )
    assert (error.path, error.field) == (str(mlmodel), None)


def test_read_spec_mlmodel_that_is_not_utf8(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / "MLmodel").write_bytes(b"\xff\xfe\x00flavors")

    assert format_error(root).reason.startswith("is not valid YAML (")


@pytest.mark.parametrize("text", ["- a\n- b\n", "", "just text\n"], ids=["list", "empty", "scalar"])
def test_read_spec_mlmodel_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    root = write_model(tmp_path / "m", text)

    assert str(format_error(root)) == f"{root / 'MLmodel'}: must be a YAML mapping."


@pytest.mark.parametrize("text", ["model_uuid: x\n", "flavors: {}\n", "flavors: [a]\n"])
def test_read_spec_mlmodel_without_flavors(tmp_path: Path, text: str) -> None:
    root = write_model(tmp_path / "m", text)

    error = format_error(root)

    assert str(error) == (
        f"{root / 'MLmodel'}, field 'flavors': is missing or empty; an MLflow model lists "
        "its flavors there."
    )
    assert error.field == "flavors"


def test_read_spec_without_python_function_names_the_flavors_it_has(tmp_path: Path) -> None:
    text = "flavors:\n  sklearn:\n    pickled_model: m.pkl\n  keras: {}\n"
    root = write_model(tmp_path / "m", text)

    error = format_error(root)

    assert str(error) == (
        f"{root / 'MLmodel'}, field 'flavors.python_function': is missing: sparkscore scores "
        "models through their python_function flavor, and this one only has sklearn, keras."
    )
    assert error.field == "flavors.python_function"


def test_read_spec_python_function_that_is_not_a_mapping(tmp_path: Path) -> None:
    root = write_model(tmp_path / "m", "flavors:\n  python_function: 3\n")

    assert str(format_error(root)) == (
        f"{root / 'MLmodel'}, field 'flavors.python_function': must be a mapping of the "
        "flavor's settings (loader_module, ...), got 3."
    )


def test_read_spec_without_loader_module(tmp_path: Path) -> None:
    root = write_model(tmp_path / "m", "flavors:\n  python_function:\n    data: model.pkl\n")

    error = format_error(root)

    assert str(error) == (
        f"{root / 'MLmodel'}, field 'flavors.python_function.loader_module': is required and "
        "must name the Python module that loads the model."
    )


def test_read_spec_signature_inputs_that_are_not_json(tmp_path: Path) -> None:
    root = write_model(tmp_path / "m", minimal("signature:\n  inputs: '[{bad'\n"))

    error = format_error(root)

    assert str(error) == (
        f"{root / 'MLmodel'}, field 'signature.inputs': is not valid JSON (Expecting property "
        "name enclosed in double quotes: line 1 column 3 (char 2))."
    )
    assert error.field == "signature.inputs"


@pytest.mark.parametrize(
    ("inputs", "detail"),
    [
        ('[{"type": "nope"}]', "'nope' is not a valid DataType"),
        ('{"type": "long"}', "a schema is a JSON list of specs, got dict"),
        ("[1]", "'int' object has no attribute 'get'"),
    ],
    ids=["unknown-type", "not-a-list", "spec-not-a-mapping"],
)
def test_read_spec_signature_that_is_not_an_mlflow_signature(
    tmp_path: Path, inputs: str, detail: str
) -> None:
    root = write_model(tmp_path / "m", minimal(f"signature:\n  inputs: '{inputs}'\n"))

    error = format_error(root)

    assert str(error) == (
        f"{root / 'MLmodel'}, field 'signature': is not a valid MLflow signature ({detail})."
    )


def test_read_spec_refuses_a_path_that_climbs_out(tmp_path: Path) -> None:
    root = write_model(tmp_path / "m", minimal(pyfunc="    data: ../x\n"))

    error = format_error(root)

    assert str(error) == (
        f"{root / 'MLmodel'}, field 'flavors.python_function.data': path '../x' points outside "
        f"the model directory ({tmp_path / 'x'}); paths in MLmodel must stay inside it."
    )
    assert error.field == "flavors.python_function.data"


def test_read_spec_refuses_an_absolute_path(tmp_path: Path) -> None:
    root = write_model(tmp_path / "m", minimal(pyfunc="    data: /etc/passwd\n"))

    error = format_error(root)

    assert str(error) == (
        f"{root / 'MLmodel'}, field 'flavors.python_function.data': is the absolute path "
        "'/etc/passwd'; paths in MLmodel must be relative to the model directory."
    )


def test_read_spec_refuses_a_symlink_that_points_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = write_model(tmp_path / "m", minimal(pyfunc="    data: link\n"))
    os.symlink(outside, root / "link")

    error = format_error(root)

    assert str(error) == (
        f"{root / 'MLmodel'}, field 'flavors.python_function.data': path 'link' points outside "
        f"the model directory ({outside}); paths in MLmodel must stay inside it."
    )


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (minimal(pyfunc="    code: ../code\n"), "flavors.python_function.code"),
        (minimal(pyfunc="    model_path: ../m.pkl\n"), "flavors.python_function.model_path"),
        (minimal(pyfunc="    env: ../conda.yaml\n"), "flavors.python_function.env"),
        (minimal(pyfunc="    env:\n      conda: ../c.yaml\n"), "flavors.python_function.env.conda"),
        (minimal("  sklearn:\n    pickled_model: ../m.pkl\n"), "flavors.sklearn.pickled_model"),
        (minimal("  sklearn:\n    pickled_model: m.pkl\n    code: ../c\n"), "flavors.sklearn.code"),
    ],
)
def test_read_spec_checks_every_path_field(tmp_path: Path, text: str, field: str) -> None:
    error = format_error(write_model(tmp_path / "m", text))

    assert error.field == field
    assert "points outside the model directory" in error.reason


def test_read_spec_refuses_a_path_that_is_not_a_string(tmp_path: Path) -> None:
    root = write_model(tmp_path / "m", minimal(pyfunc="    data: 5\n"))

    assert str(format_error(root)) == (
        f"{root / 'MLmodel'}, field 'flavors.python_function.data': must be a relative path "
        "string, got 5."
    )


# ---------------------------------------------------------------------------------------------
# directory_sha256


def test_directory_sha256_is_stable_across_a_copy(saved: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(saved, copy)

    assert directory_sha256(copy) == directory_sha256(saved)
    assert len(directory_sha256(saved)) == 64


def test_directory_sha256_changes_when_one_byte_changes(saved: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(saved, copy)
    data = bytearray((copy / "requirements.txt").read_bytes())
    data[0] ^= 1
    (copy / "requirements.txt").write_bytes(bytes(data))

    assert directory_sha256(copy) != directory_sha256(saved)


def test_directory_sha256_changes_when_a_file_is_renamed(tmp_path: Path) -> None:
    root = write_model(tmp_path / "m", minimal())
    (root / "a.txt").write_text("x")
    before = directory_sha256(root)
    (root / "a.txt").rename(root / "b.txt")

    assert directory_sha256(root) != before


def test_directory_sha256_of_a_plain_folder_is_what_earlier_versions_computed(
    saved: Path, tmp_path: Path
) -> None:
    # Resume compares the model's sha256 with the one the first run recorded.
    root = tmp_path / "m"
    shutil.copytree(saved, root)
    (root / "code" / "pkg").mkdir(parents=True)
    (root / "code" / "pkg" / "a.py").write_text("A = 1\n")
    (root / "code" / "z.py").write_text("Z = 2\n")
    (root / "data.bin").write_bytes(bytes(range(256)))
    earlier = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            earlier.update(os.path.relpath(full, root).encode() + b"\0")
            earlier.update(Path(full).read_bytes() + b"\0")

    assert directory_sha256(root) == earlier.hexdigest()


# ---------------------------------------------------------------------------------------------
# Nothing outside the model directory


def test_a_link_out_that_mlmodel_does_not_name_is_refused_by_name(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("password\n")
    root = write_model(tmp_path / "m", minimal())
    os.symlink(secret, root / "notes.txt")

    for read in (read_spec, directory_sha256, model_files):
        with pytest.raises(ModelFormatError) as info:
            read(root)
        assert str(info.value) == (
            f"{root / 'notes.txt'}: is a symbolic link to {secret}, outside the model directory "
            f"{root}; sparkscore reads and ships nothing from outside a model directory. Copy "
            "what it points to into the model directory, or remove the link."
        )
        assert (info.value.path, info.value.field) == (str(root / "notes.txt"), None)


def test_a_link_out_deep_inside_or_to_a_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = write_model(tmp_path / "m", minimal())
    (root / "a" / "b").mkdir(parents=True)
    os.symlink(outside, root / "a" / "b" / "up")

    assert format_error(root).path == str(root / "a" / "b" / "up")
    os.remove(root / "a" / "b" / "up")
    os.symlink("../../../x", root / "a" / "b" / "relative")
    (tmp_path / "x").write_text("x")

    assert format_error(root).reason.startswith(f"is a symbolic link to {tmp_path / 'x'}, outside")


def test_links_that_stay_inside_are_followed_as_their_contents(tmp_path: Path) -> None:
    root = write_model(tmp_path / "m", minimal())
    (root / "data").mkdir()
    (root / "data" / "w.bin").write_bytes(b"weights")
    os.symlink("data/w.bin", root / "alias.bin")
    os.symlink("data", root / "weights")
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)  # links become the files and folders they point to

    assert [f.name for f in model_files(root)] == [
        "MLmodel",
        "alias.bin",
        "data/w.bin",
        "weights/w.bin",
    ]
    assert model_files(root)[1] == ModelFile("alias.bin", str(root / "data" / "w.bin"))
    assert directory_sha256(root) == directory_sha256(copy)
    assert read_spec(root).path == str(root)


@pytest.mark.parametrize("kind", ["dangling", "loop", "fifo"])
def test_what_cannot_be_read_inside_is_refused_by_name(tmp_path: Path, kind: str) -> None:
    root = write_model(tmp_path / "m", minimal())
    (root / "sub").mkdir()
    bad = root / "sub" / "bad"
    if kind == "dangling":
        os.symlink("gone.txt", bad)
    elif kind == "loop":
        os.symlink("..", bad)
    else:
        os.mkfifo(bad)

    error = format_error(root)

    assert error.path == str(bad)
    assert (
        error.reason
        == {
            "dangling": f"is a symbolic link to {root / 'sub' / 'gone.txt'}, which does not exist; "
            "remove the link or restore what it points to.",
            "loop": f"is a symbolic link to {root}, a folder that holds the link itself, so the "
            "model directory would never end; remove the link.",
            "fifo": "is neither a file nor a folder (a FIFO, socket or device); remove it from the "
            "model directory.",
        }[kind]
    )


def test_an_mlmodel_that_is_a_link_out_is_never_read(tmp_path: Path) -> None:
    elsewhere = write_model(tmp_path / "elsewhere", minimal())
    root = tmp_path / "m"
    root.mkdir()
    os.symlink(elsewhere / "MLmodel", root / "MLmodel")

    assert format_error(root).path == str(root / "MLmodel")


# ---------------------------------------------------------------------------------------------
# One parse per process


def test_read_spec_parses_an_unchanged_mlmodel_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed = []
    real = sparkscore.model._read_yaml
    monkeypatch.setattr(sparkscore.model, "_read_yaml", lambda p: parsed.append(p) or real(p))
    root = write_model(tmp_path / "m", minimal("model_uuid: first\n"))

    assert read_spec(root) is read_spec(str(root))
    assert len(parsed) == 1
    write_model(root, minimal("model_uuid: second, longer\n"))

    assert read_spec(root).model_uuid == "second, longer"
    assert len(parsed) == 2


def test_read_spec_checks_the_folder_even_when_the_mlmodel_is_known(tmp_path: Path) -> None:
    root = write_model(tmp_path / "m", minimal())
    read_spec(root)
    os.symlink(tmp_path, root / "escape")

    assert format_error(root).path == str(root / "escape")
