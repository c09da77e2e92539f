"""Moving the aliases: promotion through the gate, rollback, clearing.

The gate (:func:`core.operations.gate.gate`) is a pure decision; :func:`register_outcome` applies it. Reading the
champion, deciding and moving the aliases happen under the registry lock (:func:`core.operations.registry.lock`),
so two gates deciding at once compare against each other's outcome. When the champion cannot be read, even after
retries, the gate refuses to decide: the champion stays and the new version is kept as the challenger.
"""

from __future__ import annotations

import logging

from core.operations import registry
from core.operations.gate import GateRules, gate

LOG = logging.getLogger("core.operations.promotion")


def _point(alias: str, version: int) -> None:
    registry.model_version(registry.model_name(), version)
    registry.client().set_registered_model_alias(registry.model_name(), alias, str(version))


def _unpoint(alias: str) -> None:
    mlflow = registry.open_mlflow()
    try:
        mlflow.MlflowClient().delete_registered_model_alias(registry.model_name(), alias)
    except mlflow.exceptions.MlflowException:
        return


def set_alias(alias: str, version: int) -> None:
    """Point ``alias`` at ``version`` (promotion, rollback); raises UserError for an unknown version."""
    with registry.lock():
        _point(alias, version)


def clear_alias(alias: str) -> None:
    """Remove ``alias`` if it is set."""
    with registry.lock():
        _unpoint(alias)


def register_outcome(version: int, metrics: dict[str, float], rules: GateRules | None = None) -> tuple[bool, str]:
    """Apply the promotion gate to a new version and move the aliases; return (promoted, reason).

    Reading the champion, deciding and moving the aliases happen under one cross-process lock, so a
    gate deciding at the same time waits and then compares against this outcome. When the champion (its
    alias or its metrics) cannot be read, even after retries, nothing is decided: the champion stays, the
    version becomes the challenger and the reason says why.
    """
    rules = rules or GateRules.from_env()
    with registry.lock():
        try:
            current = registry.aliases().get(registry.CHAMPION)
            champion_metrics = registry.version_metrics(current) if current is not None else None
        except registry.RegistryReadError as err:
            return False, _undecided(version, err)
        promoted, reason = gate(metrics, champion_metrics, rules)
        registry.client().set_model_version_tag(registry.model_name(), str(version), "gate", reason)
        if promoted:
            _point(registry.CHAMPION, version)
            if registry.aliases().get(registry.CHALLENGER) == version:
                _unpoint(registry.CHALLENGER)
        else:
            _point(registry.CHALLENGER, version)
    return promoted, reason


def _undecided(version: int, err: registry.RegistryReadError) -> str:
    """Keep ``version`` as the challenger, the champion as it is, and say why the gate did not decide."""
    mlflow = registry.open_mlflow()
    said = str(err).rstrip(".")
    reason = (f"Not decided: {said[:1].lower()}{said[1:]}, so the gate could not compare with the champion. The champion "
              f"stays as it was and v{version} is kept as the challenger; promote it on the Models page if it "
              "should serve.")
    try:
        registry.client().set_model_version_tag(registry.model_name(), str(version), "gate", reason)
        registry.client().set_registered_model_alias(registry.model_name(), registry.CHALLENGER, str(version))
    except mlflow.exceptions.MlflowException as write_err:
        LOG.warning("Version %s could not be marked as the challenger: %s", version, write_err)
        reason += f" (The registry also refused to mark it: {(str(write_err).splitlines() or [''])[0]})"
    return reason
