"""Inspect and preview: run the catalog's checks over an inventory and assemble the plan.

Pure and synchronous; the CLI and the TUI both call it, the TUI from a worker thread."""

from __future__ import annotations

import difflib
import gc
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .armjson import one_way
from .errors import ParamError, UsageError
from .inventory import Inventory
from .model import Change, Finding, StepResult, worst
from .ports import ArmGateway
from .resource_id import is_guid
from .resource_id import type_of as rid_type
from .steps import CHECK_BY_ID, STEP_BY_ID, STEP_OF_CHECK, STEPS, Step
from .steps._base import Overrides, Read
from .steps.params import RuleError

Progress = Callable[[int, int, str], None]
OnStep = Callable[[StepResult], None]  # a step's result, as soon as it is judged
INVENTORY_PHASES = 4  # the gateway reports reading the inventory in four phases


@dataclass
class Plan:
    target: dict[str, Any]
    steps: list[StepResult]
    generated_at: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    # parameters a person edited, {change id: {name: value}}: re-planning keeps them
    overrides: Overrides = field(default_factory=dict)
    # What the plan left out and why (expired waivers, changes outside -g): {kind, message, …}.
    notes: list[dict[str, Any]] = field(default_factory=list)

    def step(self, step_id: str) -> StepResult:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def changes(self) -> list[Change]:
        """Every proposed change, prerequisites first."""
        return order_changes([c for s in self.steps for c in s.changes])

    def summary(self) -> dict[str, int]:
        out = {"steps": len(self.steps), "pass": 0, "fail": 0, "manual": 0, "error": 0, "not_applicable": 0}
        for s in self.steps:
            out[s.status] += 1
        out["changes"] = sum(len(s.changes) for s in self.steps)
        out["waived"] = sum(1 for s in self.steps for f in s.findings if f.waiver)
        return out

    def has_changes(self) -> bool:
        return any(s.changes for s in self.steps)

    def failing(self) -> list[Finding]:
        """Unwaived findings of resources that do not comply, whoever fixes them."""
        return [f for s in self.steps for f in s.findings if f.status == "fail" and not f.waiver]

    def compliant(self) -> bool:
        """Nothing to change: no change pending and no failure left to a person
        (`--detailed-exitcode` 0)."""
        return not self.has_changes() and not self.failing()

    def to_dict(self, *, copy: bool = True, steps: bool = True) -> dict[str, Any]:
        """The plan as JSON data; `copy=False` shares the change bodies (for reports that only read);
        `steps=False` leaves "steps" empty, for a report that renders them one at a time."""
        out = {"schema": "ztwizard.plan/v1", "target": self.target, "generated_at": self.generated_at,
               "summary": self.summary(), "notes": self.notes,
               "steps": [s.to_dict(copy=copy) for s in self.steps] if steps else []}
        if self.overrides:
            out["overrides"] = self.overrides
        return out


def validate_selection(step_ids: Iterable[str] = (), check_ids: Iterable[str] = ()) -> None:
    """Unknown ids are a usage error naming the closest real id."""
    for sid in step_ids:
        if sid not in STEP_BY_ID:
            raise UsageError(f"Unknown step id {sid!r}.", hint=_suggest(sid, STEP_BY_ID, "steps"))
    for cid in check_ids:
        if cid not in CHECK_BY_ID:
            raise UsageError(f"Unknown check id {cid!r}.", hint=_suggest(cid, CHECK_BY_ID, "steps"))


def validate_subscriptions(subscriptions: Iterable[str]) -> None:
    for sub in subscriptions:
        if not is_guid(sub):
            raise UsageError(f"Subscription id {sub!r} is not a GUID.",
                             hint="Pass the subscription's id (e.g. 00000000-0000-0000-0000-000000000000), not its name.")


