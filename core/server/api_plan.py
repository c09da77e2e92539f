"""``POST /api/v1/plan``: which engines in service to remove in which week, as ``python -m core plan`` computes it.

The plan is that of the stored scores of the model the ``model`` query names (default the champion), with that
model's RUL distribution (:func:`core.planning.service.fleet_plan`); the answer is
:func:`core.planning.service.as_record`, the JSON of ``python -m core plan --json``. With ``accept`` true the
plan is stored as accepted (who: the token's user; when; the model version) under the API's write lock; that
needs the role that records outcomes (operator), as the Plan page's button does.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException

from core.access import roles
from core.planning import accepted, planner, service
from core.planning.weeks import DEFAULT_CYCLES_PER_DAY, MAX_CYCLES_PER_DAY, MAX_WEEKS
from core.server import api, auth
from core.server.schemas import RULE, DatasetName, EngineId

ACCEPT_ACTION = "record_outcome"
"""The role check of accepting a plan: the same as the Plan page's "Accept this plan" (operator)."""
MAX_SLOTS = 100_000
MAX_DOLLARS = 1e12
Week = Annotated[int, Field(ge=0, le=MAX_WEEKS - 1, strict=True)]
Slots = Annotated[int, Field(ge=0, le=MAX_SLOTS, strict=True)]
CyclesPerDay = Annotated[float, Field(gt=0, le=MAX_CYCLES_PER_DAY, strict=True)]
Dollars = Annotated[float, Field(ge=0, le=MAX_DOLLARS, strict=True)]


def _written_date(value: object) -> object:
    """Refuse a date given as anything but text (pydantic would read a number as a Unix time)."""
    if value is not None and not isinstance(value, str):
        raise PydanticCustomError("date_text", "write the date as text, YYYY-MM-DD")
    return value


StartDate = Annotated[date, BeforeValidator(_written_date)]


class PlanCostsBody(BaseModel):
    """Dollars: an unscheduled failure, a planned removal, each cycle of life a removal gives up."""

    model_config = ConfigDict(extra="forbid")
    failure: Dollars = 50_000.0
    removal: Dollars = 2_000.0
    life_per_cycle: Dollars = 10.0


class ScheduledEngine(BaseModel):
    """An engine already given a week (it keeps it and takes one of that week's slots)."""

    model_config = ConfigDict(extra="forbid")
    dataset: DatasetName = Field(description=f"its dataset; {RULE}")
    engine: EngineId = Field(description=f"its id; {RULE}")
    week: Week = Field(description="0 (the rest of the start's week) to weeks - 1")


class EngineRef(BaseModel):
    """One engine of one dataset."""

    model_config = ConfigDict(extra="forbid")
    dataset: DatasetName = Field(description=f"its dataset; {RULE}")
    engine: EngineId = Field(description=f"its id; {RULE}")


class EngineUtilisation(EngineRef):
    """An engine's own cycles per day, for this plan (it wins over the engine's stored value and its dataset's)."""

    cycles_per_day: CyclesPerDay


