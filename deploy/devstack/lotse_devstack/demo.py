"""The main flow, end to end, on a freshly started stack.

Three people are registered with their caseworkers; a language school reports
their enrolment over AMQP; the employment agency and the chamber of crafts
publish openings; one person passes the DTZ at B1 and completes the course. No
one presses a button after that: placement computes suggestions and the
caseworker's inbox (and mailbox) receives them with reasons.
"""

from __future__ import annotations

import asyncio
import textwrap
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from lotse_shared.contracts import partner as p
from lotse_shared.contracts.common import CefrLevel, CourseType, OpeningType, Sector

from .observe import eventually
from .partner import PartnerPublisher
from .stack import LocalStack

SCHOOL = "vhs-region-kassel"
COURSE = p.CourseRef(provider="VHS Region Kassel", course_ref="IK-2026-14")

PEOPLE: list[dict[str, Any]] = [
    {
        "given_name": "Amal",
        "family_name": "Haddad",
        "birth_year": 1997,
        "municipality": "Baunatal",
        "german_level": "A2",
        "languages": [{"language": "ar", "mother_tongue": True}],
        "education": {"level": "mittlerer_abschluss", "years_of_school": 10},
        "work_experience": [{"occupation_code": "51312", "title": "Lagerarbeit", "years": 2}],
        "sectors_of_interest": ["logistik", "handel"],
        "residence_status": "aufenthaltserlaubnis",
        "work_permission": "allowed",
        "driving_licence": False,
        "max_commute_km": 25,
        "consent": {"matching": True, "share_with_employers": True, "email_notifications": True},
        "contacts": [
            {
                "role": "caseworker",
                "name": "Petra Schmidt",
                "email": "petra.schmidt@landkreis-kassel.example",
            },
            {"role": "mentor", "name": "Jürgen Becker", "email": "j.becker@berufspaten.example"},
        ],
    },
    {
        "given_name": "Yonas",
        "family_name": "Tesfay",
        "birth_year": 2004,
        "municipality": "Hofgeismar",
        "german_level": "A2",
        "sectors_of_interest": ["handwerk", "bau"],
        "residence_status": "aufenthaltsgestattung",
        "work_permission": "needs_approval",
        "driving_licence": False,
        "max_commute_km": 20,
        "consent": {"matching": True, "share_with_employers": True, "email_notifications": True},
        "contacts": [
            {
                "role": "caseworker",
                "name": "Murat Yilmaz",
                "email": "murat.yilmaz@landkreis-kassel.example",
            },
        ],
    },
    {
        "given_name": "Olena",
        "family_name": "Kovalenko",
        "birth_year": 1989,
        "municipality": "Vellmar",
        "german_level": "B1",
        "education": {"level": "university"},
        "sectors_of_interest": ["gastronomie"],
        "residence_status": "aufenthaltserlaubnis",
        "work_permission": "allowed",
        "driving_licence": True,
        "max_commute_km": 30,
        "consent": {"matching": True, "share_with_employers": True, "email_notifications": True},
        "contacts": [
            {
                "role": "caseworker",
                "name": "Petra Schmidt",
                "email": "petra.schmidt@landkreis-kassel.example",
            },
        ],
    },
]


def integration_course(today: date) -> p.CourseDetails:
    """The demo's course, as the school reports it: ending today."""
    return p.CourseDetails(
        **COURSE.model_dump(),
        course_type=CourseType.INTEGRATIONSKURS,
        title="Integrationskurs Modul 1-6",
        target_level=CefrLevel.B1,
        starts_on=today - timedelta(days=300),
        ends_on=today,
        municipality="Baunatal",
        teaching_units=700,
    )


