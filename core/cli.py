"""``python -m core <command>``: the command-line interface, sharing the code the pages use.

Every subcommand accepts ``--json``; success exits 0, a failure exits 1 with one
sentence on stderr and no traceback. Text output escapes control and format characters in every string it
shows (ESC is printed as ``\\x1b``; see :func:`core.data.names.escape`), so no stored or typed name can drive
the terminal or break a table; JSON output is escaped by :func:`json.dumps`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from types import ModuleType
from typing import Any

import core.commands
from core.data.names import escape
from core.errors import UserError


def _command_names() -> list[str]:
    return sorted(info.name for info in pkgutil.iter_modules(core.commands.__path__) if not info.name.startswith("_"))


def _commands(argv: list[str]) -> dict[str, ModuleType]:
    """Import only the command named in ``argv`` (some pull in torch); all of them for the overview."""
    names = _command_names()
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    wanted = [chosen] if chosen in names else names
    return {name: importlib.import_module(f"core.commands.{name}") for name in wanted}


def build_parser(commands: dict[str, ModuleType]) -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command module."""
    parser = argparse.ArgumentParser(prog="python -m core", description="Turbofan fleet RUL toolkit.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in commands.items():
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        cmd.add_argument("--json", action="store_true", help="print the result as JSON")
        module.add_arguments(cmd)
    return parser


def _default_render(result: dict) -> str:
    return json.dumps(result, indent=2, default=str)


def _escaped(value: Any) -> Any:
    """`value` with every string in it (keys included) passed through :func:`escape`, for text output."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_escaped(v) for v in value)
    return value


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the command, print its result; return the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    commands = _commands(argv)
    args = build_parser(commands).parse_args(argv)
    module = commands[args.command]
    try:
        result = module.run(args)
    except UserError as err:
        print(f"error: {escape(str(err))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print(getattr(module, "render", _default_render)(_escaped(result)))
    return 0
