"""What the harnesses share: gateway's modules from this repository with the ASan builds of its
C extensions in place, a divergence raised with both sides, and the command line.

A divergence is raised, not logged: libFuzzer then stops, prints the traceback and keeps the
input as a crash file, which `run.sh NAME FILE` replays.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import pprint
import random
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType

import atheris

REPO = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("FUZZ_DIR", "/tmp/gateway-fuzz")) / "build"
EXTENSIONS = {"gateway.h1._wire": "gateway/h1/_wire", "gateway._accessline": "gateway/_accessline",
              "gateway.ws._frames": "gateway/ws/_frames"}


class Divergence(AssertionError):
    """A C function and its reference disagreed on one input."""


def import_gateway(*names: str) -> list[ModuleType]:
    """The ASan builds go into sys.modules under their own names before gateway is imported,
    so that gateway's imports of them find these and never the plain copies a developer's
    install left in the tree. gateway's Python is instrumented too: the scanner's and the
    twins' branches guide the fuzzer as well as the C ones."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    for name, stem in EXTENSIONS.items():
        path = BUILD / (stem + suffix)
        if not path.exists():
            sys.exit(f"{path} is missing: run fuzz/build.sh with this Python first")
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    sys.path.insert(0, str(REPO))
    with atheris.instrument_imports(include=["gateway"]):
        return [importlib.import_module(name) for name in names]


def same(what: str, c: object, reference: object, **context: object) -> None:
    """Raises Divergence, with the input's parts in `context`, unless the C function's outcome
    is the reference's."""
    if c != reference:
        sides = {"C": c, "reference": reference, **context}
        raise Divergence(f"{what}\n{pprint.pformat(sides, width=110)}")


def random_seeds(count: int) -> list[bytes]:
    """Seeds for a harness that builds its arguments with FuzzedDataProvider: any bytes make a
    valid input there, and a few hundred already make several fields of every kind. Seeded
    from a constant, so every run starts from the same ones."""
    rng = random.Random(0)
    return [rng.randbytes(rng.randrange(16, 512)) for _ in range(count)]


def main(test_one_input: Callable[[bytes], None], seeds: Callable[[], Iterable[bytes]]) -> None:
    """`--seeds DIR` writes the harness's seeds to DIR (run.sh does it before each run: the
    seeds are made by code, no corpus is kept in the repository). Other arguments are
    libFuzzer's."""
    if sys.argv[1:2] == ["--seeds"]:
        out = Path(sys.argv[2])
        out.mkdir(parents=True, exist_ok=True)
        for index, seed in enumerate(seeds()):
            (out / f"seed-{index:03}").write_bytes(seed)
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
