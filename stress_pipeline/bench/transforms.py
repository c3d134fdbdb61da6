"""Transforms benchmark: every scenario type on 100 symbols x 1 day of 1-minute bars, against its targets.

The README promises per-call costs for the scenario transforms; this is the bench that backs them
(``stress-pipeline bench transforms``). Performance is checked here, never by timed tests.

Input: ``generate_bars(days=1)`` of the three calibrated symbols tiled into ``n_symbols`` symbols
``S000, S001, ...`` (prices scaled by 1 + i/100 so they differ), 144,000 rows, as a canonical bars
DataFrame (what ``load_bars`` and the market_bars asset give a user). Each type runs one
representative scenario over all the symbols and is timed twice:

* end to end: the public ``apply_scenario(scenario, bars)``, DataFrame in, stressed DataFrame out
  (arrays from the frame, symbol selection, transform, frame back);
* kernel: ``run_scenario`` on :class:`BarArrays` made once outside the timed region (symbol selection
  and transform), the figure the transform itself costs.

Monte Carlo runs ``mc_paths`` x ``mc_horizon`` bars on the first ``mc_symbols`` symbols, once per
method, and is judged on generated bars per second.

Targets (best of ``repeat``): flash_crash_lite 5 ms end to end and 2 ms kernel (the hourly lite
run); every other type 25 ms end to end and 20 ms kernel; Monte Carlo 5 million bars/s end to end
(the frame of every path is built) and 10 million bars/s kernel. A type with no registered transform
(its module not written yet, or failing to import) is reported as ``missing`` and a transform that
raises as ``error``; neither stops the bench, and neither meets its target.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from stress_pipeline.bench.timing import Measurement, measure
from stress_pipeline.market.schema import BAR_COLUMNS
from stress_pipeline.market.synthetic import generate_bars
from stress_pipeline.scenarios.apply import apply_scenario, run_scenario, select_symbols
from stress_pipeline.scenarios.arrays import FLAG_FIELDS, PRICE_FIELDS, BarArrays
from stress_pipeline.scenarios.model import SCENARIO_ADAPTER
from stress_pipeline.scenarios.transforms import TRANSFORMS, load_all

DEFAULT_TARGET_S = 0.020
TARGET_S = {"flash_crash_lite": 0.002}
DEFAULT_END_TO_END_TARGET_S = 0.025
END_TO_END_TARGET_S = {"flash_crash_lite": 0.005}
MONTE_CARLO_TARGET_BARS_PER_S = 10_000_000
MONTE_CARLO_END_TO_END_TARGET_BARS_PER_S = 5_000_000


@dataclass(frozen=True)
class Target:
    """The best call must take at most ``seconds``, or process at least ``items_per_s`` items a second."""

    seconds: float | None = None
    items_per_s: float | None = None
    unit: str = "bars"

    def met(self, m: Measurement | None) -> bool:
        if m is None:
            return False
        if self.items_per_s is not None:
            return (m.items_per_second or 0.0) >= self.items_per_s
        return self.seconds is None or m.seconds <= self.seconds

    def __str__(self) -> str:
        if self.items_per_s is not None:
            return f">= {self.items_per_s / 1e6:g} M {self.unit}/s"
        return "" if self.seconds is None else f"<= {self.seconds * 1000:g} ms"


@dataclass(frozen=True)
class TransformTiming:
    """One bench row: a scenario type (and Monte Carlo method), end to end and kernel, with targets."""

    scenario_type: str
    label: str  # the type, with the method for Monte Carlo ("monte_carlo gbm")
    status: str  # "ok", "missing" or "error"
    end_to_end: Measurement | None = None  # apply_scenario on the canonical DataFrame
    kernel: Measurement | None = None  # run_scenario on BarArrays
    end_to_end_target: Target = Target()
    kernel_target: Target = Target()
    detail: str = ""

    @property
    def end_to_end_met(self) -> bool:
        return self.status == "ok" and self.end_to_end_target.met(self.end_to_end)

    @property
    def kernel_met(self) -> bool:
        return self.status == "ok" and self.kernel_target.met(self.kernel)

    @property
    def met(self) -> bool:
        return self.end_to_end_met and self.kernel_met

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"type": self.scenario_type, "label": self.label, "status": self.status}
        for name, m, target, met in (
            ("end_to_end", self.end_to_end, self.end_to_end_target, self.end_to_end_met),
            ("kernel", self.kernel, self.kernel_target, self.kernel_met),
        ):
            figures = {} if m is None else {k: v for k, v in m.as_dict().items() if k != "name"}
            out[name] = {**figures, "target": str(target), "met": met}
        out["met"] = self.met
        if self.detail:
            out["detail"] = self.detail
        return out


def run_transforms_bench(
    repeat: int = 5,
    *,
    n_symbols: int = 100,
    days: int = 1,
    mc_symbols: int = 3,
    mc_paths: int = 100,
    mc_horizon: int = 1_440,
) -> list[TransformTiming]:
    """Time one representative scenario per type (two for Monte Carlo) and compare with the targets."""
    frame = bench_frame(n_symbols, days)
    arrays = BarArrays.from_frame(frame)
    transforms, complete, import_errors = _load_transforms()
    kernel = run_scenario if complete else _run_registered
    public = apply_scenario if complete else _apply_registered
    scenarios = bench_scenarios(arrays, mc_symbols=mc_symbols, mc_paths=mc_paths, mc_horizon=mc_horizon)
    rows = []
    for label, scenario, items in scenarios:
        kind = scenario.type
        if kind == "monte_carlo":
            targets = {
                "end_to_end_target": Target(items_per_s=MONTE_CARLO_END_TO_END_TARGET_BARS_PER_S),
                "kernel_target": Target(items_per_s=MONTE_CARLO_TARGET_BARS_PER_S),
            }
        else:
            targets = {
                "end_to_end_target": Target(END_TO_END_TARGET_S.get(kind, DEFAULT_END_TO_END_TARGET_S)),
                "kernel_target": Target(TARGET_S.get(kind, DEFAULT_TARGET_S)),
            }
        if kind not in transforms:
            detail = "no transform registered" + (f" (import errors: {import_errors})" if import_errors else "")
            rows.append(TransformTiming(kind, label, "missing", detail=detail, **targets))
            continue
        unit = "bars" if kind == "monte_carlo" else "rows"
        try:
            end_to_end = measure(
                f"{label} end to end", lambda s=scenario: public(s, frame), repeat=repeat, items=items, unit=unit
            )
            timing = measure(label, lambda s=scenario: kernel(s, arrays), repeat=repeat, items=items, unit=unit)
        except Exception as exc:  # one broken transform must not hide the others' figures
            rows.append(TransformTiming(kind, label, "error", detail=f"{type(exc).__name__}: {exc}", **targets))
            continue
        rows.append(TransformTiming(kind, label, "ok", end_to_end, timing, **targets))
    return rows


def format_transform_bench(rows: list[TransformTiming]) -> str:
    """The bench as a table: per type the end-to-end call and the kernel, each with its target and verdict."""
    header = (
        f"{'type':<28} {'end to end':>10} {'target':>16} {'met':>4}   {'kernel':>10} {'target':>16} {'met':>4}  note"
    )
    lines = [header]
    for row in rows:
        cells = []
        for m, target, met in (
            (row.end_to_end, row.end_to_end_target, row.end_to_end_met),
            (row.kernel, row.kernel_target, row.kernel_met),
        ):
            figure = row.status if m is None else _figure(m, target)
            cells.append(f"{figure:>10} {target!s:>16} {'yes' if met else 'NO':>4}")
        lines.append(f"{row.label:<28} {cells[0]}   {cells[1]}  {row.detail}".rstrip())
    return "\n".join(lines)


def bench_frame(n_symbols: int = 100, days: int = 1) -> pd.DataFrame:
    """:func:`bench_bars` as the canonical market bars DataFrame a user holds (no stress flags)."""
    return bench_bars(n_symbols, days).to_frame().loc[:, list(BAR_COLUMNS)]


def bench_bars(n_symbols: int = 100, days: int = 1) -> BarArrays:
    """``n_symbols`` symbols S000.. tiled from the three calibrated ones, prices scaled by 1 + i/100."""
    base = BarArrays.from_frame(generate_bars(days=days))
    n = int(base.lengths()[0])
    source = np.arange(n_symbols) % len(base.symbols)
    index = (base.offsets[source][:, None] + np.arange(n)).ravel()
    scale = np.repeat(1.0 + np.arange(n_symbols) / 100.0, n)
    return BarArrays(
        symbols=tuple(f"S{i:03d}" for i in range(n_symbols)),
        offsets=np.arange(n_symbols + 1, dtype=np.int64) * n,
        ts=base.ts[index],
        **{name: getattr(base, name)[index] * scale for name in PRICE_FIELDS},
        volume=base.volume[index],
        spread_bps=base.spread_bps[index],
        **{name: getattr(base, name)[index] for name in FLAG_FIELDS},
    )


def bench_scenarios(
    bars: BarArrays, *, mc_symbols: int = 3, mc_paths: int = 100, mc_horizon: int = 1_440
) -> list[tuple[str, object, int]]:
    """(label, scenario, items per call) for every scenario type, on all of ``bars``' symbols."""
    first = pd.Timestamp(int(bars.ts[0]), unit="ns", tz="UTC").to_pydatetime()
    specs: list[tuple[str, dict]] = [
        ("flash_crash", {"drop_pct": 0.30, "duration_bars": 5, "recovery_bars": 15}),
        ("flash_crash_lite", {"price_shock_pct": -0.03, "spread_mult": 3.0, "duration_sec": 60.0}),
        ("volatility_spike", {"multiplier": 5.0, "duration_bars": 20}),
        ("liquidity_drop", {"drop_pct": 0.9, "duration_bars": 15}),
        ("spread_explosion", {"spread_mult": 10.0, "duration_bars": 10}),
        ("depth_collapse", {"drop_pct": 0.9, "duration_bars": 10, "recovery_bars": 30}),
        (
            "data_corruption",
            {
                "corruption_pct": 0.1,
                "corruption_types": ["nan", "spike", "duplicate", "stale", "out_of_order", "gap"],
                "duration_bars": 720,
            },
        ),
        (
            "mixed_custom",
            {
                "flash_crash_drop_pct": 0.2,
                "volatility_multiplier": 3.0,
                "spread_mult": 5.0,
                "liquidity_drop_pct": 0.5,
                "duration_bars": 20,
                "recovery_bars": 15,
            },
        ),
        ("correlation_cascade", {"drop_pct": 0.3, "correlation": 0.8}),
        ("trading_halt", {"halt_minutes": 30, "gap_pct": -0.05}),
        ("opening_gap", {"gap_pct": -0.05, "duration_bars": 30}),
        ("historical_replay", {"start": first + timedelta(hours=6), "end": first + timedelta(hours=12)}),
        (
            "episode_replica",
            {
                "episode_bars": 120,
                "path": [[0, 0.0], [15, 0.7], [40, 0.4], [70, 1.0], [120, 0.6]],
                "target_drop_pct": 0.25,
                "measure": "high_to_low",
            },
        ),
    ]
    rows = len(bars.ts)
    windows = {"opening_gap": {"offset_bars": 600}}  # the bench bars are 24/7: name the reopening bar
    out = [(kind, _scenario(kind, params, bars.symbols, windows.get(kind)), rows) for kind, params in specs]
    mc_names = bars.symbols[:mc_symbols]
    for method in ("block_bootstrap", "gbm"):
        params = {"n_paths": mc_paths, "horizon_bars": mc_horizon, "method": method, "block_bars": 60}
        items = len(mc_names) * mc_paths * mc_horizon
        out.append((f"monte_carlo {method}", _scenario("monte_carlo", params, mc_names), items))
    return out


