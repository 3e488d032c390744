"""The conformance kit must fail a broken backend: each variant here breaks one rule of the contract.

Each variant is a subclass of ``InMemoryBackend`` (or of ``Fused``, the same with the
optional ``read_and_touch``) with one method broken, run through a ``BackendConformance``
subclass; the kit tests guarding that rule must fail. A variant that races adds an
``await asyncio.sleep(0)`` where a real store would make a round trip, which is what makes
check-then-act lose. All variants share one pytest run in a subprocess (a fresh interpreter,
so the kit is imported as an installed package is: its assertions must still be rewritten),
running only the kit tests each variant must fail plus one that it must pass; results are read
from JUnit XML. The capability, strictness and report checks run through ``pytester``. The
unbroken backends run the whole kit through the same harness and pass.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

from fastapi_sessions.testing import BackendConformance

pytest_plugins = ["pytester"]

INI = """\
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
"""

MODULE = '''
import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime

import pytest_asyncio

from fastapi_sessions import ManualClock, SessionBackend, SessionNotFound, SessionRecord, utc_now
from fastapi_sessions.backends.in_memory import InMemoryBackend
from fastapi_sessions._core.records import deadline
from fastapi_sessions.testing import BackendConformance, Capability


class Backend(InMemoryBackend):
{body}


class Fused(Backend):
    """With the reference read_and_touch (tests/conftest.py's)."""

    async def read_and_touch(self, key, *, now, idle_timeout, absolute_timeout, refresh_interval):
        record = self._live(key, now)
        if record is None:
            return None, False
        target = deadline(record.created_at, now, idle_timeout=idle_timeout, absolute_timeout=absolute_timeout)
        if target - record.expires_at < refresh_interval:
            return record, False
        record = replace(record, expires_at=target)
        self._store(record)
        return record, True


class TestKit(BackendConformance):
    capabilities = frozenset({capabilities})
    not_applicable = {not_applicable}
    strict = {strict}
    backend_class = Backend

    @pytest_asyncio.fixture(loop_scope="function")
    async def backend(self) -> AsyncIterator[SessionBackend]:
        self.clock = ManualClock(utc_now())
        async with self.backend_class(clock=self.clock) as backend:
            yield backend

    def now(self) -> datetime:
        return self.clock()

    async def advance(self, backend: SessionBackend, seconds: float) -> None:
        self.clock.advance(seconds=seconds)

    async def stored_record(self, backend: SessionBackend, key: str) -> SessionRecord | None:
        return backend._records.get(key)


class TestFusedKit(TestKit):
    backend_class = Fused
{extra}
'''

ALL_CAPABILITIES = "{Capability.OUT_OF_BAND_READ, Capability.IMMEDIATE_PURGE, Capability.EXACT_PURGE_COUNT}"
UNREACHABLE_TEST = "test_unreachable_server_raises_backend_unavailable"
KIT_TESTS = {name for name in dir(BackendConformance) if name.startswith("test_")}
# The plain in-memory backend has no fused read, so these skip throughout (also under strict).
READ_AND_TOUCH_TESTS = {name for name in KIT_TESTS if "read_and_touch" in name}
ABSENT_TO_EVERY_METHOD = "test_expired_records_are_absent_to_every_method"

# name -> (base class, overriding methods, kit tests that must fail)
BROKEN: dict[str, tuple[str, str, set[str]]] = {
    "update-ignores-the-version": (
        "Backend",
        """
        async def update(self, record, expected_version, *, now=None):
            current = await self.read(record.key, now=now)
            return await super().update(record, current.version if current else expected_version, now=now)
        """,
        {
            "test_update_with_a_stale_version_conflicts",
            "test_concurrent_updates_with_one_version_have_exactly_one_winner",
        },
    ),
    "update-checks-then-writes": (
        "Backend",
        """
        async def update(self, record, expected_version, *, now=None):
            current = await self.read(record.key, now=now)
            if current is None:
                raise SessionNotFound("gone")
            if current.version != expected_version:
                from fastapi_sessions import SessionConflict
                raise SessionConflict("changed")
            await asyncio.sleep(0)  # the round trip between the check and the write
            self._store(replace(record, created_at=current.created_at, version=expected_version + 1))
            return expected_version + 1
        """,
        {"test_concurrent_updates_with_one_version_have_exactly_one_winner", "test_race_update_against_delete"},
    ),
    "update-keeps-the-callers-created-at": (
        "Backend",
        """
        async def update(self, record, expected_version, *, now=None):
            version = await super().update(record, expected_version, now=now)
            self._store(replace(record, version=version))
            return version
        """,
        {"test_update_keeps_the_stored_created_at"},
    ),
    "read-returns-expired-records": (
        "Backend",
        """
        async def read(self, key, *, now=None):
            return self._records.get(key)
        """,
        {"test_expired_record_is_never_returned", "test_read_judges_liveness_by_the_passed_now",
         ABSENT_TO_EVERY_METHOD},
    ),
    "delete-by-user-deletes-everyones": (
        "Backend",
        """
        async def delete_by_user(self, user_id, *, now=None):
            count = len(await self.list_by_user(user_id, now=now))
            for key in list(self._records):
                await self.delete(key, now=now)
            return count
        """,
        {"test_delete_by_user_removes_exactly_that_users_sessions"},
    ),
    "delete-by-user-lists-then-deletes": (
        "Backend",
        """
        async def delete_by_user(self, user_id, *, now=None):
            keys = [r.key for r in await self.list_by_user(user_id, now=now)]
            await asyncio.sleep(0)  # the round trip between the listing and the deletes
            return sum(1 for key in keys if await self.delete(key, now=now))
        """,
        {"test_race_delete_by_user_against_an_update_moving_the_user"},
    ),
    "create-overwrites-a-live-record": (
        "Backend",
        """
        async def create(self, record, *, now=None):
            await self.delete(record.key, now=now)
            await super().create(record, now=now)
        """,
        {"test_create_is_insert_only"},
    ),
    "create-checks-then-writes": (
        "Backend",
        """
        async def create(self, record, *, now=None):
            if await self.read(record.key, now=now) is not None:
                from fastapi_sessions import SessionExists
                raise SessionExists("taken")
            await asyncio.sleep(0)  # the round trip between the check and the write
            self._store(replace(record, version=1))
        """,
        {"test_race_create_against_create"},
    ),
    "update-resurrects-missing-records": (
        "Backend",
        """
        async def update(self, record, expected_version, *, now=None):
            if await self.read(record.key, now=now) is None:
                await self.create(record, now=now)
                return expected_version + 1
            return await super().update(record, expected_version, now=now)
        """,
        {
            "test_update_of_an_unknown_key_is_not_found",
            "test_update_never_resurrects_an_expired_record",
            "test_update_never_resurrects_a_deleted_record",
            ABSENT_TO_EVERY_METHOD,
        },
    ),
    "touch-always-says-yes": (
        "Backend",
        """
        async def touch(self, key, expires_at, *, now=None):
            await super().touch(key, expires_at, now=now)
            return True
        """,
        {"test_touch_of_a_missing_or_expired_record_is_false", "test_touch_never_revives_a_deleted_record"},
    ),
    "touch-rewrites-the-record": (
        "Backend",
        """
        async def touch(self, key, expires_at, *, now=None):
            current = await self.read(key, now=now)
            if current is None:
                return False
            await super().update(replace(current, payload=b"{}", expires_at=expires_at), current.version, now=now)
            return True
        """,
        {"test_touch_extends_expiry_without_rewriting"},
    ),
    "touch-reads-then-writes": (
        "Backend",
        """
        async def touch(self, key, expires_at, *, now=None):
            current = await self.read(key, now=now)
            if current is None:
                return False
            await asyncio.sleep(0)  # the round trip between the read and the write
            self._store(replace(current, expires_at=expires_at))
            return True
        """,
        {"test_race_touch_against_delete", "test_race_touch_against_update"},
    ),
    "touch-revives-a-deleted-record": (
        # A delete that leaves the record behind as a tombstone, which touch does not recognise.
        "Backend",
        """
        async def delete(self, key, *, now=None):
            record = self._live(key, now or self._clock())
            if record is not None:
                self._remove(key)
                self.__dict__.setdefault("tombstones", {})[key] = record
            return record is not None

        async def touch(self, key, expires_at, *, now=None):
            if await super().touch(key, expires_at, now=now):
                return True
            dead = self.__dict__.get("tombstones", {}).pop(key, None)
            if dead is None:
                return False
            self._store(replace(dead, expires_at=expires_at))
            return True
        """,
        {"test_touch_never_revives_a_deleted_record", "test_delete_judges_liveness_by_the_passed_now"},
    ),
    "touch-does-not-extend-the-user-index": (
        # An index whose entries keep the expiry of the last create or update, as a sorted set of
        # deadlines would if touch forgot to raise the entry's score.
        "Backend",
        """
        def _until(self):
            return self.__dict__.setdefault("until", {})

        async def create(self, record, *, now=None):
            await super().create(record, now=now)
            self._until()[record.key] = record.expires_at

        async def update(self, record, expected_version, *, now=None):
            version = await super().update(record, expected_version, now=now)
            self._until()[record.key] = record.expires_at
            return version

        async def list_by_user(self, user_id, *, now=None):
            now = now or self._clock()
            listed = await super().list_by_user(user_id, now=now)
            return [r for r in listed if self._until().get(r.key, now) > now]

        async def delete_by_user(self, user_id, *, now=None):
            keys = [r.key for r in await self.list_by_user(user_id, now=now)]
            return sum(1 for key in keys if self._remove(key))
        """,
        {"test_touch_keeps_the_record_listed_for_its_user", "test_touch_extends_expiry_without_rewriting"},
    ),
    "delete-is-not-idempotent": (
        "Backend",
        """
        async def delete(self, key, *, now=None):
            await super().delete(key, now=now)
            return True
        """,
        {"test_delete_is_idempotent", "test_read_never_creates"},
    ),
    "delete-says-true-for-an-expired-record": (
        "Backend",
        """
        async def delete(self, key, *, now=None):
            return self._remove(key)  # present, but not checked for liveness
        """,
        {ABSENT_TO_EVERY_METHOD, "test_delete_judges_liveness_by_the_passed_now"},
    ),
    "list-by-user-includes-other-users": (
        "Backend",
        """
        async def list_by_user(self, user_id, *, now=None):
            return [r for r in self._records.values() if r.user_id is not None]
        """,
        {"test_list_by_user_lists_exactly_that_users_live_sessions"},
    ),
    "list-by-user-includes-expired": (
        "Backend",
        """
        async def list_by_user(self, user_id, *, now=None):
            return [r for r in self._records.values() if r.user_id == user_id]
        """,
        {"test_list_by_user_excludes_expired_and_deleted", "test_list_by_user_judges_liveness_by_the_passed_now"},
    ),
    "purge-miscounts": (
        "Backend",
        """
        async def purge_expired(self, *, now=None):
            await super().purge_expired(now=now)
            return 0
        """,
        {"test_purge_expired_counts_what_it_removed"},
    ),
    "purge-leaves-the-records-for-later": (
        "Backend",
        """
        async def purge_expired(self, *, now=None):
            now = now or self._clock()
            return sum(1 for r in self._records.values() if r.expires_at <= now)  # the store expires them later
        """,
        {"test_purge_physically_removes_expired_records"},
    ),
    # -- the optional maintenance methods, tested because they are there ------------------------
    "batch-purge-ignores-the-limit": (
        "Backend",
        """
        async def purge_expired_batch(self, limit, *, now=None):
            return await self.purge_expired(now=now)
        """,
        {"test_purge_expired_batch_removes_at_most_limit", "test_purge_expired_batch_of_one_leaves_the_rest"},
    ),
    "batch-purge-takes-live-records": (
        "Backend",
        """
        async def purge_expired_batch(self, limit, *, now=None):
            from datetime import timedelta

            return await super().purge_expired_batch(limit, now=(now or self._clock()) + timedelta(hours=2))
        """,
        {"test_purge_expired_batch_removes_at_most_limit"},
    ),
    "counts-by-its-own-clock": (
        "Backend",
        """
        async def count_records(self, *, now=None):
            return await super().count_records()
        """,
        {"test_count_records_counts_expired_at_the_passed_now", "test_count_records_counts_live_at_the_passed_now"},
    ),
    "naive-timestamps": (
        "Backend",
        """
        async def read(self, key, *, now=None):
            record = await super().read(key, now=now)
            if record is None:
                return None
            return replace(record, created_at=record.created_at.replace(tzinfo=None),
                           expires_at=record.expires_at.replace(tzinfo=None))
        """,
        {"test_create_then_read_round_trips_every_field"},
    ),
    "payload-truncated": (
        "Backend",
        """
        async def create(self, record, *, now=None):
            await super().create(replace(record, payload=record.payload[:65536]), now=now)
        """,
        {"test_payload_of_one_mebibyte_round_trips"},
    ),
    "create-keeps-the-given-version": (
        "Backend",
        """
        async def create(self, record, *, now=None):
            await super().create(record, now=now)
            self._data[record.key] = record  # a SessionRecord is stored as given
            self._recent.pop(record.key, None)
        """,
        {"test_create_starts_at_version_one"},
    ),
    "touch-revives-an-expired-record": (
        "Backend",
        """
        async def touch(self, key, expires_at, *, now=None):
            current = self._records.get(key)  # present, but not checked for liveness
            if current is None:
                return False
            self._store(replace(current, expires_at=expires_at))
            return True
        """,
        {"test_touch_of_a_missing_or_expired_record_is_false", "test_touch_judges_liveness_by_the_passed_now",
         ABSENT_TO_EVERY_METHOD},
    ),
    "ignores-the-passed-now": (
        "Backend",
        """
        def _get(self, key, now):
            from fastapi_sessions.backends.in_memory import _us

            return super()._get(key, _us(self._clock()))  # its own clock, whatever the caller passed

        def _current(self, key, now):
            return super()._current(key, self._clock())

        def _reclaim(self, now):
            from fastapi_sessions.backends.in_memory import _us

            return super()._reclaim(_us(self._clock()))
        """,
        {
            "test_read_judges_liveness_by_the_passed_now",
            "test_update_judges_liveness_by_the_passed_now",
            "test_touch_judges_liveness_by_the_passed_now",
            "test_delete_judges_liveness_by_the_passed_now",
            "test_list_by_user_judges_liveness_by_the_passed_now",
            "test_delete_by_user_judges_liveness_by_the_passed_now",
            "test_create_judges_liveness_by_the_passed_now",
        },
    ),
    "absolute-native-expiry": (
        # A store that also drops records itself at expires_at by the system clock (an absolute TTL).
        "Backend",
        """
        def _get(self, key, now):
            from fastapi_sessions.backends.in_memory import _us

            super()._get(key, _us(utc_now()))  # drops the record if the system clock says it expired
            return super()._get(key, now)

        def _current(self, key, now):
            super()._current(key, utc_now())
            return super()._current(key, now)

        async def list_by_user(self, user_id, *, now=None):
            from fastapi_sessions.backends.in_memory import _us

            for key in self._keys_of(user_id):
                self._get(key, _us(utc_now()))
            return await super().list_by_user(user_id, now=now)
        """,
        {
            "test_read_judges_liveness_by_the_passed_now",
            "test_update_judges_liveness_by_the_passed_now",
            "test_native_expiry_is_relative_to_the_passed_now",
        },
    ),
    # -- the optional read_and_touch, tested because it is there (no capability declared) ----------
    "read-and-touch-ignores-the-absolute-deadline": (
        "Fused",
        """
        async def read_and_touch(self, key, *, now, idle_timeout, absolute_timeout, refresh_interval):
            return await super().read_and_touch(key, now=now, idle_timeout=idle_timeout,
                                                absolute_timeout=absolute_timeout * 100,
                                                refresh_interval=refresh_interval)
        """,
        {"test_read_and_touch_never_passes_the_absolute_deadline"},
    ),
    "read-and-touch-returns-idle-expired-records": (
        "Fused",
        """
        async def read_and_touch(self, key, *, now, idle_timeout, absolute_timeout, refresh_interval):
            record = self._records.get(key)  # present, but not checked for liveness
            if record is None:
                return None, False
            return await super().read_and_touch(key, now=min(now, record.expires_at - refresh_interval),
                                                idle_timeout=idle_timeout, absolute_timeout=absolute_timeout,
                                                refresh_interval=refresh_interval)
        """,
        {"test_read_and_touch_of_missing_or_expired_is_none", "test_read_and_touch_judges_by_the_passed_now",
         ABSENT_TO_EVERY_METHOD},
    ),
    "read-and-touch-rewrites-the-version": (
        "Fused",
        """
        async def read_and_touch(self, key, *, now, idle_timeout, absolute_timeout, refresh_interval):
            record, extended = await super().read_and_touch(
                key, now=now, idle_timeout=idle_timeout, absolute_timeout=absolute_timeout,
                refresh_interval=refresh_interval)
            if extended:
                record = replace(record, version=record.version + 1)
                self._store(record)
            return record, extended
        """,
        {"test_read_and_touch_extends_the_idle_deadline_when_due",
         "test_read_and_touch_then_update_still_compares_versions"},
    ),
    "read-and-touch-reads-then-writes": (
        "Fused",
        """
        async def read_and_touch(self, key, *, now, idle_timeout, absolute_timeout, refresh_interval):
            record = self._live(key, now)
            if record is None:
                return None, False
            target = deadline(record.created_at, now, idle_timeout=idle_timeout, absolute_timeout=absolute_timeout)
            if target - record.expires_at < refresh_interval:
                return record, False
            await asyncio.sleep(0)  # the round trip between the read and the write
            record = replace(record, expires_at=target)
            self._store(record)
            return record, True
        """,
        {"test_race_read_and_touch_against_delete", "test_race_read_and_touch_against_update"},
    ),
}


def kit_module(
    body: str = "    pass", *, capabilities: str = ALL_CAPABILITIES, not_applicable: str = "{}", strict: bool = False,
    extra: str = "",
) -> str:
    return MODULE.format(
        body=textwrap.indent(textwrap.dedent(body).strip("\n"), "    "),
        capabilities=capabilities,
        not_applicable=not_applicable,
        strict=strict,
        extra=extra,
    )


def run_kit(pytester: pytest.Pytester, source: str, *args: str) -> pytest.HookRecorder:
    pytester.makeini(INI)
    pytester.makepyfile(test_kit=source)
    return pytester.inline_run("-p", "no:cacheprovider", *args)


def test_name(report: pytest.TestReport) -> str:
    """``TestKit::test_x[param]`` -> ``test_x``."""
    return report.nodeid.rpartition("::")[2].partition("[")[0]


test_name.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def class_suffix(variant: str) -> str:
    return re.sub(r"\W", "_", variant)


BROKEN_CLASS = '''

class Backend_{suffix}({base}):
{body}


class TestBroken_{suffix}(TestKit):
    backend_class = Backend_{suffix}
'''

#: A kit test every broken variant passes: the harness itself works.
SANITY_TEST = "test_satisfies_protocol"


#: Kit subclasses of the correct backend with other declarations: name -> class body.
DECLARED: dict[str, str] = {
    "NoCapabilities": "capabilities = frozenset()",
    "Strict": "capabilities = frozenset({Capability.OUT_OF_BAND_READ})\n    strict = True",
    "StrictExplained": (
        "capabilities = frozenset({Capability.OUT_OF_BAND_READ})\n    strict = True\n"
        "    not_applicable = {Capability.EXACT_PURGE_COUNT: 'the server expires records itself', "
        "Capability.IMMEDIATE_PURGE: 'the server expires records itself, later', "
        "Capability.UNREACHABLE_SERVER: 'no server'}"
    ),
    "DeclaredAndNotApplicable": (
        "capabilities = frozenset({Capability.EXACT_PURGE_COUNT})\n"
        "    not_applicable = {Capability.EXACT_PURGE_COUNT: 'why'}"
    ),
    "NoReason": "capabilities = frozenset()\n    not_applicable = {Capability.EXACT_PURGE_COUNT: ' '}",
    "ImmediatePurgeAlone": "capabilities = frozenset({Capability.IMMEDIATE_PURGE})",
    "ReadAndTouchDeclared": "capabilities = frozenset({Capability.READ_AND_TOUCH})",
}

UNREACHABLE = """

class Unreachable_{suffix}(InMemoryBackend):
    # Every call raises BackendUnavailable, except {silent!r}, which pretends all is well, and {leak!r},
    # which lets a raw TimeoutError out.

    async def read_and_touch(self, key, **kwargs):
        return None, False

    def __getattribute__(self, name):
        if name == {leak!r}:
            async def leaked(*args, **kwargs):
                raise TimeoutError("timed out")
            return leaked
        if name in {{"create", "read", "update", "touch", "delete", "list_by_user", "delete_by_user",
                     "purge_expired", "read_and_touch", "purge_expired_batch", "count_records"}} - {{{silent!r}}}:
            async def unavailable(*args, **kwargs):
                raise BackendUnavailable("connection refused")
            return unavailable
        return super().__getattribute__(name)


class TestUnreachable_{suffix}(TestKit):
    capabilities = frozenset({{Capability.UNREACHABLE_SERVER}})

    def now(self):
        return utc_now()  # this test uses no `backend`, so no injected clock

    @pytest_asyncio.fixture(loop_scope="function")
    async def unreachable_backend(self):
        async with Unreachable_{suffix}() as backend:
            yield backend
"""

#: id -> (method that pretends all is well, method that leaks a raw TimeoutError, the kit test's outcome)
UNREACHABLE_CASES: dict[str, tuple[str, str, str]] = {
    "all-mapped": ("", "", "passed"),
    "read-silent": ("read", "", "failure"),
    "purge-silent": ("purge_expired", "", "failure"),
    "read-and-touch-silent": ("read_and_touch", "", "failure"),
    "count-records-silent": ("count_records", "", "failure"),
    "batch-purge-leaks-timeout": ("", "purge_expired_batch", "failure"),
    "read-and-touch-leaks-timeout": ("", "read_and_touch", "failure"),
    "create-leaks-timeout": ("", "create", "failure"),
}

Results = dict[str, dict[str, dict[str, str]]]


@pytest.fixture(scope="module")
def kit_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Results, list[str]]:
    """One pytest run in a fresh interpreter of everything below; outcome -> test -> failure text, per class.

    The unbroken backends go through the whole kit, each broken variant through the tests it must
    fail (and one it must pass), the other declarations and unreachable stores through what they
    change. Returns the results and the run's output lines (``-rs``, the kit's summary).
    """
    root = tmp_path_factory.mktemp("kit_run")
    (root / "pytest.ini").write_text(INI)
    source = kit_module(extra="from fastapi_sessions import BackendUnavailable\n")
    source += "".join(
        BROKEN_CLASS.format(suffix=class_suffix(v), base=base,
                            body=textwrap.indent(textwrap.dedent(b).strip("\n"), "    "))
        for v, (base, b, _) in BROKEN.items()
    )
    source += "".join(f"\n\nclass Test{name}(TestKit):\n    {body}\n" for name, body in DECLARED.items())
    source += "".join(UNREACHABLE.format(suffix=class_suffix(case), silent=silent, leak=leak)
                      for case, (silent, leak, _) in UNREACHABLE_CASES.items())
    (root / "test_kit.py").write_text(source)
    selected = ["test_kit.py::TestKit", "test_kit.py::TestFusedKit", "test_kit.py::TestNoCapabilities",
                "test_kit.py::TestStrict", "test_kit.py::TestStrictExplained"]
    for variant, (_, _, must_fail) in BROKEN.items():
        selected += [f"test_kit.py::TestBroken_{class_suffix(variant)}::{name}"
                     for name in sorted(must_fail | {SANITY_TEST})]
    for name in ("DeclaredAndNotApplicable", "NoReason", "ImmediatePurgeAlone"):
        selected.append(f"test_kit.py::Test{name}::test_create_then_read_round_trips_every_field")
    selected += [f"test_kit.py::TestReadAndTouchDeclared::{name}" for name in sorted(READ_AND_TOUCH_TESTS)]
    selected += [f"test_kit.py::TestUnreachable_{class_suffix(case)}::{UNREACHABLE_TEST}"
                 for case in UNREACHABLE_CASES]
    report = root / "report.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", f"--junitxml={report}", *selected],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.exists(), done.stdout + done.stderr
    results: Results = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        cls = case.get("classname", "").rpartition(".")[2]
        found = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        outcome = "passed" if found is None else found.tag
        text = "" if found is None else (found.get("message", "") + "\n" + (found.text or ""))
        name = case.get("name", "").partition("[")[0]
        results.setdefault(cls, {}).setdefault(outcome, {})[name] = text
    return results, done.stdout.splitlines()


@pytest.fixture(scope="module")
def broken_results(kit_run: tuple[Results, list[str]]) -> Results:
    return kit_run[0]


def test_the_harness_passes_the_unbroken_backends(broken_results: Results) -> None:
    """The base classes of the broken variants, unbroken, pass the whole kit: failures are the variants' own."""
    plain, fused = broken_results["TestKit"], broken_results["TestFusedKit"]
    assert set(plain) <= {"passed", "skipped"}, plain.get("failure")
    # Only the undeclared UNREACHABLE_SERVER and the absent read_and_touch are skipped.
    assert set(plain["skipped"]) == {UNREACHABLE_TEST, *READ_AND_TOUCH_TESTS}
    assert len(plain["passed"]) > 40  # distinct test names
    assert set(fused) <= {"passed", "skipped"}, fused.get("failure")
    assert set(fused["skipped"]) == {UNREACHABLE_TEST}  # read_and_touch is there, so it is tested
    assert set(fused["passed"]) >= READ_AND_TOUCH_TESTS


@pytest.mark.parametrize("variant", sorted(BROKEN))
def test_the_kit_fails_a_broken_backend(broken_results: Results, variant: str) -> None:
    _, _, must_fail = BROKEN[variant]
    outcomes = broken_results[f"TestBroken_{class_suffix(variant)}"]
    failed = set(outcomes.get("failure", {})) | set(outcomes.get("error", {}))
    assert must_fail <= failed, f"{variant}: the kit failed only {sorted(failed)}"
    assert SANITY_TEST in outcomes.get("passed", {}), "the harness itself is broken: nothing passed"
    for name in must_fail:
        text = outcomes.get("failure", {}).get(name, "")
        assert "contract rule '" in text, f"{variant}: {name} failed without naming a rule:\n{text}"


def test_failures_name_the_rule_and_show_what_was_seen(broken_results: Results) -> None:
    """In a fresh interpreter the kit's asserts are rewritten: the message has the rule and pytest's detail."""
    text = broken_results["TestBroken_create_checks_then_writes"]["failure"]["test_race_create_against_create"]
    assert "contract rule 'atomic' broken: each operation is atomic on its key" in text
    assert "seen: two create() of one key at once: results [None, None]" in text
    assert "assert 2 == 1" in text and "where 2 = len(" in text  # rewritten, not a bare AssertionError


def test_every_module_of_the_kit_has_its_asserts_rewritten() -> None:
    """Each theme module is registered in testing/__init__.py: one left out would fail with a bare assert."""
    modules = {cls.__module__ for cls in BackendConformance.__mro__ if cls.__module__.startswith("fastapi_sessions.")}
    assert len(modules) > 5, modules
    # pytest's rewriter binds @py_builtins in every module it rewrites.
    plain = sorted(name for name in modules if "@py_builtins" not in vars(sys.modules[name]))
    assert plain == [], f"not registered with pytest.register_assert_rewrite: {plain}"


def test_an_unexpected_exception_names_the_rules_the_test_checks(broken_results: Results) -> None:
    failures = broken_results["TestBroken_absolute_native_expiry"]["failure"]
    text = failures["test_update_judges_liveness_by_the_passed_now"]
    assert "the backend raised SessionNotFound where this test expected the call to succeed" in text
    assert "contract rule 'one-clock': liveness is judged by the `now` the caller passes" in text


def test_a_missing_capability_skips_naming_the_test_and_the_capability(broken_results: Results) -> None:
    outcomes = broken_results["TestNoCapabilities"]
    assert set(outcomes) == {"passed", "skipped"}, outcomes.get("failure")
    reasons = outcomes["skipped"]
    assert set(reasons) == {
        "test_purge_expired_counts_what_it_removed",
        "test_writes_really_land_in_the_store",
        "test_purge_physically_removes_expired_records",
        UNREACHABLE_TEST,
        *READ_AND_TOUCH_TESTS,
    }
    purge_count = reasons["test_purge_expired_counts_what_it_removed"]
    assert "TestNoCapabilities::test_purge_expired_counts_what_it_removed: " in purge_count
    assert "backend does not declare capability 'exact_purge_count'" in purge_count
    assert "out_of_band_read" in reasons["test_writes_really_land_in_the_store"]
    assert "unreachable_server" in reasons[UNREACHABLE_TEST]
    assert "has no read_and_touch()" in reasons["test_read_and_touch_extends_the_idle_deadline_when_due"]


def test_skip_reasons_in_the_summary_name_each_test(kit_run: tuple[Results, list[str]]) -> None:
    lines = [line for line in kit_run[1] if line.startswith("SKIPPED")]
    for name in ("test_purge_expired_counts_what_it_removed", "test_writes_really_land_in_the_store",
                 "test_read_and_touch_of_a_deleted_record_is_none"):
        assert any(f"TestNoCapabilities::{name}: " in line for line in lines), lines


def test_the_summary_says_which_optional_paths_ran(kit_run: tuple[Results, list[str]]) -> None:
    lines = kit_run[1]
    assert any("fastapi-sessions conformance kit" in line for line in lines)
    assert (
        "TestFusedKit: count_records: tested; purge_expired_batch: tested; read_and_touch: tested (the manager's "
        "fused read); capabilities: exact_purge_count, "
        "immediate_purge, out_of_band_read; undeclared (skipped, fail under strict): unreachable_server"
    ) in lines
    assert any(line.startswith("TestKit: count_records: tested; purge_expired_batch: tested; read_and_touch: absent "
                               "(the manager uses read + touch);") for line in lines)
    assert any(line.startswith("TestStrictExplained: ") and "not applicable: exact_purge_count (the server expires "
               "records itself)" in line for line in lines)
    assert any(line.startswith("TestUnreachable_all_mapped: ") and "read_and_touch errors: tested" in line
               for line in lines)


def test_a_missing_capability_fails_under_strict(broken_results: Results) -> None:
    outcomes = broken_results["TestStrict"]
    # An absent optional method is no capability: its tests still skip.
    assert set(outcomes["skipped"]) == READ_AND_TOUCH_TESTS
    messages = {**outcomes["failure"], **outcomes.get("error", {})}  # the unreachable one fails in its fixture
    # OUT_OF_BAND_READ implies IMMEDIATE_PURGE, as in kit v1: its test passes.
    assert "test_purge_physically_removes_expired_records" in outcomes["passed"]
    assert set(messages) == {"test_purge_expired_counts_what_it_removed", UNREACHABLE_TEST}
    assert "exact_purge_count" in messages["test_purge_expired_counts_what_it_removed"]
    assert "not_applicable" in messages["test_purge_expired_counts_what_it_removed"]
    assert "unreachable_server" in messages[UNREACHABLE_TEST]


def test_strict_passes_when_every_missing_capability_is_explained(broken_results: Results) -> None:
    outcomes = broken_results["TestStrictExplained"]
    assert set(outcomes) == {"passed", "skipped"}, outcomes.get("failure")
    reasons = outcomes["skipped"]
    assert set(reasons) == {
        "test_purge_expired_counts_what_it_removed",
        "test_purge_physically_removes_expired_records",
        UNREACHABLE_TEST,
        *READ_AND_TOUCH_TESTS,
    }
    assert "not applicable: the server expires records itself" in reasons["test_purge_expired_counts_what_it_removed"]


def test_the_strict_environment_variable_also_fails_missing_capabilities(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTAPI_SESSIONS_CONFORMANCE_STRICT", "1")
    reprec = run_kit(pytester, kit_module(), "-k", "TestKit and not TestFusedKit and (unreachable or read_and_touch "
                     "or purge)")
    _, skipped, failed = reprec.listoutcomes()
    assert {test_name(r) for r in skipped} == READ_AND_TOUCH_TESTS
    assert {test_name(r) for r in failed} == {UNREACHABLE_TEST}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("DeclaredAndNotApplicable", "both as capabilities and as not applicable"),
        ("NoReason", "not_applicable needs a reason"),
        ("ImmediatePurgeAlone", "IMMEDIATE_PURGE is checked through stored_record"),
    ],
)
def test_contradictory_declarations_fail(broken_results: Results, name: str, message: str) -> None:
    failures = broken_results[f"Test{name}"].get("error", {})
    assert set(failures) == {"test_create_then_read_round_trips_every_field"}
    assert message in failures["test_create_then_read_round_trips_every_field"]


def test_declaring_read_and_touch_without_the_method_fails(broken_results: Results) -> None:
    """The deprecated capability still works: declared, the method must be there."""
    failures = broken_results["TestReadAndTouchDeclared"].get("failure", {})
    assert set(failures) == READ_AND_TOUCH_TESTS
    assert all("READ_AND_TOUCH is declared but the backend has no read_and_touch()" in t for t in failures.values())


@pytest.mark.parametrize("case", sorted(UNREACHABLE_CASES))
def test_the_unreachable_server_test_catches_swallowed_and_leaked_errors(broken_results: Results, case: str) -> None:
    _, leak, outcome = UNREACHABLE_CASES[case]
    outcomes = broken_results[f"TestUnreachable_{class_suffix(case)}"]
    assert set(outcomes) == {outcome}
    if leak:
        text = outcomes[outcome][UNREACHABLE_TEST]
        assert "contract rule 'errors-mapped' broken" in text
        assert f"{leak}() raised builtins.TimeoutError: timed out" in text


def test_the_kit_fails_when_the_backend_fixture_is_not_overridden(pytester: pytest.Pytester) -> None:
    source = textwrap.dedent(
        """
        from fastapi_sessions.testing import BackendConformance

        class TestForgotten(BackendConformance):
            pass
        """
    )
    reprec = run_kit(pytester, source, "-k", "round_trips or satisfies")
    _, _, failed = reprec.listoutcomes()
    assert failed and all(r.when == "setup" for r in failed)
    assert all("must override the async `backend` fixture" in r.longreprtext for r in failed)
