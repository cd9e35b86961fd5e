"""What an import is: the formats, parsing a partner's document, and when a record
counts as unchanged. Pure."""

from __future__ import annotations

from typing import Literal

from lotse_placement.domain.model import Opening, OpeningStatus

from .chambers_csv import parse_csv
from .common import FeedError, ParsedFeed
from .jobsuche import parse_jobsuche

FeedFormat = Literal["jobsuche", "csv"]
CLOSED_NOT_IN_FEED = "nicht mehr im Bestand des Partners"
OLDER_THAN_HELD = "older than the version held (changed by the partner at {held})"
SUPERSEDED_IN_FEED = "the same feed had a newer version (row {row} was not applied)"


def parse_feed(fmt: FeedFormat, content: object, angebotsart: int | None = None) -> ParsedFeed:
    """A partner's document in its own format -> openings and rejections (FeedError if
    the document as a whole is unusable)."""
    if fmt == "jobsuche":
        return parse_jobsuche(content, angebotsart=angebotsart)
    if not isinstance(content, str | bytes):
        raise FeedError("csv", "expected the CSV file's text")
    return parse_csv(content)


def unchanged(previous: Opening, current: Opening) -> bool:
    """Nothing to write: the partner sent what we hold. A closed opening counts as
    unchanged too (a caseworker's "besetzt" is not undone by the next daily feed),
    unless an earlier full feed closed it for missing: it is back on offer."""
    status = {"updated_at", "status", "closed_reason"}
    if previous.model_dump(exclude=status) != current.model_dump(exclude=status):
        return False
    return previous.status is OpeningStatus.OPEN or previous.closed_reason != CLOSED_NOT_IN_FEED


def older(report: Opening, held: Opening) -> bool:
    """The partner changed ``report`` before the version placement holds: it does not
    replace it. Without both times, the later arrival wins."""
    if report.source_modified_at is None or held.source_modified_at is None:
        return False
    return report.source_modified_at < held.source_modified_at
