"""Virtual machines article: the evaluators of the checks that reason across resources, and the
helpers the data in vm.toml names. Titles, risks, labels and single-property checks are data."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from ztwizard import remedy
from ztwizard import resource_id as rid
from ztwizard.armjson import get_path
from ztwizard.inventory import Inventory
from ztwizard.model import Change, Remediation

from . import cmk, exposure
from ._base import Context, memo
from .catalog import article_steps, check
from .common import (
    ASSESSMENT,
    BASTION,
    CONTRIBUTOR,
    FIREWALL,
    NIC,
    NSG,
    NSG_RULE,
    OWNER,
    PEERING,
    PUBLIC_IP,
    ROLE_ASSIGNMENT,
    ROLE_DEFINITION,
    STORAGE_ACCOUNT,
    SUBNET,
    VM,
    VNET,
    VNET_GATEWAY,
    broad_user_assignments,
    is_true,
    one_custom_role,
    pricing,
)

EXTENSIONS = "Microsoft.Compute/virtualMachines/extensions"
DISKS = "Microsoft.Compute/disks"
DES = "Microsoft.Compute/diskEncryptionSets"
SETTINGS = "Microsoft.Security/settings"
JIT = "Microsoft.Security/locations/jitNetworkAccessPolicies"

VM_CONTRIBUTOR = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c"
STANDING_ADMIN_ROLES = {OWNER: "Owner", CONTRIBUTOR: "Contributor"}
JOIN_ACTION = "Microsoft.Network/virtualNetworks/subnets/join/action"

MANAGEMENT_PORTS = (22, 3389)
DOUBLE = "EncryptionAtRestWithPlatformAndCustomerKeys"

# Defender for Cloud assessments about a VM (steps.md appendix A).
VM_ASSESSMENTS = {
    "bc303248-3d14-44c2-96a0-55f5c326b5fe": "Management ports should be closed",
    "805651bc-6ecd-4c73-9b55-97a19d0582d0": "Management ports should be protected with JIT",
    "483f12ed-ae23-447e-a2de-a67a10db4353": "Internet-facing VMs should be protected with NSGs",
    "a9341235-9389-42f0-a0bf-9bfb57960d44": "Non-internet-facing VMs should be protected with NSGs",
    "3b20e985-f71f-483b-b078-f30d73936d43": "All network ports should be restricted on NSGs",
    "c3b51c94-588b-426b-a892-24696f9e54cc": "IP forwarding should be disabled",
    "e1145ab1-eb4f-43d8-911b-36ddf771d13f": "System updates should be installed",
    "ffff0522-1e88-47fc-8382-2a80ba848f5d": "A vulnerability assessment solution should be enabled",
}


# ---- reading a VM and what surrounds it ------------------------------------------------------

def os_type(vm: dict[str, Any]) -> str:
    t = get_path(vm, "properties.storageProfile.osDisk.osType")
    if t:
        return "Windows" if t.lower() == "windows" else "Linux"
    if get_path(vm, "properties.osProfile.windowsConfiguration") is not None:
        return "Windows"
    return "Linux"


def os_config_path(vm: dict[str, Any]) -> str:
    return "properties.osProfile." + ("windowsConfiguration" if os_type(vm) == "Windows" else "linuxConfiguration")


def hyperv_generation(vm: dict[str, Any], inv: Inventory) -> str | None:
    """V1/V2 from the OS disk (absent on the disk means V1), or the instance view; None if unknown."""
    disk = inv.get(get_path(vm, "properties.storageProfile.osDisk.managedDisk.id"))
    if disk is not None:
        return get_path(disk, "properties.hyperVGeneration") or "V1"
    return (get_path(vm, "properties.instanceView.hyperVGeneration")
            or get_path(vm, "properties.extended.instanceView.hyperVGeneration"))  # Resource Graph's shape


def vm_nics(vm: dict[str, Any], inv: Inventory) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for ref in get_path(vm, "properties.networkProfile.networkInterfaces") or []:
        nic = inv.get(ref.get("id"))
        if nic is not None:
            out[nic["id"].lower()] = nic
    for nic in memo(inv, "nics_by_vm", lambda: _nics_by_vm(inv)).get(vm["id"].lower(), []):
        out[nic["id"].lower()] = nic
    return sorted(out.values(), key=lambda r: r["id"].lower())


def _nics_by_vm(inv: Inventory) -> dict[str, list[dict[str, Any]]]:
    index: dict[str, list[dict[str, Any]]] = {}
    for nic in inv.of_type(NIC):
        owner = (get_path(nic, "properties.virtualMachine.id") or "").rstrip("/").lower()
        if owner:
            index.setdefault(owner, []).append(nic)
    return index


def nic_subnet_ids(nic: dict[str, Any]) -> list[str]:
    return [s for s in (get_path(c, "properties.subnet.id") for c in get_path(nic, "properties.ipConfigurations") or [])
            if s]


def vm_vnet_ids(vm: dict[str, Any], inv: Inventory) -> list[str]:
    out: list[str] = []
    for nic in vm_nics(vm, inv):
        for s in nic_subnet_ids(nic):
            v = rid.parse(s).parent or ""
            if v and v.lower() not in {x.lower() for x in out}:
                out.append(v)
    return out


def vm_nsgs(vm: dict[str, Any], inv: Inventory) -> list[dict[str, Any]]:
    """The NSGs that filter the VM's traffic: its NICs' and its NICs' subnets'."""
    ids: list[str] = []
    for nic in vm_nics(vm, inv):
        ids.append(get_path(nic, "properties.networkSecurityGroup.id") or "")
        for s in nic_subnet_ids(nic):
            ids.append(get_path(inv.get(s) or {}, "properties.networkSecurityGroup.id") or "")
    out: dict[str, dict[str, Any]] = {}
    for i in ids:
        nsg = inv.get(i)
        if nsg is not None:
            out[nsg["id"].lower()] = nsg
    return list(out.values())


def extensions(vm: dict[str, Any], inv: Inventory) -> list[dict[str, Any]]:
    return inv.children(vm["id"], EXTENSIONS)


def find_extension(vm: dict[str, Any], inv: Inventory, publisher: str, types: Iterable[str]) -> dict[str, Any] | None:
    wanted = {t.lower() for t in types}
    for ext in extensions(vm, inv):
        if (get_path(ext, "properties.publisher") or "").lower() == publisher.lower() and \
                (get_path(ext, "properties.type") or "").lower() in wanted:
            return ext
    return None


def install_extension(ctx: Context, vm: dict[str, Any], name: str, publisher: str, ext_type: str,
                      version: str, *, settings: dict[str, Any] | None = None, **flags: Any) -> Change:
    """Create extension `name` on the VM; its handler version is the parameter a person may edit."""
    anchor = f"{vm['id']}|{ext_type}"  # what it is for: this capability on this VM
    p = ctx.params(anchor, typeHandlerVersion=version)
    body: dict[str, Any] = {
        "name": name, "type": EXTENSIONS, "location": vm.get("location"),
        "properties": {"publisher": publisher, "type": ext_type, "typeHandlerVersion": p["typeHandlerVersion"],
                       "autoUpgradeMinorVersion": True}}
    if settings:
        body["properties"]["settings"] = settings
    return ctx.create(f"{vm['id']}/extensions/{name}", body, anchor=anchor, params=p, fields={"vm": vm["name"]},
                      **flags)


def proposed(ctx: Context, change_id: str) -> Change | None:
    """The change this check already proposed under `change_id`: several findings can share one
    fix (one NSG rule, one Bastion), which is proposed once."""
    return next((c for c in ctx.result.changes if c.id == change_id), None)


def _vms(ctx: Context) -> list[dict[str, Any]]:
    vms = ctx.inv.of_type(VM)
    if not vms:
        ctx.not_applicable("virtual machine")
    return vms


# ---- "open to the internet" ------------------------------------------------------------------

def open_rules(vm: dict[str, Any], inv: Inventory) -> list[tuple[dict[str, Any], list[int]]]:
    """The rules that admit internet traffic to the VM's management ports, each with the ports it
    admits: only where every NSG on the path lets the traffic through (steps/exposure.py)."""
    return exposure.admitting_rules(exposure.openings(vm_nics(vm, inv), inv, MANAGEMENT_PORTS))


def _subtract(ranges: list[tuple[int, int]], ports: Iterable[int]) -> list[tuple[int, int]]:
    out = list(ranges)
    for port in ports:
        nxt = []
        for a, b in out:
            if a <= port <= b:
                if a < port:
                    nxt.append((a, port - 1))
                if port < b:
                    nxt.append((port + 1, b))
            else:
                nxt.append((a, b))
        out = nxt
    return out


def _fmt(r: tuple[int, int]) -> str:
    return str(r[0]) if r[0] == r[1] else f"{r[0]}-{r[1]}"


def narrow_rule(ctx: Context, rule: dict[str, Any], **flags: Any) -> Change:
    """PUT the rule without the management ports; if it opened nothing else, keep it but limit its
    source to the virtual network. Narrowing rather than deleting keeps every other flow the rule
    allows, and undo is a PUT of the exact prior rule."""
    rest = _subtract(exposure.port_ranges(rule), MANAGEMENT_PORTS)

    def mutate(body: dict[str, Any]) -> None:
        p = body.setdefault("properties", {})
        if rest:
            p.pop("destinationPortRange", None)
            p["destinationPortRanges"] = [_fmt(r) for r in rest]
            return
        kept = [s for s in exposure.sources(rule) if s.lower() not in exposure.INTERNET_SOURCES]
        p.pop("sourceAddressPrefix", None)
        p.pop("sourceAddressPrefixes", None)
        if len(kept) > 1:
            p["sourceAddressPrefixes"] = kept
        else:
            p["sourceAddressPrefix"] = kept[0] if kept else "VirtualNetwork"

    shown = ["properties.destinationPortRange", "properties.destinationPortRanges"] if rest else \
        ["properties.sourceAddressPrefix", "properties.sourceAddressPrefixes"]
    return ctx.put_mutated(rule, mutate, shown, **flags)


def deny_above(ctx: Context, rule: dict[str, Any], ports: list[int], params: dict[str, Any]) -> Change:
    """A Deny of `ports` from the internet just above `rule` (the free priority nearest below its
    number), leaving the rule and every other flow it serves as they are. It is a new rule, so
    undo deletes it; its change keeps the id of the narrowing it replaces, where the choice is kept."""
    nsg_id = rid.parse(rule["id"]).parent or ""
    taken = {int(get_path(r, "properties.priority") or 0) for r in ctx.inv.children(nsg_id, NSG_RULE)
             if str(get_path(r, "properties.direction") or "").lower() == "inbound"}
    own = int(get_path(rule, "properties.priority") or 100)
    free = next((p for p in range(own - 1, 99, -1) if p not in taken), None)
    name = f"DenyMgmtAbove{rule['name']}"[:80]
    sources = [s for s in exposure.sources(rule) if s.lower() in exposure.INTERNET_SOURCES]
    body = {"name": name, "type": NSG_RULE, "properties": {
        "priority": free, "direction": "Inbound", "access": "Deny", "protocol": "*",
        "sourcePortRange": "*", "destinationAddressPrefix": "*",
        "destinationPortRanges": [str(p) for p in ports],
        **({"sourceAddressPrefixes": sources} if len(sources) > 1 else {"sourceAddressPrefix": sources[0]}),
        "description": f"Closes {', '.join(map(str, ports))} to the internet ahead of {rule['name']}."}}
    if free is None:  # priorities 100..own-1 are all taken: only narrowing can close the port
        return narrow_rule(ctx, rule, disruptive=True, params=params,
                           risk="No free priority above the rule for a deny, so the rule itself is narrowed.")
    change = remedy.create(ctx.check.id, f"{nsg_id}/securityRules/{name}", body, params=params, disruptive=True,
                           title=f"Deny {', '.join(map(str, ports))} from the internet above rule {rule['name']}",
                           risk=f"Direct RDP/SSH from the internet stops; {rule['name']} keeps its other flows.")
    change.id = ctx.change_id_of(rule)
    return ctx.record(change)


# ---- step 1: logical isolation ---------------------------------------------------------------

SHARED_INFRA_TYPES = {VNET: "virtual network", STORAGE_ACCOUNT: "storage account", FIREWALL: "firewall",
                      VNET_GATEWAY: "VPN/ExpressRoute gateway", BASTION: "Bastion host"}
SHARED_INFRA = {t.lower(): what for t, what in SHARED_INFRA_TYPES.items()}


def _shared_infra_by_rg(inv: Inventory) -> dict[str, list[dict[str, Any]]]:
    index: dict[str, list[dict[str, Any]]] = {}
    for t in SHARED_INFRA_TYPES:
        for r in inv.of_type(t):
            index.setdefault((rid.resource_group_id(r["id"]) or "").lower(), []).append(r)
    return index


@check("vm-1a")
def _isolation(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(VM, *SHARED_INFRA_TYPES):
        return
    groups: dict[str, str] = {}
    for vm in _vms(ctx):
        g = rid.resource_group_id(vm["id"]) or ""
        groups.setdefault(g.lower(), g)
    for g in sorted(groups.values(), key=str.lower):
        mixed = memo(inv, "shared_infra_by_rg", lambda: _shared_infra_by_rg(inv)).get(g.lower(), [])
        if not mixed:
            ctx.finding(g, "pass", "", None, None, "The resource group holds workload resources only.")
            continue
        names = ", ".join(f"{SHARED_INFRA[r['type'].lower()]} {r['name']}" for r in sorted(mixed, key=lambda r: r["id"]))
        ctx.fail_by_hand(
            g, "", [r["id"] for r in mixed], "no shared infrastructure",
            f"Resource group {rid.parse(g).name} mixes VMs with {names}. Keep VMs in resource groups of "
            "their own (by workload or data classification) so RBAC and policy can be scoped to them: "
            "move the shared resources to a network or data group (Move resources, after checking "
            "move support) or put new VMs elsewhere.")


# ---- step 2: RBAC ------------------------------------------------------------------------------

@check("vm-2a")
def _vm_rbac(ctx: Context) -> None:
    if ctx.unreadable(VM, ROLE_ASSIGNMENT):
        return
    for vm in _vms(ctx):
        rg = rid.resource_group_id(vm["id"]) or ""
        hits = broad_user_assignments(ctx.inv, [vm["id"], rg], STANDING_ADMIN_ROLES)
        if not hits:
            ctx.finding(vm["id"], "pass", "properties.roleDefinitionId",
                        message="No user holds standing Owner or Contributor on the VM or its group.")
            continue
        held = "; ".join(f"{role} for user {get_path(a, 'properties.principalId')}" for a, role in hits)
        ctx.fail_by_hand(
            vm["id"], "properties.roleDefinitionId", [a["id"] for a, _ in hits],
            "login roles held by groups",
            f"Standing admin access to {vm['name']}: {held}. Give sign-in through groups holding Virtual "
            "Machine User Login or Virtual Machine Administrator Login, make Owner/Contributor PIM-eligible "
            "instead of permanent, then remove the direct assignments in Access control (IAM).")


def _join_role_ok(role: dict[str, Any]) -> bool:
    if (get_path(role, "properties.type") or "").lower() != "customrole":
        return False
    actions = [a for p in get_path(role, "properties.permissions") or [] for a in p.get("actions") or []]
    if not any(a.lower() == JOIN_ACTION.lower() for a in actions):
        return False
    return not any("*" in a or a.lower().endswith(("/write", "/delete")) for a in actions)


JOIN_ROLE_NAME = "Virtual Network Subnet Joiner"


@check("vm-2b")
def _join_role(ctx: Context) -> None:
    if ctx.unreadable(VM, ROLE_DEFINITION):
        return
    subs = sorted({rid.subscription_of(vm["id"]) or "" for vm in _vms(ctx)})
    one_custom_role(ctx, subs, _join_role_ok, default_name=JOIN_ROLE_NAME, seed="vnet-join",
                    description="Join NICs to existing subnets without the right to change the network.",
                    actions=["Microsoft.Network/virtualNetworks/read", "Microsoft.Network/virtualNetworks/subnets/read",
                             JOIN_ACTION],
                    subject="subnet join only", where_field="sub")


def system_assigned(identity_type: Any) -> bool:
    """vm-2c passes with "SystemAssigned" or "SystemAssigned, UserAssigned"."""
    return "systemassigned" in (identity_type or "").lower().replace(" ", "")


def identity_fix(vm: dict[str, Any], inv: Inventory) -> dict[str, Any]:
    """Add the system identity and keep the user-assigned ones (sent as {}: their ids are read-only)."""
    ident = get_path(vm, "identity") or {}
    uai: dict[str, dict[str, Any]] = {k: {} for k in (ident.get("userAssignedIdentities") or {})}
    value: dict[str, Any] = {"type": "SystemAssigned, UserAssigned" if uai else "SystemAssigned"}
    if uai:
        value["userAssignedIdentities"] = uai
    return {"identity": value}


def has_system_identity(vm: dict[str, Any]) -> bool:
    return system_assigned(get_path(vm, "identity.type"))


# ---- step 3: secure boot ----------------------------------------------------------------------

TRUSTED = ("TrustedLaunch", "ConfidentialVM")
GEN1_INSTRUCTION = ("The OS disk is Generation 1, which cannot run Trusted Launch: upgrade it to Gen2 "
                    "first (validate and convert the disk to GPT with MBR2GPT on Windows, then switch "
                    "the VM to Trusted Launch), or rebuild it from a Gen2 image; take a backup first.")
UNKNOWN_GEN = ("The OS disk's Hyper-V generation could not be read; confirm it is V2 on the disk's "
               "Overview page before enabling Trusted Launch.")
UEFI = "properties.securityProfile.uefiSettings"


def _trusted(vm: dict[str, Any]) -> bool:
    return get_path(vm, "properties.securityProfile.securityType") in TRUSTED


def _generation_note(gen: str | None) -> str:
    return GEN1_INSTRUCTION if gen == "V1" else UNKNOWN_GEN


def _trusted_launch_id(ctx: Context, vm: dict[str, Any]) -> str:
    """The id of vm-3a's switch to Trusted Launch, which the boot settings and attestation wait for."""
    return ctx.change_id_of(vm, "vm-3a", "PATCH")


