"""Whether a port of a VM is open to the internet, as Azure evaluates network security groups.

Inbound traffic passes the NSG of the NIC's subnet, then the NSG of the NIC; each NSG takes its
rules in priority order (lowest number first), the first rule matching the traffic decides, and
the platform's default rules (AllowVnetInBound, AllowAzureLoadBalancerInBound, DenyAllInBound)
come last. A port is open only when every NSG on the path allows it and at least one of them
allows it by a rule of its own (with no NSG at all, nothing here names a rule to narrow: spoke-3a
and vm-6b judge that case).

A rule matches internet traffic when its source is `*`, `Internet`, `0.0.0.0/0` or `Any` (alone
or in a list); a rule naming other sources (a CIDR, a service tag, an ASG) admits or denies only
part of the internet, so it neither opens a port to the internet nor closes it. A rule applies to
the VM when its destination is `*`/`Any`/`Internet`/`VirtualNetwork`/`0.0.0.0/0`, a prefix
holding one of the NIC's addresses, or an application security group the NIC is in. When the
NIC's address is not known, an allow is taken to apply and a deny is not: an unknown can open a
port but never closes one."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ztwizard.armjson import get_path
from ztwizard.inventory import Inventory

from .common import NSG_RULE

INTERNET_SOURCES = frozenset({"*", "internet", "0.0.0.0/0", "any"})
# Destinations that hold every VM address (a NIC's private IP is in its VNet's space).
EVERY_VM = frozenset({"*", "any", "internet", "virtualnetwork", "0.0.0.0/0"})
PROTOCOLS = ("Tcp", "Udp")  # RDP also listens on UDP 3389

# The platform's inbound defaults, the same in every NSG; none admits internet traffic.
DEFAULT_INBOUND: tuple[dict[str, Any], ...] = tuple(
    {"name": name, "id": "", "properties": {
        "priority": priority, "direction": "Inbound", "access": access, "protocol": "*",
        "sourceAddressPrefix": source, "destinationAddressPrefix": dest, "destinationPortRange": "*"}}
    for name, priority, access, source, dest in (
        ("AllowVnetInBound", 65000, "Allow", "VirtualNetwork", "VirtualNetwork"),
        ("AllowAzureLoadBalancerInBound", 65001, "Allow", "AzureLoadBalancer", "*"),
        ("DenyAllInBound", 65500, "Deny", "*", "*")))


@dataclass(frozen=True)
class Target:
    """One IP configuration of a NIC: what inbound traffic to the VM arrives at."""

    nic: dict[str, Any]
    subnet_nsg: dict[str, Any] | None
    nic_nsg: dict[str, Any] | None
    addresses: tuple[str, ...]  # private and public IPs that are known
    asgs: frozenset[str]  # lower-cased ASG ids

    def nsgs(self) -> list[dict[str, Any]]:
        """The NSGs on the inbound path, in the order they filter: the subnet's, then the NIC's."""
        return [n for n in (self.subnet_nsg, self.nic_nsg) if n is not None]


@dataclass(frozen=True)
class Opening:
    """A port open to the internet on one NIC, with the rule of each NSG on the path that admits it."""

    port: int
    protocol: str
    nic: dict[str, Any]
    admitted_by: tuple[tuple[dict[str, Any], dict[str, Any]], ...]  # (nsg, rule), path order


def port_ranges(rule: dict[str, Any]) -> list[tuple[int, int]]:
    """Destination port ranges of a rule: a single value, a range `20-25`, a list, or `*`."""
    raw = [get_path(rule, "properties.destinationPortRange")] + list(
        get_path(rule, "properties.destinationPortRanges") or [])
    out = []
    for r in raw:
        r = str(r or "").strip()
        if r == "*" or r.lower() == "any":
            out.append((0, 65535))
            continue
        lo, _, hi = r.partition("-")
        try:
            out.append((int(lo), int(hi or lo)))
        except ValueError:
            continue  # not a port ARM would accept; it opens nothing
    return out


def sources(rule: dict[str, Any]) -> list[str]:
    raw = [get_path(rule, "properties.sourceAddressPrefix")] + list(
        get_path(rule, "properties.sourceAddressPrefixes") or [])
    return [s for s in raw if s]


def from_internet(rule: dict[str, Any]) -> bool:
    return any(s.lower() in INTERNET_SOURCES for s in sources(rule))


def _covers_port(rule: dict[str, Any], port: int) -> bool:
    return any(a <= port <= b for a, b in port_ranges(rule))


def _covers_protocol(rule: dict[str, Any], protocol: str) -> bool:
    return str(get_path(rule, "properties.protocol") or "*").lower() in ("*", "any", protocol.lower())


def _in_prefix(address: str, prefix: str) -> bool | None:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        return None  # a service tag or something unparsable


def applies_to(rule: dict[str, Any], target: Target) -> bool | None:
    """Whether the rule's destination holds the VM: True, False, or None when the NIC's address
    is not known and only a prefix would tell."""
    asgs = [str(a.get("id", "")).lower() for a in get_path(rule, "properties.destinationApplicationSecurityGroups") or []]
    if asgs:
        return any(a in target.asgs for a in asgs)
    prefixes = [get_path(rule, "properties.destinationAddressPrefix")] + list(
        get_path(rule, "properties.destinationAddressPrefixes") or [])
    prefixes = [str(p) for p in prefixes if p]
    if not prefixes or any(p.lower() in EVERY_VM for p in prefixes):
        return True
    cidrs = [p for p in prefixes if _in_prefix("0.0.0.0", p) is not None]
    if not cidrs:
        return False  # other service tags (Storage, AzureCloud…) hold no VM
    if not target.addresses:
        return None
    return any(_in_prefix(a, p) for a in target.addresses for p in cidrs)


def inbound_rules(nsg: dict[str, Any], inv: Inventory) -> list[dict[str, Any]]:
    """The NSG's inbound rules in evaluation order, the platform defaults last."""
    own = [r for r in inv.children(nsg["id"], NSG_RULE)
           if str(get_path(r, "properties.direction") or "").lower() == "inbound"]
    own.sort(key=lambda r: int(get_path(r, "properties.priority") or 0))
    return [*own, *DEFAULT_INBOUND]


