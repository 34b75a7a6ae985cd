"""The shape of the house (issue 19): ``models/`` is the domain and imports nothing of ours
above it; ``tasks/`` (Prefect tasks over the domain) never imports flows or deployments;
``flows/`` never imports deployments. Every import is scanned — inside functions too — and
imports sit at the top of their module unless a comment on the line says why, or the module
says once why its imports wait (``# Imports inside functions: …``: the CLI loads only what a
command needs)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: layer → the packages (ours or Prefect) it must not import
FORBIDDEN = {
    "models": ("tasks", "flows", "deployments", "prefect"),
    "tasks": ("flows", "deployments"),
    "flows": ("deployments",),
    "deployments": (),
}
LAZY_NOTE = "# Imports inside functions:"


def _imports(path: Path):
    """(line number, imported module, at module level?, the source line) of every import."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            yield node.lineno, name, id(node) in top, lines[node.lineno - 1]


def _modules(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", list(FORBIDDEN))
def test_no_layer_imports_one_above_it(layer):
    back = [f"{path.relative_to(ROOT)}:{line} imports {name}"
            for path in _modules(layer) for line, name, _top, _src in _imports(path)
            if name.split(".")[0] in FORBIDDEN[layer]]
    assert not back, "\n".join(back)


@pytest.mark.parametrize("layer", list(FORBIDDEN))
def test_imports_are_at_the_top_unless_a_comment_says_why(layer):
    hidden = []
    for path in _modules(layer):
        if LAZY_NOTE in path.read_text(encoding="utf-8"):
            continue
        hidden += [f"{path.relative_to(ROOT)}:{line} {src.strip()}"
                   for line, _name, top, src in _imports(path) if not top and "#" not in src]
    assert not hidden, "imports inside functions, with no comment saying why:\n" + "\n".join(hidden)


def test_the_scan_sees_an_import_hidden_in_a_function(tmp_path):
    """The scan itself: an import inside a function is found, with its line."""
    path = tmp_path / "m.py"
    path.write_text("import os\n\n\ndef f():\n    from tasks.notify import deliver\n    return deliver\n")
    assert list(_imports(path)) == [(1, "os", True, "import os"),
                                    (5, "tasks.notify", False, "    from tasks.notify import deliver")]
