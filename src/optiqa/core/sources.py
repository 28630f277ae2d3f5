"""optiqa's own source files as data: which modules import which, and hashes of the code.

Two users: the layer test (``tests/test_layers.py``), which checks that imports go one way, and
result caches, which key a metric's cached scores by the source of every optiqa module the
metric's computation imports (transitively), so that editing a filter or a colour conversion
invalidates the scores that depend on it and nothing else. Imports are read with :mod:`ast`
(nothing is executed), including imports inside functions.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = "optiqa"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def module_file(module: str, root: Path | None = None) -> Path | None:
    """The file of ``optiqa.a.b`` (``a/b.py`` or ``a/b/__init__.py``), or None."""
    root = root or PACKAGE_ROOT
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path, root: Path | None = None) -> str:
    root = root or PACKAGE_ROOT
    rel = path.resolve().relative_to(root).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join([PACKAGE, *parts])


def all_modules(root: Path | None = None) -> list[str]:
    """Every module of the package, sorted."""
    root = root or PACKAGE_ROOT
    return sorted(module_name(p, root) for p in root.rglob("*.py"))


@functools.lru_cache(maxsize=None)
def _parsed_imports(path: Path, mtime_ns: int, root: Path) -> tuple[tuple[str, int], ...]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    here = module_name(path, root).split(".")
    pkg = here if is_package else here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = pkg[:len(pkg) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.append((mod, node.lineno))
            # `from optiqa.ops import filters` imports the submodule optiqa.ops.filters
            for a in node.names:
                if module_file(f"{mod}.{a.name}", root) is not None:
                    found.append((f"{mod}.{a.name}", node.lineno))
    return tuple(found)


def imports_of(module: str, root: Path | None = None) -> list[tuple[str, int]]:
    """``(imported optiqa module, line)`` for every optiqa import in ``module``'s file."""
    root = root or PACKAGE_ROOT
    path = module_file(module, root)
    if path is None:
        raise KeyError(f"no such module: {module}")
    return [(m, line) for m, line in _parsed_imports(path, path.stat().st_mtime_ns, root)
            if m == PACKAGE or m.startswith(PACKAGE + ".")]


def dependencies(module: str, root: Path | None = None) -> list[str]:
    """``module`` and every optiqa module it imports, transitively (sorted).

    A package's ``__init__`` counts only when it is imported itself (``from optiqa.metrics import
    create_metric``), not when one of its submodules is: the value of a computation depends on
    the code that runs it, not on what a package re-exports.
    """
    root = root or PACKAGE_ROOT
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m in seen or module_file(m, root) is None:
            continue
        seen.add(m)
        todo += [dep for dep, _ in imports_of(m, root)]
    return sorted(seen)


def source_hash(modules, root: Path | None = None) -> str:
    """SHA-256 over the names and contents of ``modules``' files (order-independent)."""
    root = root or PACKAGE_ROOT
    h = hashlib.sha256()
    for m in sorted(set(modules)):
        path = module_file(m, root)
        h.update(m.encode() + b"\0")
        h.update(path.read_bytes() if path is not None else b"<missing>")
        h.update(b"\0")
    return h.hexdigest()


def code_fingerprint(obj) -> str:
    """Hash of the optiqa source a class or function depends on (its module, transitively).

    For objects defined outside optiqa (a user's registered metric), the source file of the
    object's module is hashed instead, plus the optiqa modules it imports.
    """
    import inspect
    import sys

    mod = getattr(obj, "__module__", None) or ""
    if mod == PACKAGE or mod.startswith(PACKAGE + "."):
        return source_hash(dependencies(mod))
    h = hashlib.sha256(mod.encode())
    try:
        src = inspect.getsourcefile(sys.modules[mod]) if mod in sys.modules else None
    except TypeError:
        src = None
    if src and Path(src).is_file():
        h.update(Path(src).read_bytes())
        try:
            tree = ast.parse(Path(src).read_text(encoding="utf-8"))
            optiqa_imports = sorted({n.module for n in ast.walk(tree)
                                     if isinstance(n, ast.ImportFrom) and n.module
                                     and n.module.startswith(PACKAGE)})
            deps = set()
            for m in optiqa_imports:
                deps.update(dependencies(m))
            h.update(source_hash(deps).encode())
        except (SyntaxError, UnicodeDecodeError):
            pass
    else:
        h.update(repr(obj).encode())
    return h.hexdigest()
