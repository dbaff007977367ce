"""Benchmarks for scripts/bench: one module per benchmark (add_arguments, run)."""
