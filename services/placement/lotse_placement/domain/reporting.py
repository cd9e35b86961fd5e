"""The district's figures: cases per stage, sector and municipality, the headline
(people in work or training out of people registered), the funnel from registration
to a kept job, and the stages reached month by month. Pure: no I/O."""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from pydantic import BaseModel, Field

from lotse_shared.contracts.common import CefrLevel

from .pipeline import Case, ClosingReason, Stage, counts_as_in_work_or_training

UNKNOWN_PLACE = "unbekannt"
MONTHS = 12  # how far back the stages by month go, the current month included


@dataclass(frozen=True)
class PersonFigures:
    """What the report needs of a registered person."""

    person_id: uuid.UUID
    municipality: str
    german_level: CefrLevel | None = None
    course_level: CefrLevel | None = None
    in_course: bool = False

    @property
    def b1_reached(self) -> bool:
        return any(
            level is not None and level >= CefrLevel.B1
            for level in (self.german_level, self.course_level)
        )


class FunnelStep(BaseModel):
    step: str
    count: int = Field(description="Distinct people of the district at this step.")


FUNNEL_STEPS = (
    "registered",
    "in_course",
    "b1_reached",
    "suggested",
    "in_case",
    "in_work_or_training",
    "employed_6_months",
)


class PlacementReport(BaseModel):
    district_id: str
    as_of: date
    people_registered: int
    people_in_work_or_training: int = Field(
        description="Distinct people in an apprenticeship, EQ or job (open or followed to the end)."
    )
    in_work_or_training_rate: float = Field(description="The headline figure, 0..1.")
    open_cases_by_stage: dict[str, int]
    closed_cases_by_reason: dict[str, int]
    by_sector: dict[str, dict[str, int]] = Field(description="sector -> stage -> open cases")
    by_municipality: dict[str, dict[str, int]] = Field(
        description="the person's municipality -> stage -> open cases"
    )
    funnel: list[FunnelStep] = Field(
        default_factory=list,
        description="Distinct people per step, in order: registered, in_course (a German "
        "course running), b1_reached (German or a course at B1 or above), suggested (ever), "
        "in_case, in_work_or_training (the headline), employed_6_months (reached).",
    )
    by_month: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="YYYY-MM (the last 12 months, oldest first) -> stage -> cases that "
        "reached the stage that month (by the date recorded for the step).",
    )


def _in_work(case: Case) -> bool:
    kept = not case.closed or case.closing_reason is ClosingReason.COMPLETED
    return kept and counts_as_in_work_or_training(case.stage, case.opening_type)


def last_months(today: date, n: int = MONTHS) -> list[str]:
    """The ``n`` months up to ``today``'s, oldest first, as YYYY-MM."""
    index = today.year * 12 + today.month - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - n + 1, index + 1)]


def stages_by_month(cases: Iterable[Case], today: date) -> dict[str, dict[str, int]]:
    months = last_months(today)
    table = {m: {s.value: 0 for s in Stage} for m in months}
    for case in cases:
        reached: set[tuple[str, Stage]] = set()
        for step in case.history:
            if step.stage is not None:
                reached.add((f"{step.on:%Y-%m}", step.stage))
        for month, stage in reached:
            if month in table:
                table[month][stage.value] += 1
    return table


def funnel(
    people: list[PersonFigures], cases: list[Case], suggested: set[uuid.UUID]
) -> list[FunnelStep]:
    """Each step counted on its own (not a subset of the step before): a person may
    have found work without a course here, say. Cases and suggestions are the
    district's, as the headline counts them."""
    reached_six_months = {
        c.person_id
        for c in cases
        if c.stage is Stage.EMPLOYED_6_MONTHS
        or any(step.stage is Stage.EMPLOYED_6_MONTHS for step in c.history)
    }
    counts = {
        "registered": len({p.person_id for p in people}),
        "in_course": sum(p.in_course for p in people),
        "b1_reached": sum(p.b1_reached for p in people),
        "suggested": len(suggested),
        "in_case": len({c.person_id for c in cases}),
        "in_work_or_training": len({c.person_id for c in cases if _in_work(c)}),
        "employed_6_months": len(reached_six_months),
    }
    return [FunnelStep(step=step, count=counts[step]) for step in FUNNEL_STEPS]


def build_report(
    district_id: str,
    cases: list[Case],
    people: list[PersonFigures],
    today: date,
    suggested: set[uuid.UUID] | None = None,
) -> PlacementReport:
    """``suggested``: the people of the district who were ever suggested an opening."""
    places = {p.person_id: p.municipality for p in people}
    open_cases = [c for c in cases if not c.closed]
    by_sector: dict[str, Counter[str]] = defaultdict(Counter)
    by_place: dict[str, Counter[str]] = defaultdict(Counter)
    for case in open_cases:
        by_sector[case.sector.value][case.stage.value] += 1
        by_place[places.get(case.person_id, UNKNOWN_PLACE)][case.stage.value] += 1
    working = {c.person_id for c in cases if _in_work(c)}
    registered = len(places)
    stages = Counter(c.stage.value for c in open_cases)
    return PlacementReport(
        district_id=district_id,
        as_of=today,
        people_registered=registered,
        people_in_work_or_training=len(working),
        in_work_or_training_rate=round(len(working) / registered, 4) if registered else 0.0,
        open_cases_by_stage={s.value: stages[s.value] for s in Stage},
        closed_cases_by_reason=dict(
            sorted(Counter(c.closing_reason.value for c in cases if c.closing_reason).items())
        ),
        by_sector={k: dict(sorted(v.items())) for k, v in sorted(by_sector.items())},
        by_municipality={k: dict(sorted(v.items())) for k, v in sorted(by_place.items())},
        funnel=funnel(people, cases, suggested or set()),
        by_month=stages_by_month(cases, today),
    )


def report_csv(report: PlacementReport) -> str:
    """One row per figure: ``section;key;stage;count`` (``;`` as German spreadsheets expect)."""
    out = io.StringIO()
    w = csv.writer(out, delimiter=";", lineterminator="\r\n")
    w.writerow(["section", "key", "stage", "count"])
    w.writerow(["headline", "people_registered", "", report.people_registered])
    w.writerow(["headline", "people_in_work_or_training", "", report.people_in_work_or_training])
    w.writerow(["headline", "in_work_or_training_rate", "", report.in_work_or_training_rate])
    for stage, n in report.open_cases_by_stage.items():
        w.writerow(["stage", "", stage, n])
    for reason, n in report.closed_cases_by_reason.items():
        w.writerow(["closed", reason, "", n])
    for section, table in (("sector", report.by_sector), ("municipality", report.by_municipality)):
        for key, stages in table.items():
            for stage, n in stages.items():
                w.writerow([section, key, stage, n])
    for step in report.funnel:
        w.writerow(["funnel", step.step, "", step.count])
    for month, stages in report.by_month.items():
        for stage, n in stages.items():
            w.writerow(["month", month, stage, n])
    return out.getvalue()
