"""Facts about the NASA C-MAPSS data: column names, subsets, targets, and file-name conventions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

SETTINGS: list[str] = [f"setting_{i}" for i in range(1, 4)]
SENSORS: list[str] = [f"sensor_{i}" for i in range(1, 22)]
COLUMNS: list[str] = ["unit", "cycle", *SETTINGS, *SENSORS]
SUBSETS: list[str] = ["FD001", "FD002", "FD003", "FD004"]

RUL_CAP = 125
"""Piecewise-linear RUL target: true RUL is capped at this many cycles."""
FAIL_HORIZON = 30
"""The failure label is 'fails within this many cycles'."""

FileRole = Literal["history", "evaluation", "fleet", "truth"]

_NAME_RE = re.compile(r"(?i)^(train|test|rul)_(FD00[1-4])$")


@dataclass(frozen=True)
class FileName:
    """What a file's name says about its content.

    `name` is the dataset name (e.g. ``train_FD001``); `role` is the dataset role the name implies
    (``train_*`` history, ``test_*`` evaluation, anything else fleet), or ``truth`` for the
    ``RUL_FD00x`` files, whose `target` names the test dataset they belong to.
    """

    name: str
    subset: str
    role: FileRole
    target: str | None = None


def parse_file_name(filename: str) -> FileName:
    """Derive dataset name, subset and role from a file name like ``train_FD001.txt.gz``.

    Names that do not follow NASA's convention become an in-service dataset: the stem is the
    name, the subset is ``user`` and the role is ``fleet``, so nothing becomes training data by accident.
    """
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base
    for suffix in (".gz", ".txt", ".csv", ".parquet"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    match = _NAME_RE.match(stem)
    if not match:
        return FileName(name=stem, subset="user", role="fleet")
    kind, subset = match.group(1).lower(), match.group(2).upper()
    if kind == "rul":
        return FileName(name=f"RUL_{subset}", subset=subset, role="truth", target=f"test_{subset}")
    return FileName(name=f"{kind}_{subset}", subset=subset, role="history" if kind == "train" else "evaluation")
