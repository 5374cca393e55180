"""Storage article: the four steps that harden storage accounts (data protection, access,
network isolation, Defender for Storage)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from .. import remedy
from .. import resource_id as rid
from ..inventory import Inventory
from ..model import Change, CheckResult, Finding, change_id
from ..paths import get_path, nested
from ._base import Check, Step, memo, not_applicable, property_check, unreadable

ACCOUNT = "Microsoft.Storage/storageAccounts"
FILE_SERVICES = "Microsoft.Storage/storageAccounts/fileServices"
SHARES = "Microsoft.Storage/storageAccounts/fileServices/shares"
PRICINGS = "Microsoft.Security/pricings"
DEFENDER_SETTINGS = "Microsoft.Security/defenderForStorageSettings"
ROLE_ASSIGNMENTS = "Microsoft.Authorization/roleAssignments"
VNETS = "Microsoft.Network/virtualNetworks"
SUBNETS = "Microsoft.Network/virtualNetworks/subnets"
PRIVATE_ENDPOINTS = "Microsoft.Network/privateEndpoints"

# Built-in role definition GUIDs (steps.md appendix B).
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
STORAGE_ACCOUNT_CONTRIBUTOR = "17d1049b-9a84-46fb-8f53-869881c3d3ab"
BROAD_ROLES = {OWNER: "Owner", CONTRIBUTOR: "Contributor",
               STORAGE_ACCOUNT_CONTRIBUTOR: "Storage Account Contributor"}

# Subnets a private endpoint must not go into (platform-reserved or service-dedicated).
RESERVED_SUBNETS = {"gatewaysubnet", "azurefirewallsubnet", "azurefirewallmanagementsubnet",
                    "routeserversubnet", "azurebastionsubnet"}


# ---- shared helpers ---------------------------------------------------------------------------

def titled(check: Check, template: str) -> Check:
    """Give every Change of `check` a title naming its resource, e.g. "Require TLS 1.2 on st01"."""

    def evaluate(inv: Inventory) -> CheckResult:
        out = check.evaluate(inv)
        for c in out.changes:
            c.title = template.format(name=rid.parse(c.resource_id).name)
        return out

    return dataclasses.replace(check, evaluate=evaluate)


def is_true(value: Any) -> bool:
    """Security resources spell booleans as strings ("True"); ARM elsewhere as JSON booleans."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def role_guid(role_definition_id: str | None) -> str:
    return (role_definition_id or "").rstrip("/").rsplit("/", 1)[-1].lower()


def assignment_scope(assignment: dict[str, Any]) -> str:
    return get_path(assignment, "properties.scope") or rid.parse(assignment["id"]).parent or ""


def broad_user_assignments(inv: Inventory, scopes: list[str],
                           roles: dict[str, str]) -> list[tuple[dict[str, Any], str]]:
    """Role assignments of `roles` held directly by users at any of `scopes`."""
    def by_scope() -> dict[str, list[dict[str, Any]]]:
        index: dict[str, list[dict[str, Any]]] = {}
        for a in inv.of_type(ROLE_ASSIGNMENTS):
            index.setdefault(assignment_scope(a).rstrip("/").lower(), []).append(a)
        return index

    index = memo(inv, "assignments_by_scope", by_scope)
    out = []
    for scope in dict.fromkeys(s.rstrip("/").lower() for s in scopes):
        for a in index.get(scope, []):
            role = roles.get(role_guid(get_path(a, "properties.roleDefinitionId")))
            if role and (get_path(a, "properties.principalType") or "").lower() == "user":
                out.append((a, role))
    return out


# ---- step 1: protect data at rest and in transit ----------------------------------------------

CONTAINERS = "Microsoft.Storage/storageAccounts/blobServices/containers"


def public_containers(acct_id: str, inv: Inventory) -> list[str]:
    """Containers that serve anonymous reads today: they go dark when public access is disallowed."""
    return [c["name"] for c in inv.children(f"{acct_id}/blobServices/default", CONTAINERS)
            if (get_path(c, "properties.publicAccess") or "None") != "None"]


def _warn_public_containers(check: Check) -> Check:
    def evaluate(inv: Inventory) -> CheckResult:
        out = check.evaluate(inv)
        for c in out.changes:
            names = public_containers(c.resource_id, inv)
            if names:
                c.risk = (f"Container(s) {', '.join(names)} serve anonymous reads today and stop at once; "
                          "move those clients to SAS or Entra ID first.")
        for f in out.findings:
            names = public_containers(f.resource_id, inv) if f.status == "fail" else []
            if names:
                f.message += f" Anonymous containers: {', '.join(names)}."
        return out

    return dataclasses.replace(check, evaluate=evaluate)


SMB_VERSIONS_OK = {"SMB3.0", "SMB3.1.1"}
SMB_CHANNEL_OK = {"AES-128-GCM", "AES-256-GCM"}


def _split(value: Any) -> set[str]:
    return {v.strip() for v in (value or "").split(";") if v.strip()}


def _uses_files(acct: dict[str, Any], inv: Inventory) -> bool:
    """Every general-purpose account has a `fileServices/default`; it serves Azure Files only
    once it holds shares (or the account is a FileStorage one)."""
    return (acct.get("kind") == "FileStorage"
            or bool(inv.children(f"{acct['id']}/fileServices/default", SHARES)))


