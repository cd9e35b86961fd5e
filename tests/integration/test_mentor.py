"""Issue #13: mentors (Berufspaten) and integration guides (Integrationslotsen) hold the
token role ``mentor``. Each service, over a real broker and database: a mentor reads
the people whose responsible contacts name them (as a caseworker does, by email, in
their own district), gets 404 for anyone else's person like an unknown id, and 403 for
every change to a person's record; lists and queries by body show only their people.
Their own inbox is theirs to read and tidy.
"""

from __future__ import annotations

import pytest

from lotse_courses.bootstrap import create_app as courses_app
from lotse_devstack.samples import (
    CASEWORKER,
    MENTOR,
    TODAY,
    course_details,
    enrolment_facts,
    opening_report,
    person_body,
    snapshot,
)
from lotse_intake.bootstrap import create_app as intake_app
from lotse_notifications.bootstrap import create_app as notifications_app
from lotse_placement.bootstrap import create_app as placement_app
from lotse_shared.auth import Role
from lotse_shared.contracts import partner as p
from lotse_shared.contracts.common import CefrLevel, ContactRole, OpeningType, Sector
from lotse_shared.contracts.courses import CourseDropped, CourseDroppedV1
from lotse_shared.contracts.intake import PersonRegistered, ResponsibleContact
from tests.support import EventTap, applied, bearer, eventually, publish, running

PETRA_ONLY = [ResponsibleContact(role=ContactRole.CASEWORKER, name="Petra", email=CASEWORKER)]


def mentor_of_amal(app) -> dict[str, str]:
    """The sample person's mentor (lotse_devstack/samples.py), in Kassel."""
    return bearer(app, Role.MENTOR, user=MENTOR)


async def test_intake_a_mentor_reads_the_people_they_accompany_and_changes_none(
    service_env,
) -> None:
    app = intake_app()
    async with running(app) as http:  # as Petra, the caseworker of both
        amal = (await http.post("/people", json=person_body())).json()["person_id"]
        olena_body = person_body(
            given_name="Olena",
            family_name="Kovalenko",
            contacts=[{"role": "caseworker", "name": "Petra Schmidt", "email": CASEWORKER}],
        )
        olena = (await http.post("/people", json=olena_body)).json()["person_id"]
        mentor = mentor_of_amal(app)

        r = await http.get(f"/people/{amal}", headers=mentor)
        assert r.status_code == 200, r.text
        assert r.json()["given_name"] == "Amal"
        assert (await http.get(f"/people/{olena}", headers=mentor)).status_code == 404
        listed = (await http.get("/people", headers=mentor)).json()["items"]
        assert [p["person_id"] for p in listed] == [amal]
        r = await http.get("/people", params={"contact_email": CASEWORKER}, headers=mentor)
        assert r.json()["items"] == []  # naming the caseworker shows no more
        r = await http.get("/people", params={"q": "olena"}, headers=mentor)
        assert r.json()["items"] == []

        # reading is all: no change to the people they accompany, nor a new one
        for method, url, body in [
            ("PATCH", f"/people/{amal}", {"german_level": "B1"}),
            ("PUT", f"/people/{amal}", person_body()),
            ("POST", "/people", person_body()),
            ("POST", f"/people/{amal}/erasure", {"reason": "Art. 17 DSGVO"}),
        ]:
            r = await http.request(method, url, json=body, headers=mentor)
            assert r.status_code == 403, (method, url, r.text)
        assert (await http.get("/audit", headers=mentor)).status_code == 403
        assert (await http.get(f"/people/{amal}")).json()["german_level"] == "A2"

        # another mentor, or the same one with a token of another district: nothing
        stranger = bearer(app, Role.MENTOR, user="other.pate@paten.example")
        assert (await http.get(f"/people/{amal}", headers=stranger)).status_code == 404
        assert (await http.get("/people", headers=stranger)).json()["items"] == []
        elsewhere = bearer(app, Role.MENTOR, user=MENTOR, district="fulda")
        assert (await http.get(f"/people/{amal}", headers=elsewhere)).status_code == 404
        assert (await http.get("/people", headers=elsewhere)).json()["items"] == []


