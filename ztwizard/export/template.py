"""The template export: the end state a session applied, as an ARM deployment template for a
team's infrastructure-as-code repository.

Read from the journal only (no ARM call): every change the session applied (or adopted) and did
not take back. A created resource is exported in full (the body the wizard sent); a resource the
wizard PUT is exported with the body it sent (ARM network and security resources take the whole
resource on PUT); a resource it only PATCHed is exported with the properties it set plus what its
PUT needs (location, sku, kind, and the properties its provider requires). ARM applies a template's
resource as a whole, so such a minimal resource is for merging into the team's own definition. Several changes to one resource are merged in
write order. Deletes cannot be expressed in an incremental template and are listed in metadata.

One resource group gives a resource-group template; several, or subscription-level resources
(Defender plans, activity-log settings), a subscription template with one nested deployment per
resource group; several subscriptions a management-group template with one nested deployment per
subscription (or pass -s to export one)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from .. import __version__
from .. import resource_id as rid
from ..armjson import get_path, set_path
from ..errors import UsageError
from .initiative import DEPLOYMENT_API, MG_SCHEMA, RG_SCHEMA, SUB_SCHEMA

KEPT_STATES = ("applied", "adopted")
# What a PUT of an existing resource needs besides the properties that changed.
ADDRESSING = ("location", "sku", "kind", "identity")
# Properties a provider requires in every PUT body, per type: a PATCHed resource carries them
# from what ARM held after the change (a disk's PUT without creationData is refused).
REQUIRED_ON_PUT: dict[str, tuple[str, ...]] = {
    "microsoft.compute/disks": ("properties.creationData",),
}


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _type_and_name(resource_id: str) -> tuple[str, str, str]:
    """(type, name, scope) in template terms: `Microsoft.Network/virtualNetworks/subnets`,
    `vnet/subnet`, and for an extension resource the relative id of the resource it sits on."""
    head, _, tail = resource_id.rpartition("/providers/")
    parts = tail.split("/")
    ns, rest = parts[0], parts[1:]
    rtype = "/".join([ns, *rest[0::2]])
    name = "/".join(rest[1::2])
    scope = ""
    if "/providers/" in head:  # an extension resource on a resource
        scope = head.split("/providers/", 1)[1]
    return rtype, name, scope


def end_state(records: Sequence[Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Resource id (lower-case) -> {id, api_version, body, created}, and the ids deleted."""
    state: dict[str, dict[str, Any]] = {}
    deleted: list[str] = []
    for rec in sorted(records, key=lambda r: (r.seq or 0, r.ordinal)):
        if rec.state not in KEPT_STATES:
            continue
        k = rec.resource_id.lower()
        if rec.action == "delete" or rec.method == "DELETE":
            state.pop(k, None)
            deleted.append(rec.resource_id)
            continue
        image = rec.after_image if isinstance(rec.after_image, dict) else {}
        if rec.method == "PUT" and isinstance(rec.body, dict):
            body = copy.deepcopy(rec.body)
        else:
            prior = state.get(k, {}).get("body") or {a: copy.deepcopy(image[a]) for a in ADDRESSING if a in image}
            body = _merge(prior, rec.plan_after if isinstance(rec.plan_after, dict) else (rec.body or {}))
        for a in ("location", "sku", "kind"):
            if a not in body and a in image and rec.action != "create":
                body[a] = copy.deepcopy(image[a])
        for path in REQUIRED_ON_PUT.get(rid.type_of(rec.resource_id).lower(), ()):
            held = get_path(image, path)
            if get_path(body, path) is None and held is not None:
                set_path(body, path, copy.deepcopy(held))
        entry = state.setdefault(k, {"id": rec.resource_id, "api_version": rec.api_version,
                                     "created": rec.action == "create", "checks": []})
        entry["body"] = body
        entry["api_version"] = rec.api_version or entry["api_version"]
        entry["checks"].append(rec.check_id)
        if k in [d.lower() for d in deleted]:
            deleted = [d for d in deleted if d.lower() != k]
    return state, deleted


def _resource(entry: dict[str, Any], *, in_rg: bool) -> dict[str, Any]:
    rtype, name, scope = _type_and_name(entry["id"])
    body = {k: v for k, v in entry["body"].items() if k not in ("id", "name", "type", "etag")}
    out: dict[str, Any] = {"type": rtype, "apiVersion": entry["api_version"], "name": name}
    if scope and in_rg:
        out["scope"] = scope
    out.update(body)
    out["metadata"] = {"ztwizard": {"checks": entry["checks"], "created": entry["created"]}}
    return out


