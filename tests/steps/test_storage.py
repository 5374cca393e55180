"""Storage article: every check passes a compliant account, fails a non-compliant one, and the
change it proposes, once applied as ARM would, turns the finding into a pass."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ztwizard.inventory import Inventory
from ztwizard.model import change_id
from ztwizard.resource_id import parse
from ztwizard.steps import CHECK_BY_ID, STEP_BY_ID, storage
from ztwizard.steps._base import Check

from .conftest import RG, SUB, apply_all, sandbox_round_trip, statuses, verdicts

ACCT_ID = f"{RG}/providers/Microsoft.Storage/storageAccounts/stdata01"
VNET_ID = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet-spoke"
HUB_ID = f"/subscriptions/{SUB}/resourceGroups/rg-hub/providers/Microsoft.Network/virtualNetworks/vnet-hub"


def account(name: str = "stdata01", **props: Any) -> dict[str, Any]:
    """A StorageV2 account as ARM returns it, fully hardened unless `props` override."""
    base = {
        "supportsHttpsTrafficOnly": True, "minimumTlsVersion": "TLS1_2", "allowBlobPublicAccess": False,
        "allowSharedKeyAccess": False, "allowedCopyScope": "AAD", "publicNetworkAccess": "Disabled",
        "encryption": {"keySource": "Microsoft.Keyvault", "requireInfrastructureEncryption": True,
                       "keyvaultproperties": {"keyname": "k", "keyvaulturi": "https://kv.vault.azure.net/"}},
        "sasPolicy": {"sasExpirationPeriod": "1.00:00:00", "expirationAction": "Log"},
        "keyPolicy": {"keyExpirationPeriodInDays": 90},
        "keyCreationTime": {"key1": "2026-01-01T00:00:00Z", "key2": "2026-01-01T00:00:00Z"},
        "networkAcls": {"defaultAction": "Deny", "bypass": "AzureServices", "virtualNetworkRules": [],
                        "ipRules": []},
    }
    for k, v in props.items():
        if v is None:
            base.pop(k, None)
        else:
            base[k] = v
    return {"id": f"{RG}/providers/Microsoft.Storage/storageAccounts/{name}", "name": name,
            "type": "Microsoft.Storage/storageAccounts", "kind": "StorageV2", "location": "westeurope",
            "sku": {"name": "Standard_LRS"}, "etag": '"0x1"', "properties": base}


def run(check_id: str, *resources: dict[str, Any], inv: Inventory | None = None):
    inv = inv or Inventory.from_resources(resources)
    return CHECK_BY_ID[check_id].run(inv), inv


def assert_fix_passes(check_id: str, inv: Inventory, resource_id: str | None = None) -> None:
    """Apply every proposed change, re-run the check, and require a pass where it failed."""
    check: Check = CHECK_BY_ID[check_id]
    result = check.run(inv)
    assert "fail" in statuses(result, resource_id), result.findings
    assert result.changes
    fixed = check.run(apply_all(inv, result.changes))
    assert statuses(fixed, resource_id) and set(statuses(fixed, resource_id)) == {"pass"}, fixed.findings


def test_article_has_every_check_of_the_spec():
    ids = [c.id for s in storage.STEPS for c in s.checks]
    assert ids == ["storage-1a", "storage-1b", "storage-1c", "storage-1d", "storage-1e", "storage-1f",
                   "storage-1g", "storage-1h", "storage-2a", "storage-2b", "storage-2c", "storage-2d",
                   "storage-3a", "storage-3b", "storage-3c", "storage-3d", "storage-4a", "storage-4b",
                   "storage-4c"]
    for s in storage.STEPS:
        assert s.article == "storage" and s.why and s.title and s.id == f"storage-{s.number}"
        for c in s.checks:
            assert c.title and c.risk and c.mcsb and c.remediation in ("auto-patch", "auto-put", "create", "advisory")
    assert STEP_BY_ID["storage-4"].checks[0].billable
    assert CHECK_BY_ID["storage-3a"].billable and CHECK_BY_ID["storage-3a"].remediation == "create"


# ---- step 1 -------------------------------------------------------------------------------------

@pytest.mark.parametrize("check_id,prop,bad,default_fails", [
    ("storage-1a", "supportsHttpsTrafficOnly", False, True),
    ("storage-1b", "minimumTlsVersion", "TLS1_1", True),
    ("storage-1c", "allowBlobPublicAccess", True, True),
    ("storage-1d", "allowSharedKeyAccess", True, True),
    ("storage-1e", "allowedCopyScope", None, True),
])
def test_single_property_checks(check_id, prop, bad, default_fails):
    good, _ = run(check_id, account())
    assert statuses(good) == ["pass"]
    res, inv = run(check_id, account(**{prop: bad}))
    assert statuses(res) == ["fail"]
    f = res.findings[0]
    assert f.resource_id == ACCT_ID and f.property == f"properties.{prop}"
    (change,) = res.changes
    assert change.method == "PATCH" and change.resource_id == ACCT_ID and change.etag == '"0x1"'
    assert "stdata01" in change.title and change.risk
    assert_fix_passes(check_id, inv)
    # absent property takes the platform default
    absent, _ = run(check_id, account(**{prop: None}))
    assert statuses(absent) == (["fail"] if default_fails else ["pass"])


def test_tls_absent_means_tls10_and_tls13_is_fine():
    res, _ = run("storage-1b", account(minimumTlsVersion=None))
    assert res.findings[0].actual == "TLS1_0"
    assert res.changes[0].body == {"properties": {"minimumTlsVersion": "TLS1_2"}}
    assert res.changes[0].before == {"properties": {"minimumTlsVersion": None}}
    assert statuses(run("storage-1b", account(minimumTlsVersion="TLS1_3"))[0]) == ["pass"]


def test_shared_key_off_pairs_with_oauth_default_and_is_disruptive():
    res, _ = run("storage-1d", account(allowSharedKeyAccess=None))
    assert res.findings[0].actual is True
    body = res.changes[0].body["properties"]
    assert body == {"allowSharedKeyAccess": False, "defaultToOAuthAuthentication": True}
    assert res.changes[0].disruptive


def test_copy_scope_private_link_counts():
    assert statuses(run("storage-1e", account(allowedCopyScope="PrivateLink"))[0]) == ["pass"]


def test_resource_graph_lower_cased_type_is_restored():
    acct = account(minimumTlsVersion="TLS1_0")
    acct["type"] = "microsoft.storage/storageaccounts"
    inv = Inventory.from_resources([acct])
    assert inv.get(ACCT_ID)["type"] == "Microsoft.Storage/storageAccounts"
    assert statuses(CHECK_BY_ID["storage-1b"].run(inv)) == ["fail"]


def file_services(acct_id: str = ACCT_ID, **smb: Any) -> dict[str, Any]:
    return {"id": f"{acct_id}/fileServices/default", "name": "default",
            "type": "Microsoft.Storage/storageAccounts/fileServices",
            "properties": {"protocolSettings": {"smb": smb}, "shareDeleteRetentionPolicy": {"enabled": True, "days": 7}}}


SHARE = {"id": f"{ACCT_ID}/fileServices/default/shares/profiles", "properties": {"shareQuota": 100}}


def test_smb_hardening_pass_fail_and_fix():
    ok = file_services(versions="SMB3.1.1", channelEncryption="AES-256-GCM")
    assert statuses(run("storage-1f", account(), ok, SHARE)[0]) == ["pass"]
    bad = file_services(versions="SMB2.1;SMB3.0;SMB3.1.1", channelEncryption="AES-128-CCM;AES-128-GCM;AES-256-GCM")
    res, inv = run("storage-1f", account(), bad, SHARE)
    assert statuses(res) == ["fail"]
    assert res.findings[0].resource_id == ACCT_ID  # judged: the account; value held by the child
    assert res.findings[0].property == "properties.protocolSettings.smb"
    (change,) = res.changes
    assert change.method == "PUT" and change.resource_id.endswith("/fileServices/default")
    smb = change.body["properties"]["protocolSettings"]["smb"]
    assert smb == {"versions": "SMB3.0;SMB3.1.1", "channelEncryption": "AES-128-GCM;AES-256-GCM"}
    assert change.body["properties"]["shareDeleteRetentionPolicy"] == {"enabled": True, "days": 7}  # kept
    assert_fix_passes("storage-1f", inv)


def test_smb_judged_on_every_account_with_a_file_service_shares_or_not():
    # a general-purpose account without shares: its SMB settings govern every share made later
    bad = file_services(versions="SMB2.1;SMB3.0;SMB3.1.1", channelEncryption="AES-128-CCM")
    res, inv = run("storage-1f", account(), bad)
    assert verdicts(res) == ["fail/auto"] and res.findings[0].resource_id == ACCT_ID
    assert_fix_passes("storage-1f", inv)
    res, inv = run("storage-1f", account())  # no fileServices read: platform defaults allow SMB 2.1
    assert statuses(res) == ["fail"]
    assert_fix_passes("storage-1f", inv)
    files = account(name="stfiles01")
    files["kind"] = "FileStorage"
    res, inv = run("storage-1f", files)
    assert statuses(res) == ["fail"]
    assert_fix_passes("storage-1f", inv)
    for kind in ("BlobStorage", "BlockBlobStorage"):  # no file service at all
        blobs = account(name="stblobs01")
        blobs["kind"] = kind
        res, _ = run("storage-1f", blobs)
        assert statuses(res) == ["not_applicable"], kind


def test_smb_unreadable_child_is_an_error_while_others_run():
    inv = Inventory.from_resources([account(minimumTlsVersion="TLS1_0")])
    inv.unreadable["microsoft.storage/storageaccounts/fileservices"] = "403 AuthorizationFailed"
    assert statuses(CHECK_BY_ID["storage-1f"].run(inv)) == ["error"]
    assert statuses(CHECK_BY_ID["storage-1b"].run(inv)) == ["fail"]


KV_RG = f"/subscriptions/{SUB}/resourceGroups/rg-keys"
VAULT_ID = f"{KV_RG}/providers/Microsoft.KeyVault/vaults/kv-cmk"
UAI_ID = f"{KV_RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-cmk"
ACCT_PRINCIPAL = "aaaaaaaa-0000-0000-0000-000000000001"
UAI_PRINCIPAL = "aaaaaaaa-0000-0000-0000-000000000002"


def vault(name: str = "kv-cmk", *, purge: bool | None = True, soft: bool | None = True, rbac: bool = False,
          policies: list[dict[str, Any]] | None = None, location: str = "westeurope") -> dict[str, Any]:
    props: dict[str, Any] = {"tenantId": "tenant-1", "sku": {"family": "A", "name": "standard"},
                             "vaultUri": f"https://{name}.vault.azure.net/", "enableRbacAuthorization": rbac,
                             "accessPolicies": policies or []}
    if purge is not None:
        props["enablePurgeProtection"] = purge
    if soft is not None:
        props["enableSoftDelete"] = soft
    return {"id": f"{KV_RG}/providers/Microsoft.KeyVault/vaults/{name}", "name": name,
            "type": "Microsoft.KeyVault/vaults", "location": location, "properties": props}


def key(name: str = "cmk", vault_name: str = "kv-cmk", kty: str = "RSA", enabled: bool = True) -> dict[str, Any]:
    vid = f"{KV_RG}/providers/Microsoft.KeyVault/vaults/{vault_name}"
    uri = f"https://{vault_name}.vault.azure.net/keys/{name}"
    return {"id": f"{vid}/keys/{name}", "name": name, "type": "Microsoft.KeyVault/vaults/keys",
            "properties": {"kty": kty, "keyUri": uri, "keyUriWithVersion": f"{uri}/0123456789abcdef",
                           "attributes": {"enabled": enabled}}}


def uai() -> dict[str, Any]:
    return {"id": UAI_ID, "name": "id-cmk", "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
            "location": "westeurope", "properties": {"principalId": UAI_PRINCIPAL, "tenantId": "tenant-1"}}


def platform_keys(identity: dict[str, Any] | None = None) -> dict[str, Any]:
    acct = account(encryption={"keySource": "Microsoft.Storage", "requireInfrastructureEncryption": True,
                               "services": {"blob": {"keyType": "Account", "enabled": True,
                                                     "lastEnabledTime": "2026-01-01T00:00:00Z"}}})
    if identity is not None:
        acct["identity"] = identity
    return acct


SYSTEM = {"type": "SystemAssigned", "principalId": ACCT_PRINCIPAL, "tenantId": "tenant-1"}


def test_cmk_defaults_to_the_one_fit_key_and_grants_access_first():
    inv = Inventory.from_resources([platform_keys(SYSTEM), vault(), key()])
    res = CHECK_BY_ID["storage-1g"].run(inv)
    assert statuses(res) == ["fail"]
    grant, switch = sorted(res.changes, key=lambda c: c.resource_id != VAULT_ID)
    # the access policy: get/wrapKey/unwrapKey for the account's own identity, on the vault
    assert grant.resource_id == VAULT_ID and grant.method == "PUT"
    (policy,) = grant.body["properties"]["accessPolicies"]
    assert policy["objectId"] == ACCT_PRINCIPAL and policy["permissions"]["keys"] == ["get", "wrapKey", "unwrapKey"]
    assert switch.method == "PATCH" and switch.depends_on == [grant.id]
    enc = switch.body["properties"]["encryption"]
    assert enc["keySource"] == "Microsoft.Keyvault" and enc["requireInfrastructureEncryption"] is True
    assert enc["keyvaultproperties"] == {"keyname": "cmk", "keyvaulturi": "https://kv-cmk.vault.azure.net/"}
    assert "lastEnabledTime" not in enc["services"]["blob"]  # read-only: not sent
    assert "identity" not in switch.body  # the system identity is there already
    assert switch.params == {"keyVaultId": VAULT_ID, "keyName": "cmk", "identity": "SystemAssigned"}
    assert "unreadable" in switch.risk and "Undo switches back" in switch.risk
    assert_fix_passes("storage-1g", inv)


def test_cmk_on_an_rbac_vault_assigns_the_crypto_service_encryption_user_role():
    inv = Inventory.from_resources([platform_keys(SYSTEM), vault(rbac=True), key()])
    res = CHECK_BY_ID["storage-1g"].run(inv)
    grant = next(c for c in res.changes if c.action == "create")
    assert grant.resource_id.startswith(VAULT_ID + "/providers/Microsoft.Authorization/roleAssignments/")
    assert grant.body["properties"]["roleDefinitionId"].endswith("/e147488a-f6f5-4113-8e2d-b22465e65bf6")
    assert grant.body["properties"]["principalId"] == ACCT_PRINCIPAL
    switch = next(c for c in res.changes if c.method == "PATCH")
    assert switch.depends_on == [grant.id]
    assert_fix_passes("storage-1g", inv)
    # an existing grant is recognised: only the switch is proposed
    granted = apply_all(inv, [grant])
    (only,) = CHECK_BY_ID["storage-1g"].run(granted).changes
    assert only.method == "PATCH" and only.depends_on == []


@pytest.mark.parametrize("resources", [
    [],                                                                    # no vault at all
    [vault(purge=None), key()],                                            # purge protection off (absent)
    [vault(soft=False), key()],                                            # soft delete off
    [vault(), key(), key("cmk2")],                                         # two keys: a person chooses
    [vault(), key(), vault("kv-two"), key("cmk", "kv-two")],               # two vaults
    [vault(), key(kty="EC")],                                              # not an RSA key
    [vault(), key(enabled=False)],                                         # a disabled key
])
def test_cmk_asks_for_the_key_when_no_single_fit_one_exists(resources):
    inv = Inventory.from_resources([platform_keys(SYSTEM), *resources])
    res = CHECK_BY_ID["storage-1g"].run(inv)
    (f,) = res.findings
    assert f.status == "fail" and "--param CHANGE.keyVaultId" in f.message
    (change,) = res.changes  # proposed so that --param can fill it, skipped by apply until then
    assert change.params["keyVaultId"] == "" and change.params["keyName"] == ""


def test_cmk_parameters_are_validated_and_fill_the_change():
    from ztwizard.engine import edit_change, make_plan
    from ztwizard.errors import ParamError

    inv = Inventory.from_resources([platform_keys(SYSTEM), vault(), key(), key("cmk2"), vault("kv-soft", purge=False),
                                    key("k", "kv-soft")])
    plan = make_plan(inv, check_ids=["storage-1g"])
    (change,) = plan.step("storage-1").changes
    for values, error in (({"keyVaultId": "kv-cmk"}, "the id of a"), ({"keyName": "no spaces"}, "Key Vault key name"),
                          ({"identity": "mine"}, "SystemAssigned or the id"),
                          ({"keyVaultId": vault("kv-soft")["id"], "keyName": "k"}, "purge protection"),
                          ({"keyVaultId": VAULT_ID, "keyName": "nope"}, "no enabled RSA key named nope")):
        with pytest.raises(ParamError, match=error):
            edit_change(inv, plan, change.id, values)
    edit_change(inv, plan, change.id, {"keyVaultId": VAULT_ID, "keyName": "cmk2"})
    switch = next(c for c in plan.step("storage-1").changes if c.id == change.id)
    assert switch.body["properties"]["encryption"]["keyvaultproperties"]["keyname"] == "cmk2"
    assert any(c.resource_id == VAULT_ID for c in plan.step("storage-1").changes)  # its grant followed


def test_cmk_without_an_identity_adds_one_first_and_switches_next_run():
    """A system identity's principal id exists only once ARM made it: the first run adds the
    identity; the re-plan grants it access and switches the key."""
    inv = Inventory.from_resources([platform_keys(), vault(), key()])
    res = CHECK_BY_ID["storage-1g"].run(inv)
    (first,) = res.changes
    assert first.body == {"identity": {"type": "SystemAssigned"}} and "re-run the plan" in res.findings[0].message
    after = apply_all(inv, [first])
    acct = after.get(ACCT_ID)
    acct["identity"]["principalId"] = ACCT_PRINCIPAL  # what ARM answers with
    second = CHECK_BY_ID["storage-1g"].run(Inventory.from_resources(after.all()))
    assert {c.method for c in second.changes} == {"PUT", "PATCH"}


def test_cmk_with_a_user_assigned_identity_attaches_it_in_the_same_patch():
    from ztwizard.engine import edit_change, make_plan

    inv = Inventory.from_resources([platform_keys(), vault(), key(), uai()])
    plan = make_plan(inv, check_ids=["storage-1g"])
    (change,) = plan.step("storage-1").changes
    edit_change(inv, plan, change.id, {"identity": UAI_ID})
    changes = plan.step("storage-1").changes
    grant = next(c for c in changes if c.resource_id == VAULT_ID)
    assert grant.body["properties"]["accessPolicies"][0]["objectId"] == UAI_PRINCIPAL
    switch = next(c for c in changes if c.method == "PATCH")
    assert switch.body["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {UAI_ID: {}}}
    assert switch.body["properties"]["encryption"]["identity"] == {"userAssignedIdentity": UAI_ID}
    fixed = apply_all(inv, changes)
    assert statuses(CHECK_BY_ID["storage-1g"].run(fixed)) == ["pass"]


def test_one_access_policy_change_per_vault_for_many_accounts():
    other = platform_keys(SYSTEM | {"principalId": "aaaaaaaa-0000-0000-0000-000000000009"})
    other["id"], other["name"] = ACCT_ID.replace("stdata01", "stdata02"), "stdata02"
    inv = Inventory.from_resources([platform_keys(SYSTEM), other, vault(), key()])
    res = CHECK_BY_ID["storage-1g"].run(inv)
    (grant,) = [c for c in res.changes if c.resource_id == VAULT_ID]
    assert len(grant.body["properties"]["accessPolicies"]) == 2
    assert all(c.depends_on == [grant.id] for c in res.changes if c.method == "PATCH")


def test_infrastructure_encryption_is_advisory():
    assert statuses(run("storage-1h", account())[0]) == ["pass"]
    res, _ = run("storage-1h", account(encryption={"keySource": "Microsoft.Storage"}))
    assert verdicts(res) == ["fail/manual"] and not res.changes
    assert "new account" in res.findings[0].message


def test_no_accounts_is_not_applicable():
    inv = Inventory.from_resources([], subscriptions=[SUB])
    for cid in ("storage-1a", "storage-1f", "storage-2a", "storage-3a", "storage-3b", "storage-3d", "storage-4c"):
        assert statuses(CHECK_BY_ID[cid].run(inv)) == ["not_applicable"], cid


# ---- step 2 -------------------------------------------------------------------------------------

def assignment(scope: str, role: str, principal_type: str = "User", n: int = 1) -> dict[str, Any]:
    guid = f"00000000-0000-0000-0000-{n:012d}"
    return {"id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/{guid}", "name": guid,
            "type": "Microsoft.Authorization/roleAssignments",
            "properties": {"scope": scope, "principalId": f"p-{n}", "principalType": principal_type,
                           "roleDefinitionId": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/"
                                               f"roleDefinitions/{role}"}}


def test_storage_rbac_flags_direct_user_owner():
    ok = [account(), assignment(ACCT_ID, "ba92f5b4-2d11-453d-a403-e96b0029c9fe", "Group", 1),
          assignment(RG, storage.OWNER, "Group", 2)]
    assert statuses(run("storage-2a", *ok)[0]) == ["pass"]
    res, _ = run("storage-2a", account(), assignment(RG, storage.STORAGE_ACCOUNT_CONTRIBUTOR, "User", 3))
    assert verdicts(res) == ["fail/manual"] and not res.changes
    assert "Storage Account Contributor" in res.findings[0].message and "group" in res.findings[0].message


def test_storage_rbac_needs_role_assignments_readable():
    inv = Inventory.from_resources([account()])
    inv.unreadable["microsoft.authorization/roleassignments"] = "403"
    assert statuses(CHECK_BY_ID["storage-2a"].run(inv)) == ["error"]


def test_sas_policy():
    assert statuses(run("storage-2b", account())[0]) == ["pass"]
    res, inv = run("storage-2b", account(sasPolicy=None))
    assert statuses(res) == ["fail"]
    assert res.changes[0].body == {"properties": {"sasPolicy": {"sasExpirationPeriod": "1.00:00:00",
                                                                "expirationAction": "Log"}}}
    assert_fix_passes("storage-2b", inv)
    # a partial policy is completed, not replaced
    res, _ = run("storage-2b", account(sasPolicy={"sasExpirationPeriod": "", "expirationAction": "Block"}))
    assert res.changes[0].body["properties"]["sasPolicy"]["expirationAction"] == "Block"


def test_key_policy_needs_key_creation_time():
    assert statuses(run("storage-2c", account())[0]) == ["pass"]
    res, inv = run("storage-2c", account(keyPolicy=None))
    assert statuses(res) == ["fail"]
    assert_fix_passes("storage-2c", inv)
    res, _ = run("storage-2c", account(keyPolicy=None, keyCreationTime={"key1": None, "key2": None}))
    assert verdicts(res) == ["fail/manual"] and "regenerate" in res.findings[0].message


@pytest.mark.parametrize("created", [None, {"key1": "2026-01-01T00:00:00Z"}])
def test_sas_policy_waits_for_rotated_keys(created):
    """ARM refuses a SAS expiration policy until both keys have a creation time: no change is
    proposed, and the finding says to rotate the keys first."""
    res, _ = run("storage-2b", account(sasPolicy=None, keyCreationTime=created))
    assert not res.changes
    (f,) = res.findings
    assert f.status != "pass" and f.message.count("Rotate keys first") == 1 and "key1 and key2" in f.message


def test_user_delegation_sas_advisory():
    assert statuses(run("storage-2d", account())[0]) == ["pass"]
    res, _ = run("storage-2d", account(allowSharedKeyAccess=None))
    assert verdicts(res) == ["fail/manual"] and "user-delegation" in res.findings[0].message


# ---- step 3 -------------------------------------------------------------------------------------

def subnet(vnet_id: str, name: str, prefix: str, **props: Any) -> dict[str, Any]:
    return {"id": f"{vnet_id}/subnets/{name}", "name": name,
            "type": "Microsoft.Network/virtualNetworks/subnets",
            "properties": {"addressPrefix": prefix, **props}}


def vnet(vnet_id: str, prefix: str, subnets: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": vnet_id, "name": vnet_id.rsplit("/", 1)[-1], "type": "Microsoft.Network/virtualNetworks",
            "location": "westeurope", "etag": 'W/"1"',
            "properties": {"addressSpace": {"addressPrefixes": [prefix]}, "subnets": subnets}}


def estate_networks() -> list[dict[str, Any]]:
    hub = vnet(HUB_ID, "10.0.0.0/16", [subnet(HUB_ID, "AzureFirewallSubnet", "10.0.0.0/26"),
                                       subnet(HUB_ID, "shared", "10.0.1.0/24")])
    spoke = vnet(VNET_ID, "10.1.0.0/16", [
        subnet(VNET_ID, "snet-web", "10.1.0.0/24"),
        subnet(VNET_ID, "snet-pe", "10.1.9.0/28"),
        subnet(VNET_ID, "snet-app", "10.1.1.0/24",
               delegations=[{"name": "d", "properties": {"serviceName": "Microsoft.Web/serverFarms"}}]),
    ])
    return [hub, spoke]


def endpoint(acct_id: str, group: str, name: str = "pe-x") -> dict[str, Any]:
    return {"id": f"{RG}/providers/Microsoft.Network/privateEndpoints/{name}", "name": name,
            "type": "Microsoft.Network/privateEndpoints", "location": "westeurope",
            "properties": {"subnet": {"id": f"{VNET_ID}/subnets/snet-pe"},
                           "privateLinkServiceConnections": [{"name": "c", "properties": {
                               "privateLinkServiceId": acct_id, "groupIds": [group],
                               "privateLinkServiceConnectionState": {"status": "Approved"}}}]}}


def with_connection(acct: dict[str, Any], pe_id: str, status: str = "Approved") -> dict[str, Any]:
    acct = copy.deepcopy(acct)
    acct["properties"]["privateEndpointConnections"] = [{
        "id": f"{acct['id']}/privateEndpointConnections/c1", "name": "c1",
        "properties": {"privateEndpoint": {"id": pe_id},
                       "privateLinkServiceConnectionState": {"status": status}}}]
    return acct


def test_private_endpoint_pass_when_blob_endpoint_approved():
    pe = endpoint(ACCT_ID, "blob")
    res, _ = run("storage-3a", with_connection(account(), pe["id"]), pe, *estate_networks())
    assert statuses(res) == ["pass"]


def test_private_endpoint_proposal_picks_spoke_endpoint_subnet_and_fixes():
    res, inv = run("storage-3a", account(), *estate_networks())
    assert statuses(res) == ["fail"]
    (change,) = res.changes
    assert change.action == "create" and change.billable
    assert change.resource_id == f"{RG}/providers/Microsoft.Network/privateEndpoints/pe-stdata01-blob"
    assert change.body["properties"]["subnet"]["id"] == f"{VNET_ID}/subnets/snet-pe"
    conn = change.body["properties"]["privateLinkServiceConnections"][0]["properties"]
    assert conn == {"privateLinkServiceId": ACCT_ID, "groupIds": ["blob"]}
    assert change.params["subnet_id"].endswith("snet-pe")
    assert "privatelink.blob.core.windows.net" in change.risk
    assert_fix_passes("storage-3a", inv)


def test_private_endpoint_pending_connection_does_not_count_and_files_need_file():
    pe = endpoint(ACCT_ID, "blob")
    pe["properties"]["privateLinkServiceConnections"][0]["properties"]["privateLinkServiceConnectionState"] = {
        "status": "Pending"}
    res, _ = run("storage-3a", with_connection(account(), pe["id"], "Pending"), pe, *estate_networks())
    assert statuses(res) == ["fail"]
    # a Data Lake account needs "dfs" besides "blob"; a FileStorage account needs "file"
    pe_ok = endpoint(ACCT_ID, "blob")
    res, inv = run("storage-3a", with_connection(account(isHnsEnabled=True), pe_ok["id"]), pe_ok,
                   *estate_networks())
    assert statuses(res) == ["fail"]
    assert [c.body["properties"]["privateLinkServiceConnections"][0]["properties"]["groupIds"][0]
            for c in res.changes] == ["dfs"]
    assert_fix_passes("storage-3a", inv)
    files = account(name="stfiles01")
    files["kind"] = "FileStorage"
    res, _ = run("storage-3a", files, *estate_networks())
    assert [c.body["properties"]["privateLinkServiceConnections"][0]["properties"]["groupIds"][0]
            for c in res.changes] == ["file"]
    # a general-purpose account with file shares needs "file" too; fileServices alone does not count
    share = {"id": f"{ACCT_ID}/fileServices/default/shares/app-content", "name": "app-content",
             "type": "Microsoft.Storage/storageAccounts/fileServices/shares", "properties": {"shareQuota": 1024}}
    res, _ = run("storage-3a", account(), file_services(), share, *estate_networks())
    assert [c.body["properties"]["privateLinkServiceConnections"][0]["properties"]["groupIds"][0]
            for c in res.changes] == ["blob", "file"]
    res, _ = run("storage-3a", account(), file_services(), *estate_networks())
    assert [c.body["properties"]["privateLinkServiceConnections"][0]["properties"]["groupIds"][0]
            for c in res.changes] == ["blob"]


def test_private_endpoint_without_usable_subnet_is_manual():
    hub_only = vnet(HUB_ID, "10.0.0.0/16", [subnet(HUB_ID, "GatewaySubnet", "10.0.0.0/27"),
                                            subnet(HUB_ID, "AzureBastionSubnet", "10.0.0.64/26")])
    res, _ = run("storage-3a", account(), hub_only)
    assert verdicts(res) == ["fail/manual"] and not res.changes
    assert "subnet" in res.findings[0].message


def test_public_access_disable_depends_on_the_endpoint():
    res, inv = run("storage-3b", account(publicNetworkAccess=None), *estate_networks())
    assert statuses(res) == ["fail"]
    (change,) = res.changes
    assert change.body == {"properties": {"publicNetworkAccess": "Disabled"}}
    # the id of storage-3a's create of pe-stdata01-blob (a create's id comes from what it is for)
    (endpoint,) = CHECK_BY_ID["storage-3a"].run(inv).changes
    assert endpoint.resource_id == f"{RG}/providers/Microsoft.Network/privateEndpoints/pe-stdata01-blob"
    assert change.depends_on == [endpoint.id]
    assert change.disruptive
    # applying the endpoint then this change passes both
    pe_changes = CHECK_BY_ID["storage-3a"].run(inv).changes
    fixed = apply_all(inv, [*pe_changes, change])
    assert statuses(CHECK_BY_ID["storage-3b"].run(fixed)) == ["pass"]
    assert statuses(CHECK_BY_ID["storage-3a"].run(fixed)) == ["pass"]


def test_public_access_with_endpoints_has_no_dependency_and_without_subnet_is_manual():
    pe = endpoint(ACCT_ID, "blob")
    res, _ = run("storage-3b", with_connection(account(publicNetworkAccess="Enabled"), pe["id"]), pe)
    assert statuses(res) == ["fail"] and res.changes[0].depends_on == []
    res, _ = run("storage-3b", account(publicNetworkAccess="Enabled"))
    assert verdicts(res) == ["fail/manual"] and "storage-3a" in res.findings[0].message
    assert statuses(run("storage-3b", account())[0]) == ["pass"]


def test_network_acls_sent_whole():
    res, inv = run("storage-3c", account(networkAcls={
        "defaultAction": "Allow", "bypass": "None",
        "ipRules": [{"value": "203.0.113.4", "action": "Allow"}], "virtualNetworkRules": []}))
    assert statuses(res) == ["fail"]
    acls = res.changes[0].body["properties"]["networkAcls"]
    assert acls == {"defaultAction": "Deny", "bypass": "AzureServices",
                    "ipRules": [{"value": "203.0.113.4", "action": "Allow"}], "virtualNetworkRules": []}
    assert res.changes[0].disruptive
    assert_fix_passes("storage-3c", inv)
    absent, _ = run("storage-3c", account(networkAcls=None))
    assert statuses(absent) == ["fail"] and absent.findings[0].actual == "Allow"
    assert statuses(run("storage-3c", account())[0]) == ["pass"]


def test_service_endpoint_on_allowed_subnet():
    nets = estate_networks()
    rule = {"id": f"{VNET_ID}/subnets/snet-web", "action": "Allow"}
    acct = account(networkAcls={"defaultAction": "Deny", "bypass": "AzureServices",
                                "virtualNetworkRules": [rule], "ipRules": []})
    res, inv = run("storage-3d", acct, *nets)
    assert statuses(res) == ["fail"]
    assert res.findings[0].resource_id == f"{VNET_ID}/subnets/snet-web"
    (change,) = res.changes
    assert change.method == "PUT" and change.resource_id == f"{VNET_ID}/subnets/snet-web"
    assert change.body["properties"]["addressPrefix"] == "10.1.0.0/24"  # read-modify-write of the subnet
    assert change.body["properties"]["serviceEndpoints"] == [{"service": "Microsoft.Storage",
                                                              "locations": ["westeurope"]}]
    assert_fix_passes("storage-3d", inv, f"{VNET_ID}/subnets/snet-web")
    # neither endpoints nor rules: a concrete instruction
    res, _ = run("storage-3d", account(), *nets)
    assert verdicts(res) == ["fail/manual"] and "storage-3a" in res.findings[0].message
    # private endpoints make service endpoints unnecessary
    pe = endpoint(ACCT_ID, "blob")
    assert statuses(run("storage-3d", with_connection(account(), pe["id"]), pe, *nets)[0]) == ["pass"]


def test_network_checks_report_error_when_vnets_unreadable():
    inv = Inventory.from_resources([account()])
    inv.unreadable["microsoft.network/virtualnetworks"] = "403 AuthorizationFailed"
    for cid in ("storage-3a", "storage-3b", "storage-3d"):
        assert statuses(CHECK_BY_ID[cid].run(inv)) == ["error"]
    assert statuses(CHECK_BY_ID["storage-3c"].run(inv)) == ["pass"]


# ---- step 4 -------------------------------------------------------------------------------------

PRICING_ID = f"/subscriptions/{SUB}/providers/Microsoft.Security/pricings/StorageAccounts"


def storage_pricing(tier: str = "Standard", sub_plan: str | None = "DefenderForStorageV2",
                    malware: str = "True", sensitive: str = "True") -> dict[str, Any]:
    props: dict[str, Any] = {"pricingTier": tier}
    if sub_plan:
        props["subPlan"] = sub_plan
    if tier == "Standard":
        props["extensions"] = [
            {"name": "OnUploadMalwareScanning", "isEnabled": malware,
             "additionalExtensionProperties": {"CapGBPerMonthPerStorageAccount": "1000"}},
            {"name": "SensitiveDataDiscovery", "isEnabled": sensitive}]
    return {"id": PRICING_ID, "name": "StorageAccounts", "type": "Microsoft.Security/pricings",
            "properties": props}


def test_storage_plan_per_subscription():
    assert statuses(run("storage-4a", account(), storage_pricing())[0]) == ["pass"]
    res, inv = run("storage-4a", account(), storage_pricing("Free", None))
    assert statuses(res) == ["fail"] and res.findings[0].resource_id == PRICING_ID
    assert res.changes[0].billable and res.changes[0].method == "PUT"
    assert_fix_passes("storage-4a", inv)
    # the classic per-transaction plan is not the per-account plan
    assert statuses(run("storage-4a", account(), storage_pricing("Standard", "PerTransaction"))[0]) == ["fail"]
    # no pricing resource at all: the platform default, Free
    res, inv = run("storage-4a", account())
    assert statuses(res) == ["fail"]
    assert_fix_passes("storage-4a", inv)


def test_storage_plan_extensions():
    assert statuses(run("storage-4b", account(), storage_pricing())[0]) == ["pass"]
    res, inv = run("storage-4b", account(), storage_pricing(malware="False"))
    assert statuses(res) == ["fail"] and res.changes[0].depends_on == []
    exts = {e["name"]: e for e in res.changes[0].body["properties"]["extensions"]}
    assert exts["OnUploadMalwareScanning"]["additionalExtensionProperties"] == {
        "CapGBPerMonthPerStorageAccount": "1000"}  # the existing cap is kept
    assert_fix_passes("storage-4b", inv)
    res, inv = run("storage-4b", account(), storage_pricing("Free", None))
    assert res.changes[0].depends_on == [change_id("storage-4a", PRICING_ID, "PUT")]
    assert_fix_passes("storage-4b", inv)


def defender_setting(enabled: bool, override: bool) -> dict[str, Any]:
    return {"id": f"{ACCT_ID}/providers/Microsoft.Security/defenderForStorageSettings/current",
            "name": "current", "type": "Microsoft.Security/defenderForStorageSettings",
            "properties": {"isEnabled": enabled, "overrideSubscriptionLevelSettings": override,
                           "malwareScanning": {"onUpload": {"isEnabled": False, "capGBPerMonth": 10}},
                           "sensitiveDataDiscovery": {"isEnabled": False}}}


def test_account_defender_inherits_subscription_plan():
    assert statuses(run("storage-4c", account(), storage_pricing())[0]) == ["pass"]
    res, inv = run("storage-4c", account(), storage_pricing("Free", None))
    assert statuses(res) == ["fail"] and res.findings[0].resource_id == ACCT_ID
    (change,) = res.changes
    assert change.action == "create" and change.resource_id.endswith("/defenderForStorageSettings/current")
    assert change.body["properties"]["overrideSubscriptionLevelSettings"] is True
    assert_fix_passes("storage-4c", inv)


def test_account_override_that_disables_defender_fails():
    res, inv = run("storage-4c", account(), storage_pricing(), defender_setting(False, True))
    assert statuses(res) == ["fail"] and "override" in res.findings[0].message
    (change,) = res.changes
    assert change.action == "update" and change.method == "PUT"
    assert change.body["properties"]["overrideSubscriptionLevelSettings"] is False
    assert_fix_passes("storage-4c", inv)
    # an override that enables it passes even with the plan off
    assert statuses(run("storage-4c", account(), defender_setting(True, True))[0]) == ["pass"]


def test_defender_unreadable_settings_is_error():
    inv = Inventory.from_resources([account(), storage_pricing()])
    inv.unreadable["microsoft.security/pricings"] = "403"
    assert statuses(CHECK_BY_ID["storage-4c"].run(inv)) == ["error"]
    assert statuses(CHECK_BY_ID["storage-4a"].run(inv)) == ["error"]


# ---- the reference estate ---------------------------------------------------------------------

def test_reference_estate_has_work_in_every_storage_step():
    from ztwizard.sandbox.estates import load_estate

    inv = Inventory.from_resources(load_estate("reference"))
    passes = 0
    for step in storage.STEPS:
        found = [f.status for c in step.checks for f in c.run(inv).findings]
        assert {"fail", "manual"} & set(found), step.id
        assert "error" not in found, step.id
        passes += found.count("pass")
    assert passes


def test_storage_proposals_apply_through_the_sandbox(tmp_path):
    """Every storage proposal is accepted by ARM's API shape and turns its failure into a pass."""
    before, after, report = sandbox_round_trip([s.id for s in storage.STEPS], tmp_path)
    assert not report.failed, [o.line() for o in report.failed]
    # the reference estate has no Key Vault key fit for a CMK: storage-1g's switch waits for --param
    waiting = {o.check for o in report.skipped if o.message.startswith("waiting for parameter")}
    assert waiting == {"storage-1g"} and not [o for o in report.applied if o.check == "storage-1g"]
    failed = [k for k, v in before.items() if v == "fail" and k[0] not in waiting]
    assert len(failed) > 20
    still = {k: after.get(k) for k in failed if after.get(k) != "pass"}
    assert not still
    assert not [k for k, v in after.items() if v == "fail" and k[0] not in waiting]


