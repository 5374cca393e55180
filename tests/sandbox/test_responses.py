"""Concurrency tokens and answers per provider (notes §2, §4, §5), through the real SDK clients:
no etag on storage accounts, Defender plans or resource groups (If-Match ignored there, honoured on network and
compute), provider-added fields, partial success, casing, and what a null in a PATCH does."""

from __future__ import annotations

import datetime as dt

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.features import FeatureClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.security import SecurityCenter
from azure.mgmt.storage import StorageManagementClient

SUB = "00000000-0000-0000-0000-0000000000a1"  # the small estate's (conftest)
SCOPE = f"/subscriptions/{SUB}"
ACCOUNT = f"{SCOPE}/resourceGroups/rg-st/providers/Microsoft.Storage/storageAccounts/stblob01"
STALE = 'W/"00000000-0000-0000-0000-000000000000"'


def test_storage_accounts_have_no_etag_and_ignore_if_match(sandbox, arm_client):
    sb = sandbox()
    st = arm_client(StorageManagementClient, sb, SUB)
    acct = st.storage_accounts.get_properties("rg-st", "stblob01")
    assert "etag" not in acct.as_dict()
    done = st.storage_accounts.update("rg-st", "stblob01", {"properties": {"minimumTlsVersion": "TLS1_2"}},
                                      headers={"If-Match": STALE})
    assert done.minimum_tls_version == "TLS1_2"  # the stale token changed nothing: there is none
    assert all("etag" not in a.as_dict() for a in st.storage_accounts.list())


def test_defender_plans_have_no_etag_and_ignore_if_match(sandbox, arm_client):
    sb = sandbox()
    sec = arm_client(SecurityCenter, sb, SUB)
    assert "etag" not in sec.pricings.get(SCOPE, "VirtualMachines").as_dict()
    done = sec.pricings.update(SCOPE, "VirtualMachines", {"properties": {"pricingTier": "Standard", "subPlan": "P2"}},
                               headers={"If-Match": STALE})
    assert done.pricing_tier == "Standard" and "etag" not in done.as_dict()


def test_resource_groups_have_no_etag_and_ignore_if_match(sandbox, arm_client):
    sb = sandbox()
    res = arm_client(ResourceManagementClient, sb, SUB)
    assert "etag" not in res.resource_groups.get("rg-st").as_dict()
    assert all("etag" not in g.as_dict() for g in res.resource_groups.list())
    made = res.resource_groups.create_or_update("rg-new", {"location": "westeurope", "tags": {"owner": "x"}},
                                                headers={"If-Match": STALE})
    assert made.tags == {"owner": "x"} and "etag" not in made.as_dict()


def test_network_and_compute_honour_if_match(sandbox, arm_client):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    with pytest.raises(HttpResponseError) as err:
        net.network_security_groups.begin_create_or_update("rg-net", "nsg-app", {"location": "westeurope"},
                                                           headers={"If-Match": STALE})
    assert err.value.status_code == 412
    cmp = arm_client(ComputeManagementClient, sb, SUB)
    with pytest.raises(HttpResponseError) as err:
        cmp.virtual_machines.begin_update("rg-vm", "vm-web", {"tags": {"a": "1"}}, headers={"If-Match": STALE}).result()
    assert err.value.status_code == 412
    vm = cmp.virtual_machines.get("rg-vm", "vm-web")
    assert cmp.virtual_machines.begin_update("rg-vm", "vm-web", {"tags": {"a": "1"}},
                                             headers={"If-Match": vm.etag}).result().tags == {"a": "1"}


