"""The rules a create's editable parameters must follow, named so the catalog's data can cite them.

A rule turns the text a person typed into the value the builder uses, or says in one sentence
what the text breaks. Name rules follow ARM's own per-type limits (arm-platform.md §3), so a bad
name is refused here instead of by a 400 `InvalidResourceName` after other changes were applied.
Rules are written `kind` or `kind:argument` (`name:networkSecurityGroups`, `int:1..100000`,
`enum:Detection|Prevention`)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ztwizard.resource_id import parse as parse_id


class RuleError(ValueError):
    """The value breaks the rule; the message completes "… is not …"."""


@dataclass(frozen=True)
class NameRule:
    what: str
    low: int
    high: int
    pattern: str
    explains: str

    def check(self, value: str) -> str:
        if not (self.low <= len(value) <= self.high and re.fullmatch(self.pattern, value)):
            raise RuleError(f"a valid {self.what} name: {self.explains}")
        return value


_NETWORK = r"[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9_])?"
_NETWORK_TEXT = "1-80 letters, digits, '_', '.', '-', starting with a letter or digit and not ending in '.' or '-'"

# ARM name rules per resource type (the last segment of the type, as ARM spells it).
NAME_RULES: dict[str, NameRule] = {
    "networkSecurityGroups": NameRule("network security group", 1, 80, _NETWORK, _NETWORK_TEXT),
    "routeTables": NameRule("route table", 1, 80, _NETWORK, _NETWORK_TEXT),
    "applicationSecurityGroups": NameRule("application security group", 1, 80, _NETWORK, _NETWORK_TEXT),
    "privateEndpoints": NameRule("private endpoint", 1, 64, r"[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9_])?",
                                 "1-64 letters, digits, '_', '.', '-', starting with a letter or digit"),
    "storageAccounts": NameRule("storage account", 3, 24, r"[a-z0-9]+", "3-24 lower-case letters and digits"),
    "firewallPolicies": NameRule("firewall policy", 1, 80, _NETWORK, _NETWORK_TEXT),
    "metricAlerts": NameRule("metric alert", 1, 260, r"[^*#&+:<>?@%{}\\/]+",
                             "1-260 characters, none of * # & + : < > ? @ % { } \\ /"),
}


def _name(arg: str, value: str) -> str:
    rule = NAME_RULES.get(arg)
    if rule is None:
        raise KeyError(f"no name rule for {arg!r}")
    return rule.check(value)


def _ipv4(_arg: str, value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise RuleError("an IPv4 address (four numbers 0-255 separated by dots)") from None


def _resource_id(arg: str, value: str) -> str:
    parsed = parse_id(value)
    if not value.startswith("/subscriptions/") or not parsed.name or " " in value \
            or (arg and parsed.type.lower() != arg.lower()):
        raise RuleError(f"the id of a {arg or 'resource'} (/subscriptions/…/providers/{arg or '…'}/…)")
    return value


def _int(arg: str, value: str) -> int:
    low, _, high = arg.partition("..")
    try:
        n = int(value)
    except ValueError:
        raise RuleError(f"a whole number from {low} to {high}") from None
    if not int(low) <= n <= int(high):
        raise RuleError(f"a whole number from {low} to {high}")
    return n


def _enum(arg: str, value: str) -> str:
    choices = arg.split("|")
    for c in choices:
        if c.lower() == value.lower():
            return c
    raise RuleError(f"one of {', '.join(choices)}")


_DURATION = re.compile(r"P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?")


def _duration(_arg: str, value: str) -> str:
    if not _DURATION.fullmatch(value):
        raise RuleError("an ISO 8601 duration such as PT3H or P1D")
    return value


def _text(_arg: str, value: str) -> str:
    if not value.strip():
        raise RuleError("empty")
    return value


RULES: dict[str, Callable[[str, str], Any]] = {
    "name": _name, "ipv4": _ipv4, "resource-id": _resource_id, "int": _int, "enum": _enum,
    "duration": _duration, "text": _text,
}


def known_rule(rule: str) -> bool:
    kind, _, arg = rule.partition(":")
    if kind not in RULES:
        return False
    if kind == "name":
        return arg in NAME_RULES
    if kind == "int":
        low, sep, high = arg.partition("..")
        return bool(sep) and low.lstrip("-").isdigit() and high.lstrip("-").isdigit()
    if kind == "enum":
        return bool(arg)
    return True


def coerce(rule: str, value: Any) -> Any:
    """The value `rule` admits for `value` (text or already typed), or RuleError."""
    kind, _, arg = rule.partition(":")
    return RULES[kind](arg, str(value).strip())


# ---- vm article -----------------------------------------------------------------------------
# The Bastion host and its public IP follow the network name pattern (1-80 characters). A VM
# extension's handler version is major.minor ("1.0"); anything else is refused by the extension
# handler, and only after the VM was touched.
NAME_RULES.update({
    "bastionHosts": NameRule("Bastion host", 1, 80, _NETWORK, _NETWORK_TEXT),
    "publicIPAddresses": NameRule("public IP address", 1, 80, _NETWORK, _NETWORK_TEXT),
})

_VERSION = re.compile(r"\d{1,5}\.\d{1,5}")


def _version(_arg: str, value: str) -> str:
    if not _VERSION.fullmatch(value):
        raise RuleError("an extension handler version: major.minor, such as 1.0")
    return value


RULES["version"] = _version


# ---- spoke article ----------------------------------------------------------------------------
# A WAF policy for Application Gateway follows the network name pattern (1-80 characters).
NAME_RULES["ApplicationGatewayWebApplicationFirewallPolicies"] = NameRule(
    "WAF policy", 1, 80, _NETWORK, _NETWORK_TEXT)


# ---- hub article ----------------------------------------------------------------------------
# A DDoS protection plan and a Network Watcher follow the network name pattern (1-80 characters);
# a resource group name is 1-90 letters, digits, '_', '-', '.', '(' and ')', not ending in '.'.
NAME_RULES.update({
    "ddosProtectionPlans": NameRule("DDoS protection plan", 1, 80, _NETWORK, _NETWORK_TEXT),
    "networkWatchers": NameRule("Network Watcher", 1, 80, _NETWORK, _NETWORK_TEXT),
    "resourceGroups": NameRule("resource group", 1, 90, r"[-\w.()]*[-\w()]",
                               "1-90 letters, digits, '_', '-', '.', '(' and ')', not ending in '.'"),
})


# ---- customer-managed keys (storage-1g, vm-4a) ------------------------------------------------
# A Key Vault key name is 1-127 letters, digits and '-'; a disk encryption set follows the compute
# name rule (1-80 letters, digits, '_', '-'). The identity that unwraps the key is the resource's
# own system-assigned one or a user-assigned identity, named by its id.
NAME_RULES.update({
    "keys": NameRule("Key Vault key", 1, 127, r"[A-Za-z0-9-]+", "1-127 letters, digits and '-'"),
    "diskEncryptionSets": NameRule("disk encryption set", 1, 80, r"[A-Za-z0-9_-]+",
                                   "1-80 letters, digits, '_' and '-'"),
})

_UAI = "Microsoft.ManagedIdentity/userAssignedIdentities"


def _identity(_arg: str, value: str) -> str:
    if value.lower() == "systemassigned":
        return "SystemAssigned"
    try:
        return _resource_id(_UAI, value)
    except RuleError:
        raise RuleError(f"SystemAssigned or the id of a user-assigned identity (/subscriptions/…/providers/{_UAI}/…)"
                        ) from None


RULES["identity"] = _identity