def test_public_access_names_the_containers_that_go_dark():
    def container(name: str, access: str | None) -> dict[str, Any]:
        props = {"publicAccess": access} if access else {}
        return {"id": f"{ACCT_ID}/blobServices/default/containers/{name}", "name": name,
                "type": "microsoft.storage/storageaccounts/blobservices/containers", "properties": props}

    res, inv = run("storage-1c", account(allowBlobPublicAccess=True), container("images", "Blob"),
                   container("private", "None"), container("legacy", None))
    assert "images" in res.changes[0].risk and "private" not in res.changes[0].risk
    assert "Anonymous containers: images." in res.findings[0].message
    assert_fix_passes("storage-1c", inv)


def test_private_endpoint_goes_in_the_subnets_subscription_and_region():
    other_sub = "00000000-0000-0000-0000-0000000000ff"
    other_rg = f"/subscriptions/{other_sub}/resourceGroups/rg-net"
    spoke_id = f"{other_rg}/providers/Microsoft.Network/virtualNetworks/vnet-spoke-neu"
    net = vnet(spoke_id, "10.2.0.0/16", [subnet(spoke_id, "snet-pe", "10.2.9.0/28")])
    net["location"] = "northeurope"
    res, inv = run("storage-3a", account(), net)
    (c,) = res.changes
    assert c.resource_id.startswith(f"{other_rg}/providers/Microsoft.Network/privateEndpoints/")
    assert c.body["location"] == "northeurope"
    assert_fix_passes("storage-3a", inv)


