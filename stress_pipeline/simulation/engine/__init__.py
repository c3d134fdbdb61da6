"""The paper engine: the trading system under test against the simulated venue, compiled with numba.

Why compiled: the engine is event-driven (latency, partial fills, retries and the risk stack all
depend on what happened before), so it cannot be vectorised, and a Python loop over bars would run
at tens of thousands of bar-symbols per second. The state lives in record arrays, the risk and
exchange rules are the compiled functions of ``trading.risk`` and ``trading.exchange``, sizing and
booking are ``simulation.booking`` (shared with the backtest), and events go into a preallocated
record array. ``simulation/paper.py`` is the thin Python layer around it (configuration in, tables
out).

The modules, by role:

* ``params.py``: the inputs as NamedTuples (risk, router, venue, sizing; the bars);
* ``state.py``: the mutable state (account, books, order slots, per-symbol scratch), the event log;
* ``routing.py``: the order router at a bar close (signals, risk stack, orders);
* ``venue.py``: sends, arrivals, fills and their costs;
* ``loop.py``: the bar loop, ``run_engine``, the one entry point.

Compiled code is cached on disk per version of its sources (``trading.compiled``).
"""

from stress_pipeline.simulation.engine.loop import run_engine
from stress_pipeline.simulation.engine.params import (
    EngineParams,
    Market,
    RealismToggles,
    RiskParams,
    RouterParams,
    VenueParams,
    engine_params,
    market_of,
)
from stress_pipeline.simulation.engine.state import EngineState, new_engine_state

__all__ = [
    "EngineParams",
    "EngineState",
    "Market",
    "RealismToggles",
    "RiskParams",
    "RouterParams",
    "VenueParams",
    "engine_params",
    "market_of",
    "new_engine_state",
    "run_engine",
]
