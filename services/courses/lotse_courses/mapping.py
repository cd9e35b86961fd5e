"""What courses tells other services, built from its own model."""

from __future__ import annotations

from .domain.model import Enrolment

PRODUCER = "courses"


def enrolment_facts(e: Enrolment) -> dict[str, object]:
    """The facts every enrolment event carries."""
    return {
        "enrolment_id": e.enrolment_id,
        "person_id": e.person_id,
        "district_id": e.district_id,
        "course_id": e.course_id,
        "course_type": e.course_type,
        "target_level": e.target_level,
    }
