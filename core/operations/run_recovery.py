"""Cleaning up after trainings that were killed: runs left RUNNING and versions no gate decided on.

Every training run is tagged with its process (:data:`PROCESS_TAGS`). :func:`recover` runs when the registry is
opened (:func:`core.operations.registry.init`) and before each new training is logged: it ends runs left RUNNING
by a dead process and keeps out versions it never gated, so they are never served.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from core.operations import registry
from core.operations.jobs import process_alive, process_start_time

PROCESS_TAGS = ("pm_host", "pm_pid", "pm_pid_start")
"""Run tags naming the process that logs the run, so a run or version it left behind can be told from a live one."""
END_REASON_TAG = "pm_end_reason"


def process_tags() -> dict[str, str]:
    """The :data:`PROCESS_TAGS` of this process (host, pid, pid start time) for a run it logs."""
    return dict(zip(PROCESS_TAGS, (socket.gethostname(), str(os.getpid()),
                                   str(process_start_time(os.getpid()) or "")), strict=True))


def _logged_by_live_process(run_tags: dict[str, str]) -> bool:
    """True if the process named in a run's tags still runs, or runs on another host (so cannot be checked)."""
    if not run_tags.get("pm_pid", "").isdigit():
        return False
    if run_tags.get("pm_host") != socket.gethostname():
        return True
    start = run_tags.get("pm_pid_start", "")
    return process_alive(int(run_tags["pm_pid"]), int(start) if start.isdigit() else None)


def _run_tags(c: Any, run_id: str) -> dict[str, str]:
    """The tags of a run, or none when the run is gone (deleted from the tracking store)."""
    from mlflow.exceptions import MlflowException

    try:
        return dict(c.get_run(run_id).data.tags)
    except MlflowException:
        return {}


def _left_behind(c: Any, experiment_id: str) -> tuple[list[Any], list[Any]]:
    """(runs still RUNNING, versions never gated) whose process is gone; copies of versions are never gated."""
    runs = [run for run in c.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'")
            if not _logged_by_live_process(run.data.tags)]
    versions = [mv for mv in c.search_model_versions() if "gate" not in mv.tags and "copied_from" not in mv.tags
                and not _logged_by_live_process(_run_tags(c, mv.run_id))]
    return runs, versions


def recover() -> list[str]:
    """End what killed trainings left behind; return one sentence per thing cleaned up.

    A run still RUNNING whose process is gone is ended as KILLED (tag ``pm_end_reason``); a version no gate
    decided on (no ``gate`` tag, not a copy) whose run's process is gone is kept out (its ``gate`` tag says
    why) and never served. Runs of live processes (a training in progress) are left alone. Nothing is
    written (and no lock taken) when nothing was left behind, so a read-only home still starts.
    """
    c = registry.client()
    experiment_id = c.get_experiment_by_name(registry.EXPERIMENT).experiment_id
    if not any(_left_behind(c, experiment_id)):
        return []
    done: list[str] = []
    with registry.lock():
        runs, versions = _left_behind(c, experiment_id)  # again: another process may have cleaned up meanwhile
        for run in runs:
            c.set_tag(run.info.run_id, END_REASON_TAG, "Its process stopped before the run finished (found at a "
                                                       "later start).")
            c.set_terminated(run.info.run_id, status="KILLED")
            done.append(f"Run {run.info.run_id} was left running by a stopped process and is now marked killed.")
        for mv in versions:
            c.set_model_version_tag(mv.name, mv.version, "gate", "Kept out: its training stopped before the gate "
                                                                 "decided on it; it was never served.")
            done.append(f"{mv.name} v{mv.version} was registered by a stopped training and is now kept out.")
    return done
