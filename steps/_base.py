"""What a step and a check are, the context a check's evaluator writes through, and the
evaluator of single-property checks (which are pure data in the article's TOML file)."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ztwizard import remedy
from ztwizard import resource_id as rid
from ztwizard.armjson import get_path, literal
from ztwizard.inventory import Inventory
from ztwizard.model import Change, CheckResult, Finding, Remediation, Status, change_id

from . import params as rules

REMEDIATIONS = ("auto-patch", "auto-put", "create", "advisory")

# What each label allows a check to emit. A `create` check builds what is missing and may also
# hook it up or update what exists (an association, a route); an auto fix writes one way only.
EMITS: dict[str, frozenset[str]] = {
    "auto-patch": frozenset({"auto-patch"}),
    "auto-put": frozenset({"auto-put"}),
    "create": frozenset({"create", "auto-patch", "auto-put"}),
    "advisory": frozenset(),
}

# Who fixes a failing finding of a check with each label (Finding.remediation): an evaluator
# says `remediation="manual"` for a resource it can propose no safe change for.
FIXED_BY: dict[str, Remediation] = {"auto-patch": "auto", "auto-put": "auto", "create": "create",
                                    "advisory": "manual"}

# Overrides of edited parameters: {change id: {parameter name: typed value}}.
Overrides = dict[str, dict[str, Any]]


class CatalogError(Exception):
    """The catalog itself is wrong (a bad data file, a check emitting what its label forbids).
    A bug in the package, not something a user can fix."""


def kind_of(change: Change) -> str:
    """The remediation kind a change is: a create, a PATCH, or a full PUT (a delete is a write
    of the whole resource too)."""
    if change.action == "create":
        return "create"
    return "auto-patch" if change.method == "PATCH" else "auto-put"


@dataclass(frozen=True)
class Param:
    """A choice a person may edit on a proposed create, e.g. the name of a new NSG."""

    name: str
    type: str  # str | int (what the builder receives)
    rule: str  # a rule of steps.params, e.g. name:networkSecurityGroups
    help: str

    def coerce(self, value: Any) -> Any:
        """The typed value, or rules.RuleError naming what the value is not."""
        return rules.coerce(self.rule, value)


Evaluate = Callable[..., Any]


@dataclass(frozen=True)
class Read:
    """A child read a check needs: `child` (full type) of every `of` resource, or only of those
    for which `when(parent, inventory so far)` holds. The inventory reads nothing else."""

    child: str
    of: str
    when: Callable[[dict[str, Any], Inventory], bool] | None = None

    def needed(self, parent: dict[str, Any], inv: Inventory) -> bool:
        return self.when is None or bool(self.when(parent, inv))


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    remediation: str  # one of REMEDIATIONS
    evaluate: Evaluate  # (Context) -> None when takes_context, else legacy (Inventory) -> CheckResult
    resource_type: str = ""
    mcsb: str = ""
    policy: str = ""
    risk: str = ""
    disruptive: bool = False
    billable: bool = False
    instruction: str = ""
    change_title: str = ""  # e.g. "Require TLS 1.2 on {name}"
    params: tuple[Param, ...] = ()
    takes_context: bool = False
    reads: tuple[Read, ...] = ()  # the child reads the evaluator needs (catalog `[[step.check.reads]]`)
    # An auto check whose parameter lets a person pick a create instead of the update (vm-6c: a
    # deny rule above the admitting one rather than narrowing it); the update stays the default.
    creates_by_choice: bool = False

    def emits(self) -> frozenset[str]:
        """The change kinds the check may propose."""
        return EMITS[self.remediation] | ({"create"} if self.creates_by_choice else frozenset())

    def fixed_by(self) -> frozenset[str]:
        """The remediations its failing findings may report."""
        return frozenset({"manual", FIXED_BY[self.remediation]} | ({"create"} if self.creates_by_choice else set()))

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def run(self, inv: Inventory, overrides: Overrides | None = None) -> CheckResult:
        """Evaluate, reporting a type the credential could not read as `error`. Raises
        CatalogError when the check emits a change its remediation label does not allow."""
        ctx = Context(self, inv, overrides or {})
        if self.resource_type and ctx.unreadable(self.resource_type):
            return ctx.result
        if self.takes_context:
            self.evaluate(ctx)
        else:  # the compatibility path for articles not yet converted
            legacy: CheckResult = self.evaluate(inv)
            for f in legacy.findings:
                ctx.result.findings.append(f)
            for c in legacy.changes:
                ctx.record(c)
        self.verify(ctx.result)
        return ctx.result

    def verify(self, result: CheckResult) -> None:
        """Raise CatalogError when the verdicts disagree with the label and the changes: a
        `manual` status is a person's judgement; a failure the wizard claims to fix comes with a
        change (and a change with such a failure); what a person must fix says how."""
        allowed = self.fixed_by()
        fixed = [f for f in result.findings if f.status == "fail" and f.remediation != "manual"]
        for f in result.findings:
            if f.status == "manual" and f.remediation != "manual":
                raise CatalogError(f"Check {self.id} reports {f.resource_id} as manual with remediation "
                                   f"{f.remediation!r}: a finding the wizard cannot judge has no fix.")
            if f.remediation not in allowed:
                raise CatalogError(f"Check {self.id} is labelled {self.remediation!r} but reports remediation "
                                   f"{f.remediation!r} for {f.resource_id}.")
            if f.status in ("fail", "manual") and f.remediation == "manual" and not f.message.strip():
                raise CatalogError(f"Check {self.id} leaves {f.resource_id} to a person without an instruction.")
        if fixed and not result.changes:
            raise CatalogError(f"Check {self.id} reports {fixed[0].resource_id} as fixed by {fixed[0].remediation!r} "
                               "but proposes no change.")
        if result.changes and not fixed:
            raise CatalogError(f"Check {self.id} proposes {len(result.changes)} change(s) but reports no failure "
                               "they fix.")


class Context:
    """What an evaluator writes through: it stamps the check's id on every finding and change,
    applies the check's data (change titles) and the person's parameter edits, and refuses a
    change of a kind the check's label does not allow."""

    def __init__(self, check: Check, inv: Inventory, overrides: Overrides) -> None:
        self.check = check
        self.inv = inv
        self.overrides = overrides
        self.result = CheckResult()

    # ---- findings ----
    def finding(self, resource_id: str, status: Status, property: str = "", actual: Any = None,
                expected: Any = None, message: str = "", *, remediation: Remediation | None = None) -> Finding:
        """A verdict on one resource. `remediation` defaults to what the check's label offers;
        pass "manual" for a failure the check proposes no change for (the message then says what
        a person must do). `manual` and `error` findings are always a person's to resolve."""
        if remediation is None:
            remediation = "manual" if status in ("manual", "error") else FIXED_BY[self.check.remediation]
        # one string per distinct message: a 10,000-resource plan has 36,000 findings and 3,800
        # messages, and held each finding's own copy (about 0.5 MB per 1,000 resources)
        f = Finding(self.check.id, resource_id, status, property, actual, expected, sys.intern(message), remediation)
        self.result.findings.append(f)
        return f

    def fail_by_hand(self, resource_id: str, property: str = "", actual: Any = None, expected: Any = None,
                     message: str = "") -> Finding:
        """The resource does not comply and a person must fix it: `message` says how."""
        return self.finding(resource_id, "fail", property, actual, expected, message, remediation="manual")

    def scope(self) -> str:
        return f"/subscriptions/{self.inv.subscriptions[0]}" if self.inv.subscriptions else ""

    def not_applicable(self, what: str) -> Finding:
        return self.finding(self.scope(), "not_applicable", message=f"No {what} in scope.")

    def unreadable(self, *types: str) -> bool:
        """For checks that reason across types: an `error` finding for each type they need that
        could not be read (a 403, a missing provider); True when there was one."""
        stopped = False
        for t in types:
            reason = self.inv.unreadable_reason(t)
            if reason:
                self.finding(self.scope(), "error", message=f"Could not read {t}: {reason}")
                stopped = True
        return stopped

    # ---- changes ----
    def record(self, change: Change) -> Change:
        if change.check != self.check.id:
            raise CatalogError(f"Check {self.check.id} emitted a change stamped {change.check}.")
        kind = kind_of(change)
        if kind not in self.check.emits():
            raise CatalogError(f"Check {self.check.id} is labelled {self.check.remediation!r} but proposed "
                               f"a {kind} change ({change.method} {change.resource_id}).")
        self.result.changes.append(change)
        return change

    def _title(self, resource_id: str, title: str | None, fields: dict[str, Any] | None) -> str:
        """An explicit title, else the check's `change_title` template filled with the changed
        resource's {name} and any `fields` the evaluator supplies."""
        if title is not None:
            return title
        if self.check.change_title:
            return sys.intern(self.check.change_title.format(**{"name": rid.parse(resource_id).name, **(fields or {})}))
        return ""

    def patch(self, res: dict[str, Any], values: dict[str, Any], *, title: str | None = None,
              fields: dict[str, Any] | None = None, **flags: Any) -> Change:
        """PATCH with only `values` ({dotted path: new value})."""
        return self.record(remedy.patch(self.check.id, res, values, title=self._title(res["id"], title, fields),
                                        **flags))

    def put(self, res: dict[str, Any], values: dict[str, Any], *, title: str | None = None,
            fields: dict[str, Any] | None = None, **flags: Any) -> Change:
        """Full-body PUT: the resource as read, with `values` set."""
        return self.record(remedy.put(self.check.id, res, values, title=self._title(res["id"], title, fields),
                                      **flags))

    def put_mutated(self, res: dict[str, Any], mutate: Callable[[dict[str, Any]], None], shown: list[str], *,
                    title: str | None = None, fields: dict[str, Any] | None = None, **flags: Any) -> Change:
        return self.record(remedy.put_mutated(self.check.id, res, mutate, shown,
                                              title=self._title(res["id"], title, fields), **flags))

    def create_id(self, anchor: str, check_id: str | None = None) -> str:
        """The id of the create that fixes `anchor` (what it is for, e.g. the subnet an NSG is
        for), not of its name: an edited name keeps the id the journal knows it by."""
        return change_id(check_id or self.check.id, f"create|{anchor}", "PUT")

    def change_id_of(self, res: dict[str, Any], check_id: str | None = None, method: str = "PUT") -> str:
        """The id of the update of `res` by this check (or `check_id`), to depend on it."""
        return change_id(check_id or self.check.id, res["id"], method)

    def params(self, anchor: str, **defaults: Any) -> dict[str, Any]:
        """The parameters of the create for `anchor`: the defaults computed from the inventory,
        with the person's edits (already validated by the engine) laid over them."""
        return self._params(self.create_id(anchor), defaults)

    def update_params(self, res: dict[str, Any], method: str = "PUT", **defaults: Any) -> dict[str, Any]:
        """The same for an update of `res` that carries editable choices (e.g. a scanning cap)."""
        return self._params(change_id(self.check.id, res["id"], method), defaults)

    def _params(self, key: str, defaults: dict[str, Any]) -> dict[str, Any]:
        for name in defaults:
            if self.check.param(name) is None:
                raise CatalogError(f"Check {self.check.id} uses parameter {name!r} that its data does not declare.")
        edited = self.overrides.get(key, {})
        return {**defaults, **{k: v for k, v in edited.items() if k in defaults}}

    def create(self, resource_id: str, body: dict[str, Any], *, anchor: str, params: dict[str, Any],
               title: str | None = None, fields: dict[str, Any] | None = None, **flags: Any) -> Change:
        """Create a new resource for `anchor`; `params` are the values from `params()`."""
        change = remedy.create(self.check.id, resource_id, body, params=params,
                               title=self._title(resource_id, title, fields), **flags)
        change.id = self.create_id(anchor)
        return self.record(change)


