"""The kit's lines in pytest's summary: per kit class, which optional paths ran and which capabilities applied.

Registered on the running pytest by the kit's own autouse fixture, so a backend
author installs and configures nothing for it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest

from ._rules import RULES

__all__ = ["KitReport", "kit_report"]

PLUGIN_NAME = "fastapi-sessions-conformance-report"


@dataclass
class _ClassReport:
    declared: list[str] = field(default_factory=list)
    not_applicable: dict[str, str] = field(default_factory=dict)
    undeclared: list[str] = field(default_factory=list)
    optional: dict[str, str] = field(default_factory=dict)


class KitReport:
    """Collects what each kit class exercised; prints it after pytest's own summary."""

    def __init__(self) -> None:
        self.classes: dict[str, _ClassReport] = {}

    def entry(self, name: str) -> _ClassReport:
        return self.classes.setdefault(name, _ClassReport())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """A kit test that failed on an exception of the backend's (not an assert) names its rules too."""
        report = yield
        function = getattr(item, "function", None)
        excinfo = call.excinfo
        if (report.when == "call" and report.failed and excinfo is not None and callable(function)
                and function.__module__.startswith("fastapi_sessions.testing")
                and not isinstance(excinfo.value, AssertionError | pytest.fail.Exception)):
            rules = _rules_checked(function)
            addsection = getattr(report.longrepr, "addsection", None)
            if rules and callable(addsection):
                lines = [f"contract rule {rule!r}: {RULES[rule]}" for rule in rules]
                addsection(
                    "fastapi-sessions conformance kit",
                    f"the backend raised {type(excinfo.value).__name__} where this test expected the call to "
                    f"succeed; the test checks:\n  " + "\n  ".join(lines),
                )
        return report

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.classes:
            return
        terminalreporter.section("fastapi-sessions conformance kit", sep="-")
        for name, report in sorted(self.classes.items()):
            parts = [f"{method}: {state}" for method, state in sorted(report.optional.items())]
            parts.append("capabilities: " + (", ".join(report.declared) or "none"))
            if report.not_applicable:
                parts.append("not applicable: " + ", ".join(
                    f"{cap} ({why})" for cap, why in sorted(report.not_applicable.items())))
            if report.undeclared:
                parts.append("undeclared (skipped, fail under strict): " + ", ".join(report.undeclared))
            terminalreporter.write_line(f"{name}: " + "; ".join(parts))


@cache
def _rules_checked(function: Callable[..., Any]) -> list[str]:
    """The rules a kit test names in its failure messages, read from its source."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return []
    return list(dict.fromkeys(re.findall(r'broke\(\s*"([a-z-]+)"', source)))


def kit_report(config: pytest.Config) -> KitReport:
    """The report of this pytest run, registered on first use."""
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if not isinstance(plugin, KitReport):
        plugin = KitReport()
        config.pluginmanager.register(plugin, PLUGIN_NAME)
    return plugin
