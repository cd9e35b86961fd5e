"""The compose stack's secrets: one file each under ``.lotse/compose/`` (git-ignored).

``python3 deploy/devstack/lotse_devstack/compose_secrets.py`` (standard library only, so
an operator's machine needs no venv) or ``lotse compose-secrets``. It makes what is
missing and keeps what exists, so it can run again after a partner is added to
``deploy/partners.json`` (the new partner gets a password; the others keep theirs):

- ``rabbitmq-admin.conf`` / ``rabbitmq-admin-password``: the broker's administrator
  (RabbitMQ's ``default_user``; no ``guest`` account is ever made);
- ``mongo-root-password``, ``mongo-root-url``, ``mongo-keyfile``: the database's root
  user (the official image's ``MONGO_INITDB_ROOT_*``) and the replica set's key;
- ``<service>-rabbit-url``, ``<service>-mongo-url``: each service's own broker and
  database user, as the URL it reads through ``LOTSE_RABBIT_URL_FILE`` and
  ``LOTSE_MONGO_URL_FILE``; the ``provision`` job makes those users;
- ``partner-passwords``: ``<partner id> <password>`` a line, for the partners' broker users.

Compose without Swarm mounts a secret file as it is, and the containers run as other
users (10001, rabbitmq, mongodb): so the files are world-readable (0644) inside a
directory only its owner can enter (0700).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

SERVICES = ("intake", "courses", "placement", "notifications")
ADMIN_USER = "lotse-admin"
MONGO_ROOT = "root"
# the official mongo image: a replica set named rs0 whose one member is mongo:27017
REAL_MONGO_OPTIONS = "replicaSet=rs0&authSource=admin"
# the SecantusDB stand-in (its replica set is "secantus"): straight to the one node
STANDIN_MONGO_OPTIONS = "directConnection=true&authSource=admin&retryWrites=false"


def _password() -> str:
    return secrets.token_hex(24)  # nothing to escape in a URL or rabbitmq.conf


def _write(path: Path, text: str, made: list[str]) -> None:
    if path.exists():
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)  # whatever the umask: the containers' users read it
    made.append(path.name)


def _partner_ids(definitions: Path) -> list[str]:
    data = json.loads(definitions.read_text())
    return [str(p["id"]) for p in data.get("partners", [])]


def make_secrets(
    directory: Path, definitions: Path, *, mongo_options: str = REAL_MONGO_OPTIONS
) -> list[str]:
    """Every missing secret file in ``directory``; returns the names made."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    made: list[str] = []
    admin = directory / "rabbitmq-admin-password"
    _write(admin, _password() + "\n", made)
    admin_password = admin.read_text().strip()
    _write(
        directory / "rabbitmq-admin.conf",
        f"default_user = {ADMIN_USER}\ndefault_pass = {admin_password}\n",
        made,
    )
    root = directory / "mongo-root-password"
    _write(root, _password() + "\n", made)
    root_password = root.read_text().strip()
    _write(
        directory / "mongo-root-url",
        f"mongodb://{MONGO_ROOT}:{root_password}@mongo:27017/?{mongo_options}\n",
        made,
    )
    _write(directory / "mongo-keyfile", secrets.token_urlsafe(96) + "\n", made)
    for service in SERVICES:
        _write(
            directory / f"{service}-rabbit-url",
            f"amqp://{service}:{_password()}@rabbitmq:5672/\n",
            made,
        )
        _write(
            directory / f"{service}-mongo-url",
            f"mongodb://{service}:{_password()}@mongo:27017/?{mongo_options}\n",
            made,
        )
    passwords = directory / "partner-passwords"
    _write(passwords, "", made)
    known = {line.split()[0] for line in passwords.read_text().splitlines() if line.strip()}
    missing = [pid for pid in _partner_ids(definitions) if pid not in known]
    if missing:
        with passwords.open("a") as f:
            f.writelines(f"{pid} {_password()}\n" for pid in missing)
        made.extend(f"partner-passwords: {pid}" for pid in missing)
    return made


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[3]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=root / ".lotse" / "compose")
    parser.add_argument("--partners", type=Path, default=root / "deploy" / "partners.json")
    parser.add_argument(
        "--standin",
        action="store_true",
        help="database URLs for the SecantusDB stand-in (docker-compose.standin.yml)",
    )
    args = parser.parse_args(argv)
    options = STANDIN_MONGO_OPTIONS if args.standin else REAL_MONGO_OPTIONS
    made = make_secrets(args.dir, args.partners, mongo_options=options)
    print(f"{args.dir}: " + (", ".join(made) + " made" if made else "nothing missing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
