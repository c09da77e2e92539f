"""PyTorch LSTM on fixed-length windows with an RUL head and a failure-probability head.

Each window step carries the regime-normalised sensors, their summary channels (e.g. the mean
and slope over the engine's whole history so far, see ``FeaturePipeline.lstm_stats``) and the
engine's age; an optional 1-D convolution (kernel 3) mixes neighbouring steps before the LSTM.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from core.data.features import FeaturePipeline, Prepared
from core.errors import UserError

ProgressFn = Callable[[dict], None]


@dataclass(frozen=True)
class LSTMParams:
    """Architecture and optimisation settings of the LSTM. The recipe's values, and what each means, are
    :class:`models.training.TrainConfig`'s (build these with ``TrainConfig.lstm_params()``); only the two
    settings the recipe does not expose have defaults here."""

    hidden: int
    layers: int
    dropout: float
    epochs: int
    batch: int
    lr: float
    patience: int
    fail_weight: float
    samples_per_epoch: int
    conv: int
    lr_patience: int
    val_limit: int = 8192
    """Validation windows (a fixed seeded sample) scored after each epoch for early stopping (0: all)."""
    weight_decay: float = 0.0


class RULNet(nn.Module):
    """Optional 1-D convolution, then an LSTM encoder over the window; its last hidden state feeds an
    RUL head and a failure-logit head."""

    def __init__(self, n_channels: int, hidden: int, layers: int, dropout: float, conv: int) -> None:
        super().__init__()
        self.arch = {"n_channels": n_channels, "hidden": hidden, "layers": layers, "dropout": dropout, "conv": conv}
        self.conv = nn.Sequential(nn.Conv1d(n_channels, conv, kernel_size=3, padding=1), nn.ReLU()) if conv else None
        self.lstm = nn.LSTM(conv or n_channels, hidden, num_layers=layers, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.body = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, 32), nn.ReLU())
        self.rul_head = nn.Linear(32, 1)
        self.fail_head = nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(RUL as a fraction of the cap, failure logit), each of shape (batch,)."""
        if self.conv is not None:
            x = self.conv(x.transpose(1, 2)).transpose(1, 2)
        out, _ = self.lstm(x)
        h = self.body(out[:, -1, :])
        return self.rul_head(h).squeeze(-1), self.fail_head(h).squeeze(-1)


