"""Detection report scoring, WHIDS spec §5.3, on a fleet computed by hand."""

from __future__ import annotations

from vigil.manager.scoring import ReportState, RuleInfo, compute_reports, go_round, trunc

RULES = {"S1": RuleInfo(5, ("T1",), ("exec",)), "S2": RuleInfo(3, ("T2", "T1"), ("exec", "persist"))}
NS = 1_000_000_000


def test_go_rounding_and_truncation() -> None:
    assert [go_round(x) for x in (0.5, 1.5, 2.5, 2.4999, -2.5)] == [1, 2, 3, 2, -3]
    assert trunc(66.6666, 2) == 66.66 and trunc(4.339, 2) == 4.33 and trunc(99.99, 1) == 99.9


def test_fleet_reports() -> None:
    a = ReportState("A")
    a.add_alert(["S1", "S2"], 10 * NS, RULES)
    a.add_alert(["S1"], 30 * NS, RULES)
    b = ReportState("B")
    b.add_alert(["S3"], 20 * NS, RULES)  # unknown to the manager (e.g. an agent builtin)
    reports = compute_reports({"A": a, "B": b})
    ra, rb = reports["A"], reports["B"]
    assert ra["count-by-signature"] == {"S1": 2, "S2": 1} and ra["signatures"] == ["S1", "S2"]
    assert ra["techniques"] == ["T1", "T2"] and ra["tactics"] == ["exec", "persist"]
    assert (ra["alert-count"], ra["signature-count"]) == (2, 3)
    assert (ra["sum-alert-criticality"], ra["sum-rule-criticality"]) == (13, 13)
    assert ra["avg-alert-criticality"] == 6.5 and ra["std-dev-alert-criticality"] == 1.5
    assert ra["avg-signature-criticality"] == 4.33 and ra["std-dev-signature-criticality"] == 0.94
    assert ra["count-uniq-signatures"] == 2 and ra["signature-diversity"] == 66.66
    assert ra["signature-criticality-metric"] == 8  # 2 * round(4.33)
    assert ra["alert-criticality-metric"] == 433  # round(6.5 * 66.66 = 433.29)
    assert ra["score"] == 441 and ra["bounded-score"] == 100.0
    assert (ra["start-time"], ra["median-time"], ra["stop-time"]) == (
        "1970-01-01T00:00:10Z",
        "1970-01-01T00:00:20Z",
        "1970-01-01T00:00:30Z",
    )
    assert rb["signature-diversity"] == 33.33 and rb["score"] == 0 and rb["bounded-score"] == 0.0
    assert rb["techniques"] is None and rb["std-dev-signature-criticality"] == 0.0


def test_alert_criticality_is_capped_at_10() -> None:
    state = ReportState("C")
    rules = {"X": RuleInfo(8), "Y": RuleInfo(9)}
    state.add_alert(["X", "Y"], 0, rules)
    report = compute_reports({"C": state})["C"]
    assert report["sum-alert-criticality"] == 10 and report["sum-rule-criticality"] == 17


def test_state_round_trips_through_json() -> None:
    state = ReportState("A")
    state.add_alert(["S1", "S2"], 5, RULES)
    assert ReportState.from_json(state.to_json()) == state


def test_bounded_score_is_relative_to_the_best_endpoint() -> None:
    hi, lo = ReportState("hi"), ReportState("lo")
    for _ in range(3):
        hi.add_alert(["S1", "S2"], 0, RULES)
    lo.add_alert(["S2"], 0, RULES)
    reports = compute_reports({"hi": hi, "lo": lo})
    # hi: avg-alert 8, D=100, sig-metric 2*round(4)=8, alert-metric 800 -> 808
    # lo: avg-alert 3, D=50, sig-metric 1*3=3, alert-metric 150 -> 153; 153*100/808 = 18.93 -> 18.9
    assert (reports["hi"]["score"], reports["lo"]["score"]) == (808, 153)
    assert reports["lo"]["bounded-score"] == 18.9