def _scenario(kind: str, parameters: dict, symbols: tuple[str, ...], window: dict | None = None):
    entry = {"name": f"bench {kind}", "type": kind, "symbols": list(symbols), "seed": 7, "parameters": parameters}
    return SCENARIO_ADAPTER.validate_python(entry if window is None else {**entry, "window": window})


def _load_transforms() -> tuple[dict, bool, str]:
    """The registry; whether every module load_all names imported; import problems of the others."""
    try:
        load_all()
        return TRANSFORMS, True, ""
    except ImportError:
        pass
    package = importlib.import_module("stress_pipeline.scenarios.transforms")
    problems = []
    for info in pkgutil.iter_modules(package.__path__):
        try:
            importlib.import_module(f"{package.__name__}.{info.name}")
        except Exception as exc:  # a module another engineer is still writing
            problems.append(f"{info.name}: {type(exc).__name__}: {exc}")
    return TRANSFORMS, False, "; ".join(problems)


def _run_registered(scenario, bars: BarArrays):
    """What :func:`run_scenario` does, for when some transform module is missing and load_all cannot run."""
    selected = select_symbols(bars, scenario.symbols)
    return TRANSFORMS[scenario.type](scenario, selected, np.arange(len(scenario.symbols)))


def _apply_registered(scenario, bars: pd.DataFrame) -> pd.DataFrame:
    """What :func:`apply_scenario` does, for when some transform module is missing."""
    return _run_registered(scenario, BarArrays.from_frame(bars)).bars.to_frame(copy=False)


def _figure(m: Measurement, target: Target) -> str:
    if target.items_per_s is not None and m.items_per_second is not None:
        return f"{m.items_per_second / 1e6:,.1f} M/s"
    return f"{m.seconds * 1000:.2f} ms" if m.seconds < 10 else f"{m.seconds:.1f} s"
