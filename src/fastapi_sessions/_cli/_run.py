"""What the commands do to a backend, apart from how it is shown: purge in batches, counts, a user's sessions.

Nothing here knows Typer or Rich; the commands in ``_app.py`` pass callbacks
for progress. Every operation judges by one ``now``, read once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote, urlsplit

from .._core.contract import SessionBackend, SupportsBatchedPurge, SupportsRecordCounts
from .._core.markers import read_marker
from .._core.records import RecordCounts, SessionInfo
from .._core.registry import mask_url

__all__ = ["PurgeReport", "Scrubber", "counts", "native_expiry_note", "purge", "user_sessions"]


class Scrubber:
    """Masks one URL's password in any text: the URL itself, and the password wherever it shows up.

    Errors and output go through it, so a driver's message that quotes the
    URL, or a decoded password, never reaches the terminal.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.masked = mask_url(url)
        secrets: set[str] = set()
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password:
            secrets |= {password, unquote(password)}
        # Shorter ones would mask ordinary words; the URL itself is replaced whole anyway.
        self._secrets = sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        if self.url and self.url != self.masked:
            text = text.replace(self.url, self.masked)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


@dataclass(frozen=True)
class PurgeReport:
    """What a purge did: ``removed`` records, whether in ``batches``, and the ``expected`` count if known."""

    removed: int
    batched: bool
    expected: int | None


async def counts(backend: SessionBackend, now: datetime) -> RecordCounts | None:
    """The backend's record counts at ``now``, or ``None`` if it cannot tell."""
    if isinstance(backend, SupportsRecordCounts):
        return await backend.count_records(now=now)
    return None


async def purge(
    backend: SessionBackend,
    now: datetime,
    *,
    batch_size: int,
    started: Callable[[int | None, bool], None] = lambda expected, batched: None,
    advanced: Callable[[int], None] = lambda removed: None,
) -> PurgeReport:
    """Remove what is expired at ``now``: in batches of ``batch_size`` when the backend can, else in one call.

    ``started(expected, batched)`` is called first, with the number of expired
    records when the backend counts them; ``advanced(n)`` after each step that
    removed ``n``.
    """
    found = await counts(backend, now)
    expected = None if found is None else found.expired
    if not isinstance(backend, SupportsBatchedPurge):
        started(expected, False)
        removed = await backend.purge_expired(now=now)
        advanced(removed)
        return PurgeReport(removed, False, expected)
    started(expected, True)
    removed = 0
    while True:
        step = await backend.purge_expired_batch(batch_size, now=now)
        removed += step
        if step:
            advanced(step)
        if step < batch_size:
            return PurgeReport(removed, True, expected)


async def user_sessions(backend: SessionBackend, user_id: str, now: datetime) -> list[SessionInfo]:
    """The user's live sessions at ``now`` (metadata only), oldest first, as ``SessionManager.list_sessions``."""
    records = await backend.list_by_user(user_id, now=now)
    infos = [SessionInfo.of(r) for r in records if r.expires_at > now and read_marker(r.payload) is None]
    return sorted(infos, key=lambda info: info.created_at)


def native_expiry_note(backend: SessionBackend) -> str | None:
    """For a store that expires sessions by itself, what purge and stats mean there."""
    if type(backend).__module__.startswith("fastapi_sessions.backends.redis"):
        return ("Redis expires sessions by itself (key TTLs): a purge only drops stale per-user index entries, "
                "and it cannot count records without scanning every key")
    return None
