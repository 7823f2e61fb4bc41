"""HTTP/1.1: one connection protocol, with h11 as the reference engine and httptools as the
fast one behind the same small interface (see engine.py)."""
