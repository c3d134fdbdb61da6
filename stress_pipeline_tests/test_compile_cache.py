"""The compile cache rule of ``trading/compiled.py``: the digest covers every module the simulations'
compiled code reaches into, and an edit to any of them re-keys the cache."""

from __future__ import annotations

import ast
import importlib
import inspect
import shutil
import sys
import types

from stress_pipeline.trading import compiled as compile_cache
from stress_pipeline.trading.compiled import DECLARED, PACKAGE_ROOT, SOURCES, cache_dir, sources_digest


def _module_name(path: str) -> str:
    return "stress_pipeline." + path.removesuffix(".py").replace("/", ".")


def _source_modules() -> dict[str, types.ModuleType]:
    return {path: importlib.import_module(_module_name(path)) for path in SOURCES}


def _dispatchers(module: types.ModuleType) -> list:
    return [v for v in vars(module).values() if hasattr(v, "py_func") and v.py_func.__module__ == module.__name__]


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _imported(module: types.ModuleType) -> dict[str, str]:
    """Name -> the module it was imported from, for ``from X import name [as alias]``."""
    out = {}
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                out[alias.asname or alias.name] = node.module
    return out


def _reaches(dispatcher) -> set[str]:
    """The stress_pipeline modules a compiled function calls into or reads names from."""
    fn = dispatcher.py_func
    module = sys.modules[fn.__module__]
    imported = _imported(module)
    out = set()
    for name in _names(fn.__code__):
        value = fn.__globals__.get(name)
        if hasattr(value, "py_func"):
            out.add(value.py_func.__module__)
        elif isinstance(value, types.ModuleType):
            out.add(value.__name__)
        elif name in imported:
            out.add(imported[name])
    return {m for m in out if m.startswith("stress_pipeline.") and m != fn.__module__}


def test_every_module_compiled_code_reaches_into_is_in_the_digest():
    listed = {_module_name(path) for path in SOURCES}
    modules = _source_modules()
    declared = {id(d) for d in DECLARED}
    checked = 0
    for path, module in modules.items():
        for dispatcher in _dispatchers(module):
            reaches = _reaches(dispatcher)
            missing = reaches - listed
            assert not missing, f"{path}:{dispatcher.__name__} reaches into {sorted(missing)}: add to SOURCES"
            if reaches:
                assert id(dispatcher) in declared, f"{path}:{dispatcher.__name__} reaches across modules: use @compiled"
            checked += 1
    assert checked > 40


def test_every_declared_function_lives_in_a_listed_module():
    listed = {_module_name(path) for path in SOURCES}
    _source_modules()
    assert DECLARED and all(d.py_func.__module__ in listed for d in DECLARED)


def test_an_edit_to_any_source_gives_a_new_digest(tmp_path):
    for path in SOURCES:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PACKAGE_ROOT / path, tmp_path / path)
    assert sources_digest(tmp_path) == sources_digest()
    digests = set()
    for path in ("trading/risk/guard.py", "trading/exchange/reasons.py", "simulation/booking.py"):
        original = (tmp_path / path).read_text()
        (tmp_path / path).write_text(original + "\n# edited\n")
        digests.add(sources_digest(tmp_path))
        (tmp_path / path).write_text(original)
    assert len(digests) == 3 and sources_digest() not in digests


def test_the_cache_lives_in_a_directory_named_by_the_digest():
    directory = cache_dir()
    assert directory is not None and directory.name == f"numba-{sources_digest()}" and directory.is_dir()
    assert str(directory) != compile_cache.numba.config.CACHE_DIR  # set only while declaring, then restored
