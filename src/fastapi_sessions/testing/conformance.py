"""``BackendConformance``: the storage contract as a pytest class any backend can run.

Subclass it in a test module and override one async fixture::

    class TestMyBackend(BackendConformance):
        @pytest_asyncio.fixture(loop_scope="function")
        async def backend(self) -> AsyncIterator[SessionBackend]:
            async with MyBackend("...") as backend:
                yield backend

Every test is marked ``asyncio`` with ``loop_scope="function"``, so the kit runs
under pytest-asyncio's strict mode whatever the project's default loop scope;
give your fixtures the same loop scope. Keys and user ids are random per test,
so a shared server is safe and tests may run in parallel.

One clock decides liveness: the kit passes :meth:`now` as ``now`` to every
call, as the manager passes its clock, and the tests of the passed ``now``
move it by hand, also three hours either side of the system clock, so a
backend that judges by a clock of its own or sets a native expiry as an
absolute time (instead of relative to ``now``) fails them without any
sleeping. One test calls without ``now``: the backend's own clock, which
:meth:`now` must then match.

Physical expiry is exercised with short deadlines: records expire
``expiry_delay`` seconds after the kit creates them and :meth:`expire` lets
that time pass (through :meth:`advance`: a real sleep by default; override it
when the backend takes an injectable clock).

Optional methods are tested whenever the backend has them, as the manager
uses them whenever they are there. Every mutating method is raced against the
others on one key.
Capabilities (:class:`Capability`) are what the *subclass* provides for
further checks; a test needing one the class neither declares nor lists in
``not_applicable`` is skipped with the test's name and the capability's, or
fails when ``strict = True`` (or ``FASTAPI_SESSIONS_CONFORMANCE_STRICT=1``).
A failure names the contract rule that broke and what the backend did
(the rules: ``_rules.py``).

Each theme is a module of its own, read one at a time; :class:`BackendConformance`
composes them, and pytest runs them in this order:

- ``_fused.py``: the optional ``read_and_touch``
- ``_concurrency.py``: races, each mutating method against another on one key
- ``_create_read.py``: the protocol, create and read, expired records
- ``_clock.py``: liveness by the passed ``now``, native expiry, the backend's own clock
- ``_update.py``: update, the compare-and-set
- ``_touch_delete.py``: touch and delete
- ``_user_index.py``: ``list_by_user`` and ``delete_by_user``, odd user ids
- ``_payloads.py``: payload bytes
- ``_purge.py``: ``purge_expired``
- ``_maintenance.py``: the optional ``purge_expired_batch`` and ``count_records``
- ``_out_of_band.py``: what the store holds (``OUT_OF_BAND_READ``)
- ``_failures.py``: an unreachable server, ``aclose``

The hooks a subclass overrides and the helpers every test uses are in ``_base.py``.
"""

from __future__ import annotations

from ._base import NOW_SKEWS as NOW_SKEWS  # this and ODD_USER_IDS: still importable from here
from ._base import Capability, ms
from ._clock import ClockTests
from ._concurrency import ConcurrencyTests
from ._create_read import CreateReadTests
from ._failures import FailureTests
from ._fused import ReadAndTouchTests
from ._maintenance import MaintenanceTests
from ._out_of_band import OutOfBandTests
from ._payloads import PayloadTests
from ._purge import PurgeTests
from ._touch_delete import TouchDeleteTests
from ._update import UpdateTests
from ._user_index import ODD_USER_IDS as ODD_USER_IDS
from ._user_index import UserIndexTests

__all__ = ["BackendConformance", "Capability"]

_ms = ms  # the name kit v1 used


# pytest collects the tests of base classes in reverse MRO order, so the themes are listed
# last first: it runs read_and_touch, the races, then create and read, ..., failures.
class BackendConformance(
    FailureTests,
    OutOfBandTests,
    MaintenanceTests,
    PurgeTests,
    PayloadTests,
    UserIndexTests,
    TouchDeleteTests,
    UpdateTests,
    ClockTests,
    CreateReadTests,
    ConcurrencyTests,
    ReadAndTouchTests,
):
    """The executable specification of ``SessionBackend``. See the module docstring."""
