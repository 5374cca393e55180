"""Customer-managed keys as Azure enforces them, and the managed identities they rest on.

* A system-assigned identity gets its principal id from the write that asks for it and keeps it
  while the identity stays on; a user-assigned identity's principal is the identity resource's;
  a Key Vault gets its vaultUri; a storage account back on `Microsoft.Storage` keys drops its
  keyvaultproperties.
* A storage account switched to `keySource = Microsoft.Keyvault` is refused (400) unless the vault
  behind `keyvaulturi` exists with soft delete and purge protection, holds the key, and the
  identity the account names can get, wrap and unwrap keys there (an access policy, or a key role
  on the vault's scope when the vault uses Azure RBAC).
* A disk encryption set is refused (400) unless its source vault has purge protection and holds
  the key of `activeKey.keyUrl`; its own identity's access is granted after it exists, so it is
  not checked here.

The error codes follow what the providers answer (KeyVaultAuthenticationFailure for missing access;
the others are close to ARM's wording but not verified against a live tenant)."""

from __future__ import annotations

import uuid
from typing import Any

from .store import Store, key, parse

VAULT = "microsoft.keyvault/vaults"
UAI = "microsoft.managedidentity/userassignedidentities"
ACCOUNT = "microsoft.storage/storageaccounts"
DES = "microsoft.compute/diskencryptionsets"
ROLE_ASSIGNMENT = "microsoft.authorization/roleassignments"
# Key Vault Crypto Service Encryption User, Crypto Officer, Administrator: the roles with key unwrap
KEY_ROLES = {"e147488a-f6f5-4113-8e2d-b22465e65bf6", "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
             "00482a5a-887f-4fb3-b363-3b7fe8e74483"}
KEY_PERMISSIONS = {"get", "wrapkey", "unwrapkey"}

Refusal = tuple[int, str, str]


def _props(entry: dict[str, Any] | None) -> dict[str, Any]:
    p = (entry or {}).get("properties")
    return p if isinstance(p, dict) else {}


def _system(identity: Any) -> bool:
    return isinstance(identity, dict) and "systemassigned" in str(identity.get("type") or "").lower().replace(" ", "")


def stamp(new: dict[str, Any], existing: dict[str, Any] | None, tenant_id: str, store: Store) -> None:
    """Fill what ARM computes on a write: principal ids, a user-assigned identity's ids, a vault's URI."""
    t = new["type"].lower()
    if t == UAI:
        props = new.setdefault("properties", {})
        old = _props(existing)
        props["principalId"] = old.get("principalId") or props.get("principalId") or str(uuid.uuid4())
        props["clientId"] = old.get("clientId") or props.get("clientId") or str(uuid.uuid4())
        props["tenantId"] = old.get("tenantId") or props.get("tenantId") or tenant_id
    if t == VAULT:
        new.setdefault("properties", {}).setdefault("vaultUri", f"https://{new['name']}.vault.azure.net/")
    if t == ACCOUNT:
        enc = _props(new).get("encryption")
        if isinstance(enc, dict) and str(enc.get("keySource") or "").lower() == "microsoft.storage":
            # back on Microsoft-managed keys, the provider forgets the key it used
            enc.pop("keyvaultproperties", None)
            enc.pop("identity", None)
    ident = new.get("identity")
    if not isinstance(ident, dict):
        return
    if _system(ident):
        before = (existing or {}).get("identity")
        held = before if _system(before) and isinstance(before, dict) else {}
        ident["principalId"] = held.get("principalId") or ident.get("principalId") or str(uuid.uuid4())
        ident["tenantId"] = held.get("tenantId") or ident.get("tenantId") or tenant_id
    else:
        ident.pop("principalId", None)
        ident.pop("tenantId", None)
    for uai_id in list(ident.get("userAssignedIdentities") or {}):
        uai = _props(store.get(uai_id))
        if uai.get("principalId"):
            ident["userAssignedIdentities"][uai_id] = {"principalId": uai["principalId"],
                                                       "clientId": uai.get("clientId")}


def _vault_by_uri(store: Store, uri: str) -> dict[str, Any] | None:
    """The vault a key URI names: by its vaultUri, or by the DNS name (`https://{name}.vault…`),
    which is how the provider resolves it."""
    want = uri.rstrip("/").lower()
    host = want.split("//", 1)[-1].split(".", 1)[0]
    for k in store.of_type(VAULT):
        entry = store.entries[k]
        mine = str(_props(entry).get("vaultUri") or "").rstrip("/").lower()
        if mine == want or (not mine and str(entry.get("name") or "").lower() == host):
            return entry
    return None