def test_a_plan_comes_back_with_what_the_provider_adds(sandbox, arm_client):
    sb = sandbox()
    sec = arm_client(SecurityCenter, sb, SUB)
    got = sec.pricings.update(SCOPE, "VirtualMachines", {"properties": {"pricingTier": "Standard", "subPlan": "P2"}})
    exts = {e.name: e for e in got.extensions}
    assert set(exts) == {"MdeDesignatedSubscription", "AgentlessVmScanning"}  # none was sent
    assert exts["AgentlessVmScanning"].operation_status.code == "Succeeded"
    assert exts["MdeDesignatedSubscription"].is_enabled == "False"
    assert got.enablement_time is not None and got.resources_coverage_status == "FullyCovered"
    # what the request says about an extension wins; the provider still adds the others
    again = sec.pricings.update(SCOPE, "VirtualMachines", {"properties": {
        "pricingTier": "Standard", "subPlan": "P2", "extensions": [{"name": "AgentlessVmScanning", "isEnabled": "False"}]}})
    exts = {e.name: e for e in again.extensions}
    assert exts["AgentlessVmScanning"].is_enabled == "False" and "MdeDesignatedSubscription" in exts
    assert again.enablement_time == got.enablement_time  # still on since the first write
    free = sec.pricings.update(SCOPE, "VirtualMachines", {"properties": {"pricingTier": "Free"}})
    assert free.extensions is None and free.sub_plan is None
    # a Free plan still reports coverage and enforce (ListPricings_example.json, 2024-01-01)
    assert (free.resources_coverage_status, free.enforce) == ("NotCovered", "False")
    assert sec.pricings.get(SCOPE, "VirtualMachines").resources_coverage_status == "NotCovered"


def test_a_plan_seeded_without_its_trial_time_reads_back_as_arm_answers_it(sandbox, arm_client, small_estate):
    # The small estate spells its VirtualMachines plan as {"pricingTier": "Free"} only; ARM answers
    # every plan with the read-only freeTrialRemainingTime, before a write as after one.
    plan = f"{SCOPE}/providers/Microsoft.Security/pricings/VirtualMachines"
    assert "freeTrialRemainingTime" not in next(r for r in small_estate if r["id"] == plan)["properties"]
    given = small_estate + [{"id": f"{SCOPE}/providers/Microsoft.Security/pricings/StorageAccounts",
                             "properties": {"pricingTier": "Free", "freeTrialRemainingTime": "P29DT23H"}}]
    sec = arm_client(SecurityCenter, sandbox(estate=given), SUB)
    before = sec.pricings.get(SCOPE, "VirtualMachines")
    assert before.free_trial_remaining_time == dt.timedelta(0) and before.pricing_tier == "Free"
    assert sec.pricings.get(SCOPE, "StorageAccounts").free_trial_remaining_time == dt.timedelta(days=29, hours=23)  # kept
    after = sec.pricings.update(SCOPE, "VirtualMachines", {"properties": {"pricingTier": "Free"}})
    assert after.free_trial_remaining_time == before.free_trial_remaining_time
    # seeded or implicit, a Free plan reads back with the coverage ARM reports for it
    assert (before.resources_coverage_status, before.enforce) == ("NotCovered", "False")
    assert sec.pricings.get(SCOPE, "Dns").resources_coverage_status == "NotCovered"


def test_partial_success_answers_201_with_the_failed_part(sandbox, arm_client):
    sb = sandbox(faults="partial:1")
    sec = arm_client(SecurityCenter, sb, SUB)
    got = sec.pricings.update(SCOPE, "StorageAccounts", {"properties": {"pricingTier": "Standard",
                                                                        "subPlan": "DefenderForStorageV2"}})
    assert sb.request_log[-1][2] == 201
    assert "Failed" in [e.operation_status.code for e in got.extensions]
    assert sec.pricings.get(SCOPE, "StorageAccounts").pricing_tier == "Standard"  # applied all the same
    setting = sec.defender_for_storage.create(ACCOUNT, "current", {"properties": {
        "isEnabled": True, "malwareScanning": {"onUpload": {"isEnabled": True, "capGBPerMonth": 5000}},
        "sensitiveDataDiscovery": {"isEnabled": True}, "overrideSubscriptionLevelSettings": True}})
    assert sb.request_log[-1][2] == 201
    assert setting.operation_status_properties_malware_scanning_operation_status.code == "UnknownError"
    assert setting.is_enabled_properties_malware_scanning_on_upload_is_enabled is False
    assert setting.is_enabled_properties_sensitive_data_discovery_is_enabled is False


