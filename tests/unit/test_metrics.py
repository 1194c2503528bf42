"""The metrics registry: registration rules, label handling and the Prometheus text format."""

from __future__ import annotations

import threading

import pytest

from topfib.collector.common.metrics import REGISTRY, Counter, Registry, format_value


def test_counter_renders_help_type_and_labelled_samples() -> None:
    reg = Registry()
    c = reg.counter("topfib_test_datagrams_total", "Datagrams received.", ("agent",))
    c.inc(agent="10.0.0.1")
    c.inc(2, agent="10.0.0.1")
    c.inc(agent="10.0.0.2")
    assert reg.render() == (
        "# HELP topfib_test_datagrams_total Datagrams received.\n"
        "# TYPE topfib_test_datagrams_total counter\n"
        'topfib_test_datagrams_total{agent="10.0.0.1"} 3\n'
        'topfib_test_datagrams_total{agent="10.0.0.2"} 1\n'
    )
    assert c.value(agent="10.0.0.1") == 3


def test_unlabelled_metric_renders_zero_before_first_update() -> None:
    reg = Registry()
    reg.gauge("topfib_test_up", "Up.")
    assert reg.render().splitlines()[-1] == "topfib_test_up 0"


def test_gauge_set_inc_remove_and_float_formatting() -> None:
    reg = Registry()
    g = reg.gauge("topfib_test_rate", "Rate.", ("switch",))
    g.set(1.5, switch="a")
    g.inc(-0.25, switch="a")
    g.set(7, switch="b")
    assert g.value(switch="a") == 1.25
    text = reg.render()
    assert 'topfib_test_rate{switch="a"} 1.25\n' in text
    assert 'topfib_test_rate{switch="b"} 7\n' in text
    g.remove(switch="b")
    assert 'switch="b"' not in reg.render()


def test_registering_twice_returns_the_same_metric() -> None:
    reg = Registry()
    first = reg.counter("topfib_test_x_total", "X.", ("reason",))
    second = reg.counter("topfib_test_x_total", "X again.", ["reason"])
    assert first is second
    assert isinstance(reg.get("topfib_test_x_total"), Counter)


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("unprefixed_total", ()),
        ("topfib_bad-name", ()),
        ("topfib_ok", ("bad-label",)),
        ("topfib_ok", ("__reserved",)),
    ],
)
def test_invalid_names_are_rejected(name: str, labels: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        Registry().counter(name, "h", labels)


def test_string_labelnames_rejected() -> None:
    with pytest.raises(TypeError):
        Registry().counter("topfib_ok", "h", "agent")


def test_conflicting_reregistration_is_rejected() -> None:
    reg = Registry()
    reg.counter("topfib_test_y", "Y.", ("a",))
    with pytest.raises(ValueError):
        reg.gauge("topfib_test_y", "Y.", ("a",))
    with pytest.raises(ValueError):
        reg.counter("topfib_test_y", "Y.", ("b",))


def test_wrong_labels_and_negative_increments_are_rejected() -> None:
    c = Registry().counter("topfib_test_z_total", "Z.", ("agent",))
    with pytest.raises(ValueError):
        c.inc()
    with pytest.raises(ValueError):
        c.inc(other="x")
    with pytest.raises(ValueError):
        c.inc(agent="a", other="x")
    with pytest.raises(ValueError):
        c.inc(-1, agent="a")


def test_escaping_of_help_and_label_values() -> None:
    reg = Registry()
    c = reg.counter("topfib_test_esc_total", "line1\nback\\slash", ("reason",))
    c.inc(reason='say "hi"\\\n')
    lines = reg.render().splitlines()
    assert lines[0] == "# HELP topfib_test_esc_total line1\\nback\\\\slash"
    assert lines[2] == 'topfib_test_esc_total{reason="say \\"hi\\"\\\\\\n"} 1'


def test_format_value_special_numbers() -> None:
    assert format_value(float("inf")) == "+Inf"
    assert format_value(float("-inf")) == "-Inf"
    assert format_value(float("nan")) == "NaN"
    assert format_value(3.0) == "3"
    assert format_value(0.1) == "0.1"
    assert format_value(1e300) == "1e+300"


def test_concurrent_increments_are_not_lost() -> None:
    c = Registry().counter("topfib_test_threads_total", "T.", ("t",))

    def work() -> None:
        for _ in range(10_000):
            c.inc(t="x")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.value(t="x") == 40_000


def test_global_registry_is_a_registry() -> None:
    # Registering on the global registry here would leak into /metrics output of other tests.
    assert isinstance(REGISTRY, Registry)
    with pytest.raises(ValueError):
        REGISTRY.counter("not_topfib_total", "wrong prefix")
