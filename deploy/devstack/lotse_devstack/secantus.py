"""Start SecantusDB (a MongoDB-wire server on WiredTiger) as a local process.

Development and test use only: it is GPL-2.0 and beta, and no service image
contains it. It reports itself as the single-node replica set ``secantus``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from .children import die_with_parent
from .ports import port_open


def mongo_url(port: int) -> str:
    # retryWrites=false: with retryable writes SecantusDB slows down ~10x after ~10k writes
    return f"mongodb://127.0.0.1:{port}/?replicaSet=secantus&retryWrites=false"


def start_secantus(
    port: int, storage: Path, log_file: Path | None = None, timeout_s: float = 30
) -> subprocess.Popen[bytes]:
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("secantusd-py") or str(Path(sys.executable).parent / "secantusd-py")
    log = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [
            exe,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(storage),
            "--log-level",
            "WARNING",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a Ctrl-C in the terminal must not kill it mid-write
        preexec_fn=die_with_parent(),
    )
    deadline = time.monotonic() + timeout_s
    while not port_open("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"SecantusDB did not start on port {port}; see {log_file}")
        time.sleep(0.1)
    return proc


def stop_secantus(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
