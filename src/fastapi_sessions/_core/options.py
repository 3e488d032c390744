"""Checks on the manager's options, made at construction so a bad value fails there, clearly."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ..errors import ConfigurationError
from .clock import Clock
from .registry import _resolve

__all__ = [
    "DEFAULT_MAX_SESSION_SIZE",
    "as_timedelta",
    "check_cap",
    "check_clock",
    "check_manager_options",
    "check_size",
    "is_memory",
    "takes_clock",
]

#: The default cap on a session's serialized data, in bytes.
DEFAULT_MAX_SESSION_SIZE = 64 * 1024


def as_timedelta(value: timedelta | float, name: str) -> timedelta:
    """A positive duration from a ``timedelta`` or a number of seconds."""
    delta = value if isinstance(value, timedelta) else timedelta(seconds=value)
    if delta <= timedelta(0):
        raise ConfigurationError(f"{name} must be positive")
    return delta


def check_size(value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigurationError(f"max_session_size must be a positive number of bytes or None, not {value!r}")
    return value


def check_cap(value: int | None) -> int | None:
    """``max_sessions_per_user``: a positive number of sessions, or ``None`` for no cap."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigurationError(f"max_sessions_per_user must be a positive number of sessions or None, not {value!r}")
    return value


def is_memory(url: str) -> bool:
    return url[:7].lower() == "memory:"


def check_clock(clock: Clock) -> None:
    """A clock must give aware datetimes: a naive one would make every comparison raise later."""
    try:
        reading = clock()
    except Exception as exc:
        raise ConfigurationError(f"the clock failed when called: {type(exc).__name__}: {exc}") from exc
    if not isinstance(reading, datetime) or reading.utcoffset() is None:
        raise ConfigurationError(
            f"clock must return an aware datetime (e.g. datetime.now(UTC)), not {reading!r}"
        )


def takes_clock(url: str) -> bool:
    """Whether the backend factory for ``url`` has a ``clock`` parameter of its own."""
    try:
        return "clock" in inspect.signature(_resolve(url)).parameters
    except (TypeError, ValueError):  # a factory without a signature to inspect
        return False


def check_manager_options(cls: type, options: Mapping[str, Any]) -> None:
    """Refuse, before any backend is built, a keyword the manager does not take: most likely a backend's."""
    parameters = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return  # a subclass that takes anything decides for itself
    own = {name for name, p in parameters.items() if p.kind is not inspect.Parameter.POSITIONAL_ONLY} - {"backend"}
    unexpected = [name for name in options if name not in own]
    if not unexpected:
        return
    # Values only when they cannot be a secret: a password passed here must not show up in the message.
    shown = ", ".join(
        f'"{name}": {options[name]!r}' if options[name] is None or isinstance(options[name], bool | int | float)
        else f'"{name}": ...' for name in unexpected)
    names = ", ".join(repr(name) for name in unexpected)
    valid = ", ".join(sorted(own | {"secret_key", "backend_options"}))
    raise ConfigurationError(
        f"SessionManager got unexpected option{'s' if len(unexpected) > 1 else ''} {names}: options for the "
        f"backend go in backend_options={{{shown}}}; the manager's own options are: {valid}"
    )
