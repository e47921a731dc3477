"""The package layout: no import cycles between calcil's modules, and no package importing
another package's private module (shared internals live in ``calcil._internal``)."""

import ast
from pathlib import Path

import calcil

ROOT = Path(calcil.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every calcil module -> the calcil modules it imports (at any depth, lazy ones too)."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def _is_package(module: str) -> bool:
    return (ROOT.parent / module.replace(".", "/") / "__init__.py").exists()


def test_no_import_cycles_between_modules():
    graph = _imports()
    # A package's __init__ re-exports its modules: edges into a package are its public face.
    edges = {m: {t for t in ts if not _is_package(t)} for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m, stack):
        state[m] = 1
        for t in edges[m]:
            if state.get(t) == 1:
                cycles.append([*stack[stack.index(t) :], t])
            elif t not in state:
                visit(t, [*stack, t])
        state[m] = 2

    for m in edges:
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_no_package_imports_another_packages_private_module():
    offenders = []
    for module, targets in _imports().items():
        package = module.split(".")[1] if module.count(".") else ""
        for t in targets:
            parts = t.split(".")
            if len(parts) < 2:
                continue
            private = any(p.startswith("_") for p in parts[1:])
            shared = parts[1] == "_internal"
            if private and not shared and parts[1] != package:
                offenders.append(f"{module} -> {t}")
    assert offenders == []
