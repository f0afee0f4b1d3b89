"""The package's layering, drawn from its own imports (``ast``, lazy imports included).

ARCHITECTURE.md states the layers; this test holds the code to them: every module sits in
a named layer, an import goes only to a lower layer (or within its own package), and no
two modules import each other, directly or through others.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# top to bottom; a module belongs to the longest prefix listed
LAYERS: list[tuple[str, ...]] = [
    ("cli",),
    ("runner", "audit"),
    ("quality",),
    ("stages",),
    ("serve", "synth", "chat_eval", "report", "release", "artifacts"),
    ("chat",),
    ("model", "text"),
    ("crawl", "tokenizer"),
    ("lineage", "orphans", "registry", "dvcfile", "parallel", "runtime"),
    ("config", "digest", "redact"),
    ("errors", "paths"),
]


def _modules() -> dict[str, Path]:
    found = {}
    for file in (SRC / "crawl2chat").rglob("*.py"):
        parts = file.relative_to(SRC / "crawl2chat").with_suffix("").parts
        name = ".".join(p for p in parts if p != "__init__")
        found[name] = file
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package modules it imports (relative and lazy imports included)."""

    def owner(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    graph: dict[str, set[str]] = {}
    for name, file in modules.items():
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(file.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([p for p in up if p] + ([base] if base else []))
                elif not base.startswith("crawl2chat"):
                    continue
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            for dotted in names:
                local = dotted.removeprefix("crawl2chat").lstrip(".")
                if dotted.startswith("crawl2chat") or node.__class__ is ast.ImportFrom:
                    target = owner(local)
                    if target and target != name and modules[target].name != "__init__.py":
                        targets.add(target)
        graph[name] = targets
    return graph


def _layer(module: str) -> int:
    best, rank = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), len(LAYERS) - index
    return rank


def _top(module: str) -> str:
    return module.split(".")[0]


def test_every_module_sits_in_a_named_layer() -> None:
    unplaced = sorted(m for m in _modules() if m and _layer(m) < 0)
    assert not unplaced, f"add these modules to LAYERS and ARCHITECTURE.md: {unplaced}"


def test_imports_only_go_down_or_stay_inside_their_package() -> None:
    graph = _imports(_modules())
    upward = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets
                    if a and _top(a) != _top(b) and _layer(b) >= _layer(a))
    assert not upward, "imports that do not go down a layer:\n" + "\n".join(upward)


def test_no_import_circles() -> None:
    graph = _imports(_modules())

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), list(graph[start])
        while todo:
            here = todo.pop()
            if here == goal:
                return True
            if here not in seen:
                seen.add(here)
                todo.extend(graph[here])
        return False

    circles = sorted(f"{a} <-> {b}" for a in graph for b in graph[a] if reaches(b, a))
    assert not circles, "modules that import each other:\n" + "\n".join(circles)


def test_the_checker_sees_a_planted_upward_import(tmp_path: Path) -> None:
    """The graph builder finds relative, absolute and lazy imports (so a pass means it)."""
    modules = {"stages.x": tmp_path / "x.py", "runner": tmp_path / "runner.py",
               "model.gpt": tmp_path / "gpt.py"}
    modules["stages.x"].write_text(
        "from crawl2chat.model.gpt import GPT\n"
        "def f():\n    from crawl2chat import runner\n")
    modules["runner"].write_text("")
    modules["model.gpt"].write_text("from ..stages import x\n")
    graph = _imports(modules)
    assert graph["stages.x"] == {"model.gpt", "runner"}
    assert graph["model.gpt"] == {"stages.x"}
