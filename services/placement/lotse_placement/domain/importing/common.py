"""What every importer returns, and the small readers they share. Pure: no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from lotse_shared.contracts.partner import OpeningLocation, OpeningReportedV1
from lotse_shared.errors import RuleViolation
from lotse_shared.places import Place, all_places, find_place

DESCRIPTION_MAX = 20_000


class FeedError(RuleViolation):
    """The whole file or document is unusable (a wrong CSV header, not JSON ...);
    ``field`` names what is wrong, nothing of it is imported."""


class RecordError(ValueError):
    """One record is unusable; the message names the partner's field and the reason."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")


@dataclass(frozen=True)
class Rejection:
    ref: str | None  # the partner's reference, if the record had one
    row: int | None  # CSV: line in the file; Jobsuche: position in the document (from 1)
    reason: str  # names the partner's field: "arbeitgeber: missing"


@dataclass(frozen=True)
class Notice:
    """A record imported with a caveat (an unknown occupation code, a place left out)."""

    ref: str | None
    row: int | None
    reason: str


@dataclass(frozen=True)
class Superseded:
    """An earlier version of a reference the same feed names again: not applied, but
    kept in the opening's history."""

    report: OpeningReportedV1
    row: int | None


@dataclass
class ParsedFeed:
    """A partner's file, read: the openings it reports, the records it could not, and
    the earlier versions of references it names more than once."""

    openings: list[OpeningReportedV1] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    superseded: list[Superseded] = field(default_factory=list)
    _at: dict[str, tuple[int, int | None]] = field(default_factory=dict, repr=False)

    @property
    def received(self) -> int:
        return len(self.openings) + len(self.rejected) + len(self.superseded)

    @property
    def refs(self) -> list[str]:
        """Every reference the feed names, rejected ones too (they are still on offer)."""
        return [o.source_ref for o in self.openings] + [
            r.ref for r in self.rejected if r.ref is not None
        ]

    def shifted(self, rows: int) -> ParsedFeed:
        """Row numbers moved by ``rows``: a batch cut from a larger file reports its lines
        as they are in that file."""
        if not rows:
            return self

        def move(row: int | None) -> int | None:
            return row + rows if row is not None else None

        return ParsedFeed(
            openings=self.openings,
            rejected=[Rejection(r.ref, move(r.row), r.reason) for r in self.rejected],
            notices=[Notice(n.ref, move(n.row), n.reason) for n in self.notices],
            superseded=[Superseded(s.report, move(s.row)) for s in self.superseded],
            _at={ref: (i, move(row)) for ref, (i, row) in self._at.items()},
        )

    def accept_first(self, report: OpeningReportedV1, row: int | None, ref_field: str) -> None:
        """Add a report unless its reference was already seen in this feed: a chamber's
        hand-kept list naming a reference twice is more likely a slip than an update."""
        if report.source_ref in self._at:
            reason = f"{ref_field}: appears twice in this feed; the first is kept"
            self.rejected.append(Rejection(report.source_ref, row, reason))
            return
        self.accept(report, row)

    def accept(self, report: OpeningReportedV1, row: int | None) -> None:
        """Add a report; a reference seen before in this feed keeps its latest version
        (by ``source_modified_at`` when both versions carry one, else the later in the
        feed), and the other one is kept as ``superseded``."""
        ref = report.source_ref
        if ref not in self._at:
            self._at[ref] = (len(self.openings), row)
            self.openings.append(report)
            return
        index, held_row = self._at[ref]
        held = self.openings[index]
        if held.source_modified_at and report.source_modified_at:
            newer = report.source_modified_at >= held.source_modified_at
        else:
            newer = True  # no way to tell: the later in the feed wins
        if newer:
            self.superseded.append(Superseded(held, held_row))
            self.openings[index] = report
            self._at[ref] = (index, row)
        else:
            self.superseded.append(Superseded(report, row))


_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ].*)?$")
_GERMAN = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{2}|\d{4})$")


def parse_date(value: object, field_name: str) -> date | None:
    """ISO ('2026-08-01', '2026-08-01T00:00:00Z') or German ('01.08.2026', '1.8.26');
    empty or 'ab sofort' is no date (available now)."""
    text = "" if value is None else str(value).strip()
    if text.casefold() in ("", "sofort", "ab sofort"):
        return None
    try:
        if m := _ISO.match(text):
            return date(int(m[1]), int(m[2]), int(m[3]))
        if m := _GERMAN.match(text):
            year = int(m[3]) + (2000 if len(m[3]) == 2 else 0)
            return date(year, int(m[2]), int(m[1]))
    except ValueError:
        pass
    raise RecordError(field_name, f"{text!r} is not a date (01.08.2026 or 2026-08-01)")


