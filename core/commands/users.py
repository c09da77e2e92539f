"""``python -m core users``: the dashboard's users, their roles and their API tokens (``$PM_HOME/users.json``).

Passwords come from a prompt (asked twice, never echoed) or, with ``--password-stdin``, from the first line of
standard input; they are never taken as an argument, which other users of the machine could read.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from core.access import roles, users
from core.data import names
from core.errors import UserError

HELP = "manage the dashboard's users: add, list, remove, set-role, password, token, revoke-tokens"


def _sub(actions: Any, name: str, help_text: str, with_name: bool = True) -> argparse.ArgumentParser:
    parser = actions.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the result as JSON")
    if with_name:
        parser.add_argument("name", metavar="NAME", type=names.argument(names.USER),
                            help="the user's name (for sso users: their e-mail)")
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``users`` actions and their arguments."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = _sub(actions, "add", "add a user with a role; the password is asked for (or read with --password-stdin)")
    add.add_argument("--role", required=True, choices=roles.ROLE_NAMES, help="viewer reads; operator also loads "
                     "data and records outcomes; admin also retrains, promotes, rolls back and deletes")
    how = add.add_mutually_exclusive_group()
    how.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    how.add_argument("--sso", action="store_true", help="no password: the user signs in through the identity "
                     "provider configured for st.login (NAME is the e-mail it gives)")
    _sub(actions, "list", "list the users with their roles", with_name=False)
    _sub(actions, "remove", "remove a user and their API tokens")
    set_role = _sub(actions, "set-role", "give a user another role")
    set_role.add_argument("role", choices=roles.ROLE_NAMES, help="the new role")
    password = _sub(actions, "password", "set a user's password")
    password.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    _sub(actions, "token", "issue an API token for a user (shown once; the API gives it the user's role)")
    _sub(actions, "revoke-tokens", "revoke every API token of a user")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UserError("No terminal to ask for the password: pipe it in with --password-stdin.")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise UserError("The two passwords differ; nothing was changed.")
    return first


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Do the action; the result names the user (and holds a new token's secret, shown once)."""
    if args.action == "list":
        return {"users": [u.summary() for u in users.load_users().values()], "file": str(users.users_path())}
    if args.action == "add":
        secret = None if args.sso else _password(args.password_stdin)
        user = users.add_user(args.name, roles.parse_role(args.role), secret, sso=args.sso)
    elif args.action == "remove":
        user = users.remove_user(args.name)
    elif args.action == "set-role":
        user = users.set_role(args.name, roles.parse_role(args.role))
    elif args.action == "password":
        user = users.set_password(args.name, _password(args.password_stdin))
    elif args.action == "token":
        token, record = users.issue_token(args.name)
        holder = users.find(args.name)
        if holder is None:  # removed by another process between the two calls
            raise UserError(f"User '{args.name}' was removed while the token was being issued; the token is void.")
        return {"action": "token", "user": args.name, "role": holder.role.label, "token": token,
                "token_id": record.id}
    else:
        return {"action": "revoke-tokens", "user": args.name, "revoked": users.revoke_tokens(args.name)}
    return {"action": args.action, "user": user.name, "role": user.role.label}


def render(result: dict[str, Any]) -> str:
    """One sentence, or a table for ``list``."""
    if "users" in result:
        if not result["users"]:
            return f"No users yet ({result['file']}); add an admin with 'python -m core users add NAME --role admin'."
        lines = [f"{'name':<32} {'role':<9} {'sign-in':<9} {'tokens':>6}  created"]
        lines += [f"{u['name']:<32} {u['role']:<9} {u['sign_in']:<9} {u['api_tokens']:>6}  {u['created']}"
                  for u in result["users"]]
        return "\n".join(lines)
    action = result["action"]
    if action == "token":
        return (f"API token for {result['user']} ({result['role']}), shown only now; send it as "
                f"'Authorization: Bearer <token>':\n{result['token']}")
    if action == "revoke-tokens":
        return f"Revoked {result['revoked']} API token(s) of {result['user']}."
    verb = {"add": "Added", "remove": "Removed", "set-role": "Changed", "password": "Set the password of"}[action]
    return f"{verb} {result['user']} ({result['role']})."
