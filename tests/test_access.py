"""Users, roles and sign-in: the users file, password hashing, the role of each action, the ``users`` CLI,
the API's 401/403 per role, and the dashboard's sign-in and role checks (AppTest)."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import cli
from core.access import policy, roles, users
from core.access.roles import Role
from core.data import queries, store
from core.errors import UserError
from tests.api_support import api_client
from tests.served_navigation import navigate_as_served

APP = str(Path(__file__).resolve().parent.parent / "app.py")
ADMIN_TOKEN = "admin-token-0123456789abcdef"
PASSWORD = "correct horse battery"


# ------------------------------------------------------------------------------------------- roles


@pytest.mark.parametrize(("role", "may", "may_not"), [
    (Role.VIEWER, {"read"}, {"load", "record_outcome", "append_readings", "delete", "retrain", "promote"}),
    (Role.OPERATOR, {"read", "load", "record_outcome", "append_readings"}, {"delete", "retrain", "promote",
                                                                           "simulate", "api_token"}),
    (Role.ADMIN, set(roles.ACTIONS), set()),
])
def test_each_role_may_do_its_actions_and_no_more(role: Role, may: set[str], may_not: set[str]) -> None:
    assert {a for a in roles.ACTIONS if roles.allowed(role, a)} >= may
    assert not {a for a in may_not if roles.allowed(role, a)}
    assert not any(roles.allowed(None, a) for a in roles.ACTIONS)


def test_a_refusal_is_one_sentence_naming_the_role_needed_and_held() -> None:
    with pytest.raises(roles.AccessDenied, match=r"^Only the admin role or higher may delete datasets; 'vic' is "
                                                  r"a viewer\.$"):
        roles.require(Role.VIEWER, "delete", "vic")
    assert roles.refusal(None, "load") == "Sign in to load data."
    with pytest.raises(UserError, match="'root' is not a role"):
        roles.parse_role("root")


# ------------------------------------------------------------------------------------- users file


def test_users_file_keeps_argon2_hashes_owner_only_and_authenticates(pm_home: Path) -> None:
    users.add_user("ann", Role.ADMIN, PASSWORD)
    path = pm_home / "users.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert PASSWORD not in text and "$argon2id$" in text
    assert users.authenticate("ann", PASSWORD).role is Role.ADMIN
    assert users.authenticate("ann", "wrong password") is None
    assert users.authenticate("nobody", PASSWORD) is None
    with pytest.raises(UserError, match="exists already"):
        users.add_user("ann", Role.VIEWER, PASSWORD)
    with pytest.raises(UserError, match="shorter than 8"):
        users.add_user("bob", Role.VIEWER, "short")
    with pytest.raises(UserError, match="not a usable user name"):
        users.add_user("../ann", Role.VIEWER, PASSWORD)
    users.set_role("ann", Role.VIEWER)
    assert users.find("ann").role is Role.VIEWER
    users.remove_user("ann")
    assert users.find("ann") is None and users.authenticate("ann", PASSWORD) is None


def test_api_tokens_are_stored_as_digests_follow_the_role_and_can_be_revoked(pm_home: Path) -> None:
    users.add_user("ops@example.org", Role.OPERATOR, None, sso=True)
    secret, record = users.issue_token("ops@example.org")
    assert secret not in (pm_home / "users.json").read_text() and record.sha256 in (pm_home / "users.json").read_text()
    assert users.user_for_token(secret).name == "ops@example.org"
    assert users.user_for_token(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    users.set_role("ops@example.org", Role.VIEWER)
    assert users.user_for_token(secret).role is Role.VIEWER
    assert users.revoke_tokens("ops@example.org") == 1
    assert users.user_for_token(secret) is None


def test_an_unreadable_users_file_is_a_sentence(pm_home: Path) -> None:
    (pm_home / "users.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot be read.*python -m core users add"):
        users.load_users()


@pytest.mark.parametrize(("address", "client", "mode", "required"), [
    ("127.0.0.1", None, "auto", False), ("localhost", None, "auto", False), ("::1", None, "auto", False),
    ("0.0.0.0", None, "auto", True), ("", None, "auto", True), ("192.168.1.5", None, "auto", True),
    ("127.0.0.1", "10.0.0.7", "auto", True), ("127.0.0.1", None, "required", True),
])
def test_sign_in_is_required_beyond_loopback_or_when_forced(monkeypatch: pytest.MonkeyPatch, address: str,
                                                           client: str | None, mode: str, required: bool) -> None:
    monkeypatch.setenv(policy.ENV_AUTH, mode)
    assert policy.sign_in_required(address, client) is required


# -------------------------------------------------------------------------------------------- CLI


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *argv: str,
         stdin: str = "") -> tuple[int, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_users_cli_adds_lists_changes_issues_tokens_and_removes(pm_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture) -> None:
    code, out = _cli(monkeypatch, capsys, "users", "add", "ann", "--role", "admin", "--password-stdin",
                     stdin=PASSWORD + "\n")
    assert code == 0 and out.strip() == "Added ann (admin)." and PASSWORD not in out
    assert users.authenticate("ann", PASSWORD) is not None
    code, out = _cli(monkeypatch, capsys, "users", "add", "vic", "--role", "viewer")
    assert code == 1 and "--password-stdin" in out and users.find("vic") is None
    assert _cli(monkeypatch, capsys, "users", "set-role", "ann", "operator")[0] == 0
    code, out = _cli(monkeypatch, capsys, "users", "list", "--json")
    assert code == 0 and json.loads(out)["users"][0] | {"created": ""} == {
        "name": "ann", "role": "operator", "sign_in": "password", "api_tokens": 0, "created": ""}
    code, out = _cli(monkeypatch, capsys, "users", "token", "ann", "--json")
    assert code == 0 and users.user_for_token(json.loads(out)["token"]).name == "ann"
    assert _cli(monkeypatch, capsys, "users", "remove", "ann")[0] == 0
    code, out = _cli(monkeypatch, capsys, "users", "remove", "ann")
    assert code == 1 and out.strip() == "error: There is no user 'ann' (users: none yet)."


# -------------------------------------------------------------------------------------------- API


def test_api_answers_401_without_a_token_and_403_when_the_role_is_too_low(pm_home: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = {}
    for name, role in (("vic", Role.VIEWER), ("opal", Role.OPERATOR)):
        users.add_user(name, role, PASSWORD)
        tokens[name] = users.issue_token(name)[0]
    with api_client(pm_home, ADMIN_TOKEN, monkeypatch) as (client, _):
        def call(method: str, path: str, token: str | None) -> tuple[int, str]:
            headers = {"Authorization": f"Bearer {token}" if token else ""}
            response = getattr(client, method)(path, headers=headers, **({"json": {}} if method == "post" else {}))
            return response.status_code, response.json()["detail"] if response.status_code >= 400 else ""

        assert call("get", "/api/v1/alerts", None)[0] == 401
        assert call("get", "/api/v1/alerts", "pmu_not-a-token-of-anyone")[0] == 401
        for token in (tokens["vic"], tokens["opal"], ADMIN_TOKEN):
            assert call("get", "/api/v1/alerts", token)[0] == 200
        for path in ("/api/v1/readings", "/api/v1/outcomes"):
            status, detail = call("post", path, tokens["vic"])
            assert status == 403 and detail.startswith("Only the operator role or higher may ")
            assert detail.endswith("'vic' is a viewer.")
            assert call("post", path, tokens["opal"])[0] == 422  # past the role check, refused for its body
            assert call("post", path, ADMIN_TOKEN)[0] == 422
        users.set_role("opal", Role.VIEWER)
        assert call("post", "/api/v1/readings", tokens["opal"])[0] == 403
        users.remove_user("vic")
        assert call("get", "/api/v1/alerts", tokens["vic"])[0] == 401


# ---------------------------------------------------------------------------------- dashboard (AppTest)


@pytest.fixture
def signed_in_app(small_fd001: Path, monkeypatch: pytest.MonkeyPatch):
    """A function (name) -> an AppTest of the dashboard signed in as `name` (PM_AUTH=required)."""
    monkeypatch.setenv(policy.ENV_AUTH, "required")
    navigate_as_served(monkeypatch)

    def sign_in(name: str) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()
        at.text_input(key="sign_in_name").input(name)
        at.text_input(key="sign_in_password").input(PASSWORD)
        at.button(key="FormSubmitter:sign_in-Sign in").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        return at

    return sign_in


@pytest.mark.parametrize(("mode", "address"), [("required", "127.0.0.1"), ("auto", "0.0.0.0")])
def test_without_users_a_required_sign_in_shows_only_how_to_create_an_admin(
        pm_home: Path, monkeypatch: pytest.MonkeyPatch, mode: str, address: str) -> None:
    from streamlit import config

    monkeypatch.setenv(policy.ENV_AUTH, mode)
    bound = config.get_option("server.address")
    config.set_option("server.address", address)
    try:
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()
    finally:
        config.set_option("server.address", bound)
    assert [t.value for t in at.title] == ["Sign in"]
    assert [c.value for c in at.code] == ["python -m core users add NAME --role admin"]
    assert not at.text_input and not at.button and not at.dataframe and not at.metric


def test_with_an_identity_provider_the_sign_in_offers_st_login_and_no_password_form(
        pm_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(policy.ENV_AUTH, "required")
    at = AppTest.from_file(APP, default_timeout=120)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                          "client_id": "dashboard", "client_secret": "secret",
                          "server_metadata_url": "https://idp.invalid/.well-known/openid-configuration"}
    at.run()
    assert [t.value for t in at.title] == ["Sign in"]
    assert [b.label for b in at.button] == ["Sign in with your organisation's account"]
    assert not at.text_input and not at.metric


def test_a_viewer_signs_in_and_gets_no_load_or_delete_and_a_stale_delete_is_refused(
        signed_in_app, monkeypatch: pytest.MonkeyPatch) -> None:
    users.add_user("vic", Role.VIEWER, PASSWORD)
    users.add_user("ada", Role.ADMIN, PASSWORD)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.text_input(key="sign_in_name").input("vic")
    at.text_input(key="sign_in_password").input("not the password")
    at.button(key="FormSubmitter:sign_in-Sign in").click().run()
    assert [e.value for e in at.error] == ["The name or the password is wrong."] and not at.metric

    at = signed_in_app("vic")
    assert any(m.label == "Datasets" for m in at.metric)
    assert "vic · viewer" in [t.value for t in at.sidebar.text]
    assert not at.code, "the API's admin token is for admins only"
    assert any("python -m core users token NAME" in c.value for c in at.caption)
    at.switch_page("pages/data.py").run()
    assert not [b for b in at.button if b.key in ("delete", "confirm_delete")]
    notes = [c.value for c in at.caption]
    assert "Only the admin role or higher may delete datasets; you are a viewer." in notes
    assert "Only the operator role or higher may load data; you are a viewer." in notes

    at = signed_in_app("ada")
    at.switch_page("pages/data.py").run()
    at.selectbox(key="delete_name").set_value("test_FD001")
    at.button(key="delete").click().run()
    users.set_role("ada", Role.VIEWER)  # demoted while the confirmation is on screen
    at.button(key="confirm_delete").click().run()
    assert [e.value for e in at.error] == ["Only the admin role or higher may delete datasets; you are a viewer."]
    with store.connect(read_only=True) as con:
        assert "test_FD001" in set(queries.list_datasets(con)["name"])


def test_an_unwritable_home_gets_a_sentence_about_the_api_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from core.server import auth

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    monkeypatch.setenv("PM_HOME", str(blocker / "home"))  # a folder under a file cannot be made, not even by root
    monkeypatch.delenv("PM_API_TOKEN", raising=False)
    with pytest.raises(UserError, match="No API token could be written .* set PM_API_TOKEN"):
        auth.api_token()
