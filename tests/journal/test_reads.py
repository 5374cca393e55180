"""Reads from the right source, on a sandbox whose Resource Graph lags the providers and does not
index JIT policies (as ARG): verification after a write and re-plans inside an apply read ARM
itself, JIT policies come from the provider's per-region list call."""

from __future__ import annotations

from ztwizard.apply import apply_changes, start_session, unset_params
from ztwizard.engine import inspect

GRAPH = "/providers/microsoft.resourcegraph/resources"


def _graph_queries(sb) -> int:
    return sum(1 for _m, path, _s in sb.request_log if path.split("?")[0].lower().endswith(GRAPH))


def test_verification_reads_arm_not_the_lagging_graph(world):
    w = world(estate="reference", graph_lag_ms=60_000)  # the index shows no write for a minute
    changes = inspect(w.gw, step_ids=["storage-1", "vm-7"]).changes()
    sid = start_session(w.journal, w.gw, changes)
    before = _graph_queries(w.sb)
    report = apply_changes(w.gw, w.journal, sid, changes, allow_disruptive=True, allow_cost=True)
    assert report.applied and not report.failed, "\n".join(report.lines())
    assert _graph_queries(w.sb) == before, "nothing after the writes asked Resource Graph"
    applied = {(c.check, c.resource_id.lower()) for c in changes if c.id in {o.change_id for o in report.applied}}
    verdict = {(f.check, f.resource_id.lower()): f.status for s in report.verification for f in s.findings}
    assert applied and all(verdict.get(k) == "pass" for k in applied if k in verdict), verdict
    # The lagging index would still show the old values: a plan from it proposes them again.
    assert inspect(w.gw, step_ids=["storage-1"]).changes(), "the graph still lags (the test's premise)"
    # (storage-1g's switch waits for a person to name the key: never sent, so not proposed again)
    assert not [c for c in inspect(w.gw, step_ids=["storage-1"], use_graph=False).changes() if not unset_params(c)]


def test_jit_policies_come_from_the_providers_list_call(world):
    w = world(estate="reference")
    step = inspect(w.gw, step_ids=["vm-8"]).changes()  # vm-8c's JIT policy needs Defender for Servers
    changes = [c for c in step if c.check == "vm-8c" and c.action == "create"]
    assert changes, "vm-8c proposes a JIT policy"
    sid = start_session(w.journal, w.gw, step)
    report = apply_changes(w.gw, w.journal, sid, step, allow_disruptive=True, allow_cost=True)
    assert {c.id for c in changes} <= {o.change_id for o in report.applied}, "\n".join(report.lines())
    start = len(w.sb.request_log)
    inv = w.gw.inventory()
    jit = {r["id"].lower() for r in inv.of_type("Microsoft.Security/locations/jitNetworkAccessPolicies")}
    assert {c.resource_id.lower() for c in changes} <= jit
    listed = [p for _m, p, _s in list(w.sb.request_log)[start:]
              if p.split("?")[0].lower().endswith("/providers/microsoft.security/jitnetworkaccesspolicies")]
    assert listed, "read by the provider's list call"
    assert not [c for c in inspect(w.gw, check_ids=["vm-8c"]).changes() if c.action == "create"]
