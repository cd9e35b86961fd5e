"""Value types used by more than one producer's events."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints


class CefrLevel(StrEnum):
    """Common European Framework of Reference levels, in ascending order."""

    A1 = "A1"
    A2 = "A2"
    B1 = "B1"
    B2 = "B2"
    C1 = "C1"
    C2 = "C2"

    @property
    def rank(self) -> int:
        return _CEFR_ORDER.index(self) + 1

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, CefrLevel):
            return NotImplemented
        return self.rank >= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, CefrLevel):
            return NotImplemented
        return self.rank > other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, CefrLevel):
            return NotImplemented
        return self.rank <= other.rank

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, CefrLevel):
            return NotImplemented
        return self.rank < other.rank


_CEFR_ORDER = list(CefrLevel)


def cefr_rank(level: CefrLevel | None) -> int:
    """0 for no German at all, 1 for A1 ... 6 for C2."""
    return 0 if level is None else level.rank


class ResidenceStatus(StrEnum):
    AUFENTHALTSERLAUBNIS = "aufenthaltserlaubnis"  # residence permit
    AUFENTHALTSGESTATTUNG = "aufenthaltsgestattung"  # asylum procedure
    DULDUNG = "duldung"  # tolerated
    AUSBILDUNGSDULDUNG = "ausbildungsduldung"
    BESCHAEFTIGUNGSDULDUNG = "beschaeftigungsduldung"
    NIEDERLASSUNGSERLAUBNIS = "niederlassungserlaubnis"  # settled


class WorkPermission(StrEnum):
    """What the foreigners' office (Ausländerbehörde) has said about work."""

    ALLOWED = "allowed"  # allowed by the residence title itself
    NEEDS_APPROVAL = "needs_approval"  # each job needs the office's approval, not yet given
    APPROVED = "approved"  # the office has approved employment
    NOT_ALLOWED = "not_allowed"


class OpeningType(StrEnum):
    PRAKTIKUM = "praktikum"  # internship
    EINSTIEGSQUALIFIZIERUNG = "einstiegsqualifizierung"  # EQ, 6-12 month pre-apprenticeship
    AUSBILDUNG = "ausbildung"  # apprenticeship
    BESCHAEFTIGUNG = "beschaeftigung"  # job


class Sector(StrEnum):
    LOGISTIK = "logistik"
    HANDWERK = "handwerk"
    GASTRONOMIE = "gastronomie"
    BAU = "bau"
    PFLEGE = "pflege"
    INDUSTRIE = "industrie"
    HANDEL = "handel"
    REINIGUNG = "reinigung"
    LANDWIRTSCHAFT = "landwirtschaft"
    BUERO = "buero"
    SONSTIGE = "sonstige"


class EducationLevel(StrEnum):
    """Highest school or vocational education, mapped to German equivalents."""

    NONE = "none"
    PRIMARY = "primary"
    HAUPTSCHULABSCHLUSS = "hauptschulabschluss"
    MITTLERER_ABSCHLUSS = "mittlerer_abschluss"
    ABITUR = "abitur"
    VOCATIONAL = "vocational"  # completed vocational training
    UNIVERSITY = "university"


class ContactRole(StrEnum):
    CASEWORKER = "caseworker"  # Integrationsmanager/in
    MENTOR = "mentor"  # Berufspate/Berufspatin
    INTEGRATION_GUIDE = "integration_guide"  # Integrationslotse/Integrationslotsin
    EDUCATION_COORDINATOR = "education_coordinator"  # Bildungskoordination für Neuzugewanderte


class Language(StrEnum):
    DE = "de"
    EN = "en"


class CourseType(StrEnum):
    INTEGRATIONSKURS = "integrationskurs"
    BERUFSSPRACHKURS = "berufssprachkurs"
    INTEA = "intea"
    ALPHABETISIERUNG = "alphabetisierung"


KldbCode = Annotated[
    str,
    StringConstraints(pattern=r"^\d{5}$"),
    Field(description="KldB 2010 occupation code, five digits; the fifth is the skill level."),
]

DistrictId = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9-]{2,40}$"),
    Field(description="District the record belongs to, e.g. 'kassel'."),
]
