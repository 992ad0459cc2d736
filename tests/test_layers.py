"""The house's layers, read from the source: no import circles between modules or between the library's packages,
the library imports no layer above it, the lake's contract (warehouse/) knows no task, flow or report, and neither
imports a method package (`selfimprove.methods.<package>`): shared code asks the method registry. Imports inside
functions count too."""
import ast
import collections
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"selfimprove": "selfimprove", "warehouse": "selfimprove.warehouse", "tasks": "selfimprove.tasks",
           "flows": "selfimprove.flows", "reporting": "selfimprove.reporting"}
UPPER = ("selfimprove.warehouse", "selfimprove.tasks", "selfimprove.flows", "selfimprove.reporting")
# the one upward import left, a deliberate seam: the package's facade `selfimprove.open_lake`
ALLOWED_UP = {("selfimprove", "selfimprove.warehouse.api")}
REGISTRY = ("selfimprove.methods", "selfimprove.methods.registry")  # what shared code may ask


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


def _edges(modules: dict[str, Path]) -> dict[str, set[str]]:
    edges = collections.defaultdict(set)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("selfimprove"):
                targets = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
                targets += [node.module] if node.module != "selfimprove" else []
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("selfimprove")]
            else:
                continue
            for target in targets:
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in modules and target not in (name, "selfimprove"):
                    edges[name].add(target)
    return edges


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], 0
    for root in list(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    part = []
                    while True:
                        top = stack.pop()
                        on.discard(top)
                        part.append(top)
                        if top == node:
                            break
                    if len(part) > 1:
                        found.append(sorted(part))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on:
                low[node] = min(low[node], index[child])
    return found


def test_no_import_circles_between_modules_or_packages():
    edges = _edges(_modules())
    assert _cycles(edges) == []
    package = lambda m: ".".join(m.split(".")[:2])  # noqa: E731
    packages = collections.defaultdict(set)
    for source, targets in edges.items():
        for target in targets:
            if package(source) != package(target):
                packages[package(source)].add(package(target))
    assert _cycles(packages) == []


def _method_package(module: str) -> str | None:
    """`selfimprove.methods.opsd` for any module of that package; None for the registry and non-method modules."""
    if not module.startswith("selfimprove.methods.") or module in REGISTRY:
        return None
    return ".".join(module.split(".")[:3])


def test_the_library_imports_no_layer_above_and_the_warehouse_no_method_task_flow_or_report():
    shared = lambda s: not s.startswith(UPPER[1:])  # noqa: E731  (the library and the warehouse)
    up = {(s, t) for s, targets in _edges(_modules()).items() for t in targets
          if (not s.startswith(UPPER) and t.startswith(UPPER))
          or (s.startswith("selfimprove.warehouse") and t.startswith(UPPER[1:]))
          or (shared(s) and _method_package(t) and _method_package(t) != _method_package(s))}
    assert up == ALLOWED_UP


def test_the_check_can_see_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