def _strip_metadata(res: dict[str, Any]) -> dict[str, Any]:
    # ARM templates allow a `comments` string per resource, not free metadata
    meta = res.pop("metadata")["ztwizard"]
    verb = "created" if meta["created"] else "set"
    res["comments"] = f"ztwizard {verb} this for {', '.join(dict.fromkeys(meta['checks']))}."
    return res


def build(records: Sequence[Any], *, session_id: str, subscription: str | None = None,
          resource_groups: Sequence[str] = ()) -> dict[str, Any]:
    """The deployment template of the session's end state (see the module docstring), narrowed
    to `subscription` and `resource_groups` when given."""
    state, deleted = end_state(records)
    if resource_groups:
        wanted = {g.lower() for g in resource_groups}
        state = {k: e for k, e in state.items() if (rid.parse(e["id"]).resource_group or "").lower() in wanted}
        if not state:
            raise UsageError(f"Session {session_id} changed nothing in resource group(s) {', '.join(resource_groups)}.",
                             "Drop -g, or name a resource group the session changed.")
    if not state:
        raise UsageError(f"Session {session_id} applied no change that is still in place; there is nothing "
                         "to export.", "List sessions with `ztwizard sessions` and pick one that applied changes.")
    subs = sorted({(rid.parse(e["id"]).subscription or "").lower() for e in state.values()})
    if subscription:
        subs = [s for s in subs if s == subscription.lower()]
        if not subs:
            raise UsageError(f"Session {session_id} changed nothing in subscription {subscription}.",
                             "Drop -s, or name a subscription the session changed.")
    meta: dict[str, Any] = {
        "generator": f"ztwizard {__version__}", "session": session_id, "deletedBySession": deleted,
        "note": "Resources the wizard only patched carry the properties it set (and what their PUT requires). "
                "ARM applies a template's resource as a whole, even in Incremental mode: merge these "
                "properties into your own definition of the resource rather than deploying them alone."}
    if len(subs) > 1:  # one nested deployment per subscription, from a management group
        nested = []
        for sub in subs:
            inner = _for_subscription(state, sub, session_id, {}, force_subscription=True)
            inner.pop("metadata", None)
            nested.append({"type": "Microsoft.Resources/deployments", "apiVersion": DEPLOYMENT_API,
                           "name": f"ztwizard-{session_id}-{sub[:8]}", "subscriptionId": sub,
                           "location": "[deployment().location]",
                           "properties": {"mode": "Incremental", "expressionEvaluationOptions": {"scope": "inner"},
                                          "template": inner}})
        return {"$schema": MG_SCHEMA, "contentVersion": "1.0.0.0", "metadata": {**meta, "subscriptions": subs},
                "parameters": {}, "resources": nested}
    return _for_subscription(state, subs[0], session_id, meta)


def _for_subscription(state: dict[str, dict[str, Any]], sub: str, session_id: str, meta: dict[str, Any], *,
                      force_subscription: bool = False) -> dict[str, Any]:
    mine = [e for e in state.values() if (rid.parse(e["id"]).subscription or "").lower() == sub]
    by_rg: dict[str, list[dict[str, Any]]] = {}
    top: list[dict[str, Any]] = []
    for e in mine:
        rg = rid.parse(e["id"]).resource_group
        (by_rg.setdefault(rg, []) if rg else top).append(e)
    meta = {**meta, "subscription": sub}
    if not top and len(by_rg) == 1 and not force_subscription:
        (rg_name, entries), = by_rg.items()
        meta["resourceGroup"] = rg_name
        return {"$schema": RG_SCHEMA, "contentVersion": "1.0.0.0", "metadata": meta, "parameters": {},
                "resources": [_strip_metadata(_resource(e, in_rg=True)) for e in entries]}
    resources = [_strip_metadata(_resource(e, in_rg=False)) for e in top]
    for rg_name, entries in sorted(by_rg.items()):
        resources.append({
            "type": "Microsoft.Resources/deployments", "apiVersion": DEPLOYMENT_API,
            "name": f"ztwizard-{session_id}-{rg_name}"[:64], "resourceGroup": rg_name,
            "properties": {"mode": "Incremental", "expressionEvaluationOptions": {"scope": "inner"},
                           "template": {"$schema": RG_SCHEMA, "contentVersion": "1.0.0.0",
                                        "resources": [_strip_metadata(_resource(e, in_rg=True)) for e in entries]}}})
    return {"$schema": SUB_SCHEMA, "contentVersion": "1.0.0.0", "metadata": meta, "parameters": {},
            "resources": resources}


def resource_count(template: dict[str, Any]) -> int:
    """The resources a template declares, nested deployments counted by what they hold."""
    n = 0
    for res in template["resources"]:
        inner = get_path(res, "properties.template") if res["type"] == "Microsoft.Resources/deployments" else None
        n += resource_count(inner) if isinstance(inner, dict) else 1
    return n
