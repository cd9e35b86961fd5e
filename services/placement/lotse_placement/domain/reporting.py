"""The district's figures: cases per stage, sector and municipality, and the headline
(people in work or training out of people registered). Pure: no I/O."""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter, defaultdict
from datetime import date

from pydantic import BaseModel, Field

from .pipeline import Case, ClosingReason, Stage, counts_as_in_work_or_training

UNKNOWN_PLACE = "unbekannt"


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


def _in_work(case: Case) -> bool:
    kept = not case.closed or case.closing_reason is ClosingReason.COMPLETED
    return kept and counts_as_in_work_or_training(case.stage, case.opening_type)


def build_report(
    district_id: str, cases: list[Case], people: dict[uuid.UUID, str], today: date
) -> PlacementReport:
    open_cases = [c for c in cases if not c.closed]
    by_sector: dict[str, Counter[str]] = defaultdict(Counter)
    by_place: dict[str, Counter[str]] = defaultdict(Counter)
    for case in open_cases:
        by_sector[case.sector.value][case.stage.value] += 1
        by_place[people.get(case.person_id, UNKNOWN_PLACE)][case.stage.value] += 1
    working = {c.person_id for c in cases if _in_work(c)}
    registered = len(people)
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
    return out.getvalue()
