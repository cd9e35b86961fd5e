"""The Kubernetes manifests (deploy/k8s) render, validate, hang together and pass checkov.

Each of the base and the overlays is rendered (tests/contract/kustomize.py; compared with
``kubectl kustomize`` where kubectl is installed) and then:
- every standard object is validated against the Kubernetes JSON schemas (PyPI
  kubernetes-validate, strict), every operator resource against
  tests/contract/k8s_custom_resources.schema.json: both offline, in the tool venv
  ``.tools/k8s`` that make installs from deploy/k8s/tools.txt;
- the objects are cross-checked: budgets, probes, security contexts, the Secrets and
  ConfigMaps they name, network policy selectors, KEDA's queues against the services'
  subscriptions, the partners' broker users against deploy/partners.json;
- checkov scans the renderings once, with deploy/k8s/checkov.yaml (each skip has its reason).

Without the tool venv, the validation and checkov tests fail under make (which installs
it) and are skipped under a bare pytest, saying so.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lotse_portal.settings import PortalSettings
from lotse_shared.ops.partners import exchange_regex, load_definitions
from lotse_shared.settings import ServiceSettings
from tests.contract.kustomize import Obj, load_all, render

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
K8S = ROOT / "deploy" / "k8s"
RENDERINGS = ["base", "overlays/dev", "overlays/production"]
TOOLS = ROOT / ".tools" / "k8s" / "bin"
KUBERNETES_VERSION = "1.30.0"
SERVICES = ["intake", "courses", "placement", "notifications"]
UID = 10001
NAMESPACE = "lotse"

# pods the operators make, by the labels they give them
RABBITMQ_POD = {"app.kubernetes.io/name": "lotse-rabbitmq"}
MONGODB_POD = {"app": "lotse-mongodb-svc"}


def rendered(name: str) -> list[Obj]:
    return render(K8S / name)


@pytest.fixture(scope="module", params=RENDERINGS)
def objects(request: pytest.FixtureRequest) -> list[Obj]:
    return rendered(request.param)


def of_kind(objs: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def pod_labels(objs: list[Obj]) -> list[dict[str, str]]:
    """The labels of every pod these objects make, the operators' included."""
    labels = [
        d["spec"]["template"]["metadata"]["labels"] for d in of_kind(objs, "Deployment").values()
    ]
    if of_kind(objs, "RabbitmqCluster"):
        labels.append(RABBITMQ_POD)
    if of_kind(objs, "MongoDBCommunity"):
        labels.append(MONGODB_POD)
    return labels


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        present = expr["key"] in labels
        if expr["operator"] == "In" and labels.get(expr["key"]) not in expr["values"]:
            return False
        if expr["operator"] == "NotIn" and labels.get(expr["key"]) in expr["values"]:
            return False
        if expr["operator"] == "Exists" and not present:
            return False
    return True


def containers(deployment: Obj) -> list[Obj]:
    return list(deployment["spec"]["template"]["spec"]["containers"])


# --- rendering -------------------------------------------------------------------------


@pytest.mark.parametrize("name", RENDERINGS)
def test_renders_as_kubectl_kustomize_does(name: str) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: the renderer is not compared with kustomize")
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S / name)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout

    def key(o: Obj) -> tuple[str, str, str]:
        return (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])

    theirs = {key(o): o for o in yaml.safe_load_all(out) if o}
    ours = {key(o): o for o in rendered(name)}
    assert sorted(ours) == sorted(theirs)
    assert [k for k in ours if ours[k] != theirs[k]] == []


def test_every_object_is_in_the_namespace(objects: list[Obj]) -> None:
    for o in objects:
        if o["kind"] != "Namespace":
            assert o["metadata"].get("namespace") == NAMESPACE, o["metadata"]["name"]


# --- offline validation and checkov, in the tool venv -----------------------------------


def need_tools() -> None:
    if (TOOLS / "python").exists() and (TOOLS / "checkov").exists():
        return
    why = f"{TOOLS.parent} is missing (kubernetes-validate, checkov from deploy/k8s/tools.txt)"
    if os.environ.get("MAKELEVEL"):
        pytest.fail(f"{why}: make test installs it; run `make .tools/k8s/.installed`")
    pytest.skip(f"{why}: `make k8s-check` installs it and runs these tests")


