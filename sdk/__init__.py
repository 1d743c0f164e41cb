"""Async clients for pierhead workers and watchers."""

__all__: list[str] = []
