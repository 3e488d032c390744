"""The conformance kit must fail a broken backend: each variant here breaks one rule of the contract.

Each variant is a subclass of ``InMemoryBackend`` with one method broken, run through a
``BackendConformance`` subclass; the kit tests guarding that rule must fail. All variants share
one pytest run in a subprocess (a temporary test module, results read from JUnit XML). The
capability and strictness checks run through ``pytester``. A correct backend run through the
same harness passes.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

pytest_plugins = ["pytester"]

INI = """\
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
"""

MODULE = '''
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime

import pytest_asyncio

from fastapi_sessions import ManualClock, SessionBackend, SessionNotFound, SessionRecord, utc_now
from fastapi_sessions.backends.in_memory import InMemoryBackend
from fastapi_sessions.testing import BackendConformance, Capability


class Backend(InMemoryBackend):
{body}


class TestKit(BackendConformance):
    capabilities = frozenset({capabilities})
    strict = {strict}
    backend_class = Backend

    @pytest_asyncio.fixture
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
{extra}
'''

ALL_CAPABILITIES = "{Capability.OUT_OF_BAND_READ, Capability.EXACT_PURGE_COUNT}"
# The plain in-memory backend has no fused read, so these skip (or fail under strict) throughout.
READ_AND_TOUCH_TESTS = {
    "test_read_and_touch_of_missing_or_expired_is_none",
    "test_read_and_touch_extends_the_idle_deadline_when_due",
    "test_read_and_touch_leaves_a_fresh_deadline_alone",
    "test_read_and_touch_never_passes_the_absolute_deadline",
    "test_read_and_touch_then_update_still_compares_versions",
    "test_read_and_touch_judges_by_the_passed_now",
}

# name -> (overriding methods, kit tests that must fail)
BROKEN: dict[str, tuple[str, set[str]]] = {
    "update-ignores-the-version": (
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
    "read-returns-expired-records": (
        """
        async def read(self, key, *, now=None):
            return self._records.get(key)
        """,
        {"test_expired_record_is_never_returned", "test_read_judges_liveness_by_the_passed_now"},
    ),
    "delete-by-user-deletes-everyones": (
        """
        async def delete_by_user(self, user_id, *, now=None):
            count = len(await self.list_by_user(user_id, now=now))
            for key in list(self._records):
                await self.delete(key, now=now)
            return count
        """,
        {"test_delete_by_user_removes_exactly_that_users_sessions"},
    ),
    "create-overwrites-a-live-record": (
        """
        async def create(self, record, *, now=None):
            await self.delete(record.key, now=now)
            await super().create(record, now=now)
        """,
        {"test_create_is_insert_only"},
    ),
    "update-resurrects-missing-records": (
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
        },
    ),
    "touch-always-says-yes": (
        """
        async def touch(self, key, expires_at, *, now=None):
            await super().touch(key, expires_at, now=now)
            return True
        """,
        {"test_touch_of_a_missing_or_expired_record_is_false"},
    ),
    "touch-rewrites-the-record": (
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
    "delete-is-not-idempotent": (
        """
        async def delete(self, key, *, now=None):
            await super().delete(key, now=now)
            return True
        """,
        {"test_delete_is_idempotent", "test_read_never_creates"},
    ),
    "list-by-user-includes-other-users": (
        """
        async def list_by_user(self, user_id, *, now=None):
            return [r for r in self._records.values() if r.user_id is not None]
        """,
        {"test_list_by_user_lists_exactly_that_users_live_sessions"},
    ),
    "list-by-user-includes-expired": (
        """
        async def list_by_user(self, user_id, *, now=None):
            return [r for r in self._records.values() if r.user_id == user_id]
        """,
        {"test_list_by_user_excludes_expired_and_deleted", "test_list_by_user_judges_liveness_by_the_passed_now"},
    ),
    "purge-miscounts": (
        """
        async def purge_expired(self, *, now=None):
            await super().purge_expired(now=now)
            return 0
        """,
        {"test_purge_expired_counts_what_it_removed"},
    ),
    "naive-timestamps": (
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
        """
        async def create(self, record, *, now=None):
            await super().create(replace(record, payload=record.payload[:65536]), now=now)
        """,
        {"test_payload_of_one_mebibyte_round_trips"},
    ),
    "create-keeps-the-given-version": (
        """
        async def create(self, record, *, now=None):
            await super().create(record, now=now)
            self._data[record.key] = record  # a SessionRecord is stored as given
            self._recent.pop(record.key, None)
        """,
        {"test_create_starts_at_version_one"},
    ),
    "touch-revives-an-expired-record": (
        """
        async def touch(self, key, expires_at, *, now=None):
            current = self._records.get(key)  # present, but not checked for liveness
            if current is None:
                return False
            self._store(replace(current, expires_at=expires_at))
            return True
        """,
        {"test_touch_of_a_missing_or_expired_record_is_false", "test_touch_judges_liveness_by_the_passed_now"},
    ),
    "ignores-the-passed-now": (
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
}


def kit_module(
    body: str = "    pass", *, capabilities: str = ALL_CAPABILITIES, strict: bool = False, extra: str = ""
) -> str:
    return MODULE.format(
        body=textwrap.indent(textwrap.dedent(body).strip("\n"), "    "),
        capabilities=capabilities,
        strict=strict,
        extra=extra,
    )


def run_kit(pytester: pytest.Pytester, source: str) -> pytest.HookRecorder:
    pytester.makeini(INI)
    pytester.makepyfile(test_kit=source)
    return pytester.inline_run("-p", "no:cacheprovider")


def test_name(report: pytest.TestReport) -> str:
    """``TestKit::test_x[param]`` -> ``test_x``."""
    return report.nodeid.rpartition("::")[2].partition("[")[0]


test_name.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def test_a_correct_backend_passes_the_whole_kit(pytester: pytest.Pytester) -> None:
    passed, skipped, failed = run_kit(pytester, kit_module()).listoutcomes()
    assert failed == []
    # Only the undeclared UNREACHABLE_SERVER and READ_AND_TOUCH capabilities are skipped.
    unreachable = "test_unreachable_server_raises_backend_unavailable"
    assert {test_name(r) for r in skipped} == {unreachable, *READ_AND_TOUCH_TESTS}
    assert len(passed) > 40


def class_suffix(variant: str) -> str:
    return re.sub(r"\W", "_", variant)


BROKEN_CLASS = '''

class Backend_{suffix}(Backend):
{body}


class TestBroken_{suffix}(TestKit):
    backend_class = Backend_{suffix}
'''


@pytest.fixture(scope="module")
def broken_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, set[str]]]:
    """Run the kit once against every broken variant; outcome -> kit test names, per variant."""
    root = tmp_path_factory.mktemp("broken_kit")
    (root / "pytest.ini").write_text(INI)
    classes = "".join(
        BROKEN_CLASS.format(suffix=class_suffix(v), body=textwrap.indent(textwrap.dedent(b).strip("\n"), "    "))
        for v, (b, _) in BROKEN.items()
    )
    (root / "test_broken.py").write_text(kit_module() + classes)
    report = root / "report.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={report}", "test_broken.py"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.exists(), done.stdout + done.stderr
    results: dict[str, dict[str, set[str]]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        cls = case.get("classname", "").rpartition(".")[2]
        outcome = next(
            (child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed"
        )
        name = case.get("name", "").partition("[")[0]
        results.setdefault(cls, {}).setdefault(outcome, set()).add(name)
    return results


def test_the_harness_passes_the_unbroken_backend(broken_results: dict[str, dict[str, set[str]]]) -> None:
    """The shared base class of the broken variants, unbroken, passes: failures are the variants' own."""
    assert set(broken_results["TestKit"]) <= {"passed", "skipped"}
    assert broken_results["TestKit"]["skipped"] == {
        "test_unreachable_server_raises_backend_unavailable",
        *READ_AND_TOUCH_TESTS,
    }


