"""Actions a worker offers: registration, argument checks against the signature, and running.

Sync callables run in a thread so that a slow one never blocks the event loop (and with it the
worker's acks and heartbeats); async ones run as tasks. Whatever happens, the caller gets an
answer: the result, or the exception's type and message.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

import schema
from schema import ActionFailure, ActionRequest, ActionResult, ActionSpec


@dataclass(frozen=True, slots=True)
class RegisteredAction:
    spec: ActionSpec
    function: Callable[..., Any]
    signature: inspect.Signature


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
        params = [
            parameter.name
            for parameter in signature.parameters.values()
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
        ]
        # Validates the name and sizes with the schema's own rules, at registration time.
        spec = schema.convert(
            {
                "name": action_name,
                "description": description or _summary(function),
                "params": params,
            },
            ActionSpec,
        )
        self._actions[action_name] = RegisteredAction(spec, function, signature)

    async def run(self, request: ActionRequest) -> ActionResult:
        """Run the requested action; every outcome becomes an ``action_result``."""
        action = self._actions.get(request.name)
        if action is None:
            return _failure(request, "LookupError", f"no action named {request.name!r}")
        try:
            bound = action.signature.bind(**request.args)
        except TypeError as exc:
            return _failure(request, "TypeError", f"bad arguments for {request.name}: {exc}")
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
