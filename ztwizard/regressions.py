"""`plan --since SESSION`: what a past session hardened that no longer holds.

A finding is a regression when it is `fail` now (and not waived) and the session applied a change
of the same check to the same resource, or to a resource it contains or sits in (a subnet of the
VNet the session PUT, the account whose fileServices/default it set), and did not take it back.
Each carries `regressed_since` (when the fixing change was applied: it has regressed at some point
since) and `fixed_by` (that change), and the change the plan now proposes for it, if any."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .engine import selected_steps
from .model import Change, Finding
from .plandiff import target

KEPT = ("applied", "adopted")


@dataclass
class Regression:
    finding: Finding
    regressed_since: str
    fixed_by: dict[str, Any]
    proposed: list[Change] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**self.finding.to_dict(), "regressed_since": self.regressed_since, "fixed_by": self.fixed_by,
                "proposed_changes": [c.id for c in self.proposed]}


@dataclass
class RegressionReport:
    session_id: str
    session_created: str
    checks: list[str]  # what was judged again: the checks the session fixed
    regressions: list[Regression]
    errors: list[Finding]

    def to_dict(self) -> dict[str, Any]:
        return {"since": self.session_id, "session_created": self.session_created, "checks": self.checks,
                "regressions": [r.to_dict() for r in self.regressions],
                "errors": [f.to_dict() for f in self.errors]}

    def lines(self, *, arrow: str = "→") -> list[str]:
        out = [f"Regressions since session {self.session_id} (started {self.session_created[:19].replace('T', ' ')}):"]
        for r in self.regressions:
            f = r.finding
            short = target(f.resource_id) if f.resource_id else "-"
            out.append(f"  ✘ {f.check:<11} {short}  {f.property or ''} {_v(f.actual)} (expected {_v(f.expected)})")
            out.append(f"      fixed by {r.fixed_by['change']} ({r.fixed_by['title']}) at "
                       f"{r.regressed_since[:19].replace('T', ' ')}; regressed since then")
            for c in r.proposed:
                out.append(f"      proposed again {arrow} {c.id}: {c.title or c.method}")
        for f in self.errors:
            out.append(f"  ! {f.check:<11} could not be judged: {f.message}")
        n = len(self.regressions)
        out.append(f"{n} regression(s) among the {len(self.checks)} check(s) the session fixed."
                   if n else f"No regressions: the {len(self.checks)} check(s) the session fixed still hold.")
        return out


def _v(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value)


def _related(a: str, b: str) -> bool:
    a, b = a.rstrip("/").lower(), b.rstrip("/").lower()
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def fixed_records(records: Sequence[Any]) -> list[Any]:
    """The session's changes that were applied and are still in place (not undone), in write order."""
    return sorted([r for r in records if r.state in KEPT], key=lambda r: (r.seq or 0, r.ordinal))


def find(core: Any, session_id: str, step_ids: Sequence[str] = (), check_ids: Sequence[str] = ()) -> RegressionReport:
    """Judge again the checks session `session_id` fixed (narrowed to the selection) and report
    the findings that regressed."""
    sid = core.pick_session(session_id)
    info = next(s for s in core.sessions() if s.id == sid)
    fixed = fixed_records(core.session_changes(sid))
    wanted = {c for _step, ids in selected_steps(step_ids, check_ids) for c in ids}
    fixed = [r for r in fixed if r.check_id in wanted]
    order = [c for _step, ids in selected_steps() for c in ids]
    checks = sorted({r.check_id for r in fixed}, key=order.index)
    if not checks:
        return RegressionReport(sid, info.created_at, [], [], [])
    plan = core.inspect([], checks)
    regressions: list[Regression] = []
    errors: list[Finding] = []
    for step in plan.steps:
        for f in step.findings:
            if f.check not in checks:
                continue
            if f.status == "error":
                errors.append(f)
                continue
            if f.status != "fail" or f.waiver:
                continue
            rec = next((r for r in reversed(fixed) if r.check_id == f.check and _related(r.resource_id, f.resource_id)),
                       None)
            if rec is None:
                continue
            proposed = [c for c in step.changes if c.check == f.check and _related(c.resource_id, f.resource_id)]
            regressions.append(Regression(f, rec.updated_at, {
                "session": sid, "change": rec.change_id, "title": rec.title, "method": rec.method,
                "resource_id": rec.resource_id, "applied_at": rec.updated_at, "set": rec.plan_after}, proposed))
    return RegressionReport(sid, info.created_at, checks, regressions, errors)
