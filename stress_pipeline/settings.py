"""Configuration from the environment, read in one place.

Every process of a run (CLI, webserver, daemon, run workers) resolves the same settings from the same
variables, so nothing here is cached at import time: call :func:`get_settings` when you need them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = ".stress"
DEFAULT_DATA_DIR = "data"
DEFAULT_MAX_GAP_RATIO = 0.01


class SettingsError(ValueError):
    """A configuration variable holds a value the project cannot use."""


@dataclass(frozen=True)
class Settings:
    """Resolved configuration of one process.

    ``postgres_url`` / ``redis_url`` are ``None`` when the embedded servers should be used.
    """

    home: Path
    data_dir: Path
    postgres_url: str | None
    redis_url: str | None
    max_gap_ratio: float

    @property
    def bars_dir(self) -> Path:
        """Where market data files are read from."""
        return self.data_dir / "bars"

    @property
    def stress_packs_dir(self) -> Path:
        return self.data_dir / "stress_packs"

    @property
    def symbols_file(self) -> Path:
        return self.data_dir / "symbols.yaml"

    @property
    def storage_dir(self) -> Path:
        """Where the IO manager keeps asset outputs (Parquet)."""
        return self.home / "storage"

    @property
    def services_dir(self) -> Path:
        """Where the embedded PostgreSQL and Redis keep their data and state file."""
        return self.home / "services"


def get_settings(environ: dict[str, str] | None = None) -> Settings:
    """Resolve the settings from ``environ`` (default: ``os.environ``)."""
    env = os.environ if environ is None else environ
    home = Path(env.get("STRESS_HOME") or DEFAULT_HOME).expanduser().resolve()
    data_dir = Path(env.get("STRESS_DATA_DIR") or DEFAULT_DATA_DIR).expanduser().resolve()
    return Settings(
        home=home,
        data_dir=data_dir,
        postgres_url=env.get("STRESS_POSTGRES_URL") or None,
        redis_url=env.get("STRESS_REDIS_URL") or None,
        max_gap_ratio=_ratio(env, "STRESS_MAX_GAP_RATIO", DEFAULT_MAX_GAP_RATIO),
    )


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
