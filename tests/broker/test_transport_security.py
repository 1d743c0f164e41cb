"""TLS, browser origins and connection limits at the door."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin, Subprotocol

import schema
import sdk
from broker.testing import running_broker
from tests.broker.wire import closed_with, scalars, watcher_hello, wire_client, worker_hello

pytestmark = pytest.mark.asyncio


async def test_wss_with_a_certificate_made_for_the_test(tmp_path: Path) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.cert_chain_pems[0].write_to_path(str(cert))
    certificate.private_key_pem.write_to_path(str(key))
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    async with running_broker(tls_cert=cert, tls_key=key) as broker:
        assert broker.url.startswith("wss://")
        async with connect(
            broker.url, ssl=client_context, subprotocols=[Subprotocol("pierhead.v1.json")]
        ) as connection:
            await connection.send(schema.JSON_CODEC.encode(watcher_hello()).decode())
            welcome = schema.JSON_CODEC.decode_broker_frame(await connection.recv())
            assert isinstance(welcome, schema.Welcome)
        with pytest.raises(ssl.SSLError):
            # A client that does not trust the certificate does not get in.
            async with connect(broker.url, ssl=ssl.create_default_context()):
                pass


async def test_only_allowed_browser_origins_get_in() -> None:
    async with running_broker(allowed_origins=("https://ops.example.com",)) as broker:
        async with connect(broker.url, origin=Origin("https://ops.example.com")):
            pass
        async with connect(broker.url):  # no Origin header: not a browser
            pass
        with pytest.raises(InvalidStatus) as refused:
            async with connect(broker.url, origin=Origin("https://evil.example.com")):
                pass
        assert refused.value.response.status_code == 403


async def test_connections_per_address_are_capped() -> None:
    async with running_broker(max_connections_per_address=2) as broker:
        async with (
            wire_client(broker.url, watcher_hello()),
            wire_client(broker.url, watcher_hello()),
            wire_client(broker.url) as third,
        ):
            await third.send(watcher_hello())
            error = await third.expect(schema.ErrorReply)
            assert error.code is schema.ErrorCode.RATE_LIMITED
            assert await closed_with(third) == schema.CloseCode.RATE_LIMITED
        async with wire_client(broker.url, watcher_hello()) as again:
            assert again.welcome is not None


async def test_publishing_past_the_rate_closes_with_4029_and_the_sdk_comes_back() -> None:
    async with running_broker(max_events_per_s=200, max_batch=100) as broker:
        async with wire_client(broker.url, worker_hello("w", "flood")) as flood:
            # Without waiting for acks: past the burst (200) and the paced window (16 batches).
            for seq in range(1, 2001, 100):
                await flood.publish(seq, scalars(seq, 100))
            error = await flood.expect(schema.ErrorReply)
            assert error.code is schema.ErrorCode.RATE_LIMITED
            assert await closed_with(flood) == schema.CloseCode.RATE_LIMITED
        # The SDK treats 4029 as "come back later" and gets everything through in the end.
        async with sdk.Worker(broker.url, "w", run_id="polite", reconnect_max_s=0.5) as worker:
            for i in range(600):
                await worker.scalar("x", i)
            await worker.flush(timeout=30)
            assert worker.counters["acked"] == 600


async def test_subscriptions_and_calls_per_session_are_capped() -> None:
    async with running_broker(max_subscriptions_per_session=2) as broker:
        async with wire_client(broker.url, watcher_hello()) as watcher:
            for _ in range(2):
                reply = await watcher.request(schema.Subscribe(id=watcher.next_id(), pattern="*"))
                assert isinstance(reply, schema.Subscribed)
            refused = await watcher.request(schema.Subscribe(id=watcher.next_id(), pattern="*"))
            assert isinstance(refused, schema.ErrorReply)
            assert refused.code is schema.ErrorCode.RATE_LIMITED
