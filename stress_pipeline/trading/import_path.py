"""Objects named by import path ("package.module:attribute"), the one way a user plugs code into the
system under test: strategies (``strategies/external.py``) and decision functions or risk governors
(``risk/decision.py``) resolve their paths here, so both give the same errors.

Each caller passes its own error class and a word for what it loads ("strategy", "decision function"),
so a message reads ``strategy 'pkg.mod:fn': cannot import module 'pkg.mod': ...``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable


def import_object(spec: str, *, kind: str, error: type[Exception]) -> object:
    """The object at ``spec`` ("package.module:attribute", the attribute may be dotted)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise error(f"{kind} {spec!r}: expected 'package.module:callable'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"{kind} {spec!r}: cannot import module {module_name!r}: {exc}") from None
    target: object = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise error(f"{kind} {spec!r}: module {module_name!r} has no attribute {attribute!r}") from None
    return target


def call_with_params(
    factory: Callable[..., object], params: dict[str, object], label: str, *, kind: str, error: type[Exception]
) -> object:
    """``factory(**params)``, refusing parameters its signature does not take before calling it."""
    try:
        inspect.signature(factory).bind(**params)
    except TypeError as exc:
        raise error(f"{kind} {label!r}: bad parameters {sorted(params)}: {exc}") from None
    except ValueError:  # no signature to inspect (builtins): let the call decide
        pass
    return factory(**params)


def required_arguments(fn: Callable[..., object]) -> int:
    """How many positional arguments ``fn`` needs (1 when its signature cannot be read)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in signature.parameters.values() if p.kind in kinds and p.default is inspect.Parameter.empty)