@check("vm-3a")
def _trusted_launch(ctx: Context) -> None:
    if ctx.unreadable(VM, DISKS):
        return
    path = "properties.securityProfile.securityType"
    for vm in _vms(ctx):
        actual = get_path(vm, path) or "Standard"
        if actual in TRUSTED:
            ctx.finding(vm["id"], "pass", path, actual, "TrustedLaunch", f"Security type is {actual}.")
            continue
        gen = hyperv_generation(vm, ctx.inv)
        if gen != "V2":
            ctx.fail_by_hand(vm["id"], path, actual, "TrustedLaunch",
                        f"Security type is {actual}. " + _generation_note(gen))
            continue
        ctx.finding(vm["id"], "fail", path, actual, "TrustedLaunch",
                    f"Security type is {actual}; the Gen2 OS disk can run Trusted Launch.")
        ctx.patch(vm, {path: "TrustedLaunch", f"{UEFI}.secureBootEnabled": True, f"{UEFI}.vTpmEnabled": True},
                  disruptive=True, risk="The VM is deallocated and restarted; going back to Standard may not be "
                                        "possible. Take a restore point first.")


def _boot_setting(ctx: Context, leaf: str, what: str) -> None:
    """vm-3b and vm-3c: one UEFI switch, on a Trusted Launch VM or one that can become one."""
    if ctx.unreadable(VM, DISKS):
        return
    path = f"{UEFI}.{leaf}"
    for vm in _vms(ctx):
        actual = get_path(vm, path) or False
        if _trusted(vm) and actual is True:
            ctx.finding(vm["id"], "pass", path, True, True, f"{what} is on.")
            continue
        gen = hyperv_generation(vm, ctx.inv)
        if not _trusted(vm) and gen != "V2":
            ctx.fail_by_hand(vm["id"], path, actual, True, f"{what} needs Trusted Launch. " + _generation_note(gen))
            continue
        ctx.finding(vm["id"], "fail", path, actual, True, f"{what} is off.")
        change = ctx.patch(vm, {path: True}, disruptive=True,
                           risk="The VM is deallocated and restarted; unsigned kernels or drivers may not boot.")
        if not _trusted(vm):
            change.depends_on = [_trusted_launch_id(ctx, vm)]