@dataclass(frozen=True)
class Step:
    id: str  # storage-1 … hub-4
    article: str  # storage | vm | spoke | hub
    number: int
    title: str
    why: str  # a short paraphrase of why the step matters
    checks: tuple[Check, ...] = field(default_factory=tuple)


def unreadable(inv: Inventory, check: str, *types: str) -> CheckResult | None:
    """For legacy checks that reason across types: an `error` finding for each type they need
    that could not be read, or None when all were read."""
    out = CheckResult()
    scope = f"/subscriptions/{inv.subscriptions[0]}" if inv.subscriptions else ""
    for t in types:
        reason = inv.unreadable_reason(t)
        if reason:
            out.findings.append(Finding(check, scope, "error", message=f"Could not read {t}: {reason}"))
    return out if out.findings else None


def memo(inv: Inventory, key: Any, build: Callable[[], Any]) -> Any:
    """A value derived from the inventory, computed once per inventory, so that checks over tens
    of thousands of resources stay linear. Recomputed if resources are added afterwards."""
    cache: dict[Any, Any] = inv.__dict__.setdefault("_catalog_memo", {})
    if cache.get("_size") != len(inv.resources):
        cache.clear()
        cache["_size"] = len(inv.resources)
    if key not in cache:
        cache[key] = build()
    return cache[key]


