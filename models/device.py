"""Which device the models actually run on, and seeding for reproducible runs.

XGBoost silently falls back to the CPU when ``device="cuda"`` is asked for without a usable
GPU, so the CUDA choice is only made after torch sees a GPU and this XGBoost build supports
CUDA; the device returned is the one used, for the UI and the run log.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass

import numpy as np
import torch
import xgboost

from core.errors import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Device:
    """The device chosen for torch and XGBoost, and a human-readable name for the UI."""

    torch: str
    xgboost: str
    name: str

    def to_dict(self) -> dict[str, str]:
        """Plain dict form for logs and JSON."""
        return asdict(self)


def xgboost_has_cuda() -> bool:
    """Whether this XGBoost build was compiled with CUDA support."""
    return bool(xgboost.build_info().get("USE_CUDA", False))


def resolve_device(requested: str = "auto") -> Device:
    """The device to use for `requested` (``auto``, ``cpu`` or ``cuda``).

    ``auto`` picks CUDA when torch sees a GPU, else the CPU. ``cuda`` without a GPU raises
    UserError. XGBoost gets ``cuda`` only when its build supports CUDA as well.
    """
    if requested not in DEVICE_CHOICES:
        raise UserError(f"The device must be one of {', '.join(DEVICE_CHOICES)}, not {requested!r}.")
    gpu = torch.cuda.is_available()
    if requested == "cuda" and not gpu:
        raise UserError("A CUDA device was requested but no usable GPU is visible to PyTorch.")
    if requested == "cpu" or not gpu:
        return Device(torch="cpu", xgboost="cpu", name="cpu")
    xgb_device = "cuda" if xgboost_has_cuda() else "cpu"
    return Device(torch="cuda", xgboost=xgb_device, name=f"cuda ({torch.cuda.get_device_name(0)})")


def default_threads() -> int:
    """CPU threads for training: every core but one (left to the dashboard), at least one.

    On a small shared machine, more threads than free cores makes OpenMP spin and run
    several times slower, so one core is always left free.
    """
    return max(1, (os.cpu_count() or 2) - 1)


def seed_everything(seed: int, device: Device) -> None:
    """Seed Python, numpy and torch; on CUDA also ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if device.torch == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.cuda.manual_seed_all(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
