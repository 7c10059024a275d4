from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hiding import load_error_without
from model_zoo import lr_frame, mixed_frame

import sparkscore
from sparkscore.errors import (
    MissingDependencyError,
    ModelLoadError,
    ParamError,
    SchemaEnforcementError,
    UntrustedTypeError,
)

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
AZURE_MODEL = Path(__file__).parent / "data" / "azure-heart-model"


def mlflow_predict(path, data, params=None):
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(path)).predict(data, params=params)


@pytest.mark.parametrize("fmt", ["skops", "pickle", "cloudpickle"])
def test_loader_sklearn_formats_predict_as_mlflow(zoo, fmt):
    X = lr_frame()
    ours = sparkscore.load_model(zoo.lr(fmt)).predict(X)
    np.testing.assert_array_equal(ours, mlflow_predict(zoo.lr(fmt), X))
    assert ours.dtype == np.int64


def test_loader_honours_predict_fn_predict_proba(zoo):
    X = lr_frame()
    ours = sparkscore.load_model(zoo.lr_proba).predict(X)
    assert ours.shape == (len(X), 2)
    np.testing.assert_array_equal(ours, mlflow_predict(zoo.lr_proba, X))


def test_loader_pipeline_with_string_labels_matches_mlflow(zoo):
    X = mixed_frame()
    ours = sparkscore.load_model(zoo.pipeline).predict(X)
    assert set(ours) == {"yes", "no"}
    np.testing.assert_array_equal(ours, mlflow_predict(zoo.pipeline, X))


def test_loader_regressor_without_signature_predicts_as_mlflow(zoo):
    X = lr_frame()
    model = sparkscore.load_model(zoo.regressor_nosig)
    assert model.spec.signature is None
    np.testing.assert_array_equal(model.predict(X), mlflow_predict(zoo.regressor_nosig, X))


def test_loader_python_model_returns_named_dataframe_as_mlflow(zoo):
    X = lr_frame()
    ours = sparkscore.load_model(zoo.python_model).predict(X)
    pd.testing.assert_frame_equal(ours, mlflow_predict(zoo.python_model, X))
    assert list(ours.columns) == ["doubled", "label"]


def test_loader_passes_params_with_defaults_as_mlflow(zoo):
    X = lr_frame()
    model = sparkscore.load_model(zoo.param_model)
    np.testing.assert_array_equal(model.predict(X), mlflow_predict(zoo.param_model, X))
    np.testing.assert_array_equal(model.predict(X, params={"scale": 5}), X["a"].to_numpy() * 5)
    np.testing.assert_array_equal(
        model.predict(X, params={"scale": 5}), mlflow_predict(zoo.param_model, X, {"scale": 5.0})
    )


def test_loader_rejects_unknown_and_mistyped_params_by_name(zoo):
    model = sparkscore.load_model(zoo.param_model)
    with pytest.raises(ParamError) as unknown:
        model.predict(lr_frame(), params={"scal": 1.0})
    assert str(unknown.value) == (
        "Parameter 'scal': is not a parameter of this model; its parameters are scale."
    )
    with pytest.raises(ParamError) as mistyped:
        model.predict(lr_frame(), params={"scale": "big"})
    assert mistyped.value.name == "scale"
    assert "must be of type double, got 'big'" in str(mistyped.value)


def test_loader_custom_flavor_loads_its_own_code(zoo):
    X = lr_frame()
    ours = sparkscore.load_model(zoo.custom_flavor).predict(X)
    np.testing.assert_allclose(ours, X["a"].to_numpy() * 3.0 + X["b"].to_numpy())


def test_loader_drops_extra_columns_and_reorders_by_name(zoo):
    X = lr_frame()
    shuffled = X[["b", "a"]].assign(id=range(len(X)))
    model = sparkscore.load_model(zoo.lr_skops)
    np.testing.assert_array_equal(model.predict(shuffled), model.predict(X))


