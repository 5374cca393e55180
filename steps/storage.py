"""Storage article: the evaluators of the checks that reason across resources, and the helpers
the data in storage.toml names. Titles, risks, labels and single-property checks are data."""

from __future__ import annotations

import copy
from typing import Any

from ztwizard import resource_id as rid
from ztwizard.armjson import get_path, nested
from ztwizard.inventory import Inventory

from . import cmk
from ._base import Context, memo
from .catalog import article_steps, check
from .common import (
    CONTRIBUTOR,
    OWNER,
    PRIVATE_ENDPOINT,
    ROLE_ASSIGNMENT,
    STORAGE_ACCOUNT,
    STORAGE_ACCOUNT_CONTRIBUTOR,
    SUBNET,
    VNET,
    assignment_scope,
    broad_user_assignments,
    is_true,
    pricing,
)

ACCOUNT = STORAGE_ACCOUNT
FILE_SERVICES = "Microsoft.Storage/storageAccounts/fileServices"
SHARES = "Microsoft.Storage/storageAccounts/fileServices/shares"
CONTAINERS = "Microsoft.Storage/storageAccounts/blobServices/containers"
PRICINGS = "Microsoft.Security/pricings"
DEFENDER_SETTINGS = "Microsoft.Security/defenderForStorageSettings"

BROAD_ROLES = {OWNER: "Owner", CONTRIBUTOR: "Contributor",
               STORAGE_ACCOUNT_CONTRIBUTOR: "Storage Account Contributor"}

# Subnets a private endpoint must not go into (platform-reserved or service-dedicated).
RESERVED_SUBNETS = {"gatewaysubnet", "azurefirewallsubnet", "azurefirewallmanagementsubnet",
                    "routeserversubnet", "azurebastionsubnet"}


# ---- step 1: protect data at rest and in transit ----------------------------------------------

def public_containers(acct_id: str, inv: Inventory) -> list[str]:
    """Containers that serve anonymous reads today: they go dark when public access is disallowed."""
    return [c["name"] for c in inv.children(f"{acct_id}/blobServices/default", CONTAINERS)
            if (get_path(c, "properties.publicAccess") or "None") != "None"]


def anonymous_containers(acct: dict[str, Any], inv: Inventory) -> tuple[str, str] | None:
    """storage-1c's caveat: the containers that stop serving, named in the finding and the risk."""
    names = public_containers(acct["id"], inv)
    if not names:
        return None
    return (f"Anonymous containers: {', '.join(names)}.",
            f"Container(s) {', '.join(names)} serve anonymous reads today and stop at once; "
            "move those clients to SAS or Entra ID first.")


SMB_VERSIONS_OK = {"SMB3.0", "SMB3.1.1"}
SMB_CHANNEL_OK = {"AES-128-GCM", "AES-256-GCM"}


def _split(value: Any) -> set[str]:
    return {v.strip() for v in (value or "").split(";") if v.strip()}


def allows_anonymous_blob_access(acct: dict[str, Any], inv: Inventory) -> bool:
    """Whether a container of the account can be public at all (absent means allowed)."""
    return get_path(acct, "properties.allowBlobPublicAccess") is not False


def has_file_service(acct: dict[str, Any], inv: Inventory) -> bool:
    """storage-1f reads an account's fileServices only where the account kind has one."""
    return _has_file_service(acct)


def _has_file_service(acct: dict[str, Any]) -> bool:
    """General-purpose (v1, v2) and FileStorage accounts have a `fileServices/default`; blob-only
    kinds have none (ARM answers FeatureNotSupportedForAccount)."""
    return str(acct.get("kind") or "StorageV2").lower() not in ("blobstorage", "blockblobstorage")


def _file_services(acct: dict[str, Any], inv: Inventory) -> dict[str, Any]:
    """The account's `fileServices/default`, or the shape ARM would return with nothing set."""
    kids = inv.children(acct["id"], FILE_SERVICES)
    if kids:
        return kids[0]
    return {"id": f"{acct['id']}/fileServices/default", "name": "default", "type": FILE_SERVICES,
            "properties": {}}


