"""Answers to the plain HTTP GETs a browser makes for the dashboard. Pure: no sockets.

The files are read once, when the broker starts, and kept in memory with their ETag (a hash of
their bytes): a page load costs no disk access, and a browser that has a file revalidates it
with ``If-None-Match`` and gets a bodiless 304. ``/app/`` and ``/vendor/`` hold the assets;
``/``, and any other path the browser asks for as a page (``Accept: text/html``), get
``index.html``, so a deep link into the dashboard loads the application, which reads the rest
of the URL itself.

Every answer carries headers that keep the page to itself: a Content-Security-Policy without
inline script or any other origin, no framing (``frame-ancestors 'none'``, against
clickjacking a Catch button), no MIME sniffing, no referrer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from http import HTTPStatus
from importlib.resources.abc import Traversable
from typing import Final

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
"""``connect-src 'self'`` admits the page's own websocket (same host and port, ws or wss)."""

SECURITY_HEADERS: Final = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)

CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
"""What is served, by file ending; other files in the folder (licences) are not."""

ASSET_PREFIXES: Final = ("/app/", "/vendor/")
INDEX: Final = "/index.html"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """What to send back: a status, its headers and a body."""

    status: HTTPStatus
    headers: tuple[tuple[str, str], ...]
    body: bytes


class DashboardAssets:
    """The dashboard's files by URL path, and the answer to a GET for any path."""

    def __init__(self, files: dict[str, bytes]) -> None:
        """``files`` maps URL paths (``/index.html``, ``/app/main.js``, ...) to their bytes."""
        self._assets: dict[str, Asset] = {}
        for path, body in files.items():
            content_type = CONTENT_TYPES.get(_suffix(path))
            if content_type is None:
                continue
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            self._assets[path] = Asset(body, content_type, etag)
        if INDEX not in self._assets:
            raise ValueError("the dashboard's files have no index.html")

    @classmethod
    def from_folder(cls, root: Traversable) -> DashboardAssets:
        """Every file below ``root``, read now."""
        files: dict[str, bytes] = {}
        pending: list[tuple[str, Traversable]] = [("", root)]
        while pending:
            prefix, folder = pending.pop()
            for entry in folder.iterdir():
                path = f"{prefix}/{entry.name}"
                if entry.is_dir():
                    pending.append((path, entry))
                else:
                    files[path] = entry.read_bytes()
        return cls(files)

    def __contains__(self, path: str) -> bool:
        return path in self._assets

    def answer(self, path: str, *, accept: str | None, if_none_match: str | None) -> HttpAnswer:
        """The answer to ``GET path`` (the query string is the page's, not ours)."""
        path = path.split("?", 1)[0].split("#", 1)[0]
        if path.startswith(ASSET_PREFIXES):
            asset = self._assets.get(path)
        elif path in ("/", INDEX) or (accept is not None and "text/html" in accept):
            asset = self._assets[INDEX]
        else:
            asset = None
        if asset is None:
            return plain(HTTPStatus.NOT_FOUND, "not found\n")
        headers = (
            ("Content-Type", asset.content_type),
            ("ETag", asset.etag),
            # Revalidate every time: the ETag makes that a bodiless 304 while nothing changed,
            # and an upgraded broker's new files are never mixed with cached old ones.
            ("Cache-Control", "no-cache"),
            *SECURITY_HEADERS,
        )
        if if_none_match is not None and asset.etag in _etags(if_none_match):
            return HttpAnswer(HTTPStatus.NOT_MODIFIED, headers, b"")
        return HttpAnswer(HTTPStatus.OK, headers, asset.body)


def plain(status: HTTPStatus, text: str) -> HttpAnswer:
    """A short plain-text answer, with the same protective headers as the pages."""
    headers = (
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Cache-Control", "no-store"),
        *SECURITY_HEADERS,
    )
    return HttpAnswer(status, headers, text.encode())


def _suffix(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name[name.rfind(".") :] if "." in name else ""


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
