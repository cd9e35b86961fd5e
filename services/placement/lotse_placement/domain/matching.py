"""Matching: hard rules first, then a score with reasons a caseworker can read.

A hard rule is a yes/no ("may this person take this opening?"); an opening that
fails one is never suggested, whatever its score. Reasons are German, since
they go straight into the caseworker's alert.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from lotse_shared.contracts.common import (
    EducationLevel,
    OpeningType,
    ResidenceStatus,
    Sector,
    WorkPermission,
)
from lotse_shared.places import distance_km, find_place

from .model import Candidate, Opening, OpeningStatus

NO_CAR_REACH_KM = 15  # without a licence, buses make more than this impractical ...
NO_CAR_RAIL_REACH_KM = 35  # ... unless both places are on the railway

TYPE_LABEL = {
    OpeningType.PRAKTIKUM: "Praktikum",
    OpeningType.EINSTIEGSQUALIFIZIERUNG: "Einstiegsqualifizierung",
    OpeningType.AUSBILDUNG: "Ausbildung",
    OpeningType.BESCHAEFTIGUNG: "Beschäftigung",
}
SECTOR_LABEL = {
    Sector.LOGISTIK: "Logistik",
    Sector.HANDWERK: "Handwerk",
    Sector.GASTRONOMIE: "Gastronomie",
    Sector.BAU: "Bau",
    Sector.PFLEGE: "Pflege",
    Sector.INDUSTRIE: "Industrie",
    Sector.HANDEL: "Handel",
    Sector.REINIGUNG: "Reinigung",
    Sector.LANDWIRTSCHAFT: "Landwirtschaft",
    Sector.BUERO: "Büro",
    Sector.SONSTIGE: "Sonstiges",
}
STATUS_LABEL = {
    ResidenceStatus.AUFENTHALTSERLAUBNIS: "Aufenthaltserlaubnis",
    ResidenceStatus.AUFENTHALTSGESTATTUNG: "Aufenthaltsgestattung",
    ResidenceStatus.DULDUNG: "Duldung",
    ResidenceStatus.AUSBILDUNGSDULDUNG: "Ausbildungsduldung",
    ResidenceStatus.BESCHAEFTIGUNGSDULDUNG: "Beschäftigungsduldung",
    ResidenceStatus.NIEDERLASSUNGSERLAUBNIS: "Niederlassungserlaubnis",
}

# Which opening types a residence title allows at all, once work is permitted.
# The two special Duldungen are tied to one kind of work.
TYPES_ALLOWED_BY_STATUS: dict[ResidenceStatus, frozenset[OpeningType]] = {
    ResidenceStatus.AUSBILDUNGSDULDUNG: frozenset({OpeningType.AUSBILDUNG}),
    ResidenceStatus.BESCHAEFTIGUNGSDULDUNG: frozenset({OpeningType.BESCHAEFTIGUNG}),
}
ALL_TYPES = frozenset(OpeningType)


def permitted_types(person: Candidate) -> frozenset[OpeningType]:
    """Opening types this person may take; empty if they may not work at all."""
    if person.work_permission in (WorkPermission.NOT_ALLOWED, WorkPermission.NEEDS_APPROVAL):
        return frozenset()
    return TYPES_ALLOWED_BY_STATUS.get(person.residence_status, ALL_TYPES)


@dataclass(frozen=True)
class RuleResult:
    rule: str
    passed: bool
    reason: str


@dataclass(frozen=True)
class Evaluation:
    opening: Opening
    distance_km: float
    results: tuple[RuleResult, ...]

    @property
    def eligible(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.results if not r.passed]


@dataclass(frozen=True)
class Suggestion:
    opening: Opening
    distance_km: float
    score: float
    reasons: list[str] = field(default_factory=list)
    forecast: bool = False  # eligible only on the level an ongoing course should reach


def _reach_to(person: Candidate, municipality: str | None) -> float:
    if person.driving_licence:
        return float(person.max_commute_km)
    here = find_place(person.municipality)
    there = find_place(municipality) if municipality else None
    by_rail = bool(here and there and here.rail and there.rail)
    return float(min(person.max_commute_km, NO_CAR_RAIL_REACH_KM if by_rail else NO_CAR_REACH_KM))


def work_site(person: Candidate, opening: Opening) -> tuple[str | None, float, float]:
    """The opening's place this person would work at (town, km, reach km): of several,
    one within their reach if any, the nearest of those."""
    if not opening.other_locations:
        km = round(distance_km(person.lat, person.lon, opening.lat, opening.lon), 1)
        return opening.municipality, km, _reach_to(person, opening.municipality)
    best: tuple[str | None, float, float] | None = None
    for site in opening.sites:
        km = round(distance_km(person.lat, person.lon, site.lat, site.lon), 1)
        option = (site.municipality, km, _reach_to(person, site.municipality))
        if best is None or (km > option[2], km) < (best[1] > best[2], best[1]):
            best = option
    assert best is not None
    return best


def commute_km(person: Candidate, opening: Opening) -> float:
    """The way to the opening's place nearest to the person (see :func:`work_site`)."""
    return work_site(person, opening)[1]


