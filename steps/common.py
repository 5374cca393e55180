"""Knowledge more than one article needs: resource types, built-in role GUIDs, and how ARM
spells the values the checks compare."""

from __future__ import annotations

from typing import Any

from ztwizard import resource_id as rid
from ztwizard.armjson import get_path
from ztwizard.inventory import Inventory

from ._base import Context, memo

STORAGE_ACCOUNT = "Microsoft.Storage/storageAccounts"
VNET = "Microsoft.Network/virtualNetworks"
SUBNET = f"{VNET}/subnets"
NIC = "Microsoft.Network/networkInterfaces"
PRIVATE_ENDPOINT = "Microsoft.Network/privateEndpoints"
VM = "Microsoft.Compute/virtualMachines"
PRICING = "Microsoft.Security/pricings"
ASSESSMENT = "Microsoft.Security/assessments"
ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"
ROLE_DEFINITION = "Microsoft.Authorization/roleDefinitions"

# Built-in role definition GUIDs (steps.md appendix B).
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
NETWORK_CONTRIBUTOR = "4d97b98b-1d4f-4787-a291-c67834d212e7"
STORAGE_ACCOUNT_CONTRIBUTOR = "17d1049b-9a84-46fb-8f53-869881c3d3ab"


def is_true(value: Any) -> bool:
    """Security resources spell booleans as strings ("True"); ARM elsewhere as JSON booleans."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def role_guid(role_definition_id: str | None) -> str:
    """The GUID at the end of a role definition id, lower-cased."""
    return (role_definition_id or "").rstrip("/").rsplit("/", 1)[-1].lower()


def assignment_scope(assignment: dict[str, Any]) -> str:
    return get_path(assignment, "properties.scope") or rid.parse(assignment["id"]).parent or ""


def broad_user_assignments(inv: Inventory, scopes: list[str],
                           roles: dict[str, str]) -> list[tuple[dict[str, Any], str]]:
    """Role assignments of `roles` held directly by users at any of `scopes`."""
    def by_scope() -> dict[str, list[dict[str, Any]]]:
        index: dict[str, list[dict[str, Any]]] = {}
        for a in inv.of_type(ROLE_ASSIGNMENT):
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


def pricing(inv: Inventory, sub: str, name: str) -> dict[str, Any]:
    """The subscription's Defender plan `name`; absent means the platform default, Free."""
    pid = f"/subscriptions/{sub}/providers/{PRICING}/{name}"
    return inv.get(pid) or {"id": pid, "name": name, "type": PRICING, "properties": {"pricingTier": "Free"}}


# ---- vm article: types the spoke and hub articles also use (the spoke
# article appended NSG … FIREWALL too: one copy kept) ------------------------------------
NSG = "Microsoft.Network/networkSecurityGroups"
NSG_RULE = f"{NSG}/securityRules"
PEERING = f"{VNET}/virtualNetworkPeerings"
PUBLIC_IP = "Microsoft.Network/publicIPAddresses"
BASTION = "Microsoft.Network/bastionHosts"
FIREWALL = "Microsoft.Network/azureFirewalls"
VNET_GATEWAY = "Microsoft.Network/virtualNetworkGateways"


def defender_plans(ctx: Context, names: tuple[str, ...], subs: list[str], where: str) -> None:
    """Defender plans `names` on Standard in every subscription of `subs` (no subscription: not
    applicable, "No `where` in scope."). A plan missing from the inventory is Free, the platform
    default, so it is judged and upgraded like any other; the title is the check's change_title
    with {name} (the plan) and {subscription}."""
    if not subs:
        ctx.not_applicable(where)
        return
    for sub in subs:
        for name in names:
            res = pricing(ctx.inv, sub, name)
            tier = get_path(res, "properties.pricingTier") or "Free"
            if str(tier).lower() == "standard":
                ctx.finding(res["id"], "pass", "properties.pricingTier", tier, "Standard",
                            f"Defender plan {name} is on Standard.")
                continue
            ctx.finding(res["id"], "fail", "properties.pricingTier", tier, "Standard",
                        f"Defender plan {name} is {tier}; Standard enables its threat detection for subscription {sub}.")
            ctx.put(res, {"properties.pricingTier": "Standard"}, fields={"subscription": sub},
                    risk=ctx.check.risk, billable=True)


# ---- hub article: what hub-4d's Network Watcher create is for, so spoke-5d can wait for it --------
def watcher_anchor(subscription: str, region: str) -> str:
    """The anchor of the Network Watcher hub-4d creates for one region of one subscription."""
    return f"/subscriptions/{subscription}|networkWatcher|{region.lower()}"