def _unfit(vault: dict[str, Any]) -> str | None:
    p = _props(vault)
    if p.get("enableSoftDelete") is False or p.get("enablePurgeProtection") is not True:
        return (f"The key vault '{vault['name']}' must have soft delete and purge protection enabled to be used "
                "for customer-managed key encryption.")
    return None


def _can_unwrap(store: Store, vault: dict[str, Any], principal: str) -> bool:
    if _props(vault).get("enableRbacAuthorization") is True:
        vid = key(vault["id"])
        for k in store.of_type(ROLE_ASSIGNMENT):
            a = store.entries[k]
            p = _props(a)
            scope = key(str(p.get("scope") or parse(a["id"]).parent or ""))
            role = str(p.get("roleDefinitionId") or "").rstrip("/").rsplit("/", 1)[-1].lower()
            if (vid == scope or vid.startswith(scope + "/")) and role in KEY_ROLES and \
                    str(p.get("principalId") or "").lower() == principal.lower():
                return True
        return False
    for policy in _props(vault).get("accessPolicies") or []:
        if isinstance(policy, dict) and str(policy.get("objectId") or "").lower() == principal.lower():
            held = {str(x).lower() for x in ((policy.get("permissions") or {}).get("keys") or [])}
            if "all" in held or KEY_PERMISSIONS <= held:
                return True
    return False


def refusal(store: Store, new: dict[str, Any], existing: dict[str, Any] | None) -> Refusal | None:
    """ARM's 400 for a customer-managed key that cannot work, or None."""
    t = new["type"].lower()
    if t == VAULT:
        missing = [k for k in ("tenantId", "sku") if not _props(new).get(k)]
        if missing:  # VaultProperties requires both, on every PUT
            return (400, "BadRequest", f"The request is missing the required properties {', '.join(missing)}.")
        return None
    if t == ACCOUNT:
        return _account_refusal(store, new, existing)
    if t == DES:
        return _des_refusal(store, new)
    return None


def _account_refusal(store: Store, new: dict[str, Any], existing: dict[str, Any] | None) -> Refusal | None:
    enc = _props(new).get("encryption") or {}
    if str(enc.get("keySource") or "").lower() != "microsoft.keyvault" or enc == _props(existing).get("encryption"):
        return None
    kvp = enc.get("keyvaultproperties") or {}
    uri, name = str(kvp.get("keyvaulturi") or ""), str(kvp.get("keyname") or "")
    if not uri or not name:
        return (400, "InvalidValuesForRequestParameters",
                "Values for request parameters are invalid: keyvaultproperties.keyname and keyvaulturi are required "
                "when keySource is Microsoft.Keyvault.")
    vault = _vault_by_uri(store, uri)
    if vault is None:
        return 400, "KeyVaultNotFound", f"The key vault '{uri}' could not be found."
    unfit = _unfit(vault)
    if unfit:
        return 400, "KeyVaultSoftDeleteAndPurgeProtectionNotEnabled", unfit
    if store.get(f"{vault['id']}/keys/{name}") is None:
        return 400, "KeyVaultKeyNotFound", f"The key '{name}' was not found in key vault '{vault['name']}'."
    ident = new.get("identity") or {}
    uai_id = str((enc.get("identity") or {}).get("userAssignedIdentity") or "")
    if uai_id:
        if key(uai_id) not in {key(k) for k in (ident.get("userAssignedIdentities") or {})}:
            return (400, "InvalidValuesForRequestParameters",
                    f"The user-assigned identity '{uai_id}' is not assigned to the storage account.")
        principal = str(_props(store.get(uai_id)).get("principalId") or "")
    else:
        principal = str(ident.get("principalId") or "") if _system(ident) else ""
    if not principal or not _can_unwrap(store, vault, principal):
        return (400, "KeyVaultAuthenticationFailure",
                "The operation failed because of authentication issue on the keyvault. For more information, see - "
                "https://aka.ms/storagekeyvaultaccesspolicy")
    return None


def _des_refusal(store: Store, new: dict[str, Any]) -> Refusal | None:
    active = _props(new).get("activeKey") or {}
    vault = store.get(str((active.get("sourceVault") or {}).get("id") or ""))
    if vault is None:
        return 400, "KeyVaultNotFound", "The source vault of activeKey does not exist."
    unfit = _unfit(vault)
    if unfit:
        return 400, "InvalidParameter", unfit
    url = str(active.get("keyUrl") or "")
    parts = url.split("/keys/", 1)
    name = parts[1].split("/", 1)[0] if len(parts) == 2 else ""
    if not name or store.get(f"{vault['id']}/keys/{name}") is None:
        return 400, "InvalidParameter", f"The key '{url}' was not found in key vault '{vault['name']}'."
    return None
