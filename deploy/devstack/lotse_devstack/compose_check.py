"""``make compose-check``: docker-compose built and run for real, on this machine only.

1. a container engine: ``docker info`` answers, or (as root) Debian's ``docker.io`` is
   installed where missing and ``dockerd`` started (and stopped again at the end);
2. a base image: ``LOTSE_BASE_IMAGE``, else the cached ``lotse-local/debian-python``,
   else ``python:3.11.13-slim-bookworm`` if it can be pulled, else one made with
   ``debootstrap`` from Debian's packages and ``docker import``-ed (kept for next time);
3. the images, built by compose: the four services, the portal and the stand-ins of
   ``docker-compose.standin.yml`` (no image registry: RabbitMQ, MongoDB, Mailpit and
   nginx come from Debian's packages and SecantusDB); the machine's CA bundle goes in
   as a build secret, never into a layer;
4. a project of its own (name, networks, volumes, secrets, dev keys, free ports on
   127.0.0.1), up; every health check waited for; placement scaled to 3;
5. the main flow through the gateway: people registered at intake, enrolled and
   completed by the school over AMQP as its own broker user, openings from the agency
   and chambers, each person's completion alert read from the caseworker's inbox;
6. every placement replica consumed messages (its ``/metrics``); one replica killed,
   the flow again, complete;
7. ``docker compose down -v``: containers, networks and volumes of this run gone.

Prints one summary line; exits 1 on any failure (logs kept, their folder named).
``--skip-without-engine``: where no engine can be had, print a "skipped" line and
exit 0 (for CI on machines without one).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from lotse_shared.contracts import partner as p

from . import samples
from .compose_secrets import STANDIN_MONGO_OPTIONS, make_secrets
from .demo import COORDINATOR, COURSE, SCHOOL, integration_course, openings
from .observe import eventually
from .partner import PartnerPublisher
from .ports import free_port
from .tokens import DevIssuer

ROOT = Path(__file__).resolve().parents[3]
SERVICES = ("intake", "courses", "placement", "notifications")
IMAGES = (*SERVICES, "portal")
PULLED_BASE = "python:3.11.13-slim-bookworm"
LOCAL_BASE = "lotse-local/debian-python:bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PEOPLE_PER_ROUND = 6
REPLICAS = 3


class CheckFailed(Exception):
    """A step failed; the message says which and why."""


class NoEngine(Exception):
    """No container engine answers, and none could be started here."""


def say(message: str) -> None:
    print(f"compose-check: {message}", file=sys.stderr, flush=True)


def run(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    timeout_s: float = 600,
    check: bool = True,
    stdin: Any = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command; its output goes to ``log`` (appended) or is captured."""
    if log is not None:
        with log.open("a") as out:
            out.write(f"\n$ {' '.join(cmd)}\n")
            out.flush()
            result = subprocess.run(
                cmd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout_s,
                check=False,
                stdin=stdin,
            )
    else:
        result = subprocess.run(
            cmd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            stdin=stdin,
        )
    if check and result.returncode != 0:
        where = f"; see {log}" if log else f": {(result.stderr or result.stdout).strip()[-600:]}"
        raise CheckFailed(f"{' '.join(cmd[:4])} ... exited with {result.returncode}{where}")
    return result