@pytest.fixture(scope="module")
def rendered_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("k8s")
    files = {}
    for name in RENDERINGS:
        path = folder / (name.replace("/", "-") + ".yaml")
        path.write_text(yaml.safe_dump_all(rendered(name), sort_keys=False), encoding="utf-8")
        files[name] = path
    return files


@pytest.fixture(scope="module")
def validation(rendered_files: dict[str, Path]) -> dict[str, list[str]]:
    need_tools()
    out = subprocess.run(
        [
            str(TOOLS / "python"),
            str(HERE / "k8s_check.py"),
            KUBERNETES_VERSION,
            str(HERE / "k8s_custom_resources.schema.json"),
            *map(str, rendered_files.values()),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    report = json.loads(out)
    return {name: report[str(path)] for name, path in rendered_files.items()}


@pytest.mark.parametrize("name", RENDERINGS)
def test_validates_against_the_kubernetes_and_operator_schemas(
    name: str, validation: dict[str, list[str]]
) -> None:
    assert validation[name] == []


@pytest.fixture(scope="module")
def checkov(rendered_files: dict[str, Path]) -> list[dict[str, Any]]:
    need_tools()
    args = [str(TOOLS / "checkov"), "--config-file", str(K8S / "checkov.yaml"), "-o", "json"]
    for path in rendered_files.values():
        args += ["-f", str(path)]
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=300, cwd=rendered_files["base"].parent
    )
    report = json.loads(proc.stdout)
    return report if isinstance(report, list) else [report]


def test_checkov_finds_nothing_unjustified(checkov: list[dict[str, Any]]) -> None:
    results = [r for r in checkov if r.get("check_type") == "kubernetes"]
    assert results, checkov
    (result,) = results
    assert result["summary"]["parsing_errors"] == 0
    assert result["summary"]["resource_count"] > 100  # it saw the renderings
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in result["results"]["failed_checks"]
    ]
    assert failed == []
    for skipped in result["results"].get("skipped_checks", []):
        reason = skipped["check_result"].get("suppress_comment", "")
        assert len(reason) > 20, skipped["check_id"]


def test_every_check_skipped_for_all_renderings_says_why() -> None:
    text = (K8S / "checkov.yaml").read_text(encoding="utf-8")
    config = yaml.safe_load(text)
    for check in config.get("skip-check", []):
        comment = re.search(rf"#\s*{check}\b[^\n]*\n(\s*#[^\n]*\n)*\s*- {check}\n", text)
        assert comment, f"{check}: give the reason in a comment right above it"


# --- cross-references -------------------------------------------------------------------


def test_every_deployment_has_a_disruption_budget(objects: list[Obj]) -> None:
    budgets = of_kind(objects, "PodDisruptionBudget").values()
    for name, deployment in of_kind(objects, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert [b for b in budgets if selects(b["spec"]["selector"], labels)], name
    for labels in (RABBITMQ_POD, MONGODB_POD):
        assert [b for b in budgets if selects(b["spec"]["selector"], labels)], labels


def test_deployment_selectors_match_their_pods(objects: list[Obj]) -> None:
    for name, d in of_kind(objects, "Deployment").items():
        assert selects(d["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"]), name
    for name, s in of_kind(objects, "Service").items():
        assert any(
            all(labels.get(k) == v for k, v in s["spec"]["selector"].items())
            for labels in pod_labels(objects)
        ), name


def test_probes_ask_livez_and_readyz_on_a_container_port(objects: list[Obj]) -> None:
    for name, d in of_kind(objects, "Deployment").items():
        for c in containers(d):
            ports = {p.get("name") for p in c["ports"]} | {p["containerPort"] for p in c["ports"]}
            assert c["livenessProbe"]["httpGet"]["path"] == "/livez", name
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", name
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if probe in c:
                    assert c[probe]["httpGet"]["port"] in ports, (name, probe)


def test_pods_run_locked_down_with_resources(objects: list[Obj]) -> None:
    for name, d in of_kind(objects, "Deployment").items():
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == UID, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        for c in containers(d):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, name
            assert sc["runAsUser"] == UID, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), (name, kind)


