"""The door: browsers' Origin (cross-site websocket hijacking) and Host (DNS rebinding)."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin, Subprotocol

import schema
from broker._auth import Door, DoorRefusal
from broker.testing import broker_process, running_broker
from tests.broker.wire import WireClient, watcher_hello

LOOPBACK = Door(tls=False, loopback=True)


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("127.0.0.1:8765", None),  # the SDK, the CLI: no Origin
        ("127.0.0.1:8765", "http://127.0.0.1:8765"),  # a page the broker serves itself
        ("localhost:8765", "http://localhost:8765"),
        ("[::1]:8765", "http://[::1]:8765"),
        ("127.0.0.2:8765", None),
        ("LOCALHOST:8765", "HTTP://localhost:8765"),
        ("127.0.0.1", "http://127.0.0.1:80"),  # default ports, written or not
    ],
)
def test_a_loopback_broker_admits_its_own_origin_and_clients_without_one(
    host: str, origin: str | None
) -> None:
    assert LOOPBACK.check(host, origin) is None


@pytest.mark.parametrize(
    ("host", "origin", "header"),
    [
        ("127.0.0.1:8765", "https://evil.example", "origin"),
        ("127.0.0.1:8765", "http://127.0.0.1:9999", "origin"),  # another port is another site
        ("127.0.0.1:8765", "https://127.0.0.1:8765", "origin"),  # and so is another scheme
        ("127.0.0.1:8765", "null", "origin"),  # a file:// page
        ("127.0.0.1:8765", "not an origin", "origin"),
        ("127.0.0.1:8765", "http://127.0.0.1:8765/path", "origin"),
        # DNS rebinding: the page's own origin, the broker's address, a foreign Host.
        ("evil.example:8765", "http://evil.example:8765", "host"),
        ("evil.example:8765", None, "host"),
        ("localhost.evil.example:8765", None, "host"),
        ("127.0.0.1.evil.example", None, "host"),
        (None, None, "host"),
        ("127.0.0.1:notaport", None, "host"),
        ("user@127.0.0.1:8765", None, "host"),
    ],
)
def test_a_loopback_broker_refuses_other_origins_and_foreign_hosts(
    host: str | None, origin: str | None, header: str
) -> None:
    refusal = LOOPBACK.check(host, origin)
    assert isinstance(refusal, DoorRefusal)
    assert refusal.header == header
    assert refusal.value == (origin if header == "origin" else host or "")


def test_allowed_origins_and_hosts_are_admitted_besides_the_own() -> None:
    door = Door(
        tls=True,
        loopback=True,
        allowed_origins=["https://ops.example.com", "null"],
        allowed_hosts=["Broker.Example.com", "[::2]"],
    )
    assert door.check("127.0.0.1:8765", "https://ops.example.com:443") is None
    assert door.check("127.0.0.1:8765", "null") is None
    assert door.check("127.0.0.1:8765", "https://127.0.0.1:8765") is None  # wss: https
    assert door.check("broker.example.com", "https://broker.example.com") is None
    assert door.check("[::2]:8765", None) is None
    assert isinstance(door.check("other.example.com", None), DoorRefusal)
    assert isinstance(door.check("127.0.0.1:8765", "http://ops.example.com"), DoorRefusal)


def test_a_broker_on_a_public_address_checks_hosts_only_when_told_to() -> None:
    public = Door(tls=True, loopback=False)
    assert public.check("broker.example.com", None) is None
    assert public.check("broker.example.com", "https://broker.example.com") is None
    assert isinstance(public.check("broker.example.com", "https://evil.example"), DoorRefusal)
    assert isinstance(public.check(None, "https://broker.example.com"), DoorRefusal)
    listed = Door(tls=True, loopback=False, allowed_hosts=["broker.example.com"])
    assert listed.check("broker.example.com:443", None) is None
    assert isinstance(listed.check("rebound.example", None), DoorRefusal)


@pytest.mark.parametrize(
    ("origins", "hosts"),
    [
        (["ops.example.com"], []),
        (["https://ops.example.com/"], []),
        (["ftp://ops.example.com"], []),
        ([], ["broker.example.com:8765"]),
        ([], ["https://broker.example.com"]),
        ([], [""]),
    ],
)
def test_a_setting_that_is_not_an_origin_or_a_host_name_is_refused(
    origins: list[str], hosts: list[str]
) -> None:
    with pytest.raises(ValueError, match="--allowed-"):
        Door(tls=False, loopback=True, allowed_origins=origins, allowed_hosts=hosts)


async def _welcomed(connection_url: str, **options: object) -> schema.Welcome:
    async with connect(
        connection_url,
        subprotocols=[Subprotocol("pierhead.v1.json")],
        proxy=None,
        **options,  # type: ignore[arg-type]
    ) as connection:
        client = WireClient(connection, schema.JSON_CODEC)
        await client.send(watcher_hello())
        return await client.expect(schema.Welcome)


async def _refused(connection_url: str, **options: object) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as refused:
        await _welcomed(connection_url, **options)
    return refused.value


@pytest.mark.asyncio
async def test_a_page_on_another_site_cannot_drive_a_loopback_broker() -> None:
    async with running_broker() as broker:
        port = broker.port
        # Any tab of the developer's browser: a page on evil.example opening ws://127.0.0.1.
        refused = await _refused(broker.url, origin=Origin("https://evil.example"))
        assert refused.response.status_code == 403
        assert refused.response.body.startswith(b"Origin not allowed")
        # The same page after its DNS name was rebound to 127.0.0.1: its own origin, and a Host
        # that is not this machine's.
        rebound = await _refused(
            f"ws://evil.example:{port}",
            host="127.0.0.1",
            port=port,
            origin=Origin(f"http://evil.example:{port}"),
        )
        assert rebound.response.status_code == 403
        assert rebound.response.body.startswith(b"Host not allowed")
        # Programs (no Origin) and the broker's own pages still get in, with every role.
        welcome = await _welcomed(broker.url)
        assert "admin" in welcome.roles
        await _welcomed(broker.url, origin=Origin(f"http://127.0.0.1:{port}"))
        await _welcomed(f"ws://localhost:{port}", origin=Origin(f"http://localhost:{port}"))


@pytest.mark.asyncio
async def test_allowed_hosts_and_origins_are_admitted() -> None:
    async with running_broker(
        allowed_origins=("null",), allowed_hosts=("pierhead.internal",)
    ) as broker:
        port = broker.port
        await _welcomed(broker.url, origin=Origin("null"))
        await _welcomed(
            f"ws://pierhead.internal:{port}",
            host="127.0.0.1",
            port=port,
            origin=Origin(f"http://pierhead.internal:{port}"),
        )
        await _refused(f"ws://other.internal:{port}", host="127.0.0.1", port=port)


@pytest.mark.asyncio
async def test_refusals_are_logged_once_and_sessions_log_their_origin(tmp_path: Path) -> None:
    async with broker_process(tmp_path / "data") as broker:
        port = broker.port
        await _refused(broker.url, origin=Origin("https://evil.example"))
        await _refused(f"ws://rebound.example:{port}", host="127.0.0.1", port=port)
        await _welcomed(broker.url, origin=Origin(f"http://127.0.0.1:{port}"))
        await _welcomed(broker.url)
        broker.terminate()
        assert await broker.wait() == 0
    refusals = broker.events("request_refused")
    assert [(r["refused"], r.get("origin"), r.get("host")) for r in refusals] == [
        ("origin", "https://evil.example", None),
        ("host", None, f"rebound.example:{port}"),
    ], broker.describe()
    opened = broker.events("session_opened")
    assert [record["origin"] for record in opened] == [f"http://127.0.0.1:{port}", None]
