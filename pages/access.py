"""Sign-in and roles in the dashboard: the gate before navigation, the sign-in page, the sidebar's user, and
the checks pages make before showing and before doing an action (:mod:`core.access`).

A session bound to loopback and reached from this machine is a local admin and never signs in; otherwise
(:func:`core.access.policy.sign_in_required`) it signs in with Streamlit's ``st.login`` when an identity
provider is configured in ``secrets.toml`` (``[auth]``), else with a name and password from the users file.
The role is read from the users file on every rerun and again when an action runs (:func:`permit`), so a
demoted or removed user loses the action even on a page drawn before the change.
"""

from __future__ import annotations

import logging
import time

import streamlit as st

from core.access import policy, roles, throttle, users
from core.access.roles import Role
from core.errors import UserError

LOG = logging.getLogger("core.server")
SESSION_KEY = "pm_signed_in"
"""The signed-in user's name (password sign-in) in the session state."""
FAILED_SIGN_IN_DELAY_S = 1.0
CREATE_ADMIN = "python -m core users add NAME --role admin"


def _required() -> bool:
    client = st.context.ip_address  # None for a client on this machine (and not a str under AppTest)
    return policy.sign_in_required(st.get_option("server.address"), client if isinstance(client, str) else None)


def _providers() -> list[str | None] | None:
    """The ``st.login`` providers configured in ``secrets.toml`` (None: no ``[auth]`` section)."""
    if not st.secrets.load_if_toml_exists():
        return None
    section = st.secrets.get("auth")
    if not section:
        return None
    if "client_id" in section:
        return [None]
    return [name for name, value in section.items() if hasattr(value, "get") and "client_id" in value] or None


def _sso_name() -> str | None:
    """The identity provider's e-mail (or name) of the signed-in ``st.login`` user, or None."""
    if not st.user.get("is_logged_in", False):
        return None
    return str(st.user.get("email") or st.user.get("name") or "") or None


def identity() -> tuple[str, Role] | None:
    """(name, role) of this session: a local admin when no sign-in is required; None when nobody signed in
    or the user has no role here (any more)."""
    if not _required():
        return "local", Role.ADMIN
    name = _sso_name() if _providers() else st.session_state.get(SESSION_KEY)
    user = users.find(name) if name else None
    return None if user is None else (user.name, user.role)


def role() -> Role | None:
    """This session's role now (None: signed out)."""
    found = identity()
    return None if found is None else found[1]


def can(action: str) -> bool:
    """Whether this session may do `action`: pages draw its controls only then."""
    return roles.allowed(role(), action)


def permit(action: str) -> bool:
    """Check `action` again as it runs (never trust a drawn button alone); a refusal is shown as a sentence."""
    found = identity()
    try:
        roles.require(None if found is None else found[1], action)
    except roles.AccessDenied as err:
        st.error(str(err), icon=":material/block:")
        return False
    return True


def note(action: str) -> None:
    """Say why an action's controls are not drawn."""
    st.caption(roles.refusal(role(), action))


def gate() -> bool:
    """Before navigation: True when this session may see the dashboard; otherwise draw only the sign-in page."""
    try:
        if identity() is not None:
            return True
    except UserError as err:
        st.error(str(err), icon=":material/error:")
        return False
    st.navigation([st.Page(sign_in_page, title="Sign in", icon=":material/login:", url_path="sign-in")],
                  position="hidden").run()
    return False


def sign_in_page() -> None:
    """The only page a session that must sign in sees."""
    st.title("Sign in")
    providers = _providers()
    if providers:
        _sso_sign_in(providers)
    elif not users.load_users():
        st.warning("This dashboard is served beyond this machine, so it needs a sign-in, and no user exists yet. "
                   "On the server, create an admin with the command below, then reload this page.",
                   icon=":material/person_add:")
        st.code(CREATE_ADMIN, language="bash")
    else:
        _password_sign_in()


def _sso_sign_in(providers: list[str | None]) -> None:
    name = _sso_name()
    if name is not None:
        st.error(f"You are signed in as {name}, who has no role on this dashboard; an admin grants one with "
                 f"'python -m core users add {name} --role viewer --sso'.", icon=":material/block:")
        if st.button("Sign out", key="sso_sign_out"):
            st.logout()
        return
    for provider in providers:
        label = "Sign in with your organisation's account" if provider is None else f"Sign in with {provider}"
        if st.button(label, type="primary", key=f"sso_{provider}"):
            if provider is None:
                st.login()
            else:
                st.login(provider)


def _password_sign_in() -> None:
    with st.form("sign_in"):
        name = st.text_input("Name", key="sign_in_name")
        secret = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        name = name.strip()
        try:
            throttle.check(name)
        except UserError as err:
            st.error(str(err), icon=":material/block:")
            return
        user = users.authenticate(name, secret)
        if user is None:
            throttle.failed(name)
            LOG.warning("Failed dashboard sign-in for %r from %s", name, st.context.ip_address or "this machine")
            time.sleep(FAILED_SIGN_IN_DELAY_S)
            st.error("The name or the password is wrong.", icon=":material/error:")
            return
        throttle.succeeded(name)
        st.session_state[SESSION_KEY] = user.name
        st.rerun()


def sidebar_user() -> None:
    """The signed-in user's name and role, and a sign-out button (nothing for a local session)."""
    if not _required():
        return
    found = identity()
    if found is None:
        return
    with st.sidebar:
        st.caption("Signed in")
        st.write(f"**{found[0]}** · {found[1].label}")
        if st.button("Sign out", key="sign_out", icon=":material/logout:"):
            _sign_out()


def _sign_out() -> None:
    st.session_state.pop(SESSION_KEY, None)
    if _providers():
        st.logout()
    st.rerun()
