"""Who is told, and what the alert says."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from lotse_notifications.domain.model import Kind, Recipients, next_attempt
from lotse_notifications.templates import Templates
from lotse_shared.contracts.common import ContactRole, Language
from lotse_shared.contracts.intake import ResponsibleContact


def recipients() -> Recipients:
    return Recipients(
        person_id=uuid.uuid4(),
        district_id="kassel",
        revision=1,
        display_name="Amal Haddad",
        email_consent=True,
        contacts=[
            ResponsibleContact(role=ContactRole.CASEWORKER, name="Petra", email="p@lk.example"),
            ResponsibleContact(role=ContactRole.MENTOR, name="Jürgen", email="j@paten.example"),
            ResponsibleContact(
                role=ContactRole.INTEGRATION_GUIDE, name="Lina", email="l@lotsen.example"
            ),
            ResponsibleContact(role=ContactRole.CASEWORKER, name="Petra", email="P@lk.example"),
        ],
    )


def test_routing_table_picks_roles_and_never_the_same_address_twice() -> None:
    r = recipients()
    assert [c.name for c in r.told_about(Kind.SUGGESTIONS_READY)] == ["Petra"]
    assert [c.name for c in r.told_about(Kind.COURSE_DROPPED)] == ["Petra", "Jürgen"]


def facts() -> dict[str, object]:
    return {
        "person": "Amal Haddad",
        "recipient": "Petra Schmidt",
        "german_level": "B1",
        "inbox_url": "http://inbox",
        "suggestions": [
            {
                "title": "Ausbildung Lagerlogistik",
                "employer": "NH Logistik",
                "municipality": "Kassel",
                "opening_type": "ausbildung",
                "reasons": ["B1 erreicht, Stelle verlangt B1", "8 km, ohne Führerschein"],
            }
        ],
    }


def test_german_template_names_person_suggestions_and_reasons() -> None:
    subject, body = Templates().render(Kind.SUGGESTIONS_READY, Language.DE, facts())
    assert subject == "Neue Vorschläge für Amal Haddad: 1 passende Stelle"
    assert "Guten Tag Petra Schmidt" in body
    assert "1. Ausbildung Lagerlogistik – NH Logistik, Kassel (Ausbildung)" in body
    assert "Warum: B1 erreicht, Stelle verlangt B1; 8 km, ohne Führerschein" in body
    assert "http://inbox" in body


def test_english_template() -> None:
    subject, body = Templates().render(Kind.SUGGESTIONS_READY, Language.EN, facts())
    assert subject == "New suggestions for Amal Haddad: 1 matching opening"
    assert "(apprenticeship)" in body


def test_retry_delays_grow() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    delays = [next_attempt(n, now) - now for n in range(1, 8)]
    assert delays == sorted(delays)
    assert delays[0] == timedelta(seconds=5)
    assert delays[-1] == timedelta(minutes=30)
