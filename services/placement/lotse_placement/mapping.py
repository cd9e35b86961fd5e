"""Between placement's contracts and its domain: what events and reports say, turned
into the domain's objects, and the facts placement publishes. Pure: no I/O."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from lotse_shared.contracts import placement as ev
from lotse_shared.contracts.intake import PersonSnapshotV1
from lotse_shared.contracts.partner import OpeningLocation, OpeningReportedV1
from lotse_shared.errors import RuleViolation
from lotse_shared.places import find_place

from .domain.matching import Suggestion
from .domain.model import Candidate, Opening, WorkSite
from .domain.pipeline import Case, Stage

PRODUCER = "placement"
log = logging.getLogger("lotse.placement")


def candidate_from(snapshot: PersonSnapshotV1, previous: Candidate | None = None) -> Candidate:
    """The matching facts of a snapshot; what placement learnt from courses is kept."""
    place = find_place(snapshot.municipality)
    if place is None:
        raise RuleViolation("payload.municipality", f"unknown place {snapshot.municipality!r}")
    return Candidate(
        person_id=snapshot.person_id,
        district_id=snapshot.district_id,
        revision=snapshot.revision,
        birth_year=snapshot.birth_year,
        municipality=place.name,
        lat=place.lat,
        lon=place.lon,
        german_level=snapshot.german_level,
        course_level=previous.course_level if previous else None,
        ongoing_courses=previous.ongoing_courses if previous else [],
        residence_status=snapshot.residence_status,
        work_permission=snapshot.work_permission,
        driving_licence=snapshot.driving_licence,
        max_commute_km=snapshot.max_commute_km,
        sectors_of_interest=snapshot.sectors_of_interest,
        experience_occupations=snapshot.experience_occupations,
        education_level=snapshot.education_level,
        available_from=snapshot.available_from,
        matching_consent=snapshot.consent.matching,
        share_consent=snapshot.consent.share_with_employers,
        contact_emails=sorted({str(c.email).lower() for c in snapshot.contacts}),
    )


def _site(loc: OpeningLocation, field: str) -> WorkSite:
    place = find_place(loc.municipality) if loc.municipality else None
    if loc.municipality and place is None and loc.lat is None:
        raise RuleViolation(field, f"unknown place {loc.municipality!r}")
    lat = loc.lat if loc.lat is not None else place.lat if place else None
    lon = loc.lon if loc.lon is not None else place.lon if place else None
    assert lat is not None, "OpeningLocation guarantees a place or coordinates"
    assert lon is not None
    name = place.name if place else loc.municipality
    return WorkSite(municipality=name, postcode=loc.postcode, lat=lat, lon=lon)


def opening_from(report: OpeningReportedV1, source: str, previous: Opening | None) -> Opening:
    main = _site(report.location, "location.municipality")
    others: list[WorkSite] = []
    for i, loc in enumerate(report.other_locations):
        try:
            site = _site(loc, f"other_locations.{i}.municipality")
        except RuleViolation:
            # the importers leave such places out with a notice; a publisher's event
            # keeps the places that can be located, as the importers do
            log.warning("opening %s: other place %d cannot be located", report.source_ref, i)
            continue
        if site != main and site not in others:
            others.append(site)
    now = datetime.now(UTC)
    return Opening(
        opening_id=previous.opening_id if previous else uuid.uuid4(),
        source=source,
        source_ref=report.source_ref,
        district_id=report.district_id,
        opening_type=report.opening_type,
        title=report.title,
        employer=report.employer,
        occupation_code=report.occupation_code,
        sector=report.sector,
        required_german_level=report.required_german_level,
        municipality=main.municipality,
        postcode=main.postcode,
        lat=main.lat,
        lon=main.lon,
        other_locations=others,
        start_date=report.start_date,
        seats=report.seats,
        seats_taken=previous.seats_taken if previous else 0,
        description=report.description,
        german_level_rule=report.german_level_rule,
        source_url=report.source_url,
        source_modified_at=report.source_modified_at,
        agency_occupation_code=report.agency_occupation_code,
        suitable_for_refugees=report.suitable_for_refugees,
        published_at=previous.published_at if previous else now,
        updated_at=now,
    )


def suggestion_doc(s: Suggestion) -> dict[str, Any]:
    o = s.opening
    return {
        "opening_id": o.opening_id,
        "opening_type": o.opening_type.value,
        "title": o.title,
        "employer": o.employer,
        "municipality": o.municipality,
        "distance_km": s.distance_km,
        "score": s.score,
        "reasons": s.reasons,
        "forecast": s.forecast,
    }


def case_facts(case: Case, previous: Stage | None) -> ev.CaseFactsV1:
    return ev.CaseFactsV1(
        case_id=case.case_id,
        person_id=case.person_id,
        district_id=case.district_id,
        opening_id=case.opening_id,
        opening_type=case.opening_type,
        sector=case.sector,
        stage=case.stage.value,
        previous_stage=previous.value if previous else None,
        on=case.history[-1].on,
        closing_reason=case.closing_reason.value if case.closing_reason else None,
    )


def opening_facts(o: Opening) -> ev.OpeningFactsV1:
    return ev.OpeningFactsV1(
        opening_id=o.opening_id,
        district_id=o.district_id,
        source=o.source,
        source_ref=o.source_ref,
        opening_type=o.opening_type,
        title=o.title,
        employer=o.employer,
        occupation_code=o.occupation_code,
        sector=o.sector,
        required_german_level=o.required_german_level,
        municipality=o.municipality,
        start_date=o.start_date,
        seats_free=o.seats_free,
    )
