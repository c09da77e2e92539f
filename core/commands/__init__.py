"""CLI subcommands. Each module here defines:

- ``HELP``: one line for ``python -m core --help``;
- ``add_arguments(parser)``: its arguments;
- ``run(args) -> dict``: does the work and returns a JSON-serialisable result,
  raising :class:`core.errors.UserError` with one sentence on failure;
- optionally ``render(result) -> str``: the human-readable output (default: indented JSON).

Modules are discovered by name, so adding a subcommand means adding a module. Heavy
libraries (torch, mlflow, shap) are imported inside ``run`` so ``--help`` and light commands
start fast.
"""
