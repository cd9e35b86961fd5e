"""Validate rendered manifests offline; run by the tool venv's Python (make test installs it).

    .tools/k8s/bin/python tests/contract/k8s_check.py VERSION SCHEMAS FILE...

Standard objects go to kubernetes-validate (the Kubernetes JSON schemas of VERSION, strict:
an unknown field is an error); the operators' custom resources to SCHEMAS, a JSON object
of JSON schemas keyed by "apiVersion/kind". Prints one JSON object: for each file, the
list of problems, each naming kind/name. Only the standard library, PyYAML, jsonschema and
kubernetes-validate: the project's own packages are not installed in that venv.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped, import-not-found, unused-ignore]
import kubernetes_validate  # type: ignore[import-untyped, import-not-found, unused-ignore]
import yaml


def problems(doc: dict[str, Any], version: str, schemas: dict[str, Any]) -> list[str]:
    name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    key = f"{doc.get('apiVersion')}/{doc.get('kind')}"
    if key in schemas:
        validator = jsonschema.Draft202012Validator(schemas[key])
        return [
            f"{name}: {'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in validator.iter_errors(doc)
        ]
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{name}: {key} is neither a Kubernetes kind nor in the custom schemas"]
    except kubernetes_validate.ValidationError as e:
        path = ".".join(map(str, e.path)) or "(root)"
        return [f"{name}: {path}: {e.message}"]
    return []


def main(version: str, schema_file: str, *files: str) -> None:
    schemas = json.loads(Path(schema_file).read_text(encoding="utf-8"))
    schemas = {k: v for k, v in schemas.items() if not k.startswith("$")}
    report = {}
    for file in files:
        docs = [d for d in yaml.safe_load_all(Path(file).read_text(encoding="utf-8")) if d]
        report[file] = [p for doc in docs for p in problems(doc, version, schemas)]
    print(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:])
