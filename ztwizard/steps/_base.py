"""What a step and a check are, and the declarative form most checks take."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .. import remedy
from ..inventory import Inventory
from ..model import Change, CheckResult, Finding
from ..paths import get_path

Evaluate = Callable[[Inventory], CheckResult]

REMEDIATIONS = ("auto-patch", "auto-put", "create", "advisory")


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    remediation: str  # one of REMEDIATIONS
    evaluate: Evaluate
    resource_type: str = ""
    mcsb: str = ""
    policy: str = ""
    risk: str = ""
    disruptive: bool = False
    billable: bool = False

    def run(self, inv: Inventory) -> CheckResult:
        """Evaluate, reporting a type the credential could not read as `error`."""
        if self.resource_type:
            stop = unreadable(inv, self.id, self.resource_type)
            if stop:
                return stop
        return self.evaluate(inv)


@dataclass(frozen=True)
class Step:
    id: str  # storage-1 … hub-4
    article: str  # storage | vm | spoke | hub
    number: int
    title: str
    why: str  # a short paraphrase of why the step matters
    checks: tuple[Check, ...] = field(default_factory=tuple)


ARTICLES: dict[str, str] = {
    "storage": "Azure Storage",
    "vm": "Virtual machines",
    "spoke": "Spoke virtual network",
    "hub": "Hub virtual network",
}


def unreadable(inv: Inventory, check: str, *types: str) -> CheckResult | None:
    """For checks that reason across types: an `error` finding for each type they need that
    could not be read (a 403, a missing provider), or None when all were read."""
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
) -> Check:
    """A check that judges one property of every resource of one type.

    `default` stands in for an absent property (the platform default). `compliant` defaults to
    equality with `expected`. `fix` gives the values to set ({dotted path: value}, or a function
    of the resource returning them, or None when no safe fix can be proposed for it). For
    advisory checks `instruction` is the concrete thing a person must do; the finding is then
    `manual` rather than `fail`."""
    is_ok = compliant or (lambda v: v == expected)
    what = what or resource_type.rsplit("/", 1)[-1]

    def evaluate(inv: Inventory) -> CheckResult:
        out = CheckResult()
        targets = [r for r in inv.of_type(resource_type) if applies is None or applies(r, inv)]
        if not targets:
            out.findings.append(not_applicable(id, what, inv))
            return out
        for res in targets:
            actual = get_path(res, path)
            if actual is None:
                actual = default
            if is_ok(actual):
                out.findings.append(Finding(id, res["id"], "pass", path, actual, expected,
                                            f"{path.rsplit('.', 1)[-1]} is {actual!r}."))
                continue
            msg = fail_message or f"{path.rsplit('.', 1)[-1]} is {actual!r}; expected {expected!r}."
            if remediation == "advisory":
                out.findings.append(Finding(id, res["id"], "manual", path, actual, expected,
                                            f"{msg} {instruction}".strip()))
                continue
            values = fix(res, inv) if callable(fix) else fix
            if not values:
                out.findings.append(Finding(id, res["id"], "manual", path, actual, expected,
                                            f"{msg} {instruction}".strip()))
                continue
            out.findings.append(Finding(id, res["id"], "fail", path, actual, expected, msg))
            out.changes.append(make_change(id, remediation, res, values, title=title, risk=risk,
                                           disruptive=disruptive, billable=billable))
        return out

    return Check(id=id, title=title, remediation=remediation, evaluate=evaluate,
                 resource_type=resource_type, mcsb=mcsb, policy=policy, risk=risk,
                 disruptive=disruptive, billable=billable)


def make_change(check: str, remediation: str, res: dict[str, Any], values: dict[str, Any], **flags: Any) -> Change:
    if remediation == "auto-patch":
        return remedy.patch(check, res, values, **flags)
    return remedy.put(check, res, values, **flags)


def merge(results: Iterable[CheckResult]) -> CheckResult:
    out = CheckResult()
    for r in results:
        out.findings.extend(r.findings)
        out.changes.extend(r.changes)
    return out
