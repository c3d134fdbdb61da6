"""The hourly flash-crash lite on the live book and the KILL_SWITCH (no Dagster, no environment).

``run.lite_config`` reads the symbol set and the scenario from the data folder; ``run.run_lite`` reads
the book from Redis and evaluates the shock (``evaluate``); ``run.respond_to_breach`` sets the switch,
pages and records; ``killswitch`` shows and clears the switch, recording who and why. Nothing is
imported here, so the command line's parser stays fast.
"""
