"""The package's layers: each subpackage imports only lower layers (no cycles, no stage reaching up).

Why a test: the layout groups modules by run.sh stage; what keeps it useful is that a reader (or the ONNX
runtime, which must not import torch) can take a lower layer without dragging in a higher one. Imports
inside functions count too: they run as soon as the function does.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

# Lower number = lower layer. A module may import its own subpackage and any strictly lower layer.
LAYERS = {
    "dmha.common": 0,
    "dmha.launch": 1, "dmha.augment": 1, "dmha.data": 1,
    "dmha.corpus": 2, "dmha.features": 2,
    "dmha.models": 3,
    "dmha.config": 4,
    "dmha.embed": 5, "dmha.scoring": 5,
    "dmha.training": 6,
    "dmha.experiment": 7,
    "dmha.api": 8, "dmha.export": 8,
    "dmha": 9,  # dmha/__init__.py: load_model
    "dmha.bin": 10,
}


def _group(module: str) -> str:
    parts = module.split(".")
    for n in (2, 1):
        if ".".join(parts[:n]) in LAYERS:
            return ".".join(parts[:n])
    raise AssertionError(f"{module}: in no layer of tests/test_layout.py (add it)")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((REPO / "dmha").rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "dmha"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dmha":
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # `from dmha.x import submodule`
    return found


def test_every_module_is_in_a_layer_and_imports_only_lower_layers():
    modules = _modules()
    bad = []
    for name, path in modules.items():
        mine = _group(name)
        for imp in _imports(path):
            while imp not in modules and "." in imp:  # `from dmha.x import name`: the module is dmha.x
                imp = imp.rsplit(".", 1)[0]
            theirs = _group(imp)
            if theirs != mine and LAYERS[theirs] >= LAYERS[mine]:
                bad.append(f"{name} (layer {LAYERS[mine]}) imports {imp} (layer {LAYERS[theirs]})")
    assert not bad, "\n".join(sorted(set(bad)))


def test_no_import_cycle_between_modules():
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        deps = set()
        for imp in _imports(path):
            while imp not in modules and "." in imp:
                imp = imp.rsplit(".", 1)[0]
            if imp in modules and imp != name:
                deps.add(imp)
        graph[name] = deps
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for d in sorted(graph[n]):
            if state.get(d) == 1 and not name_is_package_of(d, n):
                raise AssertionError("import cycle: " + " -> ".join(stack + [n, d]))
            if d not in state:
                visit(d, stack + [n])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [])


def name_is_package_of(pkg: str, module: str) -> bool:
    """A subpackage's __init__ re-exporting its own modules is not a cycle of the layout."""
    return module.startswith(pkg + ".")


def test_every_subpackage_says_what_it_does():
    for init in sorted((REPO / "dmha").glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc.split()) >= 12, f"{init.relative_to(REPO)}: docstring should say what the stage does"
