"""Benchmarks: each module has ``add_arguments(parser)``, ``run(args) -> dict`` and ``render(result) -> str``;
``python -m core bench NAME [--json]`` runs one."""