@check("vm-3b")
def _secure_boot(ctx: Context) -> None:
    _boot_setting(ctx, "secureBootEnabled", "Secure Boot")


@check("vm-3c")
def _vtpm(ctx: Context) -> None:
    _boot_setting(ctx, "vTpmEnabled", "vTPM")


@check("vm-3d")
def _attestation(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(VM, EXTENSIONS, DISKS):
        return
    prop = "properties.type"
    for vm in _vms(ctx):
        publisher = f"Microsoft.Azure.Security.{os_type(vm)}Attestation"
        ext = find_extension(vm, inv, publisher, ["GuestAttestation"])
        if ext is not None and (get_path(ext, "properties.provisioningState") or "Succeeded") == "Succeeded":
            ctx.finding(vm["id"], "pass", prop, "GuestAttestation", "GuestAttestation",
                        "The Guest Attestation extension is installed.")
            continue
        if ext is not None:
            ctx.fail_by_hand(
                vm["id"], "properties.provisioningState",
                get_path(ext, "properties.provisioningState"), "Succeeded",
                f"The Guest Attestation extension on {vm['name']} is "
                f"{get_path(ext, 'properties.provisioningState')}: check that the VM has outbound access to "
                "the attestation service, then remove and reinstall the extension.")
            continue
        gen = hyperv_generation(vm, inv)
        boot_ready = _trusted(vm) and get_path(vm, f"{UEFI}.secureBootEnabled") and get_path(vm, f"{UEFI}.vTpmEnabled")
        if not _trusted(vm) and gen != "V2":
            ctx.fail_by_hand(vm["id"], prop, None, "GuestAttestation",
                        "Guest Attestation needs Trusted Launch with Secure Boot and vTPM. " + _generation_note(gen))
            continue
        ctx.finding(vm["id"], "fail", prop, None, "GuestAttestation", "The Guest Attestation extension is not installed.")
        change = install_extension(ctx, vm, "GuestAttestation", publisher, "GuestAttestation", "1.0",
                                   risk="Boot integrity results appear in Defender for Cloud; no restart.")
        if not boot_ready:
            deps = []
            if not _trusted(vm):
                deps.append(_trusted_launch_id(ctx, vm))
            else:
                for switch, leaf in (("vm-3b", "secureBootEnabled"), ("vm-3c", "vTpmEnabled")):
                    if get_path(vm, f"{UEFI}.{leaf}") is not True:
                        deps.append(ctx.change_id_of(vm, switch, "PATCH"))
            change.depends_on = deps


# ---- step 4: CMK and double encryption ---------------------------------------------------------

def double_sets(inv: Inventory, location: str | None) -> list[dict[str, Any]]:
    return [d for d in inv.of_type(DES) if get_path(d, "properties.encryptionType") == DOUBLE
            and (d.get("location") or "").lower() == (location or "").lower()]


def des_principal(d: dict[str, Any], inv: Inventory) -> str | None:
    """The principal id that unwraps the set's key: its user-assigned identity's, else its own."""
    ident = d.get("identity") or {}
    for uai_id, held in (ident.get("userAssignedIdentities") or {}).items():
        principal = (held or {}).get("principalId") or get_path(inv.get(uai_id) or {}, "properties.principalId")
        if principal:
            return str(principal)
    return str(ident["principalId"]) if ident.get("principalId") else None


def _des_access(ctx: Context, grants: cmk.Grants, d: dict[str, Any]) -> list[str]:
    """The grant an existing set still needs on its key's vault ([] when it has access or the vault
    is out of scope)."""
    vault = ctx.inv.get(get_path(d, "properties.activeKey.sourceVault.id"))
    principal = des_principal(d, ctx.inv)
    if vault is None or principal is None or cmk.has_key_access(ctx.inv, vault, principal):
        return []
    return [grants.need(vault, principal, f"disk encryption set {d['name']}")]


def _des_identity(identity: str) -> dict[str, Any]:
    if identity == "SystemAssigned":
        return {"type": "SystemAssigned"}
    return {"type": "UserAssigned", "userAssignedIdentities": {identity: {}}}


@check("vm-4a")
def _des(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(VM, DES, cmk.VAULT, cmk.KEY):
        return
    vms = _vms(ctx)
    prop = "properties.encryptionType"
    grants = cmk.Grants(ctx)
    for d in inv.of_type(DES):
        actual = get_path(d, prop)
        if actual != DOUBLE:
            ctx.fail_by_hand(
                d["id"], prop, actual, DOUBLE,
                f"Disk encryption set {d['name']} uses {actual}: set its encryption type to "
                f"{DOUBLE} (Disk encryption sets > {d['name']} > Encryption type) or create a new set "
                "with it, then move the disks to that set.")
            continue
        if _des_access(ctx, grants, d):
            ctx.finding(d["id"], "fail", "identity.principalId", None, "key access",
                        f"Disk encryption set {d['name']} double-encrypts, but its identity cannot get, wrap and "
                        "unwrap its key yet, so no disk can use it: the grant is proposed.")
            continue
        ctx.finding(d["id"], "pass", prop, actual, DOUBLE, "The set double-encrypts with platform and customer keys.")
    regions: dict[tuple[str, str], dict[str, Any]] = {}
    for vm in vms:
        regions.setdefault(((rid.subscription_of(vm["id"]) or "").lower(), (vm.get("location") or "").lower()), vm)
    for (sub, region), vm in sorted(regions.items()):
        if double_sets(inv, region):
            continue
        anchor = f"/subscriptions/{sub}|disk-encryption-set|{region}"  # one set per subscription and region
        vault_id, key_name = cmk.default_key(inv, region)
        p = ctx.params(anchor, name=f"des-double-{region}", keyVaultId=vault_id, keyName=key_name,
                       identity="SystemAssigned")
        rg = rid.resource_group_id(vm["id"]) or ""
        des_id = f"{rg}/providers/{DES}/{p['name']}"
        scope = f"/subscriptions/{sub}"
        flags: dict[str, Any] = dict(anchor=anchor, params=p, disruptive=True, risk=ctx.check.risk)
        if not (p["keyVaultId"] and p["keyName"]):
            ctx.finding(scope, "fail", prop, None, DOUBLE,
                        f"No double-encryption disk encryption set in {region}, and no single Key Vault key with soft "
                        f"delete and purge protection in {region} to default to. {ctx.check.instruction}")
            ctx.create(des_id, {"name": p["name"], "type": DES, "location": vm.get("location"),
                                "identity": _des_identity(p["identity"]), "properties": {"encryptionType": DOUBLE}},
                       fields={"region": region, "key": "(to choose)", "vault": "(to choose)"}, **flags)
            continue
        chosen = cmk.choose(ctx, p["keyVaultId"], p["keyName"], p["identity"], None)
        if isinstance(chosen, str):
            ctx.finding(scope, "error", prop, None, DOUBLE, chosen)
            continue
        vault, key, principal = chosen
        if (vault.get("location") or "").replace(" ", "").lower() != region:
            ctx.finding(scope, "error", prop, None, DOUBLE,
                        f"Key Vault {vault['name']} is in {vault.get('location')}; a disk encryption set in {region} "
                        "needs a vault in its own region.")
            continue
        deps = []
        if principal is not None and not cmk.has_key_access(inv, vault, principal):
            deps.append(grants.need(vault, principal, f"identity {rid.parse(p['identity']).name}"))
        then = ("" if principal is not None else
                " Its system identity exists once the set does: re-run the plan to grant it key access.")
        ctx.finding(scope, "fail", prop, None, DOUBLE,
                    f"No double-encryption disk encryption set in {region}: one with key {key['name']} of "
                    f"{vault['name']} is proposed, then disks move to it (vm-4b).{then}")
        ctx.create(des_id, {
            "name": p["name"], "type": DES, "location": vm.get("location"), "identity": _des_identity(p["identity"]),
            "properties": {"encryptionType": DOUBLE, "rotationToLatestKeyVersionEnabled": True,
                           "activeKey": {"keyUrl": cmk.key_url(vault, key), "sourceVault": {"id": vault["id"]}}}},
            fields={"region": region, "key": key["name"], "vault": vault["name"]}, depends_on=deps, **flags)
    grants.emit()


def _disks(ctx: Context) -> list[dict[str, Any]]:
    disks = ctx.inv.of_type(DISKS)
    if not disks:
        ctx.not_applicable("managed disk")
    return disks


@check("vm-4b")
def _disk_cmk(ctx: Context) -> None:
    if ctx.unreadable(DISKS, DES):
        return
    prop = "properties.encryption"
    for disk in _disks(ctx):
        enc = get_path(disk, prop) or {}
        actual = enc.get("type") or "EncryptionAtRestWithPlatformKey"
        if actual == DOUBLE and enc.get("diskEncryptionSetId"):
            ctx.finding(disk["id"], "pass", f"{prop}.type", actual, DOUBLE, "Double-encrypted with a customer-managed key.")
            continue
        sets = double_sets(ctx.inv, disk.get("location"))
        if not sets:
            ctx.fail_by_hand(
                disk["id"], f"{prop}.type", actual, DOUBLE,
                f"Disk {disk['name']} uses {actual}; there is no double-encryption disk encryption set in "
                f"{disk.get('location')} yet: create one (vm-4a), then re-run to move the disk to it.")
            continue
        ctx.finding(disk["id"], "fail", f"{prop}.type", actual, DOUBLE, f"Disk {disk['name']} uses {actual}.")
        vault = ctx.inv.get(get_path(sets[0], "properties.activeKey.sourceVault.id"))
        principal = des_principal(sets[0], ctx.inv)
        # a set whose identity cannot reach its key yet takes no disk: wait for vm-4a's grant
        waits = [cmk.grant_id("vm-4a", vault, principal)] if vault and principal and \
            not cmk.has_key_access(ctx.inv, vault, principal) else []
        ctx.patch(disk, {prop: {"type": DOUBLE, "diskEncryptionSetId": sets[0]["id"]}}, fields={"set": sets[0]["name"]},
                  disruptive=True, depends_on=waits,
                  risk="The disk's VM must be deallocated; revoking the key makes the disk unusable.")


@check("vm-4d")
def _disk_network(ctx: Context) -> None:
    for disk in _disks(ctx):
        policy = get_path(disk, "properties.networkAccessPolicy") or "AllowAll"
        public = get_path(disk, "properties.publicNetworkAccess") or "Enabled"
        actual = {"networkAccessPolicy": policy, "publicNetworkAccess": public}
        expected = {"networkAccessPolicy": "DenyAll", "publicNetworkAccess": "Disabled"}
        if policy in ("DenyAll", "AllowPrivate") and public == "Disabled":
            ctx.finding(disk["id"], "pass", "properties.networkAccessPolicy", actual, expected,
                        "The disk cannot be exported over the internet.")
            continue
        ctx.finding(disk["id"], "fail", "properties.networkAccessPolicy", actual, expected,
                    f"Export and upload are allowed ({policy}, public access {public}).")
        values = {"properties.publicNetworkAccess": "Disabled"}
        if policy not in ("DenyAll", "AllowPrivate"):
            values["properties.networkAccessPolicy"] = "DenyAll"
        ctx.patch(disk, values, risk="Disk export and SAS download workflows stop working.")


# ---- step 5: applications ----------------------------------------------------------------------

@check("vm-5a")
def _gallery_apps(ctx: Context) -> None:
    prop = "properties.applicationProfile.galleryApplications"
    for vm in _vms(ctx):
        apps = [a.get("packageReferenceId") or "" for a in get_path(vm, prop) or []]
        if not apps:
            ctx.fail_by_hand(
                vm["id"], prop, [], "apps from an approved gallery",
                f"{vm['name']} gets no applications from an Azure Compute Gallery, so what is installed on it "
                "is not controlled: publish the software it needs as VM Applications in a gallery that only "
                "approved publishers can write to, assign them to the VM (Extensions + applications > VM "
                "applications), and restrict extensions to an allow-list with the built-in policy.")
            continue
        # approved: galleries that live in the scanned subscriptions (under the same governance)
        subs = {s.lower() for s in ctx.inv.subscriptions}
        foreign = [a for a in apps if (rid.subscription_of(a) or "").lower() not in subs]
        names = [rid.parse(a).parent or a for a in apps]
        if foreign:
            ctx.finding(
                vm["id"], "manual", prop, apps, "apps from an approved gallery",
                f"{vm['name']} installs applications from galleries outside the scanned subscriptions "
                f"({', '.join(foreign)}): confirm each publisher is approved or republish the app to your own gallery.")
        else:
            ctx.finding(vm["id"], "pass", prop, apps, "apps from an approved gallery",
                        f"Applications come from {', '.join(sorted({rid.parse(n).name for n in names}))}.")


# ---- step 6: secure access ---------------------------------------------------------------------

def bastion_vnet(b: dict[str, Any]) -> str:
    for c in get_path(b, "properties.ipConfigurations") or []:
        s = get_path(c, "properties.subnet.id")
        if s:
            return rid.parse(s).parent or ""
    return ""


def neighbours(vnets: list[str], inv: Inventory) -> list[str]:
    """The VM's VNets and the VNets they reach over connected peerings (lower-cased ids)."""
    out = dict.fromkeys(v.rstrip("/").lower() for v in vnets)
    for v in vnets:
        for p in inv.children(v, PEERING):
            if (get_path(p, "properties.peeringState") or "Connected") == "Connected":
                remote = (get_path(p, "properties.remoteVirtualNetwork.id") or "").rstrip("/").lower()
                if remote:
                    out.setdefault(remote)
    return list(out)


# (the name of a Bastion that reaches the VM, or the VNet and AzureBastionSubnet a new one would
# go into, or what a person must do first)
BastionSite = tuple[str | None, tuple[dict[str, Any], dict[str, Any]] | None, str]


def bastion_site(vm: dict[str, Any], inv: Inventory) -> BastionSite:
    """Where the VM's Bastion is or would be. VMs that share networks share the answer, which is
    worked out once."""
    vnets = vm_vnet_ids(vm, inv)
    if not vnets:
        return None, None, f"{vm['name']} has no NIC in a known virtual network."
    site: BastionSite = memo(inv, ("bastion", tuple(v.lower() for v in vnets)), lambda: _bastion_site(vnets, inv))
    return site


def _bastion_site(vnets: list[str], inv: Inventory) -> BastionSite:
    near = neighbours(vnets, inv)
    for b in inv.of_type(BASTION):
        if bastion_vnet(b).rstrip("/").lower() in near:
            return b["name"], None, ""
    # where to put one: a peered hub (or the VM's own VNet) that has an AzureBastionSubnet
    own = {v.lower() for v in vnets}
    candidates = []
    for vid in sorted(near):
        v = inv.get(vid)
        if v is None:
            continue
        sub = next((s for s in inv.children(v["id"], SUBNET) if s["name"].lower() == "azurebastionsubnet"), None)
        if sub is not None:
            candidates.append((vid in own, v, sub))
    if not candidates:
        hubs = [r["name"] for r in (inv.get(v) for v in sorted(near) if v not in own) if r]
        where = f"hub VNet {hubs[0]}" if hubs else f"VNet {rid.parse(vnets[0]).name}"
        return None, None, (f"Add a subnet named AzureBastionSubnet (/26 or larger) to {where}, then re-run to "
                            "deploy Bastion there; the address range is yours to choose.")
    candidates.sort(key=lambda c: c[0])  # prefer a peered hub over the VM's own VNet
    _own, vnet, subnet = candidates[0]
    return None, (vnet, subnet), ""


def bastion_anchor(subnet: dict[str, Any]) -> str:
    """What a proposed Bastion is for: the AzureBastionSubnet it goes into (one per subnet)."""
    return subnet["id"]


def propose_bastion(ctx: Context, vnet: dict[str, Any], subnet: dict[str, Any]) -> None:
    """The public IP and the Bastion host in `subnet`, proposed once however many VMs they serve."""
    anchor = bastion_anchor(subnet)
    if proposed(ctx, ctx.create_id(anchor)):
        return
    rg = rid.resource_group_id(vnet["id"])
    base = vnet["name"][5:] if vnet["name"].lower().startswith("vnet-") else vnet["name"]
    ip = ctx.params(f"{anchor}|public-ip", publicIpName=f"pip-bas-{base}")
    pip_id = f"{rg}/providers/{PUBLIC_IP}/{ip['publicIpName']}"
    pip = ctx.create(pip_id, {
        "name": ip["publicIpName"], "type": PUBLIC_IP, "location": vnet.get("location"), "sku": {"name": "Standard"},
        "properties": {"publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4"}},
        anchor=f"{anchor}|public-ip", params=ip, billable=True,
        title=f"Create public IP {ip['publicIpName']} for Bastion", risk="Billed per hour.")
    p = ctx.params(anchor, name=f"bas-{base}", sku="Basic")
    bas = ctx.create(f"{rg}/providers/{BASTION}/{p['name']}", {
        "name": p["name"], "type": BASTION, "location": vnet.get("location"), "sku": {"name": p["sku"]},
        "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {
            "subnet": {"id": subnet["id"]}, "publicIPAddress": {"id": pip_id}}}]}},
        anchor=anchor, params=p, fields={"vnet": vnet["name"]}, billable=True,
        risk="Billed per hour plus outbound data; deployment takes several minutes.")
    bas.depends_on = [pip.id]


