"""When the dashboard asks for a sign-in: bound to a non-loopback address, reached from another machine, or
forced with ``PM_AUTH=required``.

The server binds 127.0.0.1 by default (``.streamlit/config.toml``); a local user of the machine is then
trusted as an admin, as the CLI is. Anything else signs in and gets the role of its user.
"""

from __future__ import annotations

import ipaddress
import os

from core.errors import UserError

ENV_AUTH = "PM_AUTH"
MODES = ("auto", "required")


def auth_mode() -> str:
    """``PM_AUTH``: ``auto`` (default: sign-in when not local) or ``required`` (always)."""
    mode = os.environ.get(ENV_AUTH, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise UserError(f"{ENV_AUTH} is '{mode}'; use one of {', '.join(MODES)}.")
    return mode


def is_loopback(host: str | None) -> bool:
    """Whether `host` is a loopback name or address (an empty or missing bind address means every interface)."""
    if not host:
        return False
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool((mapped or address).is_loopback)


def sign_in_required(bind_address: str | None, client_ip: str | None) -> bool:
    """Whether a session must sign in: ``PM_AUTH=required``, a non-loopback bind address, or a client that is
    not on this machine (`client_ip` None means a local client)."""
    if auth_mode() == "required" or not is_loopback(bind_address):
        return True
    return client_ip is not None and not is_loopback(client_ip)
