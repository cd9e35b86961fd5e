"""Sample people, openings and events, valid by default: tests change one thing; the
demo, chaos and benchmarks build their populations from the same builders."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from lotse_shared.contracts import courses as c
from lotse_shared.contracts import intake as i
from lotse_shared.contracts import notifications as n
from lotse_shared.contracts import partner as p
from lotse_shared.contracts import placement as pl
from lotse_shared.contracts.common import (
    CefrLevel,
    ContactRole,
    CourseType,
    OpeningType,
    ResidenceStatus,
    Sector,
    WorkPermission,
)
from lotse_shared.contracts.envelope import Event

TODAY = date(2026, 11, 24)
CASEWORKER = "petra.schmidt@landkreis-kassel.example"
MENTOR = "j.becker@paten.example"  # the sample person's mentor (Berufspate)
COURSE_REF = p.CourseRef(provider="VHS Region Kassel", course_ref="IK-1")


def person_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "given_name": "Amal",
        "family_name": "Haddad",
        "birth_year": 1997,
        "municipality": "Baunatal",
        "german_level": "A2",
        "work_experience": [{"occupation_code": "51312", "title": "Lager", "years": 2}],
        "sectors_of_interest": ["logistik"],
        "residence_status": "aufenthaltserlaubnis",
        "work_permission": "allowed",
        "driving_licence": False,
        "max_commute_km": 25,
        "consent": {"matching": True, "share_with_employers": True, "email_notifications": True},
        "contacts": [
            {"role": "caseworker", "name": "Petra Schmidt", "email": CASEWORKER},
            {"role": "mentor", "name": "Jürgen Becker", "email": MENTOR},
        ],
    }
    body.update(changes)
    return body


def snapshot(**changes: Any) -> i.PersonSnapshotV1:
    data: dict[str, Any] = {
        "person_id": uuid.uuid4(),
        "district_id": "kassel",
        "revision": 1,
        "display_name": "Amal Haddad",
        "birth_year": 1997,
        "municipality": "Baunatal",
        "german_level": CefrLevel.A2,
        "residence_status": ResidenceStatus.AUFENTHALTSERLAUBNIS,
        "work_permission": WorkPermission.ALLOWED,
        "driving_licence": False,
        "max_commute_km": 25,
        "sectors_of_interest": [Sector.LOGISTIK],
        "experience_occupations": ["51312"],
        "consent": i.Consent(matching=True, share_with_employers=True, email_notifications=True),
        "contacts": [
            i.ResponsibleContact(
                role=ContactRole.CASEWORKER, name="Petra Schmidt", email=CASEWORKER
            ),
            i.ResponsibleContact(role=ContactRole.MENTOR, name="Jürgen Becker", email=MENTOR),
        ],
    }
    data.update(changes)
    return i.PersonSnapshotV1(**data)


def opening_report(**changes: Any) -> p.OpeningReportedV1:
    data: dict[str, Any] = {
        "source_ref": f"REF-{uuid.uuid4().hex[:8]}",
        "opening_type": OpeningType.AUSBILDUNG,
        "title": "Ausbildung Fachkraft für Lagerlogistik",
        "employer": "Nordhessen Logistik GmbH",
        "occupation_code": "51322",
        "sector": Sector.LOGISTIK,
        "required_german_level": CefrLevel.B1,
        "location": p.OpeningLocation(municipality="Kassel"),
        "start_date": TODAY + timedelta(days=60),
    }
    data.update(changes)
    return p.OpeningReportedV1(**data)


def erasure(person_id: uuid.UUID, at: datetime | None = None) -> i.PersonErased:
    """intake's announcement that a person of Kassel was erased."""
    return i.PersonErased.create(
        i.PersonErasedV1(
            person_id=person_id,
            district_id="kassel",
            erasure_id=uuid.uuid4(),
            erased_at=at or datetime.now(UTC),
        ),
        producer="intake",
    )


def enrolment_facts(person_id: uuid.UUID | None = None) -> dict[str, Any]:
    return {
        "enrolment_id": uuid.uuid4(),
        "person_id": person_id or uuid.uuid4(),
        "district_id": "kassel",
        "course_id": uuid.uuid4(),
        "course_type": CourseType.INTEGRATIONSKURS,
        "target_level": CefrLevel.B1,
    }


def course_details(**changes: Any) -> p.CourseDetails:
    data: dict[str, Any] = {
        **COURSE_REF.model_dump(),
        "course_type": CourseType.INTEGRATIONSKURS,
        "title": "Integrationskurs",
        "target_level": CefrLevel.B1,
        "starts_on": TODAY - timedelta(days=300),
        "ends_on": TODAY,
        "municipality": "Baunatal",
    }
    data.update(changes)
    return p.CourseDetails(**data)