def _file_services(acct: dict[str, Any], inv: Inventory) -> dict[str, Any]:
    """The account's `fileServices/default`, or the shape ARM would return with nothing set."""
    kids = inv.children(acct["id"], FILE_SERVICES)
    if kids:
        return kids[0]
    return {"id": f"{acct['id']}/fileServices/default", "name": "default", "type": FILE_SERVICES,
            "properties": {}}


def _eval_smb(inv: Inventory) -> CheckResult:
    err = unreadable(inv, "storage-1f", ACCOUNT, FILE_SERVICES)
    if err:
        return err
    out = CheckResult()
    accounts = [a for a in inv.of_type(ACCOUNT) if _uses_files(a, inv)]
    if not accounts:
        out.findings.append(not_applicable("storage-1f", "storage account using Azure Files", inv))
        return out
    for acct in accounts:
        fs = _file_services(acct, inv)
        smb = get_path(fs, "properties.protocolSettings.smb") or {}
        versions = _split(get_path(smb, "versions"))
        channel = _split(get_path(smb, "channelEncryption"))
        actual = {"versions": get_path(smb, "versions"), "channelEncryption": get_path(smb, "channelEncryption")}
        expected = {"versions": "SMB3.0;SMB3.1.1", "channelEncryption": "AES-128-GCM;AES-256-GCM"}
        prop = "properties.protocolSettings.smb"
        if versions and versions <= SMB_VERSIONS_OK and channel and channel <= SMB_CHANNEL_OK:
            out.findings.append(Finding("storage-1f", acct["id"], "pass", prop, actual, expected,
                                        "fileServices/default allows only SMB 3.x with AES-GCM."))
            continue
        # absent means the platform default, which still admits SMB 2.1 and AES-128-CCM
        new_versions = ";".join(sorted(versions & SMB_VERSIONS_OK)) or expected["versions"]
        new_channel = ";".join(sorted(channel & SMB_CHANNEL_OK)) or expected["channelEncryption"]
        out.findings.append(Finding(
            "storage-1f", acct["id"], "fail", prop, actual, expected,
            f"fileServices/default allows SMB versions {actual['versions'] or 'platform default (2.1 and up)'}"
            f" and channel encryption {actual['channelEncryption'] or 'platform default (incl. AES-128-CCM)'}."))
        out.changes.append(remedy.put(
            "storage-1f", fs, {f"{prop}.versions": new_versions, f"{prop}.channelEncryption": new_channel},
            title=f"Require SMB 3.x with AES-GCM on {acct['name']}",
            risk="SMB 2.1 clients and kernels without AES-GCM can no longer mount the shares."))
    return out


STEP1_CHECKS: tuple[Check, ...] = (
    titled(property_check(
        id="storage-1a", title="Require secure transfer (HTTPS only)", resource_type=ACCOUNT,
        path="properties.supportsHttpsTrafficOnly", expected=True, remediation="auto-patch",
        fix={"properties.supportsHttpsTrafficOnly": True}, what="storage account",
        risk="Clients that use plain HTTP, or custom domains without TLS, stop working.",
        mcsb="DP-3", policy="Secure transfer to storage accounts should be enabled"),
        "Require HTTPS on {name}"),
    titled(property_check(
        id="storage-1b", title="Enforce TLS 1.2 as the minimum", resource_type=ACCOUNT,
        path="properties.minimumTlsVersion", expected="TLS1_2", default="TLS1_0",
        compliant=lambda v: v in ("TLS1_2", "TLS1_3"), remediation="auto-patch",
        fix={"properties.minimumTlsVersion": "TLS1_2"}, what="storage account",
        risk="Clients still on TLS 1.0/1.1 are rejected; check the logs' TLS version first.",
        mcsb="DP-3", policy="Storage accounts should have the specified minimum TLS version"),
        "Require TLS 1.2 on {name}"),
    _warn_public_containers(titled(property_check(
        id="storage-1c", title="Disallow anonymous blob access", resource_type=ACCOUNT,
        path="properties.allowBlobPublicAccess", expected=False, default=True, remediation="auto-patch",
        fix={"properties.allowBlobPublicAccess": False}, what="storage account",
        risk="Containers with anonymous read access stop serving at once.",
        mcsb="NS-2", policy="Storage account public access should be disallowed"),
        "Disallow anonymous blob access on {name}")),
    titled(property_check(
        id="storage-1d", title="Turn off Shared Key authorization", resource_type=ACCOUNT,
        path="properties.allowSharedKeyAccess", expected=False, default=True, remediation="auto-patch",
        fix={"properties.allowSharedKeyAccess": False, "properties.defaultToOAuthAuthentication": True},
        what="storage account", disruptive=True,
        risk="Every account-key request fails, including account and service SAS and key-based SMB "
             "mounts; check the Transactions metric by authentication type first.",
        mcsb="IM-1", policy="Storage accounts should prevent shared key access"),
        "Turn off Shared Key access on {name}"),
    titled(property_check(
        id="storage-1e", title="Restrict copy operations to the tenant", resource_type=ACCOUNT,
        path="properties.allowedCopyScope", expected="AAD", compliant=lambda v: v in ("AAD", "PrivateLink"),
        remediation="auto-patch", fix={"properties.allowedCopyScope": "AAD"}, what="storage account",
        risk="Copies from accounts in other tenants fail.", mcsb="NS-2"),
        "Restrict copy scope to the tenant on {name}"),
    Check(id="storage-1f", title="Require SMB 3.x with AES-GCM for Azure Files", remediation="auto-put",
          evaluate=_eval_smb, resource_type=FILE_SERVICES, mcsb="DP-3",
          risk="SMB 2.1 clients and kernels without AES-GCM can no longer mount the shares."),
    property_check(
        id="storage-1g", title="Encrypt with a customer-managed key", resource_type=ACCOUNT,
        path="properties.encryption.keySource", expected="Microsoft.Keyvault", default="Microsoft.Storage",
        compliant=lambda v: (v or "").lower() == "microsoft.keyvault", remediation="auto-patch",
        fix=None, what="storage account",
        instruction=("Create a key in a Key Vault with soft delete and purge protection, grant the "
                     "account's managed identity the 'Key Vault Crypto Service Encryption User' role on "
                     "it, then set encryption.keySource = Microsoft.Keyvault with that key; the key is "
                     "yours to choose, so the wizard does not pick one."),
        risk="If the key is revoked or deleted the data becomes unreadable.",
        mcsb="DP-5", policy="Storage accounts should use customer-managed key for encryption"),
    property_check(
        id="storage-1h", title="Use infrastructure (double) encryption", resource_type=ACCOUNT,
        path="properties.encryption.requireInfrastructureEncryption", expected=True, default=False,
        remediation="advisory", what="storage account",
        instruction=("This is fixed when an account is created: create a new account with "
                     "requireInfrastructureEncryption = true in the same region and migrate the data "
                     "(AzCopy or object replication), then retire the old one."),
        risk="Migration effort and a cut-over window.",
        mcsb="DP-4", policy="Storage accounts should have infrastructure encryption"),
)


