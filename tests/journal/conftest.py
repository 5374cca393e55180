"""A world for journal tests: an in-process sandbox, a gateway on it through the real azure-mgmt
clients, and a journal in a temporary state dir; or (`served`) a sandbox served in its own process."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ztwizard.armjson import PLATFORM_DEFAULTS, get_path, remove_path
from ztwizard.gateway import Gateway
from ztwizard.journal import Journal
from ztwizard.sandbox import Sandbox
from ztwizard.target import in_process_target

from .served import Served

# What ARM changes on every write. resourceGuid is server-assigned and kept by real ARM across a
# PUT; the sandbox drops it when a PUT body omits it, so it is left out of comparisons too.
VOLATILE = {"etag", "provisioningState", "resourceGuid", "tenantId"}
# Fields a provider fills in when it answers a write (a Defender plan's enforcement and coverage)
# that the estate's first read did not carry: not a property anyone set.
PROVIDER_FILLED = {"microsoft.security/pricings": ("properties.enforce", "properties.resourcesCoverageStatus"),
                   # read-only in the route spec: the provider's, and not kept by the sandbox over a PUT
                   "microsoft.network/routetables/routes": ("properties.hasBgpOverride",),
                   # Resource Graph's field, not in the NIC's ARM schema: a PUT drops it
                   "microsoft.network/networkinterfaces": ("kind",)}


def comparable(export: list[dict[str, Any]]) -> dict[str, Any]:
    """An export keyed by id, without what ARM changes on every write (etags, provisioning states),
    with explicit nulls dropped (ARM treats null and absent alike) and a property at its
    documented platform default dropped too (undo spells `encryptionAtHost: false` out where the
    property was absent: ARM means the same)."""

    def strip(o: Any) -> Any:
        if isinstance(o, dict):
            kept = {k: strip(v) for k, v in o.items() if k not in VOLATILE and v is not None}
            return {k: v for k, v in kept.items() if v != {}}  # an emptied object is absent too
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o

    def at_default_dropped(r: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(r)
        for path in PROVIDER_FILLED.get(str(r.get("type", "")).lower(), ()):
            remove_path(out, path)
        for path, default in PLATFORM_DEFAULTS.get(str(r.get("type", "")).lower(), {}).items():
            if get_path(out, path) == default and type(get_path(out, path)) is type(default):
                remove_path(out, path)
        return out

    def power_apart(r: dict[str, Any]) -> dict[str, Any]:
        # A VM's power state is its instance view, not a property (the export spells it only once
        # it moved): estate_view compares it as ARM's instance view reports it.
        if str(r.get("type", "")).lower() == "microsoft.compute/virtualmachines":
            r = copy.deepcopy(r)
            remove_path(r, "properties.instanceView")
        return r

    return {r["id"].lower(): strip(at_default_dropped(power_apart(r))) for r in export
            if "/providers/microsoft.features/" not in r["id"].lower()}  # registrations are the person's


def without_one_way(view: dict[str, Any], journal: Journal, session_id: str) -> dict[str, Any]:
    """`view` without the properties of the session's one-way changes (labelled so in the plan,
    left in place by undo: ARM keeps them once set)."""
    from ztwizard.armjson import leaves
    from ztwizard.undo import one_way_of

    out = copy.deepcopy(view)
    for rec in journal.changes(session_id):
        if one_way_of(rec) and out.get(rec.resource_id.lower()):
            for path in leaves(rec.plan_after):
                for n in range(len(path), 0, -1):  # the property, then the objects it emptied
                    if n == len(path) or get_path(out[rec.resource_id.lower()], path[:n]) == {}:
                        remove_path(out[rec.resource_id.lower()], path[:n])
    return out


# Service children that ARM always answers for (with defaults) although no one created them; the
# sandbox stores them only once written, so estates compare them as ARM shows them.
SERVICES = ("blobServices/default", "fileServices/default")


def estate_view(export: list[dict[str, Any]], gateway: Any) -> dict[str, Any]:
    """What ARM shows: the export, with each storage account's service children read through ARM."""
    view = comparable(export)
    for res in export:
        if str(res.get("type", "")).lower() == "microsoft.compute/virtualmachines":
            view[f"{res['id'].lower()}#power"] = gateway.power_state(res["id"])
    accounts = [r["id"] for r in export if r.get("type", "").lower() == "microsoft.storage/storageaccounts"]
    for account in accounts:
        for svc in SERVICES:
            cid = f"{account}/{svc}"
            res = gateway.read(cid)
            view[cid.lower()] = comparable([res])[cid.lower()] if res else None
    # Defender plans exist on every subscription (Free until set); read them as ARM shows them.
    subs = {r["id"].split("/")[2] for r in export if r["id"].lower().startswith("/subscriptions/")}
    for sub in subs:
        for plan in ("VirtualMachines", "StorageAccounts", "CloudPosture", "Arm"):
            pid = f"/subscriptions/{sub}/providers/Microsoft.Security/pricings/{plan}"
            res = gateway.read(pid)
            view[pid.lower()] = comparable([res])[pid.lower()] if res else None
    return view


@dataclass
class World:
    sb: Any
    gw: Gateway
    journal: Journal
    state_dir: Path

    def gateway(self, **kw: Any) -> Gateway:
        return Gateway(in_process_target(self.sb, **kw))

    def view(self) -> dict[str, Any]:
        return estate_view(self.sb.export(), self.gw)

    def register_feature(self, namespace: str, name: str) -> None:
        """What `az feature register` does, in every subscription: POST the Features API."""
        register_feature(self.gw, namespace, name)


def register_feature(gw: Gateway, namespace: str, name: str) -> None:
    from azure.core.rest import HttpRequest

    for sub in gw.list_subscriptions():
        url = (f"/subscriptions/{sub}/providers/Microsoft.Features/providers/{namespace}/features/{name}/register"
               "?api-version=2021-07-01")
        resp = gw.client("resources", sub).send_request(HttpRequest("POST", url))
        assert resp.status_code == 200, resp.text()
        assert gw.feature_state(sub, namespace, name) == "Registered"


@pytest.fixture
def world(tmp_path, small_estate):
    def make(estate: Any = None, **knobs: Any) -> World:
        knobs.setdefault("lro_seconds", 0)
        sb = Sandbox(None, estate=small_estate if estate is None else estate, **knobs)
        state = tmp_path / "state"
        w = World(sb, Gateway(in_process_target(sb)), Journal(state), state)
        made.append(w)
        return w

    made: list[World] = []
    yield make
    for w in made:
        w.journal.close()


@pytest.fixture
def served(tmp_path: Path, small_estate: list[dict[str, Any]]) -> Iterator[Callable[..., Served]]:
    """start(*serve options, name=state dir under tmp_path) -> a running Served on the small estate."""
    estate = tmp_path / "estate.json"
    estate.write_text(json.dumps(small_estate))
    started: list[Served] = []

    def start(*extra: str, name: str = "state") -> Served:
        s = Served(tmp_path / name, estate, *extra)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
