"""Spoke virtual network (azure-infrastructure-iaas.md): the evaluators of the seven steps that
fence a workload's VNet, registered with @check("<id>"); titles, risks, labels, change titles and
the parameters of creates are data in spoke.toml.

The network helpers at the top (which VNet is a hub, which firewall serves a spoke, naming that
follows the estate) are shared with the hub article, which imports them from here."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from ztwizard import resource_id as rid
from ztwizard.armjson import get_path
from ztwizard.inventory import Inventory
from ztwizard.model import change_id

from ._base import Context, memo
from .catalog import article_steps, check
from .common import (
    ASSESSMENT,
    CONTRIBUTOR,
    FIREWALL,
    NIC,
    NSG,
    NSG_RULE,
    OWNER,
    PEERING,
    PUBLIC_IP,
    ROLE_ASSIGNMENT,
    STORAGE_ACCOUNT,
    SUBNET,
    VM,
    VNET,
    defender_plans,
    one_custom_role,
    role_guid,
    watcher_anchor,
)

# ---- resource types -------------------------------------------------------------------------
FW = FIREWALL
RULE = NSG_RULE
STORAGE = STORAGE_ACCOUNT
RT = "Microsoft.Network/routeTables"
ASG = "Microsoft.Network/applicationSecurityGroups"
FWP = "Microsoft.Network/firewallPolicies"  # FWP and PIP: hub.py imports them from here
APPGW = "Microsoft.Network/applicationGateways"
WAFP = "Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies"
PIP = PUBLIC_IP
WATCHER = "Microsoft.Network/networkWatchers"
FLOWLOG = f"{WATCHER}/flowLogs"
WORKSPACE = "Microsoft.OperationalInsights/workspaces"
DIAG = "Microsoft.Insights/diagnosticSettings"
SCORE = "Microsoft.Security/secureScores"

# Subnets that must not (or need not) carry an NSG; AzureBastionSubnet is deliberately absent.
NSG_EXEMPT_SUBNETS = {"gatewaysubnet", "azurefirewallsubnet", "azurefirewallmanagementsubnet",
                      "routeserversubnet"}
HUB_SUBNETS = {"gatewaysubnet", "azurefirewallsubnet"}


ACTIVITY_LOG_CATEGORIES = ("Administrative", "Security", "ServiceHealth", "Alert", "Recommendation",
                           "Policy", "Autoscale", "ResourceHealth")


# ---- shared network helpers -----------------------------------------------------------------
def loc(res: dict[str, Any] | None) -> str:
    """ARM accepts `West Europe` and `westeurope`; compare them as one."""
    return str((res or {}).get("location") or "").replace(" ", "").lower()


def ref(obj: Any) -> str:
    """The id inside a `{"id": …}` reference, or ""."""
    return str(obj.get("id") or "") if isinstance(obj, dict) else ""


def low(value: str | None) -> str:
    return str(value or "").rstrip("/").lower()


def props(res: Any) -> dict[str, Any]:
    """`properties` of a resource or inline child, `{}` when absent or malformed."""
    p = res.get("properties") if isinstance(res, dict) else None
    return p if isinstance(p, dict) else {}


def tags(res: dict[str, Any]) -> dict[str, str]:
    t = res.get("tags")
    return {str(k).lower(): str(v).lower() for k, v in t.items()} if isinstance(t, dict) else {}


def linked(inv: Inventory, rtype: str, link: str) -> dict[str, list[dict[str, Any]]]:
    """Resources of `rtype` grouped by the id they reference at `link` (lower-cased), e.g.
    subnets by their NSG. A NIC's `ipConfigurations[]` references count too (`…ipConfigurations.subnet`)."""

    def make() -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for r in of(inv, rtype):
            if link.startswith("ipConfigurations."):
                targets = {low(ref(get_path(c, "properties." + link.split(".", 1)[1])))
                           for c in get_path(r, "properties.ipConfigurations") or []}
            else:
                value = get_path(r, link)
                targets = {low(value if isinstance(value, str) else ref(value))}
            for t in targets - {""}:
                out.setdefault(t, []).append(r)
        return out

    return memo(inv, f"linked|{rtype.lower()}|{link}", make)  # type: ignore[no-any-return]


def kids(inv: Inventory, parent_id: str, child_type: str | None = None) -> list[dict[str, Any]]:
    return inv.children(parent_id, child_type)


def of(inv: Inventory, rtype: str) -> list[dict[str, Any]]:
    return inv.of_type(rtype)


def subnets_of(inv: Inventory, vnet: dict[str, Any]) -> list[dict[str, Any]]:
    return kids(inv, vnet["id"], SUBNET)


def vnet_of(subnet_id: str) -> str:
    return rid.parse(subnet_id).parent or ""


def firewall_vnet(fw: dict[str, Any]) -> str:
    for ipc in get_path(fw, "properties.ipConfigurations") or []:
        sid = ref(get_path(ipc, "properties.subnet"))
        if sid:
            return vnet_of(sid)
    return ""


def firewall_ip(fw: dict[str, Any] | None) -> str | None:
    for ipc in get_path(fw or {}, "properties.ipConfigurations") or []:
        ip = get_path(ipc, "properties.privateIPAddress")
        if ip:
            return str(ip)
    return None


def is_hub(inv: Inventory, vnet: dict[str, Any]) -> bool:
    """A hub holds the firewall or gateway subnets, or an Azure Firewall."""
    if any(str(s.get("name") or "").lower() in HUB_SUBNETS for s in subnets_of(inv, vnet)):
        return True
    return any(low(firewall_vnet(fw)) == low(vnet["id"]) for fw in of(inv, FW))


def hubs(inv: Inventory) -> list[dict[str, Any]]:
    return list(memo(inv, "hubs", lambda: [v for v in of(inv, VNET) if is_hub(inv, v)]))


def spokes(inv: Inventory) -> list[dict[str, Any]]:
    """Every VNet that is not a hub (peered to a hub or standing alone)."""
    hub_ids = {low(v["id"]) for v in hubs(inv)}
    return [v for v in of(inv, VNET) if low(v["id"]) not in hub_ids]


def peers(inv: Inventory, vnet: dict[str, Any]) -> set[str]:
    """Lower-cased ids of VNets peered with `vnet`, seen from either side."""
    out = {low(ref(get_path(p, "properties.remoteVirtualNetwork"))) for p in kids(inv, vnet["id"], PEERING)}
    for other in of(inv, VNET):
        for p in kids(inv, other["id"], PEERING):
            if low(ref(get_path(p, "properties.remoteVirtualNetwork"))) == low(vnet["id"]):
                out.add(low(other["id"]))
    out.discard("")
    return out


def firewall_for(inv: Inventory, vnet: dict[str, Any]) -> dict[str, Any] | None:
    """The firewall in this hub, or in a hub this spoke peers with, or the only one in scope."""
    fws = of(inv, FW)
    mine = [fw for fw in fws if low(firewall_vnet(fw)) == low(vnet["id"])]
    if mine:
        return mine[0]
    near = peers(inv, vnet)
    peered = [fw for fw in fws if low(firewall_vnet(fw)) in near]
    if peered:
        return peered[0]
    return fws[0] if len(fws) == 1 else None


def appgw_subnets(inv: Inventory) -> set[str]:
    """Lower-cased ids of subnets hosting an Application Gateway."""
    out = set()
    for gw in of(inv, APPGW):
        for ipc in get_path(gw, "properties.gatewayIPConfigurations") or []:
            out.add(low(ref(get_path(ipc, "properties.subnet"))))
    for sn in of(inv, SUBNET):
        if get_path(sn, "properties.applicationGatewayIPConfigurations"):
            out.add(low(sn["id"]))
    out.discard("")
    return out


def rg_of(resource_id: str) -> str:
    return rid.resource_group_id(resource_id) or ""


