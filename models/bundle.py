"""Save and load an :class:`~models.ensemble.Ensemble` as a directory of safe formats.

Files: ``xgb_rul.ubj`` and ``xgb_fail.ubj`` (XGBoost's own UBJSON), ``lstm.pt`` (a torch
``state_dict``, loaded with ``weights_only=True``), ``pipeline.json`` (feature pipeline),
``ensemble.json`` (blend weights, calibration, conformal quantiles, thresholds, LSTM
architecture, out-of-experience check, metadata) and ``manifest.json`` (format version and the SHA-256 of every
file). Nothing is pickled. A missing or corrupt file raises UserError naming it.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import Any

import torch
import xgboost as xgb

from core.data.features import FeaturePipeline
from core.errors import UserError
from models.calibration import Calibrator, Conformal
from models.device import default_threads
from models.ensemble import Ensemble
from models.lstm import LSTMModel
from models.ood import ExperienceCheck
from models.xgb import XGBModels

FORMAT = "rul-ensemble"
FORMAT_VERSION = 2
"""2: LSTM summary channels in the feature pipeline and the out-of-experience check in ensemble.json."""
MANIFEST = "manifest.json"
FILES = ("pipeline.json", "ensemble.json", "xgb_rul.ubj", "xgb_fail.ubj", "lstm.pt")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_bundle(ensemble: Ensemble, directory: Path) -> Path:
    """Write the bundle into a temporary sibling folder, then swap it into place; return `directory`."""
    directory = directory.expanduser().resolve()
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        (tmp / "pipeline.json").write_text(ensemble.pipeline.to_json(), encoding="utf-8")
        body = {
            "weights": ensemble.weights,
            "calibration": ensemble.calibrator.to_dict(),
            "conformal": ensemble.conformal.to_dict(),
            "thresholds": ensemble.thresholds,
            "cap": ensemble.cap,
            "lstm_arch": ensemble.lstm.arch,
            "experience": ensemble.experience.to_dict(),
            "meta": ensemble.meta,
        }
        (tmp / "ensemble.json").write_text(json.dumps(body, indent=1), encoding="utf-8")
        ensemble.xgb.reg.save_model(str(tmp / "xgb_rul.ubj"))
        ensemble.xgb.clf.save_model(str(tmp / "xgb_fail.ubj"))
        torch.save(ensemble.lstm.net.state_dict(), tmp / "lstm.pt")
        manifest = {"format": FORMAT, "version": FORMAT_VERSION,
                    "files": {name: _sha256(tmp / name) for name in FILES}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        old = None
        if directory.exists():
            old = directory.parent / f".{directory.name}.old-{uuid.uuid4().hex}"
            directory.rename(old)
        tmp.rename(directory)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return directory


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"The model file {path.name} in {path.parent} is not valid JSON.") from err
    if not isinstance(data, dict):
        raise UserError(f"The model file {path.name} in {path.parent} does not hold a JSON object.")
    return data


def _verified(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        raise UserError(f"The model bundle folder {directory} does not exist.")
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise UserError(f"The model file {MANIFEST} is missing from {directory}.")
    manifest = _read_json(manifest_path)
    if manifest.get("format") != FORMAT:
        raise UserError(f"The model file {MANIFEST} in {directory} does not describe a {FORMAT} bundle.")
    if manifest.get("version") != FORMAT_VERSION:
        raise UserError(f"The model bundle in {directory} has format version {manifest.get('version')}, but this "
                        f"release reads version {FORMAT_VERSION} only: retrain the model to serve it.")
    sums = manifest.get("files")
    if not isinstance(sums, dict):
        raise UserError(f"The model file {MANIFEST} in {directory} lists no files.")
    paths = {}
    for name in FILES:
        path = directory / name
        if not path.is_file():
            raise UserError(f"The model file {name} is missing from {directory}.")
        if sums.get(name) != _sha256(path):
            raise UserError(f"The model file {name} in {directory} is corrupt: "
                            "its checksum does not match the manifest.")
        paths[name] = path
    return paths


def _load_booster(path: Path, threads: int) -> xgb.Booster:
    booster = xgb.Booster()
    try:
        booster.load_model(str(path))
    except xgb.core.XGBoostError as err:
        raise UserError(f"The model file {path.name} in {path.parent} is not a readable XGBoost model.") from err
    booster.set_param({"device": "cpu", "nthread": threads})
    return booster


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise UserError(f"The model file {path.name} in {path.parent} is not a readable torch state_dict.") from err
    if not isinstance(state, dict):
        raise UserError(f"The model file {path.name} in {path.parent} does not hold a state_dict.")
    return state


def load_bundle(directory: Path) -> Ensemble:
    """Verify every file against the manifest, then rebuild the ensemble for CPU serving.

    Serving uses :func:`models.device.default_threads` CPU threads (boosters and torch): on a
    small machine more threads than free cores make every prediction several times slower.
    """
    directory = directory.expanduser().resolve()
    paths = _verified(directory)
    pipeline = FeaturePipeline.from_json(paths["pipeline.json"].read_text(encoding="utf-8"))
    body = _read_json(paths["ensemble.json"])
    try:
        cap = float(body["cap"])
        weights = {k: float(v) for k, v in body["weights"].items()}
        thresholds = {k: float(v) for k, v in body["thresholds"].items()}
        calibrator = Calibrator.from_dict(body["calibration"])
        conformal = Conformal.from_dict(body["conformal"])
        arch = dict(body["lstm_arch"])
        meta = dict(body.get("meta", {}))
        experience = ExperienceCheck.from_dict(body["experience"])
        if experience.sensors != pipeline.sensors:
            raise ValueError("the out-of-experience check names other sensors than the feature pipeline")
        if not {"rul_xgb", "p_xgb"} <= weights.keys() or not {"high", "medium"} <= thresholds.keys():
            raise KeyError("weights or thresholds")
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise UserError(f"The model file ensemble.json in {directory} is malformed ({err}).") from err
    threads = default_threads()
    torch.set_num_threads(threads)
    models = XGBModels(reg=_load_booster(paths["xgb_rul.ubj"], threads),
                       clf=_load_booster(paths["xgb_fail.ubj"], threads), cap=cap)
    lstm = LSTMModel.from_state(arch, _load_state(paths["lstm.pt"]), cap)
    if arch.get("n_channels") != pipeline.n_channels or models.reg.num_features() != len(pipeline.tree_names):
        raise UserError(f"The model files in {directory} do not belong together: feature counts differ.")
    return Ensemble(pipeline=pipeline, xgb=models, lstm=lstm, weights=weights, calibrator=calibrator,
                    conformal=conformal, thresholds=thresholds, experience=experience, meta=meta)
