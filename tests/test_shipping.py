"""What reaches executors: the model directory's own files, links inside followed, nothing from
outside; and a parsed spec, so that workers do not parse MLmodel again."""

from __future__ import annotations

import os
import shutil
import zipfile

import numpy as np
import pytest
from model_zoo import counting_copy, lr_frame
from pyspark import SparkFiles

import sparkscore
from sparkscore import shipping
from sparkscore.errors import ModelFormatError
from sparkscore.modelfiles import directory_sha256, model_files
from sparkscore.planner import plan
from sparkscore.preparation import prepare
from sparkscore.scratch import process_dir
from sparkscore.settings import Settings
from sparkscore.shipping import SHIP_PREFIX, ship_model


def test_a_link_out_of_the_model_is_refused_before_anything_ships(spark, zoo, tmp_path):
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0\n")
    model = tmp_path / "m"
    shutil.copytree(zoo.custom_flavor, model)
    os.symlink(secret, model / "notes.txt")

    with pytest.raises(ModelFormatError) as e:
        ship_model(spark, str(model))

    assert e.value.path == str(model / "notes.txt")
    assert str(secret) in e.value.reason


def test_a_model_whose_data_is_a_link_inside_scores_on_executors(spark, zoo, tmp_path):
    model = tmp_path / "m"
    shutil.copytree(zoo.custom_flavor, model)
    os.rename(model / "data", model / "real-data")
    os.symlink("real-data", model / "data")  # MLmodel names data/config.json
    frame = lr_frame(6)

    shipped = ship_model(spark, str(model))
    predict = sparkscore.spark_udf(spark, model)
    got = [r[0] for r in spark.createDataFrame(frame).select(predict()).collect()]

    np.testing.assert_allclose(got, frame["a"] * 3.0 + frame["b"])
    assert shipped.spec is not None and shipped.spec.pyfunc.data == "data/config.json"
    with zipfile.ZipFile(SparkFiles.get(shipped.archive)) as z:
        assert sorted(z.namelist()) == [
            "MLmodel",
            "code/triple_flavor.py",
            "data/config.json",
            "real-data/config.json",
        ]


def test_workers_load_with_the_drivers_parse_of_mlmodel(spark, zoo, tmp_path):
    model = tmp_path / "m"
    shutil.copytree(zoo.custom_flavor, model)
    with open(model / "MLmodel", "a") as f:
        f.write("metadata:\n  owner: team-a\n  notes: [" + ", ".join(["x"] * 1000) + "]\n")
    shipped = ship_model(spark, str(model))

    def spec_seen(_rows):
        loaded = shipped.load()
        yield loaded.spec.metadata, loaded.spec.path, loaded.spec.pyfunc.loader_module

    seen = spark.sparkContext.parallelize(range(2), 2).mapPartitions(spec_seen).collect()

    # The metadata (free-form, possibly megabytes) stays on the driver; the rest travels.
    assert sparkscore.load_model(model, trust_model=True).spec.metadata["owner"] == "team-a"
    assert [(metadata, loader) for metadata, _, loader in seen] == [(None, "triple_flavor")] * 2
    assert all(path != str(model) and path.endswith(shipped.archive[:-4]) for _, path, _ in seen)


class FakeContext:
    """Stands for a SparkContext: records what the driver registers with it."""

    master = "local[1]"

    def __init__(self) -> None:
        self.added: list[str] = []

    def addFile(self, path: str) -> None:
        self.added.append(os.path.basename(path))


class FakeSession:
    def __init__(self) -> None:
        self.sparkContext = FakeContext()


def test_a_new_context_with_a_gone_ones_id_gets_the_model_registered_again(zoo, monkeypatch):
    # CPython gives a new object the id of one garbage-collected before it: here every context
    # has the same id, deterministically, as a new context can after the old one is gone.
    monkeypatch.setattr(shipping, "id", lambda obj: 7, raising=False)
    first, second = FakeSession(), FakeSession()

    shipped = ship_model(first, str(zoo.custom_flavor))
    again = ship_model(first, str(zoo.custom_flavor))
    ship_model(second, str(zoo.custom_flavor))

    assert again == shipped
    assert first.sparkContext.added == [shipped.archive]
    assert second.sparkContext.added == [shipped.archive]


def test_the_archive_holds_what_the_directory_hash_covers(zoo):
    session = FakeSession()

    shipped = ship_model(session, str(zoo.custom_flavor))

    assert shipped.sha256 == directory_sha256(zoo.custom_flavor)
    assert session.sparkContext.added == [shipped.archive]
    with zipfile.ZipFile(os.path.join(process_dir(SHIP_PREFIX), shipped.archive)) as z:
        assert z.namelist() == [f.name for f in model_files(zoo.custom_flavor)]


def test_the_same_model_is_zipped_once_per_process_and_a_changed_one_again(zoo, tmp_path):
    model = tmp_path / "m"
    shutil.copytree(zoo.custom_flavor, model)
    folder = process_dir(SHIP_PREFIX)

    first = shipping.pack_model(str(model))
    made = os.stat(first.archive).st_mtime_ns
    again = shipping.pack_model(str(model))
    (model / "data" / "config.json").write_text('{"factor": 4.0}')
    changed = shipping.pack_model(str(model))

    assert again == first and os.stat(again.archive).st_mtime_ns == made
    assert changed.sha256 == directory_sha256(model) != first.sha256
    assert os.path.basename(changed.archive) == f"sparkscore-model-{changed.sha256[:20]}.zip"
    with zipfile.ZipFile(changed.archive) as z:
        assert z.read("data/config.json") == b'{"factor": 4.0}'
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}
    assert not [name for name in os.listdir(folder) if name.endswith(".partial")]


def test_the_driver_loads_a_model_to_check_it_once_per_process_and_content(zoo, tmp_path):
    log = tmp_path / "loads.log"
    model = counting_copy(zoo.custom_flavor, tmp_path, log)
    (tmp_path / "in").mkdir()
    lr_frame(3).to_csv(tmp_path / "in" / "x.csv", index=False)

    def prepared(out: str) -> None:
        prepare(str(model), str(tmp_path / "in"), str(tmp_path / out), Settings(), parallelism=1)

    prepared("out1")
    prepared("out2")
    assert log.read_text().splitlines() == [str(os.getpid())]

    config = model / "data" / "config.json"
    config.write_text(config.read_text().replace("3.0", "5.0"))
    prepared("out3")
    assert log.read_text().splitlines() == [str(os.getpid())] * 2


def test_each_task_reads_its_own_mini_batch_from_the_shipped_plan(spark, tmp_path):
    for i in range(7):
        (tmp_path / f"f{i}.csv").write_text("a\n1\n")
    todo = plan(str(tmp_path), mini_batch_size=2).batches
    assert len(todo) == 4

    shipped = shipping.ship_plan(spark, todo)
    again = shipping.ship_plan(spark, list(todo))
    got = (
        spark.sparkContext.parallelize(range(len(todo)), len(todo))
        .map(lambda position: shipped.batch(position))
        .collect()
    )

    assert got == list(todo)
    assert [f.name for f in got[3].files] == ["f6.csv"]
    assert again == shipped  # the same plan is one file, registered once
    assert len(shipped.offsets) == len(todo) + 1
    assert os.path.getsize(SparkFiles.get(shipped.archive)) == shipped.offsets[-1]
