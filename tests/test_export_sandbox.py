"""The sandbox's deployments validate and policy endpoints refuse what ARM refuses, through the real
clients (the export's own outputs are exercised in test_export_policy.py and test_export_cli.py)."""

from __future__ import annotations

import copy

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.resource.deployments import DeploymentsMgmtClient
from azure.mgmt.resource.policy import PolicyClient
from conftest import SUB

RG_SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
ACCOUNT = {"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2026-09-01", "name": "stblob01",
           "location": "westeurope", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2",
           "properties": {"minimumTlsVersion": "TLS1_2"}}


def template(*resources, schema=RG_SCHEMA, **extra):
    return {"$schema": schema, "contentVersion": "1.0.0.0", "resources": list(resources), **extra}


@pytest.fixture
def validate(sandbox, arm_client):
    sb = sandbox()
    dc = arm_client(DeploymentsMgmtClient, sb, SUB)

    def run(tpl, parameters=None):
        return dc.deployments.begin_validate("rg-st", "zt", {"properties": {
            "mode": "Incremental", "template": tpl, "parameters": parameters or {}}}).result()

    return run


def test_a_good_template_validates(validate):
    assert validate(template(ACCOUNT)).properties.provisioning_state == "Succeeded"


@pytest.mark.parametrize("change, code, detail", [
    (lambda r: r.update(apiVersion="2099-01-01"), "InvalidTemplateDeployment", "NoRegisteredProviderFound"),
    (lambda r: r.update(type="Microsoft.Storage/storageAccountz"), "InvalidTemplateDeployment", "InvalidResourceType"),
    (lambda r: r.update(name="a/b"), "InvalidTemplate", None),  # one name segment per type level
    (lambda r: r["properties"].update(minimumTlsVersion="TLS9"), "InvalidTemplateDeployment", "InvalidRequestContent"),
])
def test_resources_the_provider_would_refuse_fail_validation(validate, change, code, detail):
    res = copy.deepcopy(ACCOUNT)
    change(res)
    with pytest.raises(HttpResponseError) as e:
        validate(template(res))
    assert e.value.status_code == 400 and e.value.error.code == code
    if detail:
        assert e.value.error.details[0].code == detail


def test_the_schema_must_match_the_scope_and_parameters_must_be_given(validate):
    sub_schema = "https://schema.management.azure.com/schemas/2018-05-01/subscriptionDeploymentTemplate.json#"
    with pytest.raises(HttpResponseError) as e:
        validate(template(ACCOUNT, schema=sub_schema))
    assert e.value.error.code == "InvalidTemplate" and "resourceGroup" in e.value.message
    with_param = template(ACCOUNT, parameters={"tls": {"type": "string"}})
    with pytest.raises(HttpResponseError) as e:
        validate(with_param)
    assert e.value.error.code == "InvalidTemplate" and "'tls'" in e.value.message
    assert validate(with_param, {"tls": {"value": "TLS1_2"}}).properties.provisioning_state == "Succeeded"


def test_nested_inline_templates_are_checked_too(sandbox, arm_client):
    sb = sandbox()
    dc = arm_client(DeploymentsMgmtClient, sb, SUB)
    bad = copy.deepcopy(ACCOUNT)
    bad["apiVersion"] = "2001-01-01"
    nested = {"type": "Microsoft.Resources/deployments", "apiVersion": "2025-04-01", "name": "inner",
              "resourceGroup": "rg-st", "properties": {"mode": "Incremental", "template": template(bad)}}
    sub_schema = "https://schema.management.azure.com/schemas/2018-05-01/subscriptionDeploymentTemplate.json#"
    with pytest.raises(HttpResponseError) as e:
        dc.deployments.begin_validate_at_subscription_scope("zt", {"location": "westeurope", "properties": {
            "mode": "Incremental", "template": template(nested, schema=sub_schema)}}).result()
    assert e.value.error.details[0].code == "NoRegisteredProviderFound"
    with pytest.raises(HttpResponseError) as e:  # a subscription deployment needs a location
        dc.deployments.begin_validate_at_subscription_scope("zt", {"properties": {
            "mode": "Incremental", "template": template(schema=sub_schema)}}).result()
    assert e.value.error.code == "LocationRequired"


def test_built_ins_are_readable_and_unknown_ones_are_404(sandbox, arm_client):
    pc = arm_client(PolicyClient, sandbox(), SUB)
    got = pc.policy_definitions.get_built_in("fe83a0eb-a853-422d-aac2-1bffd182c5d0")
    assert got.policy_type == "BuiltIn" and "minimumTlsVersion" in got.parameters
    with pytest.raises(HttpResponseError) as e:
        pc.policy_definitions.get_built_in("00000000-0000-0000-0000-000000000000")
    assert e.value.status_code == 404


def test_policy_at_subscription_scope_and_an_assignment_of_a_built_in(sandbox, arm_client):
    sb = sandbox()
    pc = arm_client(PolicyClient, sb, SUB)
    rule = {"if": {"field": "type", "equals": "Microsoft.Storage/storageAccounts"}, "then": {"effect": "audit"}}
    made = pc.policy_definitions.create_or_update("zt-sub", {"properties": {"mode": "Indexed", "policyRule": rule}})
    assert made.id == f"/subscriptions/{SUB}/providers/Microsoft.Authorization/policyDefinitions/zt-sub"
    with pytest.raises(HttpResponseError) as e:  # not a policy effect
        pc.policy_definitions.create_or_update("zt-bad", {"properties": {"policyRule": {
            "if": rule["if"], "then": {"effect": "Explode"}}}})
    assert e.value.error.code == "InvalidPolicyRule"
    tls = "/providers/Microsoft.Authorization/policyDefinitions/fe83a0eb-a853-422d-aac2-1bffd182c5d0"
    rg = f"/subscriptions/{SUB}/resourceGroups/rg-st"
    ok = pc.policy_assignments.create(rg, "tls", {"properties": {"policyDefinitionId": tls, "parameters": {
        "minimumTlsVersion": {"value": "TLS1_2"}}}})
    assert ok.scope == rg
    with pytest.raises(HttpResponseError) as e:
        pc.policy_assignments.create(rg, "tls", {"properties": {"policyDefinitionId": tls, "parameters": {
            "minimumTlsVersion": {"value": 12}}}})
    assert e.value.error.code == "InvalidPolicyParameters"


def test_management_group_policy_survives_a_restart_and_stays_out_of_the_estate_export(sandbox, arm_client, tmp_path):
    from ztwizard.sandbox import Sandbox

    sb = sandbox(tmp_path)
    pc = arm_client(PolicyClient, sb, SUB)
    rule = {"if": {"field": "type", "equals": "Microsoft.Storage/storageAccounts"}, "then": {"effect": "audit"}}
    pc.policy_definitions.create_or_update_at_management_group(sb.tenant_id, "zt-mg", {"properties": {"policyRule": rule}})
    again = Sandbox(tmp_path)
    got = arm_client(PolicyClient, again, SUB).policy_definitions.get_at_management_group(again.tenant_id, "zt-mg")
    assert got.policy_type == "Custom"
    estate = again.export()  # an estate file holds subscriptions' resources, and loads back
    assert not any("managementGroups" in e["id"] for e in estate)
    assert len(Sandbox(None, estate=estate).store) == len(again.store) - 1
