"""Group commit: messages applied at the same time share one transaction; one that fails
rolls its batch back and every member runs again alone, so the failure is its own."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from fastapi import FastAPI

from lotse_courses.bootstrap import create_app
from lotse_devstack.samples import COURSE_REF, TODAY, course_details, snapshot
from lotse_shared.contracts import partner as p
from lotse_shared.contracts.intake import PersonRegistered
from lotse_shared.messaging.deadletter import HEADER_REASON
from tests.support import EventTap, applied, dead_letters, eventually, publish, running

SCHOOL = "vhs-region-kassel"
COMPLETED = "courses.course.completed.v1"


def completion(person_id: uuid.UUID, level: str = "B1") -> p.CompletionReported:
    return p.CompletionReported.create(
        p.CompletionReportedV1(
            person_id=person_id, course=COURSE_REF, completed_on=TODAY, level_reached=level
        ),
        producer=SCHOOL,
    )


def batches(app: FastAPI, result: str) -> tuple[float, float]:
    """(group commits, transactions in them) with this result, from /metrics' registry."""
    registry = app.state.runtime.metrics.registry
    labels = {"result": result}
    count = registry.get_sample_value("lotse_group_commit_messages_count", labels) or 0.0
    total = registry.get_sample_value("lotse_group_commit_messages_sum", labels) or 0.0
    return count, total


async def enrolled_people(rabbit_url: str, namespace: str, app: FastAPI, n: int) -> list[uuid.UUID]:
    people = [PersonRegistered.create(snapshot(), producer="intake") for _ in range(n)]
    enrolments = [
        p.EnrolmentReported.create(
            p.EnrolmentReportedV1(person_id=e.payload.person_id, course=course_details()),
            producer=SCHOOL,
        )
        for e in people
    ]
    await publish(rabbit_url, namespace, *people)
    await asyncio.gather(*(applied(app, e) for e in people))
    await publish(rabbit_url, namespace, *enrolments)
    await asyncio.gather(*(applied(app, e) for e in enrolments))
    return [e.payload.person_id for e in people]


@pytest.fixture
def wide_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOTSE_BATCH_MAX", "64")  # off by default
    # the publisher confirms one message at a time; a wide window gathers them all
    monkeypatch.setenv("LOTSE_BATCH_WAIT_MS", "300")
    monkeypatch.setenv("LOTSE_RETRY_DELAYS_S", "[0.2]")


async def test_a_poison_message_in_the_middle_of_a_batch_fails_alone(
    service_env, wide_batches, rabbit_url, namespace
):
    app = create_app()
    async with EventTap(rabbit_url, namespace, COMPLETED) as tap, running(app):
        people = await enrolled_people(rabbit_url, namespace, app, 9)
        first = completion(people[4])
        await publish(rabbit_url, namespace, first)
        await tap.wait_for(COMPLETED)
        # completed with B1, then reported completed with B2: a conflict no retry mends,
        # found inside the transaction, after the enrolment was read
        poison = completion(people[4], level="B2")
        reports = [completion(pid) for pid in people]
        reports[4] = poison
        rolled_back_before, _ = batches(app, "rolled_back")
        _, committed_before = batches(app, "committed")
        await publish(rabbit_url, namespace, *reports)

        await tap.wait_for(COMPLETED, count=9)
        letters = await eventually(
            lambda: dead_letters(rabbit_url, namespace, "courses"), what="the dead letter"
        )
        await asyncio.sleep(0.5)  # anything applied twice would have been published by now

        causes = [b["causation_id"] for b in tap.bodies(COMPLETED)]
        expected = {str(e.event_id) for e in [first, *reports] if e is not poison}
        assert sorted(causes) == sorted(expected)  # each applied once, the poison not
        [letter] = letters
        assert json.loads(letter.body)["event_id"] == str(poison.event_id)
        assert "cannot complete" in str(letter.headers[HEADER_REASON])
        inbox = app.state.runtime.db["inbox"]
        assert await inbox.count_documents({"_id": {"$in": sorted(expected)}}) == 9
        assert await inbox.count_documents({"_id": str(poison.event_id)}) == 0
        rolled_back, _ = batches(app, "rolled_back")
        assert rolled_back - rolled_back_before >= 1  # the poison's batch, others in it
        _, committed = batches(app, "committed")
        # the others ran again in a batch of their own; the poison alone, outside any
        assert committed - committed_before == 8


async def test_messages_applied_together_share_a_commit_and_a_repeat_applies_once(
    service_env, wide_batches, rabbit_url, namespace
):
    app = create_app()
    async with EventTap(rabbit_url, namespace, COMPLETED) as tap, running(app):
        people = await enrolled_people(rabbit_url, namespace, app, 8)
        reports = [completion(pid) for pid in people]
        commits_before, members_before = batches(app, "committed")
        await publish(rabbit_url, namespace, *reports[:6])
        await tap.wait_for(COMPLETED, count=6)
        commits, members = batches(app, "committed")
        assert members - members_before == 6
        assert commits - commits_before < 6  # six transactions, fewer commits

        # one report twice in the same batch, beside another: the inbox row of the second
        # fails the batch's commit; alone, the repeat is recognised and applies nothing
        rolled_back_before, _ = batches(app, "rolled_back")
        await publish(rabbit_url, namespace, reports[6], reports[6], reports[7])
        await tap.wait_for(COMPLETED, count=8)
        await asyncio.sleep(0.5)  # a second "completed" for the repeat would be out by now
        causes = [b["causation_id"] for b in tap.bodies(COMPLETED)]
        assert sorted(causes) == sorted(str(r.event_id) for r in reports)  # each once
        rolled_back, _ = batches(app, "rolled_back")
        assert rolled_back - rolled_back_before >= 1


async def test_a_message_that_must_wait_is_parked_without_rolling_back_its_batch(
    service_env, wide_batches, rabbit_url, namespace
):
    app = create_app()
    async with EventTap(rabbit_url, namespace, COMPLETED) as tap, running(app):
        people = await enrolled_people(rabbit_url, namespace, app, 6)
        # no level and no exam on record yet: it waits for the school's exam result
        waiting = p.CompletionReported.create(
            p.CompletionReportedV1(person_id=people[2], course=COURSE_REF, completed_on=TODAY),
            producer=SCHOOL,
        )
        reports = [completion(pid) for pid in people]
        reports[2] = waiting
        rolled_back_before, _ = batches(app, "rolled_back")
        await publish(rabbit_url, namespace, *reports)

        await tap.wait_for(COMPLETED, count=5)
        await eventually(lambda: app.state.runtime.parking.count(), what="the parked one")
        rolled_back, _ = batches(app, "rolled_back")
        assert rolled_back == rolled_back_before  # the others committed in their batch
        causes = sorted(b["causation_id"] for b in tap.bodies(COMPLETED))
        assert causes == sorted(str(r.event_id) for r in reports if r is not waiting)
