"""Benchmarks, apart from the tests: they print figures and write JSON to benchmarks/results/."""
