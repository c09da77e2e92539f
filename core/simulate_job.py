"""The production simulation as a background job: ``python -m core.simulate_job --settings JSON --timeline PATH``.

Started by :func:`core.simulate.start_job` (not exclusive, so it can start the exclusive training
jobs itself). Progress goes to the job record; the timeline to the JSON file named by ``--timeline``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from core import jobs, simulate


def main(argv: list[str] | None = None) -> None:
    """Parse the job's arguments and run the simulation, recording progress and the result."""
    parser = argparse.ArgumentParser(prog="python -m core.simulate_job")
    parser.add_argument("--settings", required=True, help="simulate.Settings as JSON")
    parser.add_argument("--timeline", required=True, type=Path, help="JSON file the timeline is written to")
    args = parser.parse_args(argv)
    settings = simulate.Settings.from_dict(json.loads(args.settings))
    record = os.environ.get(jobs.RECORD_ENV)
    job_id = Path(record).stem if record else None

    def job(reporter: jobs.Reporter) -> dict[str, Any]:
        reporter.phase("simulate", f"streaming {settings.steps} steps of {settings.engines_per_step} engines")
        last = [""]

        def progress(done: int, total: int, message: str) -> None:
            reporter.progress(done, total)
            if message != last[0]:
                reporter.log(message)
                last[0] = message

        timeline = simulate.run(settings, args.timeline, progress, created_by=f"simulation {job_id or ''}".strip(),
                                job_id=job_id)
        return {"timeline": str(args.timeline), "summary": simulate.summary(timeline), "events": timeline["events"]}

    jobs.run_job(job)


if __name__ == "__main__":
    main()
