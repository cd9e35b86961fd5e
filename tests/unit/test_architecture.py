"""The layering rules, checked on the source: who may import whom."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["intake", "courses", "placement", "notifications"]
IO_LIBRARIES = {"faststream", "pymongo", "fastapi", "aio_pika", "aiosmtplib", "httpx", "uvicorn"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def sources(folder: Path) -> list[Path]:
    files = sorted(folder.rglob("*.py"))
    assert files, f"no sources under {folder}"
    return files


@pytest.mark.parametrize("service", SERVICES)
def test_domain_imports_no_io_library(service: str) -> None:
    for path in sources(ROOT / "services" / service / f"lotse_{service}" / "domain"):
        bad = {m for m in imports_of(path) if m.split(".")[0] in IO_LIBRARIES}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("service", SERVICES)
def test_services_never_import_each_other(service: str) -> None:
    others = {f"lotse_{s}" for s in SERVICES if s != service}
    for path in sources(ROOT / "services" / service):
        bad = {m for m in imports_of(path) if m.split(".")[0] in others}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_the_portal_owns_no_data_and_knows_the_services_only_by_their_http_apis() -> None:
    """A backend for the front end: no database, no broker, no service's code (so no
    rule about who may see what can be re-implemented or bypassed there)."""
    forbidden = {f"lotse_{s}" for s in SERVICES} | {"pymongo", "faststream", "aio_pika"}
    for path in sources(ROOT / "services" / "portal"):
        bad = {m for m in imports_of(path) if m.split(".")[0] in forbidden}
        bad |= {
            m
            for m in imports_of(path)
            if m.startswith(("lotse_shared.persistence", "lotse_shared.messaging"))
        }
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_shared_imports_no_service() -> None:
    services = {f"lotse_{s}" for s in SERVICES} | {"lotse_devstack", "lotse_portal"}
    for path in sources(ROOT / "shared"):
        bad = {m for m in imports_of(path) if m.split(".")[0] in services}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_contracts_import_no_io_library() -> None:
    for path in sources(ROOT / "shared" / "lotse_shared" / "contracts"):
        bad = {m for m in imports_of(path) if m.split(".")[0] in IO_LIBRARIES}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_each_service_has_one_composition_root_and_one_subscription_table() -> None:
    for service in SERVICES:
        pkg = ROOT / "services" / service / f"lotse_{service}"
        roots = [p for p in sources(pkg) if "def create_app" in p.read_text()]
        assert [p.name for p in roots] == ["bootstrap.py"], service
        tables = [p for p in sources(pkg) if "def register_subscriptions" in p.read_text()]
        assert [p.relative_to(pkg).as_posix() for p in tables] == ["entrypoints/messaging.py"]


def test_the_access_rules_are_pure() -> None:
    # who may see what is decided without I/O, so services' handlers can use it freely
    path = ROOT / "shared" / "lotse_shared" / "auth" / "principal.py"
    bad = {m for m in imports_of(path) if m.split(".")[0] in IO_LIBRARIES | {"jwt"}}
    assert not bad, bad


MULTI_WRITES = {"update_many", "delete_many"}


def multi_writes_outside_a_session(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in MULTI_WRITES
        and not any(k.arg == "session" for k in node.keywords)
    ]


def test_every_multi_document_write_runs_in_a_transaction() -> None:
    # SecantusDB (0.7.0b3) runs an updateMany/deleteMany outside a transaction in
    # chunks and retries a chunk that conflicts with an open transaction forever while
    # holding the collection's lock; that transaction's next statement on the collection
    # then waits for the lock: the server deadlocks (seen: an erasure against the outbox
    # relay hung `make test`). Inside a transaction the conflict is answered at once and
    # retried by us (lotse_shared.persistence.mongo.in_transaction).
    found = {
        f"{path.relative_to(ROOT)}:{line}"
        for folder in [ROOT / "shared", *(ROOT / "services").iterdir()]
        if folder.is_dir()
        for path in sources(folder)
        for line in multi_writes_outside_a_session(path)
    }
    assert not found, sorted(found)


def test_persistence_does_not_depend_on_messaging() -> None:
    """Messaging (outbox, parking) builds on persistence, never the other way round:
    the errors both use live in lotse_shared.errors."""
    for path in sources(ROOT / "shared" / "lotse_shared" / "persistence"):
        bad = {m for m in imports_of(path) if m.startswith("lotse_shared.messaging")}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("service", SERVICES)
def test_routes_reach_no_repository(service: str) -> None:
    """Routes call use cases, views and access rules; reading or writing the store is
    theirs, so a rule about who may see what cannot be skipped by a route."""
    path = ROOT / "services" / service / f"lotse_{service}" / "entrypoints" / "http.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    reached = [
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in {"repo", "repository"}
    ]
    assert reached == [], f"{path.relative_to(ROOT)} reaches {reached}"
    assert not {m for m in imports_of(path) if m.endswith(".repository")}


@pytest.mark.parametrize("service", SERVICES)
def test_who_may_see_what_is_decided_in_access_py(service: str) -> None:
    """One place per service to read (and review) the visibility rules: the principal's
    checks are called in its access.py only."""
    rules = {"may_access_person", "in_district", "sees_own_people"}
    package = ROOT / "services" / service / f"lotse_{service}"
    assert (package / "access.py").exists()
    for path in sources(package):
        if path.name == "access.py":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        called = {
            node.func.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in rules
        }
        assert not called, f"{path.relative_to(ROOT)} decides visibility itself: {called}"


ANATOMY = [
    "domain",
    "handlers.py",
    "access.py",
    "mapping.py",
    "repository.py",
    "entrypoints/http.py",
    "entrypoints/messaging.py",
    "bootstrap.py",
    "settings.py",
]


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_same_anatomy(service: str) -> None:
    """Who knows one service finds the same thing in the same file in another."""
    package = ROOT / "services" / service / f"lotse_{service}"
    missing = [part for part in ANATOMY if not (package / part).exists()]
    assert missing == []
    producer = ast.parse((package / "mapping.py").read_text())
    assert any(
        isinstance(node, ast.Assign)
        and any(getattr(t, "id", "") == "PRODUCER" for t in node.targets)
        for node in producer.body
    ), "PRODUCER is defined in mapping.py"


# where each service keeps its use cases: they see ports (persistence.unit, the
# repository's Protocol), never the database driver, so the unit tier runs them in memory
USE_CASES = {
    "intake": ["handlers.py"],
    "courses": ["handlers.py"],
    "placement": ["handlers.py", "pipeline.py", "imports.py"],
    "notifications": ["handlers.py", "delivery.py"],
}


@pytest.mark.parametrize("service", SERVICES)
def test_use_cases_import_no_database_driver(service: str) -> None:
    for name in USE_CASES[service]:
        path = ROOT / "services" / service / f"lotse_{service}" / name
        bad = {
            m
            for m in imports_of(path)
            if m.split(".")[0] == "pymongo" or m == "lotse_shared.persistence.mongo"
        }
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
