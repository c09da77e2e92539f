"""A synthetic in-service fleet for benchmarks and tests, resampled from NASA's C-MAPSS training engines.

Each synthetic engine copies one training engine of any of the four subsets (so the fleet mixes the
single- and six-regime subsets and both fault modes), chosen at random, and perturbs it:

- its life is stretched by a factor drawn from :data:`STRETCH` (cycle ``c`` of the synthetic engine
  reads the source engine's reading at ``floor((c - 1) / stretch)``), so lives and degradation rates vary;
- it is truncated at a random point of that life (a fraction from :data:`LIFE_SHARE`): an engine in
  service, not yet failed;
- every sensor gets a per-engine offset and per-reading noise, each a fraction (:data:`OFFSET_SD`,
  :data:`NOISE_SD`) of that sensor's spread within its operating regime in the source subset (so
  constant sensors stay constant and regime structure is kept); the operating settings are the source's.

Engine ids are text (``ESN-000001``...), columns are named by their mnemonics (``engine``, ``cycle``,
``altitude``, ``T24``...), which ingest accepts. Everything is vectorised numpy; the same seed gives the
same fleet, bit for bit.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from core import config
from core.data import sensors
from core.data.cmapss import SENSORS, SETTINGS, SUBSETS
from core.data.features import SETTING_GRID
from core.data.parsing import parse_readings
from core.errors import UserError

STRETCH = (0.9, 1.5)
"""Range of the life-stretch factor (uniform)."""
LIFE_SHARE = (0.35, 0.97)
"""Range of the share of its (stretched) life an engine has run when the fleet is observed (uniform)."""
OFFSET_SD = 0.2
NOISE_SD = 0.1
"""Per-engine offset and per-reading noise, in units of a sensor's within-regime standard deviation."""
MIN_CYCLES = 5
"""No synthetic engine has fewer readings than this (or than its whole stretched life, if shorter)."""
DECIMALS = 4
"""Sensor values are rounded to this many decimals (C-MAPSS itself has at most four)."""
FORMATS = ("csv", "parquet")


@dataclass(frozen=True)
class Source:
    """The training engines of all four subsets, stacked: readings and where each engine's rows lie."""

    values: np.ndarray
    """(rows, 24) settings and sensors in :data:`SETTINGS` + :data:`SENSORS` order."""
    spread: np.ndarray
    """(rows, 21) within-regime standard deviation of each sensor at each row (0 for constants)."""
    start: np.ndarray
    """(engines,) first row of each engine."""
    life: np.ndarray
    """(engines,) readings of each engine (its life in cycles)."""
    subset: np.ndarray
    """(engines,) index into :data:`SUBSETS` of each engine."""


def _file(folder: Path, name: str) -> Path:
    packed = folder / f"{name}.txt.gz"
    if packed.is_file():
        return packed
    plain = folder / f"{name}.txt"
    if plain.is_file():
        return plain
    raise UserError(f"{name} is not in {folder}: fetch the C-MAPSS files first ('python -m core fetch') or set "
                    "PM_DATA_DIR.")


def data_folder() -> Path:
    """Where the C-MAPSS files are: ``PM_DATA_DIR``, else ``<repo>/../shared/data/cmapss``."""
    return config.data_dir() or (config.REPO_ROOT.parent / "shared" / "data" / "cmapss").resolve()


def _regime_spread(values: np.ndarray) -> np.ndarray:
    """Per row, each sensor's standard deviation within the row's setting-grid cell of this subset."""
    cells = np.round(values[:, :3] / np.asarray(SETTING_GRID)).astype(np.int64)
    frame = pd.DataFrame(values[:, 3:])
    keys = [pd.Series(cells[:, i]) for i in range(3)]
    return frame.groupby(keys).transform("std").fillna(0.0).to_numpy()