@dataclass
class LSTMModel:
    """A trained network and the RUL cap its outputs are scaled by."""

    net: RULNet
    cap: float

    @property
    def arch(self) -> dict[str, Any]:
        """Constructor arguments of the network (stored as JSON next to the state_dict)."""
        return dict(self.net.arch)

    @classmethod
    def from_state(cls, arch: dict[str, Any], state: dict[str, torch.Tensor], cap: float) -> LSTMModel:
        """Rebuild from the architecture dict and a state_dict; UserError if they do not match."""
        try:
            net = RULNet(int(arch["n_channels"]), int(arch["hidden"]), int(arch["layers"]), float(arch["dropout"]),
                         int(arch.get("conv", 0)))
            net.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise UserError(f"The LSTM weights do not match its architecture ({type(err).__name__}).") from err
        net.eval()
        return cls(net=net, cap=cap)

    def predict(self, windows: np.ndarray | torch.Tensor, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """(RUL clipped to [0, cap], failure probability) for windows of shape (n, window, channels)."""
        x = torch.as_tensor(windows, dtype=torch.float32)
        if x.ndim != 3 or x.shape[2] != self.net.arch["n_channels"]:
            raise UserError(f"The LSTM expects windows with {self.net.arch['n_channels']} channels, "
                            f"got shape {tuple(x.shape)}.")
        device = next(self.net.parameters()).device
        self.net.eval()
        ruls, probs = [], []
        with torch.no_grad():
            for lo in range(0, len(x), batch):
                r, logit = self.net(x[lo:lo + batch].to(device))
                ruls.append(r.cpu())
                probs.append(torch.sigmoid(logit).cpu())
        if not ruls:
            return np.zeros(0), np.zeros(0)
        rul = torch.cat(ruls).numpy().astype(float) * self.cap
        return np.clip(rul, 0.0, self.cap), torch.cat(probs).numpy().astype(float)


def censored_squared_error(pred: torch.Tensor, rul: torch.Tensor) -> torch.Tensor:
    """Squared error of RUL fractions where a target at the cap (1.0) is a lower bound, not a value.

    A row whose target was capped has a true RUL of at least the cap, so a prediction above it is not
    an error: it costs nothing, and the head is not pulled down toward the mean near the cap.
    """
    return (torch.where(rul >= 1.0, torch.clamp(pred, max=1.0), pred) - rul) ** 2


def _loss(pred: torch.Tensor, logit: torch.Tensor, rul: torch.Tensor, fail: torch.Tensor, fail_weight: float,
          bce: nn.Module) -> torch.Tensor:
    """Censored squared RUL error plus `fail_weight` times the failure head's cross-entropy."""
    return torch.mean(censored_squared_error(pred, rul)) + fail_weight * bce(logit, fail)


def _validate(net: RULNet, x: torch.Tensor, rul: torch.Tensor, fail: torch.Tensor, fail_weight: float,
              bce: nn.Module) -> tuple[float, float]:
    """(mean loss, mean squared RUL error as a fraction of the cap) over validation windows, in eval mode.

    The squared error is that of the predictions clipped to [0, 1], as ``LSTMModel.predict`` serves them.
    """
    net.eval()
    total, squared = 0.0, 0.0
    with torch.no_grad():
        for lo in range(0, len(x), 4096):
            part = slice(lo, lo + 4096)
            pred, logit = net(x[part])
            total += float(_loss(pred, logit, rul[part], fail[part], fail_weight, bce)) * len(x[part])
            squared += float(torch.sum((torch.clamp(pred, 0.0, 1.0) - rul[part]) ** 2))
    n = max(len(x), 1)
    return total / n, squared / n


def fit_lstm(pipeline: FeaturePipeline, train: Prepared, train_rows: np.ndarray, train_rul: np.ndarray,
             train_fail: np.ndarray, val_windows: np.ndarray, val_rul: np.ndarray, val_fail: np.ndarray, *,
             params: LSTMParams, cap: float, device: str, seed: int,
             progress: ProgressFn | None = None) -> tuple[LSTMModel, list[dict]]:
    """Train with Adam, halving the learning rate when the validation RMSE stalls for ``lr_patience``
    epochs and stopping after ``patience`` epochs without a better one; keep the best epoch's weights.

    The RUL head learns with :func:`censored_squared_error`. Each epoch draws ``samples_per_epoch``
    training rows at random; their windows are gathered per batch from `train` so memory stays small.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    pipeline.cache_summary(train)
    net = RULNet(pipeline.n_channels, params.hidden, params.layers, params.dropout, params.conv).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=params.lr_patience)
    bce = nn.BCEWithLogitsLoss()
    y_rul = torch.as_tensor(train_rul / cap, dtype=torch.float32)
    y_fail = torch.as_tensor(train_fail, dtype=torch.float32)
    keep = np.arange(len(val_windows))
    if 0 < params.val_limit < len(keep):
        keep = np.sort(rng.choice(keep, params.val_limit, replace=False))
    val_x, val_y_rul, val_y_fail = (torch.as_tensor(a[keep], dtype=torch.float32).to(device)
                                    for a in (val_windows, val_rul / cap, val_fail))
    per_epoch = params.samples_per_epoch or len(train_rows)
    best_rmse, best_state, best_epoch, stale = float("inf"), copy.deepcopy(net.state_dict()), 0, 0
    history: list[dict] = []
    for epoch in range(1, params.epochs + 1):
        started = time.perf_counter()
        net.train()
        pick = rng.permutation(len(train_rows))[:per_epoch] if per_epoch <= len(train_rows) \
            else rng.integers(0, len(train_rows), per_epoch)
        total = 0.0
        for lo in range(0, len(pick), params.batch):
            sel = pick[lo:lo + params.batch]
            x = torch.from_numpy(pipeline.windows(train, train_rows[sel])).to(device)
            pred, logit = net(x)
            loss = _loss(pred, logit, y_rul[sel].to(device), y_fail[sel].to(device), params.fail_weight, bce)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(sel)
        val_loss, val_mse = _validate(net, val_x, val_y_rul, val_y_fail, params.fail_weight, bce)
        val_rmse = float(np.sqrt(val_mse)) * cap
        schedule.step(val_rmse)
        record = {"phase": "lstm", "epoch": epoch, "epochs": params.epochs, "train_loss": total / max(len(pick), 1),
                  "val_loss": val_loss, "val_rmse": val_rmse, "lr": opt.param_groups[0]["lr"],
                  "seconds": time.perf_counter() - started,
                  "message": f"LSTM epoch {epoch} of {params.epochs}: validation RMSE {val_rmse:.2f} cycles"}
        history.append(record)
        if progress:
            progress(record)
        if val_rmse < best_rmse - 1e-4:
            best_rmse, best_state, best_epoch, stale = val_rmse, copy.deepcopy(net.state_dict()), epoch, 0
        else:
            stale += 1
            if stale >= params.patience:
                break
    net.load_state_dict(best_state)
    net = net.cpu().eval()
    history.append({"phase": "lstm", "best_epoch": best_epoch, "val_rmse": best_rmse,
                    "message": f"LSTM kept epoch {best_epoch}"})
    return LSTMModel(net=net, cap=cap), history
