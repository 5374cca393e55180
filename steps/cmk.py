"""Customer-managed keys, as storage-1g and vm-4a use them: which Key Vault keys are fit to encrypt
with, which identity unwraps them, and the grant that identity needs.

A vault is fit when soft delete and purge protection are both on (Azure refuses a CMK in a vault
without them); a key when it is an enabled RSA key. The identity needs get, wrapKey and unwrapKey
on the vault's keys: an access policy, or the role Key Vault Crypto Service Encryption User when
the vault uses Azure RBAC."""

from __future__ import annotations

import uuid
from typing import Any

from ztwizard import resource_id as rid
from ztwizard.armjson import get_path
from ztwizard.inventory import Inventory
from ztwizard.model import Change, change_id

from ._base import Context
from .common import ROLE_ASSIGNMENT, assignment_scope, role_guid

VAULT = "Microsoft.KeyVault/vaults"
KEY = f"{VAULT}/keys"
UAI = "Microsoft.ManagedIdentity/userAssignedIdentities"

CRYPTO_SERVICE_USER = "e147488a-f6f5-4113-8e2d-b22465e65bf6"  # Key Vault Crypto Service Encryption User
# roles that include the key operations a service's identity needs (Crypto Officer, Administrator)
KEY_ROLES = {CRYPTO_SERVICE_USER, "14b46e9e-c2b7-41b4-b07b-48a6ebf60603", "00482a5a-887f-4fb3-b363-3b7fe8e74483"}
KEY_PERMISSIONS = ("get", "wrapKey", "unwrapKey")


def fit_vault(vault: dict[str, Any]) -> bool:
    """Soft delete (on unless explicitly off, as ARM has defaulted since 2020) and purge protection."""
    p = vault.get("properties") or {}
    return p.get("enableSoftDelete") is not False and p.get("enablePurgeProtection") is True


