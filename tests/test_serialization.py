"""One serialization behaviour: JSONSerializer with and without orjson accepts, refuses and reads back alike.

Each case of the table in core/serializers.py runs under both engines; a hypothesis
property checks the same on generated data, JSON-like and not.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import math
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastapi_sessions import JSONSerializer, SerializationError
from fastapi_sessions._core.serializers import MAX_DEPTH

ENGINES = {"orjson": JSONSerializer(use_orjson=True), "stdlib": JSONSerializer(use_orjson=False)}


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Tag(str):
    pass


class Ratio(float):
    pass


def nested(levels: int) -> dict[str, Any]:
    """A session whose nesting is ``levels`` deep, the session dict itself counted."""
    value: Any = 1
    for _ in range(levels - 1):
        value = [value]
    return {"v": value} if levels > 1 else {"v": 1}


STORED: dict[str, tuple[Callable[[], dict[str, Any]], dict[str, Any]]] = {
    # case: (session data, what reads back)
    "int 2**64": (lambda: {"v": 2**64}, {"v": 2**64}),
    "int -2**63 - 1": (lambda: {"v": -(2**63) - 1}, {"v": -(2**63) - 1}),
    "int 10**40": (lambda: {"v": [10**40, -(10**40)]}, {"v": [10**40, -(10**40)]}),
    "long digit string": (lambda: {"v": "1" * 40}, {"v": "1" * 40}),
    "float": (lambda: {"v": [1.5, -0.0, 1e300, 5e-324]}, {"v": [1.5, -0.0, 1e300, 5e-324]}),
    "None": (lambda: {"v": None, "w": [None]}, {"v": None, "w": [None]}),
    "nesting at the limit": (lambda: nested(MAX_DEPTH), nested(MAX_DEPTH)),
    "nesting 256": (lambda: nested(256), nested(256)),
    "tuple": (lambda: {"v": (1, (2, "a"))}, {"v": [1, [2, "a"]]}),
    "uuid": (lambda: {"v": uuid.UUID(int=1)}, {"v": "00000000-0000-0000-0000-000000000001"}),
    "Enum": (lambda: {"v": Color.RED}, {"v": "red"}),
    "IntEnum": (lambda: {"v": Level.HIGH}, {"v": 3}),
    "str subclass key and value": (lambda: {Tag("k"): Tag("v")}, {"k": "v"}),
    "float subclass": (lambda: {"v": Ratio(0.5)}, {"v": 0.5}),
}

REFUSED: dict[str, Callable[[], dict[Any, Any]]] = {
    "int key": lambda: {"v": {1: "a"}},
    "None key": lambda: {None: "a"},
    "tuple key": lambda: {(1, 2): "a"},
    "NaN": lambda: {"v": math.nan},
    "Infinity": lambda: {"v": [None, -math.inf]},
    "NaN in an Enum": lambda: {"v": enum.Enum("Odd", {"X": math.nan}).X},
    "nesting over the limit": lambda: nested(MAX_DEPTH + 1),
    "nesting 5000": lambda: nested(5000),
    "circular": lambda: (lambda d: (d.__setitem__("self", d), d)[1])({}),
    "datetime": lambda: {"v": datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)},
    "Decimal": lambda: {"v": decimal.Decimal("1.5")},
    "bytes": lambda: {"v": b"x"},
    "set": lambda: {"v": {1}},
    "lone surrogate": lambda: {"v": "\ud800"},
}


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("case", list(STORED))
def test_stored_values_read_back_the_same_with_either_engine(engine: str, case: str) -> None:
    make, expected = STORED[case]
    serializer = ENGINES[engine]
    got = serializer.loads(serializer.dumps(make()))
    assert got == expected
    assert repr(got) == repr(expected)  # the same types too (1 stays int, -0.0 stays -0.0)


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_values_raise_serialization_error_with_either_engine(engine: str, case: str) -> None:
    with pytest.raises(SerializationError, match="not JSON-serializable"):
        ENGINES[engine].dumps(make_refused(case))


def make_refused(case: str) -> dict[Any, Any]:
    return REFUSED[case]()


@pytest.mark.parametrize("engine", list(ENGINES))
def test_what_one_engine_writes_the_other_reads_the_same(engine: str) -> None:
    other = ENGINES["stdlib" if engine == "orjson" else "orjson"]
    for make, expected in STORED.values():
        assert other.loads(ENGINES[engine].dumps(make())) == expected


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize(
    "payload", [b"[1]", b"nope", b'{"v": NaN}', b'{"v": Infinity}', b"\xff", b"[" * 5000 + b"]" * 5000]
)
def test_bad_payloads_raise_serialization_error_with_either_engine(engine: str, payload: bytes) -> None:
    with pytest.raises(SerializationError):
        ENGINES[engine].loads(payload)


# -- the property -------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**62, max_value=2**70),
    st.floats(), st.text(), st.uuids(), st.sampled_from([Color.RED, Level.HIGH]),
    st.datetimes(), st.binary(max_size=3), st.decimals(allow_nan=False),
)
keys = st.one_of(st.text(max_size=5), st.text(max_size=5), st.integers(), st.none(), st.booleans())
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.tuples(inner, inner), st.dictionaries(keys, inner, max_size=4)
    ),
    max_leaves=12,
)


def outcome(serializer: JSONSerializer, data: dict[Any, Any]) -> tuple[str, Any]:
    try:
        payload = serializer.dumps(data)
    except SerializationError:
        return ("refused", None)
    return ("stored", repr(serializer.loads(payload)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, values, max_size=4))
def test_both_engines_accept_refuse_and_read_back_alike(data: dict[Any, Any]) -> None:
    assert outcome(ENGINES["orjson"], data) == outcome(ENGINES["stdlib"], data)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=600))
def test_both_engines_draw_the_nesting_line_in_one_place(levels: int) -> None:
    expected = ("stored", repr(nested(levels))) if levels <= MAX_DEPTH else ("refused", None)
    assert outcome(ENGINES["orjson"], nested(levels)) == outcome(ENGINES["stdlib"], nested(levels)) == expected
