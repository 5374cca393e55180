"""The sandbox's resources, indexed the way ARM requests and graph queries look them up.

Every resource is one entry keyed by its lower-cased id, children (subnets, rules, routes,
peerings, VM extensions) included; parents hold no inline child lists here: those, the NSG's and
route table's `subnets` back-references and an NSG's default rules are composed on read, so the
stored state has one truth per property."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .. import resource_id as rid
from ..errors import UsageError
from ..files import atomic_write
from .model import (
    BACK_REFERENCES,
    COMPUTED_PROPERTIES,
    COVERAGE_BY_TIER,
    INLINE_CHILDREN,
    PROVIDER_ANSWERED,
    READ_ONLY_INLINE,
    RG_TYPE,
    SUB_TYPE,
    WRITE_ONLY,
    clone,
    inline_holder,
    key,
    new_etag,
    parse,
)
from .schema import location_is_read_only

__all__ = ["READ_ONLY_INLINE", "RG_TYPE", "Store", "atomic_write_json", "clone", "ingest", "key", "new_etag",
           "normalize_entry", "parse", "strip_composed"]


def canonical_type(resource_id: str) -> str:
    return parse(resource_id).type


class Store:
    """Entries plus indexes: by type, by parent (children and extension resources), by the
    subscription, and the reverse references ARM reflects (subnet -> NSG/route table)."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self._by_type: dict[str, set[str]] = defaultdict(set)
        self._by_parent: dict[str, set[str]] = defaultdict(set)
        self._refs: dict[str, set[str]] = defaultdict(set)  # target key -> referring keys
        self._refs_of: dict[str, set[str]] = {}  # referring key -> target keys
        self.changed: set[str] = set()  # keys written since the last save
        # called with (key, the entry before) on every put and delete (Resource Graph's lag)
        self.observer: Callable[[str, dict[str, Any] | None], None] | None = None
        self.version = 0  # bumped on every write: cached query results check it

    # ---- reading -----------------------------------------------------------------------
    def get(self, resource_id: str) -> dict[str, Any] | None:
        return self.entries.get(key(resource_id))

    def of_type(self, rtype: str) -> list[str]:
        return list(self._by_type.get(rtype.lower(), ()))

    def types(self) -> list[str]:
        return [t for t, ks in self._by_type.items() if ks]

    def children(self, parent_id: str, rtype: str | None = None) -> list[dict[str, Any]]:
        out = [self.entries[k] for k in self._by_parent.get(key(parent_id), ())]
        if rtype is not None:
            out = [e for e in out if e["type"].lower() == rtype.lower()]
        return sorted(out, key=lambda e: e["id"].lower())

    def descendants(self, resource_id: str) -> list[str]:
        """Keys of everything beneath `resource_id` (children, extension resources), deepest first."""
        out: list[str] = []
        stack = list(self._by_parent.get(key(resource_id), ()))
        while stack:
            k = stack.pop()
            out.append(k)
            stack.extend(self._by_parent.get(k, ()))
        return sorted(set(out), key=lambda k: -k.count("/"))

    def referrers(self, target_id: str) -> list[str]:
        return sorted(self._refs.get(key(target_id), ()))

    def resource_groups(self, subscription: str) -> list[dict[str, Any]]:
        return sorted((self.entries[k] for k in self._by_type.get(RG_TYPE.lower(), ())
                       if (parse(self.entries[k]["id"]).subscription or "").lower() == subscription.lower()),
                      key=lambda e: e["id"].lower())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)

    # ---- writing -----------------------------------------------------------------------
    def put(self, entry: dict[str, Any]) -> None:
        k = key(entry["id"])
        old = self.entries.get(k)
        if self.observer is not None:
            self.observer(k, old)
        if old is not None:
            self._unindex(k, old)
        self.changed.add(k)
        self.version += 1
        self.entries[k] = entry
        self._by_type[entry["type"].lower()].add(k)
        parent = parse(entry["id"]).parent
        if parent:
            self._by_parent[key(parent)].add(k)
        self._index_refs(k, entry)

    def delete(self, resource_id: str) -> dict[str, Any] | None:
        k = key(resource_id)
        old = self.entries.pop(k, None)
        if old is not None:
            if self.observer is not None:
                self.observer(k, old)
            self._unindex(k, old)
            self.changed.add(k)
            self.version += 1
        return old

    def _unindex(self, k: str, entry: dict[str, Any]) -> None:
        self._by_type[entry["type"].lower()].discard(k)
        parent = parse(entry["id"]).parent
        if parent:
            self._by_parent[key(parent)].discard(k)
        for target in self._refs_of.pop(k, set()):
            self._refs[target].discard(k)

    def _index_refs(self, k: str, entry: dict[str, Any]) -> None:
        targets = set()
        t = entry["type"].lower()
        for src, prop, _ in BACK_REFERENCES:
            if src == t:
                ref = (entry.get("properties") or {}).get(prop)
                if isinstance(ref, dict) and isinstance(ref.get("id"), str):
                    targets.add(key(ref["id"]))
        if targets:
            self._refs_of[k] = targets
            for target in targets:
                self._refs[target].add(k)

    def ensure_subscription(self, subscription: str, tenant_id: str, display_name: str | None = None) -> None:
        sk = subscription.lower()
        if sk not in self.subscriptions:
            self.subscriptions[sk] = {
                "id": f"/subscriptions/{subscription}", "subscriptionId": subscription,
                "displayName": display_name or f"Sandbox subscription {subscription[:8]}",
                "state": "Enabled", "tenantId": tenant_id, "authorizationSource": "RoleBased",
                "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01",
                                         "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
            }
        elif display_name:
            self.subscriptions[sk]["displayName"] = display_name

    # ---- snapshots ---------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {"subscriptions": list(self.subscriptions.values()),
                "resources": sorted(self.entries.values(), key=lambda e: e["id"].lower())}

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> Store:
        store = cls()
        for sub in data.get("subscriptions", []):
            store.subscriptions[sub["subscriptionId"].lower()] = sub
        for entry in data.get("resources", []):
            store.put(entry)
        return store


