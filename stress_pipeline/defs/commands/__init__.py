"""Commands of the `stress-pipeline` CLI that speak to Dagster: batch, results, status, schedules, and
launching through a running webserver (registered through ``COMMAND_MODULES`` in cli.py)."""
