"""Environment overrides used by the sandbox namespace and the benchmarks' scratch homes."""

from __future__ import annotations

import math
import os

import pytest

from core import config
from core.errors import UserError


def test_environment_sets_and_unsets_then_restores_even_after_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PM_TEST_KEPT", "before")
    monkeypatch.setenv("PM_TEST_UNSET", "present")
    monkeypatch.delenv("PM_TEST_NEW", raising=False)
    with pytest.raises(RuntimeError), config.environment({"PM_TEST_KEPT": "inside", "PM_TEST_UNSET": None,
                                                          "PM_TEST_NEW": "new"}):
        assert os.environ["PM_TEST_KEPT"] == "inside" and os.environ["PM_TEST_NEW"] == "new"
        assert "PM_TEST_UNSET" not in os.environ
        raise RuntimeError("the block failed")
    assert os.environ["PM_TEST_KEPT"] == "before" and os.environ["PM_TEST_UNSET"] == "present"
    assert "PM_TEST_NEW" not in os.environ


@pytest.mark.parametrize(("value", "expected"), [("", 5.0), ("  ", 5.0), ("0", 0.0), ("2.5", 2.5), ("1e1", 10.0)])
def test_a_numeric_setting_is_read_or_defaults_when_blank(monkeypatch: pytest.MonkeyPatch, value: str,
                                                          expected: float) -> None:
    monkeypatch.setenv("PM_TEST_NUMBER", value)
    assert config.env_number("PM_TEST_NUMBER", 5.0, 0, 10) == expected


def test_an_unset_numeric_setting_is_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PM_TEST_NUMBER", raising=False)
    assert config.env_number("PM_TEST_NUMBER", 7.0, 1) == 7.0


@pytest.mark.parametrize(("value", "kwargs", "accepted"), [
    ("abc", {}, "a number from 0 to 10"),
    ("nan", {}, "a number from 0 to 10"),
    ("inf", {"high": math.inf}, "a number of at least 0"),
    ("-1", {}, "a number from 0 to 10"),
    ("10.5", {}, "a number from 0 to 10"),
    ("10", {"high_open": True}, "a number from 0 up to (not including) 10"),
    ("2.5", {"whole": True}, "a whole number from 0 to 10"),
])
def test_a_bad_numeric_setting_is_one_sentence_naming_the_variable_and_the_range(
        monkeypatch: pytest.MonkeyPatch, value: str, kwargs: dict, accepted: str) -> None:
    monkeypatch.setenv("PM_TEST_NUMBER", value)
    options = {"high": 10.0, **kwargs}
    with pytest.raises(UserError) as caught:
        config.env_number("PM_TEST_NUMBER", 5.0, 0, meaning="the test's limit, in widgets", **options)
    assert str(caught.value) == (f"PM_TEST_NUMBER is '{value}', which is not accepted: set it to {accepted}, "
                                 "the test's limit, in widgets.")


def test_every_numeric_limit_is_checked_by_the_one_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    """The limits read at load time, by the API and by the gate refuse a bad value in the same sentence."""
    from core.data import archives, parsing
    from core.operations import gate, ingest_job
    from core.server import errors, readings_input

    readers = {"PM_MAX_FILE_MB": archives.Limits.from_env, "PM_MAX_ARCHIVE_DEPTH": archives.Limits.from_env,
               "PM_MAX_ROWS": parsing.max_parquet_rows, "PM_JOB_LEASE_S": ingest_job.lease_seconds,
               "PM_API_MAX_BODY_MB": errors.max_body_bytes, "PM_API_MAX_READINGS": readings_input.max_readings,
               "PM_API_MAX_ENGINE_READINGS": readings_input.max_engine_readings,
               "PM_GATE_F2_TOL": gate.GateRules.from_env}
    for name, read in readers.items():
        monkeypatch.setenv(name, "-1")
        with pytest.raises(UserError, match=rf"^{name} is '-1', which is not accepted: set it to a "):
            read()
        monkeypatch.delenv(name)