# ---- step 2: least-privilege access -----------------------------------------------------------

def _eval_storage_rbac(inv: Inventory) -> CheckResult:
    err = unreadable(inv, "storage-2a", ACCOUNT, ROLE_ASSIGNMENTS)
    if err:
        return err
    out = CheckResult()
    accounts = inv.of_type(ACCOUNT)
    if not accounts:
        out.findings.append(not_applicable("storage-2a", "storage account", inv))
        return out
    for acct in accounts:
        rg = rid.resource_group_id(acct["id"]) or ""
        hits = broad_user_assignments(inv, [acct["id"], rg], BROAD_ROLES)
        if not hits:
            out.findings.append(Finding("storage-2a", acct["id"], "pass", "properties.roleDefinitionId",
                                        message="No user holds Owner, Contributor or Storage Account "
                                                "Contributor directly on the account or its group."))
            continue
        held = "; ".join(f"{role} for user {get_path(a, 'properties.principalId')} at "
                         f"{'the account' if rid.same(assignment_scope(a), acct['id']) else 'resource group ' + (rid.parse(rg).name)}"
                         for a, role in hits)
        out.findings.append(Finding(
            "storage-2a", acct["id"], "manual", "properties.roleDefinitionId",
            [a["id"] for a, _ in hits], "data-plane roles held by groups",
            f"Direct user assignments can read keys or grant access: {held}. Replace each with a "
            "group assignment of Storage Blob Data Reader/Contributor/Owner on the account (and make "
            "admin roles PIM-eligible), then remove the direct one in Access control (IAM)."))
    return out


def _sas_ok(v: Any) -> bool:
    return isinstance(v, dict) and bool(v.get("sasExpirationPeriod")) and \
        v.get("expirationAction", "Log") in ("Log", "Block")


def _sas_fix(acct: dict[str, Any], inv: Inventory) -> dict[str, Any]:
    cur = copy.deepcopy(get_path(acct, "properties.sasPolicy") or {})
    cur.setdefault("sasExpirationPeriod", "1.00:00:00")
    if not cur["sasExpirationPeriod"]:
        cur["sasExpirationPeriod"] = "1.00:00:00"
    if cur.get("expirationAction") not in ("Log", "Block"):
        cur["expirationAction"] = "Log"
    return {"properties.sasPolicy": cur}


def _key_policy_fix(acct: dict[str, Any], inv: Inventory) -> dict[str, Any] | None:
    created = get_path(acct, "properties.keyCreationTime") or {}
    if not (created.get("key1") and created.get("key2")):
        return None  # ARM rejects a key policy until both keys have a creation time
    return {"properties.keyPolicy": {"keyExpirationPeriodInDays": 90}}


