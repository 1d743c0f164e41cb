"""The ``--store`` URL of a Redis store: the accepted forms, the errors, and the password kept
out of every printed form."""

from __future__ import annotations

import pytest

from broker._redis_url import PASSWORD_VARIABLE, RedisTarget, StoreUrlError, parse_redis_url

SECRET = "s3cr3t-Pa55word"
NO_ENV: dict[str, str] = {}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://localhost", RedisTarget("redis", host="localhost", port=6379, db=0)),
        ("redis://10.0.0.5:6380/3", RedisTarget("redis", host="10.0.0.5", port=6380, db=3)),
        ("REDIS://Host.example/", RedisTarget("redis", host="host.example", port=6379, db=0)),
        ("redis://[::1]:7000/1", RedisTarget("redis", host="::1", port=7000, db=1)),
        ("rediss://c.example:6390/2", RedisTarget("rediss", host="c.example", port=6390, db=2)),
        ("unix:///run/redis/redis.sock", RedisTarget("unix", path="/run/redis/redis.sock")),
        ("unix:///tmp/r%20s.sock?db=4", RedisTarget("unix", path="/tmp/r s.sock", db=4)),
        (
            "redis://app:p%40ss@localhost/0",
            RedisTarget("redis", host="localhost", port=6379, username="app", password="p@ss"),
        ),
        (
            "redis://:only-pass@localhost:6379",
            RedisTarget("redis", host="localhost", port=6379, password="only-pass"),
        ),
        (
            "unix://user:pw@/run/r.sock?db=1",
            RedisTarget("unix", path="/run/r.sock", db=1, username="user", password="pw"),
        ),
        (
            "sentinel://s1,s2:26380/pierhead",
            RedisTarget("sentinel", sentinels=(("s1", 26379), ("s2", 26380)), service="pierhead"),
        ),
        (
            "sentinel://:pw@10.0.0.1:26379/main/2",
            RedisTarget(
                "sentinel", db=2, password="pw", sentinels=(("10.0.0.1", 26379),), service="main"
            ),
        ),
    ],
)  # fmt: skip
def test_accepted_forms(url: str, expected: RedisTarget) -> None:
    assert parse_redis_url(url, NO_ENV) == expected


def test_password_from_the_environment_when_the_url_has_none() -> None:
    env = {PASSWORD_VARIABLE: SECRET}
    assert parse_redis_url("redis://localhost/0", env).password == SECRET
    assert parse_redis_url("unix:///run/r.sock", env).password == SECRET
    assert parse_redis_url("redis://:from-url@localhost/0", env).password == "from-url"
    assert parse_redis_url("redis://localhost/0", {PASSWORD_VARIABLE: ""}).password is None


def test_client_options() -> None:
    tcp = parse_redis_url(f"rediss://app:{SECRET}@cache.example:6390/2", NO_ENV)
    assert tcp.client_options() == {
        "db": 2,
        "username": "app",
        "password": SECRET,
        "host": "cache.example",
        "port": 6390,
        "ssl": True,
        "ssl_cert_reqs": "required",
    }
    unix = parse_redis_url("unix:///run/r.sock?db=1", NO_ENV)
    assert unix.client_options() == {"db": 1, "unix_socket_path": "/run/r.sock"}
    assert not unix.tls
    assert tcp.tls


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"redis://:{SECRET}@localhost:6379/0", "redis://:***@localhost:6379/0"),
        (f"redis://app:{SECRET}@[::1]:6379/0", "redis://app:***@[::1]:6379/0"),
        ("redis://app@localhost/0", "redis://app@localhost:6379/0"),
        (f"unix://:{SECRET}@/run/r.sock?db=2", "unix://:***@/run/r.sock?db=2"),
        ("rediss://localhost", "rediss://localhost:6379/0"),
    ],
)
def test_the_password_never_shows(url: str, shown: str) -> None:
    target = parse_redis_url(url, NO_ENV)
    assert target.redacted() == shown
    assert SECRET not in repr(target)
    assert SECRET not in str(target)
    from_env = parse_redis_url(url.replace(SECRET, ""), {PASSWORD_VARIABLE: SECRET})
    assert SECRET not in repr(from_env)
    assert SECRET not in from_env.redacted()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://localhost/0", "scheme 'http://' is not one of redis://, rediss://, unix://"),
        ("localhost:6379", "scheme 'localhost://' is not one of"),
        ("", "scheme 'none' is not one of"),
        (f"redis://:{SECRET}@/0", "names no host"),
        (f"redis://:{SECRET}@localhost:0/0", "bad port: '0' (1-65535)"),
        (f"redis://:{SECRET}@localhost:99999/0", "bad port: '99999'"),
        (f"redis://:{SECRET}@localhost:port/0", "bad port: 'port'"),
        (f"redis://:{SECRET}@localhost/16", "bad database in its path: '16' (0-15)"),
        (f"redis://:{SECRET}@localhost/zero", "bad database in its path: 'zero'"),
        (f"redis://:{SECRET}@localhost/0?db=1", "has query parameters (db)"),
        (f"redis://:{SECRET}@localhost/0#x", "has a #fragment"),
        (f"unix://:{SECRET}@host/run/r.sock", "names a host"),
        (f"unix://:{SECRET}@/run/r.sock?db=x", "bad database in its db=: 'x'"),
        (f"unix://:{SECRET}@/run/r.sock?timeout=1", "unknown query parameters: timeout"),
        (f"unix://:{SECRET}@/run/r.sock?db=1&db=2", "repeats db="),
        (f"unix://:{SECRET}@/run/r.sock?db", "malformed query"),
        ("unix://relative.sock", "names a host"),
        (f"redis://:{SECRET}@[::1/0", "is not a URL"),
        (f"sentinel://:{SECRET}@s1:26379", "names no service"),
        (f"sentinel://:{SECRET}@s1:0/main", "bad port: '0'"),
        (f"sentinel://:{SECRET}@s1,,s2/main", "an empty Sentinel address"),
        (f"sentinel://:{SECRET}@s1/main/x", "bad database in its path: 'x'"),
        (f"sentinel://:{SECRET}@s1/main?db=1", "has query parameters"),
    ],
)
def test_bad_urls_are_refused_without_the_password(url: str, message: str) -> None:
    with pytest.raises(StoreUrlError) as caught:
        parse_redis_url(url, NO_ENV)
    assert message in str(caught.value)
    assert SECRET not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or SECRET not in str(caught.value.__context__)
