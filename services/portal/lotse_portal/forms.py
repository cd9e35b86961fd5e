"""The person form: what was typed, as intake's request body, and intake's errors back
at their fields. Values stay as typed, so a refused form comes back filled in."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from lotse_shared.contracts.common import Sector

from .backend import FieldError
from .i18n import ERROR_TYPES

CONSENTS = ("matching", "share_with_employers", "email_notifications")
# intake's field -> the form's input that shows its error
FIELD_OF = {
    "contact.phone": "phone",
    "contact.email": "email",
    "education.level": "education_level",
    "consent": "consent",
}


def blank_form(user_email: str, user_name: str) -> dict[str, Any]:
    return {
        "given_name": "",
        "family_name": "",
        "birth_year": "",
        "municipality": "",
        "german_level": "",
        "residence_status": "",
        "work_permission": "",
        "driving_licence": False,
        "max_commute_km": "20",
        "available_from": "",
        "sectors_of_interest": [],
        "education_level": "none",
        "phone": "",
        "email": "",
        "consent": [],
        "caseworker_email": user_email,
        "caseworker_name": user_name,
        # names this form: sent twice (a double click), it still registers one person
        "form_key": uuid.uuid4().hex,
    }


def form_from_person(person: Mapping[str, Any]) -> dict[str, Any]:
    caseworker: Mapping[str, Any] = next(
        (c for c in person["contacts"] if c["role"] == "caseworker"), {}
    )
    contact = person.get("contact") or {}
    return {
        "given_name": person["given_name"],
        "family_name": person["family_name"],
        "birth_year": str(person["birth_year"]),
        "municipality": person["municipality"],
        "german_level": person.get("german_level") or "",
        "residence_status": person["residence_status"],
        "work_permission": person["work_permission"],
        "driving_licence": bool(person.get("driving_licence")),
        "max_commute_km": str(person.get("max_commute_km", 20)),
        "available_from": person.get("available_from") or "",
        "sectors_of_interest": list(person.get("sectors_of_interest") or []),
        "education_level": (person.get("education") or {}).get("level", "none"),
        "phone": contact.get("phone") or "",
        "email": contact.get("email") or "",
        "consent": [k for k, v in (person.get("consent") or {}).items() if v],
        "caseworker_email": caseworker.get("email", ""),
        "caseworker_name": caseworker.get("name", ""),
    }


def same_details(saved: Mapping[str, Any], typed: Mapping[str, Any]) -> bool:
    """Whether what was typed is what is stored (the form's own key aside)."""

    def comparable(values: Mapping[str, Any]) -> dict[str, Any]:
        return {
            k: sorted(v) if isinstance(v, list) else v for k, v in values.items() if k != "form_key"
        }

    return comparable(saved) == comparable(typed)


def read_form(form: Mapping[str, Any], getlist: Any) -> dict[str, Any]:
    """The posted form as the template shows it again (``getlist``: multi-valued fields)."""
    values = blank_form("", "")
    for key in values:
        if key == "form_key":
            values[key] = str(form.get(key) or uuid.uuid4().hex)[:100]
        elif key in ("sectors_of_interest", "consent"):
            values[key] = [v for v in getlist(key) if isinstance(v, str)]
        elif key == "driving_licence":
            values[key] = form.get(key) == "on"
        else:
            values[key] = str(form.get(key, "")).strip()
    return values


def person_body(
    values: Mapping[str, Any], district: str | None, others: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """intake's PersonDetails; blanks become absent (intake names what is missing)."""
    body: dict[str, Any] = {
        "given_name": values["given_name"],
        "family_name": values["family_name"],
        "birth_year": values["birth_year"] or None,
        "municipality": values["municipality"],
        "german_level": values["german_level"] or None,
        "residence_status": values["residence_status"] or None,
        "work_permission": values["work_permission"] or None,
        "driving_licence": bool(values["driving_licence"]),
        "max_commute_km": values["max_commute_km"] or 20,
        "available_from": values["available_from"] or None,
        "sectors_of_interest": [
            s for s in values["sectors_of_interest"] if s in Sector._value2member_map_
        ],
        "education": {"level": values["education_level"] or "none"},
        "contact": {"phone": values["phone"] or None, "email": values["email"] or None},
        "consent": {k: k in values["consent"] for k in CONSENTS},
        "contacts": [
            {
                "role": "caseworker",
                "name": values["caseworker_name"],
                "email": values["caseworker_email"],
            },
            *(others or []),
        ],
    }
    if district:
        body["district_id"] = district
    return body


def errors_at_fields(errors: list[FieldError], lang: str) -> dict[str, str]:
    """Each error at the input that shows it, in the user's language where known."""
    at: dict[str, str] = {}
    for e in errors:
        name = e.field
        if name.startswith("contacts"):
            name = (
                "caseworker_email" if "email" in name or name == "contacts" else "caseworker_name"
            )
        name = FIELD_OF.get(name, name.split(".")[0] if name else "")
        known = ERROR_TYPES.get(e.kind)
        text = (known[1] if lang == "en" else known[0]) if known else e.message
        if e.kind == "value_error" and e.message:
            text = e.message  # intake's own rule, which says what it expects
        at.setdefault(name, text)
    return at
