"""The operators' Prometheus rules and Grafana dashboard name metrics the services serve."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from prometheus_client.exposition import generate_latest

from lotse_shared.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
METRIC = re.compile(r"\b((?:lotse|faststream)_[a-z_]+)\b")


def served() -> set[str]:
    """Every sample name a service's registry exposes (with _total, _bucket, ...)."""
    metrics = Metrics("test")
    RabbitPrometheusMiddleware(registry=metrics.registry, app_name="test")
    names = set()
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            if kind == "counter":
                name = name.removesuffix("_total")
            suffixes = {
                "counter": ["_total"],
                "histogram": ["_bucket", "_count", "_sum"],
                "gauge": [""],
            }[kind]
            names |= {name + s for s in suffixes}
    return names


def expressions() -> dict[str, str]:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    found = {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}
    dashboard = json.loads((ROOT / "deploy/grafana/lotse.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            found[f"{panel['title']} {target['refId']}"] = target["expr"]
    return found


def test_every_rule_and_panel_asks_for_a_metric_that_exists() -> None:
    names = served()
    assert "lotse_dead_lettered_messages_total" in names
    assert "faststream_received_processed_messages_total" in names
    unknown = {
        where: sorted(set(METRIC.findall(expr)) - names)
        for where, expr in expressions().items()
        if set(METRIC.findall(expr)) - names
    }
    assert unknown == {}


def test_prometheus_scrapes_every_service_and_loads_the_rules() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    [job] = config["scrape_configs"]
    names = set(job["dns_sd_configs"][0]["names"])
    assert names == {"intake", "courses", "placement", "notifications", "portal"}
    assert job["metrics_path"] == "/metrics"
