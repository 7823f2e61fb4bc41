"""The counts behind the metrics that cost more than one integer increment: requests by
protocol, method and status class, and their durations. Kept only under --metrics-bind (the
exchange checks `state.tally is not None` once per request); metrics.py reads and resets them
once a second.

Plain Python on purpose: the request path imports this module, never metrics.py, so that
prometheus_client is not even imported when metrics are off.
"""

from __future__ import annotations

from bisect import bisect_left
from time import perf_counter
from typing import Any

# Label values, each list bounded: a request's method, HTTP version or status class outside them
# counts as the last ("other").
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other")
VERSIONS = ("1.0", "1.1", "2", "other")
STATUS_CLASSES = 6  # status // 100: 1 to 5 (0 unused)
_METHOD_INDEX = {method: index for index, method in enumerate(METHODS[:-1])}
_VERSION_INDEX = {version: index for index, version in enumerate(VERSIONS[:-1])}
# Upper bounds (seconds) of the request-duration histogram's buckets; +Inf follows.
DURATION_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Why a TLS handshake failed (admission.py): the `reason` label's values.
HANDSHAKE_FAILURES = ("timeout", "protocol_error", "client_closed")


class RequestTally:
    """Completed requests since the last `take`, as one flat list of counts indexed by
    (version, method, status class), and a histogram of their durations as bucket counts.
    Flat, and indexed through two small dicts, because this runs once per request: it costs
    about half of a dict keyed by label tuples."""

    __slots__ = ("counts", "buckets", "duration_sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(VERSIONS) * len(METHODS) * STATUS_CLASSES)
        self.buckets = [0] * (len(DURATION_BOUNDS) + 1)
        self.duration_sum = 0.0

    def record(self, exchange: Any) -> None:
        """One response completed (asgi.py `Exchange`)."""
        scope = exchange.scope
        seconds = perf_counter() - exchange.started_at
        self.counts[
            (_VERSION_INDEX.get(scope["http_version"], 3) * 8 + _METHOD_INDEX.get(scope["method"], 7))
            * STATUS_CLASSES + exchange.status // 100
        ] += 1
        # bisect_left: a duration equal to a bound falls in that bound's bucket (`le`).
        self.buckets[bisect_left(DURATION_BOUNDS, seconds)] += 1
        self.duration_sum += seconds

    def take(self) -> tuple[list[int], list[int], float]:
        """What was recorded since the last call; starts afresh."""
        taken = self.counts, self.buckets, self.duration_sum
        self.counts = [0] * len(taken[0])
        self.buckets = [0] * (len(DURATION_BOUNDS) + 1)
        self.duration_sum = 0.0
        return taken


def labels_of(index: int) -> tuple[str, str, int]:
    """(version, method, status class) of a `RequestTally.counts` index."""
    rest, status_class = divmod(index, STATUS_CLASSES)
    version, method = divmod(rest, len(METHODS))
    return VERSIONS[version], METHODS[method], status_class