STEP2_CHECKS: tuple[Check, ...] = (
    Check(id="storage-2a", title="Grant data access through data roles held by groups",
          remediation="advisory", evaluate=_eval_storage_rbac, resource_type=ACCOUNT, mcsb="PA-7",
          risk="Deleting an assignment can lock people out."),
    titled(property_check(
        id="storage-2b", title="Set a SAS expiration policy", resource_type=ACCOUNT,
        path="properties.sasPolicy", expected={"sasExpirationPeriod": "1.00:00:00", "expirationAction": "Log"},
        compliant=_sas_ok, remediation="auto-patch", fix=_sas_fix, what="storage account",
        risk="With action Log nothing breaks; over-long SAS are only logged.", mcsb="IM-8",
        policy="Storage accounts should have shared access signature (SAS) policies configured",
        fail_message="No SAS expiration policy is set."),
        "Set a 1-day SAS expiration policy (log) on {name}"),
    titled(property_check(
        id="storage-2c", title="Set a key expiration policy", resource_type=ACCOUNT,
        path="properties.keyPolicy.keyExpirationPeriodInDays", expected=90,
        compliant=lambda v: isinstance(v, int) and v > 0, remediation="auto-patch", fix=_key_policy_fix,
        what="storage account",
        instruction=("The account predates key-creation tracking: regenerate key1 and key2 (one at a "
                     "time, after moving clients to the other key), then set a 90-day key expiration policy."),
        risk="Expiry only reminds; keys are not rotated for you.", mcsb="DP-6",
        fail_message="No key expiration policy is set."),
        "Set a 90-day key expiration reminder on {name}"),
    property_check(
        id="storage-2d", title="Use user-delegation SAS only", resource_type=ACCOUNT,
        path="properties.allowSharedKeyAccess", expected=False, default=True, remediation="advisory",
        what="storage account",
        instruction=("Issue SAS tokens as user-delegation SAS (signed with Entra credentials) instead of "
                     "account or service SAS; once none are key-signed, turn off Shared Key (storage-1d)."),
        fail_message="Shared Key access is on, so key-signed SAS tokens still work.",
        risk="Key-signed SAS in use stop working once Shared Key is off; find them first.", mcsb="IM-1"),
)


# ---- step 3: network isolation ----------------------------------------------------------------

def services_in_use(acct: dict[str, Any], inv: Inventory) -> list[str]:
    """The private-link group ids an account needs an endpoint for. Every general-purpose account
    lists a fileServices/default whether or not shares exist, so "file" needs FileStorage or shares."""
    kind = acct.get("kind") or "StorageV2"
    if kind == "FileStorage":
        return ["file"]
    groups = ["blob"]
    if get_path(acct, "properties.isHnsEnabled") is True:
        groups.append("dfs")
    if inv.children(f"{acct['id']}/fileServices/default", SHARES):
        groups.append("file")
    return groups


def approved_groups(acct: dict[str, Any], inv: Inventory) -> tuple[set[str], bool]:
    """Group ids covered by approved private endpoints, and whether some approved endpoint's groups
    could not be read (its endpoint is outside the inventory)."""
    groups: set[str] = set()
    unknown = False
    seen: set[str] = set()
    for conn in get_path(acct, "properties.privateEndpointConnections") or []:
        status = get_path(conn, "properties.privateLinkServiceConnectionState.status")
        pe_id = get_path(conn, "properties.privateEndpoint.id") or ""
        if status != "Approved":
            continue
        pe = inv.get(pe_id)
        if pe is None:
            unknown = True
            continue
        seen.add(pe["id"].lower())
        for plsc in get_path(pe, "properties.privateLinkServiceConnections") or []:
            if rid.same(get_path(plsc, "properties.privateLinkServiceId"), acct["id"]):
                groups.update(g.lower() for g in get_path(plsc, "properties.groupIds") or [])
    # endpoints whose connection the account listing does not show yet (e.g. read from the PE side)
    for pe, plsc in memo(inv, "endpoints_by_target", lambda: _endpoints_by_target(inv)).get(acct["id"].lower(), []):
        if pe["id"].lower() in seen:
            continue
        state = get_path(plsc, "properties.privateLinkServiceConnectionState.status") or "Approved"
        if state == "Approved":
            groups.update(g.lower() for g in get_path(plsc, "properties.groupIds") or [])
    return groups, unknown


def _endpoints_by_target(inv: Inventory) -> dict[str, list[tuple[dict[str, Any], dict[str, Any]]]]:
    index: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for pe in inv.of_type(PRIVATE_ENDPOINTS):
        for plsc in get_path(pe, "properties.privateLinkServiceConnections") or []:
            target = (get_path(plsc, "properties.privateLinkServiceId") or "").rstrip("/").lower()
            index.setdefault(target, []).append((pe, plsc))
    return index


def _subnet_score(subnet: dict[str, Any], vnet: dict[str, Any], acct: dict[str, Any]) -> tuple[int, ...] | None:
    name = subnet.get("name", "").lower()
    if name in RESERVED_SUBNETS or get_path(subnet, "properties.delegations"):
        return None
    hub = any(s.get("name", "").lower() in ("azurefirewallsubnet", "gatewaysubnet")
              for s in get_path(vnet, "properties.subnets") or [])
    same_region = (vnet.get("location") or "").lower() == (acct.get("location") or "").lower()
    same_sub = (rid.subscription_of(vnet["id"]) or "").lower() == (rid.subscription_of(acct["id"]) or "").lower()
    named = any(k in name for k in ("pe", "privateendpoint", "private-endpoint", "endpoint", "privatelink"))
    data = any(k in name for k in ("data", "storage"))
    # lower is better: a spoke, same region and subscription, a subnet named for endpoints
    return (hub, not same_region, not same_sub, not named, not data, name)  # type: ignore[return-value]