def test_loader_enforcement_error_names_column_row_and_value(zoo):
    X = lr_frame().astype({"a": object})
    X.loc[7, "a"] = "abc"
    with pytest.raises(SchemaEnforcementError) as err:
        sparkscore.load_model(zoo.lr_skops).predict(X)
    assert (err.value.column, err.value.row, err.value.value) == ("a", 7, "abc")
    assert str(err.value) == (
        "row 7: column 'a' has value 'abc', which cannot be converted safely to double."
    )


def test_loader_refuses_untrusted_skops_type_by_name(zoo):
    with pytest.raises(UntrustedTypeError) as err:
        sparkscore.load_model(zoo.untrusted_skops)
    assert err.value.types == ["sklearn.tree._tree.Tree"]
    assert "sklearn.tree._tree.Tree" in str(err.value)


def test_loader_names_missing_package_pins_and_python_for_azure_sample(tmp_path):
    # xgboost is installed for the flavor tests: the model is loaded in a Python without it.
    [e] = load_error_without(("xgboost",), [AZURE_MODEL], tmp_path)
    assert e["package"] == "xgboost"
    assert e["pinned"] == "xgboost==1.4.2 (requirements.txt), xgboost==1.3.3 (conda.yaml)"
    assert e["installed"] is None
    assert e["python"] == "3.8.5"
    assert e["message"] == (
        f"Cannot load the model at {AZURE_MODEL}: it needs the package 'xgboost'; the model pins "
        "xgboost==1.4.2 (requirements.txt), xgboost==1.3.3 (conda.yaml); not installed here; "
        "the model was saved with Python 3.8.5 (No module named 'xgboost'). Install the version "
        "the model pins, or score it with env_manager: virtualenv so that sparkscore builds the "
        "model's own environment."
    )


def test_loader_names_scikit_learn_mismatch_when_unpickling_breaks(tmp_path, zoo):
    model_dir = tmp_path / "old_sklearn"
    shutil.copytree(zoo.lr_pickle, model_dir)
    text = (model_dir / "MLmodel").read_text().replace("sklearn_version: 1.", "sklearn_version: 0.")
    (model_dir / "MLmodel").write_text(text)
    (model_dir / "model.pkl").write_bytes(b"\x80\x04\x95garbage")
    with pytest.raises(MissingDependencyError) as err:
        sparkscore.load_model(model_dir)
    assert err.value.package == "scikit-learn"
    assert err.value.installed is not None
    assert "written by scikit-learn 0." in str(err.value)


def test_loader_wraps_a_failing_custom_loader(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "broken_flavor.py").write_text(
        "def _load_pyfunc(path):\n    raise RuntimeError('weights file is corrupt')\n"
    )
    (tmp_path / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: broken_flavor\n    code: code\n"
    )
    with pytest.raises(ModelLoadError) as err:
        sparkscore.load_model(tmp_path)
    assert str(err.value) == (
        f"Cannot load the model at {tmp_path}: the loader raised RuntimeError: weights file is "
        "corrupt"
    )


def test_loader_never_imports_mlflow_for_sklearn_and_names_the_extra_when_needed(zoo):
    """In a process where mlflow cannot be imported, every scikit-learn format still loads."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["mlflow"] = None  # import mlflow now raises ImportError
        import numpy as np
        import sparkscore
        from model_zoo import lr_frame
        X = lr_frame()
        for path in {[str(zoo.lr(f)) for f in ("skops", "pickle", "cloudpickle")]!r}:
            print(sparkscore.load_model(path).predict(X)[:5].tolist())
        try:
            sparkscore.load_model({str(zoo.python_model)!r})
        except sparkscore.MissingDependencyError as e:
            print(e.package, "|", str(e).split(". ", 1)[1])
        print(sorted(m for m in sys.modules if m.startswith("mlflow") and sys.modules[m]))
    """)
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent,
    ).stdout.splitlines()
    expected = sparkscore.load_model(zoo.lr_skops).predict(lr_frame())[:5].tolist()
    assert out[:3] == [str(expected)] * 3
    assert out[3].startswith("mlflow-skinny |")
    assert out[3].endswith("Install it with: pip install 'sparkscore[mlflow]'.")
    assert out[4] == "[]"


