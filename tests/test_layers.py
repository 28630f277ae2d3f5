"""The package's layers and their one import direction (README "Architecture").

Every import of every module (imports inside functions included) is read with ``ast``; a module
may import only from its own layer or a lower one, and the packages of one layer must not import
each other in a circle.
"""
from __future__ import annotations

import pytest

from optiqa.core.sources import all_modules, dependencies, imports_of

# lowest first
LAYERS = [
    ("core", {"optiqa.core"}),
    ("ops", {"optiqa.ops", "optiqa.stats"}),
    ("models", {"optiqa.models", "optiqa.backbones", "optiqa.metrics", "optiqa.nets",
                "optiqa.testing"}),
    ("data", {"optiqa.data"}),
    ("workflows", {"optiqa.train", "optiqa.restore", "optiqa.assess", "optiqa.transfer",
                   "optiqa.evaluators", "optiqa.diagnose", "optiqa.study", "optiqa.judge",
                   "optiqa.report"}),
    ("cli", {"optiqa.cli", "optiqa.__main__"}),
]
# the package facade: it re-exports lazily and may name anything below the CLI
FACADE = "optiqa"


def unit_of(module: str) -> str:
    """The top-level unit (``optiqa.metrics``, ``optiqa.backbones``, ...) a module belongs to."""
    return ".".join(module.split(".")[:2])


def layer_of(module: str) -> int:
    unit = unit_of(module)
    for i, (_, units) in enumerate(LAYERS):
        if unit in units:
            return i
    raise AssertionError(f"{module} belongs to no layer: add {unit} to LAYERS in this test and "
                         "to DESIGN.md")


def test_every_module_has_a_layer():
    for m in all_modules():
        if m != FACADE:
            layer_of(m)


def test_imports_go_down_the_layers_only():
    wrong = []
    for m in all_modules():
        if m == FACADE:
            continue
        mine = layer_of(m)
        for dep, line in imports_of(m):
            if dep == FACADE:
                continue  # `from optiqa import backbones` names a module; checked below
            if layer_of(dep) > mine:
                wrong.append(f"{m}:{line} imports {dep} ({LAYERS[layer_of(dep)][0]} is above "
                             f"{LAYERS[mine][0]})")
    assert not wrong, "imports that go up a layer:\n" + "\n".join(wrong)


def test_no_cycles_between_packages():
    """Within a layer, packages import each other in one direction only."""
    edges: dict[str, set[str]] = {}
    for m in all_modules():
        for dep, _ in imports_of(m):
            a, b = unit_of(m), unit_of(dep)
            if a != b and FACADE not in (m, dep):
                edges.setdefault(a, set()).add(b)

    def reaches(start, goal, seen=()):
        return any(n == goal or (n not in seen and reaches(n, goal, (*seen, n)))
                   for n in edges.get(start, ()))
    cycles = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if reaches(b, a)})
    assert not cycles, f"packages importing each other in a circle: {cycles}"


def test_no_cycles_between_modules():
    """No module imports itself through others (e.g. the IQA loader and the synthetic set)."""
    graph = {m: {d for d, _ in imports_of(m) if d != m} for m in all_modules()}

    def cycle_from(start):
        stack, seen = [(start, (start,))], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    return path
                if nxt not in seen and nxt in graph:
                    seen.add(nxt)
                    stack.append((nxt, (*path, nxt)))
        return None
    cycles = {tuple(sorted(c)) for m in graph if (c := cycle_from(m))}
    assert not cycles, f"module import cycles: {sorted(cycles)}"


def test_the_facade_imports_nothing_eagerly():
    """``import optiqa`` (and so ``optiqa --help``) must not pull in torch."""
    import ast
    import subprocess

    from optiqa.core.sources import module_file

    # at module level the facade may import only __future__ (everything else inside functions)
    tree = ast.parse(module_file(FACADE).read_text(encoding="utf-8"))
    eager = [f"line {n.lineno}" for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
             and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")]
    assert not eager, f"optiqa/__init__.py imports at module level: {eager}"
    # every lazily re-exported name exists where the facade says it does
    import importlib

    import optiqa
    for name, module in optiqa._LAZY.items():
        assert hasattr(importlib.import_module(module), name), f"{module} has no {name}"
    import sys

    code = "import sys, optiqa, optiqa.cli; optiqa.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("metric_module,inside,outside", [
    ("optiqa.metrics.ssim", ["optiqa.ops.filters", "optiqa.ops.color", "optiqa.metrics.base"],
     ["optiqa.metrics.deep", "optiqa.train.trainer", "optiqa.cli"]),
    ("optiqa.metrics.deep", ["optiqa.models.backbones", "optiqa.metrics.base"],
     ["optiqa.metrics.ssim", "optiqa.ops.filters"]),
])
def test_dependencies_are_transitive_and_precise(metric_module, inside, outside):
    deps = dependencies(metric_module)
    assert metric_module in deps
    for m in inside:
        assert m in deps
    for m in outside:
        assert m not in deps


def test_the_readme_architecture_names_every_package():
    """The README's architecture block is checked against the layer table: every package of
    the source tree is named there (a package added without a word in the README fails)."""
    from pathlib import Path

    from optiqa.core.sources import PACKAGE_ROOT

    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text(encoding="utf-8")
    block = text[text.index("\nsrc/optiqa/\n"):text.index("\ntests/  bench/")]
    packages = sorted(p.name for p in PACKAGE_ROOT.iterdir()
                      if (p / "__init__.py").is_file())
    missing = [p for p in packages if f"{p}/" not in block]
    assert not missing, f"README's architecture block does not name: {missing}"
    listed = {unit.split(".")[1] for _, units in LAYERS for unit in units
              if unit.count(".") == 1 and not unit.endswith("__main__")}
    assert set(packages) <= listed, f"packages in no layer: {set(packages) - listed}"
