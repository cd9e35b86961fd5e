"""Sum what the security tests measured (tests/artifacts/*.json) into one line.

Each test writes what it measured into ``tests/artifacts``:

- ``security-<service>.json``: endpoints, unauthenticated_refused, wrong_role_refused,
  cross_district_refused (tests/integration/test_security.py);
- ``fuzz-<name>.json``: fuzz_cases, server_errors (HTTP and AMQP fuzzing);
- ``erasure.json``: erasure_leftovers (the scan after an erasure);
- ``partners.json``: broker_refused (a partner's forged routing key or user_id);
- ``logs.json``: log_leaks (names, addresses, phone numbers found in a whole flow's logs);
- ``smtp-tls.json``: smtp_tls_refused (a wrong CA or host name, no STARTTLS: nothing sent).

Only measured numbers are printed; a figure no test measured is named as missing, never
given a number, and makes the command fail.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def _load(pattern: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(ARTIFACTS.glob(pattern))]


def _sum(found: list[dict[str, Any]], key: str) -> int | None:
    values = [m[key] for m in found if key in m]
    return sum(values) if values else None


def main() -> int:
    endpoints = _load("security-*.json")
    fuzz = _load("fuzz-*.json")
    erasure = _load("erasure.json")
    partners = _load("partners.json")
    logs = _load("logs.json")
    smtp_tls = _load("smtp-tls.json")
    if not endpoints:
        print("security: nothing measured (did the tests run?)", file=sys.stderr)
        return 1
    figures: dict[str, int | None] = {
        "endpoints": _sum(endpoints, "endpoints"),
        "unauthenticated_refused": _sum(endpoints, "unauthenticated_refused"),
        "wrong_role_refused": _sum(endpoints, "wrong_role_refused"),
        "cross_district_refused": _sum(endpoints, "cross_district_refused"),
        "broker_refused": _sum(partners, "broker_refused"),
        "fuzz_cases": _sum(fuzz, "fuzz_cases"),
        "server_errors": _sum(fuzz, "server_errors"),
        "erasure_leftovers": _sum(erasure, "erasure_leftovers"),
        "log_leaks": _sum(logs, "log_leaks"),
        "smtp_tls_refused": _sum(smtp_tls, "smtp_tls_refused"),
    }
    print(f"services: {', '.join(m['service'] for m in endpoints)}")
    for m in fuzz:
        print(f"fuzzing {m['name']}: {m['fuzz_cases']} cases, {m['server_errors']} server errors")
    unchecked = [
        f"{m['service']}: {e}" for m in endpoints for e in m.get("cross_district_not_checked", [])
    ]
    if unchecked:
        print("cross-district not checked: " + "; ".join(unchecked))
    missing = [k for k, v in figures.items() if v is None]
    if missing:
        print(f"not measured (no number printed): {', '.join(missing)}")
    print("security: " + " ".join(f"{k}={v}" for k, v in figures.items() if v is not None))
    ok = (
        not missing
        and figures["unauthenticated_refused"] == figures["endpoints"]
        and figures["wrong_role_refused"] == figures["endpoints"]
        and figures["server_errors"] == 0
        and figures["erasure_leftovers"] == 0
        and figures["log_leaks"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
