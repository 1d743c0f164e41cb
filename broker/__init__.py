"""The pierhead broker: sessions, durable workspace streams, fan-out, store and auth."""

__all__: list[str] = []