def test_without_the_fault_the_same_writes_succeed_whole(sandbox, arm_client):
    sb = sandbox()
    sec = arm_client(SecurityCenter, sb, SUB)
    got = sec.pricings.update(SCOPE, "StorageAccounts", {"properties": {"pricingTier": "Standard",
                                                                        "subPlan": "DefenderForStorageV2"}})
    assert sb.request_log[-1][2] == 200 and {e.operation_status.code for e in got.extensions} == {"Succeeded"}
    setting = sec.defender_for_storage.create(ACCOUNT, "current", {"properties": {
        "isEnabled": True, "malwareScanning": {"onUpload": {"isEnabled": True, "capGBPerMonth": 5000}},
        "sensitiveDataDiscovery": {"isEnabled": True}, "overrideSubscriptionLevelSettings": True}})
    assert setting.is_enabled_properties_malware_scanning_on_upload_is_enabled is True


def test_providers_answer_in_their_own_casing(sandbox, arm_client):
    sb = sandbox()
    net = arm_client(NetworkManagementClient, sb, SUB)
    rule = net.security_rules.begin_create_or_update("rg-net", "nsg-app", "allow-https", {"properties": {
        "protocol": "tcp", "access": "allow", "direction": "inbound", "priority": 200,
        "sourceAddressPrefix": "*", "sourcePortRange": "*", "destinationAddressPrefix": "*",
        "destinationPortRange": "443"}}).result()
    assert (rule.protocol, rule.access, rule.direction) == ("Tcp", "Allow", "Inbound")
    asg = net.application_security_groups.begin_create_or_update("rg-net", "asg-web", {"location": "West Europe"}).result()
    assert asg.location == "westeurope"


def test_a_null_in_a_patch_is_ignored_where_the_provider_ignores_it(sandbox, arm_client):
    sb = sandbox()
    st = arm_client(StorageManagementClient, sb, SUB)
    policy = {"sasExpirationPeriod": "1.00:00:00", "expirationAction": "Log"}
    sb.store.get(ACCOUNT)["properties"]["keyCreationTime"] = {"key1": "2024-01-01T00:00:00Z",
                                                               "key2": "2024-01-01T00:00:00Z"}
    st.storage_accounts.update("rg-st", "stblob01", {"properties": {"sasPolicy": policy}})
    st.storage_accounts.update("rg-st", "stblob01", {"properties": {"sasPolicy": None}})
    assert st.storage_accounts.get_properties("rg-st", "stblob01").sas_policy.expiration_action == "Log"
    # a PUT that leaves sasPolicy out keeps it too (azure-rest-api-specs issue 31949)
    acct = sb.store.get(ACCOUNT)
    st.storage_accounts.begin_create("rg-st", "stblob01", {"location": acct["location"], "kind": acct["kind"],
                                                           "sku": acct["sku"]}).result()
    assert st.storage_accounts.get_properties("rg-st", "stblob01").sas_policy is not None
    # compute: encryptionAtHost null leaves it on; only false turns it off
    cmp = arm_client(ComputeManagementClient, sb, SUB)
    FeatureClient(cmp._config.credential, SUB, transport=sb.transport()).features.register(
        "Microsoft.Compute", "EncryptionAtHost")
    cmp.virtual_machines.begin_deallocate("rg-vm", "vm-web").result()
    on = {"properties": {"securityProfile": {"encryptionAtHost": True}}}
    cmp.virtual_machines.begin_update("rg-vm", "vm-web", on).result()
    nulled = cmp.virtual_machines.begin_update("rg-vm", "vm-web", {"properties": {"securityProfile": {
        "encryptionAtHost": None}}}).result()
    assert nulled.security_profile.encryption_at_host is True
    off = cmp.virtual_machines.begin_update("rg-vm", "vm-web", {"properties": {"securityProfile": {
        "encryptionAtHost": False}}}).result()
    assert off.security_profile.encryption_at_host is False

