"""``python -m core jobs list|show ID|cancel ID``: look at and cancel background jobs."""

from __future__ import annotations

import argparse
from typing import Any

from core.errors import UserError
from core.operations import jobs

HELP = "List background jobs (training, fleet-wide SHAP), show one, or cancel one."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``ACTION [ID] [--limit N] [--grace S]``."""
    parser.add_argument("action", choices=["list", "show", "cancel"], help="what to do")
    parser.add_argument("job_id", nargs="?", metavar="ID", help="the job id (for show and cancel)")
    parser.add_argument("--limit", type=int, default=20, help="how many jobs to list, newest first (default 20)")
    parser.add_argument("--grace", type=float, default=5.0,
                        help="seconds a cancelled job gets to stop before it is killed (default 5)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Do the action; the result holds ``jobs`` (list) or ``job`` (show, cancel)."""
    if args.action == "list":
        if args.limit < 1:
            raise UserError("--limit must be at least 1.")
        return {"action": "list", "jobs": [record.to_dict() for record in jobs.list_jobs(args.limit)]}
    if not args.job_id:
        raise UserError(f"'jobs {args.action}' needs a job id; 'python -m core jobs list' shows them.")
    if args.action == "show":
        return {"action": "show", "job": jobs.get(args.job_id).to_dict()}
    if args.grace < 0:
        raise UserError("--grace must be zero or more seconds.")
    return {"action": "cancel", "job": jobs.cancel(args.job_id, grace_s=args.grace).to_dict()}


def _percent(job: dict[str, Any]) -> str:
    return f"{100 * (job.get('progress') or 0.0):.0f}%" if job.get("total") else "-"


def _render_list(records: list[dict[str, Any]]) -> str:
    if not records:
        return "No jobs yet."
    header = ("ID", "KIND", "STATE", "PHASE", "PROGRESS", "CREATED", "BY")
    rows = [header] + [
        (j["id"], j["kind"], j["state"], j.get("phase") or "-", _percent(j),
         (j.get("created_at") or "")[:19].replace("T", " "), j.get("created_by") or "-")
        for j in records
    ]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    problems = [f"{j['id']}: {j['error']}" for j in records if j["state"] == "failed" and j.get("error")]
    return "\n".join(lines + ([""] + problems if problems else []))


def _render_job(job: dict[str, Any]) -> str:
    lines = [
        f"Job {job['id']} ({job['kind']}): {job['state']}",
        f"  module:   python -m {job['module']} {' '.join(job.get('args') or [])}".rstrip(),
        f"  created:  {job.get('created_at') or '-'} by {job.get('created_by') or '-'}",
        f"  started:  {job.get('started_at') or '-'}   finished: {job.get('finished_at') or '-'}",
        f"  pid:      {job.get('pid') or '-'}   exit code: {job.get('exit_code') if job.get('exit_code') is not None else '-'}",
        f"  device:   {job.get('device') or '-'}",
        f"  phase:    {job.get('phase') or '-'} {job.get('message') or ''}".rstrip(),
    ]
    if job.get("total"):
        eta = job.get("eta_s")
        eta_text = f", ETA {eta:.0f} s" if eta is not None and job["state"] == "running" else ""
        lines.append(f"  progress: step {job['step']} of {job['total']} ({_percent(job)}){eta_text}")
    if job.get("losses"):
        last = job["losses"][-1]
        lines.append("  last:     " + ", ".join(f"{key}={value}" for key, value in last.items()))
    if job.get("data"):
        lines.append("  data:     " + ", ".join(f"{key}={value}" for key, value in job["data"].items()))
    if job.get("result"):
        lines.append("  result:   " + ", ".join(f"{key}={value}" for key, value in job["result"].items()))
    if job.get("error"):
        lines.append(f"  error:    {job['error']}")
    if job.get("log_tail"):
        lines.append("  log tail:")
        lines.extend(f"    {line}" for line in job["log_tail"][-15:])
    return "\n".join(lines)


def render(result: dict[str, Any]) -> str:
    """Human-readable output: a table for ``list``, the job's details for ``show`` and ``cancel``."""
    if result["action"] == "list":
        return _render_list(result["jobs"])
    return _render_job(result["job"])
