from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sparkscore.errors import SettingsError
from sparkscore.settings import SETTING_NAMES, Settings

DEFAULT_YAML = Path(__file__).parents[1] / "conf" / "default.yaml"

ALL_NAMES = (
    "bad_rows, batch_rows, code, drift_null_threshold, drift_psi_threshold, env_cache, "
    "env_manager, environment_variables, error_threshold, fail_on_drift, iceberg_catalog, "
    "iceberg_table, ignore_unsupported, incremental, logging_level, "
    "max_retries, mini_batch_size, output_action, output_file_name, output_format, overwrite, "
    "params, passthrough_columns, profile, recursive, reference, report, rescore, result_type, "
    "resume, "
    "schema_mode, scoring_script, spark_output_columns, threads, timeout, trust_model"
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_settings_default_yaml_matches_dataclass_defaults() -> None:
    assert Settings.load(DEFAULT_YAML) == Settings()


def test_settings_default_yaml_lists_every_setting_in_field_order() -> None:
    keys = list(yaml.safe_load(DEFAULT_YAML.read_text(encoding="utf-8")))
    assert keys == [item.name for item in dataclasses.fields(Settings)]


def test_settings_names_are_sorted_field_names() -> None:
    assert SETTING_NAMES == tuple(sorted(item.name for item in dataclasses.fields(Settings)))
    assert ", ".join(SETTING_NAMES) == ALL_NAMES


def test_settings_load_without_file_gives_defaults() -> None:
    assert Settings.load() == Settings()
    assert Settings().mini_batch_size == "auto"
    assert Settings().batch_rows == "auto"
    assert Settings().output_format == "parquet"


def test_settings_precedence_is_defaults_file_set_kwargs(tmp_path: Path) -> None:
    path = write(tmp_path, "mini_batch_size: 5\nbatch_rows: 100\nmax_retries: 1\n")

    settings = Settings.load(
        path, ["batch_rows=200", "max_retries=2", "max_retries=4"], max_retries=7
    )

    assert settings.mini_batch_size == 5  # file beats default
    assert settings.batch_rows == 200  # --set beats file
    assert settings.max_retries == 7  # kwargs beat --set, later --set beats earlier
    assert settings.error_threshold == -1  # untouched default


def test_settings_set_values_are_yaml_typed() -> None:
    settings = Settings.load(
        overrides=[
            "passthrough_columns=[id, ts]",
            "recursive=true",
            "timeout=2.5",
            "mini_batch_size=4",
            "params={temperature: 0.2, top_k: 3}",
            "result_type=array<double>",
        ]
    )

    assert settings.passthrough_columns == ("id", "ts")
    assert settings.recursive is True
    assert settings.timeout == 2.5
    assert settings.mini_batch_size == 4
    assert settings.params == {"temperature": 0.2, "top_k": 3}
    assert settings.result_type == "array<double>"


def test_settings_set_with_empty_value_means_none(tmp_path: Path) -> None:
    path = write(tmp_path, "timeout: 30\nresult_type: double\n")

    settings = Settings.load(path, ["timeout=", "result_type="])

    assert settings.timeout is None
    assert settings.result_type is None


def test_settings_set_without_equals_is_rejected() -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings.load(overrides=["mini_batch_size"])

    err = excinfo.value
    assert (err.key, err.value) == ("--set", "mini_batch_size")
    assert str(err) == "--set must look like key=value, got 'mini_batch_size'"


def test_settings_set_with_unparseable_yaml_value_names_it() -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings.load(overrides=["passthrough_columns=[id, ts"])

    err = excinfo.value
    assert (err.key, err.value) == ("passthrough_columns", "[id, ts")
    assert err.source == "--set passthrough_columns=[id, ts"


def test_settings_out_of_range_names_key_value_and_source() -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings.load(overrides=["mini_batch_size=0"])

    err = excinfo.value
    assert err.key == "mini_batch_size"
    assert err.value == 0
    assert err.reason == "must be >= 1 or auto"
    assert err.source == "--set mini_batch_size=0"
    assert str(err) == "mini_batch_size must be >= 1 or auto, got 0 (from --set mini_batch_size=0)"


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("error_threshold", -2, "must be >= -1"),
        ("max_retries", -1, "must be >= 0"),
        ("batch_rows", 0, "must be >= 1 or auto"),
        ("timeout", 0, "must be > 0"),
        ("timeout", -1.5, "must be > 0"),
        ("timeout", float("inf"), "must be a finite number of seconds"),
    ],
)
def test_settings_rejects_out_of_range_values(key: str, value: Any, reason: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings.from_mapping({key: value})

    assert (excinfo.value.key, excinfo.value.value, excinfo.value.reason) == (key, value, reason)


def test_settings_accepts_range_boundaries() -> None:
    settings = Settings(mini_batch_size=1, error_threshold=-1, max_retries=0, batch_rows=1)

    assert (settings.mini_batch_size, settings.error_threshold, settings.max_retries) == (1, -1, 0)


def test_settings_unknown_key_suggests_closest_and_lists_all() -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings.load(overrides=["mini_batch_sise=5"])

    err = excinfo.value
    assert err.key == "mini_batch_sise"
    assert str(err) == (
        "mini_batch_sise is not a setting (did you mean mini_batch_size?); "
        f"valid settings: {ALL_NAMES}, got 5 (from --set mini_batch_sise=5)"
    )


def test_settings_unknown_key_without_close_match_lists_all() -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings.from_mapping({"zzz": 1}, source="job.yaml")

    assert str(excinfo.value) == (
        f"zzz is not a setting; valid settings: {ALL_NAMES}, got 1 (from job.yaml)"
    )


def test_settings_unknown_kwarg_names_the_argument() -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings.load(output_fromat="csv")

    assert excinfo.value.key == "output_fromat"
    assert "(did you mean output_format?)" in excinfo.value.reason
    assert excinfo.value.source == "argument output_fromat"


@pytest.mark.parametrize("key", ["mini_batch_size", "error_threshold", "max_retries", "batch_rows"])
def test_settings_rejects_bool_for_int_field(key: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings.load(overrides=[f"{key}=true"])

    err = excinfo.value
    expected = "must be an integer or auto" if "batch" in key else "must be an integer"
    assert (err.key, err.value, err.reason) == (key, True, expected)


@pytest.mark.parametrize("value", [2.0, "4", None])
def test_settings_rejects_non_integers_for_int_field(value: Any) -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings(max_retries=value)

    assert (excinfo.value.reason, excinfo.value.source) == ("must be an integer", None)


@pytest.mark.parametrize("key", ["mini_batch_size", "batch_rows"])
def test_settings_sizes_take_a_number_or_auto(key: str) -> None:
    assert getattr(Settings.load(overrides=[f"{key}=auto"]), key) == "auto"
    assert getattr(Settings.load(overrides=[f"{key}=7"]), key) == 7
    with pytest.raises(SettingsError) as excinfo:
        Settings.load(overrides=[f"{key}=big"])
    assert str(excinfo.value) == (
        f"{key} must be an integer or auto, got 'big' (from --set {key}=big)"
    )


def test_settings_rejects_string_for_bool_field() -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings.load(recursive="true")

    assert str(excinfo.value) == (
        "recursive must be true or false, got 'true' (from argument recursive)"
    )


def test_settings_accepts_int_for_float_field() -> None:
    settings = Settings.load(overrides=["timeout=30"])

    assert settings.timeout == 30.0
    assert isinstance(settings.timeout, float)


def test_settings_rejects_bool_for_float_field() -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings(timeout=True)

    assert excinfo.value.reason == "must be a number of seconds or null"


def test_settings_rejects_unknown_enum_value(tmp_path: Path) -> None:
    path = write(tmp_path, "output_format: json\n")

    with pytest.raises(SettingsError) as excinfo:
        Settings.load(path)

    err = excinfo.value
    assert (err.key, err.value, err.source) == ("output_format", "json", str(path))
    assert (
        str(err)
        == f"output_format must be one of parquet, csv, delta, iceberg, got 'json' (from {path})"
    )


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("output_action", "must be one of append_row, summary_only"),
        ("logging_level", "must be one of debug, info, warning, error"),
        ("bad_rows", "must be one of fail_file, skip"),
        ("env_manager", "must be one of local, virtualenv, uv"),
    ],
)
def test_settings_enum_errors_list_the_choices(key: str, reason: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings.from_mapping({key: "INFO"})

    assert excinfo.value.reason == reason


def test_settings_file_value_error_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "batch_rows: 0\n")

    with pytest.raises(SettingsError) as excinfo:
        Settings.load(path, ["batch_rows=5"])

    assert str(excinfo.value) == f"batch_rows must be >= 1 or auto, got 0 (from {path})"