def test_loader_caches_one_model_per_process(zoo):
    from sparkscore.worker import WORKER

    LOADS, load_cached = WORKER.loads, WORKER.load_cached

    key = "cache-test-key"
    first = load_cached(str(zoo.lr_skops), key=key)
    second = load_cached(str(zoo.lr_skops), key=key)
    assert first is second
    assert LOADS[key] == 1


# ---------------------------------------------------------------------------------------------
# Loading runs the model's code: said once, unless the user trusts the model


def untrusted_warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "sparkscore" and "runs code from it" in r.getMessage()
    ]


def test_loading_a_pickled_model_warns_once_that_it_runs_code(zoo, tmp_path, caplog):
    from sparkscore.worker import WORKER

    load_cached = WORKER.load_cached
    model = tmp_path / "pickled"
    shutil.copytree(zoo.lr_pickle, model)

    with caplog.at_level("WARNING", logger="sparkscore"):
        sparkscore.load_model(model)
        sparkscore.load_model(model)
        load_cached(str(model), key="warn-once-test")

    assert untrusted_warnings(caplog) == [
        f"loading the model at {model} runs code from it (its estimator model.pkl is unpickled "
        "with pickle); load only models you trust (trust_model: true says you do, and "
        "silences this warning)"
    ]


@pytest.mark.parametrize("fmt", ["cloudpickle", "custom"])
def test_every_loader_that_runs_code_says_how(zoo, tmp_path, caplog, fmt):
    model = tmp_path / fmt
    shutil.copytree(zoo.lr_cloudpickle if fmt == "cloudpickle" else zoo.custom_flavor, model)

    with caplog.at_level("WARNING", logger="sparkscore"):
        sparkscore.load_model(model)

    how = {
        "cloudpickle": "its estimator model.pkl is unpickled with cloudpickle",
        "custom": "its loader module 'triple_flavor' is Python code from its code folder",
    }
    assert untrusted_warnings(caplog) == [
        f"loading the model at {model} runs code from it ({how[fmt]}); load only models you "
        "trust (trust_model: true says you do, and silences this warning)"
    ]


def test_a_trusted_or_skops_model_loads_without_a_warning(zoo, tmp_path, caplog):
    pickled, skops = tmp_path / "pickled", tmp_path / "skops"
    shutil.copytree(zoo.lr_pickle, pickled)
    shutil.copytree(zoo.lr_skops, skops)

    with caplog.at_level("WARNING", logger="sparkscore"):
        sparkscore.load_model(pickled, trust_model=True)
        sparkscore.load_model(skops)

    assert untrusted_warnings(caplog) == []


@pytest.mark.parametrize("trust", [False, True])
def test_a_scoring_run_warns_once_on_the_driver_unless_trusted(spark, zoo, tmp_path, caplog, trust):
    model = tmp_path / "pickled"
    shutil.copytree(zoo.lr_pickle, model)
    (tmp_path / "in").mkdir()
    for i in range(3):
        lr_frame(5).to_csv(tmp_path / "in" / f"part-{i}.csv", index=False)

    with caplog.at_level("WARNING", logger="sparkscore"):
        summary = sparkscore.score(
            spark, model, tmp_path / "in", tmp_path / "out", mini_batch_size=1, trust_model=trust
        )

    assert summary["rows_scored"] == 15
    assert summary["settings"]["trust_model"] is trust
    assert len(untrusted_warnings(caplog)) == (0 if trust else 1)


def test_spark_udf_warns_on_the_driver_unless_trusted(spark, zoo, tmp_path, caplog):
    trusted, untrusted = tmp_path / "trusted", tmp_path / "untrusted"
    shutil.copytree(zoo.lr_pickle, trusted)
    shutil.copytree(zoo.lr_pickle, untrusted)

    with caplog.at_level("WARNING", logger="sparkscore"):
        sparkscore.spark_udf(spark, trusted, trust_model=True)
        sparkscore.spark_udf(spark, untrusted)

    assert [str(untrusted) in m for m in untrusted_warnings(caplog)] == [True]