def reach_km(person: Candidate, opening: Opening) -> float:
    """How far this person can get to work: their own limit, less without a car."""
    return work_site(person, opening)[2]


def max_reach_km(person: Candidate) -> float:
    """The farthest any opening can be for this person (by rail, if they have no car)."""
    if person.driving_licence:
        return float(person.max_commute_km)
    here = find_place(person.municipality)
    by_rail = bool(here and here.rail)
    return float(min(person.max_commute_km, NO_CAR_RAIL_REACH_KM if by_rail else NO_CAR_REACH_KM))


# --- hard rules ---------------------------------------------------------------


def _start(opening: Opening, today: date) -> date:
    """When the person would begin: the opening's start, or today if it names none or
    has already begun."""
    return max(opening.start_date or today, today)


def rule_work_permission(person: Candidate, opening: Opening, _: float, __: date) -> RuleResult:
    status = STATUS_LABEL[person.residence_status]
    label = TYPE_LABEL[opening.opening_type]
    if person.work_permission is WorkPermission.NOT_ALLOWED:
        return RuleResult("work_permission", False, f"Keine Arbeitserlaubnis ({status})")
    if person.work_permission is WorkPermission.NEEDS_APPROVAL:
        return RuleResult(
            "work_permission",
            False,
            f"Beschäftigungserlaubnis der Ausländerbehörde fehlt noch ({status})",
        )
    if opening.opening_type not in permitted_types(person):
        return RuleResult("work_permission", False, f"{status} erlaubt keine {label}")
    how = "erlaubt" if person.work_permission is WorkPermission.ALLOWED else "genehmigt"
    return RuleResult("work_permission", True, f"Arbeit {how} ({status})")


def rule_german_level(person: Candidate, opening: Opening, _: float, today: date) -> RuleResult:
    """Reached, or forecast: an ongoing course aiming at the level ends before the start."""
    level = person.effective_german_level
    have = f"{level.value} erreicht" if level else "noch kein Deutschniveau"
    if opening.required_german_level is None:
        return RuleResult("german_level", True, f"{have}, Stelle nennt kein Sprachniveau")
    need = opening.required_german_level.value
    if person.german_rank >= opening.required_rank:
        return RuleResult("german_level", True, f"{have}, Stelle verlangt {need}")
    if opening.start_date is not None and opening.start_date > today:
        course = person.forecast(by=opening.start_date)
        if course is not None and course.target_level.rank >= opening.required_rank:
            return RuleResult(
                "german_level",
                True,
                f"{have}, {course.target_level.value} voraussichtlich bis "
                f"{course.ends_on:%d.%m.%Y} (Kurs endet vor Beginn am "
                f"{opening.start_date:%d.%m.%Y}), Stelle verlangt {need}",
            )
    return RuleResult("german_level", False, f"{have}, Stelle verlangt {need}")


def rule_open_with_seats(_: Candidate, opening: Opening, __: float, ___: date) -> RuleResult:
    if opening.status is not OpeningStatus.OPEN:
        return RuleResult("open_with_seats", False, "Stelle ist geschlossen")
    if opening.seats_free <= 0:
        return RuleResult("open_with_seats", False, "Alle Plätze sind vergeben")
    seats = "1 Platz frei" if opening.seats_free == 1 else f"{opening.seats_free} Plätze frei"
    return RuleResult("open_with_seats", True, f"Stelle offen, {seats}")


def rule_reachable(person: Candidate, opening: Opening, km: float, _: date) -> RuleResult:
    town, _km, limit = work_site(person, opening)
    how = "Führerschein vorhanden" if person.driving_licence else "ohne Führerschein"
    # of several places, say which one the way leads to
    where = f" nach {town}" if opening.other_locations and town else ""
    if km <= limit:
        return RuleResult("reachable", True, f"{km:.0f} km{where}, {how}")
    return RuleResult(
        "reachable", False, f"{km:.0f} km{where}, {how}: mehr als {limit:.0f} km Arbeitsweg"
    )


