"""The package's layout holds: dependencies flow one way between the pipeline's
sub-packages (core <- preparation <- training, serving <- tracking <- workflow <- ml, tuning, promotion <- cli) and no module
imports itself back through others, counting imports made inside functions."""
import ast
from pathlib import Path
from typing import Dict, List, Set

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "sparkdl"

#: Each top-level part of the package and the parts it may import (besides itself).
ALLOWED = {
    "core": set(),
    "preparation": {"core"},
    "training": {"core", "preparation"},
    "serving": {"core", "preparation"},
    "tracking": {"core", "preparation", "training", "serving"},
    "testing": {"core", "training"},
    "workflow": {"core", "preparation", "training", "serving", "tracking"},
    "ml": {"core", "preparation", "training", "serving", "tracking", "workflow"},
    "tuning": {"core", "preparation", "training", "serving", "tracking", "workflow"},
    "promotion": {"core", "preparation", "training", "serving", "tracking", "workflow"},
    "cli": {"core", "preparation", "training", "serving", "tracking", "workflow", "tuning", "promotion"},
    "__init__": set(),
}
#: Old module paths kept so that stored MLflow models and Connect servers' settings load.
SHIMS = {"sparkdl.mlflow_model", "sparkdl.launch", "sparkdl.launch.worker_daemon"}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str, known: Set[str]) -> Set[str]:
    """The sparkdl modules ``path`` imports anywhere in its body (``from a import b``
    counts ``a.b`` where that is a module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block.test)
                 for stmt in block.body for n in ast.walk(stmt)}  # annotations only: no import at run time
    found: Set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known)
    return {m for m in found if m in known and m != name}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def graph(root: Path = PACKAGE) -> Dict[str, Set[str]]:
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    known = set(files)
    return {name: imports_of(path, name, known) for name, path in files.items()}


def part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def direction_violations(g: Dict[str, Set[str]]) -> List[str]:
    bad = []
    for module, deps in sorted(g.items()):
        if module in SHIMS or part(module) not in ALLOWED:
            continue
        for dep in sorted(deps):
            if dep in SHIMS:
                bad.append(f"{module} imports the compatibility shim {dep}")
            elif part(dep) != part(module) and part(dep) not in ALLOWED[part(module)]:
                bad.append(f"{module} ({part(module)}) imports {dep} ({part(dep)})")
    return bad


def cycles(g: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_every_part_of_the_package_is_placed():
    assert {part(m) for m in graph()} - {"datasets"} <= set(ALLOWED) | {"mlflow_model", "launch"}


def test_dependencies_flow_one_way():
    assert direction_violations(graph()) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


@pytest.mark.parametrize("injected", [
    ("core/lake.py", "from sparkdl.core.rundir import RunDir\n"),           # a cycle inside core
    ("core/config/loading.py", "def f():\n    from sparkdl.preparation import ingest\n"),  # core -> prep, in a function
])
def test_the_checks_catch_an_injected_import(tmp_path, injected):
    import shutil

    copy = tmp_path / "sparkdl"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "datasets"))
    target, line = injected
    (copy / target).write_text((copy / target).read_text() + "\n" + line)
    g = graph(copy)
    assert cycles(g) or direction_violations(g)
