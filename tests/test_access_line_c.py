"""gateway's own access line made in C (gateway/_accessline.c) is its Python twin's, for the
scopes servers make and for odd ones, which the C function leaves to the twin."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import access

needs_c = pytest.mark.skipif(access._line_c is None, reason="gateway/_accessline.c is not built here")


def test_the_extension_is_built():
    """The install builds it wherever it can (setup.py), as CI does."""
    if shutil.which("cc") is None or not Path(sysconfig.get_paths()["include"], "Python.h").exists():
        pytest.skip("no C compiler or no Python headers here: gateway runs the Python twin")
    assert access._line_c is not None


@needs_c
def test_the_usual_line_is_made_in_c():
    """A response's scope as the HTTP/1.1 and HTTP/2 protocols make it."""
    scope = {"client": ("127.0.0.1", 50000), "method": "GET", "raw_path": b"/a",
             "query_string": b"b=1", "http_version": "1.1"}
    made = access._line_c("P ", scope, 200, 13, 0.000123, "\n")
    assert made == 'P 127.0.0.1:50000 - "GET /a?b=1 HTTP/1.1" 200 13B 0.1ms\n'
    assert made == access.gateway_line_py(scope, 200, 13, 0.000123, "P ", "\n")


TEXT = st.text(alphabet=st.characters(), max_size=12)  # lone surrogates included
BYTES = st.one_of(st.binary(max_size=12), st.sampled_from([b"/", b"/a%20b", b"", b"x" * 5000]))
SCOPES = st.fixed_dictionaries({}, optional={
    "client": st.one_of(st.none(), st.tuples(st.sampled_from(["127.0.0.1", "::1", "h\u00e9"]),
                                             st.integers(0, 2**70)),
                        st.tuples(st.just("/run/s.sock"), st.none()), st.just(())),
    "method": st.one_of(st.sampled_from(["GET", "POST"]), TEXT, st.just(b"GET")),
    "raw_path": st.one_of(st.none(), BYTES, st.just("/str")),
    "query_string": st.one_of(st.none(), BYTES),
    "http_version": st.one_of(st.sampled_from(["1.1", "1.0", "2"]), st.none()),
})


@needs_c
@settings(max_examples=1500, deadline=None, database=None)
@given(scope=SCOPES, status=st.one_of(st.integers(100, 599), st.just("200")),
       size=st.one_of(st.integers(0, 2**65), st.none()),
       seconds=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 100)),
       prefix=TEXT, end=st.sampled_from(["\n", ""]))
def test_c_line_is_the_twins_line(scope, status, size, seconds, prefix, end):
    """Every line the C function makes is the twin's, and the line gateway writes is the
    twin's whichever made it."""
    try:
        expected = access.gateway_line_py(scope, status, size, seconds, prefix, end)
    except (AttributeError, TypeError):  # a field of the wrong type: the twin refuses it
        assert access._line_c(prefix, scope, status, size, seconds, end) is NotImplemented
        return
    made = access._line_c(prefix, scope, status, size, seconds, end)
    if made is not NotImplemented:
        assert made == expected
    assert access._gateway_line(scope, status, size, seconds, prefix, end) == expected


def _c_milliseconds(seconds: float) -> str:
    made = access._line_c("", {"method": "GET", "http_version": "1.1"}, 200, 0, seconds, "")
    return made.rsplit(" ", 1)[1]


@needs_c
@settings(max_examples=3000, deadline=None, database=None)
@given(milliseconds=st.one_of(
    st.floats(0, 2e6),
    st.integers(0, 10**7).map(lambda n: n / 20),  # ties in decimal: x.x5
    st.integers(0, 10**7).map(lambda n: n / 10 + 0.05),
    st.sampled_from([0.0, -0.0, 0.05, 0.15, 0.25, 999999.95, 1e6, 5e-324, 1e300]),
))
def test_c_milliseconds_are_pythons_tenths(milliseconds):
    """The duration's digits, which C makes without snprintf below a million away from a
    tie, are Python's `%.1f` of the same product, ties and their neighbours included."""
    for value in (milliseconds, -milliseconds):
        seconds = value / 1000
        assert _c_milliseconds(seconds) == f"{seconds * 1000:.1f}ms"


class _KeyThatEmptiesTheScope:
    """A key of the app's whose hash is `query_string`'s: the C function's last lookup compares
    it, and its __eq__ takes the method out of the scope (freeing it) and makes a str of the
    same size, which Python's allocator puts where the freed one was."""

    def __init__(self, scope: dict) -> None:
        self.scope = scope
        self.made: list[str] = []

    def __hash__(self) -> int:
        return hash("query_string")

    def __eq__(self, other: object) -> bool:
        if self.scope.pop("method", None) is not None:
            self.made.append("".join(["BAD", "-stale"]))
        return False


@needs_c
def test_a_value_taken_out_of_the_scope_during_a_lookup_is_still_held():
    """The line is of the values found, each held when found. Found in a review of the C: it
    read the freed method, here the str made in its place (AddressSanitizer with
    PYTHONMALLOC=malloc reports the read itself)."""
    scope = {"method": "".join(["GET", "-fresh"]), "http_version": "1.1"}
    scope[_KeyThatEmptiesTheScope(scope)] = 1
    assert access._line_c("", scope, 200, 1, 0.001, "") == '- - "GET-fresh  HTTP/1.1" 200 1B 1.0ms'
    assert "method" not in scope


@needs_c
@pytest.mark.parametrize("where", ["prefix", "method", "host", "end"])
def test_text_that_cannot_be_utf8_is_left_to_the_twin(where):
    """A lone surrogate (an app may rewrite its scope) cannot be UTF-8: C leaves the line to
    the twin instead of raising (found by coverage-guided fuzzing)."""
    odd = "\udd29"
    scope = {"client": (odd if where == "host" else "127.0.0.1", 5000),
             "method": odd if where == "method" else "GET", "raw_path": b"/",
             "http_version": "1.1"}
    prefix, end = (odd if where == "prefix" else ""), (odd if where == "end" else "\n")
    assert access._line_c(prefix, scope, 200, 1, 0.001, end) is NotImplemented
    expected = access.gateway_line_py(scope, 200, 1, 0.001, prefix, end)
    assert odd in expected and access._gateway_line(scope, 200, 1, 0.001, prefix, end) == expected
