"""The sandbox's own resource model: which types carry inline children, which properties ARM
computes or reflects, which it never returns, the platform's implicit resources, and how a
stored entry is composed into what ARM returns. Nothing here comes from the client side: a
mistake in the wizard's tables must not be repeated here."""

from __future__ import annotations

import functools
import uuid
from typing import TYPE_CHECKING, Any

from .. import resource_id as rid
from .profiles import profile

if TYPE_CHECKING:
    from .store import Store

RG_TYPE = "Microsoft.Resources/resourceGroups"
SUB_TYPE = "Microsoft.Resources/subscriptions"

# Parent type -> (property path of the inline list, child segment): ARM shows these children
# inline in the parent and also serves them as resources of their own.
INLINE_CHILDREN: dict[str, list[tuple[str, str]]] = {
    "microsoft.network/virtualnetworks": [("properties.subnets", "subnets"),
                                          ("properties.virtualNetworkPeerings", "virtualNetworkPeerings")],
    "microsoft.network/networksecuritygroups": [("properties.securityRules", "securityRules")],
    "microsoft.network/routetables": [("properties.routes", "routes")],
    "microsoft.compute/virtualmachines": [("resources", "extensions")],
}
# Inline lists ARM shows but does not let a PUT of the parent change.
READ_ONLY_INLINE = {("microsoft.compute/virtualmachines", "resources")}

# (source type, property path of a reference) -> property (under `properties`) of the target
# that lists its referrers, as ARM reflects them.
BACK_REFERENCES: list[tuple[str, str, str]] = [
    ("microsoft.network/virtualnetworks/subnets", "networkSecurityGroup", "subnets"),
    ("microsoft.network/virtualnetworks/subnets", "routeTable", "subnets"),
    ("microsoft.network/networkinterfaces", "networkSecurityGroup", "networkInterfaces"),
]
COMPUTED_PROPERTIES = {
    "microsoft.network/networksecuritygroups": ("subnets", "networkInterfaces", "defaultSecurityRules"),
    "microsoft.network/routetables": ("subnets",),
    "microsoft.network/firewallpolicies": ("ruleCollectionGroups",),
}
# owner type -> property of the referenced resource that points back at the owner
BACK_LINK_PROP = {"microsoft.network/networkinterfaces": "ipConfiguration",
                  "microsoft.compute/virtualmachines": "virtualMachine"}

# Write-only secrets: ARM accepts them and never returns them, so the sandbox does not keep them
# (nothing secret reaches the state file, a GET, or a journal's before-image).
WRITE_ONLY: dict[str, list[tuple[str, ...]]] = {
    "microsoft.compute/virtualmachines": [("properties", "osProfile", "adminPassword"),
                                          ("properties", "osProfile", "customData")],
    "microsoft.compute/virtualmachines/extensions": [("properties", "protectedSettings")],
    "microsoft.network/connections": [("properties", "sharedKey")],
}

# Extension resources: they attach to a scope (here, a resource group) rather than live in it.
EXTENSION_TYPES = {"microsoft.authorization/roleassignments", "microsoft.authorization/policyassignments",
                   "microsoft.authorization/locks", "microsoft.insights/diagnosticsettings",
                   "microsoft.resources/deployments"}
# Extension resources that ARM lists for a whole subscription, wherever they sit in it
# (assessments of a VM or a subnet come back from GET /subscriptions/{s}/…/assessments).
SCOPE_WIDE_LISTS = {"microsoft.security/assessments", "microsoft.security/locations/jitnetworkaccesspolicies",
                    "microsoft.security/locations/alerts"}
# A list path whose type is not the stored one: GET /subscriptions/{s}/providers/Microsoft.Security/
# jitNetworkAccessPolicies lists the policies of every location; alerts likewise.
LIST_ALIASES = {"microsoft.security/jitnetworkaccesspolicies": "Microsoft.Security/locations/jitNetworkAccessPolicies",
                "microsoft.security/alerts": "Microsoft.Security/locations/alerts"}
# Read-only properties ARM computes and keeps across PUTs that omit them (`size`: a firewall
# policy's and a rule collection group's; no type here has a writable properties.size).
SERVER_COMPUTED = ("resourceGuid", "creationTime", "timeCreated", "uniqueId", "vmId", "size")

# Defender plans exist on every subscription, on the Free tier until someone chooses otherwise.
DEFENDER_PLANS = ("VirtualMachines", "StorageAccounts", "CloudPosture", "Arm", "AppServices", "SqlServers",
                  "SqlServerVirtualMachines", "OpenSourceRelationalDatabases", "CosmosDbs", "Containers",
                  "KeyVaults", "Dns", "Api", "AI")
