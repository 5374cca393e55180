"""Offline audits at scale: the estate goes straight into the inventory (no HTTP emulation) and
judges exactly what the sandbox-served estate judges; the JSON report streams and still says
the same; redaction and subnet choice stayed the same while getting linear."""

from __future__ import annotations

import json
import os

import pytest

from ztwizard import engine, report
from ztwizard.cli import main
from ztwizard.gateway import Gateway
from ztwizard.offline import EstateGateway
from ztwizard.redact import REDACTED, SECRET_VALUES, holds_secret, is_secret_value, scrub, scrub_for_output
from ztwizard.sandbox import Sandbox
from ztwizard.steps import storage as st
from ztwizard.target import estate_target, in_process_target


def _verdicts(plan):
    """What a plan decides: every finding's status and every change's target and method."""
    return ([(f.check, f.resource_id.lower(), f.status) for s in plan.steps for f in s.findings],
            [(c.check, c.resource_id.lower(), c.method, c.action) for s in plan.steps for c in s.changes])


@pytest.mark.parametrize("spec", ["reference", "scale:1200"])
def test_offline_judges_what_the_served_estate_judges(tmp_path, spec):
    sb = Sandbox(None, estate=spec)
    path = tmp_path / "estate.json"
    path.write_text(json.dumps(sb.export()))
    served = engine.survey(Gateway(in_process_target(sb, read_only=True, kind="estate"))).plan
    offline_gw = EstateGateway(estate_target(str(path)))
    offline = engine.survey(offline_gw).plan
    # vm-7d judges the agent's status, which only a live GET {vm}/instanceView gives: an estate
    # file holds none, so offline it is a person's look, never a guessed pass.
    live_only = {"vm-7d"}
    agent = [f for s in offline.steps for f in s.findings if f.check in live_only]
    assert agent and {f.status for f in agent} == {"manual"}

    def judged(plan):
        findings, changes = _verdicts(plan)
        return [f for f in findings if f[0] not in live_only], changes
    assert judged(offline) == judged(served)
    assert sb.tally.requests > 0
    assert offline.target["subscriptions"] == served.target["subscriptions"]


def test_offline_sends_no_request_and_refuses_writes(tmp_path):
    target = estate_target("reference")
    assert target.transport is None and target.sandbox is None  # nothing to send requests to
    gw = EstateGateway(target)
    inv = gw.inventory()
    assert inv.of_type("Microsoft.Storage/storageAccounts")
    some = inv.of_type("Microsoft.Storage/storageAccounts")[0]
    assert gw.read(some["id"]) == some and gw.read(some["id"]) is not some
    from ztwizard.errors import ZtwError

    with pytest.raises(ZtwError, match="read-only"):
        gw.write("PATCH", some["id"], {"properties": {}})


def test_offline_scope_narrows_by_subscription_and_group():
    gw = EstateGateway(estate_target("scale:600"))
    subs = gw.list_subscriptions()
    assert len(subs) >= 20
    one = gw.inventory(subscriptions=[subs[0]])
    assert one.subscriptions == [subs[0].lower()] or one.subscriptions == [subs[0]]
    assert {r["id"].split("/")[2].lower() for r in one.resources.values()} == {subs[0].lower()}
    groups = gw.list_resource_groups(subs[0])
    narrowed = gw.inventory(subscriptions=[subs[0]], resource_groups=[groups[0]["name"]])
    assert all((r["id"].lower().startswith(groups[0]["id"].lower()) or "/resourcegroups/" not in r["id"].lower())
               for r in narrowed.resources.values())


@pytest.mark.parametrize("spec", ["reference", "scale:2000"])
def test_streamed_json_report_says_what_the_whole_one_said(spec):
    gw = EstateGateway(estate_target(spec))
    plan = engine.survey(gw).plan
    whole = scrub(plan.to_dict())
    streamed = "".join(report.json_chunks(plan))
    assert json.loads(streamed) == whole
    assert report.render(plan, "json") == streamed
    assert plan.to_dict() == plan.to_dict(copy=False)  # the view is the same data


def test_streamed_report_still_redacts():
    gw = EstateGateway(estate_target("reference"))
    plan = engine.survey(gw).plan
    change = next(c for s in plan.steps for c in s.changes)
    change.body = {"properties": {"settings": {"password": "hunter2"},
                                  "note": "DefaultEndpointsProtocol=https;AccountKey=abc123=="}}
    out = report.render(plan, "json")
    assert "hunter2" not in out and "abc123" not in out


@pytest.mark.parametrize("value", [
    "AccountKey=abc", "x?sig=abc", "Password=1;", "eyJabcdefghij.abcdefghijk", "Bearer x", "bearer y",
    "-----BEGIN RSA PRIVATE KEY-----", "hello", "/subscriptions/x/resourceGroups/y", "pwd = x", "a=b", "",
    "SharedAccessSignature=sv", "Server=tcp;Password=x", "keyeyJ", "Bearerless",
])
def test_one_pass_secret_test_agrees_with_every_pattern(value):
    secret = any(p.search(value) for p in SECRET_VALUES)
    assert is_secret_value(value) == secret
    assert (scrub({"note": value})["note"] == REDACTED) == secret  # the walk's own inline test too


