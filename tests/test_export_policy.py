"""`ztwizard export --format policy|policy-bicep`: the initiative is accepted by the sandbox's policy
API through the real PolicyClient, refers only to vendored built-ins, and its template validates
through the real deployments client; the sandbox refuses what ARM refuses."""

from __future__ import annotations

import copy
import json
import re
from datetime import date
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.mgmt.resource.deployments import DeploymentsMgmtClient
from azure.mgmt.resource.policy import PolicyClient
from conftest import SUB

from ztwizard.engine import selected_steps
from ztwizard.errors import UsageError
from ztwizard.export import bicep, builtins, initiative, mapping
from ztwizard.steps import STEPS
from ztwizard.waivers import Waiver, new_waiver

ACCOUNT = f"/subscriptions/{SUB}/resourceGroups/rg-st/providers/Microsoft.Storage/storageAccounts/stblob01"
REQUIRED = {"ddosPlan": f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/ddosProtectionPlans/ddos",
            "activityLogWorkspace": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w",
            "firewallLogWorkspace": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w",
            "ddosLogWorkspace": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w"}


def all_checks(step_ids=(), check_ids=()):
    return [initiative.CheckInfo(c.id, step.id, c.title, c.remediation)
            for step, ids in selected_steps(step_ids, check_ids) for c in step.checks if c.id in ids]


def put(pc: PolicyClient, mg: str, path: str, body: dict) -> object:
    """One request of initiative.requests(), through the PolicyClient operation for its type."""
    name = path.rsplit("/", 1)[-1]
    if "/policyDefinitions/" in path:
        return pc.policy_definitions.create_or_update_at_management_group(mg, name, body)
    if "/policySetDefinitions/" in path:
        return pc.policy_set_definitions.create_or_update_at_management_group(mg, name, body)
    if "/policyAssignments/" in path:
        return pc.policy_assignments.create(path.split("/providers/Microsoft.Authorization/")[0], name, body)
    # exemptions: the policy package has no operation group for them; same client, same pipeline
    resp = pc.send_request(HttpRequest("PUT", f"https://management.azure.com{path}?api-version=2022-07-01-preview",
                                       json=body))
    if resp.status_code >= 400:
        raise HttpResponseError(response=resp)
    return resp.json()


@pytest.fixture
def policy(sandbox, arm_client):
    sb = sandbox()
    return sb, arm_client(PolicyClient, sb, SUB), sb.tenant_id


def test_every_check_is_mapped_once_and_the_table_names_only_catalog_checks():
    ids = [c.id for s in STEPS for c in s.checks]
    tables = [set(mapping.BUILTIN), set(mapping.CUSTOM), set(mapping.COVERED_BY), set(mapping.NOT_EXPRESSIBLE)]
    for cid in ids:
        assert sum(cid in t for t in tables) == 1, cid
    assert set().union(*tables) == set(ids)
    assert all(mapping.kind(cover) == "builtin" for cover in mapping.COVERED_BY.values())


def test_a_covered_check_alone_brings_its_covers_definition_and_nothing_expressible_is_refused():
    doc = initiative.build(all_checks(check_ids=["storage-2d"]))
    (the_set,) = [r for r in doc["resources"] if r["type"].endswith("policySetDefinitions")]
    (member,) = the_set["properties"]["policyDefinitions"]
    assert member["policyDefinitionId"].endswith("8c6a50c6-9ffd-4ae7-986f-5fa6111f9a54")  # storage-1d's
    assert member["groupNames"] == ["storage-2d"]
    with pytest.raises(UsageError):
        initiative.build(all_checks(check_ids=["vm-1a", "hub-4c"]))


def test_the_initiative_refers_only_to_vendored_built_ins_and_every_vendored_one_is_used():
    doc = initiative.build(all_checks(), subscriptions=[SUB])
    text = json.dumps(doc)
    used = set(re.findall(r"/providers/Microsoft\.Authorization/policyDefinitions/([0-9a-f-]{36})", text))
    assert used and used <= set(builtins.table())
    assert used == set(builtins.table())  # nothing vendored that the export does not reference
    sources = (Path(builtins.__file__).parent / "builtins" / "SOURCES.md").read_text()
    for b in builtins.table().values():
        assert b.source in sources and b.name in sources
        assert b.source.startswith("built-in-policies/policyDefinitions/")


def test_the_whole_initiative_with_a_waiver_is_accepted_by_the_policy_api(policy):
    sb, pc, mg = policy
    waiver = new_waiver("storage-1b", reason="legacy TLS client until migration", resource=ACCOUNT,
                        expires="2099-06-30", by="alice")
    doc = initiative.build(all_checks(), waivers=[waiver], subscriptions=[SUB], today=date(2026, 1, 1))
    reqs = initiative.requests(doc, mg, REQUIRED)
    results = [put(pc, mg, path, body) for path, body in reqs]
    kinds = [p.split("/providers/Microsoft.Authorization/")[-1].split("/")[0] for p, _ in reqs]
    assert kinds.count("policyDefinitions") == len(mapping.CUSTOM)
    assert kinds.count("policySetDefinitions") == 1 and kinds.count("policyAssignments") == 1
    assert kinds.count("policyExemptions") == 1
    got = pc.policy_set_definitions.get_at_management_group(mg, initiative.SET_NAME)
    refs = {d.policy_definition_id for d in got.policy_definitions}
    assert {b.id for b in builtins.table().values()} <= refs
    assignment = next(r for r, k in zip(results, kinds, strict=True) if k == "policyAssignments")
    assert assignment.identity.type == "SystemAssigned" and assignment.identity.principal_id
    exemption = results[-1]
    assert exemption["properties"]["description"] == "legacy TLS client until migration"
    assert exemption["properties"]["expiresOn"] == "2099-06-30T23:59:59Z"
    assert exemption["properties"]["policyDefinitionReferenceIds"] == ["storage-1b"]
    assert exemption["properties"]["exemptionCategory"] == "Waiver"


def test_the_template_validates_through_deployments_validate(policy, arm_client):
    sb, _pc, mg = policy
    doc = initiative.build(all_checks(), waivers=[new_waiver("vm-6c", reason="jump host", subscription=SUB)],
                           subscriptions=[SUB])
    dc = arm_client(DeploymentsMgmtClient, sb, SUB)
    params = {k: {"value": v} for k, v in REQUIRED.items()}
    result = dc.deployments.begin_validate_at_management_group_scope(
        mg, "zt-policy", {"location": "westeurope", "properties": {"mode": "Incremental", "template": doc,
                                                                     "parameters": params}}).result()
    assert result.properties.provisioning_state == "Succeeded"
    # a required parameter (the DDoS plan, unknown without a session) left out is ARM's InvalidTemplate
    with pytest.raises(HttpResponseError) as e:
        dc.deployments.begin_validate_at_management_group_scope(
            mg, "zt-policy", {"location": "westeurope", "properties": {"mode": "Incremental", "template": doc}}
        ).result()
    assert e.value.status_code == 400 and e.value.error.code == "InvalidTemplate" and "ddosPlan" in e.value.message


def _set_request(doc, mg):
    return next((p, b) for p, b in initiative.requests(doc, mg, REQUIRED) if "/policySetDefinitions/" in p)


def test_an_unknown_built_in_id_is_refused_with_arms_400(policy):
    _sb, pc, mg = policy
    doc = initiative.build(all_checks(["storage-1"]))
    path, body = _set_request(doc, mg)
    bad = copy.deepcopy(body)
    bad["properties"]["policyDefinitions"][0]["policyDefinitionId"] = \
        "/providers/Microsoft.Authorization/policyDefinitions/00000000-1111-2222-3333-444444444444"
    with pytest.raises(HttpResponseError) as e:
        put(pc, mg, path, bad)
    assert e.value.status_code == 400 and e.value.error.code == "PolicyDefinitionNotFound"


@pytest.mark.parametrize("mutate, code", [
    (lambda m: m.setdefault("parameters", {}).update({"minimumTlsVersion": {"value": "TLS9"}}), "InvalidPolicyParameters"),
    (lambda m: m.setdefault("parameters", {}).update({"noSuchParameter": {"value": "x"}}), "InvalidPolicyParameters"),
    (lambda m: m.update({"groupNames": ["not-a-group"]}), "InvalidPolicySetDefinition"),
])
def test_bad_parameters_in_the_initiative_are_refused(policy, mutate, code):
    _sb, pc, mg = policy
    doc = initiative.build(all_checks(["storage-1"]))
    path, body = _set_request(doc, mg)
    for p, b in initiative.requests(doc, mg, REQUIRED):
        if "/policyDefinitions/" in p:
            put(pc, mg, p, b)
    bad = copy.deepcopy(body)
    member = next(m for m in bad["properties"]["policyDefinitions"] if m["policyDefinitionReferenceId"] == "storage-1b")
    mutate(member)
    with pytest.raises(HttpResponseError) as e:
        put(pc, mg, path, bad)
    assert e.value.status_code == 400 and e.value.error.code == code
    put(pc, mg, path, body)  # the export's own body is fine


def test_an_assignment_that_remediates_needs_its_identity_and_its_parameters(policy):
    _sb, pc, mg = policy
    doc = initiative.build(all_checks(["hub-2"]))  # hub-2b: Modify with the DDoS plan's id
    reqs = initiative.requests(doc, mg, REQUIRED)
    for path, body in reqs:
        if "/policyAssignments/" not in path:
            put(pc, mg, path, body)
    path, body = next((p, b) for p, b in reqs if "/policyAssignments/" in p)
    no_identity = {k: v for k, v in body.items() if k != "identity"}
    with pytest.raises(HttpResponseError) as e:
        put(pc, mg, path, no_identity)
    assert e.value.status_code == 400 and "identity" in e.value.message
    no_plan = copy.deepcopy(body)
    del no_plan["properties"]["parameters"]["ddosPlan"]
    with pytest.raises(HttpResponseError) as e:
        put(pc, mg, path, no_plan)
    assert e.value.error.code == "MissingPolicyParameter" and "ddosPlan" in e.value.message
    assert put(pc, mg, path, body).identity.principal_id
    roles = [r for r in doc["resources"] if r["type"] == "Microsoft.Authorization/roleAssignments"]
    assert any("4d97b98b-1d4f-4787-a291-c67834d212e7" in r["properties"]["roleDefinitionId"] for r in roles)


def test_the_reader_cannot_write_policy_and_unknown_management_groups_are_404(policy, arm_client, sandbox):
    sb, pc, mg = policy
    doc = initiative.build(all_checks(["storage-1"]))
    path, body = next((p, b) for p, b in initiative.requests(doc, mg) if "/policyDefinitions/" in p)
    reader = arm_client(PolicyClient, sb, SUB, reader=True)
    with pytest.raises(HttpResponseError) as e:
        put(reader, mg, path, body)
    assert e.value.status_code == 403
    with pytest.raises(HttpResponseError) as e:
        put(pc, "no-such-group", path.replace(mg, "no-such-group"), body)
    assert e.value.status_code == 404


def test_a_custom_rule_that_names_an_undefined_parameter_is_refused(policy):
    _sb, pc, mg = policy
    doc = initiative.build(all_checks(["storage-1"]))
    path, body = next((p, b) for p, b in initiative.requests(doc, mg) if p.endswith("/zt-storage-1e"))
    bad = copy.deepcopy(body)
    del bad["properties"]["parameters"]["allowedCopyScope"]
    with pytest.raises(HttpResponseError) as e:
        put(pc, mg, path, bad)
    assert e.value.status_code == 400 and e.value.error.code == "InvalidPolicyRule"
    assert put(pc, mg, path, body).policy_type == "Custom"


def test_waivers_become_exemptions_only_while_they_hold_and_only_for_expressed_checks():
    active = new_waiver("storage-1d", reason="SMB mount with key", resource=ACCOUNT, expires="2030-01-01")
    expired = Waiver(id="w-expired", check="storage-1c", reason="old", resource=ACCOUNT, expires=date(2026, 5, 31))
    not_policy = new_waiver("vm-1a", reason="shared RG", subscription=SUB)
    covered = new_waiver("storage-2d", reason="same as 1d", resource_group="rg-st", subscription=SUB)
    doc = initiative.build(all_checks(), waivers=[active, expired, not_policy, covered], subscriptions=[SUB],
                           today=date(2026, 6, 1))
    nested = [r for r in doc["resources"] if r["type"] == "Microsoft.Resources/deployments"]
    names = {r["name"] for r in nested}
    assert names == {f"ztwizard-exempt-{active.id}", f"ztwizard-exempt-{covered.id}"}
    assert doc["metadata"]["exemptionsLeftOut"] == [{"waiver": not_policy.id, "why": "vm-1a is not expressed as policy"}]
    (covered_ex,) = [p for p, _ in initiative._exemption_requests(
        next(r for r in nested if covered.id in r["name"]), "/x")]
    assert covered_ex.startswith(f"/subscriptions/{SUB}/resourceGroups/rg-st/providers/")


def test_the_session_choice_sets_the_parameter_and_bicep_carries_it(tmp_path):
    class Rec:  # the fields of a journal ChangeRecord that session_choices reads
        def __init__(self, check, rid, body, state="applied"):
            self.check_id, self.resource_id, self.body, self.plan_after, self.state = check, rid, body, body, state

    plan_id = f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/ddosProtectionPlans/ddos-weu"
    vnet = f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/v"
    choices = initiative.session_choices([
        Rec("hub-2b", vnet, {"properties": {"ddosProtectionPlan": {"id": plan_id}, "enableDdosProtection": True}}),
        Rec("storage-1b", ACCOUNT, {"properties": {"minimumTlsVersion": "TLS1_1"}}),
        Rec("storage-1e", ACCOUNT, {"properties": {"allowedCopyScope": "PrivateLink"}}, state="undone")])
    assert choices == {"ddosPlan": plan_id, "minimumTlsVersion": "TLS1_1"}  # the undone change chose nothing
    doc = initiative.build(all_checks(["hub-2", "storage-1"]), choices=choices)
    assert doc["parameters"]["ddosPlan"]["defaultValue"] == plan_id
    assert doc["parameters"]["minimumTlsVersion"]["defaultValue"] == "TLS1_1"
    assert doc["parameters"]["allowedCopyScope"]["defaultValue"] == "AAD"
    text = bicep.render(doc)
    assert text.startswith("targetScope = 'managementGroup'")
    assert f"param ddosPlan string = '{plan_id}'" in text
    assert "effect: '[parameters(\\'effect\\')]'" in text  # the policy's own expression, as a literal
    assert "[[" not in text
    assert "policyDefinitionId: managementGroupResourceId('Microsoft.Authorization/policySetDefinitions', " \
           f"'{initiative.SET_NAME}')" in text