async def test_courses_a_mentor_reads_enrolments_of_their_people_only(
    service_env, rabbit_url, namespace
) -> None:
    app = courses_app()
    amal = PersonRegistered.create(snapshot(), producer="intake")
    olena = PersonRegistered.create(
        snapshot(display_name="Olena Kovalenko", contacts=PETRA_ONLY), producer="intake"
    )
    async with running(app) as http:  # as Petra
        await publish(rabbit_url, namespace, amal, olena)
        await applied(app, amal)
        await applied(app, olena)
        coordinator = bearer(app, Role.COORDINATOR, user="k@landkreis-kassel.example")
        r = await http.post(
            "/courses", json=course_details().model_dump(mode="json"), headers=coordinator
        )
        assert r.status_code == 201, r.text
        course_id = r.json()["course_id"]
        enrolments = {}
        for event in (amal, olena):
            pid = str(event.payload.person_id)
            r = await http.post("/enrolments", json={"person_id": pid, "course_id": course_id})
            assert r.status_code == 201, r.text
            enrolments[pid] = r.json()["enrolment_id"]
        amal_id, olena_id = str(amal.payload.person_id), str(olena.payload.person_id)
        mentor = mentor_of_amal(app)

        # the district's courses: no personal data
        assert [c["course_id"] for c in (await http.get("/courses", headers=mentor)).json()] == [
            course_id
        ]
        assert (await http.get(f"/courses/{course_id}", headers=mentor)).status_code == 200
        # Amal's enrolment, not Olena's
        r = await http.get("/enrolments", params={"person_id": amal_id}, headers=mentor)
        assert [e["enrolment_id"] for e in r.json()] == [enrolments[amal_id]]
        r = await http.get("/enrolments", params={"person_id": olena_id}, headers=mentor)
        assert r.status_code == 404
        r = await http.get(f"/enrolments/{enrolments[amal_id]}", headers=mentor)
        assert r.status_code == 200, r.text
        r = await http.get(f"/enrolments/{enrolments[olena_id]}", headers=mentor)
        assert r.status_code == 404
        body = {"person_ids": [amal_id, olena_id]}
        r = await http.post("/enrolments/query", json=body, headers=mentor)
        assert r.status_code == 200, r.text
        assert [e["person_id"] for e in r.json()] == [amal_id]

        # no attendance, exam, completion, drop-out, enrolment or course from a mentor
        day = TODAY.isoformat()
        enrolment = enrolments[amal_id]
        for url, payload in [
            (f"/enrolments/{enrolment}/attendance", {"session_date": day, "present": True}),
            (f"/enrolments/{enrolment}/exams", {"exam": "dtz", "result": "B1", "taken_on": day}),
            (f"/enrolments/{enrolment}/completion", {"completed_on": day}),
            (f"/enrolments/{enrolment}/dropout", {"dropped_on": day, "reason": "x"}),
            ("/enrolments", {"person_id": amal_id, "course_id": course_id}),
            ("/courses", course_details(course_ref="IK-9").model_dump(mode="json")),
        ]:
            r = await http.post(url, json=payload, headers=mentor)
            assert r.status_code == 403, (url, r.text)
        unchanged = (await http.get(f"/enrolments/{enrolment}")).json()
        assert (unchanged["status"], unchanged["sessions"]) == ("active", [])


async def test_placement_a_mentor_follows_their_people_and_decides_nothing(
    service_env, rabbit_url, namespace
) -> None:
    amal = snapshot()  # Baunatal, A2: the kitchen suits her
    olena = snapshot(display_name="Olena Kovalenko", contacts=PETRA_ONLY)
    people = [PersonRegistered.create(s, producer="intake") for s in (amal, olena)]
    kitchen = opening_report(
        source_ref="KUECHE",
        opening_type=OpeningType.PRAKTIKUM,
        title="Praktikum Küche",
        sector=Sector.GASTRONOMIE,
        occupation_code="29301",
        required_german_level=CefrLevel.A2,
        location=p.OpeningLocation(municipality="Baunatal"),
        seats=5,
    )
    app = placement_app()
    async with EventTap(rabbit_url, namespace, "placement.#") as tap, running(app) as http:
        await publish(rabbit_url, namespace, *people)
        for event in people:
            await applied(app, event)
        await publish(
            rabbit_url, namespace, p.OpeningReported.create(kitchen, producer="ihk-kassel")
        )
        await tap.wait_for("placement.suggestions.ready.v1", count=2)
        mentor = mentor_of_amal(app)
        amal_id, olena_id = str(amal.person_id), str(olena.person_id)

        # the district's openings, and of an opening's candidates only Amal
        listed = (await http.get("/openings", headers=mentor)).json()
        assert [o["source_ref"] for o in listed] == ["KUECHE"]
        opening_id = listed[0]["opening_id"]
        assert (await http.get(f"/openings/{opening_id}", headers=mentor)).status_code == 200
        r = await http.get(f"/openings/{opening_id}/candidates", headers=mentor)
        assert r.status_code == 200, r.text
        assert [c["person_id"] for c in r.json()] == [amal_id]

        # Amal's placement pages, and Olena's answer as if she did not exist
        for path in ("suggestions", "suggestions/open", "evaluation", "cases"):
            r = await http.get(f"/people/{amal_id}/{path}", headers=mentor)
            assert r.status_code == 200, (path, r.text)
            r = await http.get(f"/people/{olena_id}/{path}", headers=mentor)
            assert r.status_code == 404, (path, r.text)
        sets = (await http.get(f"/people/{amal_id}/suggestions", headers=mentor)).json()
        assert sets[0]["suggestions"][0]["opening_id"] == opening_id
        body = {"person_ids": [amal_id, olena_id]}
        r = await http.post("/people/overview", json=body, headers=mentor)
        assert r.status_code == 200, r.text
        assert [o["person_id"] for o in r.json()] == [amal_id]

        # taking up or dismissing a suggestion is the caseworker's decision
        suggestion = f"/people/{amal_id}/suggestions/{opening_id}"
        r = await http.post(f"{suggestion}/accept", json={}, headers=mentor)
        assert r.status_code == 403, r.text
        r = await http.post(f"{suggestion}/dismiss", json={"reason": "x"}, headers=mentor)
        assert r.status_code == 403, r.text
        accepted = await http.post(f"{suggestion}/accept", json={})  # Petra
        assert accepted.status_code == 200, accepted.text
        case_id = accepted.json()["case_id"]
        theirs = await http.post(f"/people/{olena_id}/suggestions/{opening_id}/accept", json={})
        assert theirs.status_code == 200, theirs.text

        # the case: read, not moved on or closed
        r = await http.get(f"/cases/{case_id}", headers=mentor)
        assert r.status_code == 200, r.text
        olena_case = theirs.json()["case_id"]
        assert (await http.get(f"/cases/{olena_case}", headers=mentor)).status_code == 404
        cases = (await http.get(f"/people/{amal_id}/cases", headers=mentor)).json()
        assert [c["case_id"] for c in cases] == [case_id]
        day = TODAY.isoformat()
        for url, payload in [
            (f"/cases/{case_id}/stage", {"stage": "interview", "on": day}),
            (f"/cases/{case_id}/close", {"reason": "other", "on": day}),
            ("/openings", kitchen.model_dump(mode="json")),
            (f"/openings/{opening_id}/close", {"reason": "x"}),
            ("/imports/jobsuche", {"stellenangebote": []}),
        ]:
            r = await http.post(url, json=payload, headers=mentor)
            assert r.status_code == 403, (url, r.text)
        assert (await http.get("/reports/placement", headers=mentor)).status_code == 403
        case = (await http.get(f"/cases/{case_id}")).json()
        assert (case["stage"], case["closed"]) == ("proposed", False)