# Azure's naming rules (Learn, "Naming rules and restrictions for Azure resources"): a management
# group id is 1-90 letters, digits, hyphens, underscores, periods and parentheses; a resource group
# name 1-90 of those with Unicode letters and digits; neither ends in a period. The id goes into a
# URL path, so one outside the rule is refused before it is sent.
_MANAGEMENT_GROUP_ID = re.compile(r"[A-Za-z0-9_.()-]{1,90}")


def validate_management_groups(groups: Iterable[str]) -> None:
    for group in groups:
        if not _MANAGEMENT_GROUP_ID.fullmatch(group) or group.endswith("."):
            raise UsageError(f"Management group id {group!r} is not valid: 1-90 letters, digits, '-', '_', '.', "
                             "'(' or ')', not ending in a period.",
                             hint="Pass the group's id (its name, e.g. mg-corp), not its display name.")


def validate_resource_groups(groups: Iterable[str]) -> None:
    for group in groups:
        if not (0 < len(group) <= 90 and all(c.isalnum() or c in "_-.()" for c in group)) or group.endswith("."):
            raise UsageError(f"Resource group name {group!r} is not valid: 1-90 letters, digits, '-', '_', '.', "
                             "'(' or ')', not ending in a period.",
                             hint="Pass the resource group's name (e.g. rg-vms) to -g, not its id.")


def _suggest(value: str, known: Iterable[str], listing: str) -> str:
    close = difflib.get_close_matches(value, list(known), n=1)
    more = f" `ztwizard {listing}` lists them all."
    return (f"Did you mean {close[0]!r}?" + more) if close else more.strip()


def selected_steps(step_ids: Iterable[str] = (), check_ids: Iterable[str] = ()) -> list[tuple[Step, list[str]]]:
    """The steps to run, each with the ids of the checks to run in it, in catalog order."""
    step_ids, check_ids = list(step_ids), list(check_ids)
    validate_selection(step_ids, check_ids)
    wanted_steps = set(step_ids) | {STEP_OF_CHECK[c].id for c in check_ids}
    out = []
    for step in STEPS:
        if wanted_steps and step.id not in wanted_steps:
            continue
        ids = [c.id for c in step.checks]
        if check_ids and step.id not in step_ids:
            ids = [c for c in ids if c in check_ids]
        out.append((step, ids))
    return out


def make_plan(inventory: Inventory, *, target: dict[str, Any] | None = None, step_ids: Iterable[str] = (),
              check_ids: Iterable[str] = (), api_version_for: Callable[[str], str] | None = None,
              progress: Progress | None = None, on_step: OnStep | None = None,
              overrides: Overrides | None = None) -> Plan:
    """`overrides` are parameter edits from an earlier plan (Plan.overrides), applied again."""
    selection = selected_steps(step_ids, check_ids)
    results = []
    for i, (step, ids) in enumerate(selection):
        if progress:
            progress(i, len(selection), step.id)
        results.append(run_step(inventory, step, ids, api_version_for, overrides))
        if on_step:
            on_step(results[-1])
    if progress:
        progress(len(selection), len(selection), "done")
    tgt = dict(target or {})
    tgt.setdefault("subscriptions", list(inventory.subscriptions))
    return Plan(target=tgt, steps=results, overrides=dict(overrides or {}))


def run_step(inventory: Inventory, step: Step, check_ids: list[str] | None = None,
             api_version_for: Callable[[str], str] | None = None,
             overrides: Overrides | None = None) -> StepResult:
    findings: list[Finding] = []
    changes: list[Change] = []
    for check in step.checks:
        if check_ids is not None and check.id not in check_ids:
            continue
        try:
            result = check.run(inventory, overrides)
        except Exception as exc:  # a check bug must not sink the whole plan
            findings.append(Finding(check=check.id, resource_id="", status="error",
                                    message=f"The check failed to evaluate: {exc.__class__.__name__}: {exc}"))
            continue
        findings.extend(result.findings)
        changes.extend(result.changes)
    for c in changes:
        if api_version_for and not c.api_version:
            c.api_version = api_version_for(c.resource_id)
        if c.action == "update" and not c.one_way:
            c.one_way = one_way(rid_type(c.resource_id), c.method, c.before, c.after)
    return StepResult(id=step.id, article=step.article, number=step.number, title=step.title,
                      status=worst([f.status for f in findings]), findings=findings,
                      changes=order_changes(changes))


