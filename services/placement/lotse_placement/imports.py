"""placement's imports: openings in partners' own formats (Jobsuche, chamber CSV), over
HTTP, from the command line or as a partner's feed event."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from lotse_shared.contracts import placement as ev
from lotse_shared.contracts.envelope import Event
from lotse_shared.contracts.partner import OpeningFeedReported, OpeningReportedV1
from lotse_shared.errors import Conflict, NotFound, RuleViolation
from lotse_shared.persistence.unit import UnitOfWork

from .domain.importing import FeedError, ParsedFeed, Superseded
from .domain.importing.feed import (
    CLOSED_NOT_IN_FEED,
    OLDER_THAN_HELD,
    SUPERSEDED_IN_FEED,
    FeedFormat,
    parse_feed,
)
from .domain.model import Opening
from .handlers import PlacementHandlers
from .mapping import PRODUCER, opening_from
from .repository import PlacementStore


@dataclass
class ImportHandlers:
    uow: UnitOfWork
    repo: PlacementStore
    openings: PlacementHandlers  # stores, closes and matches each opening

    # --- imports: openings in partners' own formats (Jobsuche, chamber CSV) -------------
    # Each record is applied in a transaction of its own, like a reported opening, so a
    # crash leaves whole records behind, never half of one; a repeat of the feed finds
    # them unchanged. The import's own record (counts, rejections, references seen) and
    # placement.import.completed are written together at the end.
    async def import_feed(
        self,
        feed: ParsedFeed,
        source: str,
        *,
        fmt: FeedFormat,
        full_feed: bool = False,
        cause: Event | None = None,
        district_id: str | None = None,
    ) -> ev.ImportCompletedV1:
        """Import a whole feed in one go; with ``full_feed``, close what it no longer names."""
        if full_feed and not feed.received:
            raise FeedError("full_feed", f"an empty feed would close every opening of {source}")
        import_id = cause.event_id if cause is not None else uuid.uuid4()
        summary = await self._apply_feed(feed, source, import_id, fmt, full_feed, cause)
        closed = await self._close_missing(source, set(feed.refs)) if full_feed else 0
        summary = summary.model_copy(update={"closed": closed, "completed": True})
        async with self.uow.transaction(applying=cause) as tx:
            batch = summary.model_copy(update={"closed": 0})
            await self.repo.add_import_batch(tx, summary_doc(batch), feed.refs, district_id)
            await self.repo.complete_import(tx, import_id, full_feed, closed)
            tx.publish(ev.ImportCompleted.create(summary, producer=PRODUCER, cause=cause))
        return summary

    async def import_batch(
        self,
        feed: ParsedFeed,
        source: str,
        *,
        fmt: FeedFormat,
        import_id: uuid.UUID,
        district_id: str | None = None,
    ) -> ev.ImportCompletedV1:
        """One batch of an import sent in parts; ``complete_import`` ends it."""
        known = await self.repo.get_import(import_id)
        if known is not None and (known["source"] != source or known["completed"]):
            state = "completed" if known["completed"] else f"of source {known['source']}"
            raise Conflict(f"import {import_id} is {state}")
        summary = await self._apply_feed(feed, source, import_id, fmt, False, None)
        summary = summary.model_copy(update={"completed": False})
        async with self.uow.transaction() as tx:
            await self.repo.add_import_batch(tx, summary_doc(summary), feed.refs, district_id)
        return summary

    async def complete_import(
        self, import_id: uuid.UUID, *, full_feed: bool = False
    ) -> ev.ImportCompletedV1:
        """End an import sent in batches: with ``full_feed``, close the source's open
        openings no batch named; publish the totals."""
        known = await self.repo.get_import(import_id)
        if known is None:
            raise NotFound(f"no import {import_id}")
        if known["completed"]:
            raise Conflict(f"import {import_id} is completed already")
        source = known["source"]
        closed = 0
        if full_feed:
            if not known["received"]:
                raise RuleViolation(
                    "full_feed", f"an empty feed would close every opening of {source}"
                )
            closed = await self._close_missing(source, set(known["seen_refs"]))
        async with self.uow.transaction() as tx:
            done = await self.repo.complete_import(tx, import_id, full_feed, closed)
            if done is None:
                raise Conflict(f"import {import_id} is completed already")
            summary = summary_of(done)
            tx.publish(ev.ImportCompleted.create(summary, producer=PRODUCER))
        return summary

    async def import_status(self, import_id: uuid.UUID) -> ev.ImportCompletedV1:
        known = await self.repo.get_import(import_id)
        if known is None:
            raise NotFound(f"no import {import_id}")
        return summary_of(known)

    async def opening_feed_reported(self, event: OpeningFeedReported) -> None:
        """A partner's feed over AMQP: the partner learns the outcome from
        placement.import.completed, a file refused as a whole included."""
        p = event.payload
        try:
            feed = parse_feed(
                p.format, p.document if p.format == "jobsuche" else p.csv, p.angebotsart
            )
            if p.full_feed and not feed.received:
                raise FeedError("full_feed", "an empty feed would close every opening")
        except FeedError as exc:
            refused = ev.ImportCompletedV1(
                import_id=event.event_id,
                source=event.producer,
                format=p.format,
                full_feed=p.full_feed,
                received=0,
                created=0,
                updated=0,
                unchanged=0,
                closed=0,
                file_error=ev.ImportFileErrorV1(field=exc.field, reason=exc.reason),
            )
            async with self.uow.transaction(applying=event) as tx:
                tx.publish(ev.ImportCompleted.create(refused, producer=PRODUCER, cause=event))
            return
        await self.import_feed(
            feed, event.producer, fmt=p.format, full_feed=p.full_feed, cause=event
        )

    async def _apply_feed(
        self,
        feed: ParsedFeed,
        source: str,
        import_id: uuid.UUID,
        fmt: FeedFormat,
        full_feed: bool,
        cause: Event | None,
    ) -> ev.ImportCompletedV1:
        outcomes = {"created": 0, "updated": 0, "unchanged": 0}
        rejected = [
            ev.ImportRejectionV1(ref=r.ref, row=r.row, reason=r.reason) for r in feed.rejected
        ]
        notices = [ev.ImportNoticeV1(ref=n.ref, row=n.row, reason=n.reason) for n in feed.notices]
        changed: list[uuid.UUID] = []
        for report in feed.openings:
            try:
                outcome, held = await self._apply_imported(report, source, cause)
            except RuleViolation as exc:  # e.g. a place the location check refuses
                rejected.append(
                    ev.ImportRejectionV1(ref=report.source_ref, row=None, reason=str(exc))
                )
                continue
            if outcome == "older":
                # the partner's current version is the one held: nothing changes
                outcomes["unchanged"] += 1
                reason = (
                    f"changed at {report.source_modified_at}: "
                    + OLDER_THAN_HELD.format(held=held.source_modified_at)
                    + "; not applied, kept in the opening's history"
                )
                notices.append(ev.ImportNoticeV1(ref=report.source_ref, row=None, reason=reason))
                continue
            outcomes[outcome] += 1
            if outcome != "unchanged":
                changed.append(held.opening_id)
        for earlier in feed.superseded:
            await self._keep_superseded(earlier, source)
        await self.openings.match_openings(changed)
        return ev.ImportCompletedV1(
            import_id=import_id,
            source=source,
            format=fmt,
            full_feed=full_feed,
            received=feed.received,
            closed=0,
            rejected=rejected,
            notices=notices,
            **outcomes,
        )

    async def _apply_imported(
        self, report: OpeningReportedV1, source: str, cause: Event | None
    ) -> tuple[Literal["created", "updated", "unchanged", "older"], Opening]:
        """report_opening for one imported record, except that an unchanged record is
        neither written nor published nor matched again; the feed event (``cause``)
        links the events but is applied once, by the import's last transaction."""
        async with self.uow.transaction() as tx:
            outcome, opening = await self.openings.store_opening(
                tx, report, source, cause, skip_unchanged=True
            )
        return outcome, opening

    async def _keep_superseded(self, earlier: Superseded, source: str) -> None:
        """An earlier version the feed also named goes to the history of the opening its
        latest version made (none if that one was rejected)."""
        why = SUPERSEDED_IN_FEED.format(row=earlier.row)
        async with self.uow.transaction() as tx:
            current = await self.repo.opening_by_ref(source, earlier.report.source_ref, tx)
            if current is None:
                return
            try:
                version = opening_from(earlier.report, source, current)
            except RuleViolation:
                return  # a place placement cannot locate: nothing worth keeping
            await self.openings.keep_earlier(tx, current, version, why)

    async def _close_missing(self, source: str, seen: set[str]) -> int:
        closed = 0
        for ref in sorted(await self.repo.open_refs(source) - seen):
            # not cause=cause: close_opening would apply the feed event, which only the
            # import's last transaction may do
            await self.openings.close_opening(source, ref, CLOSED_NOT_IN_FEED)
            closed += 1
        return closed


def summary_doc(summary: ev.ImportCompletedV1) -> dict[str, Any]:
    doc = summary.model_dump(mode="json")
    doc["import_id"] = summary.import_id
    return doc


def summary_of(doc: dict[str, Any]) -> ev.ImportCompletedV1:
    return ev.ImportCompletedV1.model_validate({**doc, "import_id": doc["_id"]})
