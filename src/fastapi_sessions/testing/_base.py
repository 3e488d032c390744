"""What every part of the kit shares: capabilities, the subclass's hooks, record helpers, skips."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar

import pytest
import pytest_asyncio

from .._core.contract import SessionBackend, SupportsReadAndTouch
from .._core.records import SessionRecord
from .._core.tokens import new_token, storage_key
from ._report import kit_report

__all__ = ["NOW_SKEWS", "SECOND", "Capability", "KitBase", "each_skew", "in_own_loop", "ms", "sorted_keys"]

SECOND = timedelta(seconds=1)
STRICT_VARIABLE = "FASTAPI_SESSIONS_CONFORMANCE_STRICT"


class Capability(StrEnum):
    """What a conformance subclass can provide beyond the backend itself, each enabling some checks.

    A capability a backend cannot have is put in ``not_applicable`` with the reason,
    so strict mode fails only on what was forgotten.
    """

    #: The subclass implements :meth:`BackendConformance.stored_record`, reading the store
    #: directly, so the kit can check that writes land and deletes leave.
    OUT_OF_BAND_READ = "out_of_band_read"
    #: ``purge_expired()`` removes every record expired at ``now`` from the store at once (checked
    #: through ``stored_record``). Not true of a store that expires records itself, later: put it
    #: in ``not_applicable`` then. ``OUT_OF_BAND_READ`` implies it unless it is there, as in kit v1.
    IMMEDIATE_PURGE = "immediate_purge"
    #: ``purge_expired()`` returns the exact number of expired records it removed.
    #: Stores whose server expires records on its own cannot promise that.
    EXACT_PURGE_COUNT = "exact_purge_count"
    #: The subclass provides an ``unreachable_backend`` fixture: the same backend
    #: pointed at a server that does not answer.
    UNREACHABLE_SERVER = "unreachable_server"
    #: Deprecated, and not needed: the kit tests ``read_and_touch`` whenever the backend has
    #: it, as the manager uses it whenever it is there. Declaring it still works; the kit
    #: then also fails a backend that lacks the method.
    READ_AND_TOUCH = "read_and_touch"


#: What strict mode asks a subclass to declare or explain (READ_AND_TOUCH follows the method).
STRICT_CAPABILITIES = (
    Capability.OUT_OF_BAND_READ,
    Capability.IMMEDIATE_PURGE,
    Capability.EXACT_PURGE_COUNT,
    Capability.UNREACHABLE_SERVER,
)


def ms(value: datetime) -> datetime:
    """``value`` cut to milliseconds: some stores keep no more, and the kit's timestamps fit every store."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def sorted_keys(records: Sequence[SessionRecord]) -> list[str]:
    """The keys of ``records``, sorted: a listing may come back in any order."""
    return sorted(r.key for r in records)


#: Every kit test's mark: a loop of its own, whatever the project's default loop scope.
in_own_loop = pytest.mark.asyncio(loop_scope="function")

#: Where the tests of the passed ``now`` put it: the kit's clock (``None``), and three hours
#: either side of the system clock, where an absolute native expiry or a second clock shows.
NOW_SKEWS: dict[str, timedelta | None] = {
    "kit-clock": None,
    "system+3h": timedelta(hours=3),
    "system-3h": timedelta(hours=-3),
}
each_skew = pytest.mark.parametrize("skew", list(NOW_SKEWS.values()), ids=list(NOW_SKEWS))