@pytest.mark.usefixtures("one_alert_per_event")
async def test_notifications_a_mentor_reads_and_tidies_their_own_inbox(
    service_env, smtp, rabbit_url, namespace
) -> None:
    """Mentors are told when a person they accompany drops out of a course; they need
    the inbox to read it. Marking it read or archived is their own inbox's state."""
    amal = snapshot()
    person = PersonRegistered.create(amal, producer="intake")
    dropped = CourseDropped.create(
        CourseDroppedV1(**enrolment_facts(amal.person_id), dropped_on=TODAY, reason="Umzug"),
        producer="courses",
    )
    app = notifications_app()
    async with running(app) as http:  # as Petra, who is told too
        await publish(rabbit_url, namespace, person, dropped)
        mentor = mentor_of_amal(app)

        async def mentors_inbox() -> list[dict]:
            r = await http.get("/notifications", headers=mentor)
            assert r.status_code == 200, r.text
            return r.json()

        [note] = await eventually(mentors_inbox, what="the mentor's alert")
        assert (note["kind"], note["recipient_role"]) == ("course_dropped", "mentor")
        assert note["person_id"] == str(amal.person_id)
        nid = note["notification_id"]
        counts = (await http.get("/notifications/unread-counts", headers=mentor)).json()
        assert counts["total"] == 1
        by_person = (await http.get("/notifications/unread-by-person", headers=mentor)).json()
        assert by_person == {str(amal.person_id): 1}
        assert (await http.get("/notifications/upcoming", headers=mentor)).status_code == 200
        assert (await http.get(f"/notifications/{nid}", headers=mentor)).status_code == 200
        r = await http.get(f"/notifications/{nid}/deliveries", headers=mentor)
        assert r.status_code == 200, r.text
        r = await http.post(f"/notifications/{nid}/read", headers=mentor)
        assert r.status_code == 200, r.text
        assert r.json()["read_at"] is not None
        r = await http.post("/notifications/read-all", headers=mentor)
        assert r.json() == {"marked": 0}
        r = await http.post(f"/notifications/{nid}/archive", headers=mentor)
        assert r.status_code == 200, r.text
        prefs = await http.put("/preferences", json={"opted_out": ["email"]}, headers=mentor)
        assert prefs.status_code == 200, prefs.text
        assert (await http.get("/preferences", headers=mentor)).json()["opted_out"] == ["email"]

        # Petra's item about the same person is hers, and her inbox is not the mentor's
        [petras] = (await http.get("/notifications")).json()
        assert petras["recipient_role"] == "caseworker"
        pid = petras["notification_id"]
        assert (await http.get(f"/notifications/{pid}", headers=mentor)).status_code == 404
        assert (await http.post(f"/notifications/{pid}/read", headers=mentor)).status_code == 404
        r = await http.get("/notifications", params={"recipient": CASEWORKER}, headers=mentor)
        assert r.status_code == 403
        assert (await http.get(f"/notifications/{pid}")).json()["read_at"] is None