@pytest.mark.parametrize("variant", sorted(BROKEN))
def test_the_kit_fails_a_broken_backend(broken_results: dict[str, dict[str, set[str]]], variant: str) -> None:
    _, must_fail = BROKEN[variant]
    outcomes = broken_results[f"TestBroken_{class_suffix(variant)}"]
    failed = outcomes.get("failure", set()) | outcomes.get("error", set())
    assert must_fail <= failed, f"{variant}: the kit failed only {sorted(failed)}"
    assert outcomes.get("passed"), "the harness itself is broken: nothing passed"


def test_a_missing_capability_skips_with_its_name(pytester: pytest.Pytester) -> None:
    reprec = run_kit(pytester, kit_module(capabilities=""))
    _, skipped, failed = reprec.listoutcomes()
    assert failed == []
    reasons = {test_name(r): str(r.longrepr) for r in skipped}
    assert set(reasons) == {
        "test_purge_expired_counts_what_it_removed",
        "test_writes_really_land_in_the_store",
        "test_purge_physically_removes_expired_records",
        "test_unreachable_server_raises_backend_unavailable",
        *READ_AND_TOUCH_TESTS,
    }
    assert "exact_purge_count" in reasons["test_purge_expired_counts_what_it_removed"]
    assert "out_of_band_read" in reasons["test_writes_really_land_in_the_store"]
    assert "unreachable_server" in reasons["test_unreachable_server_raises_backend_unavailable"]


