"""What every importer returns, and the small readers they share. Pure: no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

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


@dataclass
class ParsedFeed:
    """A partner's file, read: the openings it reports and the records it could not."""

    openings: list[OpeningReportedV1] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set, repr=False)

    @property
    def received(self) -> int:
        return len(self.openings) + len(self.rejected)

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
        moved = [
            Rejection(r.ref, r.row + rows if r.row is not None else None, r.reason)
            for r in self.rejected
        ]
        return ParsedFeed(openings=self.openings, rejected=moved)

    def accept(self, report: OpeningReportedV1, row: int | None, ref_field: str) -> None:
        """Add a report unless its reference was already seen in this feed."""
        if report.source_ref in self._seen:
            reason = f"{ref_field}: appears twice in this feed; the first is kept"
            self.rejected.append(Rejection(report.source_ref, row, reason))
            return
        self._seen.add(report.source_ref)
        self.openings.append(report)


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