def edit_change(inventory: Inventory, plan: Plan, change_id: str, values: dict[str, str]) -> Plan:
    """Set parameters of one proposed change and re-run its check's builder with them.

    Each value is validated and coerced by the rule its check declares; on any bad value
    ParamError is raised and the plan is left as it was. The edit is kept in `plan.overrides`,
    so re-planning with them (make_plan(..., overrides=plan.overrides)) proposes the same. The
    change keeps its id (a create's id comes from what it is for, not its name); the change's
    step is planned again, so the changes that refer to it (an association, a route) are
    rebuilt with it. Returns `plan`, that step replaced."""
    found = [(i, c) for i, s in enumerate(plan.steps) for c in s.changes if c.id == change_id]
    if not found:
        known = [c.id for s in plan.steps for c in s.changes if c.params]
        close = difflib.get_close_matches(change_id, known, n=1)
        raise ParamError(f"No proposed change has the id {change_id!r}.",
                         hint=f"Did you mean {close[0]!r}?" if close else
                         (f"Editable changes: {', '.join(known[:5])}." if known else "This plan has no editable change."))
    index, change = found[0]
    check = CHECK_BY_ID[change.check]
    editable = {p.name: p for p in check.params if p.name in change.params}
    if not editable:
        raise ParamError(f"Change {change_id} has no parameters to edit.",
                         hint="Only changes that list parameters (e.g. a new resource's name) can be edited.")
    typed: dict[str, Any] = {}
    for name, raw in values.items():
        param = editable.get(name)
        if param is None:
            raise ParamError(f"Change {change_id} has no parameter {name!r}.",
                             hint=f"Its parameters: {', '.join(editable)}.")
        try:
            typed[name] = param.coerce(raw)
        except RuleError as exc:
            raise ParamError(f"Parameter {name} = {str(raw)!r} is not {exc}.", hint=param.help) from None
    overrides = {**plan.overrides, change_id: {**plan.overrides.get(change_id, {}), **typed}}
    old = plan.steps[index]
    # the whole step again, so that changes of its other checks that refer to this one follow
    ran = list(dict.fromkeys([f.check for f in old.findings] + [c.check for c in old.changes]))
    new = run_step(inventory, STEP_BY_ID[old.id], ran, None, overrides)
    errors = [f.message for f in new.findings if f.status == "error" and f.check == check.id]
    if errors:
        raise ParamError(f"With that value check {check.id} cannot build its change: {errors[0]}",
                         hint="Choose another value.")
    edited = next((c for c in new.changes if c.id == change_id), None)
    if edited is None:
        raise ParamError(f"With {', '.join(f'{k}={v!r}' for k, v in values.items())} the check {check.id} no "
                         f"longer proposes change {change_id}.", hint="Choose a value that fits the finding it fixes.")
    if edited.action == "create" and edited.resource_id.lower() != change.resource_id.lower() \
            and inventory.get(edited.resource_id) is not None:
        raise ParamError(f"{edited.resource_id} already exists; a create would overwrite it.",
                         hint="Choose a name no resource of that type in the group has.")
    versions = {c.id: c.api_version for c in old.changes}
    by_type = {rid_type(c.resource_id): c.api_version for c in old.changes}
    for c in new.changes:
        c.api_version = c.api_version or versions.get(c.id) or by_type.get(rid_type(c.resource_id), "")
    plan.steps[index] = new
    plan.overrides = overrides
    return plan