def endpoint_subnet(acct: dict[str, Any], inv: Inventory) -> dict[str, Any] | None:
    """The most suitable existing subnet for the account's private endpoints, if any. The choice
    depends only on the account's region and subscription, so it is made once for each."""
    where = ((acct.get("location") or "").lower(), (rid.subscription_of(acct["id"]) or "").lower())

    def choose() -> dict[str, Any] | None:
        best: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        for vnet in inv.of_type(VNETS):
            for subnet in inv.children(vnet["id"], SUBNETS):
                score = _subnet_score(subnet, vnet, acct)
                if score is None:
                    continue
                if best is None or score < best[0]:
                    best = (score, subnet)
        return best[1] if best else None

    return memo(inv, ("endpoint_subnet", where), choose)


def endpoint_changes(acct: dict[str, Any], inv: Inventory) -> tuple[list[str], list[Change], str]:
    """(missing groups, proposed private endpoint creates, a reason when none can be proposed)."""
    groups, unknown = approved_groups(acct, inv)
    missing = [] if unknown and not groups else [g for g in services_in_use(acct, inv) if g not in groups]
    if not missing:
        return [], [], ""
    subnet = endpoint_subnet(acct, inv)
    if subnet is None:
        return missing, [], ("No spoke subnet can take a private endpoint: add a subnet (a /28 is enough, "
                             "no delegation) to the workload VNet, then re-run the plan.")
    vnet = inv.parent(subnet["id"]) or {}
    # an endpoint lives in its subnet's subscription and region; the account's group when it can
    same_sub = (rid.subscription_of(acct["id"]) or "").lower() == (rid.subscription_of(subnet["id"]) or "").lower()
    rg = rid.resource_group_id(acct["id"] if same_sub else subnet["id"])
    changes = []
    for g in missing:
        name = f"pe-{acct['name']}-{g}"
        pe_id = f"{rg}/providers/{PRIVATE_ENDPOINTS}/{name}"
        zone = f"privatelink.{g}.core.windows.net"
        body = {"name": name, "type": PRIVATE_ENDPOINTS, "location": vnet.get("location") or acct.get("location"),
                "properties": {"subnet": {"id": subnet["id"]},
                               "privateLinkServiceConnections": [{
                                   "name": f"{acct['name']}-{g}",
                                   "properties": {"privateLinkServiceId": acct["id"], "groupIds": [g]}}]}}
        changes.append(remedy.create(
            "storage-3a", pe_id, body,
            params={"name": name, "subnet_id": subnet["id"]},
            title=f"Create private endpoint {name} ({g}) in subnet {subnet['name']}", billable=True,
            risk=f"Billed per endpoint and GB; link DNS zone {zone} to the VNets so names resolve privately."))
    return missing, changes, ""


def _eval_private_link(inv: Inventory) -> CheckResult:
    err = unreadable(inv, "storage-3a", ACCOUNT, VNETS, PRIVATE_ENDPOINTS)
    if err:
        return err
    out = CheckResult()
    accounts = inv.of_type(ACCOUNT)
    if not accounts:
        out.findings.append(not_applicable("storage-3a", "storage account", inv))
        return out
    prop = "properties.privateEndpointConnections"
    for acct in accounts:
        needed = services_in_use(acct, inv)
        missing, changes, reason = endpoint_changes(acct, inv)
        if not missing:
            out.findings.append(Finding("storage-3a", acct["id"], "pass", prop, None, needed,
                                        f"Approved private endpoints cover {', '.join(needed)}."))
        elif changes:
            zones = ", ".join(f"privatelink.{g}.core.windows.net" for g in missing)
            out.findings.append(Finding("storage-3a", acct["id"], "fail", prop, None, needed,
                                        f"No approved private endpoint for {', '.join(missing)}. After "
                                        f"creating it, link the private DNS zone {zones} to the VNets whose "
                                        "clients use the account (or to the hub's DNS resolver)."))
            out.changes.extend(changes)
        else:
            out.findings.append(Finding("storage-3a", acct["id"], "manual", prop, None, needed,
                                        f"No approved private endpoint for {', '.join(missing)}. {reason}"))
    return out


