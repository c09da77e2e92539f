"""Password sign-in under attack: parallel attempts counted atomically, growing delays per name, per address and
per name from one address instead of a lock-out, refusals logged as data, a crafted widget state ignored, and a
deep link kept through the sign-in (AppTest; the Chromium version is in tests/browser/test_signin_browser.py)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from streamlit.proto.WidgetStates_pb2 import WidgetStates
from streamlit.testing.v1 import AppTest

from core.access import passwords, policy, throttle, users
from core.access.roles import Role
from core.errors import UserError
from tests.served_navigation import navigate_as_served

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PASSWORD = "correct horse battery"
ATTACKER, REAL_USER = "198.51.100.9", "203.0.113.7"


@pytest.fixture(autouse=True)
def fresh_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no failures remembered."""
    monkeypatch.setattr(throttle, "_BY_NAME", {})
    monkeypatch.setattr(throttle, "_BY_ADDRESS", {})


@pytest.fixture
def ada(pm_home: Path) -> str:
    users.add_user("ada", Role.ADMIN, PASSWORD)
    return "ada"


def _try(name: str, password: str, address: str, now: float) -> str:
    """'in', 'wrong' or the throttle's wait in seconds, as text."""
    try:
        users.sign_in(name, password, address, now=now)
    except throttle.Throttled as err:
        return f"{err.wait_s:g}"
    except UserError as err:
        assert str(err) == users.WRONG_PASSWORD
        return "wrong"
    return "in"


# ------------------------------------------------------------------------------------------ parallel


