"""Each Python worker's thread budget: the native pools and the model's own thread settings held
to the cores Spark gives a task, recorded in the summary and overridable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from flavor_zoo import FlavorZoo, features

import sparkscore
from sparkscore.errors import SettingsError
from sparkscore.settings import Settings
from sparkscore.threads import apply_budget, budget_for, pool_threads

for package in ("mlflow", "xgboost", "lightgbm"):
    pytest.importorskip(package, reason="the flavors extra: pip install 'sparkscore[flavors]'")

threadpoolctl = pytest.importorskip("threadpoolctl")


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> FlavorZoo:
    return FlavorZoo(tmp_path_factory.mktemp("thread_models"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("thread_inputs")
    for i in range(3):
        table = pa.Table.from_pandas(features(20, seed=i), preserve_index=False)
        pq.write_table(table, folder / f"part{i}.parquet")
    return folder


def test_budget_is_the_task_cores_unless_set() -> None:
    assert [budget_for("auto", 1), budget_for("auto", 4), budget_for(3, 4)] == [1, 4, 3]
    assert budget_for("off", 4) is None


def test_a_bad_threads_setting_names_what_it_takes() -> None:
    with pytest.raises(SettingsError) as e:
        Settings.load(overrides=["threads=0"])
    assert str(e.value) == "threads must be >= 1, auto or off, got 0 (from --set threads=0)"


def test_the_budget_reaches_the_models_own_thread_settings(zoo: FlavorZoo) -> None:
    import xgboost as xgb

    booster = sparkscore.load_model(zoo.xgb_booster)
    classifier = sparkscore.load_model(zoo.lgbm_classifier, trust_model=True)
    with threadpoolctl.threadpool_limits(limits=None):  # restores this process's pools after
        apply_budget(booster.impl, 3)
        apply_budget(classifier.impl, 3)
        pools = pool_threads()
    assert isinstance(booster.impl.model, xgb.Booster)
    config = json.loads(booster.impl.model.save_config())
    assert config["learner"]["generic_param"]["nthread"] == "3"
    assert classifier.impl.model.get_params()["n_jobs"] == 3
    assert pools == 3


def test_a_pipeline_step_n_jobs_is_held_to_the_budget() -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = Pipeline(
        [("scale", StandardScaler()), ("forest", RandomForestClassifier(n_jobs=-1))]
    )
    with threadpoolctl.threadpool_limits(limits=None):
        apply_budget(pipeline, 2)
    assert pipeline.get_params()["forest__n_jobs"] == 2


@pytest.mark.parametrize(("setting", "budget"), [("auto", 1), (3, 3)])
def test_each_worker_of_a_job_runs_the_budget_and_the_summary_says_so(
    spark: Any, zoo: FlavorZoo, inputs: Path, tmp_path: Path, setting: Any, budget: int
) -> None:
    # local[2]: spark.task.cpus is 1, so `auto` gives each of the two workers one thread, not
    # one per core; the worker reports its largest native pool after the budget held it.
    summary = sparkscore.score(
        spark, zoo.lgbm_booster, inputs, tmp_path / "out", mini_batch_size=1, threads=setting
    )
    assert summary["threads"] == {"budget": budget, "native_pool_max": budget}
    assert summary["settings"]["threads"] == setting
    manifests = [json.loads(p.read_text()) for p in (tmp_path / "out" / "_manifest").glob("*.json")]
    assert sorted(m["threads"] for m in manifests) == [budget] * 3


def test_off_is_off_however_yaml_reads_it(tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("threads: off\n", encoding="utf-8")
    assert Settings.load(config).threads == "off"
    assert Settings.load(overrides=["threads=off"]).threads == "off"
