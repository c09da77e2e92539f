"""The production simulation as a background job: ``python -m core.monitoring.simulate_job --settings JSON --timeline PATH``.

Started by :func:`core.monitoring.simulate.start_job` (not exclusive, so it can start the exclusive training
jobs itself). Progress goes to the job record; the timeline to the JSON file named by ``--timeline``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from core.monitoring import simulate, stream_plan, timelines
from core.operations import job_records, job_runtime


def main(argv: list[str] | None = None) -> None:
    """Parse the job's arguments and run the simulation, recording progress and the result."""
    parser = argparse.ArgumentParser(prog="python -m core.monitoring.simulate_job")
    parser.add_argument("--settings", required=True, help="stream_plan.Settings as JSON")
    parser.add_argument("--timeline", required=True, type=Path, help="JSON file the timeline is written to")
    args = parser.parse_args(argv)
    settings = stream_plan.Settings.from_dict(json.loads(args.settings))
    record = os.environ.get(job_records.RECORD_ENV)
    job_id = Path(record).stem if record else None

    def job(reporter: job_runtime.Reporter) -> dict[str, Any]:
        reporter.phase("simulate", f"streaming {settings.steps} steps of {settings.engines_per_step} engines")
        progress = reporter.step_reporter()
        timeline = simulate.run(settings, args.timeline, progress, created_by=f"simulation {job_id or ''}".strip(),
                                job_id=job_id)
        return {"timeline": str(args.timeline), "summary": timelines.summary(timeline), "events": timeline["events"]}

    job_runtime.run_job(job)


if __name__ == "__main__":
    main()