def openings(today: date) -> list[tuple[str, p.OpeningReportedV1]]:
    def loc(m: str) -> p.OpeningLocation:
        return p.OpeningLocation(municipality=m)

    return [
        (
            "ba-jobsuche",
            p.OpeningReportedV1(
                source_ref="10001-1000123456-S",
                opening_type=OpeningType.AUSBILDUNG,
                title="Ausbildung Fachkraft für Lagerlogistik",
                employer="Nordhessen Logistik GmbH",
                occupation_code="51322",
                sector=Sector.LOGISTIK,
                required_german_level=CefrLevel.B1,
                location=loc("Kassel"),
                start_date=today + timedelta(days=60),
                seats=2,
            ),
        ),
        (
            "ba-jobsuche",
            p.OpeningReportedV1(
                source_ref="10001-1000123999-S",
                opening_type=OpeningType.EINSTIEGSQUALIFIZIERUNG,
                title="EQ Verkauf im Baumarkt",
                employer="Baumarkt Baunatal",
                occupation_code="62102",
                sector=Sector.HANDEL,
                required_german_level=CefrLevel.B1,
                location=loc("Baunatal"),
                start_date=today + timedelta(days=30),
            ),
        ),
        (
            "hwk-kassel",
            p.OpeningReportedV1(
                source_ref="HWK-2026-0815",
                opening_type=OpeningType.AUSBILDUNG,
                title="Ausbildung Anlagenmechaniker/in SHK",
                employer="Haustechnik Hofgeismar",
                occupation_code="34212",
                sector=Sector.HANDWERK,
                required_german_level=CefrLevel.B1,
                location=loc("Hofgeismar"),
                start_date=today + timedelta(days=200),
            ),
        ),
        (
            "ba-jobsuche",
            p.OpeningReportedV1(
                source_ref="10001-1000124001-S",
                opening_type=OpeningType.PRAKTIKUM,
                title="Praktikum Küche",
                employer="Landgasthof Vellmar",
                occupation_code="29301",
                sector=Sector.GASTRONOMIE,
                required_german_level=CefrLevel.A2,
                location=loc("Vellmar"),
                start_date=today + timedelta(days=14),
            ),
        ),
        (
            "ihk-kassel",
            p.OpeningReportedV1(
                source_ref="IHK-77-2026",
                opening_type=OpeningType.BESCHAEFTIGUNG,
                title="Sachbearbeitung Disposition",
                employer="Spedition Wolfhagen",
                occupation_code="51613",
                sector=Sector.BUERO,
                required_german_level=CefrLevel.B2,
                location=loc("Wolfhagen"),
            ),
        ),
    ]


def _print_inbox(recipient: str, items: list[dict[str, Any]]) -> None:
    print(f"\n=== Posteingang von {recipient}: {len(items)} Benachrichtigungen ===")
    for n in items:
        state = "ungelesen" if n["read_at"] is None else "gelesen"
        print(f"\n--- [{state}] {n['subject']}  (E-Mail: {n['email']['status']})")
        print(textwrap.indent(n["body"].rstrip(), "    "))


def _print_upcoming(entries: list[dict[str, Any]]) -> None:
    """Suggestions caused by new openings: not an alert each, but the next digest."""
    print(f"\n=== Für die nächste Tagesübersicht gesammelt: {len(entries)} Vorschläge ===")
    for e in entries:
        due = datetime.fromisoformat(e["due_at"]).astimezone(ZoneInfo("Europe/Berlin"))
        print(f"   {e['person']}: {e['title']} (Punkte {e['score']:.0f}, {due:%d.%m. %H:%M})")


COORDINATOR = "bildungskoordination@landkreis-kassel.example"


def as_user(stack: LocalStack, role: str, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token(role, user)}"}


