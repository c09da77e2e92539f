"""The promotion gate: whether a candidate's validation metrics may replace the champion's.

A pure decision; :func:`core.operations.registry.register_outcome` applies it under the registry lock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


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
        """Rules with the tolerances read from the environment where set."""
        return cls(
            rmse_tolerance=float(os.environ.get("PM_GATE_RMSE_TOL", "0.0")),
            f2_tolerance=float(os.environ.get("PM_GATE_F2_TOL", "0.0")),
        )


def gate(candidate: dict[str, float], champion: dict[str, float] | None, rules: GateRules) -> tuple[bool, str]:
    """Decide whether ``candidate`` (validation metrics) may replace ``champion``; return (promote, reason)."""
    if champion is None:
        return True, "No champion yet: the first version becomes champion."
    cand_rmse, champ_rmse = candidate.get("val_rmse"), champion.get("val_rmse")
    cand_f2, champ_f2 = candidate.get("val_f2"), champion.get("val_f2")
    if None in (cand_rmse, champ_rmse, cand_f2, champ_f2):
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
