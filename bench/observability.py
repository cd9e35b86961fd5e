"""What seeing inside costs: the main flow's throughput with metrics and tracing off,
with metrics on (the default), and with metrics and tracing on, in one run.

Each configuration gets a stack of its own (processes, database, namespace), the same
population and the same number of course completions, published as fast as confirms
allow (bench.pipeline's burst); the three run in turn, ``BENCH_OBS_ROUNDS`` times, and
the median per configuration is reported. Tracing writes spans to a file per process
(``LOTSE_TRACE_DIR``), the cheapest exporter that still serialises every span.

Writes bench/results/observability.json and prints it. A benchmark: fails on nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.pipeline import RABBIT_URL, RESULTS, burst
from lotse_devstack.flow import FlowStack

EVENTS = int(os.environ.get("BENCH_OBS_N", "800"))
ROUNDS = int(os.environ.get("BENCH_OBS_ROUNDS", "2"))


def configurations(traces: Path) -> dict[str, dict[str, str]]:
    return {
        "off": {"LOTSE_METRICS": "false"},
        "metrics": {},
        "metrics_and_traces": {"LOTSE_TRACE_DIR": str(traces)},
    }


async def one(name: str, env: dict[str, str], workdir: Path) -> float:
    h = FlowStack(f"obs-{name}", EVENTS, RABBIT_URL, workdir, extra_env=env)
    try:
        await h.start()
        run = await burst(h, h.events)
        return float(run["eps"])
    finally:
        await h.close()


async def main() -> dict[str, Any]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="lotse-bench-obs-"))
    eps: dict[str, list[float]] = {}
    try:
        for round_ in range(ROUNDS):
            for name, env in configurations(workdir / "traces").items():
                print(f"bench: {name}, round {round_ + 1}, {EVENTS} events ...", flush=True)
                eps.setdefault(name, []).append(round(await one(name, env, workdir), 1))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    median = {name: statistics.median(runs) for name, runs in eps.items()}
    return {
        "events_per_s_median": median,
        "events_per_s_runs": eps,
        "cost_of_metrics": round(1 - median["metrics"] / median["off"], 3),
        "cost_of_metrics_and_traces": round(1 - median["metrics_and_traces"] / median["off"], 3),
        "setup": {
            "events": EVENTS,
            "rounds": ROUNDS,
            "cpus": os.cpu_count(),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }


if __name__ == "__main__":
    outcome = asyncio.run(main())
    (RESULTS / "observability.json").write_text(json.dumps(outcome, indent=2) + "\n")
    print(json.dumps(outcome, indent=2))
