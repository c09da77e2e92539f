"""Sign-in and roles in the dashboard: the gate before navigation, the sign-in page, the sidebar's user, and
the checks pages make before showing and before doing an action (:mod:`core.access`).

A session bound to loopback and reached from this machine is a local admin and never signs in; otherwise
(:func:`core.access.policy.sign_in_required`) it signs in with Streamlit's ``st.login`` when an identity
provider is configured in ``secrets.toml`` (``[auth]``), else with a name and password from the users file
(:func:`core.access.users.sign_in`, throttled per name and per client address).
The role is read from the users file on every rerun and again when an action runs (:func:`permit`), so a
demoted or removed user loses the action even on a page drawn before the change. A password sign-in is kept
in the session state as a :class:`SignedIn` object, which no widget value sent by a browser can be, and
:func:`guard_widget_states` drops widget states whose id no widget of the dashboard can have.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import streamlit as st
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.runtime.state.common import is_element_id
from streamlit.runtime.state.session_state import WStates

from core.access import policy, roles, users
from core.access.roles import Role
from core.errors import UserError

LOG = logging.getLogger("core.access")
SESSION_KEY = "pm_signed_in"
"""The session-state key of this session's :class:`SignedIn` (password sign-in)."""
CREATE_ADMIN = "python -m core users add NAME --role admin"


@dataclass(frozen=True)
class SignedIn:
    """Who signed in with a password in this session (set by the sign-in form only)."""

    name: str


def guard_widget_states() -> None:
    """Make every session drop a widget state whose id is not a widget id (Streamlit's ``$$ID-`` ids) before
    the script runs, with a warning in the server log.

    A browser sends only the ids of widgets the dashboard drew; a crafted ``rerun_script`` message may send any
    id (say ``pm_signed_in``), which Streamlit 1.67 keeps without a deserializer and then fails on with a
    KeyError at the next widget. Idempotent: the patch of ``WStates.set_widget_from_proto`` is made once.
    """
    original = WStates.set_widget_from_proto
    if getattr(original, "guards_widget_ids", False):
        return

    def set_widget_from_proto(self: WStates, widget_state: WidgetState) -> None:
        if not is_element_id(widget_state.id):
            LOG.warning("Ignored a widget state that no widget of the dashboard sends: id=%.100r", widget_state.id)
            return
        original(self, widget_state)

    set_widget_from_proto.guards_widget_ids = True  # type: ignore[attr-defined]
    WStates.set_widget_from_proto = set_widget_from_proto  # type: ignore[method-assign]


def _client_address() -> str | None:
    """The client's address (uvicorn takes it from X-Forwarded-For when a proxy on this machine sends one);
    None for a client on this machine (and under AppTest, where it is not a str)."""
    client = st.context.ip_address
    return client if isinstance(client, str) else None


def _required() -> bool:
    return policy.sign_in_required(st.get_option("server.address"), _client_address())


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
    if _providers():
        name = _sso_name()
    else:
        signed_in = st.session_state.get(SESSION_KEY)
        name = signed_in.name if isinstance(signed_in, SignedIn) else None
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


def gate(pages: Sequence[st.Page]) -> bool:
    """Before navigation: True when this session may see the dashboard; otherwise draw only the sign-in page.

    The dashboard's `pages` are registered (hidden, none run), so a deep link such as
    ``/engine?dataset=test_FD001&engine=1`` is a known page: its path and query parameters stay in the address
    while the sign-in is drawn, and the rerun after the sign-in runs that page.
    """
    try:
        if identity() is not None:
            return True
        problem = None
    except UserError as err:
        problem = str(err)
    st.navigation(list(pages), position="hidden")
    if problem is not None:
        st.error(problem, icon=":material/error:")
    else:
        sign_in_page()
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
        st.error("You are signed in as the account below, which has no role on this dashboard; an admin grants "
                 "one with the command after it.", icon=":material/block:")
        st.text(name)
        st.code(f"python -m core users add {shlex.quote(name)} --role viewer --sso", language="bash")
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
        try:
            user = users.sign_in(name.strip(), secret, _client_address())
        except UserError as err:
            st.error(str(err), icon=":material/block:")
            return
        st.session_state[SESSION_KEY] = SignedIn(user.name)
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
        st.text(f"{found[0]} · {found[1].label}")
        if st.button("Sign out", key="sign_out", icon=":material/logout:"):
            _sign_out()


def _sign_out() -> None:
    st.session_state.pop(SESSION_KEY, None)
    if _providers():
        st.logout()
    st.rerun()
