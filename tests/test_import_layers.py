"""kiln's import layering, read from the source with ast (nothing is imported).

Layers, lowest first; a module may import its own layer and the ones below:

    0  _device, _promotion, _checks, random, backends, kernels, _atomic, _safetensors
       (the C++ core, NumPy, the RNG, shared argument checks, atomic file writes and
       the safetensors format)
    1  autograd                 the tape
    2  ops                      differentiable ops on raw arrays
    3  tensor, _dlpack          kiln.Tensor
    4  nn.functional, nn.parameter, nn.init, nn.utils
    5  nn (its package), nn.modules
    6  everything else: optim, data, train, recipe, models, onnx, distributed, ...

The test fails on a cycle among kiln's modules (module-level imports), on an import
of a higher layer, and on a function-local import of a kiln module (an import placed
in a function to dodge a cycle). Functions may import only the optional third-party
dependencies in OPTIONAL (and the standard library) lazily; KNOWN lists the kiln sites
still to be fixed, each with its reason, and an entry that no longer occurs must be
removed, so the list only shrinks.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import kiln

ROOT = Path(kiln.__file__).resolve().parent  # the source tree, not the staged symlinks

LAYERS = [
    ("kiln._device", 0), ("kiln._promotion", 0), ("kiln.random", 0), ("kiln.backends", 0),
    ("kiln.kernels", 0), ("kiln._openblas", 0), ("kiln._C", 0), ("kiln._C_cuda", 0),
    ("kiln._checks", 0),  # argument checks shared by every layer (from main's d8b43cd)
    ("kiln._atomic", 0), ("kiln._safetensors", 0),  # the file writes Module.save shares
    ("kiln.autograd", 1),
    ("kiln.ops", 2),
    ("kiln.tensor", 3), ("kiln._dlpack", 3),
    ("kiln.nn.functional", 4), ("kiln.nn.parameter", 4), ("kiln.nn.init", 4),
    ("kiln.nn.utils", 4),
    ("kiln.nn", 5),
]
TOP = 6

# Third-party packages a function may import lazily: optional dependencies (extras in
# pyproject.toml, or heavy and needed by one feature), so that kiln imports and runs
# without them. Any other function-local import of a third-party package is flagged.
OPTIONAL = {"matplotlib", "mpi4py", "onnx", "onnxruntime", "optuna", "PIL", "tensorboardX",
            "tqdm", "scipy_openblas32"}

# Function-local imports still to be fixed: (module, imported module) -> reason.
KNOWN: dict[tuple[str, str], str] = {}  # empty: every site is fixed


def _module_name(path: Path) -> str:
    parts = ("kiln", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


MODULES = _sources()
THIRD_PARTY_LOCAL: list[tuple[str, str, int]] = []  # (module, package, line), by _imports
KNOWN_NAMES = set(MODULES) | {"kiln._C", "kiln._C_cuda"}


def _target(name: str) -> str | None:
    """The kiln module ``name`` refers to (its longest known prefix), or None."""
    while name:
        if name in KNOWN_NAMES:
            return name
        name = name.rpartition(".")[0]
    return None


def _layer(module: str) -> int:
    best, rank = "", TOP
    for prefix, r in LAYERS:
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
            best, rank = prefix, r
    return rank


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """(kiln module imported, line, inside a function) for every import in ``path``,
    leaving out ``if TYPE_CHECKING:`` blocks."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub, local)
                continue
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                ast.Lambda))
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.rsplit(".", child.level - 1)[0] if child.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                names = [f"{base}.{a.name}" if _target(f"{base}.{a.name}") == f"{base}.{a.name}"
                         else base for a in child.names]
            for name in names:
                top = name.split(".")[0]
                target = _target(name) if top == "kiln" else None
                if target is not None and target != module:
                    found.append((target, child.lineno, local))
                elif top not in ("kiln", "") and local:
                    THIRD_PARTY_LOCAL.append((module, top, child.lineno))
            visit(child, inner)

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


IMPORTS = {module: _imports(module, path) for module, path in MODULES.items()}


def test_no_import_cycles():
    graph = {m: sorted({t for t, _, local in found if not local and t in MODULES})
             for m, found in IMPORTS.items()}
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                walk(nxt)
        path.pop()
        state[node] = 2

    for module in graph:
        if module not in state:
            walk(module)
    assert not cycles, "import cycles among kiln's modules:\n" + "\n".join(cycles)


def test_no_import_from_a_higher_layer():
    wrong = [
        f"{MODULES[m].relative_to(ROOT.parent)}:{line}: {m} (layer {_layer(m)}) imports "
        f"{t} (layer {_layer(t)})"
        for m, found in IMPORTS.items() for t, line, _ in found
        if _layer(t) > _layer(m) and (m, t) not in KNOWN
    ]
    assert not wrong, "imports from a higher layer:\n" + "\n".join(wrong)


def test_no_function_local_imports_of_kiln_modules():
    local = {(m, t): line for m, found in IMPORTS.items() for t, line, is_local in found
             if is_local}
    unexpected = [f"{MODULES[m].relative_to(ROOT.parent)}:{line}: {m} imports {t} in a function"
                  for (m, t), line in sorted(local.items()) if (m, t) not in KNOWN]
    assert not unexpected, ("function-local imports of kiln modules (import at module "
                            "level; break a cycle by moving code down a layer):\n"
                            + "\n".join(unexpected))
    upward = {(m, t) for m, found in IMPORTS.items() for t, _, _ in found
              if _layer(t) > _layer(m)}
    fixed = sorted(set(KNOWN) - set(local) - upward)
    assert not fixed, f"fixed: remove these from KNOWN: {fixed}"


def test_the_layers_named_in_the_architecture_hold():
    """The arrows the design forbids outright, whatever KNOWN says."""
    forbidden = {"kiln.ops": ("kiln.tensor", "kiln.nn"), "kiln.autograd": ("kiln.ops",),
                 "kiln.nn.functional": ("kiln.nn.modules",)}
    wrong = [f"{m} imports {t}" for m, found in IMPORTS.items() for t, _, _ in found
             for low, highs in forbidden.items()
             if (m == low or m.startswith(low + "."))
             and any(t == h or t.startswith(h + ".") for h in highs)]
    assert not wrong, "\n".join(wrong)


def test_function_local_third_party_imports_are_optional_dependencies():
    stdlib = set(getattr(sys, "stdlib_module_names", ()))
    if not stdlib:
        pytest.skip("sys.stdlib_module_names needs Python 3.10")
    wrong = [f"{MODULES[m].relative_to(ROOT.parent)}:{line}: {m} imports {top} in a function"
             for m, top, line in THIRD_PARTY_LOCAL if top not in stdlib | OPTIONAL]
    assert not wrong, ("function-local imports of packages that are not optional "
                       "dependencies:\n" + "\n".join(wrong))
