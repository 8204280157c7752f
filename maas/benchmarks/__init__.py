"""Benchmarks that drive the real service over HTTP (see `harness` for the in-process runner)."""
