"""Session tokens: 256 random bits, signed for transport, hashed at rest."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from base64 import urlsafe_b64encode
from collections.abc import Sequence

from itsdangerous import Signer

from ..errors import ConfigurationError

__all__ = ["TokenSigner", "new_token", "storage_key"]

TOKEN_BYTES = 32  # 256 bits, above OWASP's 64-bit entropy floor with room to spare
_MAX_SIGNED_LENGTH = 512
_VERIFIED_CACHE_SIZE = 4096  # a real signed token is under 100 characters
MIN_SECRET_BYTES = 32  # an HMAC-SHA256 key shorter than the hash's 32 bytes is weaker than it needs to be

logger = logging.getLogger("fastapi_sessions")


def new_token() -> str:
    """A fresh URL-safe token carrying 256 bits from ``secrets``."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def storage_key(token: str) -> str:
    """The key a token is stored under: SHA-256, so the store never holds a usable token.

    The token has 256 bits of entropy, so an unsalted fast hash is enough: there
    is nothing to brute-force.
    """
    return hashlib.sha256(token.encode()).hexdigest()


_keys: dict[str, str] = {}


def cached_storage_key(token: str) -> str:
    """:func:`storage_key`, remembered for recently seen tokens (bounded), for the per-request path."""
    key = _keys.get(token)
    if key is None:
        if len(_keys) >= _VERIFIED_CACHE_SIZE:
            _keys.clear()
        key = _keys[token] = storage_key(token)
    return key


SecretKey = str | bytes


class TokenSigner:
    """Signs tokens with the first of ``secret_keys`` and verifies with any of them.

    Rotation: put the new key first and keep the old ones after it for as long
    as their tokens may still be alive; drop them afterwards.

    The format is itsdangerous' ``Signer`` with HMAC-SHA256 and hmac key
    derivation: ``token.base64url(hmac)``. Signing goes through itsdangerous;
    verification, which runs on every request, uses pre-keyed HMAC objects and
    accepts only the exact string that signing produces (itsdangerous' own
    base64 decoding would also accept padded or bit-flipped variants of it).
    """

    def __init__(self, secret_keys: SecretKey | Sequence[SecretKey], *, salt: str) -> None:
        keys = [secret_keys] if isinstance(secret_keys, str | bytes) else list(secret_keys)
        if not keys:
            raise ConfigurationError("at least one secret key is required")
        for key in keys:
            if not isinstance(key, str | bytes) or not key:
                raise ConfigurationError("secret keys must be non-empty str or bytes")
        raw = [key.encode() if isinstance(key, str) else key for key in keys]
        short = sum(len(key) < MIN_SECRET_BYTES for key in raw)
        if short:  # never the key itself, nor its length: both help a guesser
            logger.warning("%d of %d secret keys are shorter than %d bytes; use secrets.token_urlsafe(32)",
                           short, len(raw), MIN_SECRET_BYTES)
        # itsdangerous signs with the *last* key of its list and verifies with all.
        self._signer = Signer(raw[::-1], salt=salt, key_derivation="hmac", digest_method=hashlib.sha256)
        self._macs = [hmac.new(self._signer.derive_key(key), digestmod=hashlib.sha256) for key in raw]
        # Exact signed strings already verified, mapped to their token: a returning client
        # skips the HMAC. Only verified strings get in, so a lookup is as strict as a check.
        self._verified: dict[str, str] = {}

    def sign(self, token: str) -> str:
        return self._signer.sign(token).decode("ascii")

    def unsign(self, value: str) -> str | None:
        """The token inside a signed value, or ``None`` if it is not one of ours."""
        cached = self._verified.get(value)
        if cached is not None:
            return cached
        if not value or len(value) > _MAX_SIGNED_LENGTH or not value.isascii():
            return None
        token, dot, signature = value.rpartition(".")
        if not dot or not token:
            return None
        message = token.encode("ascii")
        given = signature.encode("ascii")
        for mac in self._macs:
            expected = mac.copy()
            expected.update(message)
            if hmac.compare_digest(urlsafe_b64encode(expected.digest()).rstrip(b"="), given):
                if len(self._verified) >= _VERIFIED_CACHE_SIZE:
                    self._verified.clear()  # bounded memory; refilling costs one HMAC per client
                self._verified[value] = token
                return token
        return None