class KitBase:
    """The hooks a subclass overrides, and the helpers every kit test uses."""

    #: Capabilities this subclass provides (see :class:`Capability`).
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: Capabilities this backend cannot have, each with the reason (shown in the skip and the summary).
    not_applicable: ClassVar[Mapping[Capability, str]] = {}
    #: Fail, instead of skipping, the tests of a capability neither declared nor marked not applicable.
    strict: ClassVar[bool] = False
    #: Seconds after which the kit's short-lived records expire.
    expiry_delay: ClassVar[float] = 0.5
    #: Seconds :meth:`expire` waits beyond ``expiry_delay``: the store's expiry granularity and lag.
    expiry_margin: ClassVar[float] = 0.3
    #: Keys raced at once by each concurrency test, and how many times. Every key is a separate
    #: race started in both orders, so a check-then-act loses within the first round; raise them
    #: for a store whose calls seldom overlap, lower them where concurrent writers wait on a lock.
    race_keys: ClassVar[int] = 4
    race_rounds: ClassVar[int] = 2

    _kit_test: str = "?"
    _kit_config: pytest.Config | None = None

    # -- what a subclass provides ------------------------------------------------------------

    @pytest_asyncio.fixture(loop_scope="function")
    async def backend(self, *args: Any, **kwargs: Any) -> AsyncIterator[SessionBackend]:
        """Override: yield a ready backend, and close it afterwards. It may take any fixtures."""
        pytest.fail("BackendConformance subclasses must override the async `backend` fixture")
        yield  # pragma: no cover

    @pytest_asyncio.fixture(loop_scope="function")
    async def unreachable_backend(self, *args: Any, **kwargs: Any) -> AsyncIterator[SessionBackend]:
        """Override with ``UNREACHABLE_SERVER``: the backend pointed at a server that does not answer."""
        self.require(Capability.UNREACHABLE_SERVER)  # skips (or fails) when it is not declared
        pytest.fail("declaring UNREACHABLE_SERVER needs an `unreachable_backend` fixture")
        yield  # pragma: no cover

    def now(self) -> datetime:
        """The kit's clock, passed as ``now`` to every call (override with the backend's injected clock).

        It must match the backend's own clock, which judges calls without ``now``.
        """
        return datetime.now(UTC)

    async def advance(self, backend: SessionBackend, seconds: float) -> None:
        """Let ``seconds`` pass for ``backend``; a real sleep unless overridden."""
        await asyncio.sleep(seconds)

    async def stored_record(self, backend: SessionBackend, key: str) -> SessionRecord | None:
        """Read ``key`` straight from the store, bypassing ``backend`` (``OUT_OF_BAND_READ``).

        Return what is physically stored, expired or not, or ``None``.
        """
        raise NotImplementedError

    async def expire(self, backend: SessionBackend) -> None:
        """Let every short-lived record of this test expire: ``advance`` by ``expiry_delay + expiry_margin``."""
        await self.advance(backend, self.expiry_delay + self.expiry_margin)

    # -- set-up the kit does itself ----------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _conformance_kit(self, request: pytest.FixtureRequest) -> None:
        """Check the subclass's declarations, name the running test for skips, feed the summary."""
        cls = type(self)
        self._kit_test = f"{cls.__name__}::{request.node.name}"
        self._kit_config = request.config
        both = set(self.capabilities) & set(self.not_applicable)
        if both:
            pytest.fail(f"{cls.__name__} declares {sorted(both)} both as capabilities and as not applicable")
        unexplained = [c.value for c, why in self.not_applicable.items() if not str(why).strip()]
        if unexplained:
            pytest.fail(f"{cls.__name__}: not_applicable needs a reason for each capability: {unexplained}")
        if Capability.IMMEDIATE_PURGE in self.capabilities and Capability.OUT_OF_BAND_READ not in self.capabilities:
            pytest.fail(f"{cls.__name__}: IMMEDIATE_PURGE is checked through stored_record: declare OUT_OF_BAND_READ")
        entry = kit_report(request.config).entry(cls.__name__)
        if not entry.declared:
            provided = self.provided()
            entry.declared = sorted(c.value for c in provided)
            entry.not_applicable = {c.value: why for c, why in self.not_applicable.items()}
            entry.undeclared = [c.value for c in STRICT_CAPABILITIES
                                if c not in provided and c not in self.not_applicable]

    def report_optional(self, method: str, state: str) -> None:
        """Say in the kit's summary what became of an optional method (tested, absent, ...)."""
        config = self._kit_config
        if config is not None:
            kit_report(config).entry(type(self).__name__).optional[method] = state

    # -- helpers -----------------------------------------------------------------------------

    def is_strict(self) -> bool:
        return self.strict or os.environ.get(STRICT_VARIABLE) == "1"

    def provided(self) -> frozenset[Capability]:
        """The declared capabilities, with ``IMMEDIATE_PURGE`` implied by ``OUT_OF_BAND_READ`` (kit v1's meaning)."""
        implied = (Capability.OUT_OF_BAND_READ in self.capabilities
                   and Capability.IMMEDIATE_PURGE not in self.not_applicable)
        return self.capabilities | {Capability.IMMEDIATE_PURGE} if implied else frozenset(self.capabilities)

    def require(self, capability: Capability) -> None:
        """Return if ``capability`` is provided; else skip this test, naming it (or fail under strict)."""
        if capability in self.provided():
            return
        why = self.not_applicable.get(capability)
        if why is not None:
            pytest.skip(f"{self._kit_test}: capability {capability.value!r} is not applicable: {why}")
        message = f"{self._kit_test}: backend does not declare capability {capability.value!r}"
        if self.is_strict() and capability in STRICT_CAPABILITIES:
            pytest.fail(f"{message} (strict: declare it, or list it in `not_applicable` with the reason)")
        pytest.skip(message)

    def fused(self, backend: SessionBackend) -> SupportsReadAndTouch:
        """``backend`` as a ``read_and_touch`` backend, or skip: the kit tests the method whenever it exists."""
        if isinstance(backend, SupportsReadAndTouch):  # the manager's own test: the method is there
            self.report_optional("read_and_touch", "tested (the manager's fused read)")
            return backend
        self.report_optional("read_and_touch", "absent (the manager uses read + touch)")
        if Capability.READ_AND_TOUCH in self.capabilities:
            pytest.fail(f"{self._kit_test}: READ_AND_TOUCH is declared but the backend has no read_and_touch()")
        pytest.skip(f"{self._kit_test}: the backend has no read_and_touch() (optional: the manager then "
                    f"uses read() and touch())")

    @staticmethod
    def new_key() -> str:
        return storage_key(new_token())

    @staticmethod
    def new_user() -> str:
        return f"user-{uuid.uuid4().hex}"

    def record(
        self,
        *,
        key: str | None = None,
        payload: bytes = b'{"n":1}',
        user_id: str | None = None,
        ttl: float = 3600,
    ) -> SessionRecord:
        """A record created at :meth:`now` (to the millisecond) that expires ``ttl`` seconds later."""
        now = ms(self.now())
        return SessionRecord(
            key=key or self.new_key(),
            payload=payload,
            user_id=user_id,
            created_at=now,
            expires_at=ms(now + timedelta(seconds=ttl)),
            version=1,
        )

    def start(self, skew: timedelta | None) -> datetime:
        """Where a test of the passed ``now`` starts its clock: the kit's, or the system's plus ``skew``."""
        return ms(self.now() if skew is None else datetime.now(UTC) + skew)

    def record_at(
        self, now: datetime, *, key: str | None = None, payload: bytes = b'{"n":1}', user_id: str | None = None,
        ttl: float = 60,
    ) -> SessionRecord:
        """A record created at ``now`` that expires ``ttl`` seconds later."""
        return SessionRecord(key or self.new_key(), payload, user_id, now, now + timedelta(seconds=ttl), 1)

    def short_lived(
        self, *, key: str | None = None, payload: bytes = b'{"n":1}', user_id: str | None = None
    ) -> SessionRecord:
        """A record that :meth:`expire` lets expire."""
        return self.record(key=key, ttl=self.expiry_delay, payload=payload, user_id=user_id)

    @staticmethod
    def _with(record: SessionRecord, payload: bytes, *, expires_at: datetime | None = None) -> SessionRecord:
        return SessionRecord(
            record.key, payload, record.user_id, record.created_at, expires_at or record.expires_at, record.version
        )
