"""Reads: a resource by id (with the platform's implicit resources), lists of a type under a
scope, ARM's generic resource lists, role assignments by scope, and paging with `$skiptoken`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from . import graph
from .filters import parse_filter
from .model import (
    EXTENSION_TYPES,
    LIST_ALIASES,
    RG_TYPE,
    SCOPE_WIDE_LISTS,
    SUB_TYPE,
    clone,
    compose,
    platform_default,
)
from .power import Power
from .request import Reply, Request, arm_error, not_found, require_rg
from .store import key, parse

# Collections ARM answers in one piece (their SDK models have no nextLink).
UNPAGED = {"microsoft.security/pricings", "microsoft.insights/diagnosticsettings"}
VM_LIST_TYPE = "microsoft.compute/virtualmachines"


class Reads(Power):
    page_size: int

    def compose(self, entry: dict[str, Any], *, for_graph: bool = False) -> dict[str, Any]:
        return compose(self.store, entry, for_graph=for_graph)

    def _get_resource(self, ctx: Request) -> Reply:
        entry = self.store.get(ctx.path)
        if entry is None:
            default = platform_default(ctx.path)
            if default is not None:
                return Reply(200, default)
            raise not_found(ctx.path)
        if ctx.method == "HEAD":
            return Reply(204)
        out = self.compose(entry)
        if ctx.query.get("$expand", "").lower() == "instanceview" and entry["type"].lower() == \
                "microsoft.compute/virtualmachines":
            out.setdefault("properties", {})["instanceView"] = self.vm_instance_view(entry)
        return Reply(200, out)

    def _page(self, ctx: Request, items: list[dict[str, Any]], *, key_of: Callable[[dict[str, Any]], str],
              paged: bool = True) -> Reply:
        """One page of a list, in id order, with an opaque `$skiptoken` that survives inserts."""
        if not paged:
            return Reply(200, {"value": items})
        start = ctx.query.get("$skiptoken")
        if start:
            try:
                after = graph.decode_token(start)
            except graph.InvalidQuery as exc:
                raise arm_error(400, "InvalidSkipToken", str(exc)) from exc
            items = [i for i in items if key_of(i) > after]
        page, more = items[: self.page_size], len(items) > self.page_size
        body: dict[str, Any] = {"value": page}
        if more:
            q = {k: v for k, v in ctx.query.items() if k != "$skiptoken"}
            q["$skiptoken"] = graph.encode_token(key_of(page[-1]))
            body["nextLink"] = f"{ctx.host}{quote(ctx.path)}?" + "&".join(
                f"{quote(k, safe='$-')}={quote(v, safe='')}" for k, v in q.items())
        return Reply(200, body)

    def _list(self, ctx: Request, parent: str, rtype: str, *, child: bool) -> Reply:
        rtype = LIST_ALIASES.get(rtype.lower(), rtype) if not child else rtype
        t = rtype.lower()
        p = parse(parent)
        if child or (p.type not in (RG_TYPE, SUB_TYPE)):
            if self.store.get(parent) is None and p.type != SUB_TYPE and not p.type.lower().endswith("/locations"):
                raise not_found(parent)
        keep, calls = parse_filter(t, ctx.query.get("$filter", ""))
        if t == "microsoft.authorization/roleassignments":
            entries = self._role_assignments(parent, at_scope="atscope" in calls)
        elif p.type == SUB_TYPE and not child:
            sub_key = key(parent)
            entries = []
            for k in self.store.of_type(rtype):
                e = self.store.entries[k]
                par = key(parse(e["id"]).parent or "")
                if par == sub_key or (par.startswith(sub_key + "/resourcegroups/") and par.count("/") == 4) \
                        or (t in SCOPE_WIDE_LISTS and par.startswith(sub_key + "/")):
                    entries.append(e)
        else:
            entries = self.store.children(parent, rtype)
        if t == VM_LIST_TYPE and p.type == SUB_TYPE and not child and self._status_only(ctx):
            items = sorted((self._vm_status(e) for e in entries if keep(e)), key=lambda e: e["id"].lower())
        else:
            items = sorted((self.compose(e) for e in entries if keep(e)), key=lambda e: e["id"].lower())
        return self._page(ctx, items, key_of=lambda e: e["id"].lower(), paged=t not in UNPAGED)

    @staticmethod
    def _status_only(ctx: Request) -> bool:
        """VirtualMachines_ListAll's `statusOnly`: a boolean, anything else is a bad request."""
        value = ctx.query.get("statusonly")  # the query's names arrive lower-cased
        if value is None or value.lower() == "false":
            return False
        if value.lower() != "true":
            raise arm_error(400, "InvalidParameter",
                            f"The value '{value}' of parameter 'statusOnly' is not valid: use true or false.")
        return True

    def _vm_status(self, entry: dict[str, Any]) -> dict[str, Any]:
        """A VM as `statusOnly=true` lists it: its identity and run-time status (the instance view a
        GET {vm}/instanceView returns), none of its model."""
        out: dict[str, Any] = {k: clone(entry[k]) for k in ("id", "name", "type", "location") if k in entry}
        props: dict[str, Any] = {}
        vm_id = (entry.get("properties") or {}).get("vmId")
        if vm_id:
            props["vmId"] = vm_id
        props["instanceView"] = self.vm_instance_view(entry)
        out["properties"] = props
        return out

    def _role_assignments(self, scope: str, *, at_scope: bool) -> list[dict[str, Any]]:
        s = key(scope)
        out = []
        for k in self.store.of_type("Microsoft.Authorization/roleAssignments"):
            e = self.store.entries[k]
            at = key(parse(e["id"]).parent or "/")
            above_or_at = s == at or s.startswith(at + "/")
            below = at.startswith(s + "/")
            if above_or_at or (below and not at_scope):
                out.append(e)
        return out

    def _generic_list(self, ctx: Request, scope: str) -> Reply:
        """`resources.list` / `list_by_resource_group`: top-level resources, `resourceType eq` honoured."""
        keep, _ = parse_filter("microsoft.resources/resources", ctx.query.get("$filter", ""))
        # top-level resources are the direct children of their resource group in the index
        groups = [scope] if parse(scope).type == RG_TYPE else \
            [g["id"] for g in self.store.resource_groups(parse(scope).subscription or "")]
        items = []
        for e in (e for g in groups for e in self.store.children(g)):
            if e["type"].lower() in EXTENSION_TYPES or e["type"].lower().startswith("microsoft.security/"):
                continue  # extension resources on the group itself are not resources of the group
            if not keep(e):
                continue
            items.append({str(k): clone(e.get(k)) for k in
                          ("id", "name", "type", "location", "tags", "sku", "kind", "identity") if k in e})
        items.sort(key=lambda e: e["id"].lower())
        return self._page(ctx, items, key_of=lambda e: str(e["id"]).lower())

    # ---- subscriptions and resource groups ------------------------------------------------
    def _list_subscriptions(self, ctx: Request) -> Reply:
        subs = sorted(self.store.subscriptions.values(), key=lambda s: s["subscriptionId"].lower())
        return self._page(ctx, [clone(s) for s in subs], key_of=lambda s: s["id"].lower())

    def _get_subscription(self, ctx: Request) -> Reply:
        return Reply(200, clone(self.store.subscriptions[ctx.low[1]]))

    def _list_resource_groups(self, ctx: Request) -> Reply:
        rgs = [clone(e) for e in self.store.resource_groups(ctx.segs[1])]
        return self._page(ctx, rgs, key_of=lambda e: e["id"].lower())

    def _list_subscription_resources(self, ctx: Request) -> Reply:
        return self._generic_list(ctx, f"/subscriptions/{ctx.segs[1]}")

    def _list_group_resources(self, ctx: Request) -> Reply:
        require_rg(self.store, ctx.segs[1], ctx.segs[3])
        return self._generic_list(ctx, f"/subscriptions/{ctx.segs[1]}/resourceGroups/{ctx.segs[3]}")
