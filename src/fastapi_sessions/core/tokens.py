"""Session tokens: 256 random bits, signed for transport, hashed at rest."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from itsdangerous import BadSignature, Signer
from itsdangerous.encoding import base64_decode, base64_encode

from .errors import ConfigurationError

__all__ = ["TokenSigner", "new_token", "storage_key"]

TOKEN_BYTES = 32  # 256 bits, above OWASP's 64-bit entropy floor with room to spare
_MAX_SIGNED_LENGTH = 512  # a real signed token is under 100 characters


def new_token() -> str:
    """A fresh URL-safe token carrying 256 bits from ``secrets``."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def storage_key(token: str) -> str:
    """The key a token is stored under: SHA-256, so the store never holds a usable token.

    The token has 256 bits of entropy, so an unsalted fast hash is enough: there
    is nothing to brute-force.
    """
    return hashlib.sha256(token.encode()).hexdigest()


SecretKey = str | bytes


class _CachedSigner(Signer):
    """An itsdangerous ``Signer`` that derives each key once instead of on every call."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._derived: dict[bytes, bytes] = {}

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        raw = self.secret_key if secret_key is None else (
            secret_key.encode() if isinstance(secret_key, str) else secret_key)
        try:
            return self._derived[raw]
        except KeyError:
            derived = self._derived[raw] = super().derive_key(raw)
            return derived


class TokenSigner:
    """Signs tokens with the first of ``secret_keys`` and verifies with any of them.

    Rotation: put the new key first and keep the old ones after it for as long
    as their tokens may still be alive; drop them afterwards. Signatures are
    HMAC-SHA256 (itsdangerous ``Signer``, hmac key derivation).
    """

    def __init__(self, secret_keys: SecretKey | Sequence[SecretKey], *, salt: str) -> None:
        keys = [secret_keys] if isinstance(secret_keys, str | bytes) else list(secret_keys)
        if not keys:
            raise ConfigurationError("at least one secret key is required")
        for key in keys:
            if not isinstance(key, str | bytes) or not key:
                raise ConfigurationError("secret keys must be non-empty str or bytes")
        # itsdangerous signs with the *last* key of its list and verifies with all.
        self._signer = _CachedSigner(
            list(reversed(keys)), salt=salt, key_derivation="hmac", digest_method=hashlib.sha256
        )

    def sign(self, token: str) -> str:
        return self._signer.sign(token).decode("ascii")

    def unsign(self, value: str) -> str | None:
        """The token inside a signed value, or ``None`` if it is not one of ours."""
        if not value or len(value) > _MAX_SIGNED_LENGTH or not value.isascii():
            return None
        try:
            token = self._signer.unsign(value).decode("ascii")
        except (BadSignature, UnicodeDecodeError):
            return None
        # itsdangerous decodes base64 leniently (stray padding, unused trailing bits), so several
        # strings would verify; accept only the canonical one we issue: one session, one public id.
        signature = value.rpartition(".")[2]
        if base64_encode(base64_decode(signature)).decode("ascii") != signature:
            return None
        return token
