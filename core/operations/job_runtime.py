"""The job's own side: inside the job process, :func:`run_job` wraps the job's ``main(reporter)`` and records
success, failure (one-line reason + traceback tail) or cancellation (SIGTERM); :class:`Reporter` writes
progress (phase, epoch, losses, ETA, device, log tail) into the record.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from core.errors import UserError
from core.operations.job_records import (
    CANCEL_EXIT_CODE,
    LOG_TAIL_LINES,
    MAX_LOSS_ENTRIES,
    RECORD_ENV,
    flock,
    now,
    read_record,
    write_record,
)


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

    def step_reporter(self) -> Callable[[int, int, str], None]:
        """A ``(done, total, message)`` callback for core work: reports progress, and logs each new message once."""
        last = [""]

        def report(done: int, total: int, message: str) -> None:
            self.progress(done, total)
            if message != last[0]:
                self.log(message)
                last[0] = message

        return report

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
        self._fields.update(state=state, finished_at=now(), **values)
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
        with flock(path.with_suffix(".lock")):
            record = read_record(path)
            if record.finished:
                self._done = True
                return
            for key, value in self._fields.items():
                setattr(record, key, value)
            if record.state == "queued":
                record.state = "running"
            record.losses = (record.losses + self._losses)[-MAX_LOSS_ENTRIES:]
            record.log_tail = (record.log_tail + self._log)[-LOG_TAIL_LINES:]
            write_record(path, record)
        self._losses, self._log = [], []
        self._last_write = time.monotonic()


def _raise_cancelled(signum: int, frame: object) -> None:
    raise JobCancelled()


def one_line(err: BaseException) -> str:
    """The failure as one line: a UserError's sentence, else ``<ExceptionType>: <first line>`` (at most 300 characters)."""
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
        reporter.fail(one_line(err), lines[-20:])
        raise SystemExit(1) from None
    reporter.succeed(result or {})
    raise SystemExit(0)