@check("vm-6a")
def _bastion(ctx: Context) -> None:
    if ctx.unreadable(VM, BASTION, VNET, NIC):
        return
    prop = "properties.ipConfigurations"
    for vm in _vms(ctx):
        name, site, reason = bastion_site(vm, ctx.inv)
        if name:
            ctx.finding(vm["id"], "pass", prop, name, "reachable", f"Reachable through Bastion {name}.")
        elif site:
            ctx.finding(vm["id"], "fail", prop, None, "reachable", f"No Bastion reaches {vm['name']}'s network.")
            propose_bastion(ctx, *site)
        else:
            ctx.fail_by_hand(vm["id"], prop, None, "reachable",
                        f"No Bastion reaches {vm['name']}'s network. {reason}")


def _bastion_deps(ctx: Context, vm: dict[str, Any] | None) -> list[str]:
    """Closing direct access waits for the Bastion vm-6a would create, so admins keep a way in."""
    if vm is None:
        return []
    _name, site, _ = bastion_site(vm, ctx.inv)
    return [ctx.create_id(bastion_anchor(site[1]), "vm-6a")] if site else []


@check("vm-6b")
def _public_ips(ctx: Context) -> None:
    nics = ctx.inv.of_type(NIC)
    if not nics:
        ctx.not_applicable("network interface")
        return
    prop = "properties.ipConfigurations"
    for nic in nics:
        pips = [get_path(c, "properties.publicIPAddress.id") for c in get_path(nic, prop) or []
                if get_path(c, "properties.publicIPAddress.id")]
        if not pips:
            ctx.finding(nic["id"], "pass", f"{prop}.publicIPAddress", None, None, "No public IP on the interface.")
            continue
        ctx.finding(nic["id"], "fail", f"{prop}.publicIPAddress", pips, None,
                    f"Interface {nic['name']} has public IP {', '.join(rid.parse(p).name for p in pips)}.")

        def mutate(body: dict[str, Any]) -> None:
            for c in get_path(body, prop) or []:
                (c.get("properties") or {}).pop("publicIPAddress", None)

        change = ctx.put_mutated(nic, mutate, [prop], disruptive=True,
                                 risk="Direct RDP/SSH and any internet-facing service on that IP stop; "
                                      "the public IP resource itself is kept.")
        change.depends_on = _bastion_deps(ctx, ctx.inv.get(get_path(nic, "properties.virtualMachine.id")))


