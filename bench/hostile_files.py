"""Hostile input files for the ingest benchmark and tests, built at any scale from a few real C-MAPSS lines.

Each builder writes one file (or link) under a folder and returns its path. The zip bomb holds valid
members (increasing cycles, distinct engines, constant readings, so they compress about 400 to 1); the
other files are small.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from core.data.cmapss import COLUMNS

_LINE_BYTES = 1 << 20


def compressible_csv_rows(rows: int, engine: str, values: list[float]) -> bytes:
    """A headered CSV of one engine's `rows` cycles with the same 24 setting and sensor values each cycle."""
    tail = ",".join(f"{v:g}" for v in values)
    body = "".join(f"{engine},{cycle},{tail}\n" for cycle in range(1, rows + 1))
    return (",".join(COLUMNS) + "\n" + body).encode()


def zip_bomb(folder: Path, members: int, member_bytes: int, values: list[float]) -> Path:
    """A zip of `members` valid CSV members of about `member_bytes` bytes each, written a block at a time."""
    path = folder / "fleet_bomb.zip"
    line = len(compressible_csv_rows(1, "e0", values)) - len(",".join(COLUMNS)) - 1
    per_engine = max(1, min(900_000, _LINE_BYTES // line, member_bytes // line + 1))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for m in range(members):
            with archive.open(f"fleet_{m}.csv", "w", force_zip64=True) as out:
                written, engine = 0, 0
                while written < member_bytes:
                    block = compressible_csv_rows(per_engine, f"m{m}e{engine}", values)
                    block = block if written == 0 else block.split(b"\n", 1)[1]
                    out.write(block)
                    written += len(block)
                    engine += 1
    return path


def deep_zip(folder: Path, depth: int, inner_name: str, inner: bytes) -> Path:
    """`inner` wrapped in `depth` zips, each holding the next as its only member."""
    data, name = inner, inner_name
    for level in range(depth):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(name, data)
        data, name = buffer.getvalue(), f"level_{level}.zip"
    path = folder / "deep.zip"
    path.write_bytes(data)
    return path


def lying_zip(folder: Path, actual_bytes: int, declared_bytes: int) -> Path:
    """A zip whose one member (train_FD001.txt) declares `declared_bytes` but inflates to `actual_bytes`."""
    path = folder / "lying.zip"
    block = b"1 " * (_LINE_BYTES // 2)
    with (zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
          archive.open("train_FD001.txt", "w", force_zip64=False) as out):
        for start in range(0, actual_bytes, len(block)):
            out.write(block[: actual_bytes - start])
    with path.open("r+b") as handle:
        data = handle.read(64)
        handle.seek(data.find(b"PK\x03\x04") + 22)
        handle.write(declared_bytes.to_bytes(4, "little"))
        handle.seek(0, io.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 4096))
        tail = handle.read()
        central = size - len(tail) + tail.rfind(b"PK\x01\x02")
        handle.seek(central + 24)
        handle.write(declared_bytes.to_bytes(4, "little"))
    return path


def many_entries_zip(folder: Path, entries: int) -> Path:
    """A zip of `entries` tiny members."""
    path = folder / "many.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(entries):
            archive.writestr(f"fleet_{i}.csv", b"")
    return path


def not_a_zip(folder: Path) -> Path:
    """Text named .zip."""
    path = folder / "fleet_archive.zip"
    path.write_bytes(b"this is not a zip archive\n" * 100)
    return path


def truncated_gzip(folder: Path, text: bytes) -> Path:
    """The first half of `text` gzipped."""
    packed = gzip.compress(text)
    path = folder / "train_FD001.txt.gz"
    path.write_bytes(packed[: len(packed) // 2])
    return path


def readings_frame(lines: list[str]) -> pd.DataFrame:
    """Real NASA lines as a frame with :data:`COLUMNS` (engine and cycle as whole numbers)."""
    frame = pd.DataFrame([[float(v) for v in line.split()] for line in lines], columns=COLUMNS)
    return frame.astype({"unit": int, "cycle": int})


def boolean_parquet(folder: Path, lines: list[str]) -> Path:
    """Readings whose sensor_5 (P2, constant in FD001) is stored as true/false."""
    frame = readings_frame(lines)
    frame["sensor_5"] = frame["sensor_5"] > 0
    path = folder / "fleet_bool.parquet"
    frame.to_parquet(path)
    return path


def datetime_cycle_parquet(folder: Path, lines: list[str]) -> Path:
    """Readings whose cycle column holds timestamps (one day per cycle)."""
    frame = readings_frame(lines)
    start = datetime(2024, 1, 1)
    frame["cycle"] = [start + timedelta(days=int(c)) for c in frame["cycle"]]
    path = folder / "fleet_dates.parquet"
    frame.to_parquet(path)
    return path


def bom_csv(folder: Path, lines: list[str]) -> Path:
    """Excel's "CSV UTF-8": a byte-order mark, then the header and the readings."""
    path = folder / "fleet_excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + readings_frame(lines).to_csv(index=False).encode())
    return path