def ingest(resources: Iterable[Any], tenant_id: str) -> Store:
    """Build a store from ARM wire JSON: inline children lifted into their own entries
    (entries given on their own win), subscriptions and resource groups inferred from ids,
    Resource Graph's lower-cased `type` replaced by the id's casing. Raises UsageError naming
    the entry for anything that is not a resource."""
    store = Store()
    pending: list[dict[str, Any]] = []
    own: set[str] = set()
    for i, res in enumerate(resources):
        if not isinstance(res, dict) or not isinstance(res.get("id"), str) or not res["id"].startswith("/"):
            raise UsageError(f"Estate entry {i} is not an ARM resource with an `id`.",
                             hint="Each entry needs a full ARM id such as /subscriptions/…/resourceGroups/….")
        parsed = parse(res["id"])
        if not parsed.subscription:
            raise UsageError(f"Estate entry {i} ({res['id']}) is not under a subscription.",
                             hint="Ids start with /subscriptions/<id>/.")
        if parsed.type == SUB_TYPE:
            store.ensure_subscription(parsed.subscription, tenant_id, res.get("displayName"))
            continue
        pending.append(clone(res))
        own.add(key(res["id"]))
    lifted: list[dict[str, Any]] = []
    for res in pending:
        for child in _lift(res):
            if key(child["id"]) not in own:
                own.add(key(child["id"]))
                lifted.append(child)
    for res in pending + lifted:
        entry = normalize_entry(res, copy=False)
        answered = PROVIDER_ANSWERED.get(entry["type"].lower())
        if answered and isinstance(entry.setdefault("properties", {}), dict):
            props = entry["properties"]
            for prop, value in answered.items():
                props.setdefault(prop, clone(value))
            if entry["type"].lower() == "microsoft.security/pricings":
                tier = str(props.get("pricingTier") or "").lower()
                props.setdefault("resourcesCoverageStatus", COVERAGE_BY_TIER.get(tier, "NotCovered"))
        store.put(entry)
        store.ensure_subscription(parse(entry["id"]).subscription or "", tenant_id)
        rg = rid.resource_group_id(entry["id"])
        if rg and entry["type"] != RG_TYPE and store.get(rg) is None:
            name = parse(rg).resource_group
            store.put({"id": rg, "name": name, "type": RG_TYPE, "location": entry.get("location") or "westeurope",
                       "properties": {"provisioningState": "Succeeded"}})
    # a resource group entry that came after its resources replaces the inferred one: fine.
    return store


def _lift(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Take the inline children out of `res` (mutating it) and return them with full ids."""
    out: list[dict[str, Any]] = []
    ptype = canonical_type(res["id"]).lower()
    for path, seg in INLINE_CHILDREN.get(ptype, []):
        holder, prop = inline_holder(res, path)
        if holder is None:
            continue
        kids = holder.pop(prop, None) or []
        for child in kids:
            if not isinstance(child, dict) or not (child.get("id") or child.get("name")):
                continue
            child = clone(child)
            if not child.get("id"):
                child["id"] = f"{res['id']}/{seg}/{child['name']}"
            out.append(child)
            out.extend(_lift(child))
    return out


def normalize_entry(res: dict[str, Any], copy: bool = True) -> dict[str, Any]:
    """The stored form: canonical type and name from the id, an etag, no composed properties."""
    entry = clone(res) if copy else res
    parsed = parse(entry["id"])
    entry["type"] = parsed.type
    entry["name"] = parsed.name or entry.get("name", "")
    region = _path_region(entry["id"]) if location_is_read_only(parsed.type) else None
    if region:
        # a JIT policy's location is read-only, its address's region: ARM answers with it,
        # whatever the body said (the schema drops a sent one)
        entry["location"] = region
    for col in ("subscriptionId", "resourceGroup", "tenantId"):
        if col in entry and parsed.type != RG_TYPE:
            entry.pop(col)
    if parsed.type == RG_TYPE:
        entry.pop("etag", None)  # ARM's resource groups carry none (the ResourceGroup model has no etag)
    else:
        entry.setdefault("etag", new_etag())
    strip_composed(entry)
    for path in WRITE_ONLY.get(entry["type"].lower(), []):
        holder: Any = entry
        for part in path[:-1]:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if isinstance(holder, dict):
            holder.pop(path[-1], None)
    return entry


def _path_region(resource_id: str) -> str | None:
    """The region of a resource addressed under `providers/{ns}/locations/{region}/...`."""
    parts = resource_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    if "providers" not in lowered:
        return None
    i = len(lowered) - 1 - lowered[::-1].index("providers")
    if len(parts) > i + 5 and lowered[i + 2] == "locations":
        return parts[i + 3]
    return None


def strip_composed(entry: dict[str, Any]) -> None:
    t = entry["type"].lower()
    for path, _seg in INLINE_CHILDREN.get(t, []):
        holder, prop = inline_holder(entry, path)
        if holder is not None:
            holder.pop(prop, None)
    props = entry.get("properties")
    if isinstance(props, dict):
        for prop in COMPUTED_PROPERTIES.get(t, ()):
            props.pop(prop, None)


# ---- files --------------------------------------------------------------------------------
def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, separators=(",", ":")).encode())
