"""docs/architecture.md stays true: every file it names exists, and every layer it lists is a real package."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
#: A repository path in backticks: it has a slash and a file suffix (``src/.../manager.py``, ``tests/test_x.py``).
PATH = re.compile(r"`((?:src|tests|docs|scripts|examples|benchmarks)/[\w./-]+\.(?:py|md|sh|toml))`")
#: The layer table: ``fastapi_sessions/NAME`` at the start of a line of the first code block.
LAYER = re.compile(r"^fastapi_sessions/([\w./]+)", re.M)


def test_every_file_the_architecture_doc_names_exists() -> None:
    text = DOC.read_text()
    named = sorted(set(PATH.findall(text)))
    assert len(named) >= 20, "the doc names the files of a request's path"
    missing = [path for path in named if not (ROOT / path).is_file()]
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"


def test_every_layer_in_the_table_exists_and_every_subpackage_is_listed() -> None:
    text = DOC.read_text()
    table = text.split("```")[1]
    layers = LAYER.findall(table)
    package = ROOT / "src" / "fastapi_sessions"
    for layer in layers:
        assert (package / layer).exists(), f"the layer table lists {layer}, which does not exist"
    subpackages = {p.name + "/" for p in package.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages <= set(layers), f"subpackages missing from the layer table: {subpackages - set(layers)}"


def test_the_pyproject_and_the_doc_agree_on_the_entry_point_group() -> None:
    assert 'entry-points."fastapi_sessions.backends"' in (ROOT / "pyproject.toml").read_text()
    assert "`fastapi_sessions.backends`" in DOC.read_text()