MIN_WORKING_AGE = 15  # JArbSchG: no employment before 15 (and full-time school)
ADULT_AGE = 18  # under 18: vocational school duty; training or internship rather than a job


def rule_age(person: Candidate, opening: Opening, _: float, today: date) -> RuleResult:
    """Age at the start and school duty: InteA pupils take internships, minors train."""
    start = _start(opening, today)
    age = person.age_on(start)
    label = TYPE_LABEL[opening.opening_type]
    if age < MIN_WORKING_AGE:
        return RuleResult("age", False, f"ca. {age} Jahre bei Beginn: unter {MIN_WORKING_AGE}")
    intea_end = person.intea_until(start)
    if intea_end is not None and opening.opening_type is not OpeningType.PRAKTIKUM:
        return RuleResult(
            "age",
            False,
            f"InteA-Klasse bis {intea_end:%d.%m.%Y}: bis dahin nur Praktikum, keine {label}",
        )
    if age < ADULT_AGE and opening.opening_type is OpeningType.BESCHAEFTIGUNG:
        return RuleResult(
            "age",
            False,
            f"ca. {age} Jahre bei Beginn: unter {ADULT_AGE} Ausbildung, EQ oder Praktikum "
            "statt Beschäftigung",
        )
    if intea_end is not None:
        return RuleResult("age", True, f"InteA-Klasse bis {intea_end:%d.%m.%Y}, Praktikum passt")
    return RuleResult("age", True, f"ca. {age} Jahre bei Beginn")


HardRule = Callable[[Candidate, Opening, float, date], RuleResult]
HARD_RULES: tuple[HardRule, ...] = (
    rule_work_permission,
    rule_german_level,
    rule_age,
    rule_open_with_seats,
    rule_reachable,
)


def eligible(person: Candidate, opening: Opening, today: date) -> bool:
    """The hard rules' verdict alone, without the reasons: the fast pre-check when many
    pairs are looked at (re-matching). Must agree with ``evaluate(...).eligible``; a
    test compares the two over many random pairs."""
    if opening.status is not OpeningStatus.OPEN or opening.seats_free <= 0:
        return False
    if opening.opening_type not in permitted_types(person):
        return False
    if person.german_rank < opening.required_rank:
        start = opening.start_date
        if start is None or start <= today:
            return False
        course = person.forecast(by=start)
        if course is None or course.target_level.rank < opening.required_rank:
            return False
    begin = _start(opening, today)
    age = person.age_on(begin)
    if age < MIN_WORKING_AGE:
        return False
    if person.intea_until(begin) is not None and opening.opening_type is not OpeningType.PRAKTIKUM:
        return False
    if age < ADULT_AGE and opening.opening_type is OpeningType.BESCHAEFTIGUNG:
        return False
    _, km, limit = work_site(person, opening)
    return km <= limit


def evaluate(person: Candidate, opening: Opening, today: date) -> Evaluation:
    km = commute_km(person, opening)
    return Evaluation(opening, km, tuple(rule(person, opening, km, today) for rule in HARD_RULES))


# --- score --------------------------------------------------------------------

_SKILLED_EDUCATION = {EducationLevel.VOCATIONAL, EducationLevel.UNIVERSITY}


def score(person: Candidate, opening: Opening, km: float, today: date) -> tuple[float, list[str]]:
    points = 0.0
    reasons: list[str] = []
    sector = SECTOR_LABEL[opening.sector]
    if opening.sector in person.sectors_of_interest:
        points += 30
        reasons.append(f"Interesse an {sector}")
    if opening.occupation_code:
        group = opening.occupation_code[:3]
        main_group = opening.occupation_code[:2]
        if any(code[:3] == group for code in person.experience_occupations):
            points += 25
            reasons.append(f"Berufserfahrung in der Berufsgruppe (KldB {group})")
        elif any(code[:2] == main_group for code in person.experience_occupations):
            points += 12
            reasons.append(f"Berufserfahrung im Berufsbereich (KldB {main_group})")
    limit = max(reach_km(person, opening), 1.0)
    points += DISTANCE_POINTS * max(0.0, 1 - km / limit)
    if km <= 10:
        reasons.append(f"kurzer Arbeitsweg ({km:.0f} km)")
    ready = max(today, person.available_from or today)
    if opening.start_date is not None:
        wait = (opening.start_date - ready).days
        if 0 <= wait <= 90:
            points += 15
            reasons.append(f"Beginn bald ({opening.start_date:%d.%m.%Y})")
        elif 90 < wait <= 240:
            points += 8
            reasons.append(f"Beginn am {opening.start_date:%d.%m.%Y}")
        elif wait < 0:
            points += 10
            reasons.append("Beginn sofort möglich")
    if person.german_rank > opening.required_rank and opening.required_german_level:
        points += 5
        reasons.append("Deutsch über der Anforderung")
    skill = opening.skill_level
    if (
        opening.opening_type is OpeningType.BESCHAEFTIGUNG
        and skill is not None
        and skill >= 2
        and person.education_level not in _SKILLED_EDUCATION
    ):
        points -= 15
        reasons.append("Fachkraftstelle, Berufsabschluss fehlt")
    return round(points, 1), reasons


