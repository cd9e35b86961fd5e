"""Make the compose stack's broker and database users: ``python -m lotse_shared.ops.provision``.

The ``provision`` job of docker-compose.yml runs it (in a service image) after RabbitMQ
and MongoDB are healthy and before any service starts; it is idempotent, so every
``docker compose up`` runs it again and a partner added to ``deploy/partners.json`` (with
a password in the ``partner-passwords`` secret) gets its user without a restart.

- each service's broker user, named and with the password its URL secret gives
  (``/run/secrets/<service>-rabbit-url``), with rights on its own queues and the
  namespace's shared exchanges only; no tags (no management access);
- every partner of ``LOTSE_PARTNERS_FILE``: its user, with the password from
  ``LOTSE_PARTNER_PASSWORDS_FILE``, and exactly a partner's rights (``ops.partners``);
- RabbitMQ's ``guest`` account is deleted if it exists (an old volume);
- each service's database user (``/run/secrets/<service>-mongo-url``): ``readWrite`` on
  its own database ``<namespace>_<service>`` and nothing else, made as the root user
  of ``LOTSE_MONGO_ADMIN_URL_FILE``.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pymongo import MongoClient
from pymongo.errors import OperationFailure

from lotse_shared.ops.partners import BrokerAdmin, BrokerAdminError, grant, load_definitions
from lotse_shared.settings import env_value

SERVICES = ("intake", "courses", "placement", "notifications")
SECRETS = Path(os.environ.get("LOTSE_PROVISION_SECRETS_DIR", "/run/secrets"))


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str


def credentials(url: str, what: str) -> Credentials:
    parts = urlsplit(url.strip())
    if not parts.username or not parts.password:
        raise ValueError(f"{what}: the URL names no user and password")
    return Credentials(unquote(parts.username), unquote(parts.password))


def service_resources(namespace: str, service: str) -> str:
    """What a service may configure, write and read: the namespace's shared exchanges
    and event log, and its own queues (``<ns>.<service>.…``), nothing of another's."""
    ns = re.escape(namespace)
    shared = "events|dead|retry|retry-return|event-log"
    return rf"^{ns}\.({shared})$|^{ns}\.{re.escape(service)}\..+$"


def partner_passwords(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        if line.strip():
            partner_id, password = line.split(maxsplit=1)
            found[partner_id] = password.strip()
    return found


def wait_for_broker(admin: BrokerAdmin, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.user_exists(admin.user)
            return
        except BrokerAdminError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def provision_broker(admin: BrokerAdmin, namespace: str) -> list[str]:
    done = []
    wait_for_broker(admin)
    for service in SERVICES:
        own = credentials((SECRETS / f"{service}-rabbit-url").read_text(), service)
        admin.put_user(own.user, own.password)
        resources = service_resources(namespace, service)
        admin.set_permissions(own.user, configure=resources, write=resources, read=resources)
        done.append(f"broker user {own.user}")
    definitions = Path(os.environ.get("LOTSE_PARTNERS_FILE", "/etc/lotse/partners.json"))
    passwords = partner_passwords(
        Path(os.environ.get("LOTSE_PARTNER_PASSWORDS_FILE", SECRETS / "partner-passwords"))
    )
    for partner in load_definitions(definitions):
        if partner.id not in passwords:
            raise ValueError(
                f"partner {partner.id}: no password in the partner-passwords secret "
                "(run deploy/devstack/lotse_devstack/compose_secrets.py)"
            )
        admin.put_user(partner.id, passwords[partner.id])
        grant(admin, partner, events_exchange=f"{namespace}.events")
        done.append(f"partner {partner.id}")
    if admin.user != "guest" and admin.user_exists("guest"):
        admin.delete_user("guest")
        done.append("guest deleted")
    return done


def provision_database(admin_url: str, namespace: str) -> list[str]:
    done = []
    client: MongoClient[dict[str, Any]]
    with MongoClient(admin_url, serverSelectionTimeoutMS=30_000) as client:
        for service in SERVICES:
            own = credentials((SECRETS / f"{service}-mongo-url").read_text(), service)
            roles = [{"role": "readWrite", "db": f"{namespace}_{service}"}]
            try:
                client.admin.command("createUser", own.user, pwd=own.password, roles=roles)
            except OperationFailure as e:
                if e.code != 51003:  # UserAlreadyExists: set its password and roles again
                    raise
                client.admin.command("updateUser", own.user, pwd=own.password, roles=roles)
            done.append(f"database user {own.user}")
    return done


def main() -> int:
    namespace = os.environ.get("LOTSE_NAMESPACE", "lotse")
    admin = BrokerAdmin.from_env()
    try:
        done = provision_broker(admin, namespace)
        done += provision_database(env_value("LOTSE_MONGO_ADMIN_URL", ""), namespace)
    except (OSError, ValueError, BrokerAdminError, OperationFailure) as e:
        print(f"provision: {e}", file=sys.stderr)
        return 1
    print("provision: " + ", ".join(done), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
