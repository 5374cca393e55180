"""Resume: settle every write an interrupted session left in flight, then continue where it stopped.

A crash leaves at most a few rows `in_flight` (or `undo_in_flight`) with their before-image.
Reading each resource tells which side of the write it is on: it holds what the change writes
(applied), what was there before (not applied), or neither (someone else changed it). A VM the
crash left deallocated (an open power guard) is then put back in its recorded power state."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import journal as J
from . import power
from .apply import Confirm, apply_changes
from .armjson import holds, side
from .errors import UsageError
from .outcomes import ApplyReport, Event
from .ports import ArmGateway
from .steps import step_of

log = logging.getLogger(__name__)


@dataclass
class Settled:
    change_id: str
    resource_id: str
    was: str
    now: str
    message: str


@dataclass
class ResumeReport:
    session_id: str
    settled: list[Settled] = field(default_factory=list)
    next_step: str | None = None
    remaining: list[str] = field(default_factory=list)  # change ids still to apply
    powered: list[tuple[str, str]] = field(default_factory=list)  # (vm id, what was done to restore it)

    def lines(self) -> list[str]:
        out = [f"Session {self.session_id}: {len(self.settled)} interrupted change(s) reconciled."]
        for s in self.settled:
            out.append(f"  {s.change_id}: {s.was} -> {s.now} ({s.message})")
        for vm, done in self.powered:
            out.append(f"  {vm.rsplit('/', 1)[-1]}: {done}")
        if self.next_step:
            out.append(f"It stopped at step {self.next_step}; {len(self.remaining)} change(s) remain.")
        else:
            out.append("Nothing remains to apply in this session.")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"session": self.session_id, "settled": [s.__dict__ for s in self.settled],
                "next_step": self.next_step, "remaining": self.remaining,
                "powered": [{"vm": vm, "done": done} for vm, done in self.powered]}


PENDING = (J.PLANNED, J.NOT_APPLIED)


def _evidence(body: Any) -> Any:
    """What of a create's body shows the resource is the one it made: not its empty collections
    (an NSG created with `securityRules: []` that a later change of ours gave a rule is still
    the NSG we created, and left as drifted its undo would never delete it)."""
    if isinstance(body, dict):
        return {k: _evidence(v) for k, v in body.items() if v not in ([], {})}
    return body


def classify(rec: J.ChangeRecord, res: dict[str, Any] | None) -> tuple[str, str]:
    """(new state, why) for an unsettled change, from what ARM holds now."""
    if rec.action == "delete":
        wrote, prior = res is None, res is not None and holds(res, rec.plan_before)
    elif rec.action == "create":
        wrote, prior = res is not None and holds(res, _evidence(rec.plan_after)), res is None
    else:
        where = side(res, rec.plan_before, rec.plan_after) if res is not None else "neither"
        wrote, prior = where == "after", where == "before"
    if rec.state == J.UNDO_IN_FLIGHT:
        if prior:
            return J.UNDONE, "the undo reached ARM"
        if wrote:
            return J.APPLIED, "the undo did not reach ARM; the change is still in place"
        return J.DRIFTED, "changed by someone else (holds neither the change nor the prior values)"
    if wrote:
        return J.APPLIED, "the write reached ARM"
    if prior:
        return J.NOT_APPLIED, "the write did not reach ARM"
    return J.DRIFTED, "changed by someone else (holds neither the change nor the prior values)"


def reconcile(gateway: ArmGateway, journal: J.Journal, session_id: str) -> ResumeReport:
    """Settle in-flight changes by reading their resources; report where the session stopped."""
    journal.hold(session_id)
    report = ResumeReport(session_id)
    for rec in journal.changes(session_id, states=J.UNSETTLED):
        res = gateway.read_settled(rec.resource_id)
        state, why = classify(rec, res)
        fields: dict[str, Any] = {"state": state, "note": why}
        if state == J.APPLIED and rec.state == J.IN_FLIGHT:
            fields.update(after_image=res, result_etag=(res or {}).get("etag"))
        journal.update_change(session_id, rec.change_id, event=f"reconciled: {why}", **fields)
        report.settled.append(Settled(rec.change_id, rec.resource_id, rec.state, state, why))
        log.info("reconciled %s on %s: %s -> %s (%s)", rec.change_id, rec.resource_id, rec.state, state, why)
    # Every change is settled (done or not): VMs deallocated for them go back to how they were.
    report.powered = power.restore_open_guards(gateway, journal, session_id)
    pending = journal.changes(session_id, states=PENDING)
    report.remaining = [r.change_id for r in pending]
    report.next_step = pending[0].step_id if pending else None
    info = journal.session(session_id)
    if not pending and info.status == J.OPEN:
        journal.update_session(session_id, status=J.DONE)
    return report


def unfinished_note(session_id: str, changes: int, in_flight: int) -> str:
    """What a new apply says beside an interrupted session: it may go ahead (its pre-reads see
    what landed), but the person back after a dropped connection should know the old one is open."""
    what = f"{in_flight} change(s) in flight" if in_flight else f"{changes} change(s) planned"
    return (f"Note: session {session_id} stopped unfinished ({what}); this apply starts a new session. "
            f"`ztwizard resume {session_id} --yes` settles the old one, `ztwizard undo --session {session_id}` "
            "takes it back.")


def pick_session(journal: J.Journal, session_id: str | None) -> str:
    """The given session, or the newest unfinished one."""
    if session_id:
        return journal.session(session_id).id
    info = journal.latest_session(unfinished=True)
    if info is None:
        raise UsageError("There is no unfinished session to resume.", "List sessions with `ztwizard sessions`.")
    return info.id


def continue_session(gateway: ArmGateway, journal: J.Journal, session_id: str, *, allow_disruptive: bool | None = None,
                     allow_cost: bool | None = None, dry_run: bool = False, confirm: Confirm | None = None,
                     on_event: Callable[[Event], None] | None = None) -> tuple[ResumeReport, ApplyReport | None]:
    """Reconcile, then apply what the session had not yet applied, planned afresh (never a stale body).
    The allow flags default to the ones the session was started with."""
    from .engine import inspect

    settled = reconcile(gateway, journal, session_id)
    if not settled.remaining:
        return settled, None
    info = journal.session(session_id)
    sel = info.selection
    pending = {r.change_id: r for r in journal.changes(session_id, states=PENDING)}
    steps = sorted({r.step_id for r in pending.values()})
    plan = inspect(gateway, step_ids=steps, subscriptions=info.subscriptions or None,
                   resource_groups=info.resource_groups or None, use_graph=False)  # ARG lags the writes
    fresh = [c for c in plan.changes() if c.id in pending]
    found = {c.id for c in fresh}
    for cid in pending:
        if cid not in found:
            journal.update_change(session_id, cid, state=J.SKIPPED,
                                  note="no longer proposed by a fresh plan (already in place or changed)",
                                  event="dropped on resume")
    journal.update_session(session_id, status=J.OPEN, step=step_of(fresh[0].check) if fresh else None)
    report = apply_changes(
        gateway, journal, session_id, fresh,
        allow_disruptive=bool(sel.get("allow_disruptive")) if allow_disruptive is None else allow_disruptive,
        allow_cost=bool(sel.get("allow_cost")) if allow_cost is None else allow_cost,
        dry_run=dry_run, confirm=confirm, on_event=on_event)
    return settled, report