@check("vm-6c")
def _mgmt_ports(ctx: Context) -> None:
    if ctx.unreadable(VM, NSG, NIC, VNET):
        return
    prop = "properties.securityRules"
    for vm in _vms(ctx):
        hits = open_rules(vm, ctx.inv)
        if not hits:
            ctx.finding(vm["id"], "pass", prop, [], [], "No NSG rule opens 22 or 3389 to the internet.")
            continue
        # name the rule that admits the traffic and the NSG it sits in: that is what gets narrowed
        desc = "; ".join(f"rule {r['name']} of NSG {rid.parse(rid.parse(r['id']).parent or '').name} admits "
                         f"{', '.join(map(str, p))}" for r, p in hits)
        choices = {r["id"].lower(): ctx.update_params(r, fix="narrow")["fix"] for r, _ in hits}
        by: Remediation = "create" if all(c == "deny-above" for c in choices.values()) else "auto"
        ctx.finding(vm["id"], "fail", prop, [r["id"] for r, _ in hits], [], f"Open to the internet: {desc}.",
                    remediation=by)
        for rule, ports in hits:
            params = ctx.update_params(rule, fix="narrow")
            change = proposed(ctx, ctx.change_id_of(rule)) or (
                deny_above(ctx, rule, ports, params) if params["fix"] == "deny-above" else narrow_rule(
                    ctx, rule, disruptive=True, params=params,
                    risk="Direct RDP/SSH from the internet stops; use Bastion or JIT instead."))
            for d in _bastion_deps(ctx, vm):
                if d not in change.depends_on:
                    change.depends_on.append(d)


