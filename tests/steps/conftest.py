"""Shared helpers for the catalog tests: apply a proposed Change to plain resources and re-check.

Proof that a proposal works is that, once its body is applied the way ARM would apply it, the
same check passes. ARM's semantics here (from ztwizard.armjson): PATCH merges (lists replaced,
null removes), PUT replaces the resource, a create adds it, DELETE removes it."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import pytest

from ztwizard.armjson import INLINE_CHILDREN, inline_holder, inline_lists, merge
from ztwizard.inventory import Inventory
from ztwizard.model import Change, CheckResult
from ztwizard.resource_id import parse

SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-workload"


def apply_change(inv: Inventory, change: Change) -> Inventory:
    """A new Inventory with `change` applied to a copy of the resources of `inv`."""
    res = {k: copy.deepcopy(v) for k, v in inv.resources.items()}
    key = change.resource_id.rstrip("/").lower()
    p = parse(change.resource_id)
    if change.method == "DELETE":
        res.pop(key, None)
        _drop_descendants(res, key)
        # also drop it from the parent's inline list, as ARM would
        parent = res.get((p.parent or "").lower())
        if parent is not None:
            for path, _seg in INLINE_CHILDREN.get(parent["type"].lower(), []):
                _prune_inline(parent, path, key)
    elif change.method == "PATCH":
        assert key in res, f"PATCH of a resource not in the inventory: {change.resource_id}"
        res[key] = merge(res[key], change.body or {})
    else:  # PUT: replace (update) or add (create)
        body = copy.deepcopy(change.body or {})
        body["id"] = change.resource_id
        body.setdefault("name", p.name)
        body.setdefault("type", p.type)
        if key in res:
            # inline children in the body become the truth; drop the old child entries
            for _path, seg, _kids in inline_lists(body):
                _drop_descendants(res, key, seg)
        res[key] = body  # a child's copy in its parent's inline list is rebuilt by normalize
    return Inventory.from_resources(res.values(), subscriptions=inv.subscriptions,
                                    resource_groups=inv.resource_groups)


def _drop_descendants(res: dict[str, dict[str, Any]], key: str, seg: str | None = None) -> None:
    prefix = key + "/" + (seg.lower() + "/" if seg else "")
    for k in [k for k in res if k.startswith(prefix)]:
        del res[k]


def _prune_inline(parent: dict[str, Any], path: str, child_key: str) -> None:
    holder, prop = inline_holder(parent, path)
    if holder is not None and isinstance(holder[prop], list):
        holder[prop] = [c for c in holder[prop]
                        if not (isinstance(c, dict) and (c.get("id") or "").lower() == child_key)]


def apply_all(inv: Inventory, changes: Iterable[Change]) -> Inventory:
    """Apply changes in dependency order (a change after the ones it depends on)."""
    pending = list(changes)
    done: set[str] = set()
    while pending:
        ready = [c for c in pending if all(d in done or d not in {x.id for x in pending}
                                           for d in c.depends_on)]
        assert ready, "dependency cycle among proposed changes"
        for c in ready:
            inv = apply_change(inv, c)
            done.add(c.id)
            pending.remove(c)
    return inv


def verdicts(result: CheckResult, resource_id: str | None = None) -> list[str]:
    """Each finding as status/remediation, e.g. "fail/manual": non-compliant, a person fixes it."""
    return [f"{f.status}/{f.remediation}" for f in result.findings
            if resource_id is None or f.resource_id.lower() == resource_id.lower()]


def statuses(result: CheckResult, resource_id: str | None = None) -> list[str]:
    return [f.status for f in result.findings
            if resource_id is None or f.resource_id.lower() == resource_id.lower()]


@pytest.fixture
def sub() -> str:
    return SUB


def sandbox_round_trip(step_ids: list[str], state_dir: Any, *, skip_checks: Iterable[str] = ()) -> Any:
    """Plan `step_ids` on the reference estate in the sandbox, apply every proposal through the
    gateway (real azure-mgmt clients and pipeline), and plan again.

    Returns (findings before, findings after, apply report); findings are keyed by
    (check, lower-cased resource id) and hold the status, "fail/manual" for a failure a person
    must fix (no proposal can turn it into a pass)."""
    from ztwizard.apply import apply_changes, start_session
    from ztwizard.engine import inspect
    from ztwizard.gateway import Gateway
    from ztwizard.journal import Journal
    from ztwizard.sandbox import Sandbox
    from ztwizard.sandbox.estates import load_estate
    from ztwizard.target import in_process_target

    gw = Gateway(in_process_target(Sandbox(None, estate=load_estate("reference"), lro_seconds=0)))
    plan = inspect(gw, step_ids=step_ids)
    skip = set(skip_checks)
    changes = [c for c in plan.changes() if c.check not in skip]
    journal = Journal(state_dir)
    try:
        session = start_session(journal, gw, changes)
        report = apply_changes(gw, journal, session, changes, allow_disruptive=True, allow_cost=True)
    finally:
        journal.close()
    after = inspect(gw, step_ids=step_ids)

    def keyed(p: Any) -> dict[tuple[str, str], str]:
        return {(f.check, f.resource_id.lower()): "fail/manual" if (f.status, f.remediation) == ("fail", "manual")
                else f.status for s in p.steps for f in s.findings}

    return keyed(plan), keyed(after), report
