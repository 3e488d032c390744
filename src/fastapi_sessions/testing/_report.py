"""The kit's lines in pytest's summary: per kit class, which optional paths ran and which capabilities applied.

Registered on the running pytest by the kit's own autouse fixture, so a backend
author installs and configures nothing for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

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


def kit_report(config: pytest.Config) -> KitReport:
    """The report of this pytest run, registered on first use."""
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if not isinstance(plugin, KitReport):
        plugin = KitReport()
        config.pluginmanager.register(plugin, PLUGIN_NAME)
    return plugin
