"""Benchmarks behind every performance figure in the README (`stress-pipeline bench ...`)."""
