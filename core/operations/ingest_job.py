"""Folder checks and loads started from the Data page, as background jobs that stop when the page goes away.

``python -m core.operations.ingest_job --action check|load --paths PATH... [--role R] [--dataset NAME]`` runs
:func:`core.data.ingest.inspect` or :func:`core.data.ingest.load` on paths under ``PM_IMPORT_ROOT``, in its
own process (started through :mod:`core.operations.jobs`, not exclusive), so a large or hostile folder
costs the dashboard's server neither memory nor a blocked session. A load into a store with no model then starts
the first training (:func:`first_model_after_load`), as ``make run`` does.

The page holds a lease on the job: it calls :func:`renew` each time it polls the job (every second while
the page is open). The job asks :func:`lease_expired` between files and unpacked chunks; once the page
has not renewed it for :data:`LEASE_S` seconds (the browser left), the job stops and records
``cancelled`` with nothing written. A load past the point of writing finishes its one transaction.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from core.config import env_number
from core.data import import_root, ingest
from core.data.archives import Cancelled
from core.errors import UserError
from core.operations import job_records, job_runtime, jobs

CHECK_KIND = "ingest-check"
LOAD_KIND = "ingest-load"
LEASE_S = 15.0
"""Seconds without a renewal from the page after which the job stops (``PM_JOB_LEASE_S`` overrides it)."""
_MODULE = "core.operations.ingest_job"


def lease_path(job_id: str) -> Path:
    """The file whose modification time is the page's last renewal of job `job_id`."""
    return job_records.jobs_dir() / f"{job_id}.lease"


def renew(job_id: str) -> None:
    """Called by the page each time it polls: the job may keep running for another :data:`LEASE_S` seconds."""
    lease_path(job_id).touch()


def lease_seconds() -> float:
    """Seconds an ingest job runs on without its page polling (``PM_JOB_LEASE_S``, default :data:`LEASE_S`)."""
    return env_number("PM_JOB_LEASE_S", LEASE_S, 0.0,
                      meaning="the seconds an upload keeps loading after its page stops polling")


def lease_expired(path: Path, started: float, lease_s: float) -> bool:
    """True when the lease at `path` was last renewed (or, never renewed, the job `started`) over `lease_s` ago."""
    try:
        last = path.stat().st_mtime
    except FileNotFoundError:
        last = started
    return time.time() - last > lease_s


def start(action: str, paths: list[str], role: str | None, dataset: str | None,
          created_by: str = "") -> job_records.JobRecord:
    """Check the paths against ``PM_IMPORT_ROOT`` (a sentence if one is outside or it is unset), then start the job."""
    root = import_root.import_root()
    if root is None:
        raise UserError("Reading folders on the server is off; set PM_IMPORT_ROOT to the folder files may be "
                        "read from.")
    resolved = [str(import_root.inside(path, root)) for path in paths]
    args = ["--action", action, "--paths", *resolved]
    args += ["--role", role] if role else []
    args += ["--dataset", dataset] if dataset else []
    record = jobs.start(CHECK_KIND if action == "check" else LOAD_KIND, _MODULE, args,
                        config={"action": action, "role": role, "dataset": dataset},
                        data={"paths": resolved}, created_by=created_by, exclusive=False)
    renew(record.id)
    return record


def _run(args: argparse.Namespace, reporter: job_runtime.Reporter) -> dict[str, Any]:
    started, lease_s = time.time(), lease_seconds()
    record = os.environ.get(job_records.RECORD_ENV, "")
    lease = lease_path(Path(record).stem) if record else None

    def cancelled() -> bool:
        return lease is not None and lease_expired(lease, started, lease_s)

    root = import_root.import_root()
    if root is None:
        raise UserError("Reading folders on the server is off; set PM_IMPORT_ROOT to the folder files may be "
                        "read from.")
    try:
        if args.action == "check":
            reporter.phase("checking", ", ".join(args.paths))
            reports = ingest.inspect(args.paths, role=args.role, dataset=args.dataset, root=root,
                                     cancelled=cancelled)
            return {"reports": [r.to_dict() for r in reports]}
        reporter.phase("loading", ", ".join(args.paths))
        summary = ingest.load(args.paths, progress=lambda f, _msg: reporter.progress(round(f * 100), 100),
                              role=args.role, dataset=args.dataset, root=root, cancelled=cancelled)
    except Cancelled as err:
        reporter.cancelled(str(err))
        raise job_runtime.JobCancelled() from err
    return {**summary.to_dict(), **first_model_after_load(job_records.read_record(Path(record)).created_by
                                                          if record else "")}


def first_model_after_load(created_by: str) -> dict[str, str]:
    """After a load: start training a first model if the store has none (as ``core setup`` does, through
    :func:`core.operations.retrain.first_model`); ``{"first_model": sentence}`` unless a model already serves."""
    from core.operations import retrain

    state, sentence = retrain.first_model(created_by or "dashboard")
    return {} if state == "serving" else {"first_model": sentence}


def main(argv: list[str] | None = None) -> None:
    """Parse the job's arguments and run the check or load, recording the result in the job record."""
    parser = argparse.ArgumentParser(prog=f"python -m {_MODULE}")
    parser.add_argument("--action", choices=["check", "load"], required=True)
    parser.add_argument("--paths", nargs="+", required=True)
    parser.add_argument("--role", choices=["history", "fleet", "evaluation"])
    parser.add_argument("--dataset")
    args = parser.parse_args(argv)
    job_runtime.run_job(lambda reporter: _run(args, reporter))


if __name__ == "__main__":
    main()