# --- 1. the engine ------------------------------------------------------------------------


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return run(["docker", "info"], check=False, timeout_s=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def apt_install(*packages: str, log: Path) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    if run(install, env=env, log=log, check=False).returncode != 0:
        run(["apt-get", "update", "-q"], env=env, log=log)
        run(install, env=env, log=log)


def ensure_engine(workdir: Path) -> subprocess.Popen[bytes] | None:
    """The engine answers; returns the ``dockerd`` this run started, if it did."""
    if engine_answers():
        return None
    if os.geteuid() != 0:
        raise NoEngine("docker does not answer and only root may install or start one")
    log = workdir / "engine.log"
    try:
        if shutil.which("dockerd") is None or shutil.which("docker") is None:
            say("installing Debian's docker.io")
            apt_install("docker.io", log=log)
    except (CheckFailed, FileNotFoundError) as e:
        raise NoEngine(f"cannot install docker.io: {e}") from None
    say("starting dockerd")
    with (workdir / "dockerd.log").open("ab") as out:
        daemon = subprocess.Popen(
            ["dockerd"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 60
    while not engine_answers():
        if daemon.poll() is not None or time.monotonic() > deadline:
            stop_daemon(daemon)
            raise NoEngine(f"dockerd did not come up; see {workdir / 'dockerd.log'}")
        time.sleep(1)
    return daemon


def stop_daemon(daemon: subprocess.Popen[bytes] | None) -> None:
    if daemon is None or daemon.poll() is not None:
        return
    daemon.terminate()
    try:
        daemon.wait(timeout=60)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()


# --- 2. the base image ----------------------------------------------------------------------


def image_exists(name: str) -> bool:
    return run(["docker", "image", "inspect", name], check=False).returncode == 0


def ensure_base_image(workdir: Path) -> tuple[str, str]:
    """(image, how it was had): given, cached, pulled or debootstrap."""
    given = os.environ.get("LOTSE_BASE_IMAGE")
    if given:
        return given, "given"
    if image_exists(LOCAL_BASE):
        return LOCAL_BASE, "cached"
    if image_exists(PULLED_BASE):
        return PULLED_BASE, "cached"
    log = workdir / "base-image.log"
    try:
        if (
            run(["docker", "pull", PULLED_BASE], log=log, check=False, timeout_s=120).returncode
            == 0
        ):
            return PULLED_BASE, "pulled"
    except subprocess.TimeoutExpired:
        pass
    say(f"{PULLED_BASE} cannot be pulled; making {LOCAL_BASE} with debootstrap")
    if shutil.which("debootstrap") is None:
        apt_install("debootstrap", log=log)
    rootfs = Path(tempfile.mkdtemp(prefix="lotse-rootfs-", dir="/var/tmp"))
    try:
        run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                "bookworm",
                str(rootfs),
                DEBIAN_MIRROR,
            ],
            log=log,
            timeout_s=900,
        )
        sources = rootfs / "etc" / "apt" / "sources.list"
        sources.write_text(
            f"deb {DEBIAN_MIRROR} bookworm main\n"
            f"deb {DEBIAN_MIRROR} bookworm-updates main\n"
            "deb http://deb.debian.org/debian-security bookworm-security main\n"
        )
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / cache).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run(
            [
                "docker",
                "import",
                "-c",
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "-c",
                "ENV LANG=C.UTF-8",
                "-c",
                'CMD ["/bin/bash"]',
                "-",
                LOCAL_BASE,
            ],
            log=log,
            stdin=tar.stdout,
        )
        tar.wait()
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return LOCAL_BASE, "debootstrap"


# --- 3./4. the project ----------------------------------------------------------------------


