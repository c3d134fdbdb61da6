"""Symbols carry a market in data/symbols.yaml: the shipped file, the defaults and bad inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from stress_pipeline.market.symbols import (
    SymbolConfigError,
    SymbolInfo,
    default_spread_bps,
    load_symbol_info,
    symbol_market,
)

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "symbols.yaml"


def test_shipped_symbols_keep_working_and_carry_their_market() -> None:
    info = load_symbol_info(SHIPPED)
    assert info["BTCUSDT"] == SymbolInfo("BTCUSDT", 1.0, "crypto", "USDT", 0.01, 1.0, "24/7")
    assert info["ETHUSDT"].spread_bps == 1.5 and info["SOLUSDT"].spread_bps == 3.0
    assert info["NVDA"] == SymbolInfo("NVDA", 1.0, "equity", "USD", 0.01, 1.0, "XNYS")
    assert info["MES"] == SymbolInfo("MES", 0.5, "future", "USD", 0.25, 5.0, "CMES")
    assert (info["MNQ"].contract_multiplier, info["M2K"].tick_size) == (2.0, 0.1)
    assert default_spread_bps(SHIPPED, "btcusdt") == 1.0


def test_a_symbol_without_a_market_is_24_7_crypto(tmp_path: Path) -> None:
    assert symbol_market(SHIPPED, "DOGEUSDT") == SymbolInfo("DOGEUSDT", 5.0, "crypto", "USDT", 0.01, 1.0, "24/7")
    missing = tmp_path / "none.yaml"
    assert symbol_market(missing, "XYZ") == SymbolInfo("XYZ", 5.0, "crypto", "USDT", 0.01, 1.0, "24/7")
    assert load_symbol_info(missing) == {}
    only_spread = tmp_path / "symbols.yaml"
    only_spread.write_text("defaults:\n  spread_bps: 2.0\nsymbols:\n  abc:\n")
    assert symbol_market(only_spread, "ABC") == SymbolInfo("ABC", 2.0, "crypto", "USDT", 0.01, 1.0, "24/7")


def test_defaults_apply_under_each_entry(tmp_path: Path) -> None:
    path = tmp_path / "symbols.yaml"
    path.write_text(
        "defaults:\n  asset_class: equity\n  currency: USD\n  calendar: XNYS\n"
        "symbols:\n  SPY:\n    spread_bps: 0.3\n  ES:\n    asset_class: future\n    calendar: CMES\n"
        "    tick_size: 0.25\n    contract_multiplier: 50\n"
    )
    info = load_symbol_info(path)
    assert info["SPY"] == SymbolInfo("SPY", 0.3, "equity", "USD", 0.01, 1.0, "XNYS")
    assert info["ES"] == SymbolInfo("ES", 5.0, "future", "USD", 0.25, 50.0, "CMES")
    assert symbol_market(path, "QQQ").calendar == "XNYS"  # not listed: the file's defaults


@pytest.mark.parametrize(
    ("text", "where", "says"),
    [
        ("symbols:\n  NVDA:\n    calendar: NYSE_X\n", "symbols.NVDA.calendar", "unknown calendar 'NYSE_X'"),
        ("symbols:\n  MES:\n    tick_size: -0.25\n", "symbols.MES.tick_size", "greater than 0"),
        ("symbols:\n  MES:\n    tick_size: quarter\n", "symbols.MES.tick_size", "'quarter'"),
        ("symbols:\n  MES:\n    contract_multiplier: 0\n", "symbols.MES.contract_multiplier", "greater than 0"),
        ("symbols:\n  NVDA:\n    asset_class: stock\n", "symbols.NVDA.asset_class", "'stock'"),
        ("symbols:\n  NVDA:\n    currenci: USD\n", "symbols.NVDA.currenci", "Extra inputs"),
        ("symbols:\n  NVDA:\n    spread_bps: -1\n", "symbols.NVDA.spread_bps", "greater than or equal to 0"),
        ("symbols:\n  NVDA:\n    spread_bps: .nan\n", "symbols.NVDA.spread_bps", "finite"),
        ("symbols:\n  NVDA:\n    currency: ''\n", "symbols.NVDA.currency", "at least 1 character"),
        ("defaults:\n  calendar: 24-7\nsymbols: {}\n", "defaults.calendar", "unknown calendar '24-7'"),
        ("symbols:\n  NVDA: XNYS\n", "symbols.NVDA", "must be a mapping"),
        ("symbols:\n  nvda: {}\n  NVDA: {}\n", "symbols.NVDA", "listed twice"),
        ("symbol:\n  NVDA: {}\n", "unknown top-level key(s) ['symbol']", ""),
        ("symbols: [NVDA]\n", "symbols must be a mapping", ""),
        ("symbols:\n  NVDA: {calendar: [\n", "not valid YAML", ""),
    ],
)
def test_bad_inputs_name_file_symbol_and_field(tmp_path: Path, text: str, where: str, says: str) -> None:
    path = tmp_path / "symbols.yaml"
    path.write_text(text)
    with pytest.raises(SymbolConfigError) as err:
        load_symbol_info(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert where in message
    assert says in message
    with pytest.raises(SymbolConfigError):  # the single-symbol look-up reads the same file the same way
        symbol_market(path, "NVDA")


def test_an_edited_symbols_file_is_read_again_and_a_bad_one_fails_every_time(tmp_path: Path) -> None:
    import os

    path = tmp_path / "symbols.yaml"
    path.write_text("symbols:\n  ABC:\n    spread_bps: 2.0\n")
    assert symbol_market(path, "ABC").spread_bps == 2.0
    info = load_symbol_info(path)
    info["ABC"] = None  # the caller's copy: the next reader still gets the file's entry
    assert load_symbol_info(path)["ABC"].spread_bps == 2.0
    path.write_text("symbols:\n  ABC:\n    spread_bps: 7.0\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    assert symbol_market(path, "ABC").spread_bps == 7.0
    path.write_text("symbols:\n  ABC:\n    spread_bps: -1\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 2_000_000_000))
    for _ in range(2):
        with pytest.raises(SymbolConfigError, match="spread_bps"):
            symbol_market(path, "ABC")
