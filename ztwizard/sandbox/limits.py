"""Platform limits and reference checks ARM applies to a write (notes §3), each a rule in the
write-rule table: one Network Watcher per region and subscription, custom role names unique in
the tenant, the NICs of an application security group in one VNet, a SAS expiration policy only
on an account whose keys were rotated, at most 5 diagnostic settings per resource, name rules
per type (profiles.NAME_RULES), and references to resources that do not exist."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from .persistence import Persistence
from .profiles import name_rule, profile
from .request import Reply, Request, arm_error, authorize_write, not_found
from .store import key, parse

# Properties that hold references the network provider resolves at write time ({"id": …} or a
# list of them). A reference into a subscription the sandbox does not hold is not checked.
REFERENCES = ("networkSecurityGroup", "routeTable", "ddosProtectionPlan", "applicationSecurityGroups",
              "sourceApplicationSecurityGroups", "destinationApplicationSecurityGroups")


def _ids(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [i["id"] for i in items if isinstance(i, dict) and isinstance(i.get("id"), str) and i["id"]]


def _references(obj: Any, out: list[str]) -> list[str]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in REFERENCES:
                out.extend(_ids(v))
            else:
                _references(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _references(v, out)
    return out


# What a security rule must name besides the members the spec marks required: a source and a
# destination (a prefix, a list of prefixes or application security groups) and their ports (a
# range or a list). The swagger leaves each alternative optional; Network refuses a rule with none.
_RULE_ENDPOINTS = (
    ("SecurityRuleInvalidAddressPrefix", "Address prefix", "Source",
     ("sourceAddressPrefix", "sourceAddressPrefixes", "sourceApplicationSecurityGroups")),
    ("SecurityRuleInvalidAddressPrefix", "Address prefix", "Destination",
     ("destinationAddressPrefix", "destinationAddressPrefixes", "destinationApplicationSecurityGroups")),
    ("SecurityRuleInvalidPortRange", "Port range", "Source", ("sourcePortRange", "sourcePortRanges")),
    ("SecurityRuleInvalidPortRange", "Port range", "Destination", ("destinationPortRange", "destinationPortRanges")),
)


def security_rule_refusal(rule: Any) -> tuple[int, str, str] | None:
    """Network's 400 for a security rule (standalone or inline in its group) that leaves out its
    source, destination or either side's ports; None when it names them all."""
    props = rule.get("properties") if isinstance(rule, dict) else None
    if not isinstance(props, dict):
        return None  # the body's schema check answers for a rule without properties
    name = rule.get("name") or ""
    for code, what, side, fields in _RULE_ENDPOINTS:
        if not any(props.get(f) not in (None, "", []) for f in fields):
            return (400, code, f"Security rule {name} has invalid {what}. Value provided: . {side} must be given "
                               f"as one of {', '.join(fields)}.")
    return None


def _location(entry: dict[str, Any] | None) -> str:
    return str((entry or {}).get("location") or "").replace(" ", "").lower()