@dataclass
class Project:
    workdir: Path
    base_image: str
    name: str = field(default_factory=lambda: f"lotse-check-{uuid.uuid4().hex[:6]}")
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.secrets = self.workdir / "secrets"
        self.keys = self.workdir / "dev-keys"
        self.log = self.workdir / "compose.log"
        for name in (
            "RABBITMQ",
            "RABBITMQ_MANAGEMENT",
            "MAILPIT",
            "PORTAL",
            *(s.upper() for s in SERVICES),
        ):
            self.ports[name] = free_port()

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": self.name,
            "DOCKER_BUILDKIT": "1",
            "LOTSE_BASE_IMAGE": self.base_image,
            "LOTSE_IMAGE_TAG": "check",
            "LOTSE_SECRETS_DIR": str(self.secrets),
            "LOTSE_DEV_KEYS_DIR": str(self.keys),
            "LOTSE_BIND_ADDRESS": "127.0.0.1",
            **{f"LOTSE_{name}_PORT": str(port) for name, port in self.ports.items()},
        }
        if CA_BUNDLE.is_file():
            env["LOTSE_BUILD_CA_FILE"] = str(CA_BUNDLE)
        return env

    def compose(
        self, *args: str, timeout_s: float = 900, check: bool = True, log: bool = True
    ) -> subprocess.CompletedProcess[str]:
        binary = shutil.which("docker-compose") or str(
            Path(sys.executable).parent / "docker-compose"
        )
        cmd = [
            binary,
            "--project-directory",
            str(ROOT),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "-f",
            str(ROOT / "docker-compose.standin.yml"),
            *args,
        ]
        return run(
            cmd, env=self.env(), log=self.log if log else None, timeout_s=timeout_s, check=check
        )

    def prepare(self) -> DevIssuer:
        make_secrets(
            self.secrets, ROOT / "deploy" / "partners.json", mongo_options=STANDIN_MONGO_OPTIONS
        )
        return DevIssuer(self.keys).ensure()

    def containers(self, service: str | None = None) -> list[str]:
        args = ["ps", "-a", "-q", *([service] if service else [])]
        found = self.compose(*args, log=False).stdout.split()
        return sorted(found)

    def states(self) -> dict[str, tuple[str, str, str]]:
        """container name -> (service, state, health): health is the health check's
        status, or ``exit N`` for a container without one (the provision job)."""
        ids = self.containers()
        if not ids:
            return {}
        fmt = (
            '{{.Name}}|{{index .Config.Labels "com.docker.compose.service"}}|{{.State.Status}}'
            "|{{if .State.Health}}{{.State.Health.Status}}{{end}}|{{.State.ExitCode}}"
        )
        out = run(["docker", "inspect", "--format", fmt, *ids]).stdout
        states = {}
        for line in out.splitlines():
            name, service, status, health, code = line.split("|")
            states[name.lstrip("/")] = (service, status, health or f"exit {code}")
        return states

    def wait_healthy(self, timeout_s: float = 300) -> int:
        """Every container healthy, the provision job exited 0; returns how many are."""
        deadline = time.monotonic() + timeout_s
        while True:
            states = self.states()
            # no health check (the gateway): running is all it can show
            bad = {
                n: s
                for n, s in states.items()
                if s[2] != "healthy"
                and not (s[1] == "running" and s[2] == "exit 0")
                and not (s[0] == "provision" and s[2] == "exit 0")
            }
            if states and not bad:
                return sum(1 for s in states.values() if s[2] == "healthy")
            failed = {
                n: s
                for n, s in bad.items()
                if s[2] == "unhealthy" or (s[1] == "exited" and s[2] != "exit 0")
            }
            if failed or time.monotonic() > deadline:
                raise CheckFailed(f"not healthy: {failed or bad}; see {self.log}")
            time.sleep(2)

    def placement_counts(self) -> dict[str, float]:
        """Messages each running placement replica took from its queues (its /metrics)."""
        counts = {}
        fetch = (
            "import urllib.request; print(urllib.request.urlopen("
            "'http://127.0.0.1:8000/metrics', timeout=5).read().decode())"
        )
        for cid in self.containers("placement"):
            state = run(["docker", "inspect", "--format", "{{.State.Running}}", cid]).stdout
            if state.strip() != "true":
                continue
            text = run(["docker", "exec", cid, "python", "-c", fetch]).stdout
            counts[cid[:12]] = sum(
                float(m[1])
                for m in re.finditer(
                    r"^faststream_received_messages_total\{[^}]*\} (\S+)$", text, re.M
                )
            )
        return counts

    def broker_users(self) -> set[str]:
        """Who is connected to the broker (``rabbitmqctl list_connections user``)."""
        [broker] = self.containers("rabbitmq")
        out = run(
            [
                "docker",
                "exec",
                broker,
                "rabbitmqctl",
                "-q",
                "list_connections",
                "--no-table-headers",
                "user",
            ]
        )
        return {line.strip() for line in out.stdout.splitlines() if line.strip()}

    def down(self) -> None:
        self.compose(
            "--profile",
            "keycloak",
            "down",
            "-v",
            "--remove-orphans",
            "--timeout",
            "20",
            check=False,
            timeout_s=300,
        )


