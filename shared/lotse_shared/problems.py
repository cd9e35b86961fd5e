"""Every service's HTTP errors as RFC 9457 problem details (``application/problem+json``).

One shape for every refusal, so partners, the portal and the CLI read errors one way::

    {
      "type": "about:blank",
      "title": "Unprocessable Content",
      "status": 422,
      "detail": "birth_year: Field required; contacts.0.email: not an email address",
      "instance": "/people",
      "errors": [
        {"in": "body", "field": "birth_year", "pointer": "#/birth_year",
         "reason": "Field required", "code": "missing"},
        ...
      ]
    }

``type`` is ``about:blank``: the status code says what kind of problem it is, so
``title`` is the status's phrase; ``detail`` is one sentence for people; ``instance``
is the request's path. Only a 422 has ``errors``, one per failing input: where it was
(``in``: body, query, path or header), its dotted name (``field``, "" for the whole
body), an RFC 6901 JSON Pointer into the request body (``pointer``, null outside the
body), what is wrong (``reason``) and pydantic's error type (``code``, e.g.
``missing``) for clients that word their own messages. docs/errors.md describes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

PROBLEM_JSON = "application/problem+json"

# RFC 9110's phrases (Python's differ for 422 before 3.13)
_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}

Location = Literal["body", "query", "path", "header", "cookie"]


class FieldProblem(BaseModel):
    """One input a 422 refused."""

    in_: Location = Field(alias="in", description="Where the input was sent.")
    field: str = Field(
        description="Its dotted name, e.g. `contacts.0.email` or `offset`; "
        '"" for the body as a whole.'
    )
    pointer: str | None = Field(
        description="An RFC 6901 JSON Pointer (URI fragment form) to it in the request "
        "body, e.g. `#/contacts/0/email`; null for query, path and header parameters."
    )
    reason: str = Field(description="What is wrong with it, for people.")
    code: str = Field(
        description="The kind of error (pydantic's error type: `missing`, `value_error`, ...)."
    )


class ProblemDetails(BaseModel):
    """An error, as RFC 9457 problem details."""

    type: str = Field(
        default="about:blank",
        description="`about:blank`: the status code is the kind of problem.",
    )
    title: str = Field(description="The HTTP status's phrase, e.g. `Not Found`.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request, for people.")
    instance: str = Field(description="The path of the request that failed.")


class ValidationProblemDetails(ProblemDetails):
    """A 422: the request's inputs broke the rules; ``errors`` names each one."""

    errors: list[FieldProblem] = Field(description="Each input that was refused.")


def title_of(status: int) -> str:
    if status in _TITLES:
        return _TITLES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem(
    request: Request,
    status: int,
    detail: str,
    *,
    errors: Sequence[FieldProblem] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The answer for a failed request: ``status`` with problem details."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title_of(status),
        "status": status,
        "detail": _encodable(detail),
        "instance": _encodable(request.url.path),
    }
    if errors is not None:
        body["errors"] = [e.model_dump(by_alias=True) for e in errors]
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _encodable(text: str) -> str:
    # a lone surrogate ("\ud800") sent by a client must not break its own answer
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _pointer(path: Iterable[Any]) -> str:
    escaped = (_encodable(str(p)).replace("~", "~0").replace("/", "~1") for p in path)
    return "#" + "".join("/" + quote(p, safe="~") for p in escaped)


def field_problem(loc: Sequence[Any], reason: str, code: str) -> FieldProblem:
    """A FieldProblem from a FastAPI/pydantic error location (``("body", "a", 0)``)."""
    where = str(loc[0]) if loc else "body"
    if where not in ("body", "query", "path", "header", "cookie"):
        where, path = "body", list(loc)
    else:
        path = list(loc[1:])
    if code == "json_invalid":  # its location is a character offset, not a field
        path = []
    return FieldProblem.model_validate(
        {
            "in": where,
            "field": _encodable(".".join(str(p) for p in path)),
            "pointer": _pointer(path) if where == "body" else None,
            "reason": _encodable(reason.removeprefix("Value error, ")),
            "code": code,
        }
    )


def from_errors(
    errors: Iterable[Mapping[str, Any]], *, prefix: Sequence[str] = ()
) -> list[FieldProblem]:
    """FieldProblems from pydantic's ``errors()``; ``prefix`` is prepended to each location
    (``("body",)`` for a model checked after the request was parsed)."""
    found = []
    for e in errors:
        reason = str(e.get("msg", ""))
        error = e.get("ctx", {}).get("error") if isinstance(e.get("ctx"), dict) else None
        if e.get("type") == "json_invalid" and error:
            reason = f"{reason}: {error}"
        found.append(field_problem([*prefix, *e.get("loc", ())], reason, str(e.get("type", ""))))
    return found


def summary(errors: Sequence[FieldProblem]) -> str:
    """The errors as one sentence, for ``detail``."""
    parts = []
    for e in errors:
        name = e.field or ("request body" if e.in_ == "body" else e.in_)
        if e.in_ not in ("body",) and e.field:
            name = f"{e.field} ({e.in_})"
        parts.append(f"{name}: {e.reason}")
    return "; ".join(parts) or "the request is invalid"


# --- OpenAPI --------------------------------------------------------------------------

_REF = "#/components/schemas/{model}"
_PROBLEM = {"$ref": _REF.format(model="ProblemDetails")}
_VALIDATION_PROBLEM = {"$ref": _REF.format(model="ValidationProblemDetails")}
_UNREFERENCED_IF_UNUSED = ("HTTPValidationError", "ValidationError")

_RESPONSES = {
    "401": "No token, or one that is expired, forged or for another audience "
    "(with `WWW-Authenticate: Bearer`)",
    "403": "The caller's roles do not include one this operation accepts",
    "404": "Not found, or not the caller's to see (another district's or caseworker's)",
    "409": "The request conflicts with the current state (e.g. a stale `If-Match`)",
    "503": "The audit log, the identity provider's keys or the database is unavailable "
    "for the moment; try again (`Retry-After` where known)",
}


def declare_problem_responses(schema: dict[str, Any]) -> None:
    """Declare the problem responses every operation may give, in place.

    Operations behind a token may answer 401, 403, 404 and 503, writes also 409; every
    422 (FastAPI declares one wherever there are inputs) becomes a ValidationProblemDetails.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    _, definitions = models_json_schema(
        [(ProblemDetails, "serialization"), (ValidationProblemDetails, "serialization")],
        ref_template=_REF,
        by_alias=True,
    )
    components.update(definitions.get("$defs", {}))
    for ops in schema.get("paths", {}).values():
        for method, op in ops.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses = op["responses"]
            if "422" in responses:
                responses["422"] = {
                    "description": "Inputs that break the rules, each named in `errors`",
                    "content": {PROBLEM_JSON: {"schema": _VALIDATION_PROBLEM}},
                }
            if not op.get("security"):
                continue
            codes = ["401", "403", "404", "503"]
            if method not in ("get", "head", "options"):
                codes.append("409")
            for code in sorted(codes):
                declared: dict[str, Any] = {
                    "description": _RESPONSES[code],
                    "content": {PROBLEM_JSON: {"schema": _PROBLEM}},
                }
                if code == "401":
                    declared["headers"] = {
                        "WWW-Authenticate": {
                            "description": "The bearer challenge (RFC 6750)",
                            "schema": {"type": "string"},
                        }
                    }
                responses.setdefault(code, declared)
            op["responses"] = dict(sorted(responses.items()))
    text = repr(schema.get("paths", {}))
    for name in _UNREFERENCED_IF_UNUSED:
        if _REF.format(model=name) not in text:
            components.pop(name, None)