class Limits(Persistence):
    read_only: bool

    def _name_rule(self, ctx: Request, existing: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if existing is not None:
            return  # the name was accepted when the resource was made
        rule = name_rule(new["type"])
        if rule is not None and not rule.accepts(new["name"]):
            raise arm_error(400, "InvalidResourceName",
                            f"Resource name {new['name']} is invalid. {rule.text}")

    def _security_rule_complete(self, ctx: Request, existing: dict[str, Any] | None, new: dict[str, Any]) -> None:
        refusal = security_rule_refusal(new)
        if refusal:
            raise arm_error(*refusal)

    def _check_references(self, ctx: Request, rtype: str, body: Any) -> None:
        """A network write that names a resource that does not exist is refused (400)."""
        if not rtype.lower().startswith("microsoft.network/"):
            return
        for ref in _references(body.get("properties"), []):
            p = parse(ref)
            if (p.subscription or "").lower() in self.store.subscriptions and self.store.get(ref) is None:
                raise arm_error(400, "InvalidResourceReference",
                                f"Resource {ref} referenced by resource {ctx.path} was not found. Please make sure "
                                "that the referenced resource exists, and that both resources are in the same region.")

    def _network_watcher_limit(self, ctx: Request, existing: dict[str, Any] | None, new: dict[str, Any]) -> None:
        limit = profile(new["type"]).max_per_region
        if existing is not None or limit is None:
            return
        sub = key(f"/subscriptions/{parse(new['id']).subscription}")
        there = [self.store.entries[k] for k in self.store.of_type(new["type"])
                 if k.startswith(sub + "/") and _location(self.store.entries[k]) == _location(new)]
        if len(there) >= limit:
            raise arm_error(400, "NetworkWatcherCountLimitReached",
                            f"Cannot create more than {limit} network watchers for this subscription in this "
                            f"region. The network watcher {there[0]['id']} already exists in {_location(new)}.")

    def _role_name_unique(self, ctx: Request, existing: dict[str, Any] | None, new: dict[str, Any]) -> None:
        name = str((new.get("properties") or {}).get("roleName") or "").strip().lower()
        if not name:
            return
        for k in self.store.of_type("Microsoft.Authorization/roleDefinitions"):
            other = self.store.entries[k]
            same_name = str((other.get("properties") or {}).get("roleName") or "").strip().lower() == name
            if same_name and other["name"].lower() != new["name"].lower():
                raise arm_error(409, "RoleDefinitionWithSameNameExists",
                                "A custom role with the same name already exists in this directory "
                                f"({other['id']}). Use a different name, or add scopes to that role's "
                                "assignableScopes.")

    def _asg_one_vnet(self, ctx: Request, existing: dict[str, Any] | None, new: dict[str, Any]) -> None:
        """Every NIC in an application security group sits in the same VNet."""
        def vnet_of(nic: dict[str, Any]) -> str | None:
            for ipc in (nic.get("properties") or {}).get("ipConfigurations") or []:
                sid = (((ipc or {}).get("properties") or {}).get("subnet") or {}).get("id")
                if isinstance(sid, str) and sid:
                    return key(parse(sid).parent or "")
            return None

        def asgs_of(nic: dict[str, Any]) -> set[str]:
            return {key(i) for ipc in (nic.get("properties") or {}).get("ipConfigurations") or []
                    for i in _ids(((ipc or {}).get("properties") or {}).get("applicationSecurityGroups"))}

        mine, vnet = asgs_of(new), vnet_of(new)
        if not mine or vnet is None:
            return
        for k in self.store.of_type("Microsoft.Network/networkInterfaces"):
            other = self.store.entries[k]
            if k == key(new["id"]):
                continue
            shared = mine & asgs_of(other)
            other_vnet = vnet_of(other)
            if shared and other_vnet is not None and other_vnet != vnet:
                asg = self.store.get(sorted(shared)[0])
                raise arm_error(400, "ApplicationSecurityGroupNotInSameVnet",
                                f"Network interface {new['id']} cannot join application security group "
                                f"{asg['id'] if asg else sorted(shared)[0]}: its network interfaces are in virtual "
                                f"network {self._vnet_id(other_vnet)}, and all of them must be in one virtual network.")

    def _vnet_id(self, vnet_key: str) -> str:
        vnet = self.store.entries.get(vnet_key)
        return vnet["id"] if vnet else vnet_key

    def _sas_policy_needs_rotated_keys(self, ctx: Request, existing: dict[str, Any] | None,
                                       new: dict[str, Any]) -> None:
        props = new.get("properties") or {}
        if existing is None:
            # a new account's keys are created with it: the provider records when
            now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
            props.setdefault("keyCreationTime", {"key1": now, "key2": now})
            new["properties"] = props
            return
        old = existing.get("properties") or {}
        if not props.get("sasPolicy") or props.get("sasPolicy") == old.get("sasPolicy"):
            return
        created = old.get("keyCreationTime") or {}
        if not (isinstance(created, dict) and created.get("key1") and created.get("key2")):
            raise arm_error(400, "InvalidValuesForRequestParameters",
                            f"A SAS expiration policy cannot be set on storage account {new['name']}: its keys "
                            "have no keyCreationTime (they were never rotated). Rotate key1 and key2 first "
                            "(POST …/regenerateKey), then set the policy.")

    def _diagnostic_settings_limit(self, ctx: Request, existing: dict[str, Any] | None,
                                   new: dict[str, Any]) -> None:
        limit = profile(new["type"]).max_per_parent
        if existing is not None or limit is None:
            return
        scope = parse(new["id"]).parent or ""
        present = self.store.children(scope, new["type"])
        if len(present) >= limit:
            raise arm_error(400, "BadRequest",
                            f"Diagnostic settings count exceeds the limit of {limit} for "
                            f"resource {scope}: change or delete one of "
                            f"{', '.join(e['name'] for e in present)} instead.")

    # ---- actions -----------------------------------------------------------------------
    def _regenerate_key(self, ctx: Request) -> Reply:
        """POST {account}/regenerateKey {"keyName": "key1"}: a new key, and its creation time."""
        account_id = "/" + "/".join(ctx.segs[:-1])
        entry = self.store.get(account_id)
        authorize_write(ctx, self.read_only, "Microsoft.Storage/storageAccounts", account_id,
                        action="regenerateKey/action")
        if entry is None:
            raise not_found(account_id)
        body = ctx.json()
        name = str((body or {}).get("keyName") or "").lower() if isinstance(body, dict) else ""
        if name not in ("key1", "key2"):
            raise arm_error(400, "InvalidValuesForRequestParameters",
                            "Values for request parameters are invalid: keyName (key1 or key2).")
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
        created = entry.setdefault("properties", {}).setdefault("keyCreationTime", {})
        created[name] = now
        self.store.put(entry)
        ctx.dirty = True
        # the key itself is a secret: made for this answer, never stored
        keys = [{"keyName": k, "value": secrets.token_urlsafe(48), "permissions": "FULL",
                 "creationTime": created.get(k)} for k in ("key1", "key2")]
        return Reply(200, {"keys": keys})
