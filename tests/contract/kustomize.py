"""A small Kustomize renderer for deploy/k8s: the features those kustomizations use, no more.

``render(dir)`` reads ``kustomization.yaml`` and returns the objects ``kubectl kustomize dir``
prints: ``resources`` (files and directories), ``namespace``, ``replicas``, ``images`` and
``patches`` whose patch is an inline JSON 6902 list (add, replace, remove) with a target by
kind and optionally name. Any other field is refused, so a kustomization never uses a
feature this renderer would silently skip. tests/contract/test_k8s.py compares its output
with ``kubectl kustomize`` wherever kubectl is installed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

KNOWN = {"apiVersion", "kind", "namespace", "resources", "replicas", "images", "patches"}
CLUSTER_SCOPED = {"Namespace"}
SCALABLE = {"Deployment", "StatefulSet", "ReplicaSet"}


class KustomizeError(ValueError):
    pass


def load_all(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def render(directory: Path) -> list[Obj]:
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    unknown = set(spec) - KNOWN
    if unknown:
        raise KustomizeError(f"{directory}: not supported here: {sorted(unknown)}")
    objects: list[Obj] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        objects.extend(render(path) if path.is_dir() else load_all(path))
    for patch in spec.get("patches", []):
        ops = yaml.safe_load(patch["patch"])
        target = patch["target"]
        matched = [o for o in objects if _matches(o, target)]
        if not matched:
            raise KustomizeError(f"{directory}: patch target {target} matches nothing")
        for obj in matched:
            for op in ops:
                _apply(obj, op)
    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj.setdefault("metadata", {})["namespace"] = spec["namespace"]
    for image in spec.get("images", []):
        for obj in objects:
            for container in _containers(obj):
                _set_image(container, image)
    for replicas in spec.get("replicas", []):
        hits = [
            o
            for o in objects
            if o["kind"] in SCALABLE and o["metadata"]["name"] == replicas["name"]
        ]
        if not hits:
            raise KustomizeError(f"{directory}: replicas: no {replicas['name']}")
        for obj in hits:
            obj["spec"]["replicas"] = replicas["count"]
    return objects


def _matches(obj: Obj, target: dict[str, str]) -> bool:
    group, _, _version = obj["apiVersion"].rpartition("/")
    return (
        obj["kind"] == target["kind"]
        and target.get("name", obj["metadata"]["name"]) == obj["metadata"]["name"]
        and target.get("group", group) == group
    )


def _containers(obj: Obj) -> list[Obj]:
    pod = obj.get("spec", {}).get("template", {}).get("spec", {})
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def _set_image(container: Obj, image: dict[str, str]) -> None:
    current = container["image"]
    name = current.split("@")[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    if name != image["name"]:
        return
    new = image.get("newName", name)
    if "digest" in image:
        container["image"] = f"{new}@{image['digest']}"
    elif "newTag" in image:
        container["image"] = f"{new}:{image['newTag']}"
    else:
        container["image"] = new + current[len(name) :]


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizeError(f"not a JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _apply(obj: Obj, op: dict[str, Any]) -> None:
    *parents, last = _pointer(op["path"])
    node: Any = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    value = copy.deepcopy(op.get("value"))
    kind = op["op"]
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if kind == "add":
            node.insert(index, value)
        elif kind == "replace":
            node[index] = value
        elif kind == "remove":
            del node[index]
        else:
            raise KustomizeError(f"op {kind!r} is not supported here")
        return
    if kind == "add":
        node[last] = value
    elif kind == "replace":
        if last not in node:
            raise KustomizeError(f"replace: {op['path']} does not exist")
        node[last] = value
    elif kind == "remove":
        del node[last]
    else:
        raise KustomizeError(f"op {kind!r} is not supported here")
