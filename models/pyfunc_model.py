"""The MLflow ``pyfunc`` face of a model bundle, logged as "models from code" (nothing is pickled).

MLflow copies this file into each registered version's MLflow model and runs it when the model is loaded
(``mlflow.pyfunc.load_model("models:/rul-ensemble@champion")``, ``mlflow models serve``): it builds
:class:`RulEnsembleModel`, whose :meth:`~RulEnsembleModel.load_context` reads the bundle (XGBoost JSON/UBJ, torch
``state_dict`` with ``weights_only=True``, JSON) from the model's ``bundle`` artifact with
:func:`models.bundle.load_bundle`, the loader the app serves with. ``core.operations.mlflow_model`` logs it.

Input: a table of readings, one row per (engine, cycle), with ``unit``, ``cycle``, ``setting_1..3`` and
``sensor_1..21`` (C-MAPSS names) and optionally ``dataset``. Output: one row per engine at its last cycle with
the columns of :data:`models.ensemble.OUTPUT_COLUMNS` (RUL, interval, failure probability, risk, out-of-experience
flag), the numbers ``python -m core score`` gives for the same readings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from models.bundle import load_bundle
from models.ensemble import Ensemble

BUNDLE_ARTIFACT = "bundle"
"""The name of the bundle folder among the MLflow model's artifacts."""
DEFAULT_DATASET = "readings"
"""The ``dataset`` of readings sent without one."""


class RulEnsembleModel(PythonModel):
    """The served ensemble behind MLflow's ``predict`` API."""

    ensemble: Ensemble

    def load_context(self, context: Any) -> None:
        """Load the bundle from the model's ``bundle`` artifact (verified against its manifest)."""
        self.ensemble = load_bundle(Path(context.artifacts[BUNDLE_ARTIFACT]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """One row per engine of `model_input` at its last cycle: RUL, interval, probability, risk, ood."""
        frame = pd.DataFrame(model_input)
        if "dataset" not in frame.columns:
            frame = frame.assign(dataset=DEFAULT_DATASET)
        return self.ensemble.predict_last(frame.assign(dataset=frame["dataset"].astype(str)))


mlflow.models.set_model(RulEnsembleModel())