DISTANCE_POINTS = 20


def score_ceiling(person: Candidate, min_km: float, max_reach_km: float) -> float:
    """The most any opening at least ``min_km`` away can score for this person: what
    lets a search stop once nothing farther can beat the suggestions it holds."""
    ceiling = 15.0 + 5.0  # a start date soon, German above the requirement
    if person.sectors_of_interest:
        ceiling += 30
    if person.experience_occupations:
        ceiling += 25
    ceiling += DISTANCE_POINTS * max(0.0, 1 - min_km / max(max_reach_km, 1.0))
    return ceiling


SHOWN_RULES = ("german_level", "reachable")  # passed rules worth telling the caseworker


def rank(
    person: Candidate,
    openings: Iterable[Opening],
    today: date,
    *,
    limit: int,
    told: Mapping[str, bool] | None = None,
) -> list[Suggestion]:
    """Eligible openings, best first. ``told`` maps the openings already suggested to
    whether that was only on a forecast level: those are left out, except a forecast
    one whose level is now reached (told once more, as confirmed)."""
    told = told or {}
    suggestions = []
    for opening in openings:
        key = str(opening.opening_id)
        if key in told and not told[key]:
            continue
        evaluation = evaluate(person, opening, today)
        if not evaluation.eligible:
            continue
        forecast = person.german_rank < opening.required_rank
        if key in told and forecast:
            continue
        points, why = score(person, opening, evaluation.distance_km, today)
        hard = [r.reason for r in evaluation.results if r.rule in SHOWN_RULES]
        suggestions.append(
            Suggestion(opening, evaluation.distance_km, points, [*hard, *why], forecast)
        )
    return best_of(suggestions, limit)


def best_people_by_rules(
    opening: Opening, people: Iterable[Candidate], today: date, *, limit: int
) -> list[Candidate]:
    """Whom a new or changed opening suits best: the eligible people by score, then
    distance, then person id. A new opening goes to these, not to everyone it could fit,
    so that an opening in a town where hundreds qualify does not alert hundreds of
    caseworkers. Rule by rule, pair by pair: the reference that
    :func:`vectorised.best_people` (what the service runs) must agree with."""
    scored = []
    for person in people:
        if eligible(person, opening, today):
            km = commute_km(person, opening)
            scored.append(
                (-score(person, opening, km, today)[0], km, str(person.person_id), person)
            )
    scored.sort(key=lambda entry: entry[:3])
    return [entry[3] for entry in scored[:limit]]


def best_of(suggestions: list[Suggestion], limit: int) -> list[Suggestion]:
    """Best first: score, then the shorter way, then the title (stable for tests)."""
    return sorted(suggestions, key=lambda s: (-s.score, s.distance_km, s.opening.title))[:limit]


@dataclass(frozen=True)
class Fit:
    """How one opening suits one person: the hard rules' verdict, score and reasons."""

    person: Candidate
    evaluation: Evaluation
    score: float
    reasons: list[str]

    @property
    def eligible(self) -> bool:
        return self.evaluation.eligible


def fits_of_people(opening: Opening, people: Iterable[Candidate], today: date) -> list[Fit]:
    """Every person's fit for ``opening``: the eligible by score, then distance (as
    ``best_people_by_rules`` picks whom a new opening is suggested to), then the near
    misses by the number of rules they fail. The reasons of an eligible person are a
    suggestion's; a near miss's start with the rules it fails."""
    found: list[Fit] = []
    for person in people:
        evaluation = evaluate(person, opening, today)
        points, why = score(person, opening, evaluation.distance_km, today)
        if evaluation.eligible:
            hard = [r.reason for r in evaluation.results if r.rule in SHOWN_RULES]
        else:
            hard = [r.reason for r in evaluation.failed]
        found.append(Fit(person, evaluation, points, [*hard, *why]))
    found.sort(
        key=lambda f: (
            len(f.evaluation.failed),
            -f.score,
            f.evaluation.distance_km,
            str(f.person.person_id),
        )
    )
    return found
