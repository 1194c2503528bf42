"""A small, dependency-free Prometheus metrics registry (text exposition format 0.0.4).

Modules register their metrics at import time on the global :data:`REGISTRY`; registering a name
again returns the metric already there, so re-imports and several users of one metric are fine.
The API serves :meth:`Registry.render` on ``/metrics``.

Thread safety: each metric guards its samples with a lock, so the collector thread and the event
loop can update metrics while the API renders them.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator, Sequence

PREFIX = "topfib_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

LabelValues = tuple[str, ...]


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value: float) -> str:
    """Prometheus number syntax: integers without a decimal point, ±Inf and NaN spelled out."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**63:
        return str(int(value))
    return repr(float(value))


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, labelnames: tuple[str, ...]) -> None:
        self.name = name
        self.help = help
        self.labelnames = labelnames
        self._values: dict[LabelValues, float] = {}
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> LabelValues:
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {tuple(labels)}")
        try:
            return tuple(str(labels[n]) for n in self.labelnames)
        except KeyError:
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {tuple(labels)}") from None

    def value(self, **labels: str) -> float:
        """Current value for these labels (0 if never set); for tests and status pages."""
        key = self._key(labels)
        with self._lock:
            return self._values.get(key, 0.0)

    def samples(self) -> list[tuple[LabelValues, float]]:
        with self._lock:
            return sorted(self._values.items())

    def render_lines(self) -> Iterator[str]:
        yield f"# HELP {self.name} {_escape_help(self.help)}"
        yield f"# TYPE {self.name} {self.kind}"
        samples = self.samples()
        if not self.labelnames and not samples:
            # An unlabelled metric exists from registration on; show it as 0.
            samples = [((), 0.0)]
        for key, value in samples:
            if key:
                pairs = ",".join(
                    f'{n}="{_escape_label_value(v)}"' for n, v in zip(self.labelnames, key, strict=True)
                )
                yield f"{self.name}{{{pairs}}} {format_value(value)}"
            else:
                yield f"{self.name} {format_value(value)}"


class Counter(_Metric):
    """A monotonically increasing count."""

    kind = "counter"

    def inc(self, amount: float = 1, **labels: str) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: counters only go up (got {amount})")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount


class Gauge(_Metric):
    """A value that goes up and down."""

    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def remove(self, **labels: str) -> None:
        """Drop one label set (e.g. a switch removed from the config)."""
        key = self._key(labels)
        with self._lock:
            self._values.pop(key, None)


class Registry:
    """Named metrics, rendered in registration order."""

    def __init__(self, prefix: str = PREFIX) -> None:
        self._prefix = prefix
        self._metrics: dict[str, _Metric] = {}
        self._lock = threading.Lock()

    def _register(self, cls: type[_Metric], name: str, help: str, labelnames_in: Sequence[str]) -> _Metric:
        labelnames = tuple(labelnames_in)
        if isinstance(labelnames_in, str):
            raise TypeError(f"{name}: labelnames must be a sequence of names, not a string")
        if not name.startswith(self._prefix) or not _NAME_RE.match(name):
            raise ValueError(
                f"metric name {name!r} must match {_NAME_RE.pattern} and start with {self._prefix}"
            )
        for label in labelnames:
            if not _LABEL_RE.match(label) or label.startswith("__"):
                raise ValueError(f"{name}: invalid label name {label!r}")
        with self._lock:
            existing = self._metrics.get(name)
            if existing is None:
                metric = cls(name, help, labelnames)
                self._metrics[name] = metric
                return metric
        if type(existing) is not cls or existing.labelnames != labelnames:
            raise ValueError(
                f"metric {name} already registered as {existing.kind} with labels {existing.labelnames}"
            )
        return existing

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        metric = self._register(Counter, name, help, labelnames)
        assert isinstance(metric, Counter)
        return metric

    def gauge(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Gauge:
        metric = self._register(Gauge, name, help, labelnames)
        assert isinstance(metric, Gauge)
        return metric

    def get(self, name: str) -> Counter | Gauge | None:
        with self._lock:
            metric = self._metrics.get(name)
        return metric if isinstance(metric, Counter | Gauge) else None

    def render(self) -> str:
        with self._lock:
            metrics = list(self._metrics.values())
        lines: list[str] = []
        for metric in metrics:
            lines.extend(metric.render_lines())
        return "\n".join(lines) + "\n" if lines else ""


REGISTRY = Registry()
