"""The German level an opening asks for, read from structured fields or from its text.

Every answer comes with the rule that decided it, worded for the caseworker who
wonders why an opening asks for B1: ``Beschreibung: 'gute Deutschkenntnisse' (gut = B1)``.

Order of the rules (the first that applies decides):

1. a structured value (Jobsuche's old ``sprachkenntnisse``, the CSV column ``Deutsch``);
2. a CEFR level named next to German in the text ("Deutschkenntnisse B1",
   "Deutsch (B2)", "B1-Deutschkenntnisse", "Sprachniveau A2"); if several are named,
   the lowest counts, since a higher one is usually "wünschenswert";
3. a phrase, strongest first: "verhandlungssicher"/"muttersprachlich" = C1,
   "sehr gute"/"fließend" = B2, "gute"/"in Wort und Schrift" = B1,
   "Grundkenntnisse"/"einfache"/"erste" = A2, "keine Deutschkenntnisse erforderlich" = none;
4. "Deutschkenntnisse" without any degree = A2;
5. nothing said: no requirement (``None``, no rule).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lotse_shared.contracts.common import CefrLevel

_LEVEL = r"\b([ABC][12])\b"
# "Deutsch", "Deutschkenntnisse", "deutschen Sprache", "Deutsch-" (not "Deutschland")
_GERMAN = r"(?:deutsch(?!land)\w*-?(?:\s+sprach\w*)?)"
# words that may stand between "Deutsch..." and the level
_BETWEEN = (
    r"(?:[\s:(\-–/,]|\bauf\b|\bmind(?:estens|\.)|\bmin\.|\bab\b|\bim\b|\bmit\b|\bnach\b"
    r"|\bniveau\b|\bsprachniveau\b|\bger\b|\blevel\b|\bstufe\b|\bzum\b|\bzu\b|\bdem\b)*"
)

_EXPLICIT: list[tuple[str, re.Pattern[str]]] = [
    ("Niveau nach Deutsch", re.compile(_GERMAN + _BETWEEN + _LEVEL, re.IGNORECASE)),
    (
        "Niveau vor Deutsch",
        re.compile(_LEVEL + r"(?:[\s\-–]*(?:niveau|level))?[\s\-–]*(?:in\s+)?" + _GERMAN, re.I),
    ),
    (
        "Sprachniveau",
        re.compile(
            r"\b(?:sprachniveau|sprachkenntnisse|sprachzertifikat|sprachnachweis)"
            r"[\s:(]*(?:mind(?:estens|\.)\s*|ab\s+)?" + _LEVEL,
            re.IGNORECASE,
        ),
    ),
]

_GERMAN_WORD = r"(?:deutsch(?:kenntnisse|sprachkenntnisse|e\s+sprachkenntnisse|es)?|deutsch-)"
_OF_GERMAN = r"(?:kenntnisse\s+(?:der|in)\s+(?:deutsch(?:en\s+sprache)?))"


def _phrase(adjective: str) -> re.Pattern[str]:
    """'<adjective> Deutschkenntnisse', 'Deutsch <adjective>', '<adjective> Kenntnisse der
    deutschen Sprache'."""
    return re.compile(
        rf"\b(?:{adjective})\s+(?:{_GERMAN_WORD}|{_OF_GERMAN})"
        rf"|\bdeutsch(?:kenntnisse)?\s*(?:[:,]\s*)?(?:{adjective})\b",
        re.IGNORECASE,
    )