def namer(inv: Inventory, rtype: str, link: str, default: str) -> Callable[[str], str]:
    """Name new resources the way the estate names existing ones.

    Looks for a resource of `rtype` that a subnet references through `link` (e.g.
    `properties.networkSecurityGroup`) and whose name contains the subnet's name or its stem
    (`snet-web` → `web`); `default` (with `{}` for the subnet) otherwise."""
    for sn in of(inv, SUBNET):
        target = inv.get(ref(get_path(sn, link)))
        if not target or target["type"].lower() != rtype.lower():
            continue
        tname = target["name"]
        for key, stemmed in ((sn["name"], False), (_stem(sn["name"]), True)):
            if key and key.lower() in tname.lower() and key.lower() != tname.lower():
                i = tname.lower().index(key.lower())
                return _affixed(tname[:i], tname[i + len(key):], stemmed)
    return lambda s: default.format(s)


def _affixed(pre: str, post: str, stemmed: bool) -> Callable[[str], str]:
    def name(subnet: str) -> str:
        return f"{pre}{_stem(subnet) if stemmed else subnet}{post}"

    return name


def _stem(name: str) -> str:
    return re.sub(r"^(snet|subnet|sn)[-_]|[-_](snet|subnet|sn)$", "", name, flags=re.I)


def unique_name(inv: Inventory, rg: str, rtype: str, name: str, taken: set[str]) -> str:
    """`name`, or `name-2`… when a different resource (or another proposal) already holds it."""
    cand, n = name, 1
    while f"{rg}/providers/{rtype}/{cand}".lower() in taken:
        n += 1
        cand = f"{name}-{n}"
    taken.add(f"{rg}/providers/{rtype}/{cand}".lower())
    return cand


def workspace_for(inv: Inventory, sub: str, location: str = "") -> dict[str, Any] | None:
    """A Log Analytics workspace to send logs to: same subscription and region first."""
    ws = of(inv, WORKSPACE)
    ws.sort(key=lambda w: (low(rid.subscription_of(w["id"])) != low(sub), bool(location) and loc(w) != location))
    return ws[0] if ws else None


def at_scope(inv: Inventory, scopes: Iterable[str]) -> list[dict[str, Any]]:
    """Role assignments made exactly at one of `scopes`."""
    wanted = {low(s) for s in scopes}
    return [a for a in of(inv, ROLE_ASSIGNMENT) if low(rid.parse(a["id"]).parent) in wanted]


def spoke_rgs(inv: Inventory) -> list[str]:
    seen: dict[str, str] = {}
    for v in spokes(inv):
        seen.setdefault(low(rg_of(v["id"])), rg_of(v["id"]))
    return list(seen.values())


def spoke_subs(inv: Inventory) -> list[str]:
    seen: dict[str, str] = {}
    for v in spokes(inv):
        s = rid.subscription_of(v["id"]) or ""
        seen.setdefault(s.lower(), s)
    return list(seen.values())


def holds_spoke(sub: dict[str, Any], inv: Inventory) -> bool:
    """spoke-2c reads a subscription's activity-log settings only when a spoke VNet is in it."""
    return low(sub["name"]) in memo(inv, "spoke_sub_keys", lambda: {low(s) for s in spoke_subs(inv)})


def diag_of(inv: Inventory, scope_id: str) -> list[dict[str, Any]]:
    return kids(inv, scope_id, DIAG)


DIAG_LIMIT = 5  # ARM refuses a sixth diagnostic setting on one resource or subscription (400)


def setting_to_extend(settings: list[dict[str, Any]]) -> dict[str, Any] | None:
    """With the most settings ARM allows already there, the one a workspace is added to instead of
    creating another: a setting without a workspace (it sends to storage or an event hub, and may
    send to a workspace too), the first by name; None below the limit or when every one has one."""
    if len(settings) < DIAG_LIMIT:
        return None
    free = sorted((s for s in settings if not get_path(s, "properties.workspaceId")), key=lambda s: low(s["name"]))
    return free[0] if free else None


def full_settings(res: dict[str, Any], settings: list[dict[str, Any]]) -> str:
    """The finding's text when a resource holds the most settings and each already has a workspace."""
    names = ", ".join(sorted(s["name"] for s in settings))
    return (f"{res.get('name') or res['id']} already has {len(settings)} diagnostic settings ({names}), the most ARM "
            f"allows, and none can take the logs: extend one of them with the missing categories, or delete one "
            f"that is no longer used, then re-run.")




def spoke_subs_check(ctx: Context) -> list[str]:
    """The spoke subscriptions, or a `not_applicable` finding when there is none."""
    subs = spoke_subs(ctx.inv)
    if not subs:
        ctx.not_applicable("spoke virtual network")
    return subs


# ---- step 1: RBAC for network resources --------------------------------------------------------
@check("spoke-1a")
def _broad_network_roles(ctx: Context) -> None:
    inv = ctx.inv
    assignments = at_scope(inv, spoke_rgs(inv))
    if not assignments:
        ctx.not_applicable("role assignment on a spoke network resource group")
        return
    for a in assignments:
        role = role_guid(get_path(a, "properties.roleDefinitionId") or "")
        scope = rid.parse(a["id"]).parent or ""
        if role in (OWNER, CONTRIBUTOR):
            label = "Owner" if role == OWNER else "Contributor"
            ctx.fail_by_hand(
                a["id"], "properties.roleDefinitionId", label,
                "Network Contributor or a NetOps custom role",
                f"Principal {get_path(a, 'properties.principalId')} holds {label} on {scope}: give network "
                f"admins Network Contributor or the NetOps custom role (spoke-1b) there instead, then "
                f"remove this assignment, so they cannot touch non-network resources.")
        else:
            ctx.finding(a["id"], "pass", "properties.roleDefinitionId", role,
                        message="Assignment is not Owner or Contributor.")


NETOPS_ACTIONS = ["*/read", "Microsoft.Network/*", "Microsoft.Resources/deployments/*", "Microsoft.Support/*"]
NETOPS_ROLE_NAME = "Network management (NetOps)"


def _is_netops(role: dict[str, Any]) -> bool:
    if str(get_path(role, "properties.type") or "").lower() != "customrole":
        return False
    actions = [str(a).lower() for p in get_path(role, "properties.permissions") or [] if isinstance(p, dict)
               for a in p.get("actions") or []]
    return "microsoft.network/*" in actions


@check("spoke-1b")
def _netops_role(ctx: Context) -> None:
    one_custom_role(ctx, spoke_subs_check(ctx), _is_netops, default_name=NETOPS_ROLE_NAME, seed="netops",
                    description="Manage networking across the platform without rights over workloads.",
                    actions=NETOPS_ACTIONS, subject="network management", where_field="subscription")


# ---- step 2: isolate the infrastructure in its own resource group ----------------------------------
@check("spoke-2a")
def _network_only_group(ctx: Context) -> None:
    inv = ctx.inv
    rgs = spoke_rgs(inv)
    if not rgs:
        ctx.not_applicable("spoke virtual network")
        return
    for rg in rgs:
        others = [r for r in kids(inv, rg)
                  if not r["type"].lower().startswith(("microsoft.network/", "microsoft.authorization/",
                                                       "microsoft.insights/", "microsoft.resources/"))]
        if not others:
            ctx.finding(rg, "pass", message="Holds network resources only.")
            continue
        names = ", ".join(f"{r['name']} ({r['type']})" for r in others[:5])
        ctx.fail_by_hand(
            rg, "", [r["id"] for r in others], "network resources only",
            f"Resource group {rid.parse(rg).name} mixes the spoke network with {names}: move those to a "
            f"workload resource group (Move resources in the portal or `az resource move`), so network "
            f"roles granted here do not reach them.")