def test_settings_file_not_a_mapping_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "- mini_batch_size\n- 4\n")

    with pytest.raises(SettingsError) as excinfo:
        Settings.load(path)

    err = excinfo.value
    assert (err.value, err.source) == (["mini_batch_size", 4], str(path))
    assert str(err) == (
        "settings file must hold a mapping of setting: value, "
        f"got ['mini_batch_size', 4] (from {path})"
    )


def test_settings_unparseable_file_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "mini_batch_size: 4\nrecursive: a: b\n")

    with pytest.raises(SettingsError) as excinfo:
        Settings.load(path)

    err = excinfo.value
    assert (err.key, err.value, err.source) == ("settings file", "recursive: a: b", str(path))
    assert err.reason.startswith("is not valid YAML (mapping values are not allowed here at line 2")


def test_settings_missing_file_is_a_settings_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(SettingsError) as excinfo:
        Settings.load(path)

    assert str(excinfo.value) == (
        f"settings file cannot be read (No such file or directory), got '{path}'"
    )


def test_settings_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert Settings.load(write(tmp_path, "")) == Settings()
    assert Settings.load(write(tmp_path, "# nothing set\n")) == Settings()


def test_settings_direct_construction_is_validated_without_source() -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings(mini_batch_size=0)

    assert excinfo.value.source is None
    assert str(excinfo.value) == "mini_batch_size must be >= 1 or auto, got 0"


