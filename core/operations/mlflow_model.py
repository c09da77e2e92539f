"""Wrap a model bundle as an MLflow model (``pyfunc`` flavor, "models from code") for each registered version.

The MLflow model folder holds ``MLmodel``, the code file :mod:`models.pyfunc_model`, the bundle itself under
``artifacts/bundle`` (:data:`BUNDLE_PATH`), the modules the bundle loader needs under ``code/`` (so that MLflow's
own tools load it outside this checkout, e.g. ``mlflow models serve --env-manager local``), the pinned pip
requirements, a signature and an input example (a few readings of a training engine). Nothing is pickled: MLflow
runs the code file at load time and it reads the state_dict and JSON.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from core.data.cmapss import COLUMNS
from core.errors import UserError

REPO = Path(__file__).resolve().parents[2]
CODE_FILE = REPO / "models" / "pyfunc_model.py"
CODE_MODULES = ("core/__init__.py", "core/errors.py", "core/metrics.py", "core/data/__init__.py",
                "core/data/cmapss.py", "core/data/features.py", "core/data/sensors.py", "models/__init__.py",
                "models/bundle.py", "models/calibration.py", "models/device.py", "models/ensemble.py",
                "models/lstm.py", "models/ood.py", "models/xgb.py")
"""The source files :mod:`models.pyfunc_model` imports (directly or not), copied into the MLflow model."""
REQUIREMENTS = ("mlflow", "torch", "xgboost", "pandas", "numpy", "scipy", "scikit-learn", "pyarrow")
BUNDLE_PATH = "artifacts/bundle"
"""Where the bundle lies inside the MLflow model folder."""
EXAMPLE_ROWS = 30


def _pins() -> list[str]:
    """:data:`REQUIREMENTS` at the versions installed here (what the bundle was written with)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in REQUIREMENTS:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pins.append(name)
    return pins


def signature() -> object:
    """Input: readings (``unit``, ``cycle``, settings and sensors; ``dataset`` optional). Output: one row per engine."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs: list[Any] = [ColSpec("string", "dataset", required=False), ColSpec("long", "unit"), ColSpec("long", "cycle")]
    inputs += [ColSpec("double", name) for name in COLUMNS if name not in ("unit", "cycle")]
    outputs: list[Any] = [ColSpec("string", "dataset"), ColSpec("long", "unit"), ColSpec("long", "cycle")]
    outputs += [ColSpec("double", name) for name in ("rul", "rul_low", "rul_high", "p_fail_30")]
    outputs += [ColSpec("string", "risk"), ColSpec("boolean", "ood"), ColSpec("string", "ood_reason")]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def input_example(rows: pd.DataFrame) -> pd.DataFrame:
    """The last :data:`EXAMPLE_ROWS` readings of the first engine of `rows`, in the signature's columns and types."""
    first = rows[["dataset", "unit"]].iloc[0]
    engine = rows[(rows["dataset"] == first["dataset"]) & (rows["unit"] == first["unit"])]
    example = engine.sort_values("cycle").tail(EXAMPLE_ROWS)[["dataset", *COLUMNS]].reset_index(drop=True)
    return example.astype({"dataset": str, "unit": "int64", "cycle": "int64",
                           **{c: "float64" for c in COLUMNS if c not in ("unit", "cycle")}})


def _stage_code(folder: Path) -> list[str]:
    """Copy :data:`CODE_MODULES` into `folder` as packages; return the package folders for ``code_paths``."""
    for relative in CODE_MODULES:
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / relative, target)
    return [str(folder / "core"), str(folder / "models")]


def save(bundle_dir: Path, target: Path, example: pd.DataFrame) -> Path:
    """Write the MLflow model of the bundle in `bundle_dir` to the new folder `target`; return `target`.

    MLflow checks the input example by loading the model and predicting it; a bundle that cannot do so is a
    UserError.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="pyfunc-staging-") as staging:
        bundle = Path(staging) / "bundle"  # MLflow names an artifact folder after its source folder
        shutil.copytree(bundle_dir, bundle)
        try:
            mlflow.pyfunc.save_model(
                path=str(target), python_model=str(CODE_FILE), artifacts={"bundle": str(bundle)},
                code_paths=_stage_code(Path(staging) / "code"), signature=signature(),
                input_example=input_example(example),
                pip_requirements=_pins())
        except MlflowException as err:
            raise UserError(f"The model bundle could not be wrapped as an MLflow model: "
                            f"{(str(err).splitlines() or [type(err).__name__])[0]}") from err
    return target