# ---- storage-1g through the sandbox: apply -> pass -> undo --------------------------------------

def _cmk_sandbox(rbac: bool = False) -> Any:
    from ztwizard.gateway import Gateway
    from ztwizard.sandbox import Sandbox
    from ztwizard.sandbox.estates import load_estate
    from ztwizard.sandbox.estates import reference as ref
    from ztwizard.target import in_process_target

    kv = f"{ref.RG_STORAGE}/providers/Microsoft.KeyVault/vaults/kv-contoso-cmk"
    estate = [*load_estate("reference"),
              {"id": kv, "type": "Microsoft.KeyVault/vaults", "location": "westeurope", "properties": {
                  "tenantId": ref.TENANT_ID, "sku": {"family": "A", "name": "premium"}, "accessPolicies": [],
                  "enableSoftDelete": True, "softDeleteRetentionInDays": 90, "enablePurgeProtection": True,
                  "enableRbacAuthorization": rbac}},
              {"id": f"{kv}/keys/cmk-storage", "type": "Microsoft.KeyVault/vaults/keys",
               "properties": {"kty": "RSA", "keySize": 3072, "attributes": {"enabled": True},
                              "keyUri": "https://kv-contoso-cmk.vault.azure.net/keys/cmk-storage"}}]
    sb = Sandbox(None, estate=estate, lro_seconds=0)
    return Gateway(in_process_target(sb)), kv


