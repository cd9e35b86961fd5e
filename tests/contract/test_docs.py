"""The documentation names only files and endpoints that exist.

Docs drift when code moves: a partner's developer who follows a path or an endpoint
that is gone loses an afternoon. Every repository path in backticks in README.md and
docs/*.md must exist, and every ``GET /…``-style endpoint must be a route of one of
the services or the portal.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lotse_portal.bootstrap import Overrides
from lotse_portal.bootstrap import create_app as create_portal
from lotse_portal.settings import PortalSettings

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = ("services/", "shared/", "deploy/", "tests/", "docs/", "bench/", ".ci/")
PATH = re.compile(r"`((?:" + "|".join(map(re.escape, TOP)) + r")[^`\s]*)`")
ENDPOINT = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE) (/(?:<[^>\s]+>|[^\s`)\"'<>,;\[])*)")
# not Lotse's: the local OpenID provider's API (docs/sign-in.md)
ELSEWHERE = {("PUT", "/users/{}")}
SERVICES = ["intake", "courses", "placement", "notifications"]
# made on a machine, never committed: the operator's overrides, the tests' reports
GENERATED = ("deploy/.env", "tests/artifacts/")


def mentions(pattern: re.Pattern[str]) -> list[tuple[str, re.Match[str]]]:
    return [(doc.name, m) for doc in DOCS for m in pattern.finditer(doc.read_text())]


def test_every_named_file_exists() -> None:
    missing = []
    for doc, m in mentions(PATH):
        path = m[1].rstrip(".:")
        if any(c in path for c in "<>*{}…") or path.endswith("/…"):
            continue  # a pattern, not a path
        path = path.split("::")[0].split("#")[0]
        if not path.startswith(GENERATED) and not (ROOT / path).exists():
            missing.append(f"{doc}: {path}")
    assert missing == [], "\n".join(missing)


def _shape(path: str) -> str:
    """``/people/{person_id}``, ``/people/<id>`` and ``/people/123`` alike: ``/people/{}``."""
    path = path.split("?")[0].rstrip("/.") or "/"
    return re.sub(r"\{[^}]*\}|<[^>]*>|\$\w+|:\w+", "{}", path)


def _walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for route in routes:
        if hasattr(route, "path"):
            for method in getattr(route, "methods", None) or {"GET"}:
                yield method, _shape(prefix + route.path)
        elif hasattr(route, "original_router"):  # FastAPI's included router
            yield from _walk(route.original_router.routes, prefix + route.include_context.prefix)


@pytest.fixture(scope="module")
def routes() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for name in SERVICES:
        app = importlib.import_module(f"lotse_{name}.bootstrap").create_app()
        found.update(_walk(app.routes))
    portal = create_portal(
        PortalSettings(oidc_discovery_url="http://127.0.0.1:9/.well-known/openid-configuration"),
        Overrides(),
    )
    found.update(_walk(portal.routes))
    return found


def _fits(named: str, route: str) -> bool:
    """A placeholder on either side stands for any one segment; ``…`` ends a family.
    A concrete id in the doc (``/people/0b8e…``) meets the route's parameter."""
    a, b = named.split("/"), route.split("/")
    if a[-1] == "…":
        a, b = a[:-1], b[: len(a) - 1]
    elif len(a) != len(b):
        return False
    return all(x == y or "{}" in (x, y) for x, y in zip(a, b, strict=True))


def test_every_named_endpoint_is_served(routes: set[tuple[str, str]]) -> None:
    missing = []
    for doc, m in mentions(ENDPOINT):
        method, path = m[1], _shape(m[2])
        if (method, path) in ELSEWHERE:
            continue
        if not any(method == verb and _fits(path, route) for verb, route in routes):
            missing.append(f"{doc}: {method} {m[2]}")
    assert missing == [], "\n".join(missing)
