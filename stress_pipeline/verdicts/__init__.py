"""Scenario verdicts: the stress window, the criteria of each scenario and their outcomes (no Dagster)."""