def test_secret_keys_are_redacted_however_many_keys_came_before():
    tags = {f"team{i}": "x" for i in range(70_000)}  # more distinct keys than the verdicts kept
    out = scrub({"tags": tags, "properties": {"adminPassword": "hunter2", "Keys": ["get", "list"]}})
    assert out["tags"] == tags
    assert out["properties"] == {"adminPassword": REDACTED, "Keys": ["get", "list"]}
    assert scrub({"Password": "again"}) == {"Password": REDACTED}


@pytest.mark.parametrize(("value", "secret"), [
    ({"properties": {"settings": {"password": "hunter2"}}}, True),
    ({"properties": {"Password": None, "adminPassword": False, "secret": {}, "keys": []}}, False),
    ({"keys": [{"value": "abc"}]}, True),
    ({"note": "Server=tcp;Password=x"}, True),
    ({"tags": ["a", ["Bearer abc"]]}, True),
    ([{"name": "x"}, "AccountKey=abc"], True),
    ({"properties": {"minimumTlsVersion": "TLS1_2", "rules": [{"port": 22, "ok": True}]}, "id": "/subscriptions/x"},
     False),
    ({"a": {"b": {"c": [{"d": "eyJabcdefghij.abcdefghijk"}]}}}, True),
    ({1: "x", "nested": [[], {}, None, 3.5], "url": "https://x/?a=b"}, False),
])
def test_the_reports_no_copy_path_scrubs_exactly_what_scrub_does(value, secret):
    """The JSON report encodes a finding or change itself when it holds no secret: only where
    scrub would change nothing."""
    assert holds_secret(value) is secret
    out = scrub_for_output(value)
    assert out == scrub(value)
    assert (out is value) is not secret
    assert (scrub(value) != value) is secret


def test_endpoint_subnet_is_the_best_scored_subnet():
    """The linear choice equals scoring every subnet for every account (ties: the first)."""
    inv = EstateGateway(estate_target("scale:3000")).inventory()
    for acct in inv.of_type(st.ACCOUNT):
        best = None
        for vnet in inv.of_type(st.VNET):
            for subnet in inv.children(vnet["id"], st.SUBNET):
                score = st._subnet_score(subnet, vnet, acct)
                if score is not None and (best is None or score < best[0]):
                    best = (score, subnet)
        assert (st.endpoint_subnet(acct, inv) or {}).get("id") == (best[1]["id"] if best else None)


def test_cli_offline_json_to_a_file_is_whole_and_0600(tmp_path, capsys):
    out = tmp_path / "plan.json"
    code = main(["--state-dir", str(tmp_path / "state"), "--estate", "scale:500", "plan", "--format", "json",
                 "--output", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["summary"]["changes"] == sum(len(s["changes"]) for s in data["steps"]) > 0
    assert os.stat(out).st_mode & 0o777 == 0o600


def test_flow_log_account_is_the_first_of_the_vnets_subscription_in_its_region():
    """spoke-5d's indexed choice equals scanning the region's accounts for each VNet."""
    from ztwizard.steps import spoke as sp

    inv = EstateGateway(estate_target("scale:3000")).inventory()
    plan = engine.make_plan(inv, check_ids=["spoke-5d"])
    creates = {c.body["properties"]["targetResourceId"].lower(): c.params["storageId"]
               for s in plan.steps for c in s.changes if c.action == "create"}
    assert creates
    accounts = inv.of_type(sp.STORAGE)
    for vnet in inv.of_type(sp.VNET):
        if vnet["id"].lower() not in creates:
            continue
        here = [a for a in accounts if sp.loc(a) == sp.loc(vnet)]
        same_sub = [a for a in here if a["id"].split("/")[2].lower() == vnet["id"].split("/")[2].lower()]
        assert creates[vnet["id"].lower()] == (same_sub or here)[0]["id"]


def test_openings_with_each_nsgs_rules_read_once_decide_as_rule_by_rule():
    """The exposure walk reads each NSG's rules once per NIC; its openings are those of asking
    `decide` (which reads the rules itself) for every NSG, port and protocol."""
    from ztwizard.steps import exposure
    from ztwizard.steps import vm as vmsteps

    inv = EstateGateway(estate_target("scale:1500")).inventory()
    found = 0
    for vm in inv.of_type(vmsteps.VM):
        nics = vmsteps.vm_nics(vm, inv)
        want = []
        for target in exposure.targets(nics, inv):
            for port in vmsteps.MANAGEMENT_PORTS:
                for protocol in exposure.PROTOCOLS:
                    decided = tuple((nsg, exposure.decide(nsg, inv, target, port, protocol)) for nsg in target.nsgs())
                    if decided and all(exposure.allows(rule) for _nsg, rule in decided):
                        want.append(exposure.Opening(port, protocol, target.nic, decided))
        got = exposure.openings(nics, inv, vmsteps.MANAGEMENT_PORTS)
        assert got == want
        found += len(got)
    assert found  # the scale estate has VMs open to the internet
