"""Roles and the permission of each action.

Viewers read (pages, predictions, alerts); operators also load data, append readings and record outcomes;
admins also retrain, promote and roll back models, delete datasets, run the production simulation and
see the API's admin token. Every check ends in :func:`require`, which refuses with one sentence.
"""

from __future__ import annotations

from enum import IntEnum

from core.errors import UserError


class Role(IntEnum):
    """A user's role; a higher role may do everything a lower one may."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        """The role's name as users write it: viewer, operator, admin."""
        return self.name.lower()


ROLE_NAMES = tuple(role.label for role in Role)

ACTIONS: dict[str, tuple[Role, str]] = {
    "read": (Role.VIEWER, "read the fleet, its predictions and alerts"),
    "load": (Role.OPERATOR, "load data"),
    "append_readings": (Role.OPERATOR, "append readings"),
    "record_outcome": (Role.OPERATOR, "record outcomes"),
    "delete": (Role.ADMIN, "delete datasets"),
    "retrain": (Role.ADMIN, "retrain models"),
    "promote": (Role.ADMIN, "promote or roll back models"),
    "cancel_job": (Role.ADMIN, "cancel jobs"),
    "simulate": (Role.ADMIN, "run the production simulation"),
    "api_token": (Role.ADMIN, "see the API's admin token"),
}
"""Each action: (the lowest role allowed, what it is in words)."""


class AccessDenied(UserError):
    """The user's role is too low for the action (HTTP 403)."""


def parse_role(text: str) -> Role:
    """The role named `text` (viewer, operator or admin); UserError otherwise."""
    try:
        return Role[text.strip().upper()]
    except KeyError:
        raise UserError(f"'{text}' is not a role; choose one of {', '.join(ROLE_NAMES)}.") from None


def _action(action: str) -> tuple[Role, str]:
    if action not in ACTIONS:
        raise KeyError(f"unknown action {action!r}")
    return ACTIONS[action]


def minimum_role(action: str) -> Role:
    """The lowest role allowed to do `action`."""
    return _action(action)[0]


def allowed(role: Role | None, action: str) -> bool:
    """Whether `role` (None: nobody signed in) may do `action`."""
    return role is not None and role >= minimum_role(action)


def refusal(role: Role | None, action: str, who: str | None = None) -> str:
    """The sentence that refuses `action` to `role`."""
    needed, words = _action(action)
    if role is None:
        return f"Sign in to {words}."
    subject = f"'{who}' is" if who else "you are"
    return f"Only the {needed.label} role or higher may {words}; {subject} {_article(role)} {role.label}."


def _article(role: Role) -> str:
    return "an" if role.label[0] in "aeiou" else "a"


def require(role: Role | None, action: str, who: str | None = None) -> None:
    """Raise :class:`AccessDenied` with a sentence unless `role` may do `action`."""
    if not allowed(role, action):
        raise AccessDenied(refusal(role, action, who))
