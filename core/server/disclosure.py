"""What the API tells a caller without a credential: with sign-in required, nothing about the fleet.

The API follows the dashboard's rule (:func:`core.access.policy.sign_in_required`): sign-in is required with
``PM_AUTH=required``, on a server reached through a non-loopback address, and for a client on another machine.
The address a request arrived on stands in for the bind address (a server bound to every interface and reached
through loopback from this machine is a local one, as the CLI is), and a request carrying a proxy's forwarding
header counts as coming from another machine.
"""

from __future__ import annotations

from starlette.types import Scope

from core.access import policy
from core.server import auth

FORWARDING_HEADERS = (b"forwarded", b"x-forwarded-for", b"x-real-ip")


def sign_in_required(scope: Scope) -> bool:
    """Whether the request in `scope` comes from where the dashboard would ask for a sign-in."""
    server = scope.get("server") or (None, None)
    client = scope.get("client") or (None, None)
    if any(name in FORWARDING_HEADERS for name, _value in scope.get("headers", [])):
        return True
    return policy.sign_in_required(server[0], client[0])


def may_see_fleet(scope: Scope, authorization: str | None, admin_token: str) -> bool:
    """Whether an answer may name datasets and count their engines: no sign-in is required, or the request
    carries a valid token (the admin token or any user's)."""
    return not sign_in_required(scope) or auth.caller(authorization, admin_token) is not None
