"""Declared actions describe their parameters: a form kind from each annotation, and the
default when it is a JSON scalar."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from schema import ActionParam
from sdk._actions import ActionRegistry


def signature_of(function: Any) -> list[ActionParam]:
    registry = ActionRegistry()
    registry.register(function)
    (spec,) = registry.specs
    assert spec.params == [param.name for param in spec.signature]
    return spec.signature


def test_scalar_annotations_give_their_kinds_and_defaults() -> None:
    def set_lr(
        value: float,
        steps: int,
        note: str,
        fast: bool,
        warmup: int = 100,
        decay: float = 0.5,
        label: str = "run",
        dry_run: bool = False,
    ) -> None: ...

    assert signature_of(set_lr) == [
        ActionParam(name="value", kind="number"),
        ActionParam(name="steps", kind="integer"),
        ActionParam(name="note", kind="string"),
        ActionParam(name="fast", kind="boolean"),
        ActionParam(name="warmup", kind="integer", required=False, default=100),
        ActionParam(name="decay", kind="number", required=False, default=0.5),
        ActionParam(name="label", kind="string", required=False, default="run"),
        ActionParam(name="dry_run", kind="boolean", required=False, default=False),
    ]


def test_optional_annotated_and_literal_scalars_keep_their_kind() -> None:
    def tune(
        limit: int | None = None,
        ratio: Annotated[float, msgspec.Meta(ge=0)] = 1.0,
        mode: Literal["fast", "safe"] = "safe",
        *,
        level: Literal[1, 2, 3] = 2,
    ) -> None: ...

    assert signature_of(tune) == [
        ActionParam(name="limit", kind="integer", required=False),
        ActionParam(name="ratio", kind="number", required=False, default=1.0),
        ActionParam(name="mode", kind="string", required=False, default="safe"),
        ActionParam(name="level", kind="integer", required=False, default=2),
    ]


def test_anything_else_is_json_and_odd_defaults_are_left_out() -> None:
    def shape(
        anything: Any,
        hosts: list[str],
        either: int | str = 3,
        table: dict[str, int] | None = None,
        ceiling: float = float("inf"),
        *rest: int,
        **extra: str,
    ) -> None: ...

    assert signature_of(shape) == [
        ActionParam(name="anything"),
        ActionParam(name="hosts"),
        ActionParam(name="either", required=False, default=3),
        ActionParam(name="table", required=False),
        ActionParam(name="ceiling", kind="number", required=False),
    ]