@pytest.mark.parametrize("from_one_address", [True, False], ids=["one address", "ten addresses"])
def test_ten_parallel_sign_ins_of_one_name_check_at_most_the_limit(ada: str, monkeypatch: pytest.MonkeyPatch,
                                                                  from_one_address: bool) -> None:
    """Ten tabs submit 'ada' at once, nine with wrong passwords and one with the right one. No password is
    verified until every attempt has been admitted or refused, so a check-then-count throttle lets all ten
    through; an atomic one verifies at most the limit."""
    tries = 10
    verify = passwords.verify
    gate = threading.Condition()
    verified: list[str] = []
    refused: list[throttle.Throttled] = []
    results: dict[int, str] = {}

    def held_verify(encoded: str | None, password: str) -> bool:
        with gate:
            verified.append(password)
            gate.notify_all()
            assert gate.wait_for(lambda: len(verified) + len(refused) >= tries, timeout=60)
        return verify(encoded, password)

    monkeypatch.setattr(passwords, "verify", held_verify)
    start = threading.Barrier(tries)

    def tab(i: int) -> None:
        password = PASSWORD if i == 6 else f"wrong guess {i}"
        address = REAL_USER if from_one_address else f"203.0.113.{i + 10}"
        start.wait()
        try:
            users.sign_in(ada, password, address, now=1000.0)
            results[i] = "in"
        except throttle.Throttled as err:
            with gate:
                refused.append(err)
                gate.notify_all()
            results[i] = "throttled"
        except UserError:
            results[i] = "wrong"

    threads = [threading.Thread(target=tab, args=(i,)) for i in range(tries)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == tries
    assert len(verified) == throttle.MAX_FAILURES, f"{len(verified)} of {tries} parallel passwords were checked"
    assert len(refused) == tries - throttle.MAX_FAILURES
    assert all(str(err).startswith("Too many failed sign-ins for this name or from this address; try again in ")
               for err in refused)
    if results[6] != "in":  # the right password was among the refused: it gets in once the delay has passed
        assert results[6] == "throttled"
        wait = max(err.wait_s for err in refused)
        assert _try(ada, PASSWORD, REAL_USER, now=1000.0 + wait) == "in"


# ------------------------------------------------------------------------------------- no lock-out


def test_the_real_user_gets_in_from_another_address_while_an_attacker_keeps_guessing(ada: str) -> None:
    now, waits, failures = 0.0, [], 0
    while failures < 12:  # the attacker tries again as soon as allowed, for well over an hour's worth of delays
        outcome = _try(ada, f"guess {failures}", ATTACKER, now)
        if outcome == "wrong":
            failures += 1
        else:
            waits.append(float(outcome))
            now += float(outcome)
    assert failures == 12 and waits[0] == throttle.PAIR.base_s
    assert waits == sorted(waits) and waits[-1] >= 60 * throttle.PAIR.base_s, "the attacker's delays grow"
    assert float(_try(ada, "one more guess", ATTACKER, now)) > throttle.NAME.cap_s

    outcome = _try(ada, PASSWORD, REAL_USER, now)
    if outcome != "in":  # a short wait at most, never the attacker's delay
        assert 0 < float(outcome) <= throttle.NAME.cap_s
        outcome = _try(ada, PASSWORD, REAL_USER, now + float(outcome))
    assert outcome == "in"
    assert _try(ada, "still guessing", ATTACKER, now + throttle.NAME.cap_s) != "wrong", "the attacker stays slowed"


def test_right_after_five_failures_elsewhere_the_real_user_waits_at_most_a_second(ada: str) -> None:
    assert [_try(ada, f"guess {i}", ATTACKER, 100.0 + i) for i in range(5)] == ["wrong"] * 5
    assert _try(ada, PASSWORD, REAL_USER, 104.0) == f"{throttle.NAME.base_s:g}"
    assert _try(ada, PASSWORD, REAL_USER, 105.0) == "in"


def test_a_right_password_is_no_failure_and_forgets_none(ada: str) -> None:
    assert [_try(ada, f"typo {i}", REAL_USER, 10.0 + i) for i in range(4)] == ["wrong"] * 4
    assert _try(ada, PASSWORD, REAL_USER, 14.0) == "in"
    assert _try(ada, "typo 5", REAL_USER, 15.0) == "wrong", "the right password did not count as a fifth failure"
    assert _try(ada, PASSWORD, REAL_USER, 15.0) == f"{throttle.PAIR.base_s:g}", "nor did it forget the four"
    assert _try(ada, PASSWORD, REAL_USER, 15.0 + throttle.PAIR.base_s) == "in"


def test_one_address_trying_many_names_is_slowed_and_others_are_not(ada: str) -> None:
    free = throttle.ADDRESS.free
    assert [_try(f"user{i}", PASSWORD, ATTACKER, 50.0) for i in range(free)] == ["wrong"] * free
    assert _try("user-next", PASSWORD, ATTACKER, 50.0) == f"{throttle.ADDRESS.base_s:g}"
    assert _try(ada, PASSWORD, REAL_USER, 50.0) == "in"


def test_look_alike_spellings_of_a_name_count_as_one_and_failures_expire(ada: str) -> None:
    spellings = ["ada", "ADA", "\uff41\uff44\uff41", " Ada", "aDa"]  # fullwidth ａｄａ folds to ada
    assert [_try(s, "guess", ATTACKER, 10.0) for s in spellings] == ["wrong"] * 5
    assert _try("Ada", "guess", ATTACKER, 10.0) == f"{throttle.PAIR.base_s:g}"
    assert _try(ada, "guess", ATTACKER, 10.0 + throttle.WINDOW_S) == "wrong"


def test_each_refused_sign_in_is_logged_with_name_and_address_as_data(ada: str,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    hostile = "ada\n2026-01-01 INFO admin signed in"
    with caplog.at_level(logging.WARNING, logger="core.access"):
        for i in range(throttle.MAX_FAILURES + 1):
            _try(hostile, "guess", ATTACKER, 10.0 + i / 10)
    messages = [r.getMessage() for r in caplog.records if r.name == "core.access"]
    assert len(messages) == throttle.MAX_FAILURES + 1
    assert all("\n" not in m and f"name={hostile!r} address={ATTACKER!r}" in m for m in messages)
    assert messages[0].startswith("Sign-in refused, wrong name or password:")
    assert messages[-1].startswith("Sign-in refused, too many failures")


# ----------------------------------------------------------------------------------- the dashboard


def _signed_out_app(monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv(policy.ENV_AUTH, "required")
    navigate_as_served(monkeypatch)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert [t.value for t in at.title] == ["Sign in"] and not at.exception
    return at


def test_a_crafted_widget_state_named_like_the_sign_in_is_ignored(ada: str, monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A websocket ``rerun_script`` naming widget ``pm_signed_in`` (no widget has that id) once raised a
    KeyError in Streamlit's session state at the next widget; it must be dropped and sign nobody in."""
    at = _signed_out_app(monkeypatch)
    crafted = WidgetStates()
    for widget_id, value in (("pm_signed_in", ada), ("sign_in_name", ada)):
        state = crafted.widgets.add()
        state.id, state.string_value = widget_id, value
    with caplog.at_level(logging.WARNING, logger="core.access"):
        at._run(crafted)
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Sign in"] and at.text_input(key="sign_in_name").value == ""
    assert not at.metric and not at.sidebar.text
    assert "Ignored a widget state that no widget of the dashboard sends: id='pm_signed_in'" in caplog.messages


def test_a_deep_link_is_kept_through_the_sign_in(small_fd001: Path, ada: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    at = _signed_out_app(monkeypatch)
    at.query_params["dataset"], at.query_params["engine"] = "test_FD001", "3"
    at.switch_page("pages/engine.py").run()
    assert [t.value for t in at.title] == ["Sign in"] and not at.exception
    at.text_input(key="sign_in_name").input(ada)
    at.text_input(key="sign_in_password").input(PASSWORD)
    at.button(key="FormSubmitter:sign_in-Sign in").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Engine"]
    assert at.query_params["dataset"] == "test_FD001" and at.query_params["engine"] == "3"


def test_an_identity_without_a_role_is_named_as_text_not_markdown(pm_home: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(policy.ENV_AUTH, "required")
    name = "**boss**_[admin](http://203.0.113.1/)_$x^2$@example.org"
    at = AppTest.from_file(APP, default_timeout=120)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                          "client_id": "dashboard", "client_secret": "secret",
                          "server_metadata_url": "https://idp.invalid/.well-known/openid-configuration"}
    at.user = {"is_logged_in": True, "email": name}
    at.run()
    assert not at.exception and [t.value for t in at.text] == [name]
    assert [c.value for c in at.code] == [f"python -m core users add '{name}' --role viewer --sso"]
    shown = [e.value for e in at.error] + [m.value for m in at.markdown]
    assert shown and not any("boss" in value for value in shown)