def secret_references(objects: list[Obj]) -> Iterator[tuple[str, str]]:
    """(who, secret name) for every Secret an object names."""
    for o in objects:
        who = f"{o['kind']}/{o['metadata']['name']}"
        spec = o.get("spec", {})
        if o["kind"] == "Deployment":
            pod = spec["template"]["spec"]
            for v in pod.get("volumes", []):
                if "secret" in v:
                    yield who, v["secret"]["secretName"]
            for c in pod["containers"]:
                for e in c.get("envFrom", []):
                    if "secretRef" in e:
                        yield who, e["secretRef"]["name"]
                for e in c.get("env", []):
                    if "secretKeyRef" in e.get("valueFrom", {}):
                        yield who, e["valueFrom"]["secretKeyRef"]["name"]
        elif o["kind"] == "Ingress":
            for tls in spec.get("tls", []):
                yield who, tls["secretName"]
        elif o["kind"] == "TriggerAuthentication":
            for ref in spec.get("secretTargetRef", []):
                yield who, ref["name"]
        elif o["kind"] == "User" and "importCredentialsSecret" in spec:
            yield who, spec["importCredentialsSecret"]["name"]
        elif o["kind"] == "MongoDBCommunity":
            for user in spec["users"]:
                yield who, user["passwordSecretRef"]["name"]
        elif o["kind"] == "RabbitmqCluster" and "tls" in spec:
            yield who, spec["tls"]["secretName"]


def operator_made_secrets(objects: list[Obj]) -> set[str]:
    return {
        u["connectionStringSecretName"]
        for m in of_kind(objects, "MongoDBCommunity").values()
        for u in m["spec"]["users"]
    }


TEMPLATES = {s["metadata"]["name"]: s for s in load_all(K8S / "secrets.example.yaml")}


def test_every_secret_named_is_made_by_someone(objects: list[Obj]) -> None:
    known = set(of_kind(objects, "Secret")) | set(TEMPLATES) | operator_made_secrets(objects)
    missing = sorted(
        {f"{who}: {name}" for who, name in secret_references(objects)}
        - {f"{who}: {name}" for who, name in secret_references(objects) if name in known}
    )
    assert missing == []


def test_the_secret_templates_hold_no_value_and_nothing_unused() -> None:
    used = {name for r in RENDERINGS for _, name in secret_references(rendered(r))}
    assert sorted(set(TEMPLATES) - used) == []
    for name, secret in TEMPLATES.items():
        assert secret["kind"] == "Secret"
        assert set(secret["stringData"].values()) == {""}, name
        assert "data" not in secret, name