_PHRASES: list[tuple[str, re.Pattern[str], CefrLevel | None]] = [
    (
        "keine verlangt",
        re.compile(
            r"\b(?:keine|ohne)\s+deutsch(?:kenntnisse|sprachkenntnisse)?\s*"
            r"(?:erforderlich|notwendig|nötig|vorausgesetzt)?",
            re.IGNORECASE,
        ),
        None,
    ),
    (
        "verhandlungssicher = C1",
        _phrase(r"verhandlungssichere?s?|muttersprachliche?s?|auf\s+muttersprachlichem\s+niveau"),
        CefrLevel.C1,
    ),
    ("sehr gut/fließend = B2", _phrase(r"sehr\s+gute?s?|fließende?s?|fliessende?s?"), CefrLevel.B2),
    ("gut = B1", _phrase(r"gute?s?|solide"), CefrLevel.B1),
    (
        "in Wort und Schrift = B1",
        re.compile(r"\bdeutsch\w*\s+in\s+wort\s+und\s+schrift", re.IGNORECASE),
        CefrLevel.B1,
    ),
    (
        "Grundkenntnisse = A2",
        re.compile(
            r"\b(?:deutsch-?)?grundkenntnisse(?:\s+(?:in\s+|der\s+)?deutsch\w*)?"
            r"|\b(?:einfache|erste|grundlegende|basis)\s*-?\s*"
            rf"(?:{_GERMAN_WORD}|{_OF_GERMAN})",
            re.IGNORECASE,
        ),
        CefrLevel.A2,
    ),
]

_ANY_GERMAN = re.compile(
    r"\b(?:deutschkenntnisse|deutschsprachkenntnisse|kenntnisse\s+der\s+deutschen\s+sprache)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class GermanLevel:
    level: CefrLevel | None
    rule: str | None  # None: nothing was said about German


NOT_SAID = GermanLevel(None, None)

# Jobsuche's old ``auspraegung`` values and the words a CSV column may hold
_DEGREES: dict[str, CefrLevel] = {
    "grundkenntnisse": CefrLevel.A2,
    "einfache kenntnisse": CefrLevel.A2,
    "erweiterte kenntnisse": CefrLevel.B1,
    "gute kenntnisse": CefrLevel.B1,
    "gut": CefrLevel.B1,
    "sehr gute kenntnisse": CefrLevel.B2,
    "sehr gut": CefrLevel.B2,
    "fließend": CefrLevel.B2,
    "expertenkenntnisse": CefrLevel.C1,
    "verhandlungssicher": CefrLevel.C1,
    "muttersprache": CefrLevel.C1,
    "muttersprachlich": CefrLevel.C1,
}


def _quote(text: str) -> str:
    quoted = " ".join(text.split())
    return quoted + ")" if quoted.count("(") > quoted.count(")") else quoted


def level_of_degree(value: str) -> CefrLevel | None:
    """'B1', 'Erweiterte Kenntnisse', 'gut' ... -> a level; None if not understood."""
    cleaned = " ".join(value.split()).casefold()
    upper = cleaned.upper()
    if upper in CefrLevel.__members__:
        return CefrLevel(upper)
    return _DEGREES.get(cleaned)


def from_sprachkenntnisse(entries: object) -> GermanLevel | None:
    """Jobsuche's old ``sprachkenntnisse[{bezeichnung, auspraegung}]``; None if it says
    nothing (understandable) about German."""
    if not isinstance(entries, list):
        return None
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        name = str(entry.get("bezeichnung") or "").strip()
        degree = str(entry.get("auspraegung") or "").strip()
        if name.casefold() != "deutsch" or not degree:
            continue
        level = level_of_degree(degree)
        if level is not None:
            return GermanLevel(level, f"sprachkenntnisse: {name}/{degree}")
    return None


def from_text(text: str, where: str = "Beschreibung") -> GermanLevel:
    """Read the required level from free text with the rules above."""
    if not text:
        return NOT_SAID
    found: list[tuple[CefrLevel, int, str]] = []
    for _, pattern in _EXPLICIT:
        for match in pattern.finditer(text):
            found.append((CefrLevel(match.group(1).upper()), match.start(), match.group(0)))
    if found:
        level, _, quoted = min(found, key=lambda f: (f[0].rank, f[1]))
        return GermanLevel(level, f"{where}: '{_quote(quoted)}'")
    for name, pattern, phrase_level in _PHRASES:
        if phrase := pattern.search(text):
            return GermanLevel(phrase_level, f"{where}: '{_quote(phrase.group(0))}' ({name})")
    if bare := _ANY_GERMAN.search(text):
        return GermanLevel(CefrLevel.A2, f"{where}: '{_quote(bare.group(0))}' (ohne Grad = A2)")
    return NOT_SAID
