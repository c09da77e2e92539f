"""The synthetic fleet: deterministic per seed, text engine ids, all four subsets, truncated lives, and a file
that loads through ingest as an in-service (fleet) dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from core.commands import synth as synth_command
from core.data import ingest, queries, store, synth


@pytest.fixture(scope="module")
def source(cmapss_dir: Path) -> synth.Source:
    return synth.load_source(cmapss_dir)


def _write(tmp_path: Path, name: str, seed: int, cmapss_dir: Path, fmt: str = "csv") -> Path:
    out = tmp_path / f"{name}.{fmt}"
    synth_command.run(argparse.Namespace(engines=50, seed=seed, out=out, format=None, data=cmapss_dir))
    return out


def test_same_seed_same_bytes_and_another_seed_differs(tmp_path: Path, cmapss_dir: Path) -> None:
    first = _write(tmp_path, "a", 5, cmapss_dir).read_bytes()
    assert first == _write(tmp_path, "b", 5, cmapss_dir).read_bytes()
    assert first != _write(tmp_path, "c", 6, cmapss_dir).read_bytes()
    parquet = _write(tmp_path, "d", 5, cmapss_dir, "parquet").read_bytes()
    assert parquet.startswith(b"PAR1") and parquet == _write(tmp_path, "e", 5, cmapss_dir, "parquet").read_bytes()


def test_engines_have_text_ids_and_cycles_from_one(source: synth.Source) -> None:
    frame = synth.generate(50, 1, source).to_pandas()
    ids = frame["engine"].astype(str)
    assert ids.nunique() == 50 and ids.str.fullmatch(r"ESN-\d{6}").all()
    for _, cycles in frame.groupby("engine", observed=True)["cycle"]:
        assert (cycles.to_numpy() == np.arange(1, len(cycles) + 1)).all()
    assert list(frame.columns[:5]) == ["engine", "cycle", "altitude", "mach", "tra"]


def test_fleet_mixes_all_four_subsets_and_stops_before_failure(source: synth.Source) -> None:
    drawn = synth.plan(50, np.random.default_rng(1), source)
    assert set(drawn.subsets(source)) == {"FD001", "FD002", "FD003", "FD004"}
    assert (drawn.length < drawn.life).all(), "every engine is still in service"
    assert len(np.unique(drawn.length)) > 25, "engines are cut at different points of life"
    frame = synth.generate(50, 1, source).to_pandas()
    assert (frame.groupby("engine", observed=True).size().to_numpy() == drawn.length).all()


def test_readings_are_perturbed_copies_of_their_source(source: synth.Source) -> None:
    drawn = synth.plan(1, np.random.default_rng(2), source)
    frame = synth.generate(1, 2, source).to_pandas()
    start = source.start[drawn.source[0]]
    original = source.values[start]
    first = frame.iloc[0]
    assert first["altitude"] == original[0] and first["tra"] == original[2], "operating settings are kept"
    spread = source.spread[start]
    moved = np.abs(first.iloc[5:].to_numpy(dtype=float) - original[3:])
    assert (moved <= 2 * spread + 1e-4).all() and (moved > 0).any()


def test_the_file_loads_through_ingest_as_a_fleet(tmp_path: Path, cmapss_dir: Path, pm_home: Path) -> None:
    path = _write(tmp_path, "synthetic_fleet", 3, cmapss_dir)
    summary = ingest.load([path])
    assert summary.datasets_added == ["synthetic_fleet"]
    with store.connect(read_only=True) as con:
        found = queries.get_dataset(con, "synthetic_fleet")
        engines = queries.engines(con, "synthetic_fleet")
    assert found["role"] == "fleet" and found["engines"] == 50
    assert engines["engine"].str.startswith("ESN-").all()
