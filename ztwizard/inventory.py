"""The estate as the checks see it: ARM resources (wire JSON) by id, children as their own entries.

Whatever the source (Resource Graph, list calls, an estate file), resources end up in one shape:
every child (subnet, security rule, route, peering, VM extension) is its own entry with a full id,
and its parent also keeps the inline list ARM returns, rebuilt from those entries so both agree.

Each resource is held once: `add` takes the dict it is given (the caller hands it over and does
not change it afterwards), and a parent's inline list holds the very entries of its children,
not copies. At 50,000 resources a copy per add and per inline child doubled the memory.
`from_resources` copies what it is given unless told the dicts are handed over."""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import resource_id as rid
from .armjson import INLINE_CHILDREN, inline_holder, lift_children

__all__ = ["INLINE_CHILDREN", "Inventory", "inline_holder", "path_child_type"]  # the sandbox reads the first


def _key(resource_id: str) -> str:
    return resource_id.rstrip("/").lower()


@dataclass
class Inventory:
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: list[str] = field(default_factory=list)
    resource_groups: list[str] = field(default_factory=list)  # ids
    # lower-cased resource type -> why it could not be read (e.g. a 403): checks report `error`.
    unreadable: dict[str, str] = field(default_factory=dict)
    # indexes, rebuilt lazily after any add()
    _by_type: dict[str, list[dict[str, Any]]] | None = field(default=None, repr=False, compare=False)
    _by_parent: dict[str, list[dict[str, Any]]] | None = field(default=None, repr=False, compare=False)

    # ---- building -------------------------------------------------------------------------
    @classmethod
    def from_resources(cls, resources: Iterable[dict[str, Any]], *, subscriptions: Iterable[str] = (),
                       resource_groups: Iterable[str] = (), handed_over: bool = False) -> Inventory:
        """An inventory of `resources`: copies of them, or (handed_over) the dicts themselves."""
        inv = cls()
        for res in resources:
            inv.add(res if handed_over else copy.deepcopy(res))
        inv.finish(subscriptions=subscriptions, resource_groups=resource_groups)
        return inv

    def finish(self, *, subscriptions: Iterable[str] = (), resource_groups: Iterable[str] = ()) -> None:
        """Once everything is added: lift inline children, and list the subscriptions and
        resource groups in scope (those given, and those the resources sit in)."""
        inv = self
        inv.normalize()
        subs = {s.lower(): s for s in subscriptions}
        rgs = {g.lower(): g for g in resource_groups}
        for res in inv.resources.values():
            p = rid.parse(res["id"])
            if p.subscription:
                subs.setdefault(p.subscription.lower(), p.subscription)
            g = rid.resource_group_id(res["id"])
            if g:
                rgs.setdefault(g.lower(), g)
        inv.subscriptions = sorted(subs.values())
        inv.resource_groups = sorted(rgs.values(), key=str.lower)

    def add(self, res: dict[str, Any]) -> None:
        """Hold `res` (not a copy: see the module's note)."""
        # Resource Graph lower-cases `type`; the id keeps ARM's casing, so derive type from it.
        parsed = rid.parse(res["id"])
        if parsed.type:
            res["type"] = sys.intern(parsed.type)  # a few dozen types and regions among thousands
        if isinstance(res.get("location"), str):
            res["location"] = sys.intern(res["location"])
        res.setdefault("name", parsed.name)
        self.resources[_key(res["id"])] = res
        self._by_type = self._by_parent = None

    def _index(self) -> None:
        by_type: dict[str, list[dict[str, Any]]] = {}
        by_parent: dict[str, list[dict[str, Any]]] = {}
        for r in sorted(self.resources.values(), key=lambda r: r["id"].lower()):
            by_type.setdefault(r["type"].lower(), []).append(r)
            p = rid.parse(r["id"]).parent
            if p:
                by_parent.setdefault(p.lower(), []).append(r)
        self._by_type, self._by_parent = by_type, by_parent

    def normalize(self) -> None:
        """Lift inline children into entries of their own, then rebuild each inline list."""
        for res in list(self.resources.values()):
            for child in lift_children(res, deep=False):  # the inline entries are replaced below
                if _key(child["id"]) not in self.resources:
                    self.add(child)
        for res in self.resources.values():
            for path, _seg in INLINE_CHILDREN.get(res["type"].lower(), []):
                kids = self.children(res["id"], path_child_type(res["type"], path))
                if not kids and inline_holder(res, path)[0] is None:
                    continue
                holder, prop = inline_holder(res, path, create=True)
                assert holder is not None
                holder[prop] = kids  # the child entries themselves: one copy of each

    # ---- reading --------------------------------------------------------------------------
    def get(self, resource_id: str | None) -> dict[str, Any] | None:
        if not resource_id:
            return None
        return self.resources.get(_key(resource_id))

    def of_type(self, rtype: str) -> list[dict[str, Any]]:
        if self._by_type is None:
            self._index()
        assert self._by_type is not None
        return list(self._by_type.get(rtype.lower(), []))

    def children(self, parent_id: str, child_type: str | None = None) -> list[dict[str, Any]]:
        """Direct children (and extension resources) of `parent_id`, optionally of one full type."""
        if self._by_parent is None:
            self._index()
        assert self._by_parent is not None
        kids = self._by_parent.get(_key(parent_id), [])
        if child_type is None:
            return list(kids)
        return [r for r in kids if r["type"].lower() == child_type.lower()]

    def parent(self, resource_id: str) -> dict[str, Any] | None:
        return self.get(rid.parse(resource_id).parent)

    def in_resource_group(self, rg_id: str) -> list[dict[str, Any]]:
        prefix = _key(rg_id) + "/"
        return [r for r in self.resources.values() if r["id"].lower().startswith(prefix)]

    def unreadable_reason(self, rtype: str) -> str | None:
        return self.unreadable.get(rtype.lower())

    def all(self) -> list[dict[str, Any]]:
        return sorted(self.resources.values(), key=lambda r: r["id"].lower())


def path_child_type(parent_type: str, path: str) -> str:
    for p, seg in INLINE_CHILDREN.get(parent_type.lower(), []):
        if p == path:
            return f"{parent_type}/{seg}"
    raise KeyError(path)