@check("spoke-2b")
def _roles_to_groups(ctx: Context) -> None:
    inv = ctx.inv
    scopes = spoke_rgs(inv) + [f"/subscriptions/{s}" for s in spoke_subs(inv)]
    assignments = at_scope(inv, scopes)
    if not assignments:
        ctx.not_applicable("role assignment on the spoke's scope")
        return
    for a in assignments:
        ptype = get_path(a, "properties.principalType") or "Unknown"
        scope = rid.parse(a["id"]).parent or ""
        if str(ptype).lower() == "user":
            ctx.fail_by_hand(
                a["id"], "properties.principalType", ptype, "Group",
                f"A role on {scope} is assigned directly to user {get_path(a, 'properties.principalId')}: "
                f"create or reuse an Entra security group, assign the same role to the group, add the user, "
                f"then remove this assignment, so access is reviewed and revoked in one place.")
        else:
            ctx.finding(a["id"], "pass", "properties.principalType", ptype, "Group",
                        message=f"Assigned to a {ptype}, not a named person.")


def _activity_log_ok(setting: dict[str, Any]) -> bool:
    if not get_path(setting, "properties.workspaceId"):
        return False
    on = {str(x.get("category") or "").lower() for x in get_path(setting, "properties.logs") or [] if x.get("enabled")}
    return all(c.lower() in on for c in ACTIVITY_LOG_CATEGORIES)


def _activity_logs() -> list[dict[str, Any]]:
    return [{"category": c, "enabled": True} for c in ACTIVITY_LOG_CATEGORIES]


