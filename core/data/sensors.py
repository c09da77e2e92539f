"""The one table of C-MAPSS columns: storage name, mnemonic, description and unit.

Every label a user sees (page, chart axis, SHAP factor, slider, API field, CSV header) comes from
here. Storage keeps NASA's column order and names (``unit``, ``cycle``, ``setting_1..3``,
``sensor_1..21``); files and API requests may use either those names or the mnemonics, in any
order and any letter case (:func:`canonical_column`).
Source: Saxena et al. 2008, as listed in ``shared/data/SENSORS.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.data.cmapss import COLUMNS


@dataclass(frozen=True)
class Column:
    """One column: its storage name, the mnemonic engineers use, what it measures and its unit ('' if none)."""

    name: str
    mnemonic: str
    description: str
    unit: str

    @property
    def label(self) -> str:
        """``'Ps30 HPC static pressure (psia)'``: mnemonic, description and unit for axes and tables."""
        suffix = f" ({self.unit})" if self.unit else ""
        return f"{self.mnemonic} {self.description}{suffix}"


TABLE: tuple[Column, ...] = (
    Column("unit", "engine", "engine id", ""),
    Column("cycle", "cycle", "operating cycle", ""),
    Column("setting_1", "altitude", "altitude", "kft"),
    Column("setting_2", "mach", "Mach number", ""),
    Column("setting_3", "tra", "throttle resolver angle", "%"),
    Column("sensor_1", "T2", "fan inlet temperature", "°R"),
    Column("sensor_2", "T24", "LPC outlet temperature", "°R"),
    Column("sensor_3", "T30", "HPC outlet temperature", "°R"),
    Column("sensor_4", "T50", "LPT outlet temperature", "°R"),
    Column("sensor_5", "P2", "fan inlet pressure", "psia"),
    Column("sensor_6", "P15", "bypass-duct pressure", "psia"),
    Column("sensor_7", "P30", "HPC outlet pressure", "psia"),
    Column("sensor_8", "Nf", "physical fan speed", "rpm"),
    Column("sensor_9", "Nc", "physical core speed", "rpm"),
    Column("sensor_10", "epr", "engine pressure ratio (P50/P2)", ""),
    Column("sensor_11", "Ps30", "HPC static pressure", "psia"),
    Column("sensor_12", "phi", "fuel flow to Ps30 ratio", "pps/psi"),
    Column("sensor_13", "NRf", "corrected fan speed", "rpm"),
    Column("sensor_14", "NRc", "corrected core speed", "rpm"),
    Column("sensor_15", "BPR", "bypass ratio", ""),
    Column("sensor_16", "farB", "burner fuel-air ratio", ""),
    Column("sensor_17", "htBleed", "bleed enthalpy", ""),
    Column("sensor_18", "Nf_dmd", "demanded fan speed", "rpm"),
    Column("sensor_19", "PCNfR_dmd", "demanded corrected fan speed", "rpm"),
    Column("sensor_20", "W31", "HPT coolant bleed", "lbm/s"),
    Column("sensor_21", "W32", "LPT coolant bleed", "lbm/s"),
)
assert [c.name for c in TABLE] == COLUMNS

_STATISTICS = {"mean": "mean", "std": "standard deviation", "slope": "slope"}
_FEATURE = re.compile(r"(?P<column>.+)_(?:(?P<last>last)|(?P<stat>mean|std|slope)(?P<window>all|[1-9][0-9]*))")
AGE_LABEL = "engine age (cycles run)"
"""Label of the engine's age: the tree feature ``cycle`` and the explanation input ``age``."""

BY_NAME: dict[str, Column] = {c.name: c for c in TABLE}
_ALIASES: dict[str, str] = {
    **{c.name.lower(): c.name for c in TABLE},
    **{c.mnemonic.lower(): c.name for c in TABLE},
}


def canonical_column(header: str) -> str | None:
    """The storage name for a header written as a storage name or a mnemonic (any case), or None."""
    return _ALIASES.get(header.strip().lower())


def mnemonic(name: str) -> str:
    """The mnemonic of a storage column (``sensor_11`` -> ``Ps30``); unknown names come back unchanged."""
    column = BY_NAME.get(name)
    return column.mnemonic if column else name


def label(name: str) -> str:
    """The full label of a storage column (``sensor_11`` -> ``Ps30 HPC static pressure (psia)``)."""
    column = BY_NAME.get(name)
    return column.label if column else name


def display_name(name: str) -> str:
    """How messages name a storage column: ``T30 (sensor_3)``, ``altitude (setting_1)``, ``engine``, ``cycle``."""
    if name == "unit":
        return "engine"
    short = mnemonic(name)
    return name if short == name else f"{short} ({name})"


def unit_of(name: str) -> str:
    """The physical unit of a storage column, '' when dimensionless or unknown."""
    column = BY_NAME.get(name)
    return column.unit if column else ""


def feature_label(name: str) -> str:
    """The label of a model feature or input, built from the column table.

    ``sensor_11_slope30`` -> ``Ps30 HPC static pressure (psia), 30-cycle slope``; ``_mean10`` /
    ``_std5`` give a 10-cycle mean / 5-cycle standard deviation, ``_slopeall`` the slope over the whole
    history, ``_last`` the last reading; a plain column gets :func:`label`; ``cycle`` and ``age`` are the
    engine's age. Anything else comes back unchanged.
    """
    if name in ("cycle", "age"):
        return AGE_LABEL
    if name in BY_NAME:
        return label(name)
    match = _FEATURE.fullmatch(name)
    if match is None or match["column"] not in BY_NAME:
        return name
    base = label(match["column"])
    if match["last"]:
        return f"{base}, last reading"
    statistic = _STATISTICS[match["stat"]]
    if match["window"] == "all":
        return f"{base}, {statistic} over the whole history"
    return f"{base}, {match['window']}-cycle {statistic}"
