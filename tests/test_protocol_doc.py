"""Every JSON example in docs/protocol.md decodes with the schema it documents."""

from __future__ import annotations

import json
import re

import pytest

import schema
from tests.support import PROTOCOL

CLIENT_TYPES = {t.__struct_config__.tag for t in schema.ClientFrame.__args__}
BROKER_TYPES = {t.__struct_config__.tag for t in schema.BrokerFrame.__args__}


def examples() -> list[str]:
    """The examples of whole frames (others show payloads and values)."""
    blocks = re.findall(r"```json\n(.*?)```", PROTOCOL.read_text(), flags=re.DOTALL)
    return [
        block for block in blocks if json.loads(block).get("type") in CLIENT_TYPES | BROKER_TYPES
    ]


def test_the_spec_has_examples_of_every_frame() -> None:
    shown = {json.loads(block)["type"] for block in examples()}
    assert shown >= CLIENT_TYPES | BROKER_TYPES


@pytest.mark.parametrize("example", examples())
def test_example_decodes(example: str) -> None:
    fields = json.loads(example)
    # ``stats`` is both a request and a broker report; only the report names its ``server``.
    from_broker = fields["type"] not in CLIENT_TYPES or "server" in fields
    codec = schema.JSON_CODEC
    decoded = (
        codec.decode_broker_frame(example) if from_broker else codec.decode_client_frame(example)
    )
    assert decoded.__struct_config__.tag == fields["type"]
