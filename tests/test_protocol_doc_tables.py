"""The field tables and payload kinds of docs/protocol.md name exactly the schema's fields."""

from __future__ import annotations

import json
import re
import typing
from typing import Any

import msgspec
import pytest

import schema
from tests.support import PROTOCOL

_HEADING = re.compile(
    r"^(?:#{3} (?:`[a-z_]+` \()?(?P<cls>[A-Za-z]+)\)?|\*\*`(?P<kind>[a-z]+)`\*\*)"
)
_PAYLOADS = {cls.__struct_config__.tag: cls for cls in typing.get_args(schema.Payload)}


def field_tables() -> dict[str, tuple[type[Any], list[str]]]:
    """Each field table with the schema class its heading names, by that name (a class
    name, or a payload kind in backquotes)."""
    tables: dict[str, tuple[type[Any], list[str]]] = {}
    heading: tuple[str, type[Any]] | None = None
    lines = PROTOCOL.read_text().splitlines()
    for index, line in enumerate(lines):
        match = _HEADING.match(line)
        if match:
            found = (
                _PAYLOADS.get(match["kind"] or "")
                if match["kind"]
                else getattr(schema, match["cls"], None)
            )
            name = f"`{match['kind']}`" if match["kind"] else match["cls"]
            heading = (name, found) if isinstance(found, type) else None
            continue
        if heading is None or not line.startswith("| field |"):
            continue
        rows = []
        for row in lines[index + 2 :]:
            if not row.startswith("|"):
                break
            rows.append(row.split("|")[1].strip().strip("`"))
        tables[heading[0]] = (heading[1], rows)
        heading = None
    return tables


def wire_fields(cls: type[Any]) -> list[str]:
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    return [field.encode_name for field in info.fields]


@pytest.mark.parametrize(
    "heading",
    [
        "WorkspaceSemaphores",
        "SemaphoresPush",
        "`semaphores`",
        "`call`",
        "ActionSpec",
        "ActionParam",
    ],
)
def test_the_table_lists_the_schema_fields(heading: str) -> None:
    cls, rows = field_tables()[heading]
    assert sorted(rows) == sorted(wire_fields(cls))


def test_every_field_table_with_a_schema_class_lists_its_fields() -> None:
    tables = field_tables()
    assert len(tables) > 40
    wrong = {
        heading: (sorted(rows), sorted(wire_fields(cls)))
        for heading, (cls, rows) in tables.items()
        if sorted(rows) != sorted(wire_fields(cls))
    }
    assert wrong == {}


def test_the_payload_kind_table_says_who_makes_each_kind() -> None:
    text = PROTOCOL.read_text()
    rows = re.findall(r"^\| `([a-z_]+)` \| [A-Za-z]+ \| (worker|broker only) \|$", text, re.M)
    made_by = dict(rows)
    worker = {cls.__struct_config__.tag for cls in typing.get_args(schema.WorkerPayload)}
    broker = {cls.__struct_config__.tag for cls in typing.get_args(schema.BrokerPayload)}
    assert made_by == {**dict.fromkeys(worker, "worker"), **dict.fromkeys(broker, "broker only")}
    kinds = re.search(r"^\| Kind \| string \| a payload kind: (.*) \|$", text, re.M)
    assert kinds is not None
    assert re.findall(r"`([a-z_]+)`", kinds[1]) == list(typing.get_args(schema.PayloadKind))


def payload_examples() -> list[str]:
    blocks = re.findall(r"```json\n(.*?)```", PROTOCOL.read_text(), flags=re.DOTALL)
    return [block for block in blocks if json.loads(block).get("kind") in _PAYLOADS]


@pytest.mark.parametrize("example", payload_examples())
def test_payload_example_decodes(example: str) -> None:
    payload = msgspec.json.decode(example, type=schema.Payload)
    assert payload.__struct_config__.tag == json.loads(example)["kind"]


def test_the_payload_examples_show_every_broker_kind() -> None:
    shown = {json.loads(example)["kind"] for example in payload_examples()}
    assert shown >= {cls.__struct_config__.tag for cls in typing.get_args(schema.BrokerPayload)}
