"""Background jobs: heavy work (training, fleet-wide SHAP) in a separate OS process.

A job is a Python module run as ``python -m <module> <args...>`` in its own
session (process group), with the repository root as working directory, so it
survives Streamlit reruns, closed tabs and a crash of the process that started
it. Its state lives in a JSON *job record* under ``config.paths().jobs``:

- ``<id>.json``: the record, always replaced atomically (temp file + ``os.replace``),
  so a reader never sees half a record;
- ``<id>.lock``: taken (``fcntl.flock``) around every read-modify-write of the record,
  by the parent side and by the job's :class:`Reporter` alike, each updating only its fields;
- ``<id>.log``: the job's stdout and stderr;
- ``start.lock``: serialises check-and-start, so two simultaneous starts of an
  exclusive job (threads or processes) give one job and one refusal.

Reading a record (:func:`get`, :func:`list_jobs`, :func:`running`) checks that a
job the record calls running still has its process (same pid *and* the same
start time, so a reused pid is not mistaken for the job); if not, the record is
marked failed with the reason. The process that started a job also reaps it in a
watcher thread and records its exit code.

Inside the job, :func:`run_job` wraps the job's ``main(reporter)``: it records
success, failure (one-line reason + traceback tail) or cancellation (SIGTERM).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

from core import config
from core.errors import UserError

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _parse_time(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


@dataclass
class JobRecord:
    """Everything known about one job, as stored in its JSON record.

    ``state`` is one of :data:`STATES`. ``progress`` (0..1), ``step``/``total`` and
    ``eta_s`` refer to the current ``phase``. Each ``losses`` entry is
    ``{"phase", "step", **losses}`` as passed to :meth:`Reporter.progress`.
    ``error`` is one sentence when the job failed or was cancelled.
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


# ---------------------------------------------------------------- storage


def _jobs_dir() -> Path:
    folder = config.paths().jobs
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def record_path(job_id: str) -> Path:
    """The record file of ``job_id``; raises UserError for a malformed id."""
    if not _ID_RE.match(job_id or ""):
        raise UserError(f"'{job_id}' is not a job id (expected e.g. 20250101-120000-0a1b2c).")
    return _jobs_dir() / f"{job_id}.json"


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (a new open file description, so threads exclude each other too)."""
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic_write_json(path: Path, payload: dict[str, Any]) -> None:
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


def _read_record(path: Path) -> JobRecord:
    """Read one record; a missing or corrupt file raises UserError naming it."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        return JobRecord.from_dict(raw)
    except FileNotFoundError:
        raise UserError(f"There is no job {path.stem}.") from None
    except (ValueError, TypeError) as err:
        raise UserError(f"The record of job {path.stem} ({path}) is unreadable: {err}.") from err


def _write_record(path: Path, record: JobRecord) -> None:
    record.updated_at = _now()
    _atomic_write_json(path, record.to_dict())


@contextmanager
def _locked_record(path: Path) -> Iterator[JobRecord]:
    """Read-modify-write ``path`` under its lock: yields the record and writes it back on normal exit."""
    with _flock(path.with_suffix(".lock")):
        record = _read_record(path)
        yield record
        _write_record(path, record)


