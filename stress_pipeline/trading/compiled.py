"""How the simulations' compiled code is cached on disk: one directory per version of its sources.

numba's disk cache (``cache=True``) keeps a function's machine code and throws it away when the
function's own source file changes. It does not look at the other files the function calls into or
reads constants from (numba issue 6845): the cached paper engine embeds the guard, the venue and the
booking rules, so after an edit to the guard it would load the old guard from disk. The engines are
split over many modules (risk stack, venue, order routing, bar loop, the booking rules both
simulations share), so numba's per-file rule alone is not enough.

The rule: a compiled function of the simulations that calls into, or reads constants of, another
module is declared with :func:`compiled`, which caches it under ``numba-<digest>``, the digest being
that of every module in ``SOURCES``. An edit to any of them gives a new digest, hence a new, empty
directory: everything recompiles once and nothing stale can be loaded, and no cache file is deleted
under a process that may be reading it (older directories are removed best-effort when a new one is
made). A self-contained compiled function (it uses only its own module) may keep numba's
``cache=True``, whose per-file rule is exact for it; its module is still listed here when an engine
calls it, so that an edit to it re-keys the engines. ``stress_pipeline_tests/test_compile_cache.py``
checks that every module a compiled function reaches into is listed.

Where: ``stress_pipeline/__pycache__/numba-<digest>/`` when that folder is writable, else
``~/.cache/stress_pipeline/numba-<digest>/``; when neither is, nothing is cached (correct, slower).

How, with public means only: numba's documented cache directory setting ``numba.config.CACHE_DIR``
(what the NUMBA_CACHE_DIR variable sets) is set for the moment of each declaration, when numba picks
the function's cache location, and restored at once, so other compiled code in the process keeps
its own location. No environment variable is read or written.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import numba
from numba import njit

PACKAGE_ROOT = Path(__file__).resolve().parents[1]

#: Every module whose code or constants end up in a compiled simulation engine, as paths under the
#: package. Adding a compiled function that reaches into a module not listed fails the cache test.
SOURCES = (
    "book/kernels.py",
    "simulation/backtest.py",
    "simulation/booking.py",
    "simulation/engine/loop.py",
    "simulation/engine/params.py",
    "simulation/engine/routing.py",
    "simulation/engine/state.py",
    "simulation/engine/venue.py",
    "simulation/events.py",
    "simulation/trades.py",
    "trading/compiled.py",
    "trading/exchange/client.py",
    "trading/exchange/faults.py",
    "trading/exchange/fills.py",
    "trading/exchange/latency.py",
    "trading/exchange/rate_limits.py",
    "trading/exchange/reasons.py",
    "trading/risk/balancer.py",
    "trading/risk/guard.py",
    "trading/risk/policy_controller.py",
    "trading/risk/reasons.py",
    "trading/risk/safety_governor.py",
    "trading/risk/stop_loss.py",
)

#: Every function declared with :func:`compiled`, in declaration order (for the cache test).
DECLARED: list = []


def sources_digest(root: Path = PACKAGE_ROOT, sources: tuple[str, ...] = SOURCES) -> str:
    """The first 16 hex digits of the SHA-256 over the listed source files (name and content)."""
    digest = hashlib.sha256()
    for name in sources:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cache_dir() -> Path | None:
    """The cache directory of this version of the sources (made on first use), or None when no
    candidate folder is writable."""
    return _CACHE_DIR


def compiled(function: Callable | None = None, **options) -> Callable:
    """``numba.njit(cache=True, **options)`` with the cache in :func:`cache_dir`. Use it bare
    (``@compiled``) or with numba options (``@compiled(inline="always")``, a signature as
    ``signature=...``)."""
    if function is None:
        return lambda fn: compiled(fn, **options)
    signature = options.pop("signature", None)
    previous = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = str(_CACHE_DIR) if _CACHE_DIR is not None else ""
    try:
        jit = njit(signature, cache=_CACHE_DIR is not None, **options) if signature else njit(
            cache=_CACHE_DIR is not None, **options
        )
        dispatcher = jit(function)
    finally:
        numba.config.CACHE_DIR = previous
    DECLARED.append(dispatcher)
    return dispatcher


def _prepare_cache_dir() -> Path | None:
    name = f"numba-{sources_digest()}"
    for base in (PACKAGE_ROOT / "__pycache__", Path.home() / ".cache" / "stress_pipeline"):
        target = base / name
        try:
            fresh = not target.is_dir()
            target.mkdir(parents=True, exist_ok=True)
            probe = target / ".writable"
            probe.touch()
            probe.unlink()
        except OSError:
            continue
        if fresh:
            for old in base.glob("numba-*"):
                if old != target:
                    with contextlib.suppress(OSError):
                        shutil.rmtree(old)
        return target
    return None


_CACHE_DIR = _prepare_cache_dir()
