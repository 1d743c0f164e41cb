"""Encode + decode of one ~200-byte event: the typed schema codecs against stdlib json.

The frame is a ``publish`` frame carrying one ``Event`` with a ``LogRecord`` payload. It was
picked over an ``events`` frame carrying one ``EventMsg`` because it is the one close to 200
bytes of JSON: the delivery envelope (workspace, run id, offset, seq, two timestamps) alone
takes an ``events`` frame past 220 bytes, and realistic names past 250.

The typed paths encode the Struct and decode it back into Structs, validating every constraint
and parsing the timestamp; the baseline only turns an equivalent plain dict into text and back.
"""

from __future__ import annotations

import datetime
import gc
import json
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import msgspec

import schema

from ._report import Goal, Report

TYPED_JSON: Final = "msgspec JSON (typed)"
TYPED_MSGPACK: Final = "msgspec MessagePack (typed)"
STDLIB_JSON: Final = "stdlib json (dict)"
VARIANTS: Final = (TYPED_JSON, TYPED_MSGPACK, STDLIB_JSON)
TYPED_VARIANTS: Final = (TYPED_JSON, TYPED_MSGPACK)
BASELINE: Final = STDLIB_JSON

GOAL_RATIO: Final = 3.0
"""Each typed path must manage at least this many round trips per stdlib json round trip."""

ITERATIONS: Final = 50_000
REPEATS: Final = 7
QUICK_ITERATIONS: Final = 2_000
QUICK_REPEATS: Final = 3

RoundTrip = Callable[[], object]


@dataclass(frozen=True, slots=True)
class VariantResult:
    """One variant's rates, in round trips per second, one per repeat."""

    name: str
    rates: tuple[float, ...]

    @property
    def min_rate(self) -> float:
        return min(self.rates)

    @property
    def median_rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def max_rate(self) -> float:
        return max(self.rates)


@dataclass(frozen=True, slots=True)
class Measurement:
    """Every variant measured in one run, with the sizes of what they encoded."""

    json_bytes: int
    msgpack_bytes: int
    stdlib_bytes: int
    iterations: int
    repeats: int
    variants: tuple[VariantResult, ...]

    def variant(self, name: str) -> VariantResult:
        return next(variant for variant in self.variants if variant.name == name)

    def ratio(self, name: str) -> float:
        """Median over median: robust to the odd slow repeat on either side."""
        return self.variant(name).median_rate / self.variant(BASELINE).median_rate


def sample_frame() -> schema.Publish:
    """A worker's warning as it goes over the wire: 201 bytes of JSON."""
    created = datetime.datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=datetime.UTC)
    payload = schema.LogRecord(
        message="disk 91% full; next checkpoint may fail", level="warning", logger="trainer"
    )
    return schema.Publish(seq=12007, events=[schema.Event(payload=payload, create_time=created)])


def round_trips(frame: schema.Publish) -> dict[str, RoundTrip]:
    """One encode + decode per call for each variant; ``publish`` is decoded as a broker does."""
    json_codec, msgpack_codec = schema.JSON_CODEC, schema.MSGPACK_CODEC
    plain = msgspec.to_builtins(frame)

    def typed_json() -> schema.ClientFrame:
        return json_codec.decode_client_frame(json_codec.encode(frame))

    def typed_msgpack() -> schema.ClientFrame:
        return msgpack_codec.decode_client_frame(msgpack_codec.encode(frame))

    def stdlib_json() -> object:
        return json.loads(json.dumps(plain))

    return {TYPED_JSON: typed_json, TYPED_MSGPACK: typed_msgpack, STDLIB_JSON: stdlib_json}


def _check_round_trips(frame: schema.Publish, trips: Mapping[str, RoundTrip]) -> None:
    # A path that silently lost data could look fast; refuse to time it.
    plain = msgspec.to_builtins(frame)
    for name, trip in trips.items():
        expected = frame if name in TYPED_VARIANTS else plain
        if trip() != expected:
            raise RuntimeError(f"{name} does not reproduce the frame it encoded")


def _rate(trip: RoundTrip, iterations: int) -> float:
    """Round trips per second over one timed batch."""
    # As timeit does: a collection landing inside one variant's batch would be charged to it.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in range(iterations):
            trip()
        elapsed = time.perf_counter_ns() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    # A coarse clock can report 0 ns for a tiny batch; the rate must stay finite.
    return iterations * 1e9 / max(elapsed, 1)


def _rates(
    trips: Mapping[str, RoundTrip], *, iterations: int, repeats: int
) -> dict[str, list[float]]:
    for trip in trips.values():
        _rate(trip, max(1, iterations // 10))  # warm caches and allocator pools, untimed
    rates: dict[str, list[float]] = {name: [] for name in trips}
    # Interleaved, so drift in clock speed or background load hits every variant alike.
    for _ in range(repeats):
        for name, trip in trips.items():
            rates[name].append(_rate(trip, iterations))
    return rates


def measure(*, iterations: int = ITERATIONS, repeats: int = REPEATS) -> Measurement:
    """Time every variant on :func:`sample_frame`, ``repeats`` batches of ``iterations`` each."""
    frame = sample_frame()
    trips = round_trips(frame)
    _check_round_trips(frame, trips)
    rates = _rates(trips, iterations=iterations, repeats=repeats)
    return Measurement(
        json_bytes=len(schema.JSON_CODEC.encode(frame)),
        msgpack_bytes=len(schema.MSGPACK_CODEC.encode(frame)),
        stdlib_bytes=len(json.dumps(msgspec.to_builtins(frame)).encode()),
        iterations=iterations,
        repeats=repeats,
        variants=tuple(VariantResult(name, tuple(rates[name])) for name in trips),
    )


def goals(result: Measurement) -> tuple[Goal, ...]:
    return tuple(
        Goal(
            description=f"{name} >= {GOAL_RATIO:g}x {BASELINE}",
            measured=f"{result.ratio(name):.2f}x",
            passed=result.ratio(name) >= GOAL_RATIO,
        )
        for name in TYPED_VARIANTS
    )


def report(result: Measurement) -> Report:
    notes = (
        "Frame: `publish` with one `Event` (`LogRecord` payload), decoded with"
        " `decode_client_frame`",
        f"Encoded size: {result.json_bytes} B JSON, {result.msgpack_bytes} B MessagePack,"
        f" {result.stdlib_bytes} B stdlib json.dumps",
        f"{result.repeats} interleaved repeats of {result.iterations:,} round trips"
        " (encode + decode) per variant; rates in round trips per second",
    )
    header = ("variant", "min ops/s", "median ops/s", "max ops/s", f"median vs {BASELINE}")
    rows = tuple(
        (
            variant.name,
            f"{variant.min_rate:,.0f}",
            f"{variant.median_rate:,.0f}",
            f"{variant.max_rate:,.0f}",
            f"{result.ratio(variant.name):.2f}x",
        )
        for variant in result.variants
    )
    return Report(
        name="codec",
        title="encode + decode of one ~200-byte event",
        notes=notes,
        header=header,
        rows=rows,
        goals=goals(result),
    )


def run(*, quick: bool) -> Report:
    """The benchmark as the runner calls it; ``quick`` is a smoke test, not a measurement."""
    if quick:
        return report(measure(iterations=QUICK_ITERATIONS, repeats=QUICK_REPEATS))
    return report(measure())
