"""Session data to bytes and back: JSON only, never pickle."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from .errors import SerializationError

__all__ = ["JSONSerializer", "Serializer"]

_orjson: Any
try:  # orjson is several times faster; the stdlib is the fallback, not a requirement.
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised where orjson is absent
    _orjson = None
# orjson would turn datetimes and dataclasses into strings and dicts silently; refuse them like json does.
_ORJSON_STRICT = _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_DATACLASS if _orjson else 0


@runtime_checkable
class Serializer(Protocol):
    def dumps(self, data: Mapping[str, Any]) -> bytes: ...

    def loads(self, payload: bytes) -> dict[str, Any]: ...


class JSONSerializer:
    """Compact UTF-8 JSON; uses orjson when it is installed.

    Only JSON types round-trip: ``dict`` with string keys, ``list``, ``str``,
    ``int``, ``float``, ``bool`` and ``None``. Anything else is refused with
    ``SerializationError`` when the session is saved, so a bad value never
    reaches the store. Two conversions are orjson's own and cannot be switched
    off without walking the data on every save: it writes NaN and Infinity as
    ``null`` and a ``uuid.UUID`` as its string, where the standard library
    refuses both. Store neither if the code may run without orjson.
    """

    def __init__(self, *, use_orjson: bool | None = None) -> None:
        self._orjson = _orjson if use_orjson in (None, True) else None
        if use_orjson and _orjson is None:
            raise ImportError('orjson is not installed: pip install "fastapi-sessions[orjson]"')

    def dumps(self, data: Mapping[str, Any]) -> bytes:
        try:
            if self._orjson is not None:
                return bytes(self._orjson.dumps(data, option=_ORJSON_STRICT))
            return json.dumps(data, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"session data is not JSON-serializable: {exc}") from exc

    def loads(self, payload: bytes) -> dict[str, Any]:
        try:
            data = self._orjson.loads(payload) if self._orjson is not None else json.loads(payload)
        except ValueError as exc:  # orjson.JSONDecodeError and json's both subclass it
            raise SerializationError("stored session payload is not valid JSON") from exc
        if not isinstance(data, dict):
            raise SerializationError("stored session payload is not a JSON object")
        return data