def not_applicable(check: str, what: str, inv: Inventory) -> Finding:
    scope = f"/subscriptions/{inv.subscriptions[0]}" if inv.subscriptions else ""
    return Finding(check=check, resource_id=scope, status="not_applicable",
                   message=f"No {what} in scope.")


# ---- single-property checks -----------------------------------------------------------------

@dataclass(frozen=True)
class Property:
    """The data of a check that judges one property of every resource of one type.

    `default` stands in for an absent property (the platform default); `compliant` lists the
    values that pass (default: `expected` alone); `fix` gives the values to set ({dotted path:
    value}). `fix_with` names a Python function of (resource, inventory) returning them instead,
    or None when no safe fix can be proposed for that resource; `applies`/`is_compliant` name
    Python predicates when the rule is more than a list of values; `caveat` names a function
    giving, for one failing resource, a note for the finding and the risk of its change."""

    path: str
    expected: Any
    what: str
    default: Any = None
    compliant: tuple[Any, ...] = ()
    fix: dict[str, Any] | None = None
    fix_with: Callable[[dict[str, Any], Inventory], dict[str, Any] | None] | None = None
    is_compliant: Callable[[Any], bool] | None = None
    applies: Callable[[dict[str, Any], Inventory], bool] | None = None
    caveat: Callable[[dict[str, Any], Inventory], tuple[str, str] | None] | None = None
    fail_message: str = ""
    ignore_case: bool = False

    def ok(self, value: Any) -> bool:
        if self.is_compliant is not None:
            return self.is_compliant(value)
        allowed = self.compliant or (self.expected,)
        if self.ignore_case and isinstance(value, str):
            return value.lower() in {str(a).lower() for a in allowed}
        return value in allowed