def _apply_plan(gw: Any, journal: Any, check: str) -> Any:
    from ztwizard.apply import apply_changes, start_session
    from ztwizard.engine import inspect

    changes = inspect(gw, check_ids=[check]).changes()
    session = start_session(journal, gw, changes)
    report = apply_changes(gw, journal, session, changes, allow_disruptive=True, allow_cost=True)
    assert not report.failed and not report.skipped, [o.line() for o in report.outcomes]
    return session, changes


def _cmk_verdicts(gw: Any) -> dict[str, str]:
    from ztwizard.engine import inspect

    return {f.resource_id.lower(): f.status for s in inspect(gw, check_ids=["storage-1g"]).steps for f in s.findings}


@pytest.mark.parametrize("rbac", [False, True])
def test_cmk_round_trip_through_the_sandbox(tmp_path, rbac):
    """Round 1 gives each account a system identity (its principal exists only then); round 2
    grants it key access and switches the account to the key; every account then passes, and
    undo, newest session first, gives back Microsoft-managed keys and the vault as it was."""
    from ztwizard.journal import Journal
    from ztwizard.undo import undo_changes

    gw, kv = _cmk_sandbox(rbac)
    vault_before = gw.read(kv)
    accounts = [a for a, v in _cmk_verdicts(gw).items() if v == "fail"]
    assert len(accounts) == 3
    with Journal(tmp_path) as journal:
        first, changes = _apply_plan(gw, journal, "storage-1g")
        assert {c.method for c in changes} == {"PATCH"} and all("identity" in (c.body or {}) for c in changes)
        assert all(v == "fail" for v in _cmk_verdicts(gw).values())
        second, changes = _apply_plan(gw, journal, "storage-1g")
        grants = [c for c in changes if c.method == "PUT"]
        assert len(grants) == (3 if rbac else 1)  # one access-policy change for the vault, or a role each
        if not rbac:  # what the vault PUT sends: the tenant, on the vault and on every policy
            (grant,) = grants
            assert grant.after["properties"]["tenantId"] == vault_before["properties"]["tenantId"]
            assert all(p["tenantId"] for p in grant.after["properties"]["accessPolicies"])
        assert _cmk_verdicts(gw) == {a: "pass" for a in accounts}
        for a in accounts:
            enc = gw.read(a)["properties"]["encryption"]
            assert enc["keySource"] == "Microsoft.Keyvault" and enc["keyvaultproperties"]["keyname"] == "cmk-storage"
        for session in (second, first):
            report = undo_changes(gw, journal, session)
            assert report.ok, report.lines()
    assert _cmk_verdicts(gw) == {a: "fail" for a in accounts}
    for a in accounts:
        assert gw.read(a)["properties"]["encryption"]["keySource"] == "Microsoft.Storage"
    assert gw.read(kv)["properties"]["accessPolicies"] == vault_before["properties"]["accessPolicies"]


