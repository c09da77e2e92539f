"""Benchmarks: each module has ``add_arguments(parser)``, ``run(args) -> dict`` and prints a table as a script."""