# --- 5. the main flow -------------------------------------------------------------------------


def partner_passwords(secrets: Path) -> dict[str, str]:
    lines = (secrets / "partner-passwords").read_text().splitlines()
    return dict(line.split(maxsplit=1) for line in lines if line.strip())


async def main_flow(
    project: Project, issuer: DevIssuer, round_no: int, *, with_openings: bool
) -> int:
    """One round: people registered, enrolled, completed; returns the alerts read."""
    gateway = {s: f"http://127.0.0.1:{project.ports[s.upper()]}" for s in SERVICES}
    caseworker = f"check-{project.name[-6:]}-{round_no}@landkreis-kassel.example"
    coordinator = {"Authorization": f"Bearer {issuer.token('coordinator', user=COORDINATOR)}"}
    inbox = {"Authorization": f"Bearer {issuer.token('caseworker', user=caseworker)}"}
    passwords = partner_passwords(project.secrets)
    port = project.ports["RABBITMQ"]
    school_url = f"amqp://{SCHOOL}:{passwords[SCHOOL]}@127.0.0.1:{port}/"
    today = date.today()
    names = [f"Check{i} Round{round_no}" for i in range(PEOPLE_PER_ROUND)]
    async with httpx.AsyncClient(timeout=15, headers=coordinator) as http:
        ids = []
        for name in names:
            given, family = name.split()
            body = samples.person_body(
                given_name=given,
                family_name=family,
                contacts=[{"role": "caseworker", "name": "Check Worker", "email": caseworker}],
            )
            r = await http.post(f"{gateway['intake']}/people", json=body)
            if r.status_code != 201 and r.status_code != 200:
                raise CheckFailed(f"POST /people through the gateway: {r.status_code} {r.text}")
            ids.append(r.json()["person_id"])
        async with PartnerPublisher(school_url, "lotse", passwords=passwords) as pub:
            if with_openings:
                for source, report in openings(today):
                    await pub.publish(p.OpeningReported.create(report, producer=source))
            details = integration_course(today)
            for pid in ids:
                await pub.publish(
                    p.EnrolmentReported.create(
                        p.EnrolmentReportedV1(person_id=pid, course=details), producer=SCHOOL
                    )
                )

            async def enrolled() -> bool:
                for pid in ids:
                    r = await http.get(
                        f"{gateway['courses']}/enrolments", params={"person_id": pid}
                    )
                    if r.status_code != 200 or len(r.json()) != 1:
                        return False
                r = await http.get(f"{gateway['placement']}/openings")
                return r.status_code == 200 and len(r.json()) >= 5

            await eventually(enrolled, timeout_s=120, what="enrolments and openings", every_s=1)
            for pid in ids:
                await pub.publish(
                    p.ExamResultReported.create(
                        p.ExamResultReportedV1(
                            person_id=pid,
                            course=COURSE,
                            exam="dtz",
                            result="B1",
                            taken_on=today - timedelta(days=3),
                        ),
                        producer=SCHOOL,
                    )
                )
                await pub.publish(
                    p.CompletionReported.create(
                        p.CompletionReportedV1(person_id=pid, course=COURSE, completed_on=today),
                        producer=SCHOOL,
                    )
                )

        async def alerts() -> int:
            r = await http.get(f"{gateway['notifications']}/notifications", headers=inbox)
            if r.status_code != 200:
                return 0
            done = {
                name
                for n in r.json()
                for name in names
                if n["kind"] == "course_completed" and name in n["subject"] and n["body"]
            }
            return len(done) if len(done) == len(names) else 0

        return await eventually(
            alerts, timeout_s=180, what="every completion's alert in the inbox", every_s=1
        )