def decide(nsg: dict[str, Any], inv: Inventory, target: Target, port: int,
           protocol: str, rules: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The rule of `nsg` that decides internet traffic to `port`: the first that matches it
    (`rules`: the NSG's inbound_rules, when the caller has them already)."""
    for rule in inbound_rules(nsg, inv) if rules is None else rules:
        if not (from_internet(rule) and _covers_port(rule, port) and _covers_protocol(rule, protocol)):
            continue
        allow = str(get_path(rule, "properties.access") or "").lower() == "allow"
        applies = applies_to(rule, target)
        if applies or (applies is None and allow):  # an unknown opens, never closes
            return rule
    return DEFAULT_INBOUND[-1]


def allows(rule: dict[str, Any]) -> bool:
    return str(get_path(rule, "properties.access") or "").lower() == "allow"


def targets(nics: Iterable[dict[str, Any]], inv: Inventory) -> list[Target]:
    out = []
    for nic in nics:
        nic_nsg = inv.get(get_path(nic, "properties.networkSecurityGroup.id") or "")
        for cfg in get_path(nic, "properties.ipConfigurations") or []:
            subnet = inv.get(get_path(cfg, "properties.subnet.id") or "")
            subnet_nsg = inv.get(get_path(subnet or {}, "properties.networkSecurityGroup.id") or "")
            addresses = [get_path(cfg, "properties.privateIPAddress")]
            pip = inv.get(get_path(cfg, "properties.publicIPAddress.id") or "")
            addresses.append(get_path(pip or {}, "properties.ipAddress"))
            asgs = {str(a.get("id", "")).lower() for a in get_path(cfg, "properties.applicationSecurityGroups") or []}
            out.append(Target(nic, subnet_nsg, nic_nsg, tuple(a for a in addresses if a), frozenset(asgs)))
    return out


def openings(nics: Iterable[dict[str, Any]], inv: Inventory, ports: Iterable[int]) -> list[Opening]:
    """Every (port, protocol, NIC) that internet traffic reaches, with the rules that admit it."""
    out = []
    for target in targets(nics, inv):
        path = target.nsgs()
        if not path:
            continue
        ordered = [(nsg, inbound_rules(nsg, inv)) for nsg in path]  # once per NSG, not per port
        for port in ports:
            for protocol in PROTOCOLS:
                decided = [(nsg, decide(nsg, inv, target, port, protocol, rules)) for nsg, rules in ordered]
                if all(allows(rule) for _nsg, rule in decided):
                    out.append(Opening(port, protocol, target.nic, tuple(decided)))
    return out


def admitting_rules(openings_: Iterable[Opening]) -> list[tuple[dict[str, Any], list[int]]]:
    """Each rule that admits internet traffic, with the ports it admits, in a stable order."""
    found: dict[str, tuple[dict[str, Any], set[int]]] = {}
    for o in openings_:
        for _nsg, rule in o.admitted_by:
            if rule.get("id"):  # a platform default never admits internet traffic
                found.setdefault(rule["id"].lower(), (rule, set()))[1].add(o.port)
    return [(rule, sorted(ports)) for _k, (rule, ports) in sorted(found.items())]