def evaluate_property(spec: Property) -> Callable[[Context], None]:
    """The evaluator of a single-property check: pass, or fail with a fix, or fail with the
    check's instruction and remediation manual (advisory checks, or resources no safe fix
    exists for): the property is read, so compliance is always known."""

    def evaluate(ctx: Context) -> None:
        check, inv = ctx.check, ctx.inv
        targets = [r for r in inv.of_type(check.resource_type) if spec.applies is None or spec.applies(r, inv)]
        if not targets:
            ctx.not_applicable(spec.what)
            return
        leaf = spec.path.rsplit(".", 1)[-1]
        for res in targets:
            actual = get_path(res, spec.path)
            if actual is None:
                actual = spec.default
            if spec.ok(actual):
                ctx.finding(res["id"], "pass", spec.path, actual, spec.expected, f"{leaf} is {literal(actual)}.")
                continue
            msg = spec.fail_message or f"{leaf} is {literal(actual)}; expected {literal(spec.expected)}."
            values = None
            if check.remediation != "advisory":
                values = spec.fix_with(res, inv) if spec.fix_with else copy.deepcopy(spec.fix)
            if not values:  # known not to comply, but a person must fix it
                ctx.finding(res["id"], "fail", spec.path, actual, spec.expected, f"{msg} {check.instruction}".strip(),
                            remediation="manual")
                continue
            risk = check.risk
            caveat = spec.caveat(res, inv) if spec.caveat else None
            if caveat:
                msg, risk = f"{msg} {caveat[0]}", caveat[1]
            ctx.finding(res["id"], "fail", spec.path, actual, spec.expected, msg)
            write = ctx.patch if check.remediation == "auto-patch" else ctx.put
            write(res, values, risk=risk, disruptive=check.disruptive, billable=check.billable)

    return evaluate


def property_check(
    *,
    id: str,
    title: str,
    resource_type: str,
    path: str,
    expected: Any,
    remediation: str,
    compliant: Callable[[Any], bool] | None = None,
    default: Any = None,
    fix: dict[str, Any] | Callable[[dict[str, Any], Inventory], dict[str, Any] | None] | None = None,
    applies: Callable[[dict[str, Any], Inventory], bool] | None = None,
    instruction: str = "",
    what: str = "",
    risk: str = "",
    disruptive: bool = False,
    billable: bool = False,
    mcsb: str = "",
    policy: str = "",
    fail_message: str = "",
    change_title: str = "",
) -> Check:
    """A single-property check declared in Python, for the articles not yet moved to TOML."""
    spec = Property(path=path, expected=expected, what=what or resource_type.rsplit("/", 1)[-1],
                    default=default, fix=None if callable(fix) else fix,
                    fix_with=fix if callable(fix) else None, is_compliant=compliant, applies=applies,
                    fail_message=fail_message)
    return Check(id=id, title=title, remediation=remediation, evaluate=evaluate_property(spec),
                 resource_type=resource_type, mcsb=mcsb, policy=policy, risk=risk, disruptive=disruptive,
                 billable=billable, instruction=instruction, change_title=change_title, takes_context=True)


def merge(results: Iterable[CheckResult]) -> CheckResult:
    out = CheckResult()
    for r in results:
        out.findings.extend(r.findings)
        out.changes.extend(r.changes)
    return out
