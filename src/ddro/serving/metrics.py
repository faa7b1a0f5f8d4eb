"""The service's counters and histograms, written in Prometheus' text exposition format (0.0.4)."""

from __future__ import annotations

import bisect
import threading
from collections import Counter

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Histogram:
    def __init__(self, buckets):
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += 1
        self.sum += value

    def lines(self, name: str, labels: str = "") -> list[str]:
        out, running = [], 0
        sep = "," if labels else ""
        for bound, count in zip(self.buckets, self.counts):
            running += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {running}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.total}')
        wrapped = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{wrapped} {self.sum:.6f}", f"{name}_count{wrapped} {self.total}"]
        return out


class ServiceMetrics:
    """Requests by endpoint and status, latency by endpoint, and the size of each searched batch."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: Counter = Counter()
        self.latency: dict[str, Histogram] = {}
        self.batches = Histogram(BATCH_BUCKETS)

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(endpoint, status)] += 1
            self.latency.setdefault(endpoint, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def batch(self, size: int) -> None:
        with self._lock:
            self.batches.observe(size)

    def text(self, waiting: int) -> str:
        with self._lock:
            lines = ["# HELP ddro_requests_total Requests answered, by endpoint and HTTP status.",
                     "# TYPE ddro_requests_total counter"]
            lines += [f'ddro_requests_total{{endpoint="{e}",status="{s}"}} {n}'
                      for (e, s), n in sorted(self.requests.items())]
            lines += ["# HELP ddro_errors_total Requests answered with a 4xx or 5xx status.",
                      "# TYPE ddro_errors_total counter",
                      f"ddro_errors_total {sum(n for (_, s), n in self.requests.items() if s >= 400)}",
                      "# HELP ddro_request_seconds Time from a request's arrival to its answer.",
                      "# TYPE ddro_request_seconds histogram"]
            for endpoint, histogram in sorted(self.latency.items()):
                lines += histogram.lines("ddro_request_seconds", f'endpoint="{endpoint}"')
            lines += ["# HELP ddro_batch_queries Queries searched together in one beam search.",
                      "# TYPE ddro_batch_queries histogram", *self.batches.lines("ddro_batch_queries"),
                      "# HELP ddro_queue_waiting Search requests waiting for the model.",
                      "# TYPE ddro_queue_waiting gauge", f"ddro_queue_waiting {waiting}"]
        return "\n".join(lines) + "\n"
