"""The lite run's defaults, importable without numpy, Redis or pandas (the CLI's parser reads them)."""

#: The live run whose book the lite run shocks, and whose KILL_SWITCH it sets.
DEFAULT_RUN_ID = "live"
#: The hot state's namespace (``state.hot_state.DEFAULT_NAMESPACE``; a test keeps the two equal).
DEFAULT_NAMESPACE = "stress"
DEFAULT_SYMBOL_SET = "active_book"
DEFAULT_SCENARIO = "flash_crash_lite"
