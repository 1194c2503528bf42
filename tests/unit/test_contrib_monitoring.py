"""contrib/prometheus alert rules and contrib/grafana dashboard: valid, tested, and built only from
metrics topfib really exports.

Every metric an alert or a panel queries must be registered in the code and listed in README's
Metrics table (with its type and labels): a renamed or removed metric breaks this test instead of
silently emptying a panel or muting an alert. Counters are only read through rate()/increase(),
and aggregations only group by labels the metric has. promtool (Debian package ``prometheus``)
checks the syntax of both and runs the rules' unit tests.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]

from tests.unit.test_readme import README, REPO, _metric_names

RULES = REPO / "contrib" / "prometheus" / "topfib.rules.yml"
RULE_TESTS = REPO / "contrib" / "prometheus" / "topfib.rules.test.yml"
DASHBOARD = REPO / "contrib" / "grafana" / "topfib.json"
PROMETHEUS_OWN = {"up"}  # series Prometheus itself writes for every target
TARGET_LABELS = {"instance", "job"}  # added by Prometheus at scrape time
# Grafana's variables, replaced by values Prometheus accepts so promtool can parse the queries
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "6h", "$switch": ".*", "$instance": ".*"}

METRIC_ROW = re.compile(r"^\| `(topfib_[a-z0-9_]+)` \| (counter|gauge) \| ([a-z_, ]*) \|", re.MULTILINE)
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
            "offset"}
COUNTER_READERS = {"rate", "irate", "increase"}


def documented_metrics() -> dict[str, tuple[str, set[str]]]:
    """README's Metrics table: name -> (type, labels)."""
    return {name: (kind, {label.strip() for label in labels.split(",") if label.strip()})
            for name, kind, labels in METRIC_ROW.findall(README)}


def rule_expressions() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def dashboard_expressions() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = {f"{panel['title']} {target['refId']}": target["expr"]
             for panel in dashboard["panels"] for target in panel.get("targets", [])}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":  # label_values(metric, label): the metric part is a selector
            match = re.fullmatch(r"label_values\((\w+), *(\w+)\)", variable["query"]["query"])
            assert match, f"variable {variable['name']}: unexpected query {variable['query']}"
            exprs[f"variable {variable['name']}"] = f"count by ({match[2]}) ({match[1]})"
    return exprs


def without_variables(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def metrics_in(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers that are not functions, keywords, label
    names (inside {} or a by/without/on/ignoring list), durations or strings."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", bare)
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare):
        following = bare[match.end():].lstrip()
        if match[0] in KEYWORDS or following.startswith("("):
            continue
        names.add(match[0])
    return names


def all_expressions() -> dict[str, str]:
    return {**{f"alert {name}": expr for name, expr in rule_expressions().items()},
            **{f"panel {name}": without_variables(expr) for name, expr in dashboard_expressions().items()}}


@pytest.mark.parametrize("where", sorted(all_expressions()))
def test_every_queried_metric_is_exported_and_documented(where: str) -> None:
    expr = all_expressions()[where]
    metrics = metrics_in(expr)
    assert metrics, f"{where}: no metric in {expr}"
    exported = _metric_names() | PROMETHEUS_OWN
    documented = set(documented_metrics()) | PROMETHEUS_OWN
    assert metrics <= exported, f"{where}: not exported by topfib: {sorted(metrics - exported)}"
    assert metrics <= documented, f"{where}: not in README's Metrics table: {sorted(metrics - documented)}"


@pytest.mark.parametrize("where", sorted(all_expressions()))
def test_counters_are_read_as_rates_and_groupings_use_existing_labels(where: str) -> None:
    expr = all_expressions()[where]
    documented = documented_metrics()
    lists_labels = where.startswith("panel variable")  # label_values() takes a metric of any type
    for name in metrics_in(expr) - PROMETHEUS_OWN:
        kind, labels = documented[name]
        for use in [] if lists_labels else re.finditer(rf"\b{name}\b", expr):
            reader = re.search(r"(\w+)\(\s*$", expr[: use.start()])
            reads_rate = reader is not None and reader[1] in COUNTER_READERS
            assert reads_rate == (kind == "counter"), f"{where}: {name} is a {kind}, read as {expr}"
        for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            used = {label.strip() for label in grouping.split(",") if label.strip()}
            assert used <= labels | TARGET_LABELS, f"{where}: {name} has no label {sorted(used - labels)}"


def test_the_dashboard_covers_the_switch_health_metrics() -> None:
    queried = set().union(*(metrics_in(without_variables(e)) for e in dashboard_expressions().values()))
    for name in ("topfib_bgp_session_up", "topfib_coverage_ratio", "topfib_fib_installed_routes",
                 "topfib_fib_cap_routes", "topfib_exabgp_restarts_total",
                 "topfib_sflow_received_datagrams_total", "topfib_sflow_lost_datagrams_total",
                 "topfib_api_store_unavailable_total"):
        assert name in queried, f"dashboard lacks {name}"


def test_metric_extraction_skips_functions_keywords_and_labels() -> None:
    expr = 'sum by (switch) (rate(topfib_a_total{switch=~"x", listen="y"}[5m])) / on(instance) topfib_b > 0.5'
    assert metrics_in(expr) == {"topfib_a_total", "topfib_b"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian package prometheus, see scripts/setup.sh)")
    return path


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)


def test_promtool_checks_the_rules() -> None:
    result = run_promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = run_promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test() -> None:
    tested = {case["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert set(rule_expressions()) == tested


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """The panels' PromQL, with Grafana's variables filled in, as recording rules promtool checks."""
    rules = [{"record": f"topfib_dashboard:query_{index}", "expr": without_variables(expr)}
             for index, expr in enumerate(dashboard_expressions().values())]
    checked = tmp_path / "dashboard.rules.yml"
    checked.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool("check", "rules", str(checked))
    assert result.returncode == 0, result.stdout + result.stderr
