"""The settings of one process, and how they are read from the environment.

Only the edges read the environment: the CLI (:func:`get_settings`) and the Dagster layer (the
``StressResource`` binds the same variables with ``dg.EnvVar``). Everything else receives a
:class:`Settings` (or the values it needs) as an argument. Nothing here is cached at import time.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from stress_pipeline.paths import StoragePaths

DEFAULT_HOME = ".stress"
DEFAULT_DATA_DIR = "data"
DEFAULT_MAX_GAP_RATIO = 0.01
DEFAULT_MAX_FILE_BYTES = 4 * 1024**3
"""Largest market data file ingested, on disk and once decompressed (STRESS_MAX_FILE_BYTES)."""
DEFAULT_SCENARIO_MEMORY_BYTES = 8 * 1024**3
"""Largest memory a scenario's generated paths may need (STRESS_SCENARIO_MEMORY_BYTES)."""
DEFAULT_OUTAGE_BUDGET_S = 30.0
"""Seconds an external server may stay away, outside a planned outage, before the run fails
(STRESS_OUTAGE_BUDGET_S)."""
DEFAULT_BUFFER_MAX_BYTES = 256 * 1024**2
"""Cap of each disk buffer of the live write path (STRESS_BUFFER_MAX_BYTES)."""


class SettingsError(ValueError):
    """A configuration variable holds a value the project cannot use."""


@dataclass(frozen=True)
class Settings:
    """Resolved configuration of one process.

    ``postgres_url`` / ``redis_url`` are ``None`` when the embedded servers should be used.
    ``outage_servers``: the embedded servers meant are the ones planned outages stop
    (``services/outages/``, see :meth:`for_planned_outages`), not the ones every run shares.
    """

    home: Path
    data_dir: Path
    postgres_url: str | None
    redis_url: str | None
    max_gap_ratio: float
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    scenario_memory_bytes: int = DEFAULT_SCENARIO_MEMORY_BYTES
    outage_budget_s: float = DEFAULT_OUTAGE_BUDGET_S
    buffer_max_bytes: int = DEFAULT_BUFFER_MAX_BYTES
    outage_servers: bool = False

    @property
    def bars_dir(self) -> Path:
        """Where market data files are read from."""
        return self.data_dir / "bars"

    @property
    def stress_packs_dir(self) -> Path:
        return self.data_dir / "stress_packs"

    @property
    def sweeps_dir(self) -> Path:
        """Sweep specs (data/sweeps/*.yaml)."""
        return self.data_dir / "sweeps"

    @property
    def symbols_file(self) -> Path:
        return self.data_dir / "symbols.yaml"

    @property
    def policies_dir(self) -> Path:
        return self.data_dir / "policies"

    @property
    def paths(self) -> StoragePaths:
        """Every storage path under ``home``."""
        return StoragePaths(self.home)

    @property
    def storage_dir(self) -> Path:
        """Where the IO managers keep asset outputs."""
        return self.paths.storage

    @property
    def services_dir(self) -> Path:
        """Where the embedded PostgreSQL and Redis keep their data and state file."""
        return self.paths.outage_services if self.outage_servers else self.paths.services

    def for_planned_outages(self) -> Settings:
        """These settings, addressing the embedded servers a live-state run with planned outages uses
        and stops (its own: every other run keeps the shared ones). External URLs are unchanged."""
        return dataclasses.replace(self, outage_servers=True)


def make_settings(
    home: str | Path = DEFAULT_HOME, data_dir: str | Path = DEFAULT_DATA_DIR, postgres_url: str | None = None,
    redis_url: str | None = None, max_gap_ratio: float = DEFAULT_MAX_GAP_RATIO,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, scenario_memory_bytes: int = DEFAULT_SCENARIO_MEMORY_BYTES,
    outage_budget_s: float = DEFAULT_OUTAGE_BUDGET_S, buffer_max_bytes: int = DEFAULT_BUFFER_MAX_BYTES,
) -> Settings:
    """Settings from plain values (paths resolved against the working directory)."""
    if not 0.0 <= max_gap_ratio <= 1.0:
        raise SettingsError(f"max_gap_ratio={max_gap_ratio!r}: expected a number between 0 and 1")
    for name, value in (("max_file_bytes", max_file_bytes), ("scenario_memory_bytes", scenario_memory_bytes),
                        ("buffer_max_bytes", buffer_max_bytes)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SettingsError(f"{name}={value!r}: expected a whole number of bytes > 0")
    if isinstance(outage_budget_s, bool) or not isinstance(outage_budget_s, int | float) or not outage_budget_s > 0:
        raise SettingsError(f"outage_budget_s={outage_budget_s!r}: expected a number of seconds > 0")
    return Settings(
        home=Path(home).expanduser().resolve(),
        data_dir=Path(data_dir).expanduser().resolve(),
        postgres_url=postgres_url or None,
        redis_url=redis_url or None,
        max_gap_ratio=float(max_gap_ratio),
        max_file_bytes=max_file_bytes,
        scenario_memory_bytes=scenario_memory_bytes,
        outage_budget_s=float(outage_budget_s),
        buffer_max_bytes=buffer_max_bytes,
    )


def get_settings(environ: dict[str, str] | None = None) -> Settings:
    """Resolve the settings from ``environ`` (default: ``os.environ``)."""
    env = os.environ if environ is None else environ
    return make_settings(
        home=env.get("STRESS_HOME") or DEFAULT_HOME,
        data_dir=env.get("STRESS_DATA_DIR") or DEFAULT_DATA_DIR,
        postgres_url=env.get("STRESS_POSTGRES_URL") or None,
        redis_url=env.get("STRESS_REDIS_URL") or None,
        max_gap_ratio=_ratio(env, "STRESS_MAX_GAP_RATIO", DEFAULT_MAX_GAP_RATIO),
        max_file_bytes=_bytes(env, "STRESS_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES),
        scenario_memory_bytes=_bytes(env, "STRESS_SCENARIO_MEMORY_BYTES", DEFAULT_SCENARIO_MEMORY_BYTES),
        outage_budget_s=_seconds(env, "STRESS_OUTAGE_BUDGET_S", DEFAULT_OUTAGE_BUDGET_S),
        buffer_max_bytes=_bytes(env, "STRESS_BUFFER_MAX_BYTES", DEFAULT_BUFFER_MAX_BYTES),
    )


def _seconds(env: os._Environ[str] | dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number of seconds > 0") from None
    if not value > 0 or value == float("inf"):
        raise SettingsError(f"{name}={raw!r}: expected a number of seconds > 0")
    return value


def _bytes(env: os._Environ[str] | dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a whole number of bytes > 0") from None
    if value <= 0:
        raise SettingsError(f"{name}={raw!r}: expected a whole number of bytes > 0")
    return value


def _ratio(env: os._Environ[str] | dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise SettingsError(f"{name}={raw!r}: expected a number between 0 and 1")
    return value