def parse_datetime(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


AGENCY_TIME = ZoneInfo("Europe/Berlin")


def agency_time(value: object) -> datetime | None:
    """An ISO date or date and time ('2026-11-20T10:15:31.123', '2026-11-20'); one without
    a zone is the agency's local time (Europe/Berlin). None if empty or unreadable."""
    moment = parse_datetime(value)
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=AGENCY_TIME)


def place_by_name(name: str | None) -> Place | None:
    """A place of the district by name, also from 'Kassel, Hessen' or 'Baunatal-Altenbauna'."""
    if not name:
        return None
    for candidate in (name, *re.split(r"\s*[,(/]\s*|\s+-\s+", name)[:1], name.split("-")[0]):
        place = find_place(candidate)
        if place is not None:
            return place
    return None


def place_by_postcode(postcode: str | None) -> Place | None:
    if not postcode:
        return None
    return next((p for p in all_places().values() if p.postcode == postcode.strip()), None)


def locate(
    *,
    municipality: str | None,
    postcode: str | None,
    lat: object,
    lon: object,
    fields: tuple[str, str, str],
) -> OpeningLocation:
    """Coordinates if the partner gives both, else the place by name, else by postcode.

    ``fields`` are the partner's names for place, postcode and coordinates, used in
    the reason when nothing locates the opening.
    """
    name_field, postcode_field, coords_field = fields
    municipality = (municipality or "").strip() or None
    postcode = (postcode or "").strip() or None
    if postcode is not None and not re.fullmatch(r"\d{5}", postcode):
        raise RecordError(postcode_field, f"{postcode!r} is not a five-digit postcode")
    coords = _coordinates(lat, lon, coords_field)
    by_name = place_by_name(municipality)
    place = by_name or place_by_postcode(postcode)
    if coords is not None:
        name = by_name.name if by_name else municipality or (place.name if place else None)
        return OpeningLocation(municipality=name, postcode=postcode, lat=coords[0], lon=coords[1])
    if place is not None:
        return OpeningLocation(municipality=place.name, postcode=postcode)
    if municipality is None and postcode is None:
        raise RecordError(name_field, "missing, and no coordinates")
    raise RecordError(
        name_field,
        f"unknown place {municipality or postcode!r} and no coordinates "
        f"({coords_field}) to locate it",
    )


MAX_PLACES = 51  # the contract's location and up to 50 other_locations


def locate_all(places: list[dict[str, Any]]) -> tuple[list[OpeningLocation], list[str]]:
    """Every place of a posting that can be located (see :func:`locate`; each dict holds
    its arguments), the same place once. Those that cannot be are left out, each with its
    reason for a notice; if none can be, the first one's error is raised."""
    found: list[OpeningLocation] = []
    left_out: list[str] = []
    first_error: RecordError | None = None
    for place in places:
        try:
            location = locate(**place)
        except RecordError as exc:
            first_error = first_error or exc
            left_out.append(f"{exc}; left out, the posting's other places are kept")
            continue
        if location not in found:
            found.append(location)
    if not found:
        assert first_error is not None, "no places at all is the caller's RecordError"
        raise first_error
    if len(found) > MAX_PLACES:
        left_out.append(f"{len(found)} places: only the first {MAX_PLACES} are kept")
        found = found[:MAX_PLACES]
    return found, left_out


def _coordinates(lat: object, lon: object, field_name: str) -> tuple[float, float] | None:
    if lat in (None, "") and lon in (None, ""):
        return None
    try:
        pair = (float(str(lat).replace(",", ".")), float(str(lon).replace(",", ".")))
    except ValueError:
        raise RecordError(field_name, f"not numbers: {lat!r}, {lon!r}") from None
    if not (-90 <= pair[0] <= 90 and -180 <= pair[1] <= 180):
        raise RecordError(field_name, f"out of range: {pair[0]}, {pair[1]}")
    return pair


def build_report(data: dict[str, object], field_names: dict[str, str]) -> OpeningReportedV1:
    """Validate the normalised opening; a failure names the partner's field."""
    try:
        return OpeningReportedV1.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        ours = ".".join(str(p) for p in err["loc"])
        theirs = field_names.get(ours) or field_names.get(str(err["loc"][0]), ours)
        raise RecordError(theirs, err["msg"]) from None


def clip(text: str | None, limit: int = DESCRIPTION_MAX) -> str:
    return (text or "").strip()[:limit]
