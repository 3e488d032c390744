"""``fastapi_sessions.testing`` without pytest: an ImportError that names the extra to install."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# Run in a fresh interpreter: this one has pytest imported already.
PROBE = textwrap.dedent(
    """
    import importlib.abc, json, sys

    BLOCKED = set(sys.argv[1].split(","))

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    if sys.argv[2] == "finder":
        sys.meta_path.insert(0, NotInstalled())
    else:
        for name in BLOCKED:
            sys.modules[name] = None  # import of it halted, as if it were not installed
    try:
        import fastapi_sessions.testing
    except ImportError as exc:
        print(json.dumps({"type": [c.__name__ for c in type(exc).__mro__], "name": exc.name, "message": str(exc)}))
    else:
        print(json.dumps(None))
    """
)


@pytest.mark.parametrize("how", ["finder", "sys.modules"])
@pytest.mark.parametrize("blocked", ["pytest,pytest_asyncio", "pytest_asyncio"])
def test_importing_the_kit_without_pytest_names_the_testing_extra(how: str, blocked: str) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, blocked, how], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    caught = json.loads(done.stdout)
    assert caught is not None, "the kit imported without pytest"
    assert "ModuleNotFoundError" in caught["type"] and "ImportError" in caught["type"]
    assert caught["name"] == blocked.split(",")[0]
    assert 'pip install "fastapi-sessions[testing]"' in caught["message"], caught["message"]
    assert "pytest" in caught["message"]


def test_the_kit_imports_with_pytest_installed() -> None:
    done = subprocess.run([sys.executable, "-c", "import fastapi_sessions.testing as t; print(t.__all__)"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "BackendConformance" in done.stdout