def test_settings_column_string_or_list_becomes_tuple(tmp_path: Path) -> None:
    from_file = Settings.load(write(tmp_path, "passthrough_columns: id\n"))
    from_list = Settings.from_mapping({"passthrough_columns": ["id", "ts"]})

    assert from_file.passthrough_columns == ("id",)
    assert from_list.passthrough_columns == ("id", "ts")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (["id", 3], "must be a column name or a list of column names"),
        ([""], "must be a column name or a list of column names"),
        ({"id": 1}, "must be a column name or a list of column names"),
        (["id", "id"], "must not name a column twice"),
    ],
)
def test_settings_rejects_bad_passthrough_columns(value: Any, reason: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings(passthrough_columns=value)

    assert excinfo.value.reason == reason


@pytest.mark.parametrize("value", ["out/predictions.csv", "..", "", "a\\b.csv", 3])
def test_settings_rejects_paths_as_output_file_name(value: Any) -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings(output_file_name=value)

    assert excinfo.value.reason == "must be a plain file name, without '/'"


@pytest.mark.parametrize("value", ["", "  ", 5])
def test_settings_rejects_blank_result_type(value: Any) -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings(result_type=value)

    assert excinfo.value.key == "result_type"


@pytest.mark.parametrize("value", [[1, 2], "alpha=1", {1: "a"}])
def test_settings_rejects_params_that_are_not_a_named_mapping(value: Any) -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings(params=value)

    assert excinfo.value.reason == "must be a mapping of parameter name to value, or null"


def test_settings_params_are_copied_from_the_caller() -> None:
    params = {"alpha": 1}
    settings = Settings(params=params)
    params["alpha"] = 2

    assert settings.params == {"alpha": 1}


def test_settings_iceberg_catalog_takes_properties_as_strings() -> None:
    settings = Settings.load(
        overrides=["iceberg_catalog={type: sql, uri: 'sqlite:///c.db', pool: 5}"]
    )
    assert settings.iceberg_catalog == {"type": "sql", "uri": "sqlite:///c.db", "pool": "5"}
    with pytest.raises(SettingsError) as excinfo:
        Settings(iceberg_catalog=["type", "sql"])  # type: ignore[arg-type]
    assert excinfo.value.reason == (
        "must be a mapping of pyiceberg catalog property to value, or null"
    )


@pytest.mark.parametrize("value", ["predictions", "a..b", ".b", "a.", 3])
def test_settings_iceberg_table_must_be_namespace_dot_table(value: Any) -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings(iceberg_table=value)
    assert excinfo.value.reason == "must be namespace.table, or null"
    assert Settings(iceberg_table="lake.scores.lr").iceberg_table == "lake.scores.lr"


def test_settings_are_frozen_and_hashable() -> None:
    settings = Settings(params={"alpha": 1})

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.mini_batch_size = 3  # type: ignore[misc]
    assert hash(settings) == hash(Settings(params={"alpha": 2}))


def test_settings_replace_changes_only_what_is_given() -> None:
    base = Settings(mini_batch_size=4, recursive=True)

    changed = base.replace(output_format="csv", timeout=10)

    assert changed == Settings(mini_batch_size=4, recursive=True, output_format="csv", timeout=10.0)
    assert base.output_format == "parquet"


def test_settings_replace_validates_with_argument_source() -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings().replace(max_retries=-1)

    assert str(excinfo.value) == "max_retries must be >= 0, got -1 (from argument max_retries)"


def test_settings_replace_rejects_unknown_key() -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings().replace(overwite=True)

    assert "(did you mean overwrite?)" in excinfo.value.reason


def test_settings_from_mapping_rejects_non_mapping() -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings.from_mapping(["mini_batch_size"], source="summary.json")  # type: ignore[arg-type]

    assert str(excinfo.value) == (
        "settings must be a mapping of setting: value, got ['mini_batch_size'] (from summary.json)"
    )


def test_settings_to_dict_is_json_and_round_trips() -> None:
    settings = Settings(
        mini_batch_size=2,
        timeout=1.5,
        output_format="csv",
        passthrough_columns=("id", "ts"),
        result_type="array<double>",
        params={"temperature": 0.2, "stop": ["\n"]},
        recursive=True,
        env_manager="uv",
    )

    recorded = settings.to_dict()

    assert recorded["passthrough_columns"] == ["id", "ts"]
    assert list(recorded) == [item.name for item in dataclasses.fields(Settings)]
    assert Settings.from_mapping(json.loads(json.dumps(recorded))) == settings
    assert Settings.from_mapping(Settings().to_dict()) == Settings()