# --- the whole check --------------------------------------------------------------------------


def check(workdir: Path, skip_without_engine: bool) -> str:
    started = time.monotonic()
    try:
        daemon = ensure_engine(workdir)
    except NoEngine as e:
        if skip_without_engine:
            return f"compose-check: skipped (no container engine: {e})"
        raise CheckFailed(f"no container engine: {e}") from None
    try:
        base, how = ensure_base_image(workdir)
        project = Project(workdir, base)
        issuer = project.prepare()
        try:
            say(f"building images on {base} ({how}); project {project.name}, logs {workdir}")
            project.compose("build", timeout_s=1800)
            project.compose("--profile", "keycloak", "build", "portal", timeout_s=900)
            images = sum(image_exists(f"lotse/{s}:check") for s in IMAGES)
            if images != len(IMAGES):
                raise CheckFailed(f"{images} of {len(IMAGES)} service images built")
            say("starting the stack")
            project.compose("up", "-d", "--no-build", timeout_s=900)
            project.wait_healthy()
            say(f"scaling placement to {REPLICAS}")
            project.compose(
                "up", "-d", "--no-build", "--scale", f"placement={REPLICAS}", timeout_s=600
            )
            healthy = project.wait_healthy()
            replicas = len(project.containers("placement"))
            if replicas != REPLICAS:
                raise CheckFailed(f"{replicas} placement replicas, not {REPLICAS}")
            say("the main flow through the gateway")
            asyncio.run(main_flow(project, issuer, 1, with_openings=True))
            users = project.broker_users()
            if not set(SERVICES) <= users or users & {"guest", "lotse-admin"}:
                raise CheckFailed(f"broker connections are not the services' own users: {users}")
            counts = project.placement_counts()
            consumed_by = sum(1 for c in counts.values() if c > 0)
            if consumed_by != REPLICAS:
                raise CheckFailed(f"placement replicas' messages taken: {counts}")
            victim = project.containers("placement")[0]
            say(f"killing placement replica {victim[:12]}; the flow again")
            run(["docker", "kill", victim])
            before = project.placement_counts()
            asyncio.run(main_flow(project, issuer, 2, with_openings=False))
            after = project.placement_counts()
            survivors = sum(
                1 for c, n in after.items() if n > before.get(c, 0) and c != victim[:12]
            )
            if survivors == 0:
                raise CheckFailed("no surviving placement replica took the second round")
        except BaseException:
            try:
                project.compose("logs", "--no-color", "--timestamps", check=False, timeout_s=120)
            finally:
                project.down()
            raise
        project.down()
        left = project.containers()
        if left:
            raise CheckFailed(f"containers left after down: {left}")
    finally:
        stop_daemon(daemon)
    elapsed = time.monotonic() - started
    return (
        f"compose-check: images={images} healthy={healthy} placement_replicas={replicas} "
        f"consumed_by={consumed_by} flow=ok after_kill=ok survivors_took={survivors} "
        f"broker_users={len(users)} guest=none "
        f"base={how} elapsed={elapsed:.0f}s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="compose-check", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--skip-without-engine",
        action="store_true",
        help="where no container engine can be had, say so and exit 0",
    )
    args = parser.parse_args(argv)

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    workdir = Path(tempfile.mkdtemp(prefix="lotse-compose-check-"))
    try:
        line = check(workdir, args.skip_without_engine)
    except (CheckFailed, TimeoutError, subprocess.TimeoutExpired, httpx.HTTPError) as e:
        print(f"compose-check: FAILED: {e} (logs: {workdir})", flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"compose-check: interrupted; everything it started is down (logs: {workdir})")
        return 130
    shutil.rmtree(workdir / "secrets", ignore_errors=True)
    shutil.rmtree(workdir / "dev-keys", ignore_errors=True)
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