def usable_keys(inv: Inventory, vault: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for k in inv.children(vault["id"], KEY):
        kty = str(get_path(k, "properties.kty") or "RSA").upper()
        if kty.startswith("RSA") and get_path(k, "properties.attributes.enabled") is not False:
            out.append(k)
    return out


def default_key(inv: Inventory, location: str | None = None) -> tuple[str, str]:
    """(vault id, key name) when exactly one fit vault in scope (in `location`, when given) holds
    exactly one usable key; ("", "") otherwise, and the change asks for them."""
    pairs = [(v["id"], k["name"]) for v in inv.of_type(VAULT) if fit_vault(v)
             and (location is None or str(v.get("location") or "").replace(" ", "").lower() == location)
             for k in usable_keys(inv, v)]
    return pairs[0] if len(pairs) == 1 else ("", "")


def key_of(inv: Inventory, vault: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((k for k in usable_keys(inv, vault) if k["name"].lower() == name.lower()), None)


def vault_uri(vault: dict[str, Any]) -> str:
    return str(get_path(vault, "properties.vaultUri") or f"https://{vault['name']}.vault.azure.net/")


def key_url(vault: dict[str, Any], key: dict[str, Any]) -> str:
    """The key's versioned URL (a disk encryption set's activeKey.keyUrl), or the versionless one."""
    return str(get_path(key, "properties.keyUriWithVersion") or get_path(key, "properties.keyUri")
               or f"{vault_uri(vault).rstrip('/')}/keys/{key['name']}")


def choose(ctx: Context, vault_id: str, key_name: str, identity: str,
           holder: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any], str | None] | str:
    """The vault, the key and the principal id of `identity` (None: a system identity that does
    not exist yet), or the sentence saying why the chosen values cannot be used."""
    vault = ctx.inv.get(vault_id)
    if vault is None or vault["type"].lower() != VAULT.lower():
        return f"Key Vault {vault_id} is not in the scanned scope."
    if not fit_vault(vault):
        return (f"Key Vault {vault['name']} does not have both soft delete and purge protection on, which a "
                "customer-managed key needs.")
    key = key_of(ctx.inv, vault, key_name)
    if key is None:
        return f"Key Vault {vault['name']} has no enabled RSA key named {key_name}."
    if identity == "SystemAssigned":
        own = (holder or {}).get("identity") or {}
        has_system = "systemassigned" in str(own.get("type") or "").lower().replace(" ", "")
        return vault, key, (own.get("principalId") if has_system else None)
    uai = ctx.inv.get(identity)
    principal = get_path(uai or {}, "properties.principalId")
    if not principal:
        return f"User-assigned identity {identity} is not in the scanned scope."
    return vault, key, str(principal)


def has_key_access(inv: Inventory, vault: dict[str, Any], principal: str) -> bool:
    if get_path(vault, "properties.enableRbacAuthorization") is True:
        vid = vault["id"].rstrip("/").lower()
        for a in inv.of_type(ROLE_ASSIGNMENT):
            scope = assignment_scope(a).rstrip("/").lower()
            if (vid == scope or vid.startswith(scope + "/")) and \
                    str(get_path(a, "properties.principalId") or "").lower() == principal.lower() and \
                    role_guid(get_path(a, "properties.roleDefinitionId")) in KEY_ROLES:
                return True
        return False
    for policy in get_path(vault, "properties.accessPolicies") or []:
        if str(policy.get("objectId") or "").lower() == principal.lower():
            held = {str(p).lower() for p in get_path(policy, "permissions.keys") or []}
            return "all" in held or all(p.lower() in held for p in KEY_PERMISSIONS)
    return False


def _grant_anchor(vault: dict[str, Any], principal: str) -> str:
    return f"{vault['id']}|{principal.lower()}|key-access"


def grant_id(check_id: str, vault: dict[str, Any], principal: str) -> str:
    """The id of the change check `check_id` proposes to give `principal` key access on `vault`."""
    if get_path(vault, "properties.enableRbacAuthorization") is True:
        return change_id(check_id, f"create|{_grant_anchor(vault, principal)}", "PUT")
    return change_id(check_id, vault["id"], "PUT")


class Grants:
    """The key access a check's changes need, one change per vault however many identities need it
    (a vault's access policies are one list: two PUTs of it would race)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.policies: dict[str, tuple[dict[str, Any], list[tuple[str, str]]]] = {}

    def need(self, vault: dict[str, Any], principal: str, who: str) -> str:
        """The id of the change that gives `principal` (named `who`) key access on `vault`."""
        if get_path(vault, "properties.enableRbacAuthorization") is True:
            anchor = _grant_anchor(vault, principal)
            cid = self.ctx.create_id(anchor)
            if not any(c.id == cid for c in self.ctx.result.changes):
                guid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"ztwizard/key-access/{vault['id'].lower()}/{principal.lower()}"))
                sub = rid.subscription_of(vault["id"]) or ""
                body = {"name": guid, "type": ROLE_ASSIGNMENT, "properties": {
                    "roleDefinitionId": f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/"
                                        f"{CRYPTO_SERVICE_USER}",
                    "principalId": principal, "principalType": "ServicePrincipal"}}
                self.ctx.create(f"{vault['id']}/providers/{ROLE_ASSIGNMENT}/{guid}", body, anchor=anchor,
                                params=self.ctx.params(anchor),
                                title=f"Let {who} use the keys of {vault['name']} (Key Vault Crypto Service "
                                      "Encryption User)",
                                risk="The identity can wrap and unwrap with every key in the vault; undo removes the "
                                     "assignment, after which the data it encrypts becomes unreadable.")
            return cid
        entry = self.policies.setdefault(vault["id"].lower(), (vault, []))
        if principal.lower() not in {p.lower() for p, _w in entry[1]}:
            entry[1].append((principal, who))
        return self.ctx.change_id_of(vault)

    def emit(self) -> list[Change]:
        """The access-policy changes, once every identity is known (call after the evaluator's loop)."""
        out = []
        for vault, wanted in self.policies.values():
            tenant = get_path(vault, "properties.tenantId")

            def add(body: dict[str, Any], wanted: list[tuple[str, str]] = wanted, tenant: Any = tenant) -> None:
                props = body.setdefault("properties", {})
                # a vault PUT needs its tenantId and every policy's: put back what the read-only strip took
                props["tenantId"] = tenant
                policies = props.setdefault("accessPolicies", [])
                for policy in policies:
                    policy.setdefault("tenantId", tenant)
                for principal, _who in wanted:
                    mine = next((p for p in policies if str(p.get("objectId") or "").lower() == principal.lower()),
                                None)
                    if mine is None:
                        mine = {"tenantId": tenant, "objectId": principal, "permissions": {"keys": []}}
                        policies.append(mine)
                    keys = mine.setdefault("permissions", {}).setdefault("keys", [])
                    keys.extend(p for p in KEY_PERMISSIONS if p.lower() not in {str(k).lower() for k in keys})

            names = ", ".join(w for _p, w in wanted)
            out.append(self.ctx.put_mutated(
                vault, add, ["properties.tenantId", "properties.accessPolicies"],
                title=f"Let {names} get, wrap and unwrap keys of {vault['name']} (access policy)",
                risk="The identity can wrap and unwrap with every key in the vault; undo restores the previous "
                     "policies, after which the data it encrypts becomes unreadable."))
        return out
