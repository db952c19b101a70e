"""No import circle anywhere in the project: the import graph of model_core, rs2sam2_qgis and training, built from
the source with ast (top-level and function-level `import` / `from ... import`, relative imports resolved), has no
strongly connected component of more than one module. A circle means two modules that cannot be understood, tested
or moved apart; the house's arrows point one way (docs/ARCHITECTURE.md)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("model_core", "rs2sam2_qgis", "training")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if "extlibs" in parts:  # the plugin's bundled third-party folder, not ours
                continue
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `name` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            for alias in node.names:  # `from pkg import submodule` imports the submodule, else a name of origin
                submodule = f"{origin}.{alias.name}"
                targets.add(submodule if submodule in modules else origin)
    return {t for t in targets if t in modules and t != name}


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    found.append(sorted(component))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def test_the_graph_sees_relative_and_function_level_imports():
    graph = import_graph()
    assert "rs2sam2_qgis.pipeline.request" in graph["rs2sam2_qgis.pipeline.cli"]  # inside cmd_segment, relative
    assert "rs2sam2_qgis.pipeline.options" in graph["rs2sam2_qgis.pipeline.request"]  # top level, relative
    assert "rs2sam2_qgis.plugin" in graph["rs2sam2_qgis"]  # inside classFactory


def test_no_import_circle_anywhere():
    circles = [c for c in _strongly_connected(import_graph()) if len(c) > 1]
    assert not circles, "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


def test_the_engine_and_model_core_import_no_training_module():
    """Inference never needs training code: `rs2sam2 train|eval` reach it through entry points."""
    graph = import_graph()
    engine = [n for n in graph if n.startswith(("rs2sam2_qgis.pipeline", "model_core"))]
    crossing = {n: sorted(t for t in graph[n] if t.split(".")[0] == "training") for n in engine}
    assert not {n: t for n, t in crossing.items() if t}