def caseworker_contact(number: int) -> i.ResponsibleContact:
    """One of ten caseworkers, for populations of many people."""
    return i.ResponsibleContact(
        role=ContactRole.CASEWORKER,
        name=f"Caseworker {number % 10}",
        email=f"caseworker{number % 10}@landkreis-kassel.example",
    )


def suggestions_ready(person_id: uuid.UUID, **changes: Any) -> pl.SuggestionsReady:
    """Suggestions after a completion: one opening in Kassel, with its reasons."""
    data: dict[str, Any] = {
        "suggestion_set_id": uuid.uuid4(),
        "person_id": person_id,
        "district_id": "kassel",
        "trigger": "course_completed",
        "german_level": CefrLevel.B1,
        "suggestions": [
            pl.SuggestionV1(
                opening_id=uuid.uuid4(),
                opening_type=OpeningType.AUSBILDUNG,
                title="Ausbildung Fachkraft für Lagerlogistik",
                employer="NH Logistik",
                municipality="Kassel",
                distance_km=8.1,
                score=71.0,
                reasons=["B1 erreicht, Stelle verlangt B1", "8 km, ohne Führerschein"],
            )
        ],
    }
    data.update(changes)
    return pl.SuggestionsReady.create(pl.SuggestionsReadyV1(**data), producer="placement")


def suggestion(
    title: str,
    score: float = 60.0,
    *,
    forecast: bool = False,
    opening_id: uuid.UUID | None = None,
) -> pl.SuggestionV1:
    """One suggested internship in Kassel, 8 km away, with its two reasons."""
    return pl.SuggestionV1(
        opening_id=opening_id or uuid.uuid4(),
        opening_type=OpeningType.PRAKTIKUM,
        title=title,
        employer="NH Logistik",
        municipality="Kassel",
        distance_km=8.0,
        score=score,
        reasons=["Interesse an Logistik", "kurzer Arbeitsweg (8 km)"],
        forecast=forecast,
    )


def suggested(
    person_id: uuid.UUID,
    *items: pl.SuggestionV1,
    cause: c.CourseCompleted | None = None,
    level: CefrLevel = CefrLevel.A2,
) -> pl.SuggestionsReady:
    """Suggestions after a completion (``cause``, at B1) or a new opening (at ``level``)."""
    return pl.SuggestionsReady.create(
        pl.SuggestionsReadyV1(
            suggestion_set_id=uuid.uuid4(),
            person_id=person_id,
            district_id="kassel",
            trigger="course_completed" if cause else "opening_published",
            german_level=CefrLevel.B1 if cause else level,
            suggestions=list(items),
        ),
        producer="placement",
        cause=cause,
    )


def opening_published(opening_id: uuid.UUID, seats_free: int = 1) -> pl.OpeningPublished:
    """An apprenticeship in Kassel, as placement announces it."""
    return pl.OpeningPublished.create(
        pl.OpeningFactsV1(
            opening_id=opening_id,
            district_id="kassel",
            source="ba-jobsuche",
            source_ref="R1",
            opening_type=OpeningType.AUSBILDUNG,
            title="Ausbildung",
            employer="E",
            occupation_code="51322",
            sector=Sector.LOGISTIK,
            required_german_level=CefrLevel.B1,
            municipality="Kassel",
            start_date=TODAY,
            seats_free=seats_free,
        ),
        producer="placement",
    )


