"""pierhead, a peer and the bare relay on one workload: the rows and ratios of a peer report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ._stats import Rates

MISSING: Final = "-"

LOAD_NOTE: Final = (
    "Load columns, in cores over the run (medians over repeats): server CPU = CPU time of the"
    " server process (pierhead's broker, the peer's server or the relay); server CPU wait = time"
    " its threads were ready to run but had no CPU; client CPU = the publisher and watcher"
    " processes together; other CPU = everything else on the machine (other work competing for"
    " the same cores)"
)


@dataclass(frozen=True, slots=True)
class SideBySide:
    """One workload measured on all three, in the same run; ``peer`` is None where the peer
    could not be run (see the report's notes)."""

    workload: str
    pierhead: Rates
    peer: Rates | None
    relay: Rates
    others: tuple[Rates, ...] = ()
    """Further variants of the peer, shown beside it and measured against it, without goals."""

    @property
    def vs_peer(self) -> float | None:
        """pierhead's median over the peer's."""
        return None if self.peer is None else self.pierhead.median_rate / self.peer.median_rate

    @property
    def vs_relay(self) -> float:
        return self.pierhead.median_rate / self.relay.median_rate


def header(peer: str) -> tuple[str, ...]:
    return (
        "variant",
        "workload",
        "min /s",
        "median /s",
        "max /s",
        f"median vs {peer}",
        "median vs relay",
        "server CPU",
        "server CPU wait",
        "client CPU",
        "other CPU",
    )


def _load(cores: float | None) -> str:
    return "n/a" if cores is None else f"{cores:.2f}"


def _row(rates: Rates, workload: str, peer: Rates | None, relay: Rates) -> tuple[str, ...]:
    vs_peer = MISSING if peer is None else f"{rates.median_rate / peer.median_rate:.2f}x"
    return (
        rates.name,
        workload,
        f"{rates.min_rate:,.0f}",
        f"{rates.median_rate:,.0f}",
        f"{rates.max_rate:,.0f}",
        vs_peer,
        f"{rates.median_rate / relay.median_rate:.2f}x",
        _load(rates.server_load),
        _load(rates.server_wait),
        _load(rates.client_load),
        _load(rates.other_load),
    )


def rows(comparison: SideBySide, peer_name: str) -> list[tuple[str, ...]]:
    """pierhead, the peer (or a line saying it was not measured), its other variants and the
    relay."""
    peer, relay, workload = comparison.peer, comparison.relay, comparison.workload
    measured = [_row(comparison.pierhead, workload, peer, relay)]
    if peer is None:
        measured.append((peer_name, workload, *[MISSING] * 9))
    else:
        measured.append(_row(peer, workload, peer, relay))
    measured += [_row(other, workload, peer, relay) for other in comparison.others]
    measured.append(_row(relay, workload, peer, relay))
    return measured
