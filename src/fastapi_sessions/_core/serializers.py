"""Session data to bytes and back: JSON only, never pickle; one behaviour with or without orjson.

What a session may hold, identically whether orjson is installed or not
(``JSONSerializer(use_orjson=True)`` and ``use_orjson=False`` accept and refuse
the same values, and read back the same data):

=============================================  ==================================================
value                                          outcome
=============================================  ==================================================
``dict`` with ``str`` keys, ``list``, ``str``,  stored; read back equal, with the same JSON types
``int`` (any size), finite ``float``, ``bool``,
``None`` (and subclasses of these)
``tuple``                                      stored as a list (read back as ``list``)
``uuid.UUID``                                  stored as its string (read back as ``str``)
``enum.Enum`` member                           stored as its value (read back as the value)
``dict`` key that is not a ``str``             ``SerializationError`` (JSON would turn ``1`` into
                                               ``"1"``: the data would not read back as written)
NaN, Infinity                                  ``SerializationError`` (not JSON; never ``null``)
nesting deeper than ``MAX_DEPTH`` (512)        ``SerializationError`` (the session dict is level 1)
``datetime``, ``date``, ``bytes``, ``set``,     ``SerializationError``
``Decimal``, dataclasses, any other object
a ``str`` with a lone surrogate                ``SerializationError`` (not encodable as UTF-8)
=============================================  ==================================================

orjson stays the engine for the common case; the standard library takes over
only for what orjson refuses (integers beyond 64 bits, nesting beyond its 254
levels, subclasses it does not know) and judges the values orjson would convert
silently (a ``null`` in its output may be a NaN: when orjson's output does not
read back equal to the data, the standard library decides). Payloads written by
the standard library start with a space (still plain JSON), so readers with
orjson send them to the standard library too, which reads big integers exactly
where orjson would turn them into floats.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from ..errors import SerializationError

__all__ = ["MAX_DEPTH", "JSONSerializer", "Serializer"]

#: Containers nested deeper than this (the session dict counts as one) are refused.
MAX_DEPTH = 512

_orjson: Any
try:  # orjson is several times faster; the stdlib is the fallback, not a requirement.
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised where orjson is absent
    _orjson = None
# orjson would turn datetimes and dataclasses into strings and dicts silently; refuse them like json does.
_ORJSON_STRICT = _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_DATACLASS if _orjson else 0
# Leads what the standard library writes: orjson would read its integers beyond 64 bits as floats.
_REFERENCE_MARK = " "
_REFERENCE_MARK_BYTE = _REFERENCE_MARK.encode()
_SCALARS = frozenset({str, int, float, bool, type(None)})


@runtime_checkable
class Serializer(Protocol):
    def dumps(self, data: Mapping[str, Any]) -> bytes: ...

    def loads(self, payload: bytes) -> dict[str, Any]: ...


def _default(value: Any) -> Any:
    """What json does with the two types orjson writes natively: the same as orjson."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _check(value: Any, depth: int) -> None:
    """Refuse what json would accept but not read back as written: non-str keys; and too deep a nesting."""
    if depth > MAX_DEPTH:
        raise SerializationError(f"session data is not JSON-serializable: nested deeper than {MAX_DEPTH} levels",
                                 operation="encode")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(
                    f"session data is not JSON-serializable: dict keys must be str, not {type(key).__name__}",
                    operation="encode",
                )
            if type(item) not in _SCALARS:
                _check(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            if type(item) not in _SCALARS:
                _check(item, depth + 1)
    elif isinstance(value, enum.Enum):
        _check(value.value, depth)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Built once: json.dumps/json.loads with options build a new encoder/decoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default)
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _stdlib_dumps(data: Mapping[str, Any]) -> bytes:
    """The reference behaviour: json with orjson's two conversions, after the checks json lacks."""
    _check(data, 1)
    try:
        return (_REFERENCE_MARK + _ENCODER.encode(data)).encode()
    except (TypeError, ValueError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
        raise SerializationError(f"session data is not JSON-serializable: {exc}", operation="encode") from exc


def _stdlib_loads(payload: bytes) -> Any:
    try:
        return _DECODER.decode(payload.decode())  # UTF-8 only, as orjson reads
    except RecursionError as exc:
        raise SerializationError("stored session payload is nested too deeply", operation="decode") from exc


class JSONSerializer:
    """Compact UTF-8 JSON; uses orjson when it is installed, with the same results as without.

    The module docstring has the table of what is stored and what is refused
    with ``SerializationError`` (at save time, so a bad value never reaches the
    store). ``use_orjson=False`` forces the standard library; ``True`` requires
    orjson.
    """

    def __init__(self, *, use_orjson: bool | None = None) -> None:
        self._orjson = _orjson if use_orjson in (None, True) else None
        if use_orjson and _orjson is None:
            raise ImportError('orjson is not installed: pip install "fastapi-sessions[orjson]"')

    def dumps(self, data: Mapping[str, Any]) -> bytes:
        if self._orjson is None:
            return _stdlib_dumps(data)
        try:
            payload: bytes = self._orjson.dumps(data, option=_ORJSON_STRICT)
        except TypeError:  # orjson.JSONEncodeError: the reference decides (and raises if it refuses too)
            return _stdlib_dumps(data)
        # A null may be a NaN or an Infinity orjson wrote as null: if so, the data does not read back equal.
        if payload.find(b"null") >= 0 and self._orjson.loads(payload) != data:  # find: faster than in
            _stdlib_dumps(data)  # raises for NaN; otherwise (a tuple, say) orjson's output stands
        # orjson's bytes keep its whole output buffer (4 KiB for a 20-byte payload, 240 KiB for a
        # 20 KiB one) for as long as they live; an exact-size copy lets it go.
        return bytes(memoryview(payload))

    def loads(self, payload: bytes) -> dict[str, Any]:
        try:
            if self._orjson is not None and payload[:1] != _REFERENCE_MARK_BYTE:
                data = self._orjson.loads(payload)
            else:
                data = _stdlib_loads(payload)
        except ValueError as exc:  # orjson.JSONDecodeError and json's both subclass it
            raise SerializationError("stored session payload is not valid JSON", operation="decode") from exc
        if not isinstance(data, dict):
            raise SerializationError("stored session payload is not a JSON object", operation="decode")
        return data
