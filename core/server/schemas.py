"""Request and response shapes of the REST API (they also document it at ``/api/v1/docs``).

A reading is documented as :data:`Reading` (``/predict``, ``/batch-predict``) or :data:`FleetReading`
(``/readings``, which also names the engine): ``cycle`` and the 24 columns by storage name, each with the
bounds the server enforces (:mod:`core.data.validation`). The server checks readings itself
(:mod:`core.server.readings_input`, fast on large lists), so these models only shape the documentation
(``SkipValidation``); it also takes each column's mnemonic (``T30`` for ``sensor_3``) in any letter case.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SkipValidation, create_model
from pydantic_core import PydanticCustomError

from core.data import names
from core.data.cmapss import SETTINGS
from core.data.sensors import TABLE, Column
from core.data.validation import SENSOR_BOUNDS, SETTING_BOUNDS, UNIT_CYCLE_MAX

READING_EXAMPLE = {"cycle": 31, "setting_1": -0.0006, "setting_2": 0.0004, "setting_3": 100.0, "sensor_1": 518.67,
                   "sensor_2": 642.58, "sensor_3": 1581.22, "sensor_4": 1398.91, "sensor_5": 14.62, "sensor_6": 21.61,
                   "sensor_7": 554.42, "sensor_8": 2388.08, "sensor_9": 9056.4, "sensor_10": 1.3, "sensor_11": 47.23,
                   "sensor_12": 521.79, "sensor_13": 2388.06, "sensor_14": 8130.11, "sensor_15": 8.4024,
                   "sensor_16": 0.03, "sensor_17": 393, "sensor_18": 2388, "sensor_19": 100.0, "sensor_20": 38.81,
                   "sensor_21": 23.3552}
READINGS_NOTE = ("Each column may instead be named by its mnemonic (T30 for sensor_3, altitude for setting_1), in any "
                 "letter case; cycles must increase within an engine.")


def _column(column: Column) -> tuple[type, Any]:
    low, high = SETTING_BOUNDS if column.name in SETTINGS else SENSOR_BOUNDS
    unit = f" ({column.unit})" if column.unit else ""
    return float, Field(ge=low, le=high, description=f"{column.description}{unit}, mnemonic {column.mnemonic}")


_CYCLE = (int, Field(ge=1, le=UNIT_CYCLE_MAX, description="operating cycle, a whole number"))
_COLUMNS: dict[str, Any] = {c.name: _column(c) for c in TABLE if c.name not in ("unit", "cycle")}
"""create_model's field definitions (typed Any: a ``**`` of a precise type could also fill its ``__config__``)."""

def _name_rule(kind: names.Kind) -> BeforeValidator:
    """Normalise a name field by :mod:`core.data.names`, refusing it with that rule's sentence."""

    def check(value: object) -> object:
        if not isinstance(value, str):
            return value
        phrase = names.refusal(value, kind)
        if phrase is not None:
            raise PydanticCustomError("name", "{reason}", {"reason": phrase})
        return names.fold(value)

    return BeforeValidator(check)


def _name_field(kind: names.Kind) -> Any:
    return Field(min_length=1, max_length=kind.max_chars, json_schema_extra={"pattern": names.json_pattern()})


RULE = ("NFKC-normalised with surrounding whitespace removed (a fullwidth ＥＳＮ-7001 is ESN-7001); no control or "
        "format characters (e.g. ESC, CR, LF, NUL, zero-width space, bidi overrides)")
DatasetName = Annotated[str, _name_rule(names.DATASET), _name_field(names.DATASET)]
"""A dataset name: :data:`RULE`, at most :data:`core.data.names.DATASET_MAX_CHARS` characters."""
EngineId = Annotated[str, _name_rule(names.ENGINE), _name_field(names.ENGINE)]
"""An engine id: :data:`RULE`, at most :data:`core.data.names.ENGINE_MAX_CHARS` characters."""


Reading = create_model("Reading", __config__=ConfigDict(extra="forbid"), __doc__="One cycle of one engine. "
                       + READINGS_NOTE, cycle=_CYCLE, **_COLUMNS)
FleetReading = create_model(
    "FleetReading", __config__=ConfigDict(extra="forbid"), __doc__="One cycle of a named engine. " + READINGS_NOTE,
    engine=(EngineId | int, Field(description="the engine's id as the operator writes it (text, or a whole number "
                                              "written without quotes); 'unit' is taken as this field's name too")),
    cycle=_CYCLE, **_COLUMNS)


class EngineReadings(BaseModel):
    """One engine and its readings in cycle order."""

    model_config = ConfigDict(extra="forbid")
    engine: EngineId = Field(description=f"the engine's id as the operator writes it; {RULE}")
    # a class create_model builds from the sensor table at import: mypy cannot see it as a type
    readings: list[SkipValidation[Reading]] = Field(  # type: ignore[valid-type]
        min_length=1, description="readings in increasing cycle order (at most PM_API_MAX_ENGINE_READINGS, "
                                  "default 5,000)", examples=[[READING_EXAMPLE]])


class BatchRequest(BaseModel):
    """Either engines with their readings, or the name of a stored dataset whose engines to score."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [
        {"required": ["engines"], "properties": {"engines": {"type": "array"}}},
        {"required": ["dataset"], "properties": {"dataset": {"type": "string"}}}]})
    engines: list[EngineReadings] | None = Field(default=None, min_length=1, description="engines with their "
                                                                                         "readings")
    dataset: DatasetName | None = Field(default=None, description="score every engine of this stored dataset "
                                                                  f"instead (the predictions are recorded); {RULE}")
    factors: bool = Field(default=False, strict=True, description="also return each engine's top SHAP factors (slower)")


class ReadingsRequest(BaseModel):
    """Readings to append to a fleet dataset; each names its engine."""

    model_config = ConfigDict(extra="forbid")
    dataset: DatasetName = Field(description=f"the fleet dataset (created if new); {RULE}")
    # a class create_model builds from the sensor table at import: mypy cannot see it as a type
    readings: list[SkipValidation[FleetReading]] = Field(  # type: ignore[valid-type]
        min_length=1, description="readings, each naming its engine (at most PM_API_MAX_READINGS, default 250,000, "
                                  "and PM_API_MAX_ENGINE_READINGS per engine)",
        examples=[[{"engine": "ESN-7001", **READING_EXAMPLE}]])


class OutcomeRequest(BaseModel):
    """What happened to an engine (as ``python -m core outcome``)."""

    model_config = ConfigDict(extra="forbid")
    dataset: DatasetName = Field(description=f"the in-service dataset holding the engine; {RULE}")
    engine: EngineId = Field(description=f"the engine's id; {RULE}")
    cycle: int = Field(ge=1, le=UNIT_CYCLE_MAX, strict=True, description="the cycle at which it happened")
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
    base: float | None = Field(default=None, description="with factors: the fleet-average prediction (cycles) the "
                                                         "factors start from; base + the factors' contributions + "
                                                         "remainder = rul")
    remainder: float | None = Field(default=None, description="with factors: other_inputs + approximation, the one "
                                                              "term that closes the sum to rul")
    other_inputs: float | None = Field(default=None, description="with factors: the summed contribution (cycles) of "
                                                                 "the inputs not listed")
    approximation: float | None = Field(default=None, description="with factors: what the attributions leave out "
                                                                  "(cycles): the clipping of the models' RUL to 0 "
                                                                  "and the cap, and the LSTM attributions' sampling "
                                                                  "error")


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
