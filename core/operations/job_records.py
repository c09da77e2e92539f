"""Job records: the JSON state of each background job under ``config.paths().jobs``.

- ``<id>.json``: the record, always replaced atomically (temp file + ``os.replace``), so a reader never
  sees half a record;
- ``<id>.lock``: taken (``fcntl.flock``) around every read-modify-write of the record, by the parent
  side and by the job's reporter alike, each updating only its fields;
- ``<id>.log``: the job's stdout and stderr.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import config
from core.errors import UserError

FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
ACTIVE_STATES = frozenset({"queued", "running"})
RECORD_ENV = "PM_JOB_RECORD"
LOG_TAIL_LINES = 50
MAX_LOSS_ENTRIES = 2000
QUEUED_TIMEOUT_S = 30.0
CANCEL_EXIT_CODE = 143

_ID_RE = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
_MODULE_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_KIND_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def parse_time(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


@dataclass
class JobRecord:
    """Everything known about one job, as stored in its JSON record.

    ``state`` is one of :data:`ACTIVE_STATES` (queued, running) or :data:`FINAL_STATES` (succeeded, failed,
    cancelled). ``progress`` (0..1), ``step``/``total`` and
    ``eta_s`` refer to the current ``phase``. Each ``losses`` entry is
    ``{"phase", "step", **losses}`` as passed to :meth:`Reporter.progress`.
    ``error`` is one sentence when the job failed or was cancelled. ``foreground`` marks a record held by a
    process that was not started as a job (a foreground ``python -m core train``): it has no process group
    of its own, so a cancel signals that process alone.
    """

    id: str
    kind: str
    module: str
    args: list[str] = field(default_factory=list)
    created_at: str = ""
    created_by: str = ""
    exclusive: bool = True
    state: str = "queued"
    pid: int | None = None
    pid_start: int | None = None
    exit_code: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    device: str = ""
    phase: str = ""
    message: str = ""
    step: int = 0
    total: int | None = None
    progress: float = 0.0
    eta_s: float | None = None
    losses: list[dict[str, Any]] = field(default_factory=list)
    log_tail: list[str] = field(default_factory=list)
    log_path: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str = ""
    cancel_requested_at: str | None = None
    foreground: bool = False

    @property
    def finished(self) -> bool:
        """True once the job reached a final state (succeeded, failed or cancelled)."""
        return self.state in FINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy of the record."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> JobRecord:
        """Build a record from its stored form; unknown keys are ignored, missing ones take defaults."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


CANCELLED_SENTENCE = "The job was cancelled."
"""What a cancelled job's ``error`` says when nothing more specific is known."""


def ending(record: JobRecord) -> tuple[str, str]:
    """How a finished job ended, for a page to show: (state, one sentence).

    A cancelled job is not a failure: someone (or the page that started it, by going away) stopped it, and the
    sentence says so plainly; a failed one gives its reason; a succeeded one says it finished.
    """
    when = f" at {record.finished_at[11:16]} UTC" if record.finished_at and len(record.finished_at) >= 16 else ""
    if record.state == "cancelled":
        reason = record.error if record.error and record.error != CANCELLED_SENTENCE else ""
        return "cancelled", f"Job {record.id} was cancelled{when}." + (f" {reason}" if reason else "")
    if record.state == "failed":
        return "failed", f"Job {record.id} failed{when}: {record.error or 'no reason was recorded.'}"
    return record.state, f"Job {record.id} {record.state}{when}."


# ---------------------------------------------------------------- storage


def jobs_dir() -> Path:
    folder = config.paths().jobs
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def record_path(job_id: str) -> Path:
    """The record file of ``job_id``; raises UserError for a malformed id."""
    if not _ID_RE.match(job_id or ""):
        raise UserError(f"'{job_id}' is not a job id (expected e.g. 20250101-120000-0a1b2c).")
    return jobs_dir() / f"{job_id}.json"


@contextmanager
def flock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (a new open file description, so threads exclude each other too)."""
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def atomic_write_json(path: Path, payload: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=1, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_record(path: Path) -> JobRecord:
    """Read one record; a missing or corrupt file raises UserError naming it."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise TypeError("not a JSON object")
        return JobRecord.from_dict(raw)
    except FileNotFoundError:
        raise UserError(f"There is no job {path.stem}.") from None
    except (ValueError, TypeError) as err:
        raise UserError(f"The record of job {path.stem} ({path}) is unreadable: {err}.") from err


def write_record(path: Path, record: JobRecord) -> None:
    record.updated_at = now()
    atomic_write_json(path, record.to_dict())


@contextmanager
def locked_record(path: Path) -> Iterator[JobRecord]:
    """Read-modify-write ``path`` under its lock: yields the record and writes it back on normal exit."""
    with flock(path.with_suffix(".lock")):
        record = read_record(path)
        yield record
        write_record(path, record)
