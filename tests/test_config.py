"""Environment overrides used by the sandbox namespace and the benchmarks' scratch homes."""

from __future__ import annotations

import os

import pytest

from core import config


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
