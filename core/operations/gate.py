"""The promotion gate: whether a candidate's validation metrics may replace the champion's.

A pure decision; :func:`core.operations.promotion.register_outcome` applies it under the registry lock. Its
tolerances come from the environment and are checked (:meth:`GateRules.from_env`) before a training starts, so a
mistyped value is one sentence at once, not an error after a whole training.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.config import env_number
from core.errors import UserError

TOLERANCES = {
    "PM_GATE_RMSE_TOL": "the relative validation RMSE increase allowed, a fraction such as 0.05 for 5%",
    "PM_GATE_F2_TOL": "the validation F2 drop allowed, in F2 points such as 0.02",
}
"""Each tolerance variable and what its value means (both default to 0: a candidate must not be worse)."""


def _tolerance(variable: str) -> float:
    """The value of a tolerance variable (0 when unset); UserError naming it and the accepted form otherwise."""
    return env_number(variable, 0.0, 0.0, 1.0, high_open=True, meaning=TOLERANCES[variable])


@dataclass(frozen=True)
class GateRules:
    """Promotion gate: a candidate replaces the champion only if it is not worse on validation.

    ``rmse_tolerance`` is the relative RMSE increase allowed (0.0 = must not be worse);
    ``f2_tolerance`` the absolute F2 drop allowed. Overridable by ``PM_GATE_RMSE_TOL`` and
    ``PM_GATE_F2_TOL``.
    """

    rmse_tolerance: float = 0.0
    f2_tolerance: float = 0.0

    @classmethod
    def from_env(cls) -> GateRules:
        """Rules with the tolerances read from the environment where set; UserError for a value outside
        [0, 1) or not a number (e.g. ``5%``), naming the variable and the accepted form."""
        return cls(rmse_tolerance=_tolerance("PM_GATE_RMSE_TOL"), f2_tolerance=_tolerance("PM_GATE_F2_TOL"))


def rules_before_training() -> GateRules:
    """:meth:`GateRules.from_env`, called before a training starts: a bad tolerance refuses the training."""
    try:
        return GateRules.from_env()
    except UserError as err:
        raise UserError(f"{err} No training was started.") from err


def gate(candidate: dict[str, float], champion: dict[str, float] | None, rules: GateRules) -> tuple[bool, str]:
    """Decide whether ``candidate`` (validation metrics) may replace ``champion``; return (promote, reason)."""
    if champion is None:
        return True, "No champion yet: the first version becomes champion."
    cand_rmse, champ_rmse = candidate.get("val_rmse"), champion.get("val_rmse")
    cand_f2, champ_f2 = candidate.get("val_f2"), champion.get("val_f2")
    if cand_rmse is None or champ_rmse is None or cand_f2 is None or champ_f2 is None:
        return False, "Kept out: validation RMSE or F2 is missing for the candidate or the champion."
    rmse_limit = champ_rmse * (1.0 + rules.rmse_tolerance)
    f2_limit = champ_f2 - rules.f2_tolerance
    if cand_rmse > rmse_limit:
        return False, f"Kept out: validation RMSE {cand_rmse:.2f} is worse than the champion's {champ_rmse:.2f}."
    if cand_f2 < f2_limit:
        return False, f"Kept out: validation F2 {cand_f2:.3f} is worse than the champion's {champ_f2:.3f}."
    return True, (
        f"Promoted: validation RMSE {cand_rmse:.2f} vs {champ_rmse:.2f}, F2 {cand_f2:.3f} vs {champ_f2:.3f}."
    )