# Read-only properties a provider answers on every resource of the type (a plan's trial time,
# none left once it ran out): an estate seeded without them still reads back as ARM shows it.
PROVIDER_ANSWERED: dict[str, dict[str, Any]] = {
    "microsoft.security/pricings": {"freeTrialRemainingTime": "PT0S", "enforce": "False"},
}
# What a plan reports on coverage by tier (ListPricings_example.json, 2024-01-01: Free plans
# answer NotCovered, Standard ones FullyCovered or PartiallyCovered).
COVERAGE_BY_TIER = {"free": "NotCovered", "standard": "FullyCovered"}

DEFAULT_RULES = [
    ("AllowVnetInBound", 65000, "Inbound", "Allow", "VirtualNetwork", "VirtualNetwork",
     "Allow inbound traffic from all VMs in VNET"),
    ("AllowAzureLoadBalancerInBound", 65001, "Inbound", "Allow", "AzureLoadBalancer", "*",
     "Allow inbound traffic from azure load balancer"),
    ("DenyAllInBound", 65500, "Inbound", "Deny", "*", "*", "Deny all inbound traffic"),
    ("AllowVnetOutBound", 65000, "Outbound", "Allow", "VirtualNetwork", "VirtualNetwork",
     "Allow outbound traffic from all VMs to all VMs in VNET"),
    ("AllowInternetOutBound", 65001, "Outbound", "Allow", "*", "Internet",
     "Allow outbound traffic from all VMs to Internet"),
    ("DenyAllOutBound", 65500, "Outbound", "Deny", "*", "*", "Deny all outbound traffic"),
]