def test_sandbox_refuses_a_customer_managed_key_the_account_cannot_reach():
    """The account's identity without key access, a vault without purge protection, a missing key:
    each switch is refused with 400, through the real storage client."""
    from azure.core.exceptions import HttpResponseError

    from ztwizard.sandbox.estates import reference as ref

    gw, kv = _cmk_sandbox()
    name = ref.BLOB_ACCOUNT.rsplit("/", 1)[-1]
    client = gw.client("storage", parse(ref.BLOB_ACCOUNT).subscription)
    rg = parse(ref.BLOB_ACCOUNT).resource_group
    client.storage_accounts.update(rg, name, {"identity": {"type": "SystemAssigned"}})
    principal = gw.read(ref.BLOB_ACCOUNT)["identity"]["principalId"]
    assert principal  # ARM gave the new identity a principal

    def switch(key_name: str = "cmk-storage") -> None:
        client.storage_accounts.update(rg, name, {"properties": {"encryption": {  # the wire shape, as sent
            "keySource": "Microsoft.Keyvault", "services": {"blob": {"enabled": True, "keyType": "Account"}},
            "keyvaultproperties": {"keyname": key_name, "keyvaulturi": "https://kv-contoso-cmk.vault.azure.net/"}}}})

    with pytest.raises(HttpResponseError, match="KeyVaultAuthenticationFailure"):
        switch()
    vault = gw.read(kv)
    vault["properties"]["accessPolicies"] = [{"tenantId": ref.TENANT_ID, "objectId": principal,
                                              "permissions": {"keys": ["get", "wrapKey"]}}]  # no unwrapKey
    gw.write("PUT", kv, {k: vault[k] for k in ("location", "properties")})
    with pytest.raises(HttpResponseError, match="KeyVaultAuthenticationFailure"):
        switch()
    vault["properties"]["accessPolicies"][0]["permissions"]["keys"].append("unwrapKey")
    gw.write("PUT", kv, {k: vault[k] for k in ("location", "properties")})
    with pytest.raises(HttpResponseError, match="KeyVaultKeyNotFound"):
        switch("no-such-key")
    switch()
    assert gw.read(ref.BLOB_ACCOUNT)["properties"]["encryption"]["keySource"] == "Microsoft.Keyvault"
    vault["properties"]["enablePurgeProtection"] = False
    other = ref.FILES_ACCOUNT.rsplit("/", 1)[-1]
    gw.write("PUT", kv, {k: vault[k] for k in ("location", "properties")})
    client.storage_accounts.update(rg, other, {"identity": {"type": "SystemAssigned"}})
    with pytest.raises(HttpResponseError, match="purge protection"):
        client.storage_accounts.update(rg, other, {"properties": {"encryption": {
            "keySource": "Microsoft.Keyvault",
            "keyvaultproperties": {"keyname": "cmk-storage", "keyvaulturi": "https://kv-contoso-cmk.vault.azure.net/"}}}})


