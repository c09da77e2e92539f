"""A training whose XGBoost member is fitted on a Dask cluster: ``python -m core train --dask SCHEDULER``.

Everything but the XGBoost fit is the local training (:func:`core.operations.training_run.run_training`):
the same snapshot, feature pipeline, engine split, LSTM, blend, calibration, intervals, bundle, MLflow run,
registry entry and gate. The XGBoost boosters are trained by ``xgboost.dask`` on the cluster's workers from
the Parquet snapshot (:class:`models.xgb_dask.DaskXGBFit`). The LSTM member stays single-node: it trains in
this process, on this machine's device; the run's MLflow tags say so.

Workers need the same Python packages as this process (and this repository on their path) and, ideally, the
snapshot folder at the same path (a shared file system); when they cannot see it, this process reads the
snapshot and sends its rows to them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.data.cmapss import RUL_CAP
from core.errors import UserError
from core.operations.training_run import Progress, run_training
from models.training import TrainConfig

if TYPE_CHECKING:
    from distributed import Client

CONNECT_TIMEOUT_S = 20


def connect(address: str) -> Client:
    """A client of the Dask scheduler at `address` (``tcp://host:8786``); UserError if it is unreachable."""
    from distributed import Client

    try:
        client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, ValueError) as err:
        raise UserError(f"Could not reach the Dask scheduler at {address}: {err}") from err
    if not client.nthreads():
        client.close()
        raise UserError(f"The Dask scheduler at {address} has no workers: start `dask worker {address}` "
                        "on the machines that should train.")
    return client


def workers_see(client: Client, path: Path) -> bool:
    """True if every worker of `client` can read the file at `path`."""
    seen = client.run(os.access, str(path), os.R_OK)
    return bool(seen) and all(seen.values())


def run_dask_training(snapshot_path: Path, config: TrainConfig, address: str,
                      progress: Progress | None = None) -> dict[str, Any]:
    """Train with the XGBoost member on the Dask cluster at `address`, register like a local training.

    Returns :func:`run_training`'s result plus ``dask``: the scheduler, its worker count and whether the
    snapshot was sent to the workers (``uploaded``) because they could not read its path.
    """
    from models.xgb_dask import DaskXGBFit

    train_parquet = Path(snapshot_path).resolve() / "train.parquet"
    client = connect(address)
    try:
        workers = len(client.nthreads())
        upload = not workers_see(client, train_parquet)
        if progress and upload:
            progress({"phase": "features", "message": f"The Dask workers cannot read {train_parquet}: sending "
                                                      "the snapshot's rows to them."})
        fit = DaskXGBFit(client=client, train_parquet=train_parquet, params=config.xgb_params(), cap=float(RUL_CAP),
                         seed=config.seed, upload=upload, progress=progress)
        tags = {"xgboost_training": f"xgboost.dask on {workers} Dask worker(s), CPU",
                "lstm_training": "single node: the process that ran `core train --dask`",
                "dask_scheduler": address, "dask_workers": str(workers), "dask_snapshot_uploaded": str(upload)}
        result = run_training(snapshot_path, config, progress, fit_xgb=fit, extra_tags=tags)
    finally:
        client.close()
    return {**result, "dask": {"scheduler": address, "workers": workers, "uploaded": upload}}
