"""Where a token secret shows in a text: whole, as ``WINDOW`` characters in a row of its random
part, or as any string of a token's shape.

A secret reads ``ph_<12 hex>_<43 url-safe characters>`` (``broker._tokens``), so every piece of
it worth finding lies inside a run of at least ``WINDOW`` url-safe characters. A text is first
cut down to those runs (``candidates``), which is all the search needs: a log of many megabytes
becomes a small set, kept for the end of the run, when every secret made is known.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

WINDOW: Final = 20
"""Characters in a row of a secret's random part that must not appear anywhere."""

TOKEN_SHAPE: Final = re.compile(r"ph_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")
"""A token as ``pierhead token create`` prints it; a match in a log is a leak, known or not."""

_RUN: Final = re.compile(rf"[A-Za-z0-9_-]{{{WINDOW},}}")
# A line holding nothing but a token: how ``pierhead token create`` shows the secret, on
# purpose, on its standard output. No log line looks like that.
_LONE_TOKEN_LINE: Final = re.compile(r"^[ \t]*" + TOKEN_SHAPE.pattern + r"[ \t]*\r?$", re.MULTILINE)


def random_part(secret: str) -> str:
    """What follows ``ph_<id>_``: the 256 random bits."""
    prefix, token_id, rest = secret.split("_", 2)
    assert (prefix, len(token_id), len(rest)) == ("ph", 12, 43), "not a token secret"
    return rest


def token_id(secret: str) -> str:
    """The id part of a token: not secret, it is how the token is named in a report."""
    return secret.split("_", 2)[1]


def candidates(text: str) -> set[str]:
    """The runs of ``text`` in which a secret, or ``WINDOW`` characters of one, could be."""
    return set(_RUN.findall(text))


def without_printed_tokens(output: str) -> str:
    """A program's standard output less the lines that are a token alone, which is how a
    token is printed on purpose rather than logged."""
    return _LONE_TOKEN_LINE.sub("", output)


class SecretIndex:
    """Every ``WINDOW``-character slice of the random parts of some secrets, by label."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._windows: dict[str, str] = {}
        for label, secret in secrets.items():
            part = random_part(secret)
            for start in range(len(part) - WINDOW + 1):
                self._windows[part[start : start + WINDOW]] = label

    def labels_in(self, runs: Iterable[str]) -> set[str]:
        """The labels of the secrets of which ``runs`` hold ``WINDOW`` characters or more."""
        found: set[str] = set()
        for run in runs:
            for start in range(len(run) - WINDOW + 1):
                label = self._windows.get(run[start : start + WINDOW])
                if label is not None:
                    found.add(label)
        return found


def token_shaped(runs: Iterable[str]) -> set[str]:
    """The ids of the token-shaped strings in ``runs``, secrets made in the run or not."""
    return {match.group(1) for run in runs for match in TOKEN_SHAPE.finditer(run)}


def leaked(text: str, secrets: dict[str, str]) -> list[str]:
    """Names of the secrets found in ``text``, whole or as ``WINDOW`` characters in a row."""
    found = SecretIndex(secrets).labels_in(candidates(text))
    return [name for name in secrets if name in found]
