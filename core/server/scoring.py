"""The server's scorer: engines with new readings scored at once, in the server, with the champion it holds.

Called by the alert watcher on every change (new readings through the API or the CLI, a new champion). Up
to :data:`IN_SERVER_ENGINES` stale engines are scored here, under the scoring lock, with the model the server
already holds, so a day's few appended engines are scored in well under a second instead of waiting for a
fresh process to import the model stack. A larger backlog (a new dataset, a new champion) goes to the
background scoring job (:mod:`core.operations.scoring_job`), and nothing is scored here while that job runs.
Once nothing is left to score, stale fleet explanations are handed to their job (:mod:`core.operations.explain_job`).
"""

from __future__ import annotations

import logging
from typing import Any

import duckdb

from core.data import score_queries, store
from core.errors import UserError
from core.operations import explain_job, scoring_job
from core.server.model_cache import ModelCache

LOG = logging.getLogger("core.server.scoring")
IN_SERVER_ENGINES = 500
"""Most stale engines scored in the server (about half a second of one core); more go to the scoring job."""


class ServerScorer:
    """Scores stale engines in the server, or starts the scoring job for a large backlog."""

    def __init__(self, cache: ModelCache, limit: int = IN_SERVER_ENGINES) -> None:
        self.cache = cache
        self.limit = limit

    def __call__(self) -> None:
        """:meth:`run`, a refusal of the store logged (the watcher's rules still run); an unexpected error is left to
        the watcher's supervisor (worker ``scoring``: logged, reported by ``/api/v1/health``, run again)."""
        try:
            self.run()
        except (UserError, duckdb.Error) as err:
            LOG.warning("Stale scores not refreshed: %s", err)

    def run(self) -> dict[str, Any] | None:
        """Score the champion's stale engines here when there are at most `limit`, else start the scoring job.

        When no engine is stale, starts the fleet explanation job if a dataset's explanation is.
        Returns what :func:`core.operations.scoring_job.score_stale` returns when scored here, the job's record
        (as a dict) when the job was started or runs already, None when nothing is stale or there is no champion.
        """
        version = self.cache.champion_version()
        if version is None:
            return None
        with scoring_job.lock():
            running = scoring_job.active()
            if running is not None:
                return running.to_dict()
            with store.connect(read_only=True) as con:
                pending = score_queries.stale_count(con, version)
            if 0 < pending <= self.limit:
                served = self.cache.get(str(version))
                result = scoring_job.score_stale(version, ensemble=served.ensemble)
                LOG.info("Scored %d engine(s) with model v%s in %.2f s.", result["engines"], version,
                         result["seconds"])
                return result
        if pending == 0:
            explain_job.start(version, created_by="server")  # nothing left to score: explain the fleet
            return None
        job = scoring_job.start(created_by="server")
        return job.to_dict() if job is not None else None