@check("storage-1f")
def _smb(ctx: Context) -> None:
    if ctx.unreadable(ACCOUNT, FILE_SERVICES):
        return
    # Judged shares or not: the SMB settings govern every share created later too.
    accounts = [a for a in ctx.inv.of_type(ACCOUNT) if _has_file_service(a)]
    if not accounts:
        ctx.not_applicable("storage account with a file service")
        return
    for acct in accounts:
        fs = _file_services(acct, ctx.inv)
        smb = get_path(fs, "properties.protocolSettings.smb") or {}
        versions = _split(get_path(smb, "versions"))
        channel = _split(get_path(smb, "channelEncryption"))
        actual = {"versions": get_path(smb, "versions"), "channelEncryption": get_path(smb, "channelEncryption")}
        expected = {"versions": "SMB3.0;SMB3.1.1", "channelEncryption": "AES-128-GCM;AES-256-GCM"}
        prop = "properties.protocolSettings.smb"
        if versions and versions <= SMB_VERSIONS_OK and channel and channel <= SMB_CHANNEL_OK:
            ctx.finding(acct["id"], "pass", prop, actual, expected,
                        "fileServices/default allows only SMB 3.x with AES-GCM.")
            continue
        # absent means the platform default, which still admits SMB 2.1 and AES-128-CCM
        new_versions = ";".join(sorted(versions & SMB_VERSIONS_OK)) or expected["versions"]
        new_channel = ";".join(sorted(channel & SMB_CHANNEL_OK)) or expected["channelEncryption"]
        ctx.finding(acct["id"], "fail", prop, actual, expected,
                    f"fileServices/default allows SMB versions {actual['versions'] or 'platform default (2.1 and up)'}"
                    f" and channel encryption {actual['channelEncryption'] or 'platform default (incl. AES-128-CCM)'}.")
        ctx.put(fs, {f"{prop}.versions": new_versions, f"{prop}.channelEncryption": new_channel},
                fields={"account": acct["name"]}, risk=ctx.check.risk)


def _account_identity(acct: dict[str, Any]) -> str:
    """The identity storage-1g proposes by default: the account's system identity if it has one,
    else its only user-assigned one, else a system identity to be added."""
    ident = acct.get("identity") or {}
    if "systemassigned" in str(ident.get("type") or "").lower().replace(" ", ""):
        return "SystemAssigned"
    uais = list(ident.get("userAssignedIdentities") or {})
    return uais[0] if len(uais) == 1 else "SystemAssigned"


def _with_identity(acct: dict[str, Any], identity: str) -> dict[str, Any]:
    """The account's `identity` with `identity` added, keeping what it has (user-assigned ids are
    sent as {}: their contents are read-only)."""
    cur = acct.get("identity") or {}
    uais: dict[str, Any] = {k: {} for k in (cur.get("userAssignedIdentities") or {})}
    system = "systemassigned" in str(cur.get("type") or "").lower().replace(" ", "") or identity == "SystemAssigned"
    if identity != "SystemAssigned" and not any(rid.same(k, identity) for k in uais):
        uais[identity] = {}
    kind = ", ".join(t for t, on in (("SystemAssigned", system), ("UserAssigned", bool(uais))) if on)
    return {"type": kind.replace(", ", ","), **({"userAssignedIdentities": uais} if uais else {})}


def _identity_values(acct: dict[str, Any], identity: str) -> dict[str, Any]:
    """The identity to PATCH as leaves, so undo knows `identity.type`'s spelled-out default ("None")
    instead of sending a null the provider ignores."""
    ident = _with_identity(acct, identity)
    out: dict[str, Any] = {"identity.type": ident["type"]}
    if ident.get("userAssignedIdentities"):
        out["identity.userAssignedIdentities"] = ident["userAssignedIdentities"]
    return out


def _has_identity(acct: dict[str, Any], identity: str) -> bool:
    cur = acct.get("identity") or {}
    if identity == "SystemAssigned":
        return "systemassigned" in str(cur.get("type") or "").lower().replace(" ", "")
    return any(rid.same(k, identity) for k in cur.get("userAssignedIdentities") or {})