def test_a_missing_capability_fails_under_strict(pytester: pytest.Pytester) -> None:
    reprec = run_kit(pytester, kit_module(capabilities="{Capability.OUT_OF_BAND_READ}", strict=True))
    _, skipped, failed = reprec.listoutcomes()
    assert skipped == []
    messages = {test_name(r): r.longreprtext for r in failed}
    assert set(messages) == {
        "test_purge_expired_counts_what_it_removed",
        "test_unreachable_server_raises_backend_unavailable",
        *READ_AND_TOUCH_TESTS,
    }
    assert "exact_purge_count" in messages["test_purge_expired_counts_what_it_removed"]
    assert "unreachable_server" in messages["test_unreachable_server_raises_backend_unavailable"]


def test_the_strict_environment_variable_also_fails_missing_capabilities(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTAPI_SESSIONS_CONFORMANCE_STRICT", "1")
    _, skipped, failed = run_kit(pytester, kit_module(capabilities=ALL_CAPABILITIES)).listoutcomes()
    assert skipped == []
    unreachable = "test_unreachable_server_raises_backend_unavailable"
    assert {test_name(r) for r in failed} == {unreachable, *READ_AND_TOUCH_TESTS}


UNREACHABLE = '''

class Unreachable(InMemoryBackend):
    """Every call raises BackendUnavailable, except {silent}, which pretends all is well."""

    def __getattribute__(self, name):
        if name in {{"create", "read", "update", "touch", "delete", "list_by_user", "delete_by_user",
                     "purge_expired"}} - {{{silent!r}}}:
            async def unavailable(*args, **kwargs):
                raise BackendUnavailable("connection refused")
            return unavailable
        return super().__getattribute__(name)


class TestUnreachable(TestKit):
    capabilities = frozenset({{Capability.UNREACHABLE_SERVER}})

    def now(self):
        return utc_now()  # this test uses no `backend`, so no injected clock

    @pytest_asyncio.fixture
    async def unreachable_backend(self):
        async with Unreachable() as backend:
            yield backend
'''


@pytest.mark.parametrize(("silent", "outcome"), [("", "passed"), ("read", "failed"), ("purge_expired", "failed")])
def test_the_unreachable_server_test_catches_swallowed_errors(
    pytester: pytest.Pytester, silent: str, outcome: str
) -> None:
    extra = "from fastapi_sessions import BackendUnavailable\n" + UNREACHABLE.format(silent=silent)
    reprec = run_kit(pytester, kit_module(extra=extra))
    reports = [
        r
        for r in reprec.getreports("pytest_runtest_logreport")
        if r.when == "call" and r.nodeid.endswith("TestUnreachable::test_unreachable_server_raises_backend_unavailable")
    ]
    assert [r.outcome for r in reports] == [outcome]


def test_the_kit_fails_when_the_backend_fixture_is_not_overridden(pytester: pytest.Pytester) -> None:
    source = textwrap.dedent(
        """
        from fastapi_sessions.testing import BackendConformance

        class TestForgotten(BackendConformance):
            pass
        """
    )
    _, _, failed = run_kit(pytester, source).listoutcomes()
    assert failed and all(r.when == "setup" for r in failed)
    assert all("must override the async `backend` fixture" in r.longreprtext for r in failed)
