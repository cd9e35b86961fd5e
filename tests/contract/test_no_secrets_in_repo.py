"""No secret in the repository (issue #6, part 10).

Every tracked file outside tests/ is scanned for private keys, credentials in URLs and
password/secret/token literals. The one credential allowed is RabbitMQ's built-in
``guest:guest`` account, which RabbitMQ accepts from the same host only and which the
local defaults use; documentation examples use ``*.example`` hosts or ``host``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
URL_CREDENTIALS = re.compile(
    r"\b[a-z][a-z0-9+.-]*://(?P<user>[^/:@\s\"'`]+):(?P<pw>[^@/\s\"'`]+)@(?P<host>[^/:\s\"'`]+)"
)
LITERAL = re.compile(
    r"(?i)\b\w*(?:password|passwd|secret|token|api_key)\b[\"']?"
    r"(?:\s*:\s*[\w\[\]|. ]+?)?\s*[:=]\s*[\"'](?P<value>[^\"'${}<…]{4,})[\"']"
)
ALLOWED_HOSTS = re.compile(r"(^|\.)example$|^host$")


def tracked_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    skip = ("tests/", "bench/results/", "uv.lock")
    return [
        ROOT / name
        for name in out.splitlines()
        if not name.startswith(skip) and not name.endswith((".png", ".ico"))
    ]


def findings() -> list[str]:
    found = []
    for path in tracked_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        rel = path.relative_to(ROOT)
        if PRIVATE_KEY.search(text):
            found.append(f"{rel}: a private key")
        for m in URL_CREDENTIALS.finditer(text):
            local_guest = (m["user"], m["pw"]) == ("guest", "guest")
            # an f-string building a URL from a secret read at run time, not the secret
            templated = m["pw"].startswith("{") and m["pw"].endswith("}")
            if not local_guest and not templated and not ALLOWED_HOSTS.search(m["host"]):
                found.append(f"{rel}: credentials in {m.group(0)!r}")
        for m in LITERAL.finditer(text):
            found.append(f"{rel}: literal {m.group(0)!r}")
    return found


def test_no_secret_is_tracked() -> None:
    assert len(tracked_files()) > 100  # the scan sees the repository
    assert findings() == []


def test_the_scan_would_find_one(tmp_path: Path) -> None:
    samples = [
        "LOTSE_RABBIT_URL=amqp://lotse:Zx81-prod@rabbit.internal:5672/",
        'smtp_password: str = "hunter2hunter2"',
        "-----BEGIN EC PRIVATE KEY-----",
    ]
    for sample in samples:
        hits = (
            bool(PRIVATE_KEY.search(sample))
            or any(not ALLOWED_HOSTS.search(m["host"]) for m in URL_CREDENTIALS.finditer(sample))
            or bool(LITERAL.search(sample))
        )
        assert hits, sample