class PlanBody(BaseModel):
    """What to plan (every field has the default of ``python -m core plan``)."""

    model_config = ConfigDict(extra="forbid")
    weeks: int = Field(default=8, ge=1, le=MAX_WEEKS, strict=True, description="horizon in calendar weeks")
    slots: Slots | list[Slots] = Field(default=5, description="shop slots per week: one number for every week, or "
                                                              "one per week (as many as `weeks`)")
    costs: PlanCostsBody = Field(default_factory=PlanCostsBody)
    start: StartDate | None = Field(default=None, description="first day, YYYY-MM-DD (default: today)")
    datasets: list[DatasetName] | None = Field(default=None, min_length=1, max_length=1000,
                                               description="in-service datasets to plan (default: every fleet and "
                                                           "evaluation dataset)")
    utilisation: dict[DatasetName, CyclesPerDay] = Field(
        default_factory=dict, description="cycles per day of a dataset for this plan (default: its stored value, "
                                          f"else {DEFAULT_CYCLES_PER_DAY:g})")
    engine_utilisation: list[EngineUtilisation] = Field(default_factory=list, max_length=100_000)
    scheduled: list[ScheduledEngine] = Field(default_factory=list, max_length=100_000)
    excluded: list[EngineRef] = Field(default_factory=list, max_length=100_000)
    accept: bool = Field(default=False, strict=True, description="store the plan as accepted by the caller "
                                                                 "(operator role)")

    @field_validator("slots", mode="wrap")
    @classmethod
    def _one_sentence(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """A bad `slots` refused in one sentence naming the field (not each member of the union)."""
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("slots", "give a whole number of slots from 0 to {most} for every week, or a "
                                      "list of one such number per week", {"most": f"{MAX_SLOTS:,}"}) from None

    def request(self) -> planner.PlanRequest:
        """The planner's request."""
        slots = (self.slots,) if isinstance(self.slots, int) else tuple(self.slots)
        return planner.PlanRequest(
            weeks=self.weeks, slots=slots, start=self.start or date.today(),
            costs=planner.PlanCosts(failure=self.costs.failure, removal=self.costs.removal,
                                    life_per_cycle=self.costs.life_per_cycle),
            utilisation=tuple(sorted(self.utilisation.items())),
            engine_utilisation=tuple((u.dataset, u.engine, u.cycles_per_day) for u in self.engine_utilisation),
            scheduled=tuple((s.dataset, s.engine, s.week) for s in self.scheduled),
            excluded=tuple((e.dataset, e.engine) for e in self.excluded))


class PlanWeek(BaseModel):
    """One week of the plan."""

    week: int
    week_start: str
    slots: int
    planned: int
    expected_removals: float = Field(description="planned engines that do not fail first, plus failures")
    removals_low: float = Field(description="90 % band of the removals, low end")
    removals_high: float
    expected_failures: float


class PlanPolicy(BaseModel):
    """Expected cost of the plan or a baseline under the same distributions and capacity."""

    policy: str
    expected_cost: float
    planned: int
    expected_failures: float


class PlannedEngine(BaseModel):
    """One engine's row of the plan."""

    dataset: str
    engine: str
    unit: int
    cycle: int
    rul: float
    p_fail_30: float
    risk: str
    cycles_per_day: float
    week: int | None = Field(description="null: not within the horizon (or excluded)")
    week_start: str
    status: str = Field(description="planned, not within horizon, scheduled before or excluded")
    p_fail_before: float | None = Field(description="P(fail before its slot; not planned: before the horizon ends)")
    expected_cost: float | None
    own_week: int | None = Field(description="the week it would get alone, with no capacity limit")
    reason: str


class PlanAnswer(BaseModel):
    """The plan, as ``python -m core plan --json`` prints it."""

    model_version: int
    datasets: list[str]
    stale: int = Field(description="engines whose readings are newer than their stored score, or that have none")
    start: str
    weeks: int
    slots: list[int]
    costs: dict[str, float]
    utilisation: dict[str, float]
    engine_utilisation: list[tuple[str, str, float]]
    distribution: str
    method: str
    solve_seconds: float
    engines_in_service: int
    planned: int
    accepted_plan: int | None = Field(description="the stored plan's id with accept, else null")
    calendar: list[PlanWeek]
    policies: list[PlanPolicy]
    engines: list[PlannedEngine]


def register(secured: APIRouter) -> None:
    """Add ``POST /plan`` to the API's secured router."""

    @secured.post("/plan", summary="Plan engine removals per week under shop capacity (accept: operator)",
                  response_model=PlanAnswer, responses=api.NOT_FOUND,
                  description="Each engine in service gets a week (or none within the horizon) at the lowest "
                              "expected cost under the slots, from the model's stored scores and RUL "
                              "distributions; with `accept` the plan is stored with the caller, the time and the "
                              "model version.")
    def plan(body: PlanBody, request: Request,
             model: Annotated[str | None, api.MODEL_QUERY] = None) -> dict[str, Any]:
        caller: auth.Caller = request.state.caller
        if body.accept and not roles.allowed(caller.role, ACCEPT_ACTION):
            needed = roles.minimum_role(ACCEPT_ACTION).label
            raise HTTPException(403, f"Only the {needed} role or higher may accept a plan; '{caller.name}' is a "
                                     f"{caller.role.label}.")
        for name in body.datasets or []:
            api._dataset_or_404(name)
        served = api._served(api._services(request), model)
        computed = service.fleet_plan(served.version, served.ensemble.conformal, body.request(), body.datasets)
        plan_id = None
        if body.accept:
            with api.WRITE_LOCK:
                plan_id = accepted.accept(computed, served.version, caller.name)
        return service.as_record(computed, plan_id)
