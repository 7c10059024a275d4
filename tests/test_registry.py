"""Model URIs resolved through a real mlflow file store written in the test."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from model_zoo import lr_frame

from sparkscore.errors import ModelFormatError
from sparkscore.job import score
from sparkscore.registry import local_model_dir
from sparkscore.scratch import LOCK, sweep


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory):
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("mlruns")
    uri = f"file://{root}/mlruns"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("sparkscore-tests")
    X = lr_frame()
    y = (X["a"] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(model, name="model", signature=infer_signature(X, y))
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", "lr-model")
    mlflow.MlflowClient().set_registered_model_alias("lr-model", "champion", version.version)
    yield run.info.run_id
    mp.undo()


def test_registry_resolves_runs_models_version_and_alias(registry):
    for uri in (f"runs:/{registry}/model", "models:/lr-model/1", "models:/lr-model@champion"):
        path, record = local_model_dir(uri)
        assert (Path(path) / "MLmodel").is_file(), uri
        assert record["uri"] == uri
        assert record["registry_run_id"] == registry
    assert local_model_dir("models:/lr-model@champion")[1]["version"] == "1"


def test_registry_unknown_model_is_a_clear_error(registry):
    with pytest.raises(ModelFormatError) as err:
        local_model_dir("models:/no-such-model/3")
    assert str(err.value).startswith("models:/no-such-model/3: cannot be resolved through mlflow")


def test_registry_job_records_the_resolved_version(spark, registry, tmp_path):
    X = lr_frame(8)
    (tmp_path / "in").mkdir()
    X.to_csv(tmp_path / "in" / "x.csv", index=False)
    summary = score(spark, "models:/lr-model@champion", tmp_path / "in", tmp_path / "out")
    assert summary["rows_scored"] == 8
    recorded = json.loads((tmp_path / "out" / "_summary.json").read_text())["model"]
    assert (recorded["path"], recorded["version"], recorded["registry_run_id"]) == (
        "models:/lr-model@champion",
        "1",
        registry,
    )


def test_registry_copies_into_a_folder_this_process_owns_and_sweeps_spare(registry):
    for uri in (f"runs:/{registry}/model", "models:/lr-model/1"):
        path, _ = local_model_dir(uri)
        owner = Path(path).parent  # runs:/ URIs land one level deeper, in a folder of their own
        owner = owner if owner.name.startswith("sparkscore-model-") else owner.parent
        assert owner.parent == Path(tempfile.gettempdir()), uri
        assert owner.name.startswith("sparkscore-model-"), uri
        assert (owner / LOCK).is_file()
        assert LOCK not in os.listdir(path)  # the model directory holds the model only
        assert str(owner) not in sweep("sparkscore-model-")  # this process is alive
        assert Path(path).is_dir()


def test_a_registered_model_with_a_link_out_is_never_copied(registry, tmp_path):
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    X = lr_frame()
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(LogisticRegression().fit(X, X["a"] > 0), name="model")
    version = mlflow.register_model(info.model_uri, "linked-model")
    store = mlflow.MlflowClient().get_model_version_download_uri("linked-model", version.version)
    secret = tmp_path / "secret.txt"
    secret.write_text("password\n")
    os.symlink(secret, Path(store.removeprefix("file://")) / "notes.txt")

    with pytest.raises(ModelFormatError) as err:
        local_model_dir(f"models:/linked-model/{version.version}")

    assert str(err.value).startswith(
        f"models:/linked-model/{version.version}: cannot be resolved through mlflow"
    )
    assert "notes.txt" in str(err.value) and "outside" in str(err.value)