def _eval_public_access(inv: Inventory) -> CheckResult:
    err = unreadable(inv, "storage-3b", ACCOUNT, VNETS, PRIVATE_ENDPOINTS)
    if err:
        return err
    out = CheckResult()
    accounts = inv.of_type(ACCOUNT)
    if not accounts:
        out.findings.append(not_applicable("storage-3b", "storage account", inv))
        return out
    prop = "properties.publicNetworkAccess"
    for acct in accounts:
        actual = get_path(acct, prop) or "Enabled"
        if actual == "Disabled":
            out.findings.append(Finding("storage-3b", acct["id"], "pass", prop, actual, "Disabled",
                                        "Public network access is disabled."))
            continue
        missing, pe_changes, reason = endpoint_changes(acct, inv)
        if missing and not pe_changes:
            out.findings.append(Finding(
                "storage-3b", acct["id"], "manual", prop, actual, "Disabled",
                f"Public network access is {actual}; disable it only once private endpoints exist "
                f"(storage-3a). {reason}"))
            continue
        out.findings.append(Finding("storage-3b", acct["id"], "fail", prop, actual, "Disabled",
                                    f"Public network access is {actual}."))
        change = remedy.patch("storage-3b", acct, {prop: "Disabled"},
                              title=f"Disable public network access on {acct['name']}", disruptive=True,
                              risk="Every client that does not come through a private endpoint loses "
                                   "access, including VNets that resolve the account before the "
                                   "privatelink DNS zone is linked to them, and portal data browsing.")
        change.depends_on = [c.id for c in pe_changes]
        out.changes.append(change)
    return out


def _acls_fix(acct: dict[str, Any], inv: Inventory) -> dict[str, Any]:
    acls = copy.deepcopy(get_path(acct, "properties.networkAcls") or {})
    acls["defaultAction"] = "Deny"
    if not acls.get("bypass") or acls.get("bypass") == "None":
        acls["bypass"] = "AzureServices"
    acls.setdefault("virtualNetworkRules", [])
    acls.setdefault("ipRules", [])
    return {"properties.networkAcls": acls}


def _eval_service_endpoints(inv: Inventory) -> CheckResult:
    """Accounts reached over service endpoints need Microsoft.Storage on the subnets they allow."""
    err = unreadable(inv, "storage-3d", ACCOUNT, VNETS, PRIVATE_ENDPOINTS)
    if err:
        return err
    out = CheckResult()
    accounts = inv.of_type(ACCOUNT)
    if not accounts:
        out.findings.append(not_applicable("storage-3d", "storage account", inv))
        return out
    prop = "properties.serviceEndpoints"
    for acct in accounts:
        missing, _changes, _ = endpoint_changes(acct, inv)
        rules = get_path(acct, "properties.networkAcls.virtualNetworkRules") or []
        if not missing:
            out.findings.append(Finding("storage-3d", acct["id"], "pass", prop, None, None,
                                        "Reached over private endpoints; service endpoints are not needed."))
            continue
        if not rules:
            out.findings.append(Finding(
                "storage-3d", acct["id"], "manual", "properties.networkAcls.virtualNetworkRules", [],
                "Microsoft.Storage",
                f"{acct['name']} has neither private endpoints nor VNet rules: create private endpoints "
                "(storage-3a, preferred), or enable the Microsoft.Storage service endpoint on the workload "
                "subnets that use it and add them to its networkAcls.virtualNetworkRules."))
            continue
        for rule in rules:
            subnet = inv.get(rule.get("id"))
            if subnet is None:
                out.findings.append(Finding(
                    "storage-3d", acct["id"], "manual", "properties.networkAcls.virtualNetworkRules",
                    rule.get("id"), "an existing subnet",
                    f"The VNet rule points at {rule.get('id')}, which is not in scope: remove the rule "
                    "or include that subscription in the scan."))
                continue
            services = [get_path(e, "service") for e in get_path(subnet, prop) or []]
            if "Microsoft.Storage" in services or "Microsoft.Storage.Global" in services:
                out.findings.append(Finding("storage-3d", subnet["id"], "pass", prop, services,
                                            "Microsoft.Storage",
                                            "The Microsoft.Storage service endpoint is enabled."))
                continue
            out.findings.append(Finding("storage-3d", subnet["id"], "fail", prop, services, "Microsoft.Storage",
                                        f"Subnet {subnet['name']} is allowed on {acct['name']} but has no "
                                        "Microsoft.Storage service endpoint."))
            vnet = inv.parent(subnet["id"]) or {}
            endpoints = copy.deepcopy(get_path(subnet, prop) or [])
            endpoints.append({"service": "Microsoft.Storage", "locations": [vnet.get("location") or "*"]})
            change = remedy.put("storage-3d", subnet, {prop: endpoints},
                                title=f"Enable the Microsoft.Storage service endpoint on {subnet['name']}",
                                risk="Flows from the subnet to storage can briefly reset.")
            if change.id not in {c.id for c in out.changes}:
                out.changes.append(change)
    return out


STEP3_CHECKS: tuple[Check, ...] = (
    Check(id="storage-3a", title="Reach storage through private endpoints", remediation="create",
          evaluate=_eval_private_link, resource_type=ACCOUNT, mcsb="NS-2", billable=True,
          policy="Storage accounts should use private link",
          risk="Needs a subnet and DNS design; billed per endpoint."),
    Check(id="storage-3b", title="Disable public network access", remediation="auto-patch",
          evaluate=_eval_public_access, resource_type=ACCOUNT, mcsb="NS-2", disruptive=True,
          policy="Storage accounts should disable public network access",
          risk="Blocks every client that uses the public endpoint."),
    titled(property_check(
        id="storage-3c", title="Deny network access by default", resource_type=ACCOUNT,
        path="properties.networkAcls.defaultAction", expected="Deny", default="Allow",
        remediation="auto-patch", fix=_acls_fix, what="storage account", disruptive=True,
        risk="Clients not covered by a VNet or IP rule (or a trusted Azure service) lose access.",
        mcsb="NS-2", policy="Storage accounts should restrict network access"),
        "Deny network access by default on {name}"),
    Check(id="storage-3d", title="Use service endpoints where private endpoints are not used",
          remediation="auto-put", evaluate=_eval_service_endpoints, resource_type=ACCOUNT, mcsb="NS-2",
          policy="Storage Accounts should use a virtual network service endpoint",
          risk="Enabling it can briefly reset flows in the subnet."),
)


