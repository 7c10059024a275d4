"""Errors keep their message and fields across processes (pickling)."""

from __future__ import annotations

import pickle

import pytest

import sparkscore.errors as errors
from sparkscore.errors import MissingColumnError, ReadError, SettingsError, SparkscoreError


@pytest.mark.parametrize(
    "error",
    [
        ReadError(file="a.csv", reason="the file has no rows.", row=3),
        SettingsError(key="timeout", value=-1, reason="must be positive"),
        MissingColumnError(file="b.parquet", column="age", present=["bmi", "sex"]),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_pickle_with_their_message_and_fields(error: SparkscoreError) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert str(back) == str(error)
    assert back.__dict__ == error.__dict__
    assert back.args == error.args


def test_every_error_is_a_sparkscore_error_listed_in_errors() -> None:
    classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, SparkscoreError)
    }
    assert classes - {"SparkscoreError"} <= set(errors.__all__)