# ---- JSON and ids -------------------------------------------------------------------------
def clone(obj: Any) -> Any:
    """A deep copy of JSON data, several times faster than copy.deepcopy."""
    if isinstance(obj, dict):
        return {k: clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [clone(v) for v in obj]
    return obj


@functools.lru_cache(maxsize=262144)
def parse(resource_id: str) -> rid.ResourceId:
    """resource_id.parse, cached: ids are parsed on every index update and list."""
    return rid.parse(resource_id)


def key(resource_id: str) -> str:
    return "/" + resource_id.strip("/").lower()


def new_etag() -> str:
    return f'W/"{uuid.uuid4()}"'


def inline_holder(res: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, str]:
    """The object holding the last key of the dotted `path` and that key as spelt there (ARM
    matches property names case-insensitively); None when it is absent."""
    keys = path.split(".")
    cur: Any = res
    for i, k in enumerate(keys):
        if not isinstance(cur, dict):
            break
        found = k if k in cur else next((x for x in cur if str(x).lower() == k.lower()), None)
        if found is None:
            break
        if i == len(keys) - 1:
            return cur, found
        cur = cur[found]
    return None, keys[-1]


def is_inline_child(rtype: str) -> bool:
    parent, _, seg = rtype.rpartition("/")
    return any(s.lower() == seg.lower() for _, s in INLINE_CHILDREN.get(parent.lower(), []))


def platform_default(path: str) -> dict[str, Any] | None:
    """What ARM returns for a resource that exists implicitly (a Free Defender plan)."""
    p = parse(path)
    if p.type.lower() == "microsoft.security/pricings" and p.resource_group is None and p.subscription:
        name = next((n for n in DEFENDER_PLANS if n.lower() == p.name.lower()), None)
        if name:
            return {"id": f"/subscriptions/{p.subscription}/providers/Microsoft.Security/pricings/{name}",
                    "name": name, "type": "Microsoft.Security/pricings",
                    "properties": {"pricingTier": "Free", **PROVIDER_ANSWERED["microsoft.security/pricings"],
                                   "resourcesCoverageStatus": COVERAGE_BY_TIER["free"]}}
    return None


def back_links(owner: dict[str, Any] | None) -> dict[str, str]:
    """Referenced resource key -> the id it should point back to: a NIC's public IPs -> its ip
    configuration, a VM's NICs -> the VM."""
    if not owner:
        return {}
    t = owner.get("type", "").lower()
    props = owner.get("properties") or {}
    out = {}
    if t == "microsoft.network/networkinterfaces":
        for ipc in props.get("ipConfigurations") or []:
            if not isinstance(ipc, dict):
                continue
            pip = ((ipc.get("properties") or {}).get("publicIPAddress") or {}).get("id")
            if isinstance(pip, str) and pip:
                out[key(pip)] = f"{owner['id']}/ipConfigurations/{ipc.get('name', '')}"
    elif t == "microsoft.compute/virtualmachines":
        for nic in (props.get("networkProfile") or {}).get("networkInterfaces") or []:
            nid = nic.get("id") if isinstance(nic, dict) else None
            if isinstance(nid, str) and nid:
                out[key(nid)] = owner["id"]
    return out


# ---- composition: the stored entry -> what ARM returns -------------------------------------
def compose(store: Store, entry: dict[str, Any], *, for_graph: bool = False) -> dict[str, Any]:
    """The resource as ARM returns it: inline children and the back-references ARM keeps.
    A shallow copy (top level and `properties`): it is serialised at once, under the lock."""
    out = dict(entry)
    if isinstance(out.get("properties"), dict):
        out["properties"] = dict(out["properties"])
    t = out["type"].lower()
    if not profile(t).etag:
        out.pop("etag", None)
    for path, seg in INLINE_CHILDREN.get(t, []):
        if for_graph and (t, path) in READ_ONLY_INLINE:
            continue
        kids = store.children(entry["id"], f"{entry['type']}/{seg}")
        if not kids and (t, path) in READ_ONLY_INLINE:
            continue
        holder: Any = out
        parts = path.split(".")
        for p in parts[:-1]:
            holder = holder.setdefault(p, {})
        holder[parts[-1]] = [compose(store, k) for k in kids]
    if t == "microsoft.network/virtualnetworks/virtualnetworkpeerings":
        state = peering_state(store, entry)
        if state:
            out["properties"]["peeringState"] = state
            out["properties"]["peeringSyncLevel"] = "FullyInSync" if state == "Connected" else "RemoteNotInSync"
    if t == "microsoft.network/firewallpolicies":
        groups = store.children(entry["id"], f"{entry['type']}/ruleCollectionGroups")
        if groups:  # ARM lists the groups by reference only
            out.setdefault("properties", {})["ruleCollectionGroups"] = [{"id": g["id"]} for g in groups]
    if t in ("microsoft.network/networksecuritygroups", "microsoft.network/routetables"):
        props = out.setdefault("properties", {})
        subnets, nics = [], []
        for k in store.referrers(entry["id"]):
            ref = store.entries.get(k)
            if ref is None:
                continue
            if ref["type"].lower() == "microsoft.network/virtualnetworks/subnets":
                subnets.append({"id": ref["id"]})
            elif ref["type"].lower() == "microsoft.network/networkinterfaces":
                nics.append({"id": ref["id"]})
        if subnets:
            props["subnets"] = subnets
        if nics and t == "microsoft.network/networksecuritygroups":
            props["networkInterfaces"] = nics
        if t == "microsoft.network/networksecuritygroups":
            props["defaultSecurityRules"] = default_rules(entry)
    return out


def peering_state(store: Store, peering: dict[str, Any]) -> str | None:
    """ARM's view of a peering: Connected when the remote VNet peers back, Initiated while it
    does not, Disconnected once the remote VNet is gone. None for a remote outside the sandbox's
    subscriptions (the stored state stands)."""
    remote = ((peering.get("properties") or {}).get("remoteVirtualNetwork") or {}).get("id")
    if not isinstance(remote, str) or not isinstance(peering.get("properties"), dict):
        return None
    if (parse(remote).subscription or "").lower() not in store.subscriptions:
        return None
    if store.get(remote) is None:
        return "Disconnected"
    home = key(parse(peering["id"]).parent or "")
    for back in store.children(remote, "Microsoft.Network/virtualNetworks/virtualNetworkPeerings"):
        target = ((back.get("properties") or {}).get("remoteVirtualNetwork") or {}).get("id")
        if isinstance(target, str) and key(target) == home:
            return "Connected"
    return "Initiated"


def default_rules(nsg: dict[str, Any]) -> list[dict[str, Any]]:
    rules = []
    for name, prio, direction, access, src, dst, desc in DEFAULT_RULES:
        rules.append({
            "id": f"{nsg['id']}/defaultSecurityRules/{name}", "name": name, "etag": nsg.get("etag"),
            "type": "Microsoft.Network/networkSecurityGroups/defaultSecurityRules",
            "properties": {"provisioningState": "Succeeded", "description": desc, "protocol": "*",
                           "sourcePortRange": "*", "destinationPortRange": "*",
                           "sourceAddressPrefix": src, "destinationAddressPrefix": dst, "access": access,
                           "priority": prio, "direction": direction, "sourcePortRanges": [],
                           "destinationPortRanges": [], "sourceAddressPrefixes": [],
                           "destinationAddressPrefixes": []},
        })
    return rules
