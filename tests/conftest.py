"""Fixtures shared across the test packages."""

pytest_plugins = ["tests.terminal", "tests.secret_scan", "tests.redis_server"]
