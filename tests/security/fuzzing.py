"""Schemathesis over a service's OpenAPI document, sent to the running app in this process.

Schemathesis (4.x) builds a Hypothesis strategy of requests for each operation; the cases
are drawn first (in a worker thread, deterministically: ``derandomize``), then sent through
``httpx.ASGITransport`` to the app, which runs its lifespan on the test's event loop
(schemathesis' own ASGI transport would drive the app from another loop, which the
service's MongoDB and RabbitMQ clients do not allow). Each response is checked by
schemathesis: no server error, and a 2xx body matching the documented schema.

Per operation: positive cases (valid per the schema), negative ones (violating it), and
positive ones with the path ids of seeded records, so that some requests get past the
404 and reach the domain code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

# Per operation, role and generation mode: 40 in `make test` (placement's fuzz at 150 ran
# past pytest's 300 s per test on a busy CI machine), 150 in `make security`, which allows
# each test 30 minutes; LOTSE_FUZZ_EXAMPLES sets it.
EXAMPLES = int(os.environ.get("LOTSE_FUZZ_EXAMPLES", "40"))

# Server-sent events never end: no request to them can be awaited to completion.
STREAMING = {("GET", "/notifications/events")}


@dataclass
class Finding:
    operation: str
    status: int
    request: str
    detail: str


@dataclass
class FuzzResult:
    name: str
    fuzz_cases: int = 0
    server_errors: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    operations: int = 0
    findings: list[Finding] = field(default_factory=list)

    def save(self) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        summary = {
            "name": self.name,
            "fuzz_cases": self.fuzz_cases,
            "server_errors": self.server_errors,
            "operations": self.operations,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "findings": [f.__dict__ for f in self.findings[:50]],
        }
        (ARTIFACTS / f"fuzz-{self.name}.json").write_text(json.dumps(summary, indent=1))


T = TypeVar("T")


def draw(strategy: st.SearchStrategy[T], examples: int) -> list[T]:
    """Every example Hypothesis generates for ``strategy`` (up to ``examples``), the same
    ones on every run: a plain function under ``@given`` collects them, so that async code
    can then send them (Hypothesis does not drive coroutines itself)."""
    drawn: list[T] = []

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def collect(case: T) -> None:
        drawn.append(case)

    with contextlib.suppress(Unsatisfiable):  # e.g. negative cases of an input-less operation
        collect()
    return drawn


@dataclass
class Target:
    """Who calls an operation and which real ids its path may name."""

    headers: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)


def strategies_for(operation: Any, ids: dict[str, str]) -> list[st.SearchStrategy[Case]]:
    found = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    names = {p.name for p in operation.path_parameters}
    known = {k: v for k, v in ids.items() if k in names}
    if names and known:
        found.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known))
    return found


def plan(
    schema: dict[str, Any], targets: Any, examples: int = EXAMPLES
) -> list[tuple[Case, Target]]:
    """Draw the cases of every operation; ``targets(method, path, roles)`` names the callers."""
    loaded = schemathesis.openapi.from_dict(schema)
    planned: list[tuple[Case, Target]] = []
    for result in loaded.get_all_operations():
        if isinstance(result, Err):
            raise AssertionError(f"schemathesis cannot read the schema: {result.err()}")
        operation = result.ok()
        key = (operation.method.upper(), operation.path)
        if key in STREAMING:
            continue
        security = schema["paths"][operation.path][operation.method].get("security") or []
        roles = security[0]["bearer"] if security else []
        for target in targets(*key, roles):
            for strategy in strategies_for(operation, target.ids):
                planned.extend((case, target) for case in draw(strategy, examples))
    return planned


def _request_kwargs(case: Case, target: Target) -> dict[str, Any]:
    sent = case.as_transport_kwargs(base_url="http://service", headers=target.headers)
    kwargs: dict[str, Any] = {
        "method": sent["method"],
        "url": sent["url"],
        "headers": {str(k): str(v) for k, v in (sent.get("headers") or {}).items()},
        "params": sent.get("params"),
    }
    cookies = sent.get("cookies")
    if cookies:
        kwargs["headers"]["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    if "json" in sent:
        kwargs["json"] = sent["json"]
    data = sent.get("data")
    if isinstance(data, bytes | str):
        kwargs["content"] = data
    elif data is not None:
        kwargs["data"] = data
    if sent.get("files"):
        kwargs["files"] = sent["files"]
    # the token is the caller's: a generated Authorization header never replaces it
    kwargs["headers"].update(target.headers)
    return kwargs


async def run(
    name: str, http: httpx.AsyncClient, planned: Sequence[tuple[Case, Target]]
) -> FuzzResult:
    """Send every planned case; count server errors and schema violations."""
    result = FuzzResult(name)
    result.operations = len({(c.method, c.path) for c, _ in planned})
    checks = [not_a_server_error, response_schema_conformance, content_type_conformance]
    for case, target in planned:
        kwargs = _request_kwargs(case, target)
        what = f"{case.method} {case.path}"
        try:
            request = http.build_request(**kwargs)
        except (httpx.InvalidURL, UnicodeEncodeError, ValueError):
            continue  # the client cannot even send it (e.g. a header with a newline)
        result.fuzz_cases += 1
        try:
            response = await http.send(request)
        except Exception as exc:  # the app raised: a client would have got a 500
            result.server_errors += 1
            result.by_status[500] = result.by_status.get(500, 0) + 1
            where = traceback.extract_tb(exc.__traceback__)
            frames = [f"{f.filename.split('/')[-1]}:{f.lineno} {f.name}" for f in where[-6:]]
            detail = f"{type(exc).__name__}: {exc} at " + " < ".join(reversed(frames))
            sent = f"{request.method} {request.url} {request.content[:300]!r}"
            result.findings.append(Finding(what, 500, sent, detail[:1500]))
            continue
        status = response.status_code
        result.by_status[status] = result.by_status.get(status, 0) + 1
        if status >= 500:
            result.server_errors += 1
        try:
            case.validate_response(response, checks=checks)
        except (Failure, FailureGroup) as exc:
            sent = f"{request.method} {request.url} {request.content[:300]!r}"
            result.findings.append(Finding(what, status, sent, str(exc)[:1500]))
        await asyncio.sleep(0)
    return result
