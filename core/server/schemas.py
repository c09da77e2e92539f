"""Request and response shapes of the REST API (they also document it at ``/api/v1/docs``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from core.data import names

READING_EXAMPLE = {"cycle": 31, "altitude": -0.0006, "mach": 0.0004, "tra": 100.0, "T2": 518.67, "T24": 642.58,
                   "T30": 1581.22, "T50": 1398.91, "P2": 14.62, "P15": 21.61, "P30": 554.42, "Nf": 2388.08,
                   "Nc": 9056.4, "epr": 1.3, "Ps30": 47.23, "phi": 521.79, "NRf": 2388.06, "NRc": 8130.11,
                   "BPR": 8.4024, "farB": 0.03, "htBleed": 393, "Nf_dmd": 2388, "PCNfR_dmd": 100.0,
                   "W31": 38.81, "W32": 23.3552}


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


class EngineReadings(BaseModel):
    """One engine and its readings in cycle order."""

    model_config = ConfigDict(extra="forbid")
    engine: EngineId = Field(description=f"the engine's id as the operator writes it; {RULE}")
    readings: list[Any] = Field(description="readings in increasing cycle order: objects with cycle, the three "
                                            "settings and the 21 sensors, by storage name or mnemonic",
                                examples=[[READING_EXAMPLE]])


class BatchRequest(BaseModel):
    """Either engines with their readings, or the name of a stored dataset whose engines to score."""

    model_config = ConfigDict(extra="forbid")
    engines: list[EngineReadings] | None = Field(default=None, description="engines with their readings")
    dataset: DatasetName | None = Field(default=None, description="score every engine of this stored dataset "
                                                                  f"instead (the predictions are recorded); {RULE}")
    factors: bool = Field(default=False, description="also return each engine's top SHAP factors (slower)")


class ReadingsRequest(BaseModel):
    """Readings to append to a fleet dataset; each names its engine."""

    model_config = ConfigDict(extra="forbid")
    dataset: DatasetName = Field(description=f"the fleet dataset (created if new); {RULE}")
    readings: list[Any] = Field(description="objects with engine, cycle, the three settings and the 21 sensors",
                                examples=[[{"engine": "ESN-7001", **READING_EXAMPLE}]])


class OutcomeRequest(BaseModel):
    """What happened to an engine (as ``python -m core outcome``)."""

    model_config = ConfigDict(extra="forbid")
    dataset: DatasetName = Field(description=f"the in-service dataset holding the engine; {RULE}")
    engine: EngineId = Field(description=f"the engine's id; {RULE}")
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
