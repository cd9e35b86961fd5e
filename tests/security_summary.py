"""Sum what the security tests measured (tests/artifacts/security-*.json) into one line.

Only measured numbers are printed; checks the project does not have yet are named as
missing, never given a number.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
NOT_YET = ["fuzz_cases", "server_errors", "erasure_leftovers"]


def main() -> int:
    found = [json.loads(p.read_text()) for p in sorted(ARTIFACTS.glob("security-*.json"))]
    if not found:
        print("security: nothing measured (did the tests run?)", file=sys.stderr)
        return 1
    total = {
        key: sum(m[key] for m in found)
        for key in ("endpoints", "unauthenticated_refused", "wrong_role_refused")
    }
    cross = sum(m["cross_district_refused"] for m in found)
    unchecked = [f"{m['service']}: {e}" for m in found for e in m["cross_district_not_checked"]]
    print(f"services: {', '.join(m['service'] for m in found)}")
    if unchecked:
        print("cross-district not checked yet: " + "; ".join(unchecked))
    print(f"not implemented yet (no number printed): {', '.join(NOT_YET)}")
    print(
        f"security: endpoints={total['endpoints']} "
        f"unauthenticated_refused={total['unauthenticated_refused']} "
        f"wrong_role_refused={total['wrong_role_refused']} cross_district_refused={cross}"
    )
    ok = total["unauthenticated_refused"] == total["endpoints"] == total["wrong_role_refused"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
