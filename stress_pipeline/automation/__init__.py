"""Automation without Dagster: US market hours from the exchange calendar, the suites' definitions,
and the alerts the schedules' sensors raise."""
