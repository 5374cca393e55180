"""Offline audits (`--estate FILE`): the estate goes straight into the inventory.

The file is read and normalised once (estate.py: children as their own entries, types as ARM
spells them) and the inventory holds those very dicts; nothing is served over an emulated HTTP
pipeline. At 50,000 resources that pipeline cost a minute and about 2 GB for what is a local
read. `EstateGateway` is the ArmGateway of such a target: it reads, it never writes."""

from __future__ import annotations

import copy
import gc
from collections.abc import Iterable, Sequence
from typing import Any

from . import resource_id as rid
from .errors import ZtwError
from .inventory import Inventory
from .ports import ChildRead, Progress
from .target import Target

RG_TYPE = "microsoft.resources/resourcegroups"


class EstateGateway:
    """The estate file of an offline audit behind the ArmGateway protocol (read-only)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.resources: list[dict[str, Any]] = list(target.estate or [])
        subs: dict[str, str] = {}
        for res in self.resources:
            sub = rid.subscription_of(res["id"])
            if sub:
                subs.setdefault(sub.lower(), sub)
        self._subscriptions = sorted(subs.values(), key=str.lower)
        self._by_id: dict[str, dict[str, Any]] | None = None

    def api_version_for(self, resource_id: str) -> str:
        from .gateway import api_version_for

        return api_version_for(resource_id)

    def read(self, resource_id: str) -> dict[str, Any] | None:
        if self._by_id is None:
            self._by_id = {r["id"].rstrip("/").lower(): r for r in self.resources}
        found = self._by_id.get(resource_id.rstrip("/").lower())
        return copy.deepcopy(found) if found is not None else None

    def read_settled(self, resource_id: str, timeout: float = 0.0) -> dict[str, Any] | None:
        return self.read(resource_id)  # nothing runs on a file

    def write(self, method: str, resource_id: str, body: dict[str, Any] | None, *,
              etag: str | None = None) -> dict[str, Any] | None:
        raise ZtwError("This target is read-only: nothing was changed.",
                       hint="An estate file is for auditing; use --sandbox or Azure to apply.")

    def inventory(self, subscriptions: Iterable[str] | None = None, resource_groups: Iterable[str] | None = None,
                  progress: Progress | None = None, use_graph: bool = True, *,
                  reads: Sequence[ChildRead] | None = None) -> Inventory:
        """The estate's resources in scope, held as loaded (children are in the file already)."""
        report = progress or (lambda done, total, label: None)
        report(0, 4, f"Estate file: {len(self.resources)} resources")
        subs = {s.lower() for s in (subscriptions or self.target.subscriptions or [])}
        rgs = {g.lower() for g in (resource_groups or self.target.resource_groups or [])}
        chosen: Iterable[dict[str, Any]] = self.resources
        if subs or rgs:
            chosen = [r for r in self.resources if _in_scope(r["id"], subs, rgs)]
        # The estate is held until the process ends and holds no cycles (a parent's inline list
        # refers to its children, never back): the collector need not walk its millions of
        # objects while the index is built, nor on every full collection while the checks run
        # (a sixth of a 50,000 plan).
        paused = gc.isenabled()
        gc.disable()
        try:
            inv = Inventory.from_resources(chosen, subscriptions=sorted(subs) if subs else self._subscriptions,
                                           handed_over=True)
            gc.freeze()
        finally:
            if paused:
                gc.enable()
        report(4, 4, "Done")
        return inv

    def list_subscriptions(self) -> list[str]:
        return list(self._subscriptions)

    def subscription_names(self) -> list[tuple[str, str]]:
        return [(s, f"Subscription {s[:8]} (estate file)") for s in self._subscriptions]

    def list_resource_groups(self, subscription: str) -> list[dict[str, Any]]:
        sub = subscription.lower()
        return [r for r in self.resources if r["type"].lower() == RG_TYPE
                and (rid.subscription_of(r["id"]) or "").lower() == sub]

    def close(self) -> None:
        return None


def _in_scope(resource_id: str, subs: set[str], rgs: set[str]) -> bool:
    p = rid.parse(resource_id)
    if subs and (p.subscription or "").lower() not in subs:
        return False
    if rgs and p.resource_group is not None and p.resource_group.lower() not in rgs:
        return False
    if rgs and p.type.lower() == RG_TYPE and p.name.lower() not in rgs:
        return False
    return True
