"""The counts behind the metrics that cost more than one integer increment: requests by
protocol, method and status class, and their durations. Kept only under --metrics-bind (the
exchange checks `state.tally is not None` once per request); metrics.py reads and resets them
once a second.

Plain Python on purpose: the request path imports this module, never metrics.py, so that
prometheus_client is not even imported when metrics are off.
"""

from __future__ import annotations

from bisect import bisect_left

# Method labels: these, and "other" for the rest, so a client cannot grow the label set.
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"))
# Upper bounds (seconds) of the request-duration histogram's buckets; +Inf follows.
DURATION_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Why a TLS handshake failed (admission.py): the `reason` label's values.
HANDSHAKE_FAILURES = ("timeout", "protocol_error", "client_closed")


class RequestTally:
    """Completed requests since the last `take`, keyed by (http_version, method, status
    class), and a histogram of their durations as bucket counts."""

    __slots__ = ("counts", "buckets", "duration_sum")

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}
        self.buckets = [0] * (len(DURATION_BOUNDS) + 1)
        self.duration_sum = 0.0

    def record(self, http_version: str, method: str, status: int, seconds: float) -> None:
        key = (http_version, method if method in METHODS else "other", status // 100)
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        # bisect_left: a duration equal to a bound falls in that bound's bucket (`le`).
        self.buckets[bisect_left(DURATION_BOUNDS, seconds)] += 1
        self.duration_sum += seconds

    def take(self) -> tuple[dict[tuple[str, str, int], int], list[int], float]:
        """What was recorded since the last call; starts afresh."""
        taken = self.counts, self.buckets, self.duration_sum
        self.counts = {}
        self.buckets = [0] * (len(DURATION_BOUNDS) + 1)
        self.duration_sum = 0.0
        return taken