def load_source(folder: Path | None = None) -> Source:
    """The training engines of FD001..FD004 from `folder` (default :func:`data_folder`)."""
    folder = folder or data_folder()
    values, spread, lives, subsets = [], [], [], []
    for k, subset in enumerate(SUBSETS):
        path = _file(folder, f"train_{subset}")
        data = path.read_bytes()
        arrays = parse_readings(gzip.decompress(data) if path.suffix == ".gz" else data, str(path))
        order = np.lexsort((arrays["cycle"], arrays["unit"]))
        block = np.column_stack([arrays[c][order] for c in (*SETTINGS, *SENSORS)])
        values.append(block)
        spread.append(_regime_spread(block))
        _, counts = np.unique(arrays["unit"][order], return_counts=True)
        lives.append(counts)
        subsets.append(np.full(len(counts), k))
    life = np.concatenate(lives)
    return Source(values=np.vstack(values), spread=np.vstack(spread),
                  start=np.concatenate([[0], np.cumsum(life)[:-1]]), life=life, subset=np.concatenate(subsets))


def engine_ids(count: int) -> np.ndarray:
    """``ESN-000001`` .. ``ESN-<count>``, as text."""
    return np.char.add("ESN-", np.char.zfill(np.arange(1, count + 1).astype(str), 6))


@dataclass(frozen=True)
class Plan:
    """Per synthetic engine: its source engine, life-stretch factor, stretched life and readings observed."""

    source: np.ndarray
    stretch: np.ndarray
    life: np.ndarray
    length: np.ndarray

    def subsets(self, source: Source) -> np.ndarray:
        """The C-MAPSS subset (``FD001``..) each engine was drawn from."""
        return np.asarray(SUBSETS)[source.subset[self.source]]


def plan(engines: int, rng: np.random.Generator, source: Source) -> Plan:
    """Draw each engine's source, stretch and truncation point (the first draws of a fleet's random stream)."""
    if engines < 1:
        raise UserError(f"A fleet needs at least one engine, not {engines}.")
    pick = rng.integers(0, len(source.life), engines)
    stretch = rng.uniform(*STRETCH, engines)
    life = np.floor(source.life[pick] * stretch).astype(np.int64)
    share = rng.uniform(*LIFE_SHARE, engines)
    length = np.minimum(life, np.maximum(MIN_CYCLES, np.floor(life * share).astype(np.int64)))
    return Plan(source=pick, stretch=stretch, life=life, length=length)


def generate(engines: int, seed: int = 0, source: Source | None = None) -> pa.Table:
    """A fleet of `engines` in-service engines (see the module doc), one row per reading, by engine and cycle.

    Columns: ``engine`` (text id, dictionary-encoded), ``cycle``, then the settings and sensors by mnemonic.
    """
    source = source or load_source()
    rng = np.random.default_rng(seed)
    drawn = plan(engines, rng, source)
    owner = np.repeat(np.arange(engines, dtype=np.int32), drawn.length)
    first = np.concatenate([[0], np.cumsum(drawn.length)[:-1]])
    cycle = np.arange(len(owner)) - first[owner] + 1
    step = np.minimum(np.floor((cycle - 1) / drawn.stretch[owner]).astype(np.int64),
                      source.life[drawn.source][owner] - 1)
    rows = source.start[drawn.source][owner] + step
    offset = rng.standard_normal((len(SENSORS), engines))
    columns = {"engine": pa.DictionaryArray.from_arrays(owner, pa.array(engine_ids(engines))),
               "cycle": pa.array(cycle)}
    for name in SETTINGS:
        columns[sensors.mnemonic(name)] = pa.array(source.values[rows, SETTINGS.index(name)])
    for i, name in enumerate(SENSORS):
        noise = rng.standard_normal(len(rows), dtype=np.float32)
        noise *= NOISE_SD
        noise += (OFFSET_SD * offset[i]).astype(np.float32)[owner]
        value = source.values[rows, 3 + i] + source.spread[rows, i] * noise
        columns[sensors.mnemonic(name)] = pa.array(np.round(np.clip(value, 0.0, None), DECIMALS))
    return pa.table(columns)


def write(table: pa.Table, out: Path, fmt: str) -> int:
    """Write the fleet to `out` as CSV (with a header) or Parquet; returns the file's size in bytes."""
    if fmt not in FORMATS:
        raise UserError(f"The format must be csv or parquet, not {fmt}.")
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        pa_csv.write_csv(table, out)
    else:
        pq.write_table(table, out, compression="zstd")
    return out.stat().st_size


def format_for(out: Path, fmt: str | None) -> str:
    """The format asked for, else the one `out`'s suffix names, else Parquet."""
    if fmt is not None:
        return fmt
    suffix = out.suffix.lower().lstrip(".")
    return suffix if suffix in FORMATS else "parquet"