def one_of_each_event() -> list[Event]:
    """A valid instance of every event type in the catalogue."""
    snap = snapshot()
    facts = enrolment_facts(snap.person_id)
    decision = pl.SuggestionDecisionV1(
        person_id=snap.person_id,
        district_id="kassel",
        opening_id=uuid.uuid4(),
        suggestion_set_id=uuid.uuid4(),
    )
    case_facts = pl.CaseFactsV1(
        case_id=uuid.uuid4(),
        person_id=snap.person_id,
        district_id="kassel",
        opening_id=decision.opening_id,
        opening_type=OpeningType.PRAKTIKUM,
        sector=Sector.GASTRONOMIE,
        stage="interview",
        previous_stage="proposed",
        on=TODAY,
    )
    suggestion = pl.SuggestionV1(
        opening_id=uuid.uuid4(),
        opening_type=OpeningType.PRAKTIKUM,
        title="Praktikum Küche",
        employer="Landgasthof",
        municipality="Vellmar",
        distance_km=4.2,
        score=55.0,
        reasons=["A2 erreicht, Stelle verlangt A2"],
    )
    return [
        i.PersonRegistered.create(snap, producer="intake"),
        i.PersonUpdated.create(snap.model_copy(update={"revision": 2}), producer="intake"),
        erasure(snap.person_id, at=datetime(2026, 11, 24, 9, 0, tzinfo=UTC)),
        c.Enrolled.create(
            c.EnrolledV1(**facts, starts_on=TODAY, ends_on=TODAY), producer="courses"
        ),
        c.AttendanceRecorded.create(
            c.AttendanceRecordedV1(**facts, session_date=TODAY, present=True, attendance_rate=1.0),
            producer="courses",
        ),
        c.ExamResultRecorded.create(
            c.ExamResultRecordedV1(
                **facts, exam="dtz", level_tested=None, level_reached=CefrLevel.B1, taken_on=TODAY
            ),
            producer="courses",
        ),
        c.CourseCompleted.create(
            c.CourseCompletedV1(**facts, level_reached=CefrLevel.B1, completed_on=TODAY),
            producer="courses",
        ),
        c.CourseDropped.create(
            c.CourseDroppedV1(**facts, dropped_on=TODAY, reason="moved away"), producer="courses"
        ),
        opening_published(uuid.uuid4()),
        pl.OpeningClosed.create(
            pl.OpeningClosedV1(
                opening_id=uuid.uuid4(),
                district_id="kassel",
                source="ba-jobsuche",
                source_ref="R1",
                reason="filled",
            ),
            producer="placement",
        ),
        pl.SuggestionsReady.create(
            pl.SuggestionsReadyV1(
                suggestion_set_id=uuid.uuid4(),
                person_id=snap.person_id,
                district_id="kassel",
                trigger="course_completed",
                german_level=CefrLevel.B1,
                suggestions=[suggestion],
            ),
            producer="placement",
        ),
        pl.SuggestionAccepted.create(
            decision.model_copy(update={"case_id": case_facts.case_id}), producer="placement"
        ),
        pl.SuggestionDismissed.create(
            decision.model_copy(update={"reason": "zu weit"}), producer="placement"
        ),
        pl.CaseStageChanged.create(case_facts, producer="placement"),
        pl.CaseClosed.create(
            case_facts.model_copy(update={"closing_reason": "moved_away"}), producer="placement"
        ),
        n.NotificationDelivered.create(
            n.NotificationDeliveredV1(
                notification_id=uuid.uuid4(),
                person_id=snap.person_id,
                district_id="kassel",
                recipient_role=ContactRole.CASEWORKER,
                channel="email",
                kind="suggestions_ready",
            ),
            producer="notifications",
        ),
        n.NotificationFailed.create(
            n.NotificationFailedV1(
                notification_id=uuid.uuid4(),
                person_id=snap.person_id,
                district_id="kassel",
                recipient_role=ContactRole.CASEWORKER,
                channel="email",
                kind="suggestions_ready",
                attempts=1,
                error="550 5.1.1 Mailbox unknown",
            ),
            producer="notifications",
        ),
        p.EnrolmentReported.create(
            p.EnrolmentReportedV1(person_id=snap.person_id, course=course_details()),
            producer="vhs-region-kassel",
        ),
        p.AttendanceReported.create(
            p.AttendanceReportedV1(
                person_id=snap.person_id, course=COURSE_REF, session_date=TODAY, present=False
            ),
            producer="vhs-region-kassel",
        ),
        p.ExamResultReported.create(
            p.ExamResultReportedV1(
                person_id=snap.person_id, course=COURSE_REF, exam="dtz", result="B1", taken_on=TODAY
            ),
            producer="vhs-region-kassel",
        ),
        p.CompletionReported.create(
            p.CompletionReportedV1(person_id=snap.person_id, course=COURSE_REF, completed_on=TODAY),
            producer="vhs-region-kassel",
        ),
        p.DropoutReported.create(
            p.DropoutReportedV1(
                person_id=snap.person_id, course=COURSE_REF, dropped_on=TODAY, reason="moved away"
            ),
            producer="vhs-region-kassel",
        ),
        p.OpeningReported.create(opening_report(), producer="ba-jobsuche"),
        p.OpeningWithdrawn.create(p.OpeningWithdrawnV1(source_ref="R1"), producer="ba-jobsuche"),
        p.OpeningFeedReported.create(
            p.OpeningFeedReportedV1(
                format="jobsuche",
                document={"stellenangebote": [{"refnr": "R1", "titel": "Lagerhelfer/in"}]},
                angebotsart=1,
                full_feed=True,
            ),
            producer="ba-jobsuche",
        ),
        pl.ImportCompleted.create(
            pl.ImportCompletedV1(
                import_id=uuid.uuid4(),
                source="ihk-kassel",
                format="csv",
                full_feed=False,
                received=2,
                created=1,
                updated=0,
                unchanged=0,
                closed=0,
                rejected=[pl.ImportRejectionV1(ref="R2", row=3, reason="Betrieb: empty")],
            ),
            producer="placement",
        ),
    ]