# ---- step 4: Defender for Storage --------------------------------------------------------------

MALWARE = "OnUploadMalwareScanning"
SENSITIVE = "SensitiveDataDiscovery"
DEFAULT_CAP_GB = 5000


def pricing(inv: Inventory, sub: str, name: str) -> dict[str, Any]:
    """The subscription's Defender plan `name`; absent means the platform default, Free."""
    pid = f"/subscriptions/{sub}/providers/{PRICINGS}/{name}"
    return inv.get(pid) or {"id": pid, "name": name, "type": PRICINGS, "properties": {"pricingTier": "Free"}}


def _ext(p: dict[str, Any], name: str) -> dict[str, Any] | None:
    for e in get_path(p, "properties.extensions") or []:
        if (e.get("name") or "").lower() == name.lower():
            return e
    return None


def _storage_plan_on(p: dict[str, Any]) -> bool:
    return get_path(p, "properties.pricingTier") == "Standard" and \
        get_path(p, "properties.subPlan") == "DefenderForStorageV2"


def _storage_extensions(p: dict[str, Any], cap: int) -> list[dict[str, Any]]:
    exts = [copy.deepcopy(e) for e in get_path(p, "properties.extensions") or []
            if (e.get("name") or "").lower() not in (MALWARE.lower(), SENSITIVE.lower())]
    exts.append({"name": MALWARE, "isEnabled": "True",
                 "additionalExtensionProperties": {"CapGBPerMonthPerStorageAccount": str(cap_of(p) or cap)}})
    exts.append({"name": SENSITIVE, "isEnabled": "True"})
    return exts


def cap_of(p: dict[str, Any]) -> int | None:
    """The malware-scanning cap already set on the plan, kept rather than overwritten."""
    raw = get_path(_ext(p, MALWARE) or {}, "additionalExtensionProperties.CapGBPerMonthPerStorageAccount")
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def _subscriptions(inv: Inventory) -> list[str]:
    """Defender plans are per subscription: every subscription in scope gets a verdict."""
    return list(inv.subscriptions)


def _eval_storage_plan(inv: Inventory) -> CheckResult:
    out = CheckResult()
    subs = _subscriptions(inv)
    if not subs:
        out.findings.append(not_applicable("storage-4a", "subscription", inv))
        return out
    for sub in subs:
        p = pricing(inv, sub, "StorageAccounts")
        actual = {"pricingTier": get_path(p, "properties.pricingTier"), "subPlan": get_path(p, "properties.subPlan")}
        expected = {"pricingTier": "Standard", "subPlan": "DefenderForStorageV2"}
        if _storage_plan_on(p):
            out.findings.append(Finding("storage-4a", p["id"], "pass", "properties.pricingTier", actual, expected,
                                        "Defender for Storage (per-account plan) is on."))
            continue
        out.findings.append(Finding("storage-4a", p["id"], "fail", "properties.pricingTier", actual, expected,
                                    f"Defender for Storage is {actual['pricingTier']}"
                                    f"{' (' + actual['subPlan'] + ')' if actual['subPlan'] else ''}."))
        out.changes.append(remedy.put(
            "storage-4a", p, {"properties.pricingTier": "Standard", "properties.subPlan": "DefenderForStorageV2"},
            title=f"Turn on Defender for Storage in subscription {sub}", billable=True,
            risk="Billed per storage account plus transaction overage; undo sets it back to Free."))
    return out


def _eval_storage_plan_extensions(inv: Inventory) -> CheckResult:
    out = CheckResult()
    subs = _subscriptions(inv)
    if not subs:
        out.findings.append(not_applicable("storage-4b", "subscription", inv))
        return out
    for sub in subs:
        p = pricing(inv, sub, "StorageAccounts")
        state = {n: is_true((_ext(p, n) or {}).get("isEnabled")) for n in (MALWARE, SENSITIVE)}
        on = _storage_plan_on(p)
        if on and all(state.values()):
            out.findings.append(Finding("storage-4b", p["id"], "pass", "properties.extensions", state,
                                        {MALWARE: True, SENSITIVE: True},
                                        "Malware scanning on upload and sensitive data discovery are on."))
            continue
        off = [n for n, v in state.items() if not v or not on]
        out.findings.append(Finding("storage-4b", p["id"], "fail", "properties.extensions", state,
                                    {MALWARE: True, SENSITIVE: True}, f"Not enabled: {', '.join(off)}."))
        change = remedy.put(
            "storage-4b", p, {"properties.pricingTier": "Standard", "properties.subPlan": "DefenderForStorageV2",
                              "properties.extensions": _storage_extensions(p, DEFAULT_CAP_GB)},
            title=f"Turn on malware scanning and sensitive data discovery in subscription {sub}",
            billable=True, params={"cap_gb_per_month_per_account": cap_of(p) or DEFAULT_CAP_GB},
            risk="Malware scanning is billed per GB scanned; the cap limits it per account and month.")
        if not on:
            change.depends_on = [change_id("storage-4a", p["id"], "PUT")]
        out.changes.append(change)
    return out


