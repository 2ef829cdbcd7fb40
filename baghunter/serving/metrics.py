"""Service metrics in the Prometheus text exposition format, without a client library.

The service needs three instrument kinds (counters, one gauge family, histograms) and one
text format; a hundred lines of code cost less than a dependency that must be kept in step
with FastAPI's worker model. Every instrument is guarded by its own lock because requests
are recorded from the event loop while batch sizes are recorded from the inference thread.

Label values are escaped as the format requires; label *names* are fixed in code.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable, Sequence

LabelValues = tuple[str, ...]

# Request latency buckets in seconds: a small CPU model answers in tens of milliseconds, a
# VGG16 batch on a CPU in about a second, and anything beyond 10 s is an incident.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

# Micro-batch sizes: powers of two up to the largest batch a CPU replica sensibly runs.
BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_labels(names: Sequence[str], values: LabelValues, extra: str = "") -> str:
    pairs = [f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _format_number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Counter:
    """A monotonically increasing count per label combination."""

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = ()) -> None:
        self.name = name
        self.help_text = help_text
        self.label_names = tuple(label_names)
        # An unlabelled series exists from the start, so a scrape shows 0 rather than nothing.
        self._values: dict[LabelValues, float] = {} if self.label_names else {(): 0.0}
        self._lock = threading.Lock()

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help_text}"
        yield f"# TYPE {self.name} counter"
        with self._lock:
            items = sorted(self._values.items())
        for labels, value in items:
            yield f"{self.name}{_format_labels(self.label_names, labels)} {_format_number(value)}"


class Gauge:
    """A value that goes up and down; ``set_only`` replaces all series with one.

    ``set_only`` serves "info" style gauges (the loaded model version as a label with value
    1): when the model changes, the old version's series must disappear, not linger at 1.
    """

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = ()) -> None:
        self.name = name
        self.help_text = help_text
        self.label_names = tuple(label_names)
        self._values: dict[LabelValues, float] = {}
        self._lock = threading.Lock()

    def set(self, value: float, *labels: str) -> None:
        with self._lock:
            self._values[labels] = value

    def set_only(self, value: float, *labels: str) -> None:
        with self._lock:
            self._values = {labels: value}

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help_text}"
        yield f"# TYPE {self.name} gauge"
        with self._lock:
            items = sorted(self._values.items())
        for labels, value in items:
            yield f"{self.name}{_format_labels(self.label_names, labels)} {_format_number(value)}"


class Histogram:
    """Observations counted into cumulative ``le`` buckets, with their sum and count."""

    def __init__(
        self,
        name: str,
        help_text: str,
        buckets: Sequence[float],
        label_names: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.help_text = help_text
        self.label_names = tuple(label_names)
        self.buckets = tuple(sorted(buckets))
        # Per label combination: per-bucket (non-cumulative) counts, the last one for +Inf.
        self._counts: dict[LabelValues, list[int]] = {}
        self._sums: dict[LabelValues, float] = {}
        if not self.label_names:
            self._counts[()] = [0] * (len(self.buckets) + 1)
            self._sums[()] = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float, *labels: str) -> None:
        index = bisect.bisect_left(self.buckets, value)
        with self._lock:
            counts = self._counts.setdefault(labels, [0] * (len(self.buckets) + 1))
            counts[index] += 1
            self._sums[labels] = self._sums.get(labels, 0.0) + value

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help_text}"
        yield f"# TYPE {self.name} histogram"
        with self._lock:
            items = sorted((labels, list(counts)) for labels, counts in self._counts.items())
            sums = dict(self._sums)
        for labels, counts in items:
            cumulative = 0
            for bound, count in zip((*self.buckets, math.inf), counts, strict=True):
                cumulative += count
                le = f'le="{_format_number(bound)}"'
                yield (
                    f"{self.name}_bucket{_format_labels(self.label_names, labels, le)} {cumulative}"
                )
            label_text = _format_labels(self.label_names, labels)
            yield f"{self.name}_sum{label_text} {_format_number(sums[labels])}"
            yield f"{self.name}_count{label_text} {cumulative}"


class ServiceMetrics:
    """Every instrument the brand service exposes on ``/metrics``."""

    def __init__(self) -> None:
        self.requests = Counter(
            "baghunter_http_requests_total",
            "HTTP requests answered, by route template, method and status code.",
            ("route", "method", "status"),
        )
        self.latency = Histogram(
            "baghunter_http_request_duration_seconds",
            "Time from receiving a request to sending its last byte.",
            LATENCY_BUCKETS_S,
            ("route",),
        )
        self.batch_size = Histogram(
            "baghunter_batch_size",
            "Images per model call; its _count is the number of model calls.",
            BATCH_SIZE_BUCKETS,
        )
        self.batch_failures = Counter(
            "baghunter_batch_failures_total", "Model calls that raised; their requests got 500."
        )
        self.model_info = Gauge(
            "baghunter_model_info",
            "The model being served (value 1); absent while none is loaded.",
            ("name", "version", "alias"),
        )
        self.model_loaded = Gauge(
            "baghunter_model_loaded", "1 when a model is loaded and requests can be served."
        )
        self.model_swaps = Counter(
            "baghunter_model_swaps_total", "Models put into service (the first load included)."
        )
        self.model_load_failures = Counter(
            "baghunter_model_load_failures_total",
            "Registry checks or model loads that failed; the previous model kept serving.",
        )
        self.model_loaded.set(0)

    def render(self) -> str:
        """The whole exposition, one instrument after the other, newline-terminated."""
        instruments = (
            self.requests,
            self.latency,
            self.batch_size,
            self.batch_failures,
            self.model_info,
            self.model_loaded,
            self.model_swaps,
            self.model_load_failures,
        )
        lines = [line for instrument in instruments for line in instrument.render()]
        return "\n".join(lines) + "\n"