# ---------------------------------------------------------------- processes


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of ``pid`` from /proc, or None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = text[text.rindex(")") + 2 :].split()
    return rest[0], int(rest[19])


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` (clock ticks since boot) used to tell a reused pid apart; None without /proc."""
    stat = _proc_stat(pid) if Path("/proc/self/stat").exists() else None
    return stat[1] if stat else None


def process_alive(pid: int | None, pid_start: int | None) -> bool:
    """True if ``pid`` runs and is the same process (same start time); a zombie counts as gone."""
    if not pid:
        return False
    if Path("/proc/self/stat").exists():
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X", "x"):
            return False
        return pid_start is None or stat[1] == pid_start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _death_reason(pid: int | None, returncode: int | None) -> str:
    if returncode is None:
        how = "exit code unknown"
    elif returncode < 0:
        try:
            how = f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"killed by signal {-returncode}"
    else:
        how = f"exit code {returncode}"
    return f"Process {pid} exited without finishing ({how})."


def _log_file_tail(record: JobRecord, lines: int = 20) -> list[str]:
    if not record.log_path:
        return []
    try:
        with open(record.log_path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16384))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return text.splitlines()[-lines:]


def _mark_dead(record: JobRecord, returncode: int | None) -> None:
    """Mark an active record finished because its process is gone (call under the record lock).

    It becomes cancelled if a cancel was requested (the process was killed for it), failed otherwise.
    """
    if record.cancel_requested_at:
        record.state, record.error = "cancelled", "The job was cancelled."
    elif record.pid is None:
        record.state = "failed"
        record.error = "The job never started: the process starting it stopped before launching it."
    else:
        record.state, record.error = "failed", _death_reason(record.pid, returncode)
    record.exit_code = returncode
    record.finished_at = _now()
    tail = _log_file_tail(record)
    if tail and tail != record.log_tail[-len(tail) :]:
        record.log_tail = (record.log_tail + ["--- job output ---"] + tail)[-LOG_TAIL_LINES:]


def _is_dead(record: JobRecord) -> bool:
    if record.state == "running":
        return not process_alive(record.pid, record.pid_start)
    if record.state == "queued":
        if record.pid is not None:
            return not process_alive(record.pid, record.pid_start)
        created = _parse_time(record.created_at) or 0.0
        return time.time() - created > QUEUED_TIMEOUT_S
    return False


def _checked(path: Path, record: JobRecord) -> JobRecord:
    """Return ``record``, first marking it failed if it claims to be active but its process is gone."""
    if not _is_dead(record):
        return record
    with _locked_record(path) as fresh:
        if _is_dead(fresh):
            _mark_dead(fresh, None)
        record = fresh
    return record


def _watch(proc: subprocess.Popen, path: Path, log_handle: Any) -> None:
    """Reap the job process when it ends and record its exit code (runs in a daemon thread)."""
    returncode = proc.wait()
    log_handle.close()
    with _locked_record(path) as record:
        record.exit_code = returncode
        if not record.finished:
            _mark_dead(record, returncode)
        elif record.state == "failed" and record.error == _death_reason(record.pid, None):
            record.error = _death_reason(record.pid, returncode)


# ---------------------------------------------------------------- public API (parent side)


def _load_all() -> list[tuple[Path, JobRecord, bool]]:
    """Every record as (path, record, readable), newest first; an unreadable one as a failed stand-in."""
    found = []
    for path in _jobs_dir().glob("*.json"):
        if not _ID_RE.match(path.stem):
            continue
        try:
            found.append((path, _read_record(path), True))
        except UserError as err:
            when = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(timespec="milliseconds")
            stand_in = JobRecord(id=path.stem, kind="unknown", module="", state="failed", error=str(err),
                                 created_at=when, updated_at=when)
            found.append((path, stand_in, False))
    found.sort(key=lambda item: (item[1].created_at, item[1].id), reverse=True)
    return found


def list_jobs(limit: int = 20, kind: str | None = None) -> list[JobRecord]:
    """The newest ``limit`` jobs (of ``kind``, if given), newest first, with dead processes detected.

    A corrupt record does not break the list: it appears as a failed job of kind
    ``unknown`` whose ``error`` says which file is unreadable and why.
    """
    found = [(path, rec, ok) for path, rec, ok in _load_all() if kind is None or rec.kind == kind]
    return [_checked(path, rec) if ok else rec for path, rec, ok in found[: max(0, limit)]]


def get(job_id: str) -> JobRecord:
    """The record of ``job_id`` (dead process detected); UserError if unknown or unreadable."""
    path = record_path(job_id)
    return _checked(path, _read_record(path))


def running() -> JobRecord | None:
    """The active (queued or running) exclusive job, e.g. the training in progress, or None."""
    for path, record, ok in _load_all():
        if ok and record.exclusive and record.state in ACTIVE_STATES:
            record = _checked(path, record)
            if record.state in ACTIVE_STATES:
                return record
    return None


def start(
    kind: str,
    module: str,
    args: list[str],
    *,
    config: dict[str, Any],
    data: dict[str, Any],
    created_by: str = "",
    exclusive: bool = True,
) -> JobRecord:
    """Start ``python -m <module> <args...>`` as a background job and return its record.

    The child runs in a new session with the repository root as working
    directory; it finds its record through the environment variable
    ``PM_JOB_RECORD`` (see :meth:`Reporter.from_env`). With ``exclusive`` (the
    default, for training) the check for a running exclusive job and the start
    happen under one cross-process lock, and a second start raises UserError
    naming the running job.
    """
    if not _KIND_RE.match(kind or ""):
        raise UserError(f"'{kind}' is not a valid job kind (lower-case letters, digits, '-' or '_').")
    if not _MODULE_RE.match(module or ""):
        raise UserError(f"'{module}' is not a Python module name.")
    if not all(isinstance(arg, str) for arg in args):
        raise UserError("Job arguments must all be strings.")
    try:
        json.dumps({"config": config, "data": data}, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise UserError(f"The job's config and data must be plain JSON values: {err}.") from err
    folder = _jobs_dir()
    with _flock(folder / "start.lock"):
        if exclusive:
            busy = running()
            if busy is not None:
                raise UserError(
                    f"A training job is already running (job {busy.id}, started "
                    f"{busy.started_at or busy.created_at}); wait for it or cancel it."
                )
        return _launch(folder, kind, module, list(args), config, data, created_by, exclusive)


def _launch(folder: Path, kind: str, module: str, args: list[str], cfg: dict[str, Any],
            data: dict[str, Any], created_by: str, exclusive: bool) -> JobRecord:
    job_id = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
    path = folder / f"{job_id}.json"
    log_path = folder / f"{job_id}.log"
    record = JobRecord(id=job_id, kind=kind, module=module, args=args, created_at=_now(),
                       created_by=created_by, exclusive=exclusive, data=data, config=cfg,
                       log_path=str(log_path))
    _write_record(path, record)
    env = dict(os.environ, **{RECORD_ENV: str(path), "PYTHONUNBUFFERED": "1"})
    log_handle = open(log_path, "ab")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args], cwd=config.REPO_ROOT, env=env,
            stdin=subprocess.DEVNULL, stdout=log_handle, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as err:
        log_handle.close()
        with _locked_record(path) as failed:
            failed.state, failed.error, failed.finished_at = "failed", f"The job could not start: {err}.", _now()
        raise UserError(f"Job {job_id} could not start: {err}.") from err
    pid_start = process_start_time(proc.pid)
    with _locked_record(path) as record:
        record.pid, record.pid_start = proc.pid, pid_start
        record.started_at = record.started_at or _now()
        if record.state == "queued":
            record.state = "running"
    if record.finished:  # cancelled while it was being launched
        _signal_group(proc.pid, signal.SIGKILL)
    threading.Thread(target=_watch, args=(proc, path, log_handle), name=f"job-{job_id}", daemon=True).start()
    return record


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return


def _wait_gone(pid: int, pid_start: int | None, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while process_alive(pid, pid_start):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def cancel(job_id: str, grace_s: float = 5.0) -> JobRecord:
    """Cancel a queued or running job: SIGTERM to its process group, SIGKILL after ``grace_s`` seconds.

    Returns the final record (state ``cancelled``, unless the job finished on its
    own first). UserError if the job already finished.
    """
    path = record_path(job_id)
    record = get(job_id)
    if record.finished:
        raise UserError(f"Job {job_id} has already finished ({record.state}); there is nothing to cancel.")
    with _locked_record(path) as marked:
        marked.cancel_requested_at = marked.cancel_requested_at or _now()
    if record.pid is not None and process_alive(record.pid, record.pid_start):
        _signal_group(record.pid, signal.SIGTERM)
        if not _wait_gone(record.pid, record.pid_start, grace_s):
            _signal_group(record.pid, signal.SIGKILL)
            _wait_gone(record.pid, record.pid_start, 5.0)
    with _locked_record(path) as final:
        if not final.finished:
            final.state, final.error, final.finished_at = "cancelled", "The job was cancelled.", _now()
    return final


def wait(job_id: str, timeout_s: float, poll_s: float = 0.1) -> JobRecord:
    """Poll ``job_id`` until it finishes or ``timeout_s`` passes; returns the last record read."""
    deadline = time.monotonic() + timeout_s
    record = get(job_id)
    while not record.finished and time.monotonic() < deadline:
        time.sleep(poll_s)
        record = get(job_id)
    return record


# ---------------------------------------------------------------- child side


class JobCancelled(BaseException):
    """Raised in the job's main thread when it receives SIGTERM (a BaseException so ``except Exception`` lets it through)."""


def _finite(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    number = float(value)
    return number if math.isfinite(number) else None


class Reporter:
    """Writes a job's progress into its record; used inside the job process.

    ``Reporter(None)`` records nothing (the same job code then runs in the
    foreground); log lines still go to stdout. Writes are throttled to one per
    ``min_interval`` seconds, phase changes and final states are written at once.
    Once the record is in a final state (e.g. cancelled by the parent), nothing
    more is written.
    """

    def __init__(self, record_path: str | Path | None = None, *, min_interval: float = 0.25) -> None:
        self.record_path = Path(record_path) if record_path else None
        self.min_interval = min_interval
        self._fields: dict[str, Any] = {}
        self._losses: list[dict[str, Any]] = []
        self._log: list[str] = []
        self._last_write = 0.0
        self._phase_started = time.monotonic()
        self._done = False

    @classmethod
    def from_env(cls) -> Reporter:
        """A reporter for the record named by ``PM_JOB_RECORD`` (a no-op reporter when unset)."""
        return cls(os.environ.get(RECORD_ENV) or None)

    def phase(self, name: str, message: str = "") -> None:
        """Enter phase ``name`` (e.g. "training LSTM"); resets step, total, progress and ETA."""
        self._phase_started = time.monotonic()
        self._fields.update(phase=name, message=message, step=0, total=None, progress=0.0, eta_s=None)
        self.log(f"[{name}] {message}" if message else f"[{name}]")
        self._flush(force=True)

    def set_device(self, device: str) -> None:
        """Record the device actually used (e.g. "cuda:0 (NVIDIA H100)" or "cpu")."""
        self._fields["device"] = device
        self._flush(force=True)

    def progress(self, step: int, total: int | None = None, **losses: float) -> None:
        """Report ``step`` of ``total`` in the current phase, with optional named losses/metrics.

        Progress is ``step/total``; the ETA is the elapsed time per step since the
        phase began times the steps left. Non-empty ``losses`` are appended to the
        record's ``losses`` as ``{"phase", "step", **losses}`` (non-finite values as null).
        """
        elapsed = time.monotonic() - self._phase_started
        fraction = min(1.0, max(0.0, step / total)) if total else 0.0
        eta = elapsed / step * (total - step) if total and step > 0 else None
        self._fields.update(step=int(step), total=total, progress=fraction,
                            eta_s=None if eta is None else max(0.0, eta))
        if losses:
            entry = {"phase": self._fields.get("phase", ""), "step": int(step)}
            entry.update({key: _finite(value) for key, value in losses.items()})
            self._losses.append(entry)
        self._flush()

    def log(self, line: str) -> None:
        """Add a line to the job's log (stdout) and to the record's log tail."""
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        self._log.extend(str(line).splitlines() or [""])
        self._flush()

    def succeed(self, result: dict[str, Any]) -> None:
        """Record success with ``result`` (JSON values, e.g. version, metrics, promoted, reason)."""
        self._final("succeeded", result=result, progress=1.0, eta_s=0.0)

    def fail(self, message: str, traceback_lines: list[str] | None = None) -> None:
        """Record failure with a one-sentence ``message`` and optionally the traceback's last lines."""
        self._log.extend(traceback_lines or [])
        self._final("failed", error=message)

    def cancelled(self, message: str = "The job was cancelled.") -> None:
        """Record that the job stopped because it was cancelled."""
        self._final("cancelled", error=message)

    def _final(self, state: str, **values: Any) -> None:
        self._fields.update(state=state, finished_at=_now(), **values)
        self._flush(force=True)
        self._done = True

    def _flush(self, force: bool = False) -> None:
        if self.record_path is None or self._done:
            return
        if not force and time.monotonic() - self._last_write < self.min_interval:
            return
        on_main = threading.current_thread() is threading.main_thread()
        if on_main:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            self._write()
        finally:
            if on_main:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})

    def _write(self) -> None:
        path = self.record_path
        assert path is not None
        with _flock(path.with_suffix(".lock")):
            record = _read_record(path)
            if record.finished:
                self._done = True
                return
            for key, value in self._fields.items():
                setattr(record, key, value)
            if record.state == "queued":
                record.state = "running"
            record.losses = (record.losses + self._losses)[-MAX_LOSS_ENTRIES:]
            record.log_tail = (record.log_tail + self._log)[-LOG_TAIL_LINES:]
            _write_record(path, record)
        self._losses, self._log = [], []
        self._last_write = time.monotonic()


def _raise_cancelled(signum: int, frame: object) -> None:
    raise JobCancelled()


def _one_line(err: BaseException) -> str:
    if isinstance(err, UserError):
        text = str(err)
    else:
        first = (str(err).strip().splitlines() or [""])[0]
        text = f"{type(err).__name__}: {first}" if first else type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def run_job(main: Callable[[Reporter], dict[str, Any] | None], reporter: Reporter | None = None) -> NoReturn:
    """Run a job's ``main(reporter)`` and exit: 0 on success, 1 on failure, 143 when cancelled.

    Success records ``main``'s result. An exception records failed with one line
    (``str`` of a UserError, else ``"<ExceptionType>: <message>"``) and the
    traceback's last lines in the log tail (the full traceback goes to stderr).
    SIGTERM (what :func:`cancel` sends) or Ctrl-C records cancelled.
    """
    reporter = reporter or Reporter.from_env()
    signal.signal(signal.SIGTERM, _raise_cancelled)
    try:
        result = main(reporter)
    except (JobCancelled, KeyboardInterrupt):
        reporter.cancelled()
        raise SystemExit(CANCEL_EXIT_CODE) from None
    except Exception as err:  # noqa: BLE001 - every failure of the job is recorded, then the process exits 1
        lines = traceback.format_exc().rstrip().splitlines()
        sys.stderr.write("\n".join(lines) + "\n")
        reporter.fail(_one_line(err), lines[-20:])
        raise SystemExit(1) from None
    reporter.succeed(result or {})
    raise SystemExit(0)