def test_cli_plan_asks_for_the_key_and_apply_param_fills_it(capsys, tmp_path, monkeypatch):
    """Two keys in the one fit vault: the plan shows the switch waiting for keyName; `apply --param`
    names the key (and a user-assigned identity, so it is one run) and the account passes."""
    import json

    from ztwizard.cli import main
    from ztwizard.gateway import Gateway
    from ztwizard.sandbox import Sandbox
    from ztwizard.sandbox.estates import reference as ref
    from ztwizard.target import in_process_target

    monkeypatch.setenv("ZTWIZARD_SANDBOX_IN_PROCESS", "1")
    monkeypatch.delenv("ZTWIZARD_STATE_DIR", raising=False)
    state = tmp_path / "state"
    gw = Gateway(in_process_target(Sandbox(state, estate="reference")))
    kv = f"{ref.RG_STORAGE}/providers/Microsoft.KeyVault/vaults/kv-contoso-cmk"
    gw.write("PUT", kv, {"location": "westeurope", "properties": {
        "tenantId": ref.TENANT_ID, "sku": {"family": "A", "name": "standard"}, "accessPolicies": [],
        "enableSoftDelete": True, "enablePurgeProtection": True}})
    for name in ("cmk-a", "cmk-b"):
        gw.write("PUT", f"{kv}/keys/{name}", {"properties": {"kty": "RSA", "keySize": 3072}})
    gw.close()

    def cli(*argv: str) -> tuple[int, str]:
        code = main(["--sandbox", "--state-dir", str(state), *argv])
        out, err = capsys.readouterr()
        return code, out + err

    code, out = cli("plan", "--check", "storage-1g", "--format", "json")
    assert code == 0
    changes = json.loads(out)["steps"][0]["changes"]
    blob = next(c for c in changes if c["resource_id"].lower() == ref.BLOB_ACCOUNT.lower())
    assert blob["params"] == {"keyVaultId": "", "keyName": "", "identity": "SystemAssigned"}
    code, out = cli("plan", "--check", "storage-1g", "--detailed-exitcode")
    assert code == 2 and "waiting for a parameter" in out  # the accounts still fail: work is pending
    code, out = cli("apply", "--yes", "--check", "storage-1g", "--param", f"{blob['id']}.keyVaultId={kv}",
                    "--param", f"{blob['id']}.keyName=cmk-b", "--param", f"{blob['id']}.identity={ref.APPGW_IDENTITY}")
    assert code == 0, out
    assert "waiting for parameter" in out  # the other two accounts still wait
    code, out = cli("plan", "--check", "storage-1g", "--format", "json")
    verdicts = {f["resource_id"].lower(): f["status"] for f in json.loads(out)["steps"][0]["findings"]}
    assert verdicts[ref.BLOB_ACCOUNT.lower()] == "pass"
    files = next(c for c in changes if c["resource_id"].lower() == ref.FILES_ACCOUNT.lower())
    code, out = cli("apply", "--yes", "--check", "storage-1g", "--param", f"{files['id']}.keyName=no such key")
    assert code == 2 and "Key Vault key name" in out and "Traceback" not in out
