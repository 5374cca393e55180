"""A reviewed plan applied exactly (`plan --out`, `apply PLANFILE`), and `-g` that really scopes."""

from __future__ import annotations

import json
import stat

import pytest
from azure.mgmt.security import SecurityCenter
from azure.mgmt.storage import StorageManagementClient

from ztwizard.cli import main
from ztwizard.planfile import SCHEMA
from ztwizard.sandbox import Sandbox
from ztwizard.sandbox.estates.reference import CONNECTIVITY_SUB, WORKLOAD_SUB


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("ZTWIZARD_SANDBOX_IN_PROCESS", "1")
    monkeypatch.delenv("ZTWIZARD_STATE_DIR", raising=False)
    Sandbox(tmp_path / "s", estate="reference")
    return tmp_path / "s"


def run(capsys, state, *args):
    code = main(["--sandbox", "--state-dir", str(state), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def accounts(arm_client, state):
    return arm_client(StorageManagementClient, Sandbox(state), WORKLOAD_SUB).storage_accounts


def test_plan_out_saves_a_private_plan_and_still_renders_for_people(capsys, state, tmp_path):
    saved = tmp_path / "plan.json"
    code, out, err = run(capsys, state, "plan", "--step", "storage-1", "--format", "markdown", "--out", str(saved))
    assert code == 0, err
    assert out.startswith("# Zero Trust hardening plan") and f"apply {saved}" in err
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    data = json.loads(saved.read_text())
    assert data["schema"] == SCHEMA
    assert data["target"]["kind"] == "sandbox"
    assert sorted(data["target"]["subscriptions"]) == sorted([WORKLOAD_SUB, CONNECTIVITY_SUB])
    assert data["selection"] == {"steps": ["storage-1"], "checks": []}
    assert data["changes"] and all(c["step"] == "storage-1" for c in data["changes"])
    for c in data["changes"]:
        fp = c["fingerprint"]
        assert fp.get("etag") or (fp.get("sha256") and fp["properties"]) or fp.get("absent")
    token = Sandbox(state).token
    assert token not in saved.read_text()


def test_apply_planfile_applies_exactly_the_saved_changes(capsys, state, tmp_path, arm_client):
    saved = tmp_path / "plan.json"
    assert run(capsys, state, "plan", "--check", "storage-1b", "--out", str(saved))[0] == 0
    # After the review, another account falls out of line: the reviewed plan does not touch it.
    accounts(arm_client, state).update("rg-storage", "stcontosofiles", {"properties": {"minimumTlsVersion": "TLS1_0"}})
    code, out, err = run(capsys, state, "apply", str(saved), "--yes")
    assert code == 0, out + err
    assert "applied  storage-1b" in out
    client = accounts(arm_client, state)
    assert client.get_properties("rg-storage", "stcontosoappdata").minimum_tls_version == "TLS1_2"
    assert client.get_properties("rg-storage", "stcontosofiles").minimum_tls_version == "TLS1_0"
    code, out, _ = run(capsys, state, "sessions", "--format", "json")
    (session,) = json.loads(out)
    assert [c["check"] for c in session["changes"]] == ["storage-1b"]


def test_a_resource_changed_after_the_plan_is_refused_and_named_while_the_rest_applies(capsys, state, tmp_path,
                                                                                       arm_client):
    saved = tmp_path / "plan.json"
    assert run(capsys, state, "plan", "--check", "storage-1e", "--out", str(saved))[0] == 0
    planned = {c["resource_id"].rsplit("/", 1)[-1] for c in json.loads(saved.read_text())["changes"]}
    assert planned == {"stcontosoappdata", "stcontosofiles", "stcontosovmdiag01"}
    # Storage accounts carry no etag, so the fingerprint is the touched properties: someone else
    # choosing a copy scope moves it, while a tag edit on another account does not.
    accounts(arm_client, state).update("rg-storage", "stcontosofiles", {"properties": {"allowedCopyScope": "PrivateLink"}})
    accounts(arm_client, state).update("rg-storage", "stcontosoappdata", {"tags": {"owner": "someone-else"}})

    code, out, err = run(capsys, state, "apply", str(saved), "--yes")
    assert code == 1
    assert "stcontosofiles" in err and "refused" in err and "Traceback" not in err
    assert "skipped  storage-1e" in out and "changed since the plan was saved" in out
    client = accounts(arm_client, state)
    assert client.get_properties("rg-storage", "stcontosoappdata").allowed_copy_scope == "AAD"
    assert client.get_properties("rg-vms", "stcontosovmdiag01").allowed_copy_scope == "AAD"
    assert client.get_properties("rg-storage", "stcontosofiles").allowed_copy_scope == "PrivateLink"


def test_a_plan_for_another_target_or_scope_is_refused(capsys, state, tmp_path, small_estate):
    saved = tmp_path / "plan.json"
    assert run(capsys, state, "plan", "--check", "storage-1b", "--out", str(saved))[0] == 0
    other = tmp_path / "other"
    Sandbox(other, estate=small_estate)  # another estate: other subscriptions
    code, _, err = run(capsys, other, "apply", str(saved), "--yes")
    assert code == 2 and WORKLOAD_SUB in err and "nothing was changed" in err
    code, _, err = run(capsys, state, "-s", WORKLOAD_SUB, "apply", str(saved), "--yes")
    assert code == 2 and "-s names" in err
    code, _, err = run(capsys, state, "-g", "rg-storage", "apply", str(saved), "--yes")
    assert code == 2 and "-g names" in err
    code, _, err = run(capsys, state, "apply", str(saved), "--yes", "--step", "storage-1")
    assert code == 2 and "applied whole" in err
    # a plan saved for Azure is not applied to the sandbox
    data = json.loads(saved.read_text())
    data["target"]["kind"] = "azure"
    saved.write_text(json.dumps(data))
    code, _, err = run(capsys, state, "apply", str(saved), "--yes")
    assert code == 2 and "saved for a azure target" in err
    code, out, _ = run(capsys, state, "sessions", "--format", "json")
    assert code == 0 and json.loads(out) == []  # every refusal came before a session began


@pytest.mark.parametrize("content, needle", [
    ("not json", "is not JSON"),
    (json.dumps({"schema": "ztwizard.plan/v1", "steps": []}), "plan --out FILE"),
    (json.dumps({"schema": "other/v1"}), "is not a ztwizard plan file"),
    (json.dumps({"schema": SCHEMA, "target": {"kind": "sandbox", "subscriptions": [WORKLOAD_SUB]},
                 "selection": {}, "changes": [{"id": "x"}]}), "change 1: check is missing"),
])
def test_malformed_or_foreign_plan_file_is_exit_2(capsys, state, tmp_path, content, needle):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    code, _, err = run(capsys, state, "apply", str(bad), "--yes")
    assert code == 2 and needle in err and "hint:" in err and "Traceback" not in err
    code, _, err = run(capsys, state, "apply", str(tmp_path / "missing.json"), "--yes")
    assert code == 2 and "does not exist" in err


def test_resource_group_that_does_not_exist_is_an_input_error(capsys, state):
    for command in (["plan"], ["apply", "--yes"]):
        code, _, err = run(capsys, state, "-g", "rg-nope", *command)
        assert code == 2 and "'rg-nope'" in err and "does not exist" in err and "Traceback" not in err
    code, _, err = run(capsys, state, "-g", "RG-VMS", "plan", "--step", "vm-1")  # names are case-insensitive
    assert code == 0, err


def _pricings(arm_client, state):
    sb = Sandbox(state)
    out = {}
    for sub in (WORKLOAD_SUB, CONNECTIVITY_SUB):
        client = arm_client(SecurityCenter, sb, sub)
        for p in client.pricings.list(f"subscriptions/{sub}").value:
            out[p.id.lower()] = (p.pricing_tier, p.sub_plan)
    return out


def test_resource_group_scope_changes_no_subscription_wide_setting(capsys, state, arm_client):
    code, out, err = run(capsys, state, "-g", "rg-vms", "plan", "--format", "json")
    assert code == 0, err
    plan = json.loads(out)
    proposed = [c["resource_id"] for s in plan["steps"] for c in s["changes"]]
    assert proposed and all("/resourcegroups/" in r.lower() for r in proposed)
    scoped = [n for n in plan["notes"] if n["kind"] == "scope"]
    assert any("/Microsoft.Security/pricings/" in n["resource_id"] for n in scoped)
    assert all("-g rg-vms" in n["message"] for n in scoped)
    code, text, _ = run(capsys, state, "-g", "rg-vms", "plan", "--step", "vm-8")
    assert "left out because of -g rg-vms" in text

    before = _pricings(arm_client, state)
    assert any(tier == "Free" for tier, _ in before.values())
    code, out, err = run(capsys, state, "-g", "rg-vms", "apply", "--yes", "--allow-cost", "--allow-disruptive")
    assert code == 0, out + err
    assert "applied" in out
    assert _pricings(arm_client, state) == before
    # Without -g the same apply would change Defender plans: the scope, not the estate, held them.
    code, out, _ = run(capsys, state, "plan", "--step", "vm-8", "--format", "json")
    assert any("/pricings/" in c["resource_id"] for s in json.loads(out)["steps"] for c in s["changes"])


def test_without_etags_only_the_touched_properties_count(capsys, state, tmp_path, arm_client):
    """Storage accounts and Defender pricings carry no etag on real ARM: the fingerprint is then a
    hash of the properties the change touches, so an unrelated edit (tags) does not block it."""
    from ztwizard import planfile
    from ztwizard.gateway import Gateway
    from ztwizard.model import Change
    from ztwizard.target import in_process_target

    saved = tmp_path / "plan.json"
    assert run(capsys, state, "plan", "--check", "storage-1e", "--out", str(saved))[0] == 0
    data = json.loads(saved.read_text())
    gw = Gateway(in_process_target(Sandbox(state)))
    for row in data["changes"]:
        res = {k: v for k, v in gw.read(row["resource_id"]).items() if k != "etag"}
        row["fingerprint"] = planfile.fingerprint(Change.from_dict(row), res)
        assert row["fingerprint"]["properties"] == ["properties.allowedCopyScope"]
    saved.write_text(json.dumps(data))
    client = accounts(arm_client, state)
    client.update("rg-storage", "stcontosofiles", {"tags": {"owner": "someone-else"}})
    client.update("rg-storage", "stcontosoappdata", {"properties": {"allowedCopyScope": "PrivateLink"}})

    code, out, err = run(capsys, state, "apply", str(saved), "--yes")
    assert code == 1 and "stcontosoappdata" in err and "stcontosofiles" not in err
    assert "properties.allowedCopyScope no longer hold" in out
    client = accounts(arm_client, state)
    assert client.get_properties("rg-storage", "stcontosoappdata").allowed_copy_scope == "PrivateLink"
    assert client.get_properties("rg-storage", "stcontosofiles").allowed_copy_scope == "AAD"
    assert client.get_properties("rg-vms", "stcontosovmdiag01").allowed_copy_scope == "AAD"


def test_what_depends_on_a_refused_change_waits_and_the_rest_applies(capsys, state, tmp_path, arm_client):
    """spoke-3a creates an NSG, then attaches it to its subnet. Someone creates the snet-data NSG
    after the review: that create and the attach that needs it are held; the hub pair applies."""
    from azure.mgmt.network import NetworkManagementClient

    saved = tmp_path / "plan.json"
    assert run(capsys, state, "plan", "--check", "spoke-3a", "--out", str(saved))[0] == 0
    rows = json.loads(saved.read_text())["changes"]
    create = next(c for c in rows if c["resource_id"].endswith("/nsg-data-prod"))
    attach = next(c for c in rows if create["id"] in c["depends_on"])
    others = [c for c in rows if c["id"] not in (create["id"], attach["id"])]
    assert others
    net = arm_client(NetworkManagementClient, Sandbox(state), WORKLOAD_SUB)
    net.network_security_groups.begin_create_or_update("rg-spoke-network", "nsg-data-prod",
                                                       {"location": "westeurope"}).result()

    code, out, err = run(capsys, state, "apply", str(saved), "--yes", "--allow-disruptive")
    assert code == 1 and "nsg-data-prod" in err
    assert "was created by someone else since the plan was saved" in out
    assert f"depends on {create['id']}, which was not applied" in out
    code, out, _ = run(capsys, state, "sessions", "--format", "json")
    states = {c["id"]: c["state"] for c in json.loads(out)[0]["changes"]}
    assert states[create["id"]] == states[attach["id"]] == "skipped"
    assert all(states[c["id"]] == "applied" for c in others)
    subnet = net.subnets.get("rg-spoke-network", "vnet-spoke-prod-weu", "snet-data")
    assert subnet.network_security_group is None


def test_a_saved_plan_whose_defender_plan_someone_turned_on_sends_no_stand_in(capsys, state, tmp_path, arm_client):
    """storage-4c's own settings stand in for storage-4a's plan. Someone turns the plan on after
    the review: storage-4a is skipped as already holding, and so are the settings it covers."""
    saved = tmp_path / "plan.json"
    assert run(capsys, state, "plan", "--step", "storage-4", "--out", str(saved))[0] == 0
    rows = json.loads(saved.read_text())["changes"]
    plans = {c["id"]: c for c in rows if c["check"] == "storage-4a"}
    stand_ins = [c for c in rows if c.get("instead_of") in plans]
    assert stand_ins
    sec = arm_client(SecurityCenter, Sandbox(state), WORKLOAD_SUB)
    for plan in plans.values():
        if f"/subscriptions/{WORKLOAD_SUB}/" in plan["resource_id"]:
            sec.pricings.update(f"/subscriptions/{WORKLOAD_SUB}", "StorageAccounts",
                                {"properties": {"pricingTier": "Standard", "subPlan": "DefenderForStorageV2"}})
    covered = [c for c in stand_ins if f"/subscriptions/{WORKLOAD_SUB}/" in plans[c["instead_of"]]["resource_id"]]
    assert covered

    code, out, err = run(capsys, state, "apply", str(saved), "--yes", "--allow-cost")
    assert code == 0, err
    code, out, _ = run(capsys, state, "sessions", "--format", "json")
    changes = {c["id"]: c for c in json.loads(out)[0]["changes"]}
    for c in covered:
        assert changes[c["id"]]["state"] == "skipped", changes[c["id"]]
        assert (changes[c["id"]].get("note") or "").startswith("not needed"), changes[c["id"]]