def order_changes(changes: list[Change]) -> list[Change]:
    """Topological order on depends_on (and instead_of: the broader change goes first),
    otherwise keeping the given order (stable)."""
    by_id = {c.id: c for c in changes}
    done: set[str] = set()
    out: list[Change] = []

    def visit(c: Change, stack: set[str]) -> None:
        if c.id in done or c.id in stack:
            return
        stack.add(c.id)
        for dep in [*c.depends_on, *([c.instead_of] if c.instead_of else [])]:
            if dep in by_id:
                visit(by_id[dep], stack)
        stack.discard(c.id)
        done.add(c.id)
        out.append(c)

    for c in changes:
        visit(c, set())
    return out


@dataclass
class Survey:
    """A plan with the inventory it was judged on (editing a parameter re-runs a check over it)."""

    inventory: Inventory
    plan: Plan


def needed_reads(step_ids: Iterable[str] = (), check_ids: Iterable[str] = ()) -> list[Read]:
    """The child reads the selected checks declare (`[[step.check.reads]]` in the catalog)."""
    return [r for step, ids in selected_steps(step_ids, check_ids)
            for c in step.checks if c.id in ids for r in c.reads]


def survey(gateway: ArmGateway, *, step_ids: Iterable[str] = (), check_ids: Iterable[str] = (),
           subscriptions: Iterable[str] | None = None, resource_groups: Iterable[str] | None = None,
           progress: Progress | None = None, on_step: OnStep | None = None,
           overrides: Overrides | None = None, use_graph: bool = True) -> Survey:
    """Inventory the target's scope through the gateway and plan the selected steps. `progress`
    counts the inventory's phases, then one per step; `on_step` gets each result when ready;
    `overrides` are parameter edits kept from an earlier plan; `use_graph=False` reads ARM itself
    (after a write: Resource Graph lags it)."""
    step_ids, check_ids = list(step_ids), list(check_ids)
    total = INVENTORY_PHASES + len(selected_steps(step_ids, check_ids))  # validates the ids first

    def inventory_progress(done: int, _total: int, label: str) -> None:
        if progress:
            progress(min(done, INVENTORY_PHASES), total, label)

    def step_progress(done: int, _total: int, label: str) -> None:
        if progress:
            progress(INVENTORY_PHASES + done, total, label)

    inv = gateway.inventory(subscriptions=subscriptions, resource_groups=resource_groups,
                            progress=inventory_progress, use_graph=use_graph,
                            reads=needed_reads(step_ids, check_ids))
    target = gateway.target.describe()
    target["subscriptions"] = list(inv.subscriptions)
    # The inventory lives as long as the plan and holds no cycles: keep the cyclic collector
    # from walking it again and again while the plan is built (at 50,000 resources that walk
    # took a third of the planning time). Reference counting still frees it.
    gc.freeze()
    paused = gc.isenabled()
    gc.disable()
    try:
        plan = make_plan(inv, target=target, step_ids=step_ids, check_ids=check_ids,
                         api_version_for=gateway.api_version_for, progress=step_progress, on_step=on_step,
                         overrides=overrides)
        # The plan lives as long as its report, acyclic too: rendering it allocates a scrubbed
        # copy of every finding, and each full collection would walk all of the plan again
        # (a third of a 50,000-resource JSON report).
        gc.freeze()
    finally:
        if paused:
            gc.enable()
    for sid, name, state in getattr(gateway, "skipped_subscriptions", None) or []:
        plan.notes.append({"kind": "subscription_skipped", "subscription": sid, "state": state,
                           "message": f"Subscription {name} ({sid}) is skipped: it is {state}."})
    return Survey(inv, plan)


def inspect(gateway: ArmGateway, *, step_ids: Iterable[str] = (), check_ids: Iterable[str] = (),
            subscriptions: Iterable[str] | None = None, resource_groups: Iterable[str] | None = None,
            progress: Progress | None = None, on_step: OnStep | None = None, use_graph: bool = True) -> Plan:
    """Inventory the target's scope through the gateway and plan the selected steps."""
    return survey(gateway, step_ids=step_ids, check_ids=check_ids, subscriptions=subscriptions,
                  resource_groups=resource_groups, progress=progress, on_step=on_step,
                  use_graph=use_graph).plan