def test_mounted_secret_files_are_the_ones_the_settings_name(objects: list[Obj]) -> None:
    for name, d in of_kind(objects, "Deployment").items():
        pod = d["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in containers(d):
            files = {
                f"{m['mountPath']}/{item['path']}"
                for m in c.get("volumeMounts", [])
                if "secret" in volumes[m["name"]]
                for item in volumes[m["name"]]["secret"]["items"]
            }
            settings_files = {e["value"] for e in c.get("env", []) if e["name"].endswith("_FILE")}
            assert settings_files == files, name


def test_every_configmap_named_exists_and_holds_real_settings(objects: list[Obj]) -> None:
    maps = of_kind(objects, "ConfigMap")
    for name, d in of_kind(objects, "Deployment").items():
        pod = d["spec"]["template"]["spec"]
        named = [v["configMap"]["name"] for v in pod.get("volumes", []) if "configMap" in v]
        for c in containers(d):
            named += [
                e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e
            ]
        for cm in named:
            assert cm in maps, (name, cm)
    service_fields = {
        f"LOTSE_{field.upper()}"
        for svc in SERVICES
        for cls in vars(importlib.import_module(f"lotse_{svc}.settings")).values()
        if isinstance(cls, type) and issubclass(cls, ServiceSettings)
        for field in cls.model_fields
    }
    portal_fields = {f"LOTSE_{field.upper()}" for field in PortalSettings.model_fields}
    assert sorted(set(maps["lotse-settings"]["data"]) - service_fields) == []
    assert sorted(set(maps["lotse-portal-settings"]["data"]) - portal_fields) == []
    # URLs with passwords come from files; a variable and its _FILE twin may not both be set
    assert not {"LOTSE_RABBIT_URL", "LOTSE_MONGO_URL"} & set(maps["lotse-settings"]["data"])


def test_network_policies_deny_by_default_and_select_real_pods(objects: list[Obj]) -> None:
    policies = of_kind(objects, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny
    pods = pod_labels(objects)
    for name, policy in policies.items():
        spec = policy["spec"]
        assert any(selects(spec["podSelector"], p) for p in pods), name
        for rule in spec.get("ingress", []) + spec.get("egress", []):
            for peer in rule.get("from", []) + rule.get("to", []):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    assert any(selects(peer["podSelector"], p) for p in pods), (name, peer)


def test_only_the_gateway_portal_and_prometheus_reach_the_services(objects: list[Obj]) -> None:
    policies = of_kind(objects, "NetworkPolicy").values()
    for svc in SERVICES:
        labels = of_kind(objects, "Deployment")[svc]["spec"]["template"]["metadata"]["labels"]
        peers = [
            peer
            for p in policies
            if "Ingress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], labels)
            for rule in p["spec"].get("ingress", [])
            for peer in rule["from"]
        ]
        allowed = {"gateway", "portal"}
        for peer in peers:
            if "namespaceSelector" in peer:
                assert peer["namespaceSelector"] == {
                    "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                }, svc
            else:
                callers = [
                    p["app.kubernetes.io/name"]
                    for p in pod_labels(objects)
                    if selects(peer["podSelector"], p)
                ]
                assert set(callers) <= allowed, (svc, callers)


@functools.cache
def subscription_queues() -> dict[str, set[str]]:
    """Each service's own subscription queues, as its code declares them."""
    queues = {}
    for svc in SERVICES:
        app = importlib.import_module(f"lotse_{svc}.bootstrap").create_app()
        rt = app.state.runtime
        queues[svc] = {rt.topology.queue_for(k).name for k in rt.subscriptions.routing_keys}
    return queues


def test_keda_scales_each_consumer_on_exactly_its_subscription_queues(
    objects: list[Obj],
) -> None:
    scaled = of_kind(objects, "ScaledObject")
    deployments = of_kind(objects, "Deployment")
    auth = of_kind(objects, "TriggerAuthentication")
    queues = subscription_queues()
    consumers = {svc for svc, qs in queues.items() if qs}
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled.values()} == consumers
    for s in scaled.values():
        target = s["spec"]["scaleTargetRef"]["name"]
        assert target in deployments
        # KEDA owns the count: a re-apply must not reset it
        assert "replicas" not in deployments[target]["spec"], target
        assert s["spec"]["minReplicaCount"] >= 1  # the outbox relay and sweeps keep running
        for trigger in s["spec"]["triggers"]:
            assert trigger["authenticationRef"]["name"] in auth
            pattern = re.compile(trigger["metadata"]["queueName"])
            own = queues[target]
            retry_and_dead = {f"{NAMESPACE}.{target}.retry.{n}" for n in range(1, 5)} | {
                f"{NAMESPACE}.{target}.dead"
            }
            others = set().union(*(q for svc, q in queues.items() if svc != target))
            assert {q for q in own if pattern.search(q)} == own, target
            assert {q for q in retry_and_dead | others if pattern.search(q)} == set(), target


def test_broker_is_a_quorum_cluster_with_a_user_per_service(objects: list[Obj]) -> None:
    (cluster,) = of_kind(objects, "RabbitmqCluster").values()
    assert "default_queue_type = quorum" in cluster["spec"]["rabbitmq"]["additionalConfig"]
    users = of_kind(objects, "User")
    permissions = of_kind(objects, "Permission")
    for svc in SERVICES:
        deployment = of_kind(objects, "Deployment")[svc]
        mounted = {
            v["secret"]["secretName"]
            for v in deployment["spec"]["template"]["spec"]["volumes"]
            if "secret" in v
        }
        user = users[f"lotse-{svc}"]
        assert user["spec"]["importCredentialsSecret"]["name"] in mounted, svc
        grant = permissions[f"lotse-{svc}"]["spec"]
        assert grant["userReference"]["name"] == f"lotse-{svc}"
        for right in ("configure", "write", "read"):
            regex = re.compile(grant["permissions"][right])
            assert regex.search(f"{NAMESPACE}.{svc}.some.queue"), (svc, right)
            assert regex.search(f"{NAMESPACE}.events"), (svc, right)
            for other in set(SERVICES) - {svc}:
                assert not regex.search(f"{NAMESPACE}.{other}.some.queue"), (svc, right)
    for o in objects:
        ref = o.get("spec", {}).get("rabbitmqClusterReference")
        if ref:
            assert ref["name"] == cluster["metadata"]["name"], o["metadata"]["name"]


def test_every_partner_has_its_user_and_exact_rights(objects: list[Obj]) -> None:
    partners = load_definitions(ROOT / "deploy" / "partners.json")
    users = of_kind(objects, "User")
    permissions = of_kind(objects, "Permission")
    topics = of_kind(objects, "TopicPermission")
    partner_users = {n for n, u in users.items() if n.startswith("lotse-partner-")}
    assert partner_users == {f"lotse-partner-{p.id}" for p in partners}
    for p in partners:
        name = f"lotse-partner-{p.id}"
        secret = users[name]["spec"]["importCredentialsSecret"]["name"]
        assert secret in TEMPLATES, name
        assert "tags" not in users[name]["spec"], name  # never impersonator
        grant = permissions[name]["spec"]
        assert grant["userReference"]["name"] == name
        assert grant["permissions"] == {
            "configure": "^$",
            "write": exchange_regex([f"{NAMESPACE}.events"]),
            "read": "^$",
        }, name
        topic = topics[name]["spec"]
        assert topic["userReference"]["name"] == name
        assert topic["permissions"] == {
            "exchange": f"{NAMESPACE}.events",
            "write": p.write_regex,
            "read": "^$",
        }, name


def test_database_is_a_replica_set_with_a_user_per_service(objects: list[Obj]) -> None:
    (mongo,) = of_kind(objects, "MongoDBCommunity").values()
    users = {u["name"]: u for u in mongo["spec"]["users"]}
    assert set(users) == {f"lotse-{svc}" for svc in SERVICES}
    for svc in SERVICES:
        user = users[f"lotse-{svc}"]
        assert user["roles"] == [{"name": "readWrite", "db": f"{NAMESPACE}_{svc}"}], svc
        volumes = of_kind(objects, "Deployment")[svc]["spec"]["template"]["spec"]["volumes"]
        mounted = {v["secret"]["secretName"] for v in volumes if "secret" in v}
        assert user["connectionStringSecretName"] in mounted, svc


@pytest.mark.parametrize("name", ["base", "overlays/production"])
def test_production_runs_three_brokers_and_three_members(name: str) -> None:
    objs = rendered(name)
    (cluster,) = of_kind(objs, "RabbitmqCluster").values()
    (mongo,) = of_kind(objs, "MongoDBCommunity").values()
    assert cluster["spec"]["replicas"] == 3
    assert mongo["spec"]["members"] == 3
    for d in of_kind(objs, "Deployment").values():
        assert d["spec"].get("replicas", 2) >= 2, d["metadata"]["name"]
    for s in of_kind(objs, "ScaledObject").values():
        assert s["spec"]["minReplicaCount"] >= 2, s["metadata"]["name"]


def test_dev_runs_one_of_everything() -> None:
    objs = rendered("overlays/dev")
    assert of_kind(objs, "RabbitmqCluster")["lotse-rabbitmq"]["spec"]["replicas"] == 1
    assert of_kind(objs, "MongoDBCommunity")["lotse-mongodb"]["spec"]["members"] == 1
    for d in of_kind(objs, "Deployment").values():
        assert d["spec"].get("replicas", 1) == 1, d["metadata"]["name"]
    for s in of_kind(objs, "ScaledObject").values():
        assert s["spec"]["minReplicaCount"] == s["spec"]["maxReplicaCount"] == 1
