"""Request and response shapes of the REST API (they also document it at ``/api/v1/docs``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

READING_EXAMPLE = {"cycle": 31, "altitude": -0.0006, "mach": 0.0004, "tra": 100.0, "T2": 518.67, "T24": 642.58,
                   "T30": 1581.22, "T50": 1398.91, "P2": 14.62, "P15": 21.61, "P30": 554.42, "Nf": 2388.08,
                   "Nc": 9056.4, "epr": 1.3, "Ps30": 47.23, "phi": 521.79, "NRf": 2388.06, "NRc": 8130.11,
                   "BPR": 8.4024, "farB": 0.03, "htBleed": 393, "Nf_dmd": 2388, "PCNfR_dmd": 100.0,
                   "W31": 38.81, "W32": 23.3552}


class EngineReadings(BaseModel):
    """One engine and its readings in cycle order."""

    model_config = ConfigDict(extra="forbid")
    engine: str = Field(min_length=1, max_length=200, description="the engine's id as the operator writes it")
    readings: list[Any] = Field(description="readings in increasing cycle order: objects with cycle, the three "
                                            "settings and the 21 sensors, by storage name or mnemonic",
                                examples=[[READING_EXAMPLE]])


class BatchRequest(BaseModel):
    """Either engines with their readings, or the name of a stored dataset whose engines to score."""

    model_config = ConfigDict(extra="forbid")
    engines: list[EngineReadings] | None = Field(default=None, description="engines with their readings")
    dataset: str | None = Field(default=None, description="score every engine of this stored dataset instead "
                                                          "(the predictions are recorded)")
    factors: bool = Field(default=False, description="also return each engine's top SHAP factors (slower)")


class ReadingsRequest(BaseModel):
    """Readings to append to a fleet dataset; each names its engine."""

    model_config = ConfigDict(extra="forbid")
    dataset: str = Field(min_length=1, max_length=200)
    readings: list[Any] = Field(description="objects with engine, cycle, the three settings and the 21 sensors",
                                examples=[[{"engine": "ESN-7001", **READING_EXAMPLE}]])


class OutcomeRequest(BaseModel):
    """What happened to an engine (as ``python -m core outcome``)."""

    model_config = ConfigDict(extra="forbid")
    dataset: str = Field(min_length=1, max_length=200)
    engine: str = Field(min_length=1, max_length=200)
    cycle: int = Field(ge=1, description="the cycle at which it happened")
    event: str = Field(min_length=1, max_length=50, description="e.g. failure or removal")
    note: str = Field(default="", max_length=2000)


class Factor(BaseModel):
    """One input's SHAP contribution (cycles of RUL) to the blended prediction."""

    name: str = Field(description="mnemonic, e.g. T50, or 'age'")
    column: str = Field(description="storage name, e.g. sensor_4")
    label: str
    contribution: float


class Prediction(BaseModel):
    """An engine's prediction at its last cycle."""

    engine: str
    cycle: int
    rul: float
    rul_low: float
    rul_high: float
    p_fail_30: float
    risk: str
    ood: bool = Field(description="the engine ran outside the model's experience (an operating regime never seen "
                                  "in training, or sensor levels far outside the training range)")
    ood_reason: str = Field(description="which regime or sensors, in a sentence; '' when not flagged")
    model_version: int
    factors: list[Factor] | None = None


class BatchAnswer(BaseModel):
    """Predictions of a batch, one per engine in request (or unit) order."""

    model_version: int
    dataset: str | None = None
    engines: list[Prediction]


class Problem(BaseModel):
    """Why a request was refused: one sentence, and the JSON path of the field when there is one."""

    detail: str
    field: str | None = None


# Alerts ------------------------------------------------------------------------------------------------------


class AlertEpisode(BaseModel):
    """One alert episode: a condition from the moment it was found until it ended (times in UTC, ISO 8601)."""

    id: int
    key: str = Field(description="what it is about: risk:<dataset>:<engine>, drift:<dataset>, live_rmse:v<version> "
                                 "or job:<id>")
    kind: str = Field(description="risk, drift, live_rmse or job")
    message: str
    state: str = Field(description="open, acknowledged, snoozed or resolved")
    opened_at: str
    closed_at: str | None = Field(default=None, description="when the condition ended (state resolved)")
    dataset: str | None = None
    engine: str | None = None
    value: float | None = Field(default=None, description="the figure behind it: failure probability, drift share "
                                                          "or live RMSE")
    acknowledged_by: str | None = None
    acknowledged_at: str | None = None
    snoozed_by: str | None = None
    snoozed_at: str | None = None
    snoozed_until: str | None = Field(default=None, description="end of a snooze; null while snoozed: until the "
                                                                "condition ends (e.g. the engine leaves HIGH)")
    note: str | None = None


class AlertList(BaseModel):
    """Alert episodes in the state asked for, newest first, and how many of each kind are in that state."""

    state: str
    counts: dict[str, int] = Field(description="episodes in this state by kind (all of them, not only those listed)")
    alerts: list[AlertEpisode]


class AcknowledgeRequest(BaseModel):
    """An optional note kept with the acknowledgement."""

    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=2000)


class SnoozeRequest(BaseModel):
    """Until when to snooze (UTC unless the time names its offset); null: until the condition ends."""

    model_config = ConfigDict(extra="forbid")
    until: datetime | None = Field(default=None, description="e.g. 2026-01-31T08:00:00Z; null: until the condition "
                                                             "ends (the engine leaves HIGH, the dataset stops "
                                                             "drifting)")
    note: str = Field(default="", max_length=2000)