@check("vm-6d")
def _entra_login(ctx: Context) -> None:
    if ctx.unreadable(VM, EXTENSIONS):
        return
    prop = "properties.type"
    for vm in _vms(ctx):
        ext_type = "AADLoginForWindows" if os_type(vm) == "Windows" else "AADSSHLoginForLinux"
        if find_extension(vm, ctx.inv, "Microsoft.Azure.ActiveDirectory", [ext_type]) is not None:
            ctx.finding(vm["id"], "pass", prop, ext_type, ext_type, f"{ext_type} is installed.")
            continue
        ctx.finding(vm["id"], "fail", prop, None, ext_type,
                    f"{ext_type} is not installed, so sign-in cannot use Entra ID and MFA.")
        change = install_extension(ctx, vm, ext_type, "Microsoft.Azure.ActiveDirectory", ext_type, "1.0",
                                   risk="Users also need a VM login role; needs outbound access to Entra ID.")
        if not has_system_identity(vm):
            change.depends_on = [ctx.change_id_of(vm, "vm-2c", "PATCH")]


@check("vm-6e")
def _conditional_access(ctx: Context) -> None:
    if _vms(ctx):
        ctx.finding(
            ctx.scope(), "manual", "", None, None,
            "Conditional Access lives in Entra ID, not ARM: in the Entra admin center (Protection > "
            "Conditional Access) require MFA and a compliant device for the 'Azure Windows VM Sign-In' and "
            "'Azure Linux VM Sign-In' apps, scoped to the groups holding VM login roles, and have admins "
            "connect from privileged access workstations.")


# ---- step 7: maintenance -----------------------------------------------------------------------

