"""`ztwizard export --format arm|bicep --session ID` and `ztwizard plan --since SESSION` on the sandbox's
reference estate, end to end through the command line: the template of what a session applied
validates through the real deployments client, `plan --since` reports exactly the regressions
made after the apply, and bad input exits 2 with one sentence and writes nothing."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.deployments import DeploymentsMgmtClient
from azure.mgmt.storage import StorageManagementClient
from azure.mgmt.storage.models import StorageAccountUpdateParameters

from ztwizard.cli import main
from ztwizard.sandbox import Sandbox
from ztwizard.sandbox.estates.reference import (
    BLOB_ACCOUNT,
    DIAG_ACCOUNT,
    FILES_ACCOUNT,
    SUBNET_DATA,
    WORKLOAD_SUB,
)


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("ZTWIZARD_SANDBOX_IN_PROCESS", "1")
    monkeypatch.delenv("ZTWIZARD_STATE_DIR", raising=False)
    return tmp_path / "state"


def run(capsys, state, *argv):
    try:
        code = main(["--sandbox", "--state-dir", str(state), *[str(a) for a in argv]])
    except SystemExit as exc:  # refused by argparse (a `type=` check), as every command's flags are
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def session(state, capsys):
    """A session that set TLS 1.2 and the copy scope on the storage accounts and gave the spoke's
    data subnet an NSG: its id."""
    code, out, err = run(capsys, state, "apply", "--yes", "--check", "storage-1b", "--check", "storage-1e",
                         "--check", "spoke-3a")
    assert code == 0, err
    code, out, _ = run(capsys, state, "sessions", "--format", "json")
    return json.loads(out)[0]["id"]


def clients(state, arm_client):
    sb = Sandbox(Path(state))
    return sb, {cls: arm_client(cls, sb, WORKLOAD_SUB) for cls in
                (StorageManagementClient, NetworkManagementClient, DeploymentsMgmtClient)}


def _rg(resource_id):
    return resource_id.split("/")[4]


def _name(resource_id):
    return resource_id.rsplit("/", 1)[-1]


# ---- arm / bicep --------------------------------------------------------------------------------

def test_the_session_template_validates_and_holds_what_the_wizard_set(state, capsys, session, arm_client, tmp_path):
    out_file = tmp_path / "zt.json"
    code, _, err = run(capsys, state, "export", "--format", "arm", "--session", session, "-s", WORKLOAD_SUB,
                       "--output", out_file)
    assert code == 0, err
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
    doc = json.loads(out_file.read_text())
    assert doc["$schema"].endswith("/subscriptionDeploymentTemplate.json#")
    inner = {r["resourceGroup"]: r["properties"]["template"]["resources"] for r in doc["resources"]}
    account = next(r for r in inner["rg-storage"] if r["name"] == _name(BLOB_ACCOUNT))
    # patched: the properties the wizard set and what a PUT needs to address the account, no more
    assert account["properties"] == {"minimumTlsVersion": "TLS1_2", "allowedCopyScope": "AAD"}
    assert {"location", "sku", "kind"} <= set(account)
    created = [r for r in inner["rg-spoke-network"] if r["type"] == "Microsoft.Network/networkSecurityGroups"]
    assert created and all("ztwizard created" in r["comments"] for r in created)
    subnet = next(r for r in inner["rg-spoke-network"] if r["type"] == "Microsoft.Network/virtualNetworks/subnets")
    assert subnet["name"] == "vnet-spoke-prod-weu/snet-data"
    assert subnet["properties"]["networkSecurityGroup"]["id"].endswith(created[0]["name"])

    sb, c = clients(state, arm_client)
    deployments = c[DeploymentsMgmtClient].deployments
    result = deployments.begin_validate_at_subscription_scope(
        "zt-export", {"location": "westeurope", "properties": {"mode": "Incremental", "template": doc}}).result()
    assert result.properties.provisioning_state == "Succeeded"
    assert {v.name if hasattr(v, "name") else v["name"] for v in result.properties.validated_resources} >= \
        {_name(BLOB_ACCOUNT), "vnet-spoke-prod-weu/snet-data"}
    # the same template with an api-version the provider does not serve: ARM's 400 with the reason inside
    account["apiVersion"] = "2015-01-01"
    with pytest.raises(HttpResponseError) as e:
        deployments.begin_validate_at_subscription_scope(
            "zt-export", {"location": "westeurope", "properties": {"mode": "Incremental", "template": doc}}).result()
    assert e.value.status_code == 400 and e.value.error.code == "InvalidTemplateDeployment"
    assert e.value.error.details[0].code == "NoRegisteredProviderFound"


def test_a_session_across_subscriptions_is_one_management_group_template(state, capsys, session, arm_client):
    code, out, err = run(capsys, state, "export", "--format", "arm", "--session", session)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["$schema"].endswith("/managementGroupDeploymentTemplate.json#")
    assert {r["subscriptionId"] for r in doc["resources"]} == set(doc["metadata"]["subscriptions"])
    sb, c = clients(state, arm_client)
    result = c[DeploymentsMgmtClient].deployments.begin_validate_at_management_group_scope(
        sb.tenant_id, "zt-export",
        {"location": "westeurope", "properties": {"mode": "Incremental", "template": doc}}).result()
    assert result.properties.provisioning_state == "Succeeded"


def test_undone_changes_are_not_exported_and_bicep_references_the_parent_as_existing(state, capsys, session):
    code, out, _ = run(capsys, state, "sessions", "--format", "json")
    files_change = next(c["id"] for c in json.loads(out)[0]["changes"]
                        if c["check"] == "storage-1e" and c["resource_id"] == FILES_ACCOUNT)
    code, _, err = run(capsys, state, "undo", "--yes", "--session", session, "--change", files_change)
    assert code == 0, err
    code, out, err = run(capsys, state, "export", "--format", "arm", "--session", session, "-g", "rg-storage")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["$schema"].endswith("/deploymentTemplate.json#")  # one resource group
    names = {r["name"] for r in doc["resources"]}
    assert _name(FILES_ACCOUNT) not in names  # its one change (the copy scope) was taken back
    assert _name(BLOB_ACCOUNT) in names
    code, out, err = run(capsys, state, "export", "--format", "bicep", "--session", session, "-g", "rg-spoke-network")
    assert code == 0, err
    assert out.splitlines()[1] == "targetScope = 'resourceGroup'"
    assert "resource vnet_spoke_prod_weu_existing 'Microsoft.Network/virtualNetworks@2026-03-01' existing = {" in out
    assert "  parent: vnet_spoke_prod_weu_existing\n  name: 'snet-data'" in out
    assert "resource nsg_data_prod 'Microsoft.Network/networkSecurityGroups@2026-03-01' = {" in out


# ---- plan --since -------------------------------------------------------------------------------

def test_plan_since_reports_exactly_the_regressions_made_after_the_apply(state, capsys, session, arm_client):
    code, out, err = run(capsys, state, "plan", "--since", session, "--format", "json", "--detailed-exitcode")
    assert code == 0, err
    assert json.loads(out)["regressions"] == []

    sb, c = clients(state, arm_client)
    storage, network = c[StorageManagementClient].storage_accounts, c[NetworkManagementClient]
    storage.update(_rg(BLOB_ACCOUNT), _name(BLOB_ACCOUNT), StorageAccountUpdateParameters(minimum_tls_version="TLS1_0"))
    storage.update(_rg(DIAG_ACCOUNT), _name(DIAG_ACCOUNT), StorageAccountUpdateParameters(allowed_copy_scope="All"))
    subnet = network.subnets.get(_rg(SUBNET_DATA), "vnet-spoke-prod-weu", "snet-data")
    subnet.network_security_group = None
    network.subnets.begin_create_or_update(_rg(SUBNET_DATA), "vnet-spoke-prod-weu", "snet-data", subnet).result()
    # not a regression: the session never fixed public blob access
    storage.update(_rg(FILES_ACCOUNT), _name(FILES_ACCOUNT), StorageAccountUpdateParameters(allow_blob_public_access=True))

    code, out, err = run(capsys, state, "plan", "--since", session, "--format", "json", "--detailed-exitcode")
    assert code == 2, err  # as plan's: changes pending
    report = json.loads(out)
    found = {(r["check"], r["resource_id"]) for r in report["regressions"]}
    assert found == {("storage-1b", BLOB_ACCOUNT), ("storage-1e", DIAG_ACCOUNT), ("spoke-3a", SUBNET_DATA)}
    code, listing, _ = run(capsys, state, "sessions", "--format", "json")
    applied = {ch["id"]: ch for ch in json.loads(listing)[0]["changes"]}
    for r in report["regressions"]:
        fixed = applied[r["fixed_by"]["change"]]
        assert fixed["check"] == r["check"] and fixed["state"] == "applied"
        assert r["regressed_since"].startswith(session[:4]) and r["fixed_by"]["session"] == session
        assert r["proposed_changes"]  # the plan proposes the fix again
    code, out, err = run(capsys, state, "plan", "--since", session)
    assert code == 0 and "3 regression(s)" in out and "fixed by" in out


def test_plan_since_narrowed_to_a_check_and_without_detailed_exitcode(state, capsys, session, arm_client):
    sb, c = clients(state, arm_client)
    c[StorageManagementClient].storage_accounts.update(
        _rg(BLOB_ACCOUNT), _name(BLOB_ACCOUNT), StorageAccountUpdateParameters(minimum_tls_version="TLS1_1"))
    code, out, _ = run(capsys, state, "plan", "--since", session, "--check", "storage-1e", "--format", "json")
    assert code == 0 and json.loads(out)["regressions"] == [] and json.loads(out)["checks"] == ["storage-1e"]
    code, out, _ = run(capsys, state, "plan", "--since", session, "--format", "json")
    assert code == 0 and [r["check"] for r in json.loads(out)["regressions"]] == ["storage-1b"]


# ---- bad input ----------------------------------------------------------------------------------

def _one_sentence(err):
    """One error line (ours with a hint, or argparse's after its usage), no traceback."""
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert errors[0].startswith("ztwizard"), err
    assert "hint:" in err or "usage:" in err, err


@pytest.mark.parametrize("argv", [
    ["export", "--format", "arm", "--session", "nope"],
    ["export", "--format", "policy", "--session", "nope"],
    ["plan", "--since", "nope"],
    ["export", "--format", "bicep"],
    ["plan", "--since", "x", "--format", "sarif"],
    ["export", "--step", "storage-9"],
    ["export", "--check", "vm-1a"],  # nothing in the selection is expressible as policy
])
def test_unknown_sessions_and_bad_choices_exit_2_in_one_sentence(state, capsys, argv):
    code, out, err = run(capsys, state, *argv)
    assert code == 2 and out == ""
    _one_sentence(err)


def test_an_existing_file_is_replaced_only_with_force(state, capsys, tmp_path):
    target = tmp_path / "policy.json"
    target.write_text("hand-edited\n")
    code, out, err = run(capsys, state, "export", "--output", target)
    assert code == 2 and "--force" in err
    _one_sentence(err)
    assert target.read_text() == "hand-edited\n"
    code, _, err = run(capsys, state, "export", "--output", target, "--force")
    assert code == 0, err
    assert json.loads(target.read_text())["$schema"].endswith("managementGroupDeploymentTemplate.json#")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_unwritable_outputs_exit_2_and_leave_nothing(state, capsys, tmp_path):
    for bad in (tmp_path / "missing-dir" / "p.json", tmp_path):
        code, _, err = run(capsys, state, "export", "--output", bad)
        assert code == 2
        _one_sentence(err)
    assert not (tmp_path / "missing-dir").exists()
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        # root ignores the mode; sysfs refuses even root a new file, after every check passed
        where = locked if not os.access(locked, os.W_OK) else Path("/sys")
        code, _, err = run(capsys, state, "export", "--output", where / "zt-export-test.json")
        assert code == 2
        _one_sentence(err)
        assert not (where / "zt-export-test.json").exists() and list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


# ---- policy from a session ----------------------------------------------------------------------

def test_policy_export_carries_the_sessions_choices_and_the_waivers(state, capsys, session, arm_client):
    code, _, err = run(capsys, state, "waive", "storage-1d", "--resource", BLOB_ACCOUNT,
                       "--reason", "orders app still signs with the account key", "--expires", "2099-01-31")
    assert code == 0, err
    code, out, err = run(capsys, state, "export", "--session", session, "--step", "storage-1")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["metadata"]["session"] == session
    assert doc["parameters"]["minimumTlsVersion"]["defaultValue"] == "TLS1_2"  # what storage-1b set
    assert doc["parameters"]["allowedCopyScope"]["defaultValue"] == "AAD"  # what storage-1e set
    (nested,) = [r for r in doc["resources"] if r["type"] == "Microsoft.Resources/deployments"]
    exemption = nested["properties"]["template"]["resources"][0]["properties"]["template"]["resources"][0]
    assert exemption["scope"] == "Microsoft.Storage/storageAccounts/stcontosoappdata"
    assert exemption["properties"]["description"] == "orders app still signs with the account key"
    assert exemption["properties"]["expiresOn"] == "2099-01-31T23:59:59Z"
    sb, c = clients(state, arm_client)
    result = c[DeploymentsMgmtClient].deployments.begin_validate_at_management_group_scope(
        sb.tenant_id, "zt-policy", {"location": "westeurope",
                                    "properties": {"mode": "Incremental", "template": doc}}).result()
    assert result.properties.provisioning_state == "Succeeded"
    code, out, err = run(capsys, state, "export", "--format", "policy-bicep", "--session", session,
                         "--step", "storage-1")
    assert code == 0, err
    assert "targetScope = 'managementGroup'" in out
    assert "policyAssignmentId: extensionResourceId(managementGroup().id, " \
           "'Microsoft.Authorization/policyAssignments', assignmentName)" in out
    assert "description: 'orders app still signs with the account key'" in out


def test_a_session_over_the_whole_catalog_exports_templates_that_validate(state, capsys, arm_client):
    """Every kind of change the catalog makes (creates, PUTs, PATCHes, child and extension
    resources, subscription-level plans) across both subscriptions."""
    code, _, err = run(capsys, state, "apply", "--yes", "--allow-disruptive", "--allow-cost")
    assert code == 0, err
    code, out, _ = run(capsys, state, "sessions", "--format", "json")
    sid = json.loads(out)[0]["id"]
    sb, c = clients(state, arm_client)
    deployments = c[DeploymentsMgmtClient].deployments
    for fmt in ("arm", "policy"):
        code, out, err = run(capsys, state, "export", "--format", fmt, "--session", sid)
        assert code == 0, err
        doc = json.loads(out)
        result = deployments.begin_validate_at_management_group_scope(
            sb.tenant_id, f"zt-{fmt}", {"location": "westeurope",
                                        "properties": {"mode": "Incremental", "template": doc}}).result()
        assert result.properties.provisioning_state == "Succeeded", fmt
        if fmt == "policy":  # the plan and the workspaces the session chose: no parameter left to give
            assert doc["parameters"]["ddosPlan"]["defaultValue"].endswith("/ddosProtectionPlans/ddos-westeurope")
            assert all("defaultValue" in spec for spec in doc["parameters"].values())
    code, out, _ = run(capsys, state, "export", "--format", "arm", "--session", sid, "-s", WORKLOAD_SUB, "-g", "rg-vms")
    disks = [r for r in json.loads(out)["resources"] if r["type"] == "Microsoft.Compute/disks"]
    assert disks and all("creationData" in d["properties"] and "networkAccessPolicy" in d["properties"]
                         for d in disks)  # what the PATCH set, and what the disk's PUT requires
    code, out, err = run(capsys, state, "export", "--format", "bicep", "--session", sid)
    assert code == 0 and out.splitlines()[1] == "targetScope = 'managementGroup'"
