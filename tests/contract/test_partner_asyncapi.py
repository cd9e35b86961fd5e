"""The partners' AsyncAPI document says what the consumers enforce, no more, no less.

Partners build from ``docs/asyncapi/partners.asyncapi.json`` alone, so it is checked
against the pydantic models that validate their messages:
- the committed copy (and its HTML page) is what the code generates today;
- every example is accepted; removing a field the schema calls required is refused
  at that field, removing one it calls optional is accepted;
- every enumeration accepts each of its values and refuses anything else;
- the channels are the exchange's routing keys a partner may publish, with the
  message properties Lotse checks (``user_id`` first).
"""

from __future__ import annotations

import copy
import json
import subprocess
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from lotse_shared.contracts.catalogue import BY_ROUTING_KEY
from lotse_shared.contracts.partner_asyncapi import partner_document
from lotse_shared.ops.partner_contract import HTML_NAME, JSON_NAME, html_page
from lotse_shared.places import find_place

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DOCS = ROOT / "docs" / "asyncapi"
DOCUMENT: dict[str, Any] = json.loads((DOCS / JSON_NAME).read_text(encoding="utf-8"))
PARTNER_KEYS = [k for k in BY_ROUTING_KEY if k.startswith("partner.")]


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = {
            **DOCUMENT["components"]["schemas"][name],
            **{k: v for k, v in schema.items() if k != "$ref"},
        }
    return schema


