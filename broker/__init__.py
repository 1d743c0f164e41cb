"""The pierhead broker: sessions, durable workspace streams, fan-out, store and auth.

The public API for programs that run a broker: ``BrokerServer`` with its ``BrokerConfig``,
``configure_logging`` for its log lines, and the ``serve`` and ``token`` subcommands for a
command line that offers them (``pierhead`` does; so does ``python -m broker``).
``broker.testing`` has the helpers for tests.
"""

from ._cli import add_serve_command, add_token_command
from ._config import BrokerConfig
from ._logging import configure_logging
from ._server import BrokerServer, InsecureBindError

__all__ = [
    "BrokerConfig",
    "BrokerServer",
    "InsecureBindError",
    "add_serve_command",
    "add_token_command",
    "configure_logging",
]
