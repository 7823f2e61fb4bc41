"""Benchmarks comparing gateway with other ASGI servers (see bench/README.md)."""
