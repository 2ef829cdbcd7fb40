"""The hand-written Prometheus exposition follows the text format's rules."""

from __future__ import annotations

import pytest

from baghunter.serving.metrics import Counter, Gauge, Histogram


def test_histogram_buckets_are_cumulative_and_end_with_inf() -> None:
    histogram = Histogram("demo_seconds", "Demo.", buckets=(0.1, 1.0), label_names=("route",))
    for value in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(value, "/x")

    lines = list(histogram.render())

    assert lines[:2] == ["# HELP demo_seconds Demo.", "# TYPE demo_seconds histogram"]
    assert lines[2:] == [
        'demo_seconds_bucket{route="/x",le="0.1"} 2',  # 0.1 itself falls in le="0.1"
        'demo_seconds_bucket{route="/x",le="1"} 3',
        'demo_seconds_bucket{route="/x",le="+Inf"} 4',
        'demo_seconds_sum{route="/x"} 3.65',
        'demo_seconds_count{route="/x"} 4',
    ]


def test_label_values_are_escaped() -> None:
    counter = Counter("demo_total", "Demo.", ("path",))
    counter.inc('a"b\\c\nd')

    assert list(counter.render())[-1] == 'demo_total{path="a\\"b\\\\c\\nd"} 1'


def test_unlabelled_counter_is_exposed_before_its_first_increment() -> None:
    assert list(Counter("demo_total", "Demo.").render())[-1] == "demo_total 0"


def test_counter_only_goes_up() -> None:
    with pytest.raises(ValueError):
        Counter("demo_total", "Demo.").inc(amount=-1)


def test_info_gauge_keeps_only_the_latest_series() -> None:
    gauge = Gauge("demo_info", "Demo.", ("version",))
    gauge.set_only(1, "1")
    gauge.set_only(1, "2")

    assert list(gauge.render())[2:] == ['demo_info{version="2"} 1']
