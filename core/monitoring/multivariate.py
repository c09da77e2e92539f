"""Multivariate drift: has the joint structure of the sensors changed, even where each sensor alone looks alike?

NannyML's data-reconstruction method: the reference's informative sensors are standardised and compressed by PCA
(scikit-learn) to the components explaining :data:`VARIANCE` of their variance; a row is decompressed again and its
reconstruction error is the Euclidean distance to the standardised original. The current data's mean error is the
score. The threshold comes from the reference itself: its engines are split into :data:`CHUNKS` chunks of whole
engines (seeded), each chunk's mean error is computed, and a score beyond mean ± 3 standard deviations of those
chunk errors is drift.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from core.data.cmapss import SENSORS
from core.errors import UserError
from core.monitoring.regimes import sorted_near_constant

VARIANCE = 0.65
"""Share of the standardised reference's variance the kept components explain (NannyML's default)."""
CHUNKS = 10
"""Chunks of whole reference engines whose errors set the threshold."""
SIGMAS = 3.0
"""Width of the threshold band, in standard deviations of the chunk errors."""


@dataclass(frozen=True)
class MultivariateDrift:
    """The current data's mean reconstruction error, the reference's, the band outside which it is drift, and the
    sensors and components used."""

    score: float
    reference_error: float
    lower: float
    upper: float
    drifted: bool
    sensors: tuple[str, ...]
    components: int

    def to_dict(self) -> dict:
        """A JSON-serialisable copy."""
        return {**asdict(self), "sensors": list(self.sensors)}

    def sentence(self) -> str:
        """The result in one sentence."""
        verdict = "outside" if self.drifted else "within"
        return (f"Multivariate drift (PCA reconstruction error over {len(self.sensors)} sensors, {self.components} "
                f"components): {self.score:.3f}, {verdict} the reference band {self.lower:.3f} to {self.upper:.3f} "
                f"(reference {self.reference_error:.3f}).")


class Reconstruction:
    """A PCA fitted on a reference's standardised informative sensors; :meth:`errors` of any rows."""

    def __init__(self, reference: pd.DataFrame, features: list[str] | None = None, seed: int = 0) -> None:
        names = [n for n in (features or list(SENSORS)) if n in reference.columns]
        if reference.empty:
            raise UserError("The reference holds no readings, so there is no multivariate drift to measure.")
        self.sensors = [n for n in names if not sorted_near_constant(np.sort(reference[n].to_numpy(dtype=float)))]
        if len(self.sensors) < 2:
            raise UserError("Multivariate drift needs at least two sensors that vary in the reference.")
        values = reference[self.sensors].to_numpy(dtype=float)
        self.mean = values.mean(axis=0)
        self.std = values.std(axis=0)
        self.std[self.std == 0] = 1.0
        self.pca = PCA(n_components=VARIANCE, svd_solver="full", random_state=seed).fit(self._standard(values))

    def _standard(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std

    def errors(self, frame: pd.DataFrame) -> np.ndarray:
        """Each row's reconstruction error (Euclidean distance in standardised units)."""
        missing = [n for n in self.sensors if n not in frame.columns]
        if missing:
            raise UserError(f"The current data lacks the column(s) {', '.join(missing)}.")
        standard = self._standard(frame[self.sensors].to_numpy(dtype=float))
        restored = self.pca.inverse_transform(self.pca.transform(standard))
        return np.sqrt(((standard - restored) ** 2).sum(axis=1))


def _engine_keys(frame: pd.DataFrame) -> pd.Series:
    keys = ["dataset", "unit"] if "dataset" in frame.columns else ["unit"]
    return frame.groupby(keys, sort=True).ngroup()


def measure(reference: pd.DataFrame, current: pd.DataFrame, features: list[str] | None = None,
            seed: int = 0) -> MultivariateDrift:
    """The multivariate drift of ``current`` against ``reference`` (see the module docstring)."""
    if current.empty:
        raise UserError("The current data holds no readings, so there is no multivariate drift to measure.")
    model = Reconstruction(reference, features, seed)
    reference_errors = model.errors(reference)
    engines = _engine_keys(reference).to_numpy()
    count = int(engines.max()) + 1
    chunks = min(CHUNKS, count)
    if chunks < 2:
        raise UserError("The reference needs at least two engines to set the multivariate threshold.")
    chunk_of_engine = np.random.default_rng(seed).permutation(count) % chunks
    chunk = chunk_of_engine[engines]
    chunk_means = np.array([reference_errors[chunk == c].mean() for c in range(chunks)])
    centre, spread = float(chunk_means.mean()), float(chunk_means.std(ddof=1))
    lower, upper = centre - SIGMAS * spread, centre + SIGMAS * spread
    score = float(model.errors(current).mean())
    return MultivariateDrift(score, float(reference_errors.mean()), lower, upper, not lower <= score <= upper,
                             tuple(model.sensors), int(model.pca.n_components_))
