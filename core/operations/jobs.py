"""Background jobs: heavy work (training, fleet-wide SHAP) in a separate OS process, started, watched
and cancelled from here.

A job is a Python module run as ``python -m <module> <args...>`` in its own session (process group),
with the repository root as working directory, so it survives Streamlit reruns, closed tabs and a crash
of the process that started it. Its state lives in a job record (:mod:`core.operations.job_records`);
``start.lock`` serialises check-and-start, so two simultaneous starts of an exclusive job (threads or
processes) give one job and one refusal. Work that runs in the calling process (a foreground ``python -m
core train`` or ``tune``) takes the same single-training slot through :func:`foreground`: a record naming
that process, so the exclusive jobs and it refuse each other.

Reading a record (:func:`get`, :func:`list_jobs`, :func:`running`) checks that a job the record calls
running still has its process (same pid *and* the same start time, so a reused pid is not mistaken for
the job); if not, the record is marked failed with the reason. The process that started a job also
reaps it in a watcher thread and records its exit code. The job's own side is
:mod:`core.operations.job_runtime`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import config
from core.errors import UserError
from core.operations.job_records import (
    _ID_RE,
    _KIND_RE,
    _MODULE_RE,
    ACTIVE_STATES,
    LOG_TAIL_LINES,
    QUEUED_TIMEOUT_S,
    RECORD_ENV,
    JobRecord,
    flock,
    jobs_dir,
    locked_record,
    now,
    parse_time,
    read_record,
    record_path,
    write_record,
)
from core.operations.job_runtime import one_line


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
    record.finished_at = now()
    tail = _log_file_tail(record)
    if tail and tail != record.log_tail[-len(tail) :]:
        record.log_tail = (record.log_tail + ["--- job output ---"] + tail)[-LOG_TAIL_LINES:]


def _is_dead(record: JobRecord) -> bool:
    if record.state == "running":
        return not process_alive(record.pid, record.pid_start)
    if record.state == "queued":
        if record.pid is not None:
            return not process_alive(record.pid, record.pid_start)
        created = parse_time(record.created_at) or 0.0
        return time.time() - created > QUEUED_TIMEOUT_S
    return False


def _checked(path: Path, record: JobRecord) -> JobRecord:
    """Return ``record``, first marking it failed if it claims to be active but its process is gone."""
    if not _is_dead(record):
        return record
    with locked_record(path) as fresh:
        if _is_dead(fresh):
            _mark_dead(fresh, None)
        record = fresh
    return record


def _watch(proc: subprocess.Popen, path: Path) -> None:
    """Reap the job process when it ends and record its exit code (runs in a daemon thread)."""
    returncode = proc.wait()
    with locked_record(path) as record:
        record.exit_code = returncode
        if not record.finished:
            _mark_dead(record, returncode)
        elif record.state == "failed" and record.error == _death_reason(record.pid, None):
            record.error = _death_reason(record.pid, returncode)


# ---------------------------------------------------------------- public API (parent side)


def _load_all() -> list[tuple[Path, JobRecord, bool]]:
    """Every record as (path, record, readable), newest first; an unreadable one as a failed stand-in."""
    found = []
    for path in jobs_dir().glob("*.json"):
        if not _ID_RE.match(path.stem):
            continue
        try:
            found.append((path, read_record(path), True))
        except UserError as err:
            when = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="milliseconds")
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
    return _checked(path, read_record(path))


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
    with _start_lock() as folder:
        if exclusive:
            _refuse_if_busy()
        try:
            return _launch(folder, kind, module, list(args), config, data, created_by, exclusive)
        except OSError as err:
            raise _unwritable(folder, err) from err


def _unwritable(folder: Path, err: OSError) -> UserError:
    return UserError(f"No job can start: its record cannot be written in {folder} ({err.strerror or err}); "
                     "PM_HOME must be writable to train.")


@contextmanager
def _start_lock() -> Iterator[Path]:
    """Hold ``start.lock`` of the jobs folder (check-and-start of every job); yields the folder."""
    folder = config.paths().jobs
    with ExitStack() as stack:
        try:
            folder = jobs_dir()
            stack.enter_context(flock(folder / "start.lock"))
        except OSError as err:
            raise _unwritable(folder, err) from err
        yield folder


def _refuse_if_busy() -> None:
    """Raise UserError naming the active exclusive job (call under the start lock)."""
    busy = running()
    if busy is not None:
        raise UserError(
            f"A training job is already running (job {busy.id}, started {busy.started_at or busy.created_at}, "
            f"{busy.kind} in process {busy.pid}); wait for it or cancel it."
        )


@contextmanager
def foreground(kind: str, module: str, *, config: dict[str, Any], data: dict[str, Any],
               created_by: str = "") -> Iterator[JobRecord]:
    """Hold the single-training slot for work running in this process (``python -m core train`` without
    ``--background``): a running exclusive job record naming this process, so every other training path
    refuses while it runs; its final state, and the ``result`` and ``device`` the block put on the yielded
    record, are recorded when the block ends (a killed process is detected like a dead job). UserError,
    naming the running one, if a training or tuning is already active.
    """
    with _start_lock() as folder:
        _refuse_if_busy()
        job_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        path = folder / f"{job_id}.json"
        record = JobRecord(id=job_id, kind=kind, module=module, created_at=now(), created_by=created_by,
                           exclusive=True, data=data, config=config, state="running", pid=os.getpid(),
                           pid_start=process_start_time(os.getpid()), started_at=now(), foreground=True)
        try:
            write_record(path, record)
        except OSError as err:
            raise _unwritable(folder, err) from err
    try:
        yield record
    except BaseException as err:
        with locked_record(path) as final:
            cancelled = isinstance(err, KeyboardInterrupt)
            final.state = "cancelled" if cancelled else "failed"
            final.error = "The training was interrupted." if cancelled else one_line(err)
            final.finished_at = now()
        raise
    with locked_record(path) as final:
        final.state, final.finished_at, final.progress, final.result = "succeeded", now(), 1.0, record.result
        final.device = record.device or final.device


def _launch(folder: Path, kind: str, module: str, args: list[str], cfg: dict[str, Any],
            data: dict[str, Any], created_by: str, exclusive: bool) -> JobRecord:
    job_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
    path = folder / f"{job_id}.json"
    log_path = folder / f"{job_id}.log"
    record = JobRecord(id=job_id, kind=kind, module=module, args=args, created_at=now(),
                       created_by=created_by, exclusive=exclusive, data=data, config=cfg,
                       log_path=str(log_path))
    write_record(path, record)
    env = dict(os.environ, **{RECORD_ENV: str(path), "PYTHONUNBUFFERED": "1"})
    try:
        with open(log_path, "ab") as log_handle:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                [sys.executable, "-m", module, *args], cwd=config.REPO_ROOT, env=env,
                stdin=subprocess.DEVNULL, stdout=log_handle, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except OSError as err:
        with locked_record(path) as failed:
            failed.state, failed.error, failed.finished_at = "failed", f"The job could not start: {err}.", now()
        raise UserError(f"Job {job_id} could not start: {err}.") from err
    pid_start = process_start_time(proc.pid)
    with locked_record(path) as record:
        record.pid, record.pid_start = proc.pid, pid_start
        record.started_at = record.started_at or now()
        if record.state == "queued":
            record.state = "running"
    if record.finished:  # cancelled while it was being launched
        _signal_group(proc.pid, signal.SIGKILL)
    threading.Thread(target=_watch, args=(proc, path), name=f"job-{job_id}", daemon=True).start()
    return record


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return


def _signal_process(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
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
    with locked_record(path) as marked:
        marked.cancel_requested_at = marked.cancel_requested_at or now()
    if record.pid is not None and process_alive(record.pid, record.pid_start):
        send = _signal_process if record.foreground else _signal_group
        send(record.pid, signal.SIGTERM)
        if not _wait_gone(record.pid, record.pid_start, grace_s):
            send(record.pid, signal.SIGKILL)
            _wait_gone(record.pid, record.pid_start, 5.0)
    with locked_record(path) as final:
        if not final.finished:
            final.state, final.error, final.finished_at = "cancelled", "The job was cancelled.", now()
    return final


def wait(job_id: str, timeout_s: float, poll_s: float = 0.1) -> JobRecord:
    """Poll ``job_id`` until it finishes or ``timeout_s`` passes; returns the last record read."""
    deadline = time.monotonic() + timeout_s
    record = get(job_id)
    while not record.finished and time.monotonic() < deadline:
        time.sleep(poll_s)
        record = get(job_id)
    return record