async def run_demo(stack: LocalStack) -> int:
    today = date.today()
    caseworker = PEOPLE[0]["contacts"][0]["email"]
    # the district's coordinator registers people and watches the flow; the caseworker
    # reads her own inbox (each with a token from the local dev keys)
    coordinator = as_user(stack, "coordinator", COORDINATOR)
    petra = as_user(stack, "caseworker", caseworker)
    async with httpx.AsyncClient(timeout=10, headers=coordinator) as http:
        print("1. intake: registering three people with their caseworkers")
        ids = []
        for person in PEOPLE:
            r = await http.post(f"{stack.url('intake')}/people", json=person)
            r.raise_for_status()
            ids.append(r.json()["person_id"])
            print(f"   {person['given_name']} {person['family_name']} -> {ids[-1]}")

        async with PartnerPublisher(stack.config.rabbit_url, stack.config.namespace) as pub:
            print("2. school (AMQP): enrolment in an Integrationskurs")
            details = integration_course(today)
            for pid in ids:
                await pub.publish(
                    p.EnrolmentReported.create(
                        p.EnrolmentReportedV1(person_id=pid, course=details), producer=SCHOOL
                    )
                )

            async def enrolled() -> bool:
                r = await http.get(
                    f"{stack.url('courses')}/enrolments", params={"person_id": ids[0]}
                )
                return r.status_code == 200 and len(r.json()) == 1

            await eventually(enrolled, timeout_s=30, what="the enrolment", every_s=0.2)

            print("3. employment agency and chambers (AMQP): five openings")
            for source, report in openings(today):
                await pub.publish(p.OpeningReported.create(report, producer=source))

            async def all_openings() -> bool:
                r = await http.get(f"{stack.url('placement')}/openings")
                return len(r.json()) == 5

            await eventually(all_openings, timeout_s=30, what="the openings", every_s=0.2)

            print("4. school (AMQP): DTZ result B1 and course completion for Amal Haddad")
            await pub.publish(
                p.ExamResultReported.create(
                    p.ExamResultReportedV1(
                        person_id=ids[0],
                        course=COURSE,
                        exam="dtz",
                        result="B1",
                        taken_on=today - timedelta(days=3),
                    ),
                    producer=SCHOOL,
                )
            )
            await pub.publish(
                p.CompletionReported.create(
                    p.CompletionReportedV1(person_id=ids[0], course=COURSE, completed_on=today),
                    producer=SCHOOL,
                )
            )

        async def course_alert() -> list[dict[str, Any]] | None:
            r = await http.get(f"{stack.url('notifications')}/notifications", headers=petra)
            items: list[dict[str, Any]] = r.json()
            # Amal's alert after her course (Olena's may name the same opening earlier)
            done = any(
                n["kind"] == "course_completed"
                and "Amal Haddad" in n["subject"]
                and "Lagerlogistik" in n["body"]
                for n in items
            )
            return items if done else None

        async def course_completed() -> bool:
            r = await http.get(f"{stack.url('courses')}/enrolments", params={"person_id": ids[0]})
            return r.status_code == 200 and [e["status"] for e in r.json()] == ["completed"]

        print("5. waiting for placement and notifications (no one presses a button) ...")
        # placement also re-matches people when openings arrive, so an alert naming the
        # opening can come before the course's: first the completion, then the alert
        await eventually(course_completed, timeout_s=30, what="the completion", every_s=0.2)
        items = await eventually(
            course_alert, timeout_s=60, what="the caseworker's alert", every_s=0.2
        )
        await asyncio.sleep(1.0)  # let the email go out
        r = await http.get(f"{stack.url('notifications')}/notifications", headers=petra)
        _print_inbox(caseworker, r.json())
        r = await http.get(f"{stack.url('notifications')}/notifications/upcoming", headers=petra)
        _print_upcoming(r.json())

        r = await http.get(f"{stack.url('placement')}/people/{ids[1]}/evaluation")
        print(f"\n=== Warum nicht? Yonas Tesfay ({len(r.json())} offene Stellen geprüft) ===")
        for e in r.json()[:3]:
            failed = [x["reason"] for x in e["rules"] if not x["passed"]]
            print(f"   {e['title']}: {'; '.join(failed) or 'passt'}")

    if stack.mail_sink is not None:
        print(f"\n=== SMTP: {len(stack.mail_sink.mails)} E-Mails angenommen ===")
        for mail in stack.mail_sink.mails:
            print(f"   an {', '.join(mail.rcpt_tos)}: {mail.subject}")
    if stack.config.portal:
        print("\n=== Arbeitsplatz im Browser ===")
        print(f"   {stack.url('portal')}  – anmelden als {caseworker} (Fallmanagerin);")
        print(f"   `make up` hält ihn offen: {caseworker} sieht Amal Haddads Akte mit ihren")
        print("   Vorschlägen, kann einen vorschlagen und den Fall bis 'begonnen' führen.")
    return 0 if items else 1