def _eval_account_defender(inv: Inventory) -> CheckResult:
    err = unreadable(inv, "storage-4c", ACCOUNT, PRICINGS, DEFENDER_SETTINGS)
    if err:
        return err
    out = CheckResult()
    accounts = inv.of_type(ACCOUNT)
    if not accounts:
        out.findings.append(not_applicable("storage-4c", "storage account", inv))
        return out
    for acct in accounts:
        sub = rid.subscription_of(acct["id"]) or ""
        plan_on = _storage_plan_on(pricing(inv, sub, "StorageAccounts"))
        kids = inv.children(acct["id"], DEFENDER_SETTINGS)
        setting = kids[0] if kids else None
        override = is_true(get_path(setting or {}, "properties.overrideSubscriptionLevelSettings"))
        enabled = is_true(get_path(setting or {}, "properties.isEnabled"))
        prop = "properties.isEnabled"
        if (setting and override and enabled) or (plan_on and not (setting and override and not enabled)):
            out.findings.append(Finding("storage-4c", acct["id"], "pass", prop, True, True,
                                        "Defender for Storage is on for the account"
                                        + (" (account-level setting)." if setting and override else
                                           " (inherited from the subscription plan).")))
            continue
        sid = f"{acct['id']}/providers/{DEFENDER_SETTINGS}/current"
        if setting and override and not enabled:
            msg = "An account-level override switches Defender for Storage off."
        else:
            msg = "Defender for Storage is off: the subscription plan is not on and no account setting enables it."
        out.findings.append(Finding("storage-4c", acct["id"], "fail", prop, enabled, True, msg))
        values = {"properties.isEnabled": True, "properties.overrideSubscriptionLevelSettings": not plan_on,
                  "properties.malwareScanning.onUpload.isEnabled": True,
                  "properties.malwareScanning.onUpload.capGBPerMonth": DEFAULT_CAP_GB,
                  "properties.sensitiveDataDiscovery.isEnabled": True}
        flags = dict(title=f"Turn on Defender for Storage for {acct['name']}", billable=True,
                     risk="Billed per account and per GB scanned for malware (capped).")
        if setting:
            out.changes.append(remedy.put("storage-4c", setting, values, **flags))
        else:
            out.changes.append(remedy.create("storage-4c", sid, {"name": "current", "type": DEFENDER_SETTINGS,
                                                                **nested(values)},
                                             params={"cap_gb_per_month": DEFAULT_CAP_GB}, **flags))
    return out


STEP4_CHECKS: tuple[Check, ...] = (
    Check(id="storage-4a", title="Turn on Defender for Storage", remediation="auto-put",
          evaluate=_eval_storage_plan, resource_type=PRICINGS, mcsb="DP-2, LT-1", billable=True,
          policy="Microsoft Defender for Storage should be enabled",
          risk="Billed per account plus transaction overage."),
    Check(id="storage-4b", title="Scan uploads for malware and discover sensitive data",
          remediation="auto-put", evaluate=_eval_storage_plan_extensions, resource_type=PRICINGS,
          mcsb="DP-2", billable=True, policy="Microsoft Defender for Storage should be enabled",
          risk="Malware scanning is billed per GB scanned."),
    Check(id="storage-4c", title="No account opts out of Defender for Storage", remediation="auto-put",
          evaluate=_eval_account_defender, resource_type=DEFENDER_SETTINGS, mcsb="DP-2", billable=True,
          risk="A per-account override can switch off the subscription plan."),
)


STEPS: list[Step] = [
    Step("storage-1", "storage", 1, "Protect data at rest and in transit",
         "Storage accounts are reachable from anywhere by default, so every request must be encrypted "
         "with current TLS and signed by an identity rather than a shared key. Encrypting at rest with "
         "your own key lets you revoke access to the data itself.",
         STEP1_CHECKS),
    Step("storage-2", "storage", 2, "Grant least-privilege access",
         "Account keys and broad management roles grant everything to whoever holds them. Data roles "
         "held by groups, short-lived SAS and key expiry keep access narrow and traceable.",
         STEP2_CHECKS),
    Step("storage-3", "storage", 3, "Isolate storage on the network",
         "An account that answers on a public endpoint can be probed and exfiltrated from the internet. "
         "Private endpoints and a default-deny firewall confine it to the networks that need it.",
         STEP3_CHECKS),
    Step("storage-4", "storage", 4, "Detect threats with Defender for Storage",
         "Preventive settings do not catch stolen credentials or malicious uploads. Defender for Storage "
         "watches access patterns and scans uploads, so an attack raises an alert instead of going unseen.",
         STEP4_CHECKS),
]
