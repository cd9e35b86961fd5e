"""The `mongo` stand-in: SecantusDB behind the official mongo image's interface.

Like ``mongo``'s entrypoint, it makes the root user from MONGO_INITDB_ROOT_USERNAME and
MONGO_INITDB_ROOT_PASSWORD_FILE on an empty data directory (SecantusDB provisions users
only while authentication is off: so first without it, on 127.0.0.1), then serves with
authentication on. ``health`` is the container's health check: root signs in, the
server is a writable primary.

Runs inside the stand-in image only (deploy/standin/Dockerfile), never in a service image.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pymongo import MongoClient

PORT = 27017
DATA = os.environ.get("SECANTUS_STORAGE", "/data/db")
SERVER = ["secantusd-py", "--port", str(PORT), "--storage-path", DATA, "--log-level", "WARNING"]
SERVER += ["--cache-size", os.environ.get("SECANTUS_CACHE_SIZE", "256M")]


def root() -> tuple[str, str]:
    user = os.environ["MONGO_INITDB_ROOT_USERNAME"]
    password = Path(os.environ["MONGO_INITDB_ROOT_PASSWORD_FILE"]).read_text().strip()
    return user, password


def wait_for_port(proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"secantusd-py exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", PORT), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit("secantusd-py did not open its port")


def provision_root() -> None:
    user, password = root()
    proc = subprocess.Popen([*SERVER, "--host", "127.0.0.1"])
    try:
        wait_for_port(proc)
        c: MongoClient[dict[str, Any]]
        with MongoClient(f"mongodb://127.0.0.1:{PORT}/?directConnection=true") as c:
            known = c.admin.command("usersInfo", user)["users"]
            if not known:
                c.admin.command("createUser", user, pwd=password, roles=["root"])
                print(f"secantus-entry: root user {user!r} made", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def health() -> int:
    user, password = root()
    c: MongoClient[dict[str, Any]]
    with MongoClient(
        f"mongodb://127.0.0.1:{PORT}/?directConnection=true",
        username=user,
        password=password,
        serverSelectionTimeoutMS=2000,
    ) as c:
        return 0 if c.admin.command("hello").get("isWritablePrimary") else 1


def main() -> int:
    if sys.argv[1:] == ["health"]:
        return health()
    Path(DATA).mkdir(parents=True, exist_ok=True)
    provision_root()
    os.execvp(SERVER[0], [*SERVER, "--host", "0.0.0.0", "--auth"])


if __name__ == "__main__":
    sys.exit(main())
