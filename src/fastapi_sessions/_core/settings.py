"""Configuration from the environment (pydantic-settings): one URL is enough.

=====================================  ===========================================================
variable                               meaning (default)
=====================================  ===========================================================
``FASTAPI_SESSIONS_URL``               backend URL (``memory://``)
``FASTAPI_SESSIONS_SECRET_KEY``        the signing key; required except for ``memory://``
``FASTAPI_SESSIONS_SECRET_KEYS``       older keys still accepted, as a JSON list (``[]``)
``FASTAPI_SESSIONS_IDLE_TIMEOUT``      seconds or ISO 8601 duration (1800)
``FASTAPI_SESSIONS_ABSOLUTE_TIMEOUT``  seconds or ISO 8601 duration (28800)
``FASTAPI_SESSIONS_COOKIE_NAME``       (``session``)
``FASTAPI_SESSIONS_COOKIE_SECURE``     (``true``)
``FASTAPI_SESSIONS_COOKIE_SAMESITE``   ``lax``, ``strict`` or ``none`` (``lax``)
``FASTAPI_SESSIONS_COOKIE_DOMAIN``     (none)
``FASTAPI_SESSIONS_COOKIE_PATH``       (``/``)
``FASTAPI_SESSIONS_COOKIE_PARTITIONED`` (``false``)
``FASTAPI_SESSIONS_COOKIE_PERSISTENT`` ``false`` for a browser-session cookie (``true``)
``FASTAPI_SESSIONS_MAX_SESSION_SIZE``  bytes of serialized data per session; ``none`` for no cap (65536)
``FASTAPI_SESSIONS_MAX_SESSIONS_PER_USER`` sessions a user keeps; a login ends the oldest beyond (none)
``FASTAPI_SESSIONS_RECORD_USER_AGENT`` record each login's User-Agent for the device list (``true``)
``FASTAPI_SESSIONS_RECORD_IP``         record each login's client IP: personal data (``false``)
=====================================  ===========================================================
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .registry import mask_url

__all__ = ["SessionSettings"]


def _seconds(value: Any) -> Any:
    """Environment values arrive as text; plain numbers mean seconds."""
    if isinstance(value, str):
        try:
            return timedelta(seconds=float(value))
        except (ValueError, OverflowError):  # "inf", "1e300": pydantic reports them
            return value  # ISO 8601 durations are pydantic's to parse
    return value


Duration = Annotated[timedelta, BeforeValidator(_seconds)]


def _size(value: Any) -> Any:
    """``none`` (or ``off``) turns the cap off."""
    if isinstance(value, str) and value.strip().lower() in ("none", "off", "null"):
        return None
    return value


Size = Annotated[Annotated[int, Field(gt=0)] | None, BeforeValidator(_size)]


class SessionSettings(BaseSettings):
    """Settings read from ``FASTAPI_SESSIONS_*`` variables (and a ``.env`` file if given)."""

    model_config = SettingsConfigDict(env_prefix="FASTAPI_SESSIONS_", extra="ignore")

    url: str = "memory://"
    secret_key: SecretStr | None = None
    secret_keys: list[SecretStr] = []
    idle_timeout: Duration = timedelta(minutes=30)
    absolute_timeout: Duration = timedelta(hours=8)
    cookie_name: str = "session"
    cookie_secure: bool = True
    cookie_samesite: Literal["lax", "strict", "none"] = "lax"
    cookie_domain: str | None = None
    cookie_path: str = "/"
    cookie_partitioned: bool = False
    cookie_persistent: bool = True
    max_session_size: Size = 64 * 1024
    max_sessions_per_user: Size = None
    record_user_agent: bool = True
    record_ip: bool = False

    def __repr_args__(self) -> Any:
        # The URL may carry a password; settings get logged.
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name == "url" else value

    def keys(self) -> list[str]:
        """All signing keys, the signing one first."""
        first = [self.secret_key] if self.secret_key is not None else []
        return [key.get_secret_value() for key in [*first, *self.secret_keys]]
