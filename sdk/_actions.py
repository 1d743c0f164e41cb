"""Actions a worker offers: registration, argument checks against the signature, and running.

Sync callables run in a thread so that a slow one never blocks the event loop (and with it the
worker's acks and heartbeats); async ones run as tasks. Whatever happens, the caller gets an
answer: the result, or the exception's type and message.

Arguments are bound to the signature and converted to each parameter's annotation with
msgspec's lax rules: a value of the right JSON type passes, an int is taken for a float, and a
string that spells a number or a boolean is taken as one (command-line text), but ``"abc"`` for
a ``float`` is a bad call. A bad call is answered with the error type ``BAD_CALL`` and the
action does not run.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, get_type_hints

import msgspec

import schema
from schema import ActionFailure, ActionRequest, ActionResult, ActionSpec

BAD_CALL: Final = "pierhead.bad_call"
"""The error type of a call whose arguments do not fit the action; the action did not run.

Not a Python identifier, so no exception an action raises can be mistaken for it.
"""


@dataclass(frozen=True, slots=True)
class RegisteredAction:
    spec: ActionSpec
    function: Callable[..., Any]
    signature: inspect.Signature
    types: dict[str, Any]
    """The annotation of each annotated parameter, resolved; values are converted to it."""

    def convert(self, bound: inspect.BoundArguments) -> None:
        """Convert the bound values to their annotations in place; ValidationError if one
        does not fit (its message names the parameter)."""
        for name, value in bound.arguments.items():
            target = self.types.get(name)
            if target is None:
                continue
            if self.signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                bound.arguments[name] = {
                    key: _convert(f"{name}[{key!r}]", item, target) for key, item in value.items()
                }
            else:
                bound.arguments[name] = _convert(name, value, target)


def _convert(name: str, value: Any, target: Any) -> Any:
    try:
        return msgspec.convert(value, target, strict=False)
    except msgspec.ValidationError as exc:
        raise msgspec.ValidationError(f"`{name}`: {exc}") from None


def _parameter_types(function: Callable[..., Any], signature: inspect.Signature) -> dict[str, Any]:
    """The resolved annotation of every annotated parameter that callers can pass."""
    try:
        hints = get_type_hints(function, include_extras=True)
    except Exception as exc:
        raise TypeError(
            f"cannot resolve the annotations of action {function.__name__!r}: {exc}"
        ) from exc
    types: dict[str, Any] = {}
    for parameter in signature.parameters.values():
        hint = hints.get(parameter.name, Any)
        if hint is Any or parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        if isinstance(msgspec.inspect.type_info(hint), msgspec.inspect.CustomType):
            # JSON arguments can never be one of these: every call would be refused.
            raise TypeError(
                f"action {function.__name__!r}: parameter {parameter.name!r} is annotated "
                f"{hint!r}, which arguments from JSON cannot be converted to; annotate it "
                "with a JSON-shaped type (str, float, list[int], a msgspec Struct, ...) or Any"
            )
        types[parameter.name] = hint
    return types


_PARAM_KINDS: Final = {bool: "boolean", int: "integer", float: "number", str: "string"}
_MAX_DEFAULT_CHARS: Final = 4096


def _param_kind(hint: Any) -> str:
    """The form kind of an annotation: a JSON scalar type, else any JSON value."""
    while typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        members = [member for member in typing.get_args(hint) if member is not type(None)]
        if len(members) != 1:
            return "json"
        return _param_kind(members[0])
    if origin is typing.Literal:
        kinds = {_param_kind(type(value)) for value in typing.get_args(hint)}
        return kinds.pop() if len(kinds) == 1 else "json"
    # ``bool`` is looked up as itself, never as the ``int`` it subclasses.
    return _PARAM_KINDS.get(hint, "json") if isinstance(hint, type) else "json"


def _json_scalar(value: Any) -> bool | int | float | str | None:
    """``value`` if a form can show it as a default (a finite JSON scalar), else None."""
    if isinstance(value, bool | int | str) and not (
        isinstance(value, str) and len(value) > _MAX_DEFAULT_CHARS
    ):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def _param_spec(parameter: inspect.Parameter, hint: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": parameter.name, "kind": _param_kind(hint)}
    if parameter.default is not inspect.Parameter.empty:
        spec["required"] = False
        default = _json_scalar(parameter.default)
        if default is not None:
            spec["default"] = default
    return spec


class ActionRegistry:
    def __init__(self) -> None:
        self._actions: dict[str, RegisteredAction] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._actions

    @property
    def specs(self) -> list[ActionSpec]:
        return [action.spec for action in self._actions.values()]

    def register(
        self, function: Callable[..., Any], *, name: str | None = None, description: str = ""
    ) -> None:
        action_name = name or function.__name__
        if action_name in self._actions:
            raise ValueError(f"an action named {action_name!r} is already registered")
        signature = inspect.signature(function)
        named = [
            parameter
            for parameter in signature.parameters.values()
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
        ]
        hints = _parameter_types(function, signature)
        # Validates the name and sizes with the schema's own rules, at registration time.
        spec = schema.convert(
            {
                "name": action_name,
                "description": description or _summary(function),
                "params": [parameter.name for parameter in named],
                "signature": [
                    _param_spec(parameter, hints.get(parameter.name, Any)) for parameter in named
                ],
            },
            ActionSpec,
        )
        self._actions[action_name] = RegisteredAction(spec, function, signature, hints)

    async def run(self, request: ActionRequest) -> ActionResult:
        """Run the requested action; every outcome becomes an ``action_result``."""
        action = self._actions.get(request.name)
        if action is None:
            return _failure(request, "LookupError", f"no action named {request.name!r}")
        try:
            bound = action.signature.bind(**request.args)
            action.convert(bound)
        except (TypeError, msgspec.ValidationError) as exc:
            return _failure(request, BAD_CALL, f"bad arguments for {request.name}: {exc}")
        try:
            if inspect.iscoroutinefunction(action.function):
                result = await action.function(*bound.args, **bound.kwargs)
            else:
                result = await asyncio.to_thread(action.function, *bound.args, **bound.kwargs)
        except Exception as exc:
            return _failure(request, type(exc).__name__, str(exc))
        try:
            plain = msgspec.to_builtins(result)
        except TypeError as exc:
            return _failure(request, "TypeError", f"the result cannot be sent: {exc}")
        return ActionResult(call=request.call, ok=True, result=plain)


def _failure(request: ActionRequest, kind: str, message: str) -> ActionResult:
    failure = ActionFailure(type=kind[:256], message=message[:4096])
    return ActionResult(call=request.call, ok=False, error=failure)


def _summary(function: Callable[..., Any]) -> str:
    doc = inspect.getdoc(function) or ""
    return doc.split("\n\n", 1)[0][:4096]