def object_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The object a (nullable) property holds, if it is one."""
    schema = resolve(schema)
    if schema.get("type") == "object" and "properties" in schema:
        return schema
    for branch in schema.get("anyOf", []):
        found = object_schema(branch)
        if found is not None:
            return found
    return None


def enum_of(schema: dict[str, Any]) -> list[Any] | None:
    schema = resolve(schema)
    if "enum" in schema:
        return list(schema["enum"])
    if "const" in schema:
        return [schema["const"]]
    for branch in schema.get("anyOf", []):
        found = enum_of(branch)
        if found is not None:
            return found
    return None


def model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        for arg in typing.get_args(annotation):
            if (found := model_of(arg)) is not None:
                return found
    return None


def messages() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for channel in DOCUMENT["channels"].values():
        for ref in channel["messages"].values():
            name = ref["$ref"].rsplit("/", 1)[1]
            found.append((channel["address"], DOCUMENT["components"]["messages"][name]))
    return found


def test_the_committed_document_and_page_are_what_the_code_generates() -> None:
    contract = partner_document()
    assert (DOCS / JSON_NAME).read_text(encoding="utf-8") == contract.to_json(), (
        "run `make docs` and commit docs/asyncapi"
    )
    assert (DOCS / HTML_NAME).read_text(encoding="utf-8") == html_page(contract)


def test_the_asyncapi_parser_accepts_it() -> None:
    """Validated by the AsyncAPI initiative's own parser (npm @asyncapi/parser), so
    partners' generators and viewers read it as we mean it."""
    parser = ROOT / ".tools" / "asyncapi" / "node_modules" / "@asyncapi" / "parser"
    assert parser.exists(), "make test installs it (npm @asyncapi/parser)"
    run = subprocess.run(
        ["node", str(HERE / "validate_asyncapi.cjs"), str(parser), str(DOCS / JSON_NAME)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(run.stdout)
    assert report["parsed"] is True
    errors_and_warnings = [d for d in report["diagnostics"] if d["severity"] < 2]
    assert errors_and_warnings == []


def test_it_is_written_from_the_partners_side() -> None:
    assert DOCUMENT["asyncapi"] == "3.0.0"
    assert set(DOCUMENT["servers"]) == {"production", "development"}
    assert DOCUMENT["servers"]["production"]["protocol"] == "amqps"
    for server in DOCUMENT["servers"].values():
        assert server["security"] == [{"$ref": "#/components/securitySchemes/brokerUser"}]
    # one channel per routing key a partner may publish, on the events exchange
    assert sorted(c["address"] for c in DOCUMENT["channels"].values()) == sorted(PARTNER_KEYS)
    for channel in DOCUMENT["channels"].values():
        amqp = channel["bindings"]["amqp"]
        assert amqp["is"] == "routingKey"
        assert amqp["exchange"] == {
            "name": "lotse.events",
            "type": "topic",
            "durable": True,
            "autoDelete": False,
            "vhost": "/",
        }
    for operation in DOCUMENT["operations"].values():
        assert operation["action"] == "send"
        assert operation["bindings"]["amqp"]["mandatory"] is True
        assert operation["bindings"]["amqp"]["deliveryMode"] == 2
    properties = DOCUMENT["components"]["messageTraits"]["partnerMessage"]["x-amqp-properties"]
    assert "user_id" in properties["required"]
    # the correlation id is the envelope's field, not a header
    flow = DOCUMENT["components"]["correlationIds"]["flow"]
    assert flow["location"] == "$message.payload#/correlation_id"


@pytest.mark.parametrize(("routing_key", "message"), messages(), ids=lambda v: str(v)[:40])
def test_required_fields_are_exactly_what_validation_requires(
    routing_key: str, message: dict[str, Any]
) -> None:
    event_cls = BY_ROUTING_KEY[routing_key]
    example = message["examples"][0]["payload"]
    event_cls.model_validate(example)  # every example is accepted as it is
    checked: list[str] = []

    def walk(schema: dict[str, Any], path: tuple[str, ...]) -> None:
        obj = object_schema(schema)
        if obj is None:
            return
        value = _at(example, path)
        required = set(obj.get("required", []))
        for name, prop in obj["properties"].items():
            if name in value:
                without = copy.deepcopy(example)
                del _at(without, path)[name]
                still_satisfied = _satisfies(obj, _at(without, path))
                if name in required:
                    with pytest.raises(ValidationError) as refused:
                        event_cls.model_validate(without)
                    locs = [tuple(str(p) for p in e["loc"]) for e in refused.value.errors()]
                    assert (*path, name) in locs, (path, name, locs)
                elif still_satisfied:
                    event_cls.model_validate(without)
                checked.append(".".join((*path, name)))
                walk(prop, (*path, name))
            else:
                assert name not in required, f"the example lacks required {path}.{name}"

    walk(DOCUMENT["components"]["schemas"][event_cls.__name__], ())
    assert "event_id" in checked
    assert "payload" in checked


def _satisfies(obj: dict[str, Any], value: dict[str, Any]) -> bool:
    """The object's alternatives (``anyOf``/``oneOf``: required fields, constants)."""
    alternatives = obj.get("anyOf") or obj.get("oneOf") or [{}]

    def fits(alt: dict[str, Any]) -> bool:
        consts = {k: p["const"] for k, p in alt.get("properties", {}).items() if "const" in p}
        if any(value.get(k) != v for k, v in consts.items()):
            return False
        return set(alt.get("required", [])) <= set(value)

    return any(fits(alt) for alt in alternatives)


def _at(value: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def _fields(
    model: type[BaseModel], schema: dict[str, Any], path: str
) -> Iterator[tuple[str, dict[str, Any], FieldInfo]]:
    obj = object_schema(schema)
    if obj is None:
        return
    for name, prop in obj["properties"].items():
        field = model.model_fields[name]
        yield f"{path}{name}", prop, field
        nested = model_of(field.annotation)
        if nested is not None:
            yield from _fields(nested, prop, f"{path}{name}.")


@pytest.mark.parametrize("routing_key", PARTNER_KEYS)
def test_enumerations_are_exactly_what_validation_accepts(routing_key: str) -> None:
    event_cls = BY_ROUTING_KEY[routing_key]
    schema = DOCUMENT["components"]["schemas"][event_cls.__name__]
    seen = 0
    for where, prop, field in _fields(event_cls, schema, ""):
        values = enum_of(prop)
        if values is None:
            continue
        if resolve(prop).get("title") == "Municipality" or "Municipality" in json.dumps(prop):
            assert all(find_place(v) is not None for v in values), where
            assert find_place("Göttingen") is None
            continue
        adapter: TypeAdapter[Any] = TypeAdapter(
            typing.Annotated[field.annotation, field]  # type: ignore[arg-type]
        )
        for value in values:
            adapter.validate_python(value)
        with pytest.raises(ValidationError):
            adapter.validate_python("not-one-of-them")
        seen += 1
    assert seen >= 2, "event_type and event_version are enumerations at least"


def test_municipalities_or_coordinates() -> None:
    location = DOCUMENT["components"]["schemas"]["OpeningLocation"]
    assert {"required": ["lat", "lon"]} in location["anyOf"]
    names = DOCUMENT["components"]["schemas"]["Municipality"]["enum"]
    assert {"Baunatal", "Kassel"} <= set(names)
    assert "Göttingen" not in names