def _key_encryption(acct: dict[str, Any], vault: dict[str, Any], key: dict[str, Any], identity: str) -> dict[str, Any]:
    """The whole `encryption` object (PATCH replaces it) with the key: services and
    infrastructure encryption kept, read-only timestamps left out."""
    enc = copy.deepcopy(get_path(acct, "properties.encryption") or {})
    for svc in (enc.get("services") or {}).values():
        if isinstance(svc, dict):
            svc.pop("lastEnabledTime", None)
    enc["keySource"] = "Microsoft.Keyvault"
    enc["keyvaultproperties"] = {"keyname": key["name"], "keyvaulturi": cmk.vault_uri(vault)}
    if identity != "SystemAssigned":
        enc["identity"] = {"userAssignedIdentity": identity}
    else:
        enc.pop("identity", None)
    return enc


@check("storage-1g")
def _customer_managed_key(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(ACCOUNT, cmk.VAULT, cmk.KEY):  # unread keys would look like "no key to choose"
        return
    accounts = inv.of_type(ACCOUNT)
    if not accounts:
        ctx.not_applicable("storage account")
        return
    prop = "properties.encryption.keySource"
    grants = cmk.Grants(ctx)
    vault_default, key_default = cmk.default_key(inv)
    for acct in accounts:
        source = get_path(acct, prop) or "Microsoft.Storage"
        if str(source).lower() == "microsoft.keyvault":
            where = get_path(acct, "properties.encryption.keyvaultproperties.keyvaulturi") or "a Key Vault"
            ctx.finding(acct["id"], "pass", prop, source, "Microsoft.Keyvault",
                        f"Encrypted with customer-managed key "
                        f"{get_path(acct, 'properties.encryption.keyvaultproperties.keyname') or ''} in {where}.")
            continue
        p = ctx.update_params(acct, "PATCH", keyVaultId=vault_default, keyName=key_default,
                              identity=_account_identity(acct))
        missing = [n for n in ("keyVaultId", "keyName") if not p[n]]
        if missing:
            # the change is proposed so --param can fill it; apply skips it until then
            ctx.finding(acct["id"], "fail", prop, source, "Microsoft.Keyvault",
                        f"{acct['name']} is encrypted with Microsoft-managed keys, and no single Key Vault key with "
                        f"soft delete and purge protection is in scope to default to. {ctx.check.instruction}")
            ctx.patch(acct, {**_identity_values(acct, p["identity"]), "properties.encryption": {
                "keySource": "Microsoft.Keyvault", "keyvaultproperties": {"keyname": "", "keyvaulturi": ""}}}, params=p,
                      fields={"key": "(to choose)", "vault": "(to choose)"}, risk=ctx.check.risk)
            continue
        chosen = cmk.choose(ctx, p["keyVaultId"], p["keyName"], p["identity"], acct)
        if isinstance(chosen, str):
            ctx.finding(acct["id"], "error", prop, source, "Microsoft.Keyvault", chosen)
            continue
        vault, key, principal = chosen
        if principal is None:
            # a system identity's principal id exists only once ARM has created it: grant and switch next run
            ctx.finding(acct["id"], "fail", prop, source, "Microsoft.Keyvault",
                        f"{acct['name']} is encrypted with Microsoft-managed keys and has no managed identity to "
                        f"unwrap key {key['name']} of {vault['name']}: this plan gives it a system-assigned identity; "
                        "re-run the plan afterwards to grant it key access and switch to the key (or choose a "
                        "user-assigned identity with --param CHANGE.identity=<id> to do it in one run).")
            ctx.patch(acct, _identity_values(acct, "SystemAssigned"), params=p,
                      title=f"Give {acct['name']} a system-assigned identity (for its customer-managed key)",
                      risk="None by itself: the new identity holds no access until it is granted key access.")
            continue
        who = f"{acct['name']}'s " + ("system identity" if p["identity"] == "SystemAssigned"
                                      else f"identity {rid.parse(p['identity']).name}")
        deps = [] if cmk.has_key_access(inv, vault, principal) else [grants.need(vault, principal, who)]
        values: dict[str, Any] = {"properties.encryption": _key_encryption(acct, vault, key, p["identity"])}
        if not _has_identity(acct, p["identity"]):
            values.update(_identity_values(acct, p["identity"]))
        ctx.finding(acct["id"], "fail", prop, source, "Microsoft.Keyvault",
                    f"{acct['name']} is encrypted with Microsoft-managed keys; key {key['name']} of {vault['name']} "
                    "(soft delete and purge protection on) is proposed.")
        ctx.patch(acct, values, params=p, depends_on=deps, fields={"key": key["name"], "vault": vault["name"]},
                  risk=ctx.check.risk)
    grants.emit()


# ---- step 2: least-privilege access -----------------------------------------------------------

@check("storage-2a")
def _storage_rbac(ctx: Context) -> None:
    if ctx.unreadable(ACCOUNT, ROLE_ASSIGNMENT):
        return
    accounts = ctx.inv.of_type(ACCOUNT)
    if not accounts:
        ctx.not_applicable("storage account")
        return
    for acct in accounts:
        rg = rid.resource_group_id(acct["id"]) or ""
        hits = broad_user_assignments(ctx.inv, [acct["id"], rg], BROAD_ROLES)
        if not hits:
            ctx.finding(acct["id"], "pass", "properties.roleDefinitionId",
                        message="No user holds Owner, Contributor or Storage Account "
                                "Contributor directly on the account or its group.")
            continue
        held = "; ".join(f"{role} for user {get_path(a, 'properties.principalId')} at "
                         f"{'the account' if rid.same(assignment_scope(a), acct['id']) else 'resource group ' + (rid.parse(rg).name)}"
                         for a, role in hits)
        ctx.fail_by_hand(
            acct["id"], "properties.roleDefinitionId", [a["id"] for a, _ in hits],
            "data-plane roles held by groups",
            f"Direct user assignments can read keys or grant access: {held}. Replace each with a "
            "group assignment of Storage Blob Data Reader/Contributor/Owner on the account (and make "
            "admin roles PIM-eligible), then remove the direct one in Access control (IAM).")


def sas_policy_ok(v: Any) -> bool:
    return isinstance(v, dict) and bool(v.get("sasExpirationPeriod")) and \
        v.get("expirationAction", "Log") in ("Log", "Block")


def keys_rotated(acct: dict[str, Any]) -> bool:
    """Both account keys carry a creation time, which ARM sets only once a key has been regenerated
    (or the account was created after key tracking began)."""
    created = get_path(acct, "properties.keyCreationTime") or {}
    return bool(created.get("key1") and created.get("key2"))


def sas_policy_fix(acct: dict[str, Any], inv: Inventory) -> dict[str, Any] | None:
    if not keys_rotated(acct):
        return None  # ARM refuses a SAS expiration policy (400) until the keys have a creation time
    cur = copy.deepcopy(get_path(acct, "properties.sasPolicy") or {})
    cur.setdefault("sasExpirationPeriod", "1.00:00:00")
    if not cur["sasExpirationPeriod"]:
        cur["sasExpirationPeriod"] = "1.00:00:00"
    if cur.get("expirationAction") not in ("Log", "Block"):
        cur["expirationAction"] = "Log"
    return {"properties.sasPolicy": cur}


def positive_days(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def key_policy_fix(acct: dict[str, Any], inv: Inventory) -> dict[str, Any] | None:
    if not keys_rotated(acct):
        return None  # ARM rejects a key policy until both keys have a creation time
    return {"properties.keyPolicy": {"keyExpirationPeriodInDays": 90}}


# ---- step 3: network isolation ----------------------------------------------------------------

def services_in_use(acct: dict[str, Any], inv: Inventory) -> list[str]:
    """The private-link group ids an account needs an endpoint for. Every general-purpose account
    lists a fileServices/default whether or not shares exist, so "file" needs FileStorage or shares."""
    if _file_storage(acct):
        return ["file"]
    groups = ["blob"]
    if get_path(acct, "properties.isHnsEnabled") is True:
        groups.append("dfs")
    # an approved endpoint for `file` says it is in use too (and spares the share list)
    if "file" in approved_groups(acct, inv)[0] or inv.children(f"{acct['id']}/fileServices/default", SHARES):
        groups.append("file")
    return groups


def _file_storage(acct: dict[str, Any]) -> bool:
    return (acct.get("kind") or "StorageV2") == "FileStorage"


def shares_decide_file_endpoint(acct: dict[str, Any], inv: Inventory) -> bool:
    """storage-3a lists an account's shares only where they decide whether it needs a `file`
    endpoint: not for a FileStorage account (it needs one whatever it holds), nor where an
    approved endpoint covers `file` already (an account whose storage-3a endpoints exist).
    Private endpoints come from the first inventory round, before any child read."""
    return not _file_storage(acct) and "file" not in approved_groups(acct, inv)[0]


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
    for pe in inv.of_type(PRIVATE_ENDPOINT):
        for plsc in get_path(pe, "properties.privateLinkServiceConnections") or []:
            target = (get_path(plsc, "properties.privateLinkServiceId") or "").rstrip("/").lower()
            index.setdefault(target, []).append((pe, plsc))
    return index


def _subnet_score(subnet: dict[str, Any], vnet: dict[str, Any], acct: dict[str, Any]) -> tuple[Any, ...] | None:
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
    return (hub, not same_region, not same_sub, not named, not data, name)


def endpoint_subnet(acct: dict[str, Any], inv: Inventory) -> dict[str, Any] | None:
    """The most suitable existing subnet for the account's private endpoints, if any. The choice
    depends only on the account's region and subscription, so it is made once for each."""
    where = ((acct.get("location") or "").lower(), (rid.subscription_of(acct["id"]) or "").lower())

    def choose() -> dict[str, Any] | None:
        # the best of each (region, subscription) of VNets, then the best of those for this one:
        # the same choice as scoring every subnet (ties go to the first, as they did), but
        # linear in the estate instead of once per region and subscription
        best: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        for (region, sub), (score, order, subnet) in _best_subnet_per_place(inv).items():
            key = (score[0], region != where[0], sub != where[1], *score[3:], order)
            if best is None or key < best[0]:
                best = (key, subnet)
        return best[1] if best else None

    return memo(inv, ("endpoint_subnet", where), choose)


def _best_subnet_per_place(inv: Inventory) -> dict[tuple[str, str], tuple[tuple[Any, ...], int, dict[str, Any]]]:
    """(VNet region, VNet subscription) -> its best subnet by the place-independent score."""
    def build() -> dict[tuple[str, str], tuple[tuple[Any, ...], int, dict[str, Any]]]:
        out: dict[tuple[str, str], tuple[tuple[Any, ...], int, dict[str, Any]]] = {}
        order = 0
        for vnet in inv.of_type(VNET):
            place = ((vnet.get("location") or "").lower(), (rid.subscription_of(vnet["id"]) or "").lower())
            for subnet in inv.children(vnet["id"], SUBNET):
                order += 1
                score = _subnet_score(subnet, vnet, vnet)  # the VNet's own place: both place terms False
                if score is not None and (place not in out or score < out[place][0]):
                    out[place] = (score, order, subnet)
        return out

    return memo(inv, "best_subnet_per_place", build)  # type: ignore[no-any-return]


NO_SUBNET = ("No spoke subnet can take a private endpoint: add a subnet (a /28 is enough, "
             "no delegation) to the workload VNet, then re-run the plan.")


def missing_endpoints(acct: dict[str, Any], inv: Inventory) -> tuple[list[str], dict[str, Any] | None]:
    """(the group ids no approved private endpoint covers, the subnet new ones would go into)."""
    groups, unknown = approved_groups(acct, inv)
    missing = [] if unknown and not groups else [g for g in services_in_use(acct, inv) if g not in groups]
    return missing, endpoint_subnet(acct, inv) if missing else None


def endpoint_anchor(acct: dict[str, Any], group: str) -> str:
    """What a proposed private endpoint is for: one account's one sub-resource."""
    return f"{acct['id']}|{group}"


@check("storage-3a")
def _private_link(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(ACCOUNT, VNET, PRIVATE_ENDPOINT):
        return
    accounts = inv.of_type(ACCOUNT)
    if not accounts:
        ctx.not_applicable("storage account")
        return
    prop = "properties.privateEndpointConnections"
    for acct in accounts:
        needed = services_in_use(acct, inv)
        missing, subnet = missing_endpoints(acct, inv)
        if not missing:
            ctx.finding(acct["id"], "pass", prop, None, needed, f"Approved private endpoints cover {', '.join(needed)}.")
            continue
        if subnet is None:
            ctx.fail_by_hand(acct["id"], prop, None, needed,
                        f"No approved private endpoint for {', '.join(missing)}. {NO_SUBNET}")
            continue
        zones = ", ".join(f"privatelink.{g}.core.windows.net" for g in missing)
        ctx.finding(acct["id"], "fail", prop, None, needed,
                    f"No approved private endpoint for {', '.join(missing)}. After "
                    f"creating it, link the private DNS zone {zones} to the VNets whose "
                    "clients use the account (or to the hub's DNS resolver).")
        for g in missing:
            p = ctx.params(endpoint_anchor(acct, g), name=f"pe-{acct['name']}-{g}", subnet_id=subnet["id"])
            chosen = inv.get(p["subnet_id"]) or subnet
            vnet = inv.parent(chosen["id"]) or {}
            # an endpoint lives in its subnet's subscription and region; the account's group when it can
            same_sub = (rid.subscription_of(acct["id"]) or "").lower() == \
                (rid.subscription_of(chosen["id"]) or "").lower()
            rg = rid.resource_group_id(acct["id"] if same_sub else chosen["id"])
            zone = f"privatelink.{g}.core.windows.net"
            body = {"name": p["name"], "type": PRIVATE_ENDPOINT,
                    "location": vnet.get("location") or acct.get("location"),
                    "properties": {"subnet": {"id": p["subnet_id"]},
                                   "privateLinkServiceConnections": [{
                                       "name": f"{acct['name']}-{g}",
                                       "properties": {"privateLinkServiceId": acct["id"], "groupIds": [g]}}]}}
            ctx.create(f"{rg}/providers/{PRIVATE_ENDPOINT}/{p['name']}", body, anchor=endpoint_anchor(acct, g),
                       params=p, fields={"group": g, "subnet": chosen["name"]}, billable=True,
                       risk=f"Billed per endpoint and GB; link DNS zone {zone} to the VNets so names resolve privately.")


@check("storage-3b")
def _public_access(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(ACCOUNT, VNET, PRIVATE_ENDPOINT):
        return
    accounts = inv.of_type(ACCOUNT)
    if not accounts:
        ctx.not_applicable("storage account")
        return
    prop = "properties.publicNetworkAccess"
    for acct in accounts:
        actual = get_path(acct, prop) or "Enabled"
        if actual == "Disabled":
            ctx.finding(acct["id"], "pass", prop, actual, "Disabled", "Public network access is disabled.")
            continue
        missing, subnet = missing_endpoints(acct, inv)
        if missing and subnet is None:
            ctx.fail_by_hand(acct["id"], prop, actual, "Disabled",
                        f"Public network access is {actual}; disable it only once private endpoints exist "
                        f"(storage-3a). {NO_SUBNET}")
            continue
        ctx.finding(acct["id"], "fail", prop, actual, "Disabled", f"Public network access is {actual}.")
        # after the endpoints storage-3a proposes for this account
        ctx.patch(acct, {prop: "Disabled"}, disruptive=True,
                  depends_on=[ctx.create_id(endpoint_anchor(acct, g), "storage-3a") for g in missing],
                  risk="Every client that does not come through a private endpoint loses "
                       "access, including VNets that resolve the account before the "
                       "privatelink DNS zone is linked to them, and portal data browsing.")


def deny_by_default_fix(acct: dict[str, Any], inv: Inventory) -> dict[str, Any]:
    acls = copy.deepcopy(get_path(acct, "properties.networkAcls") or {})
    acls["defaultAction"] = "Deny"
    if not acls.get("bypass") or acls.get("bypass") == "None":
        acls["bypass"] = "AzureServices"
    acls.setdefault("virtualNetworkRules", [])
    acls.setdefault("ipRules", [])
    return {"properties.networkAcls": acls}


@check("storage-3d")
def _service_endpoints(ctx: Context) -> None:
    """Accounts reached over service endpoints need Microsoft.Storage on the subnets they allow."""
    inv = ctx.inv
    if ctx.unreadable(ACCOUNT, VNET, PRIVATE_ENDPOINT):
        return
    accounts = inv.of_type(ACCOUNT)
    if not accounts:
        ctx.not_applicable("storage account")
        return
    prop = "properties.serviceEndpoints"
    proposed: set[str] = set()
    for acct in accounts:
        missing, _subnet = missing_endpoints(acct, inv)
        rules = get_path(acct, "properties.networkAcls.virtualNetworkRules") or []
        if not missing:
            ctx.finding(acct["id"], "pass", prop, None, None,
                        "Reached over private endpoints; service endpoints are not needed.")
            continue
        if not rules:
            ctx.fail_by_hand(acct["id"], "properties.networkAcls.virtualNetworkRules", [], "Microsoft.Storage",
                        f"{acct['name']} has neither private endpoints nor VNet rules: create private endpoints "
                        "(storage-3a, preferred), or enable the Microsoft.Storage service endpoint on the workload "
                        "subnets that use it and add them to its networkAcls.virtualNetworkRules.")
            continue
        for rule in rules:
            subnet = inv.get(rule.get("id"))
            if subnet is None:
                ctx.finding(acct["id"], "manual", "properties.networkAcls.virtualNetworkRules",
                            rule.get("id"), "an existing subnet",
                            f"The VNet rule points at {rule.get('id')}, which is not in scope: remove the rule "
                            "or include that subscription in the scan.")
                continue
            services = [get_path(e, "service") for e in get_path(subnet, prop) or []]
            if "Microsoft.Storage" in services or "Microsoft.Storage.Global" in services:
                ctx.finding(subnet["id"], "pass", prop, services, "Microsoft.Storage",
                            "The Microsoft.Storage service endpoint is enabled.")
                continue
            ctx.finding(subnet["id"], "fail", prop, services, "Microsoft.Storage",
                        f"Subnet {subnet['name']} is allowed on {acct['name']} but has no "
                        "Microsoft.Storage service endpoint.")
            if subnet["id"].lower() in proposed:  # one change per subnet, however many accounts allow it
                continue
            proposed.add(subnet["id"].lower())
            vnet = inv.parent(subnet["id"]) or {}
            endpoints = copy.deepcopy(get_path(subnet, prop) or [])
            endpoints.append({"service": "Microsoft.Storage", "locations": [vnet.get("location") or "*"]})
            ctx.put(subnet, {prop: endpoints}, risk="Flows from the subnet to storage can briefly reset.")


# ---- step 4: Defender for Storage --------------------------------------------------------------

MALWARE = "OnUploadMalwareScanning"
SENSITIVE = "SensitiveDataDiscovery"
DEFAULT_CAP_GB = 5000


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
                 "additionalExtensionProperties": {"CapGBPerMonthPerStorageAccount": str(cap)}})
    exts.append({"name": SENSITIVE, "isEnabled": "True"})
    return exts


def cap_of(p: dict[str, Any]) -> int | None:
    """The malware-scanning cap already set on the plan, kept rather than overwritten."""
    raw = get_path(_ext(p, MALWARE) or {}, "additionalExtensionProperties.CapGBPerMonthPerStorageAccount")
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


@check("storage-4a")
def _storage_plan(ctx: Context) -> None:
    subs = list(ctx.inv.subscriptions)  # Defender plans are per subscription: each gets a verdict
    if not subs:
        ctx.not_applicable("subscription")
        return
    for sub in subs:
        p = pricing(ctx.inv, sub, "StorageAccounts")
        actual = {"pricingTier": get_path(p, "properties.pricingTier"), "subPlan": get_path(p, "properties.subPlan")}
        expected = {"pricingTier": "Standard", "subPlan": "DefenderForStorageV2"}
        if _storage_plan_on(p):
            ctx.finding(p["id"], "pass", "properties.pricingTier", actual, expected,
                        "Defender for Storage (per-account plan) is on.")
            continue
        ctx.finding(p["id"], "fail", "properties.pricingTier", actual, expected,
                    f"Defender for Storage is {actual['pricingTier']}"
                    f"{' (' + actual['subPlan'] + ')' if actual['subPlan'] else ''}.")
        ctx.put(p, {"properties.pricingTier": "Standard", "properties.subPlan": "DefenderForStorageV2"},
                fields={"subscription": sub}, billable=True,
                risk="Billed per storage account plus transaction overage; undo sets it back to Free.")


@check("storage-4b")
def _storage_plan_extensions(ctx: Context) -> None:
    subs = list(ctx.inv.subscriptions)
    if not subs:
        ctx.not_applicable("subscription")
        return
    for sub in subs:
        p = pricing(ctx.inv, sub, "StorageAccounts")
        state = {n: is_true((_ext(p, n) or {}).get("isEnabled")) for n in (MALWARE, SENSITIVE)}
        on = _storage_plan_on(p)
        if on and all(state.values()):
            ctx.finding(p["id"], "pass", "properties.extensions", state, {MALWARE: True, SENSITIVE: True},
                        "Malware scanning on upload and sensitive data discovery are on.")
            continue
        off = [n for n, v in state.items() if not v or not on]
        ctx.finding(p["id"], "fail", "properties.extensions", state, {MALWARE: True, SENSITIVE: True},
                    f"Not enabled: {', '.join(off)}.")
        params = ctx.update_params(p, cap_gb_per_month_per_account=cap_of(p) or DEFAULT_CAP_GB)
        ctx.put(p, {"properties.pricingTier": "Standard", "properties.subPlan": "DefenderForStorageV2",
                    "properties.extensions": _storage_extensions(p, params["cap_gb_per_month_per_account"])},
                fields={"subscription": sub}, billable=True, params=params,
                # the plan itself first, when storage-4a turns it on
                depends_on=[] if on else [ctx.change_id_of(p, "storage-4a")],
                risk="Malware scanning is billed per GB scanned; the cap limits it per account and month.")


@check("storage-4c")
def _account_defender(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(ACCOUNT, PRICINGS, DEFENDER_SETTINGS):
        return
    accounts = inv.of_type(ACCOUNT)
    if not accounts:
        ctx.not_applicable("storage account")
        return
    for acct in accounts:
        sub = rid.subscription_of(acct["id"]) or ""
        plan = pricing(inv, sub, "StorageAccounts")
        plan_on = _storage_plan_on(plan)
        kids = inv.children(acct["id"], DEFENDER_SETTINGS)
        setting = kids[0] if kids else None
        override = is_true(get_path(setting or {}, "properties.overrideSubscriptionLevelSettings"))
        enabled = is_true(get_path(setting or {}, "properties.isEnabled"))
        prop = "properties.isEnabled"
        if (setting and override and enabled) or (plan_on and not (setting and override and not enabled)):
            ctx.finding(acct["id"], "pass", prop, True, True,
                        "Defender for Storage is on for the account"
                        + (" (account-level setting)." if setting and override else
                           " (inherited from the subscription plan)."))
            continue
        opted_out = bool(setting and override and not enabled)
        if opted_out:
            msg = "An account-level override switches Defender for Storage off."
        else:
            msg = ("Defender for Storage is off: the subscription plan is not on and no account setting enables it "
                   "(storage-4a turns the plan on; without that, the account gets its own setting).")
        ctx.finding(acct["id"], "fail", prop, enabled, True, msg)
        values = {"properties.isEnabled": True, "properties.overrideSubscriptionLevelSettings": not plan_on,
                  "properties.malwareScanning.onUpload.isEnabled": True,
                  "properties.malwareScanning.onUpload.capGBPerMonth": DEFAULT_CAP_GB,
                  "properties.sensitiveDataDiscovery.isEnabled": True}
        risk = "Billed per account and per GB scanned for malware (capped)."
        flags: dict[str, Any] = dict(fields={"account": acct["name"]}, billable=True, risk=risk)
        if not opted_out:
            # The account only inherits an off plan, which storage-4a turns on: its own override
            # is for an apply without that change (-g, or storage-4a left out), else it would pin
            # every account to settings of its own (and end states would differ by which failed).
            flags.update(instead_of=ctx.change_id_of(plan, "storage-4a"),
                         risk=risk + " Sent only if storage-4a's change to the subscription plan is not applied "
                                     "with it: that plan covers the account.")
        if setting:
            ctx.put(setting, values, **flags)
            continue
        p = ctx.params(acct["id"], cap_gb_per_month=DEFAULT_CAP_GB)
        values["properties.malwareScanning.onUpload.capGBPerMonth"] = p["cap_gb_per_month"]
        ctx.create(f"{acct['id']}/providers/{DEFENDER_SETTINGS}/current",
                   {"name": "current", "type": DEFENDER_SETTINGS, **nested(values)},
                   anchor=acct["id"], params=p, **flags)


STEPS = article_steps(__name__)
