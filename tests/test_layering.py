"""Architecture rules, read from the source: the layers of docs/architecture.md and no import circles.

Imports are read with ``ast`` (module level and inside functions; ``if TYPE_CHECKING:`` blocks are
left out, they never run).  A rule broken here names the importing module and the imported one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("monitor", "probes", "web", "migrations")

#: lowest first; a module may import its own layer or a lower one, never a higher one
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("domain", ("monitor.enums", "monitor.config")),  # and the bare ``monitor`` package
    ("probes, scoring, pure detection", ("probes", "monitor.scoring", "monitor.detection.model",
                                         "monitor.detection.evidence", "monitor.detection.agents",
                                         "monitor.detection.latency", "monitor.detection.background",
                                         "monitor.detection.detect",
                                         "monitor.detection.replay")),
    ("store", ("monitor.store", "migrations")),
    ("incidents and SLO", ("monitor.detection",)),
    ("alerts", ("monitor.alerts",)),
    ("weekly reports", ("monitor.reports",)),  # figures from the store; sent through the alert channels
    ("engine", ("monitor.engine",)),
    ("faces", ("monitor.cli", "web")),
]

#: (importer prefix, forbidden prefix, why)
NEVER = [
    ("monitor", "web", "monitor never imports the web UI (only the command line puts the two together)"),
    ("monitor", "flask", "monitor never imports Flask"),
    ("web", "probes", "web reads the database and never runs probes"),
    ("web", "monitor.engine", "web never runs the scheduler or probes"),
    ("web", "monitor.cli", "web does not depend on the command line"),
    ("web", "apscheduler", "web never schedules"),
    ("web", "monitor.alerts", "web never sends alerts"),
    ("web", "monitor.reports", "web shows the stored reports; it never computes or sends them"),
    ("monitor.config", "monitor.", "config imports nothing above it (but enums)"),
    ("monitor.scoring.", "monitor.scoring.pipeline", "stages depend on scoring.types, never on the pipeline"),
]
CONFIG_MAY_IMPORT = ("monitor.enums", "monitor.config")
#: the command line serves the pages: it imports ``web`` (lazily, in the commands that serve)
CLI_MAY_IMPORT_WEB = "monitor.cli"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool, modules: Collection[str]) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # "from pkg import module" imports pkg.module; "from pkg import name" imports pkg
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (and, for ``forbidden`` checks, every other import)."""
    sources = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            sources[_module_name(path)] = path
    graph: dict[str, set[str]] = {}
    for module, path in sources.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        names = _imports(tree, module, path.name == "__init__.py", sources)
        graph[module] = {n for n in names if n in sources and n != module} | {
            n for n in names if n not in sources and n.split(".")[0] not in PACKAGES}
    return graph


def _layer(module: str) -> int | None:
    if module == "monitor":
        return 0
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), index)
    return best[1] if best else None


def _project(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    return {m: {t for t in targets if t in graph} for m, targets in graph.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strongconnect(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                strongconnect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            strongconnect(node)
    return found


def test_no_import_circles():
    assert circles(_project(import_graph())) == []


def test_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in import_graph() if _layer(m) is None)
    assert unplaced == []


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in graph.items():
        for target in targets:
            low, high = _layer(module), _layer(target)
            if low is not None and high is not None and high > low:
                found.append(f"{module} ({LAYERS[low][0]}) imports {target} ({LAYERS[high][0]})")
    return sorted(found)


def _under(module: str, prefix: str) -> bool:
    """``prefix`` "a.b" is the module a.b and everything in it; "a.b." only what is in it."""
    return module == prefix or module.startswith(prefix if prefix.endswith(".") else prefix + ".")


def forbidden_imports(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in graph.items():
        for importer, forbidden, why in NEVER:
            if not _under(module, importer) or (_under(module, CLI_MAY_IMPORT_WEB) and forbidden == "web"):
                continue
            for target in targets:
                if importer == "monitor.config" and target.startswith(CONFIG_MAY_IMPORT):
                    continue
                if (_under(target, forbidden) or target == forbidden.rstrip(".")) and target != module:
                    found.append(f"{module} imports {target}: {why}")
    return sorted(found)


def test_imports_run_down_the_layers():
    assert upward_imports(_project(import_graph())) == []


def test_forbidden_imports():
    assert forbidden_imports(import_graph()) == []


def test_rules_catch_a_violation():
    """The checks are not vacuous: made-up upward, Flask, probe and pipeline imports are all reported."""
    made_up = {
        "monitor.config.schema": {"monitor.store.models", "monitor.enums"},
        "monitor.store.results": {"monitor.engine.runner"},
        "monitor.detection.detect": {"flask"},
        "web.status": {"probes.base"},
        "monitor.scoring.detectors": {"monitor.scoring.pipeline"},
        "monitor.cli.serving": {"web.server"},  # allowed: the command line serves the pages
    }
    assert upward_imports(made_up) == [
        "monitor.config.schema (domain) imports monitor.store.models (store)",
        "monitor.store.results (store) imports monitor.engine.runner (engine)",
    ]
    assert [line.split(":")[0] for line in forbidden_imports(made_up)] == [
        "monitor.config.schema imports monitor.store.models",
        "monitor.detection.detect imports flask",
        "monitor.scoring.detectors imports monitor.scoring.pipeline",
        "web.status imports probes.base",
    ]
    assert _layer("monitor.detection.incidents") > _layer("monitor.store.results") > _layer("monitor.detection.detect")


def test_monitor_never_loads_flask_at_run_time():
    """The same rule at run time: importing every monitor module pulls in neither Flask nor web."""
    names = sorted(m for m in import_graph() if m.startswith("monitor") and not m.endswith("__main__"))
    code = "import sys\n" + "".join(f"import {n}\n" for n in names) + (
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'web')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    assert out == "[]", f"monitor pulled in {out}"


def test_web_never_loads_probe_machinery_at_run_time():
    code = ("import sys, web, web.status, web.queries, web.server\n"
            "print(sorted(m for m in sys.modules if m.startswith(('probes', 'monitor.engine', 'apscheduler'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    assert out == "[]", f"web pulled in {out}"