@check("spoke-2c")
def _activity_log_export(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(DIAG):
        return
    risk = "Log Analytics ingestion is billed per GB."
    for sub in spoke_subs_check(ctx):
        scope = f"/subscriptions/{sub}"
        settings = diag_of(inv, scope)
        good = [s for s in settings if _activity_log_ok(s)]
        if good:
            ctx.finding(scope, "pass", "properties.logs",
                        message=f"Activity-log setting {good[0]['name']} exports every category to a workspace.")
            continue
        with_ws = [s for s in settings if get_path(s, "properties.workspaceId")]
        if with_ws:
            setting = with_ws[0]

            def mutate(body: dict[str, Any]) -> None:
                body.setdefault("properties", {})["logs"] = _activity_logs()

            ctx.finding(scope, "fail", "properties.logs", get_path(setting, "properties.logs"),
                        list(ACTIVITY_LOG_CATEGORIES),
                        "The activity-log export leaves categories off (Security among the ones to keep).")
            ctx.put_mutated(setting, mutate, ["properties.logs"], title=f"Export every activity-log category of {sub}",
                            risk=risk, billable=True)
            continue
        ws = workspace_for(inv, sub)
        spare = setting_to_extend(settings)
        if ws and spare:
            p = ctx.update_params(spare, workspaceId=ws["id"])

            def extend(body: dict[str, Any], p: dict[str, Any] = p) -> None:
                body.setdefault("properties", {}).update(workspaceId=p["workspaceId"], logs=_activity_logs())

            ctx.finding(scope, "fail", "properties.logs", None, list(ACTIVITY_LOG_CATEGORIES),
                        f"Subscription {sub} does not export its activity log to a workspace, and it already has "
                        f"{len(settings)} diagnostic settings, the most ARM allows: {spare['name']} is extended.")
            ctx.put_mutated(spare, extend, ["properties.workspaceId", "properties.logs"], params=p,
                            title=f"Add workspace {rid.parse(p['workspaceId']).name} and every category to "
                                  f"activity-log setting {spare['name']} of {sub}", risk=risk, billable=True)
            continue
        if ws and len(settings) >= DIAG_LIMIT:
            ctx.fail_by_hand(scope, "properties.logs", None, list(ACTIVITY_LOG_CATEGORIES),
                             full_settings({"id": scope, "name": f"Subscription {sub}"}, settings))
            continue
        if not ws:
            ctx.fail_by_hand(
                scope, "properties.workspaceId", None, "a Log Analytics workspace",
                f"Subscription {sub} keeps its activity log only 90 days and exports it nowhere: create a Log "
                f"Analytics workspace (or choose your central one), then add an activity-log diagnostic setting "
                f"with all eight categories, so changes and security events stay searchable.")
            continue
        # the subscription's export: its id stays when the workspace is edited
        p = ctx.params(scope, workspaceId=ws["id"])
        ws_name = rid.parse(p["workspaceId"]).name
        ctx.finding(scope, "fail", "properties.logs", None, list(ACTIVITY_LOG_CATEGORIES),
                    f"Subscription {sub} does not export its activity log.")
        ctx.create(f"{scope}/providers/{DIAG}/activity-to-{ws_name}",
                   {"properties": {"workspaceId": p["workspaceId"], "logs": _activity_logs()}},
                   anchor=scope, params=p, fields={"subscription": sub, "workspace": ws_name}, risk=risk, billable=True)


# ---- step 3: an NSG for each subnet ----------------------------------------------------------------
def _rule(name: str, priority: int, direction: str, access: str, protocol: str, src: str, dst: str,
          ports: list[str]) -> dict[str, Any]:
    p: dict[str, Any] = {"priority": priority, "direction": direction, "access": access, "protocol": protocol,
                         "sourceAddressPrefix": src, "sourcePortRange": "*", "destinationAddressPrefix": dst}
    if len(ports) == 1:
        p["destinationPortRange"] = ports[0]
    else:
        p["destinationPortRanges"] = ports
    return {"name": name, "properties": p}


# Azure Bastion's documented NSG rules for AzureBastionSubnet.
BASTION_RULES = [
    _rule("AllowHttpsInbound", 120, "Inbound", "Allow", "Tcp", "Internet", "*", ["443"]),
    _rule("AllowGatewayManagerInbound", 130, "Inbound", "Allow", "Tcp", "GatewayManager", "*", ["443"]),
    _rule("AllowAzureLoadBalancerInbound", 140, "Inbound", "Allow", "Tcp", "AzureLoadBalancer", "*", ["443"]),
    _rule("AllowBastionHostCommunication", 150, "Inbound", "Allow", "*", "VirtualNetwork", "VirtualNetwork",
          ["8080", "5701"]),
    _rule("AllowSshRdpOutbound", 100, "Outbound", "Allow", "*", "*", "VirtualNetwork", ["22", "3389"]),
    _rule("AllowAzureCloudOutbound", 110, "Outbound", "Allow", "Tcp", "*", "AzureCloud", ["443"]),
    _rule("AllowBastionCommunication", 120, "Outbound", "Allow", "*", "VirtualNetwork", "VirtualNetwork",
          ["8080", "5701"]),
    _rule("AllowHttpOutbound", 130, "Outbound", "Allow", "*", "*", "Internet", ["80"]),
]


def _appgw_rules(inv: Inventory, subnet_id: str) -> list[dict[str, Any]]:
    """App GW needs GatewayManager on its infrastructure ports (65200-65535 for v2) and its
    listeners reachable."""
    ports: set[str] = set()
    infra = "65200-65535"
    for gw in of(inv, APPGW):
        if any(low(ref(get_path(c, "properties.subnet"))) == low(subnet_id)
               for c in get_path(gw, "properties.gatewayIPConfigurations") or []):
            ports |= {str(get_path(p, "properties.port")) for p in get_path(gw, "properties.frontendPorts") or []
                      if get_path(p, "properties.port")}
            if not str(get_path(gw, "properties.sku.tier") or "_v2").lower().endswith("_v2"):
                infra = "65503-65534"  # v1 gateways use the older infrastructure range
    rules = [_rule("AllowGatewayManagerInbound", 100, "Inbound", "Allow", "Tcp", "GatewayManager", "*",
                   [infra]),
             _rule("AllowListenersInbound", 110, "Inbound", "Allow", "Tcp", "Internet", "*", sorted(ports) or ["443"])]
    return rules


def _public_facing(inv: Inventory, subnet: dict[str, Any], appgw: set[str]) -> bool:
    """Whether an NSG with default rules would cut traffic reaching this subnet from the internet."""
    if low(subnet["id"]) in appgw or subnet["name"].lower() == "azurebastionsubnet":
        return True
    for nic in linked(inv, NIC, "ipConfigurations.subnet").get(low(subnet["id"]), []):
        for ipc in get_path(nic, "properties.ipConfigurations") or []:
            if low(ref(get_path(ipc, "properties.subnet"))) == low(subnet["id"]) and \
                    ref(get_path(ipc, "properties.publicIPAddress")):
                return True
    return False


@check("spoke-3a")
def _subnet_nsgs(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(SUBNET, NSG):
        return
    appgw = appgw_subnets(inv)
    name_for = namer(inv, NSG, "properties.networkSecurityGroup", "nsg-{}")
    taken = {low(r["id"]) for r in of(inv, NSG)}
    judged = 0
    for vnet in of(inv, VNET):
        for sn in subnets_of(inv, vnet):
            if sn["name"].lower() in NSG_EXEMPT_SUBNETS:
                continue
            judged += 1
            nsg_id = ref(get_path(sn, "properties.networkSecurityGroup"))
            if nsg_id:
                ctx.finding(sn["id"], "pass", "properties.networkSecurityGroup.id", nsg_id, "an NSG",
                            f"Subnet {sn['name']} has an NSG.")
                continue
            rg = rg_of(vnet["id"])
            wanted = name_for(sn["name"])
            existing = inv.get(f"{rg}/providers/{NSG}/{wanted}")
            deps: list[str] = []
            if existing and not linked(inv, SUBNET, "properties.networkSecurityGroup").get(low(existing["id"])):
                nsg_id = existing["id"]  # an unused NSG named for this subnet: reuse it
            else:
                # the new NSG is for this subnet: its id stays when its name is edited
                p = ctx.params(sn["id"], name=unique_name(inv, rg, NSG, wanted, taken))
                nsg_id = f"{rg}/providers/{NSG}/{p['name']}"
                rules: list[dict[str, Any]] = []
                kind = ""
                if sn["name"].lower() == "azurebastionsubnet":
                    rules, kind = [dict(r) for r in BASTION_RULES], " with Bastion's required rules"
                elif low(sn["id"]) in appgw:
                    rules, kind = _appgw_rules(inv, sn["id"]), " with Application Gateway's required rules"
                body = {"location": vnet.get("location"), "properties": {"securityRules": rules}}
                create = ctx.create(nsg_id, body, anchor=sn["id"], params=p,
                                    title=f"Create NSG {p['name']} for subnet {sn['name']}{kind}",
                                    risk="None until it is associated.")
                deps = [create.id]
            disruptive = _public_facing(inv, sn, appgw)
            nic_nsgs = [n["name"] for n in linked(inv, NIC, "ipConfigurations.subnet").get(low(sn["id"]), [])
                        if ref(get_path(n, "properties.networkSecurityGroup"))]
            note = (f"; the NSG on NIC {', '.join(nic_nsgs)} guards that NIC only, not the subnet" if nic_nsgs
                    else "")
            ctx.finding(sn["id"], "fail", "properties.networkSecurityGroup.id", None, "an NSG",
                        f"Subnet {sn['name']} of {vnet['name']} has no NSG{note}.")
            ctx.put(sn, {"properties.networkSecurityGroup": {"id": nsg_id}}, depends_on=deps,
                    disruptive=disruptive, fields={"nsg": rid.parse(nsg_id).name},
                    risk=("Default rules deny inbound traffic from the internet to this subnet." if disruptive
                          else "Default rules deny inbound internet traffic; VNet traffic stays allowed."))
    if not judged:
        ctx.not_applicable("subnet that takes an NSG")


def nsg_subnets(inv: Inventory, nsg: dict[str, Any]) -> list[str]:
    """Lower-cased ids of the subnets an NSG is associated with, from both sides."""
    out = {low(ref(s)) for s in get_path(nsg, "properties.subnets") or []}
    out |= {low(s["id"]) for s in linked(inv, SUBNET, "properties.networkSecurityGroup").get(low(nsg["id"]), [])}
    out.discard("")
    return sorted(out)


@check("spoke-3b")
def _nsg_per_subnet(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(SUBNET):
        return
    judged = 0
    for nsg in of(inv, NSG):
        sns = nsg_subnets(inv, nsg)
        if not sns:
            continue
        judged += 1
        if len(sns) == 1:
            ctx.finding(nsg["id"], "pass", "properties.subnets", 1, 1, f"{nsg['name']} serves one subnet.")
            continue
        names = ", ".join(rid.parse(s).name for s in sns)
        ctx.fail_by_hand(
            nsg["id"], "properties.subnets", len(sns), 1,
            f"{nsg['name']} is shared by subnets {names}: give each subnet its own NSG (copy the rules that "
            f"subnet needs, then re-associate it), so each tier's rules and flow logs stay readable on their own.")
    if not judged:
        ctx.not_applicable("NSG associated with a subnet")


# ---- step 4: an ASG for each VM role ---------------------------------------------------------------
ROLE_WORDS = {
    "web": ("web", "fe", "frontend", "front"),
    "app": ("app", "api", "be", "backend", "middle", "mid", "logic"),
    "data": ("data", "db", "sql", "database"),
}
ROLE_TAGS = ("role", "tier", "workload-tier", "app-tier")


def vm_role(vm: dict[str, Any]) -> str | None:
    """The VM's tier: a role/tier tag first, then words in its name (`vm-web-01` → web)."""
    held = tags(vm)
    for key in ROLE_TAGS:
        if key in held:
            for role, words in ROLE_WORDS.items():
                if held[key] in words or held[key].startswith(role):
                    return role
            return re.sub(r"[^a-z0-9]+", "-", held[key]).strip("-") or None
    tokens = set(re.split(r"[^a-z0-9]+", str(vm.get("name", "")).lower()))
    for role, words in ROLE_WORDS.items():
        if tokens & set(words):
            return role
    return None


def _vm_nics(inv: Inventory) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(VM, NIC) pairs for VMs whose NIC sits in a spoke."""
    hub_ids = {low(v["id"]) for v in hubs(inv)}
    out = []
    for vm in of(inv, VM):
        for r in get_path(vm, "properties.networkProfile.networkInterfaces") or []:
            nic = inv.get(ref(r))
            if nic and low(_nic_vnet(nic)) not in hub_ids:
                out.append((vm, nic))
    return out


def _nic_vnet(nic: dict[str, Any]) -> str:
    for ipc in get_path(nic, "properties.ipConfigurations") or []:
        sid = ref(get_path(ipc, "properties.subnet"))
        if sid:
            return vnet_of(sid)
    return ""


def _asg_matches(asg: dict[str, Any], role: str) -> bool:
    if any(tags(asg).get(k) == role for k in ROLE_TAGS):
        return True
    tokens = set(re.split(r"[^a-z0-9]+", asg["name"].lower()))
    return bool(tokens & set(ROLE_WORDS.get(role, (role,))))


def asg_vnets(inv: Inventory) -> dict[str, set[str]]:
    """Lower-cased ASG id -> the VNets (lower-cased ids) of the NICs already in it."""

    def make() -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for nic in of(inv, NIC):
            for ipc in get_path(nic, "properties.ipConfigurations") or []:
                vnet = low(vnet_of(ref(get_path(ipc, "properties.subnet"))))
                for a in get_path(ipc, "properties.applicationSecurityGroups") or []:
                    if vnet and low(ref(a)):
                        out.setdefault(low(ref(a)), set()).add(vnet)
        return out

    return memo(inv, "asg_vnets", make)  # type: ignore[no-any-return]


def role_asgs(inv: Inventory) -> dict[tuple[str, str], tuple[str, dict[str, Any] | None, dict[str, Any]]]:
    """(vnet id lower, role) -> (ASG id, existing ASG or None, the VNet) for every role in use.

    Every NIC in an ASG must sit in one VNet (ARM refuses the NIC otherwise), so each role gets an
    ASG per VNet: an existing one is reused only when its members are all in that VNet and no
    other VNet took it here; a new one is named for the VNet when the plain name is taken."""
    out: dict[tuple[str, str], tuple[str, dict[str, Any] | None, dict[str, Any]]] = {}
    asgs = of(inv, ASG)
    members = asg_vnets(inv)
    claimed: dict[str, str] = {}  # ASG id (lower) -> the VNet (lower) it serves in this plan
    taken = {low(a["id"]) for a in asgs}
    for vm, nic in _vm_nics(inv):
        role = vm_role(vm)
        vnet = inv.get(_nic_vnet(nic))
        if not role or not vnet or (low(vnet["id"]), role) in out:
            continue
        here = low(vnet["id"])
        same = [a for a in asgs if loc(a) == loc(vnet) and _asg_matches(a, role)
                and members.get(low(a["id"]), set()) <= {here} and claimed.get(low(a["id"]), here) == here]
        if same:
            same.sort(key=lambda a: (here not in members.get(low(a["id"]), set()), low(a["id"])))
            claimed[low(same[0]["id"])] = here
            out[(here, role)] = (same[0]["id"], same[0], vnet)
            continue
        # follow the estate's NSG names: `web-nsg` style gives `web-asg`, otherwise `asg-web`
        suffix_style = sum(1 for n in of(inv, NSG) if n["name"].lower().endswith("-nsg")) > \
            sum(1 for n in of(inv, NSG) if n["name"].lower().startswith("nsg-"))
        name = f"{role}-asg" if suffix_style else f"asg-{role}"
        rg = rg_of(vnet["id"])
        if len({low(v["id"]) for v in spokes(inv) if loc(v) == loc(vnet)}) > 1 or \
                f"{rg}/providers/{ASG}/{name}".lower() in taken:
            name = f"{name}-{vnet['name']}"
        name = unique_name(inv, rg, ASG, name, taken)
        out[(here, role)] = (f"{rg}/providers/{ASG}/{name}", None, vnet)
    return out


def asg_anchor(vnet: dict[str, Any], role: str) -> str:
    """What a proposed ASG is for: one role's VMs in one VNet."""
    return f"{vnet['id']}|{role}"


def planned_asg(ctx: Context, vnet: dict[str, Any], role: str, asg_id: str) -> str:
    """The id of the ASG spoke-4a proposes for `role` in `vnet`, after the person's edit of its name
    (an edit re-plans the whole step, so the NICs follow the renamed ASG)."""
    edited = ctx.overrides.get(ctx.create_id(asg_anchor(vnet, role), "spoke-4a"), {}).get("name")
    return f"{rg_of(vnet['id'])}/providers/{ASG}/{edited}" if edited else asg_id


@check("spoke-4a")
def _role_asgs(ctx: Context) -> None:
    if ctx.unreadable(VM, NIC):
        return
    plan = role_asgs(ctx.inv)
    if not plan:
        ctx.not_applicable("VM with a recognisable role in a spoke")
        return
    for (_v, role), (asg_id, asg, vnet) in sorted(plan.items()):
        if asg:
            ctx.finding(vnet["id"], "pass", "", role, role, f"ASG {asg['name']} serves the {role} role in {vnet['name']}.")
            continue
        ctx.finding(vnet["id"], "fail", "", None, f"an ASG for role {role}",
                    f"No application security group for the {role} VMs of {vnet['name']}; "
                    f"rules must then name IP addresses.")
        p = ctx.params(asg_anchor(vnet, role), name=rid.parse(asg_id).name)
        ctx.create(f"{rg_of(vnet['id'])}/providers/{ASG}/{p['name']}",
                   {"location": vnet.get("location"), "properties": {}, "tags": {"role": role}},
                   anchor=asg_anchor(vnet, role), params=p, fields={"role": role},
                   risk="None: an ASG does nothing until rules reference it.")


@check("spoke-4b")
def _nics_in_asgs(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(VM, NIC, ASG):
        return
    pairs = _vm_nics(inv)
    if not pairs:
        ctx.not_applicable("VM network interface in a spoke")
        return
    plan = role_asgs(inv)
    seen: set[str] = set()
    for vm, nic in pairs:
        if low(nic["id"]) in seen:
            continue
        seen.add(low(nic["id"]))
        role = vm_role(vm)
        path = "properties.ipConfigurations"
        if not role:
            ctx.fail_by_hand(
                nic["id"], path, None, "a role ASG",
                f"The role of VM {vm['name']} cannot be told from its name or tags: tag it `role` = web, app or "
                f"data (or the tier it serves), then re-run, so its NIC {nic['name']} can join that role's ASG.")
            continue
        planned = plan.get((low(_nic_vnet(nic)), role))
        if not planned:
            ctx.fail_by_hand(
                nic["id"], path, None, "a role ASG",
                f"The virtual network of NIC {nic['name']} is outside the inventory: read access to it is needed "
                f"before the wizard can place the NIC in the {role} ASG.")
            continue
        asg_id, asg, vnet = planned
        if not asg:
            asg_id = planned_asg(ctx, vnet, role, asg_id)
        held = {low(ref(a)) for c in get_path(nic, path) or []
                for a in get_path(c, "properties.applicationSecurityGroups") or []}
        if low(asg_id) in held:
            ctx.finding(nic["id"], "pass", path, asg_id, asg_id, f"NIC {nic['name']} is in the {role} ASG.")
            continue

        def mutate(body: dict[str, Any], asg_id: str = asg_id) -> None:
            for c in get_path(body, "properties.ipConfigurations") or []:
                if not isinstance(c, dict):
                    continue
                if not isinstance(c.get("properties"), dict):
                    c["properties"] = {}
                if not isinstance(c["properties"].get("applicationSecurityGroups"), list):
                    c["properties"]["applicationSecurityGroups"] = []
                lst = c["properties"]["applicationSecurityGroups"]
                if not any(low(ref(a)) == low(asg_id) for a in lst):
                    lst.append({"id": asg_id})

        ctx.finding(nic["id"], "fail", path, sorted(held) or None, asg_id,
                    f"NIC {nic['name']} of {vm['name']} is not in the {role} ASG.")
        ctx.put_mutated(nic, mutate, [path], fields={"asg": rid.parse(asg_id).name},
                        depends_on=[] if asg else [ctx.create_id(asg_anchor(vnet, role), "spoke-4a")],
                        risk="Low until NSG rules reference the ASG.")


def _ip_literal(value: Any) -> bool:
    return isinstance(value, str) and bool(re.match(r"^\d+\.\d+\.\d+\.\d+(/\d+)?$", value)) and value != "0.0.0.0/0"


def rules_of(inv: Inventory, nsg: dict[str, Any]) -> list[dict[str, Any]]:
    return kids(inv, nsg["id"], RULE)


def tier_nsgs(inv: Inventory) -> list[dict[str, Any]]:
    """NSGs guarding workload tiers: every NSG not associated with a hub subnet."""
    hub_sn = {low(s["id"]) for v in hubs(inv) for s in subnets_of(inv, v)}
    return [n for n in of(inv, NSG) if not (set(nsg_subnets(inv, n)) & hub_sn)]


@check("spoke-4c")
def _rules_name_asgs(ctx: Context) -> None:
    inv = ctx.inv
    nsgs = tier_nsgs(inv)
    if not nsgs:
        ctx.not_applicable("NSG on a spoke")
        return
    for nsg in nsgs:
        by_ip = []
        for r in rules_of(inv, nsg):
            p = props(r)
            if str(p.get("access", "")).lower() != "allow":
                continue
            addrs = [p.get("sourceAddressPrefix"), p.get("destinationAddressPrefix"),
                     *(p.get("sourceAddressPrefixes") or []), *(p.get("destinationAddressPrefixes") or [])]
            if any(_ip_literal(a) for a in addrs):
                by_ip.append(r["name"])
        if by_ip:
            ctx.fail_by_hand(
                nsg["id"], "properties.securityRules", by_ip, "ASG references",
                f"Rules {', '.join(by_ip)} of {nsg['name']} name IP addresses: rewrite them with source/destination "
                f"application security groups (spoke-4a), so the rules follow VMs as they scale or move.")
        else:
            ctx.finding(nsg["id"], "pass", "properties.securityRules",
                        message=f"No allow rule of {nsg['name']} is tied to IP addresses.")


# ---- step 5: secure traffic within the VNet --------------------------------------------------------
def _field_any(p: dict[str, Any], single: str, plural: str) -> bool:
    v = p.get(single)
    many = p.get(plural) or []
    return v == "*" or (not v and list(many) == ["*"])


def is_deny_all(rule: dict[str, Any], direction: str) -> bool:
    p = props(rule)
    return (str(p.get("direction", "")).lower() == direction.lower() and str(p.get("access", "")).lower() == "deny"
            and p.get("priority") == 4096 and p.get("protocol") == "*"
            and _field_any(p, "sourceAddressPrefix", "sourceAddressPrefixes")
            and _field_any(p, "destinationAddressPrefix", "destinationAddressPrefixes")
            and _field_any(p, "sourcePortRange", "sourcePortRanges")
            and _field_any(p, "destinationPortRange", "destinationPortRanges"))


def routes_to_firewall(inv: Inventory, subnet: dict[str, Any], prefix: str = "0.0.0.0/0") -> bool:
    """Whether the subnet's route table sends `prefix` to a firewall's private IP."""
    table = inv.get(ref(get_path(subnet, "properties.routeTable")))
    if not table:
        return False
    ips = {firewall_ip(fw) for fw in of(inv, FW)} - {None}
    for r in kids(inv, table["id"], f"{RT}/routes"):
        p = props(r)
        if p.get("addressPrefix") == prefix and str(p.get("nextHopType", "")).lower() == "virtualappliance" \
                and p.get("nextHopIpAddress") in ips:
            return True
    return False


def deny_all(ctx: Context, direction: str) -> None:
    """spoke-5a and spoke-5b: each tier NSG ends with a deny-all rule at 4096 in `direction`."""
    inv = ctx.inv
    name = f"DenyAll{direction}"
    risk = ("Blocks load-balancer probes and all VNet traffic not explicitly allowed: write the allow rules "
            "(spoke-5c) first." if direction == "Inbound" else
            "Blocks Windows activation, updates, Entra login and DNS unless allowed first.")
    if ctx.unreadable(RULE, SUBNET, RT):
        return
    nsgs = tier_nsgs(inv)
    if not nsgs:
        ctx.not_applicable("NSG on a spoke")
        return
    appgw = appgw_subnets(inv)
    path = "properties.securityRules"
    for nsg in nsgs:
        rules = rules_of(inv, nsg)
        if any(is_deny_all(r, direction) for r in rules):
            ctx.finding(nsg["id"], "pass", path, name, name,
                        f"{nsg['name']} ends with a deny-all {direction.lower()} rule at 4096.")
            continue
        sns = [inv.get(s) for s in nsg_subnets(inv, nsg)]
        for_appgw = bool(sns) and all(s and low(s["id"]) in appgw for s in sns)
        if direction == "Outbound" and for_appgw:
            ctx.finding(nsg["id"], "pass", path, "Application Gateway subnet", name,
                        f"{nsg['name']} guards an Application Gateway v2 subnet, whose "
                        f"control plane needs outbound internet; no deny-all there.")
            continue
        if direction == "Outbound" and sns and all(s and routes_to_firewall(inv, s) for s in sns):
            ctx.finding(nsg["id"], "pass", path, "0.0.0.0/0 via firewall", name,
                        f"Outbound traffic of {nsg['name']}'s subnets goes through the firewall (hub-3b), which filters it.")
            continue
        clash = [r for r in rules if props(r).get("priority") == 4096 and
                 str(props(r).get("direction", "")).lower() == direction.lower()]
        if clash:
            ctx.fail_by_hand(
                nsg["id"], path, clash[0]["name"], name,
                f"Rule {clash[0]['name']} of {nsg['name']} holds priority 4096 {direction.lower()} but is not "
                f"a deny-all: move it to a lower number, then add {name} (Deny, every field *) at 4096, "
                f"so anything not allowed above is refused.")
            continue
        rule_id = f"{nsg['id']}/securityRules/{name}"
        wanted = {"priority": 4096, "direction": direction, "access": "Deny", "protocol": "*",
                  "sourceAddressPrefix": "*", "sourcePortRange": "*", "destinationAddressPrefix": "*",
                  "destinationPortRange": "*", "description": "Baseline: deny what no rule above allows."}
        ctx.finding(nsg["id"], "fail", path, None, name,
                    f"{nsg['name']} has no deny-all {direction.lower()} rule at 4096; the "
                    + ("default rules allow all VNet traffic in." if direction == "Inbound" else
                       "default rules let every VM reach the VNet and the internet."))
        existing = inv.get(rule_id)
        deps: list[str] = []
        probes = [r for r in rules if str(get_path(r, "properties.access") or "").lower() == "allow"
                  and str(get_path(r, "properties.sourceAddressPrefix") or "").lower() == "azureloadbalancer"]
        if direction == "Inbound" and for_appgw and not probes:
            # App GW v2 stops serving when its load balancer probes are refused.
            used = {get_path(r, "properties.priority") for r in rules
                    if str(get_path(r, "properties.direction") or "").lower() == "inbound"}
            free = max(p for p in range(100, 4096) if p not in used)
            lb = ctx.create(f"{nsg['id']}/securityRules/AllowAzureLoadBalancerInbound", {"properties": {
                "priority": free, "direction": "Inbound", "access": "Allow", "protocol": "*",
                "sourceAddressPrefix": "AzureLoadBalancer", "sourcePortRange": "*",
                "destinationAddressPrefix": "*", "destinationPortRange": "*"}},
                anchor=f"{nsg['id']}|load-balancer-probes", params={},  # nothing to choose: the platform's rule
                title=f"Keep load-balancer probes allowed on {nsg['name']}",
                risk="None: the platform allows them today through a default rule.")
            deps = [lb.id]
        fields = {"nsg": nsg["name"]}
        if existing:
            held = existing.get("properties")
            ctx.put(existing, {"properties": {**(held if isinstance(held, dict) else {}), **wanted}},
                    fields=fields, risk=risk, disruptive=True, depends_on=deps)
        else:  # the baseline rule is fixed (name, priority, every field *): no parameter to edit
            ctx.create(rule_id, {"properties": wanted}, anchor=nsg["id"], params={}, fields=fields, risk=risk,
                       disruptive=True, depends_on=deps)


@check("spoke-5a")
def _deny_all_inbound(ctx: Context) -> None:
    deny_all(ctx, "Inbound")


@check("spoke-5b")
def _deny_all_outbound(ctx: Context) -> None:
    deny_all(ctx, "Outbound")


@check("spoke-5c")
def _tier_rules(ctx: Context) -> None:
    inv = ctx.inv
    nsgs = tier_nsgs(inv)
    if not nsgs:
        ctx.not_applicable("NSG on a spoke")
        return
    for nsg in nsgs:
        rules = [r for r in rules_of(inv, nsg) if str(props(r).get("access", "")).lower() == "allow"]
        with_asg = [r["name"] for r in rules
                    if get_path(r, "properties.sourceApplicationSecurityGroups")
                    or get_path(r, "properties.destinationApplicationSecurityGroups")]
        if with_asg:
            ctx.finding(nsg["id"], "pass", "properties.securityRules", with_asg,
                        message=f"{nsg['name']} allows tier traffic through ASGs.")
            continue
        ctx.fail_by_hand(
            nsg["id"], "properties.securityRules", [r["name"] for r in rules] or None,
            "tier allow rules using ASGs",
            f"{nsg['name']} has no allow rule scoped to ASGs: add the tier pairs with priorities 100-4000 "
            f"(Internet→App GW 443, App GW→web ASG 443, web→app 443, app→data 1433, data↔data 1433, each "
            f"inbound and outbound), so the deny-all rules (spoke-5a/5b) leave only these paths open.")


@check("spoke-5d")
def _flow_logs(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(FLOWLOG, WATCHER, STORAGE):
        return
    vnets = of(inv, VNET)
    if not vnets:
        ctx.not_applicable("virtual network")
        return
    risk = "Flow-log storage and traffic analytics are billed."
    by_target = linked(inv, FLOWLOG, "properties.targetResourceId")
    by_region: dict[str, list[dict[str, Any]]] = {}
    # the first account of each (region, subscription): found once, not by a scan per VNet
    first_in_sub: dict[tuple[str, str], dict[str, Any]] = {}
    for sa in of(inv, STORAGE):
        by_region.setdefault(loc(sa), []).append(sa)
        first_in_sub.setdefault((loc(sa), low(rid.subscription_of(sa["id"]))), sa)
    for vnet in vnets:
        mine = by_target.get(low(vnet["id"]), [])
        on = [f for f in mine if get_path(f, "properties.enabled") is True]
        path = "properties.enabled"
        if on:
            ctx.finding(vnet["id"], "pass", path, True, True, f"VNet flow log {on[0]['name']} records {vnet['name']}.")
            continue
        if mine:
            fl = mine[0]
            ctx.finding(vnet["id"], "fail", path, False, True, f"Flow log {fl['name']} of {vnet['name']} is disabled.")
            ctx.put(fl, {path: True}, title=f"Enable flow log {fl['name']}", risk=risk, billable=True)
            continue
        sub = rid.subscription_of(vnet["id"]) or ""
        region = loc(vnet)
        accounts = by_region.get(region, [])
        if not accounts:
            ctx.fail_by_hand(
                vnet["id"], path, None, True,
                f"{vnet['name']} has no flow log and there is no storage account in {region} to hold one: create a "
                f"storage account there (hardened as in storage-1..3), then a VNet flow log in Network Watcher "
                f"targeting {vnet['name']}, so traffic can be audited and fed to traffic analytics.")
            continue
        watcher, deps = network_watcher(inv, sub, region, vnet)
        sa = first_in_sub.get((region, low(sub)), accounts[0])
        ws = workspace_for(inv, sub, region)
        # the VNet's flow log: its id stays when its account, retention or workspace is edited
        p = ctx.params(vnet["id"], storageId=sa["id"], retentionDays=90,
                       **({"workspaceResourceId": ws["id"]} if ws else {}))
        chosen = inv.get(p["storageId"])
        if chosen and loc(chosen) != region:
            ctx.finding(vnet["id"], "error", path, None, True,
                        f"Storage account {chosen['name']} is in {loc(chosen)}; a flow log of {vnet['name']} "
                        f"needs one in {region}.")
            continue
        settings: dict[str, Any] = {
            "targetResourceId": vnet["id"], "storageId": p["storageId"], "enabled": True,
            "retentionPolicy": {"enabled": True, "days": p["retentionDays"]}, "format": {"type": "JSON", "version": 2}}
        if ws:
            settings["flowAnalyticsConfiguration"] = {"networkWatcherFlowAnalyticsConfiguration": {
                "enabled": True, "workspaceResourceId": p["workspaceResourceId"], "trafficAnalyticsInterval": 60}}
        ctx.finding(vnet["id"], "fail", path, None, True, f"{vnet['name']} has no VNet flow log.")
        ctx.create(f"{watcher}/flowLogs/fl-{vnet['name']}", {"location": vnet.get("location"), "properties": settings},
                   anchor=vnet["id"], params=p, depends_on=deps,
                   fields={"vnet": vnet["name"], "account": rid.parse(p["storageId"]).name}, risk=risk, billable=True)


def network_watcher(inv: Inventory, sub: str, region: str, near: dict[str, Any]) -> tuple[str, list[str]]:
    """The id of the region's Network Watcher, and the hub-4d change to depend on when it is missing."""
    for w in of(inv, WATCHER):  # a handful at most: one per subscription and region
        if low(rid.subscription_of(w["id"])) == low(sub) and loc(w) == region:
            return w["id"], []
    wid = watcher_id(inv, sub, region, near)
    # hub-4d's create is known by what it is for, the subscription's region, not by its name
    return wid, [change_id("hub-4d", f"create|{watcher_anchor(sub, region)}", "PUT")]


def _groups_in_scope(inv: Inventory) -> set[str]:
    """Lower-cased ids of the resource groups in scope: the listed group entries (what -g kept), or,
    for an inventory without them, the groups its resources live in."""
    listed = {low(g["id"]) for g in of(inv, "Microsoft.Resources/resourceGroups")}
    return listed or {low(g) for g in inv.resource_groups}


def watcher_id(inv: Inventory, sub: str, region: str, near: dict[str, Any]) -> str:
    """`NetworkWatcher_<region>` in NetworkWatcherRG when that group is in scope, else beside `near`
    (under -g, a watcher elsewhere is still seen, but a new one goes where the scope allows)."""
    rg = f"/subscriptions/{sub}/resourceGroups/NetworkWatcherRG"
    if low(rg) not in memo(inv, "groups_in_scope", lambda: _groups_in_scope(inv)):
        rg = rg_of(near["id"])
    return f"{rg}/providers/{WATCHER}/NetworkWatcher_{region}"


# who loses access when the WAF starts blocking: users whose requests trip a managed rule
WAF_RISK = ("Users whose requests match a managed rule (false positives such as large form posts or "
            "SQL-like text) get 403 from the gateway instead of the app; tune exclusions in Detection mode first.")


@check("spoke-5e")
def _waf_prevention(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(WAFP):
        return
    gws = of(inv, APPGW)
    if not gws:
        ctx.not_applicable("application gateway")
        return
    for gw in gws:
        tier = str(get_path(gw, "properties.sku.tier") or "")
        pol = inv.get(ref(get_path(gw, "properties.firewallPolicy")))
        legacy = get_path(gw, "properties.webApplicationFirewallConfiguration") or {}
        if tier.lower() == "waf_v2" and pol:
            state = get_path(pol, "properties.policySettings.state")
            mode = get_path(pol, "properties.policySettings.mode")
            if state == "Enabled" and mode == "Prevention":
                ctx.finding(gw["id"], "pass", "properties.policySettings.mode", mode, "Prevention",
                            f"WAF policy {pol['name']} blocks attacks on {gw['name']}.")
                continue
            ctx.finding(gw["id"], "fail", "properties.policySettings.mode", f"{state}/{mode}", "Enabled/Prevention",
                        f"WAF policy {pol['name']} of {gw['name']} only "
                        f"{'watches' if state == 'Enabled' else 'is off'} ({state}, {mode}).")
            ctx.put(pol, {"properties.policySettings.state": "Enabled", "properties.policySettings.mode": "Prevention"},
                    title=f"Switch WAF policy {pol['name']} to Prevention", risk=WAF_RISK)
            continue
        if tier.lower() == "waf_v2" and legacy:
            mode_path = "properties.webApplicationFirewallConfiguration.firewallMode"
            if legacy.get("enabled") is True and legacy.get("firewallMode") == "Prevention":
                ctx.finding(gw["id"], "pass", mode_path, "Prevention", "Prevention", f"{gw['name']}'s WAF blocks attacks.")
                continue
            ctx.finding(gw["id"], "fail", mode_path, legacy.get("firewallMode"), "Prevention",
                        f"{gw['name']}'s WAF does not block (enabled={legacy.get('enabled')}, "
                        f"mode={legacy.get('firewallMode')}).")
            ctx.put(gw, {"properties.webApplicationFirewallConfiguration.enabled": True, mode_path: "Prevention"},
                    title=f"Switch {gw['name']}'s WAF to Prevention", risk=WAF_RISK)
            continue
        if tier.lower() not in ("standard_v2", "waf_v2"):
            ctx.fail_by_hand(
                gw["id"], "properties.sku.tier", tier, "WAF_v2",
                f"{gw['name']} is a v1 gateway ({tier}) without a usable WAF: migrate it to WAF_v2 with a WAF policy "
                f"in Prevention mode (the v1 to v2 migration script), since v1 cannot take a WAF policy.")
            continue
        # the gateway's new policy: its id stays when its name or mode is edited
        p = ctx.params(gw["id"], name=f"waf-{gw['name']}", mode="Prevention")
        pol_id = f"{rg_of(gw['id'])}/providers/{WAFP}/{p['name']}"
        body = {"location": gw.get("location"), "properties": {
            "policySettings": {"state": "Enabled", "mode": p["mode"], "requestBodyCheck": True},
            "managedRules": {"managedRuleSets": [{"ruleSetType": "OWASP", "ruleSetVersion": "3.2"}]}}}
        create = ctx.create(pol_id, body, anchor=gw["id"], params=p, risk=WAF_RISK, billable=True)
        ctx.finding(gw["id"], "fail", "properties.sku.tier", tier, "WAF_v2",
                    f"{gw['name']} ({tier}) has no web application firewall in front of the app.")
        ctx.put(gw, {"properties.sku.tier": "WAF_v2", "properties.sku.name": "WAF_v2",
                     "properties.firewallPolicy": {"id": pol_id}}, depends_on=[create.id],
                title=f"Move {gw['name']} to WAF_v2 with policy {p['name']}",
                risk="WAF_v2 costs more per hour; the gateway updates in place (minutes).", billable=True)


@check("spoke-5f")
def _appgw_through_firewall(ctx: Context) -> None:
    inv = ctx.inv
    gws = of(inv, APPGW)
    if not gws:
        ctx.not_applicable("application gateway")
        return
    for gw in gws:
        sids = [ref(get_path(c, "properties.subnet")) for c in get_path(gw, "properties.gatewayIPConfigurations") or []]
        sn = inv.get(sids[0]) if sids else None
        vnet = inv.get(vnet_of(sids[0])) if sids else None
        fw = firewall_for(inv, vnet) if vnet else None
        ip = firewall_ip(fw)
        if not sn or not ip:
            ctx.fail_by_hand(
                gw["id"], "properties.routes", None, "backend routes via the firewall",
                f"No Azure Firewall serves {gw['name']}'s network: once a Premium firewall runs in the hub, give the "
                f"App GW subnet a route table sending the backend prefixes to it, so IDPS inspects inbound web traffic.")
            continue
        table = inv.get(ref(get_path(sn, "properties.routeTable")))
        routes = [props(r) for r in (kids(inv, table["id"], f"{RT}/routes") if table else [])]
        default_fw = [r for r in routes if r.get("addressPrefix") == "0.0.0.0/0"
                      and str(r.get("nextHopType", "")).lower() == "virtualappliance"]
        to_fw = [r for r in routes if r.get("nextHopIpAddress") == ip and r.get("addressPrefix") != "0.0.0.0/0"]
        prefixes = [p for s in subnets_of(inv, vnet) if low(s["id"]) != low(sn["id"])
                    for p in [get_path(s, "properties.addressPrefix")] if p] if vnet else []
        if default_fw:
            ctx.fail_by_hand(
                sn["id"], "properties.routes", "0.0.0.0/0 → appliance", "no default route",
                f"Subnet {sn['name']} of {gw['name']} sends 0.0.0.0/0 to an appliance: remove that route (App GW needs "
                f"direct internet for its control plane) and keep only routes for {', '.join(prefixes) or 'the backends'} "
                f"via {ip}.")
        elif to_fw:
            ctx.finding(sn["id"], "pass", "properties.routes", len(to_fw),
                        message=f"{gw['name']} reaches its backends through the firewall.")
        else:
            ctx.fail_by_hand(
                sn["id"], "properties.routes", None, f"backend prefixes via {ip}",
                f"{gw['name']} reaches its backends directly: give subnet {sn['name']} its own route table with "
                f"routes for {', '.join(prefixes) or 'the backend prefixes'} to next hop VirtualAppliance {ip} (no "
                f"0.0.0.0/0), and the backend subnets the reverse routes, so Firewall Premium inspects the traffic "
                f"without asymmetric paths.")


# ---- step 6: secure access to the VNet and application -------------------------------------------
@check("spoke-6a")
def _private_data_paths(ctx: Context) -> None:
    accounts = of(ctx.inv, STORAGE)
    if not accounts:
        ctx.not_applicable("storage account")
        return
    for sa in accounts:
        public = get_path(sa, "properties.publicNetworkAccess") or "Enabled"
        default = get_path(sa, "properties.networkAcls.defaultAction") or "Allow"
        if public == "Disabled" or default == "Deny":
            ctx.finding(sa["id"], "pass", "properties.publicNetworkAccess", public,
                        message=f"{sa['name']} is reachable only from chosen networks.")
            continue
        ctx.fail_by_hand(
            sa["id"], "properties.publicNetworkAccess", public, "Disabled",
            f"The spoke's workloads reach {sa['name']} over its public endpoint: add a private endpoint in the spoke "
            f"(storage-3a), then turn public network access off (storage-3b), and route hub traffic through the "
            f"firewall (hub-1, hub-3).")


@check("spoke-6b")
def _conditional_access(ctx: Context) -> None:
    fronts = of(ctx.inv, APPGW) or spokes(ctx.inv)
    if not fronts:
        ctx.not_applicable("application entry point")
        return
    for r in fronts:
        ctx.finding(
            r["id"], "manual", "", None, "app in Conditional Access scope",
            f"ARM cannot see sign-in policy for the app behind {r['name']}: register it in Entra ID and include it in "
            f"your Conditional Access policies requiring MFA and a compliant device, so a stolen password alone "
            f"cannot reach it.")


# ---- step 7: advanced threat detection ------------------------------------------------------------
@check("spoke-7a")
def _cspm(ctx: Context) -> None:
    defender_plans(ctx, ("CloudPosture",), spoke_subs(ctx.inv), "spoke virtual network")


@check("spoke-7b")
def _secure_score(ctx: Context) -> None:
    inv = ctx.inv
    for sub in spoke_subs_check(ctx):
        sid = f"/subscriptions/{sub}/providers/{SCORE}/ascScore"
        score = inv.get(sid)
        spoke_rg = {low(g) for g in spoke_rgs(inv)}
        unhealthy = [a for a in of(inv, ASSESSMENT)
                     if low(rid.subscription_of(a["id"])) == low(sub)
                     and str(get_path(a, "properties.status.code") or "").lower() == "unhealthy"
                     and low(rg_of(a["id"])) in spoke_rg]
        cur, mx = get_path(score or {}, "properties.score.current"), get_path(score or {}, "properties.score.max")
        if score and not unhealthy and cur is not None and cur == mx:
            ctx.finding(sid, "pass", "properties.score.current", cur, mx, "Secure score is at its maximum.")
            continue
        shown = f"{cur}/{mx}" if score else "not readable"
        names = ", ".join(sorted({get_path(a, "properties.displayName") or a["name"] for a in unhealthy})[:5])
        ctx.finding(
            # an unreadable score cannot be judged; a score below its maximum fails
            sid if score else f"/subscriptions/{sub}", "fail" if score else "manual", "properties.score.current",
            cur, mx,
            f"Secure score of {sub} is {shown}" + (f", with unhealthy spoke items: {names}" if names else "") +
            ": in Defender for Cloud → Recommendations, sort by max score increase and fix the top items for the "
            "spoke resource groups first.")


STEPS = article_steps(__name__)