@check("vm-7a")
def _antimalware(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(VM, EXTENSIONS):
        return
    windows = [vm for vm in inv.of_type(VM) if os_type(vm) == "Windows"]
    if not windows:
        ctx.not_applicable("Windows virtual machine")
        return
    prop = "properties.autoUpgradeMinorVersion"
    for vm in windows:
        ext = find_extension(vm, inv, "Microsoft.Azure.Security", ["IaaSAntimalware"])
        mde = find_extension(vm, inv, "Microsoft.Azure.AzureDefenderForServers", ["MDE.Windows"])
        if ext is None and mde is not None:
            ctx.finding(vm["id"], "pass", "properties.type", "MDE.Windows", "IaaSAntimalware",
                        "Defender for Endpoint protects the VM; a second engine is not wanted.")
            continue
        if ext is not None and get_path(ext, prop) is True:
            ctx.finding(vm["id"], "pass", prop, True, True, "Microsoft Antimalware is installed and updates itself.")
            continue
        if ext is not None:
            ctx.finding(vm["id"], "fail", prop, get_path(ext, prop), True,
                        "Microsoft Antimalware does not update its engine automatically.")
            ctx.put(ext, {prop: True}, title=f"Let Microsoft Antimalware on {vm['name']} update itself",
                    risk="Minor engine updates install without asking.")
            continue
        ctx.finding(vm["id"], "fail", "properties.type", None, "IaaSAntimalware", "No antimalware extension is installed.")
        install_extension(
            ctx, vm, "IaaSAntimalware", "Microsoft.Azure.Security", "IaaSAntimalware", "1.3",
            settings={"AntimalwareEnabled": True, "RealtimeProtectionEnabled": "true",
                      "ScheduledScanSettings": {"isEnabled": "true", "day": "7", "time": "120", "scanType": "Quick"}},
            risk="Avoid a second antivirus engine; with Defender for Servers, MDE is the usual route.")


def _patch_setting(ctx: Context, leaf: str, fix_values: dict[str, Any], defaults: dict[str, str],
                   fix_extra: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
    """vm-7b and vm-7c: one patchSettings value, under the osProfile section of the VM's OS."""
    for vm in _vms(ctx):
        base = f"{os_config_path(vm)}.patchSettings"
        path = f"{base}.{leaf}"
        actual = get_path(vm, path) or defaults[os_type(vm)]
        if actual == "AutomaticByPlatform":
            ctx.finding(vm["id"], "pass", path, actual, "AutomaticByPlatform", f"{leaf} is AutomaticByPlatform.")
            continue
        ctx.finding(vm["id"], "fail", path, actual, "AutomaticByPlatform", f"{leaf} is {actual}.")
        values = {f"{base}.{k}": v for k, v in fix_values.items()}
        if fix_extra is not None:
            values.update(fix_extra(vm))
        ctx.patch(vm, values, risk=ctx.check.risk)


@check("vm-7b")
def _assessment_mode(ctx: Context) -> None:
    _patch_setting(ctx, "assessmentMode", {"assessmentMode": "AutomaticByPlatform"},
                   {"Windows": "ImageDefault", "Linux": "ImageDefault"})


def _windows_updates_on(vm: dict[str, Any]) -> dict[str, Any]:
    """Platform patching of Windows needs Windows' own automatic updates on."""
    return {f"{os_config_path(vm)}.enableAutomaticUpdates": True} if os_type(vm) == "Windows" else {}


@check("vm-7c")
def _patch_mode(ctx: Context) -> None:
    _patch_setting(ctx, "patchMode", {"patchMode": "AutomaticByPlatform",
                                      "automaticByPlatformSettings.rebootSetting": "IfRequired"},
                   {"Windows": "AutomaticByOS", "Linux": "ImageDefault"}, _windows_updates_on)


def power_state(vm: dict[str, Any]) -> str | None:
    """`running`, `deallocated`, … from the instance view's PowerState status; None when unread."""
    for st in get_path(vm, "properties.instanceView.statuses") or []:
        code = str(st.get("code") or "")
        if code.lower().startswith("powerstate/"):
            return code.split("/", 1)[1].lower()
    return None


@check("vm-7d")
def _vm_agent(ctx: Context) -> None:
    """Judged from what the guest agent reports in `GET {vm}/instanceView` (the inventory attaches it
    as properties.instanceView): a missing property is no evidence either way."""
    for vm in _vms(ctx):
        cfg = os_config_path(vm)
        view = get_path(vm, "properties.instanceView")
        statuses = get_path(view or {}, "vmAgent.statuses") or []
        shown = [s.get("displayStatus") for s in statuses]
        prop = "properties.instanceView.vmAgent.statuses"
        if get_path(vm, f"{cfg}.provisionVMAgent") is False:
            ctx.fail_by_hand(
                vm["id"], f"{cfg}.provisionVMAgent", False, True,
                f"{vm['name']} was deployed without the VM agent, so extensions and platform patching cannot "
                "run: install the Azure VM agent inside the guest (the Windows MSI or the walinuxagent package), "
                "then set osProfile provisionVMAgent = true.")
        elif statuses and "Ready" in shown:
            version = get_path(view, "vmAgent.vmAgentVersion")
            ctx.finding(vm["id"], "pass", prop, shown, ["Ready"],
                        "The VM agent reports Ready" + (f" (version {version})." if version else "."))
        elif statuses:
            ctx.fail_by_hand(
                vm["id"], prop, shown, ["Ready"],
                f"The VM agent on {vm['name']} reports {', '.join(map(str, shown))}: check that the guest is "
                "running, that the agent service (WindowsAzureGuestAgent / walinuxagent) is started, and that "
                "it can reach 168.63.129.16; update the agent if it is old.")
        else:
            power = power_state(vm)
            why = (f"{vm['name']} is {power}, so its agent reports nothing: start it and re-run the plan"
                   if power and power != "running" else
                   f"The instance view of {vm['name']} carries no VM agent status"
                   + (" (it could not be read)" if view is None else "")
                   + ": open the VM's Properties > Agent status (or `az vm get-instance-view`) and check it "
                     "says Ready")
            ctx.finding(vm["id"], "manual", prop, None, ["Ready"],
                        f"{why}; an agent that is not Ready blocks extensions and platform patching.")


# ---- step 8: Defender for Servers --------------------------------------------------------------

def servers_plan_ok(p: dict[str, Any]) -> bool:
    exts = {(e.get("name") or "").lower(): e for e in get_path(p, "properties.extensions") or []}
    agentless = exts.get("agentlessvmscanning")
    return get_path(p, "properties.pricingTier") == "Standard" and get_path(p, "properties.subPlan") == "P2" \
        and agentless is not None and is_true(agentless.get("isEnabled"))


def _subscriptions(ctx: Context) -> list[str]:
    subs = list(ctx.inv.subscriptions)
    if not subs:
        ctx.not_applicable("subscription")
    return subs


@check("vm-8a")
def _servers_plan(ctx: Context) -> None:
    for sub in _subscriptions(ctx):
        p = pricing(ctx.inv, sub, "VirtualMachines")
        actual = {"pricingTier": get_path(p, "properties.pricingTier"), "subPlan": get_path(p, "properties.subPlan")}
        expected = {"pricingTier": "Standard", "subPlan": "P2", "AgentlessVmScanning": True}
        if servers_plan_ok(p):
            ctx.finding(p["id"], "pass", "properties.pricingTier", actual, expected,
                        "Defender for Servers Plan 2 with agentless scanning is on.")
            continue
        ctx.finding(p["id"], "fail", "properties.pricingTier", actual, expected,
                    f"Defender for Servers is {actual['pricingTier']}"
                    f"{' ' + actual['subPlan'] if actual['subPlan'] else ''}; Plan 2 with "
                    "agentless scanning is expected.")
        exts = [copy.deepcopy(e) for e in get_path(p, "properties.extensions") or []
                if (e.get("name") or "").lower() != "agentlessvmscanning"]
        exts.append({"name": "AgentlessVmScanning", "isEnabled": "True"})
        ctx.put(p, {"properties.pricingTier": "Standard", "properties.subPlan": "P2", "properties.extensions": exts},
                fields={"sub": sub}, billable=True, risk="Billed per server-hour; undo sets the plan back to Free.")


@check("vm-8b")
def _mde(ctx: Context) -> None:
    for sub in _subscriptions(ctx):
        sid = f"/subscriptions/{sub}/providers/{SETTINGS}/WDATP"
        setting = ctx.inv.get(sid)
        actual = get_path(setting or {}, "properties.enabled")
        if actual is True:
            ctx.finding(sid, "pass", "properties.enabled", True, True, "Defender for Endpoint integration is on.")
            continue
        ctx.finding(sid, "fail", "properties.enabled", actual, True, "Defender for Endpoint integration is off.")
        res = setting or {"id": sid, "name": "WDATP", "type": SETTINGS, "kind": "DataExportSettings", "properties": {}}
        values: dict[str, Any] = {"properties.enabled": True}
        if not res.get("kind"):
            values["kind"] = "DataExportSettings"
        ctx.put(res, values, fields={"sub": sub}, billable=True,
                risk="Deploys the Defender for Endpoint agent to the machines (licensed through Defender for Servers).")


def _jit_covers(policy: dict[str, Any], vm_id: str, ports: Iterable[int]) -> bool:
    for entry in get_path(policy, "properties.virtualMachines") or []:
        if rid.same(entry.get("id"), vm_id):
            numbers = {int(p.get("number", 0)) for p in entry.get("ports") or []}
            return all(p in numbers for p in ports)
    return False


JIT_DURATION = "PT3H"


def _jit_entry(vm_id: str, ports: Iterable[int], duration: str = JIT_DURATION) -> dict[str, Any]:
    return {"id": vm_id, "ports": [{"number": p, "protocol": "*", "allowedSourceAddressPrefix": "*",
                                    "maxRequestAccessDuration": duration} for p in sorted(set(ports))]}


def exposes_management_ports(sub: dict[str, Any], inv: Inventory) -> bool:
    """vm-8c reads a subscription's JIT policies only when one of its VMs has a management port
    open to the internet (the only VMs whose verdict or change looks at a policy)."""
    by_sub = memo(inv, "vms_by_subscription", lambda: _vms_by_subscription(inv))
    return any(open_rules(vm, inv) for vm in by_sub.get(str(sub["name"]).lower(), []))


def _vms_by_subscription(inv: Inventory) -> dict[str, list[dict[str, Any]]]:
    index: dict[str, list[dict[str, Any]]] = {}
    for vm in inv.of_type(VM):
        index.setdefault((rid.subscription_of(vm["id"]) or "").lower(), []).append(vm)
    return index


def _jit_by_rg(inv: Inventory) -> dict[str, list[dict[str, Any]]]:
    index: dict[str, list[dict[str, Any]]] = {}
    for p in inv.of_type(JIT):
        index.setdefault((rid.resource_group_id(p["id"]) or "").lower(), []).append(p)
    return index


def _rule_names(hits: list[tuple[dict[str, Any], list[int]]]) -> str:
    """`nsg/rule` of each rule that admits the traffic, for the finding."""
    names = [f"{rid.parse(rid.parse(r['id']).parent or '').name}/{r['name']}" for r, _p in hits]
    return ("rule " if len(names) == 1 else "rules ") + ", ".join(names)


@check("vm-8c")
def _jit(ctx: Context) -> None:
    inv = ctx.inv
    if ctx.unreadable(VM, JIT, NSG, NIC, VNET):
        return
    prop = "properties.virtualMachines"
    groups: dict[tuple[str, str], list[tuple[dict[str, Any], list[int]]]] = {}
    for vm in _vms(ctx):
        hits = open_rules(vm, inv)
        ports = sorted({p for _r, ps in hits for p in ps})
        rg = rid.resource_group_id(vm["id"]) or ""
        policies = memo(inv, "jit_by_rg", lambda: _jit_by_rg(inv)).get(rg.lower(), [])
        if not ports:
            ctx.finding(vm["id"], "pass", prop, None, None, "No management port is exposed to the internet.")
        elif any(_jit_covers(p, vm["id"], ports) for p in policies):
            # JIT adds its deny rules below the allow rules already there: they keep winning. The fix
            # is vm-6c's (closing the rule), so a person is pointed there
            ctx.fail_by_hand(vm["id"], prop, ports, ports,
                        f"Just-in-time access covers ports {', '.join(map(str, ports))}, but {_rule_names(hits)} "
                        "still allows them from the internet, and JIT does not override existing allow rules: "
                        "close those rules (vm-6c) so only approved JIT requests open the ports.")
        else:
            ctx.finding(vm["id"], "fail", prop, None, ports,
                        f"Ports {', '.join(map(str, ports))} are exposed without just-in-time access "
                        f"({_rule_names(hits)} allows them from the internet).")
            groups.setdefault((rg, (vm.get("location") or "").lower()), []).append((vm, ports))
    for (rg, location), members in groups.items():
        plan = pricing(inv, rid.subscription_of(rg) or "", "VirtualMachines")
        existing = next((p for p in memo(inv, "jit_by_rg", lambda: _jit_by_rg(inv)).get(rg.lower(), [])
                         if (p.get("location") or rid.parse(rid.parse(p["id"]).parent or "").name).lower() == location),
                        None)
        flags: dict[str, Any] = dict(disruptive=True, fields={"vms": ", ".join(vm["name"] for vm, _ in members)},
                                     risk=ctx.check.risk)
        if existing is not None:
            def mutate(body: dict[str, Any], members: list[tuple[dict[str, Any], list[int]]] = members) -> None:
                lst = body.setdefault("properties", {}).setdefault("virtualMachines", [])
                lst[:] = [e for e in lst if not any(rid.same(e.get("id"), vm["id"]) for vm, _ in members)]
                lst.extend(_jit_entry(vm["id"], ports) for vm, ports in members)

            change = ctx.put_mutated(existing, mutate, [prop], **flags)
        else:
            anchor = f"{rg}|{location}"  # one policy per resource group and region
            p = ctx.params(anchor, maxRequestAccessDuration=JIT_DURATION)
            jid = f"{rg}/providers/Microsoft.Security/locations/{location}/{JIT.rsplit('/', 1)[-1]}/default"
            change = ctx.create(jid, {
                "name": "default", "type": JIT, "kind": "Basic", "location": location,
                "properties": {"virtualMachines": [_jit_entry(vm["id"], ports, p["maxRequestAccessDuration"])
                                                   for vm, ports in members]}},
                anchor=anchor, params=p, **flags)
        # JIT is a Defender for Servers Plan 2 feature: it waits for vm-8a
        change.depends_on = [] if servers_plan_ok(plan) else [ctx.change_id_of(plan, "vm-8a")]


@check("vm-8d")
def _assessments(ctx: Context) -> None:
    """Defender's own verdicts on the VM; advisory, since each one has its own remediation."""
    if ctx.unreadable(VM, ASSESSMENT):
        return
    prop = "properties.status.code"
    for vm in _vms(ctx):
        found = list(ctx.inv.children(vm["id"], ASSESSMENT))
        if not found:
            ctx.finding(
                vm["id"], "manual", prop, None, "Healthy",
                f"Defender for Cloud has no assessments for {vm['name']}: turn on Defender for Servers (vm-8a) "
                "and give it a day to assess, then review Recommendations for the VM.")
            continue
        bad = [a for a in found if (get_path(a, prop) or "") not in ("Healthy", "NotApplicable")]
        if not bad:
            ctx.finding(vm["id"], "pass", prop, "Healthy", "Healthy",
                        f"All {len(found)} Defender for Cloud assessments are healthy.")
            continue
        names = [get_path(a, "properties.displayName") or VM_ASSESSMENTS.get(a["name"].lower(), a["name"]) for a in bad]
        ctx.fail_by_hand(
            vm["id"], prop, [get_path(a, prop) for a in bad], "Healthy",
            f"Unhealthy in Defender for Cloud: {'; '.join(names)}. Open Recommendations for {vm['name']} and "
            "follow each remediation (e.g. deploy the vulnerability scanner, install missing updates).")


STEPS = article_steps(__name__)
