"""Hypothesis strategies derived from the schema's own types.

The strategies read msgspec's type information, constraints included, so every frame and
payload gets a generator that produces exactly the values its decoder must accept, and a new
field is covered the moment it is added.
"""

from __future__ import annotations

import datetime
import typing
from typing import Any

import msgspec
import msgspec.inspect as mi
from hypothesis import assume
from hypothesis import strategies as st

import schema

# Generated strings stay short; the exact bounds get their own tests.
_MAX_GENERATED_CHARS = 24
_MAX_GENERATED_ITEMS = 3
_INT64 = (-(2**63), 2**63 - 1)

_TEXT_CHARACTERS = st.characters(codec="utf-8")
_OFFSETS = [
    datetime.timedelta(0),
    datetime.timedelta(hours=2),
    datetime.timedelta(hours=-5, minutes=-30),
]

utc_datetimes = st.datetimes(
    min_value=datetime.datetime(1970, 1, 2),
    max_value=datetime.datetime(2200, 1, 1),
    timezones=st.just(datetime.UTC),
)
aware_datetimes = st.datetimes(
    min_value=datetime.datetime(1970, 1, 2),
    max_value=datetime.datetime(2200, 1, 1),
    timezones=st.sampled_from([datetime.timezone(offset) for offset in _OFFSETS]),
)

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(*_INT64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(_TEXT_CHARACTERS, max_size=_MAX_GENERATED_CHARS),
    lambda children: (
        st.lists(children, max_size=_MAX_GENERATED_ITEMS)
        | st.dictionaries(
            st.text(_TEXT_CHARACTERS, max_size=8), children, max_size=_MAX_GENERATED_ITEMS
        )
    ),
    max_leaves=8,
)


def for_type(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy for any type the schema uses, honouring its msgspec constraints."""
    return _for_info(mi.type_info(tp))


_STRUCT_STRATEGIES: dict[type[Any], st.SearchStrategy[Any]] = {}


def for_struct(cls: type[Any]) -> st.SearchStrategy[Any]:
    """A strategy for a Struct class (built once, then reused)."""
    if cls not in _STRUCT_STRATEGIES:
        info = mi.type_info(cls)
        assert isinstance(info, mi.StructType)
        _STRUCT_STRATEGIES[cls] = _struct(info)
    return _STRUCT_STRATEGIES[cls]


def _for_info(info: mi.Type) -> st.SearchStrategy[Any]:
    match info:
        case mi.StructType():
            return st.deferred(lambda: for_struct(info.cls))
        case mi.NoneType():
            return st.none()
        case mi.BoolType():
            return st.booleans()
        case mi.IntType():
            low = info.ge if info.ge is not None else _INT64[0]
            high = info.le if info.le is not None else _INT64[1]
            return st.integers(low, high)
        case mi.FloatType():
            return st.floats(
                min_value=info.ge if info.ge is not None else info.gt,
                max_value=info.le,
                exclude_min=info.gt is not None,
                allow_nan=False,
                allow_infinity=False,
            )
        case mi.StrType(pattern=pattern) if pattern is not None:
            return st.from_regex(pattern, fullmatch=True)
        case mi.StrType():
            high = min(info.max_length or _MAX_GENERATED_CHARS, _MAX_GENERATED_CHARS)
            return st.text(_TEXT_CHARACTERS, min_size=info.min_length or 0, max_size=high)
        case mi.LiteralType():
            return st.sampled_from(info.values)
        case mi.EnumType():
            return st.sampled_from(list(info.cls))
        case mi.DateTimeType():
            return aware_datetimes
        case mi.AnyType():
            return json_values
        case mi.UnionType():
            return st.one_of([_for_info(member) for member in info.types])
        case mi.ListType():
            low, high = _sizes(info)
            return st.lists(_for_info(info.item_type), min_size=low, max_size=high)
        case mi.VarTupleType():
            low, high = _sizes(info)
            return st.lists(_for_info(info.item_type), min_size=low, max_size=high).map(tuple)
        case mi.DictType():
            low, high = _sizes(info)
            keys, values = _for_info(info.key_type), _for_info(info.value_type)
            return st.dictionaries(keys, values, min_size=low, max_size=high)
        case mi.Metadata():
            return _for_info(info.type)
    raise NotImplementedError(f"no strategy for {info!r}")


def _sizes(info: mi.ListType | mi.VarTupleType | mi.DictType) -> tuple[int, int]:
    low = info.min_length or 0
    high = info.max_length if info.max_length is not None else _MAX_GENERATED_ITEMS
    return low, min(high, low + _MAX_GENERATED_ITEMS)


def _struct(info: mi.StructType) -> st.SearchStrategy[Any]:
    fields = {field.name: _for_info(field.type) for field in info.fields}

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        values = {name: draw(strategy) for name, strategy in fields.items()}
        try:
            return info.cls(**values)
        except ValueError:
            # A cross-field rule (``__post_init__``) refused this combination.
            assume(False)
            raise

    return build()


def members(union: Any) -> list[type[Any]]:
    """The Struct classes of a tagged union alias."""
    return list(typing.get_args(union))


def event_msgs(
    payloads: st.SearchStrategy[Any] | None = None,
) -> st.SearchStrategy[schema.EventMsg]:
    """EventMsg values, optionally with payloads from a given strategy."""
    base = for_struct(schema.EventMsg)
    if payloads is None:
        return base
    return st.tuples(base, payloads).map(
        lambda pair: msgspec.structs.replace(pair[0], payload=pair[1])
    )


def client_frames(cls: type[Any]) -> st.SearchStrategy[Any]:
    """Frames of one client type that a broker of this protocol version accepts."""
    frames = for_struct(cls)
    if cls is schema.Hello:
        return frames.map(
            lambda hello: msgspec.structs.replace(hello, protocol=schema.PROTOCOL_VERSION)
        )
    return frames
