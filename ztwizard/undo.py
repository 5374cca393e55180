"""Undo: take back exactly what the wizard changed, and nothing someone else changed since.

Each applied change is inverted on its own (latest write first): PATCH back the prior values,
PUT the prior values onto the resource as it is now (so unrelated edits survive), DELETE what
was created, re-create what was deleted. Before writing, the resource must still hold what the
wizard wrote; if not, the three-way difference is reported and nothing is written unless the
caller overrides. Undo is journaled write-ahead like apply, so it can be resumed too.

An inverse is the explicit previous value, or the platform default spelled out, never a bare
null that providers ignore; after each undo write the resource is read again by GET and compared
with its before-image over the properties the wizard set: only when they came back is the change
`undone`, else it is an `undo incomplete` naming them. VM changes that need a deallocated VM are
taken back under the same power guard as apply (one deallocation per VM, started again if it was
running)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import journal as J
from . import power
from . import resource_id as rid
from .apply import refuse_if_read_only
from .armjson import (
    PUT_REPLACES,
    apply_values,
    dotted,
    get_path,
    holds,
    inverse,
    leaves,
    mismatches,
    nested,
    one_way,
    platform_defaults,
    side,
    writable,
)
from .errors import EtagMismatch, OperationTimedOut, UsageError, ZtwError
from .outcomes import Outcome
from .ports import ArmGateway
from .redact import unrestorable_note

log = logging.getLogger(__name__)


@dataclass
class Drift:
    """Someone changed what the wizard wrote: per property, before / wizard / now."""

    change_id: str
    resource_id: str
    rows: list[tuple[str, Any, Any, Any]]

    def lines(self) -> list[str]:
        out = [f"{self.change_id} on {self.resource_id} was changed since the wizard wrote it:"]
        for path, before, wizard, now in self.rows:
            out.append(f"    {path}: before {_show(before)} | wizard wrote {_show(wizard)} | now {_show(now)}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"change": self.change_id, "resource_id": self.resource_id,
                "properties": [{"path": p, "before": b, "wizard": w, "now": n} for p, b, w, n in self.rows]}


def _show(value: Any) -> str:
    if value is None:
        return "(absent)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


INCOMPLETE = "undo incomplete"
ONE_WAY = "one-way"


def one_way_of(rec: J.ChangeRecord) -> str:
    """Why the change cannot be taken back ('' when it can): what ARM keeps once set."""
    if rec.action != "update":
        return ""
    return one_way(rid.type_of(rec.resource_id), rec.method, rec.plan_before, rec.plan_after)


@dataclass
class UndoReport:
    session_id: str
    outcomes: list[Outcome] = field(default_factory=list)
    drifts: list[Drift] = field(default_factory=list)

    def _of(self, result: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.result == result]

    @property
    def undone(self) -> list[Outcome]:
        return self._of("undone")

    @property
    def failed(self) -> list[Outcome]:
        return self._of("failed")

    @property
    def refused(self) -> list[Outcome]:
        return self._of("refused")

    @property
    def skipped(self) -> list[Outcome]:
        return self._of("skipped")

    @property
    def incomplete(self) -> list[Outcome]:
        """Written, but the re-read does not show the previous values (counted as failed)."""
        return [o for o in self.failed if o.message.startswith(INCOMPLETE)]

    @property
    def unmet(self) -> list[Outcome]:
        """Skipped because a prerequisite of the inverse write is missing: still in place."""
        return [o for o in self.skipped if o.message.startswith(power.PREREQUISITE)]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.refused and not self.unmet

    def lines(self) -> list[str]:
        out = [f"Session {self.session_id}: {len(self.undone)} undone, {len(self.failed)} failed, "
               f"{len(self.refused)} refused (changed since), {len(self.skipped)} skipped."]
        out += ["  " + o.line() for o in self.outcomes]
        for d in self.drifts:
            out += ["  " + line for line in d.lines()]
        if self.refused:
            out.append("Nothing was written for the refused changes; pass --override to restore them anyway.")
        if self.unmet:
            out.append(f"{len(self.unmet)} change(s) are still in place: provide what they need (above) and undo again.")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"session": self.session_id, "outcomes": [o.__dict__ for o in self.outcomes],
                "drifts": [d.to_dict() for d in self.drifts]}


def three_way(rec: J.ChangeRecord, now: dict[str, Any] | None) -> Drift:
    rows = []
    paths = mismatches(now, rec.plan_after) if rec.action == "update" else list(leaves(rec.plan_after))
    for p in paths:
        rows.append((dotted(p), get_path(rec.plan_before, p), get_path(rec.plan_after, p), get_path(now or {}, p)))
    if now is None:
        rows = [("(resource)", "(absent)" if rec.action == "create" else "exists",
                 "exists" if rec.action != "delete" else "(deleted)", "(absent)")]
    return Drift(rec.change_id, rec.resource_id, rows)


def undo_changes(gateway: ArmGateway, journal: J.Journal, session_id: str, *, change_ids: Iterable[str] | None = None,
                 step_ids: Iterable[str] | None = None, override: bool = False, dry_run: bool = False,
                 on_event: Callable[[Outcome], None] | None = None) -> UndoReport:
    """Undo the session's applied changes (all, or those of `step_ids` / `change_ids`), latest first."""
    refuse_if_read_only(gateway, dry_run, "undo")
    journal.session(session_id)
    if journal.changes(session_id, states=J.UNSETTLED) or journal.power_guards(session_id):
        from .resume import reconcile

        reconcile(gateway, journal, session_id)
    wanted_ids = list(change_ids or [])
    for cid in wanted_ids:
        journal.change(session_id, cid)  # unknown id -> usage error
    whole = not wanted_ids and not step_ids
    rows = journal.changes(session_id, change_ids=wanted_ids or None, step_ids=step_ids)
    report = UndoReport(session_id)

    def outcome(rec: J.ChangeRecord, result: str, msg: str = "") -> None:
        o = Outcome(rec.change_id, rec.check_id, rec.step_id, rec.resource_id, rec.title, result, msg)
        report.outcomes.append(o)
        log.info("undo %s %s on %s%s", result, rec.change_id, rec.resource_id, f": {msg}" if msg else "")
        if on_event:
            on_event(o)

    for rec in rows:
        if rec.change_id in wanted_ids and rec.state not in J.UNDOABLE:
            outcome(rec, "skipped", f"nothing to undo ({rec.state.replace('_', ' ')})")
    todo = [r for r in rows if r.state in J.UNDOABLE]
    todo.sort(key=lambda r: (r.seq or 0, r.ordinal), reverse=True)
    # Who depends on whom, among the changes that still hold (kept current as undo proceeds).
    holding = {r.change_id: r.depends_on for r in journal.changes(session_id, states=J.UNDOABLE)}
    vm_for, unmet = _power_prerequisites(gateway, todo, override)
    # One deallocation per VM; a change moves up only past changes that do not depend on it.
    todo = power.batch_by_vm(todo, lambda r: vm_for.get(r.change_id),
                             lambda moving, other: moving.change_id not in other.depends_on)
    guard = power.PowerGuard(gateway, journal, session_id, on_stage=lambda vm, msg: log.info("%s: %s", vm, msg))
    try:
        for rec in todo:
            rec = journal.change(session_id, rec.change_id)
            needed_by = [cid for cid, deps in holding.items() if rec.change_id in deps]
            if needed_by:
                outcome(rec, "skipped", f"still needed by {', '.join(needed_by)}; undo that first")
                continue
            if rec.change_id in unmet:
                outcome(rec, "skipped", unmet[rec.change_id])
                continue
            why = one_way_of(rec)
            if why:  # labelled one-way in the plan: writing the inverse would only pretend
                msg = f"{ONE_WAY}: {why}; it stays as the wizard set it, nothing was sent"
                journal.update_change(session_id, rec.change_id, note=msg, event=msg)
                outcome(rec, "skipped", msg)
                continue
            vm = vm_for.get(rec.change_id)
            if guard.current is not None and (vm is None or vm.lower() != guard.current.lower()):
                guard.release()
            if vm is not None:
                guard.hold(vm)
            _undo_one(gateway, journal, session_id, rec, override, report, outcome)
            if journal.change(session_id, rec.change_id).state not in J.UNDOABLE:
                holding.pop(rec.change_id, None)
        guard.release()
    except BaseException:
        if guard.current:  # left for resume: starting it now would wait on the ARM that just failed
            log.warning("undo stopped with %s held deallocated; resume starts it again", guard.current)
        raise
    left = [r for r in journal.changes(session_id, states=(*J.UNDOABLE, *J.UNSETTLED)) if not one_way_of(r)]
    if whole and not left:
        journal.update_session(session_id, status=J.UNDONE_SESSION)
    return report


def _power_prerequisites(gateway: ArmGateway, todo: list[J.ChangeRecord],
                         override: bool) -> tuple[dict[str, str], dict[str, str]]:
    """The VM each undo needs deallocated ({change id: vm id}) and, where a prerequisite of the
    inverse write is missing, why it is skipped; read before anything is written."""
    needs = power.Prerequisites(gateway)
    vm_for: dict[str, str] = {}
    unmet: dict[str, str] = {}
    for rec in todo:
        if rec.action != "update" or not power.needs_deallocation(rec.resource_id, rec.plan_after):
            continue
        cur = _read_or_none(gateway, rec.resource_id)
        if cur is None or _restored(rec, cur) or not (override or _still_wizards(rec, cur)):
            continue  # nothing will be written: no deallocation
        vm = power.vm_of(gateway, rec.resource_id, cur)
        if vm is None:
            continue
        vm_for[rec.change_id] = vm
        missing = needs.missing(cur if vm == rec.resource_id else None, _inverse(rec, cur)[1] or {}, undo=True)
        if missing:
            unmet[rec.change_id] = power.prerequisite_note(missing)
    return vm_for, unmet


def not_back(rec: J.ChangeRecord, now: dict[str, Any] | None) -> list[str]:
    """The properties the wizard set that `now` (a fresh read) does not hold as they were before
    the change; null and absent are equal, a platform default equals absent, and provider-added
    list entries do not count."""
    if rec.action == "create":
        return [] if now is None else ["(the resource still exists)"]
    if now is None:
        return ["(the resource is gone)"]
    image = rec.before_image if rec.before_image is not None else rec.plan_before
    was = nested({p: get_path(image, p) for p in leaves(rec.plan_after)})
    return [dotted(p) for p in mismatches(now, was)]


def _inverse(rec: J.ChangeRecord, cur: dict[str, Any] | None) -> tuple[str, dict[str, Any] | None]:
    if rec.action == "create":
        return "DELETE", None
    if rec.action == "delete":
        return "PUT", _without_redacted(writable(rec.before_image or rec.plan_before))
    inv = inverse(rec.plan_before, rec.plan_after, rec.before_image,
                  defaults=platform_defaults(rid.type_of(rec.resource_id)))
    if inv.no_inverse:
        log.info("undo of %s removes %s (no previous value or platform default to write back)",
                 rec.change_id, ", ".join(map(dotted, inv.no_inverse)))
    restore = _without_redacted(inv.tree)  # a secret the journal never held stays as ARM has it
    replaces = rid.type_of(rec.resource_id).lower() in PUT_REPLACES
    if rec.method == "PATCH" and not (inv.no_inverse and cur is not None and replaces):
        return "PATCH", restore  # a null here that ARM ignores shows up in the re-read
    # A property the change added that has no value to write back: compute ignores a null in a
    # PATCH, so it goes by a full PUT of what the VM holds now, without it.
    return "PUT", apply_values(writable(cur or {}), restore)


def _without_redacted(obj: Any) -> Any:
    """The journal never held secrets; a re-created resource is sent without them rather than
    with the marker that stands in for them."""
    if isinstance(obj, dict):
        return {k: _without_redacted(v) for k, v in obj.items() if v != J.REDACTED}
    if isinstance(obj, list):
        return [_without_redacted(v) for v in obj if v != J.REDACTED]
    return obj


def _restored(rec: J.ChangeRecord, res: dict[str, Any] | None) -> bool:
    """Does `res` hold what was there before the wizard's change?"""
    if rec.action == "create":
        return res is None
    if rec.action == "delete":
        return res is not None and holds(res, rec.plan_before)
    return res is not None and side(res, rec.plan_before, rec.plan_after) == "before"


def _still_wizards(rec: J.ChangeRecord, res: dict[str, Any] | None) -> bool:
    """Does `res` still hold what the wizard wrote, or what its write left (a write ARM carried
    out only in part answers with the parts that failed switched off)?"""
    if rec.action == "delete":
        return res is None
    if res is None:
        return False
    if rec.after_image is not None and \
            not mismatches(res, nested({p: get_path(rec.after_image, p) for p in leaves(rec.plan_after)})):
        return True
    if rec.action == "create":
        return holds(res, rec.plan_after)
    return side(res, rec.plan_before, rec.plan_after) == "after"


def _undo_one(gateway: ArmGateway, journal: J.Journal, session_id: str, rec: J.ChangeRecord, override: bool,
              report: UndoReport, outcome: Callable[..., None]) -> None:
    cur = gateway.read_settled(rec.resource_id)
    if _restored(rec, cur):
        msg = "already as it was before the change"
        journal.update_change(session_id, rec.change_id, state=J.UNDONE, note=msg,
                              result_etag=(cur or {}).get("etag"), event=msg)
        outcome(rec, "undone", msg)
        return
    if not _still_wizards(rec, cur):
        drift = three_way(rec, cur)
        if not override:
            report.drifts.append(drift)
            journal.log(session_id, "undo_refused", "changed since the wizard wrote it", rec.change_id)
            outcome(rec, "refused", "changed since the wizard wrote it; see the three-way difference")
            return
        if rec.action == "update" and cur is None:
            outcome(rec, "failed", "the resource no longer exists; nothing to restore onto")
            return
    method, body = _inverse(rec, cur)
    etag = (cur or {}).get("etag") if method != "PUT" or rec.action != "delete" else None
    journal.update_change(session_id, rec.change_id, state=J.UNDO_IN_FLIGHT, undo_image=cur, undo_body=body,
                          error=None, event=f"undo {method} sent")
    try:
        result = gateway.write(method, rec.resource_id, body, etag=etag)
    except OperationTimedOut as exc:  # outcome unknown: the row stays undo-in-flight for resume
        journal.update_change(session_id, rec.change_id, event=f"{exc.message} Outcome unknown; resume reconciles it.")
        raise
    except ZtwError as exc:
        now = gateway.read(rec.resource_id)  # unreachable ARM propagates: resume settles it
        if _restored(rec, now):  # a lost answer, or a retried request whose first try had landed
            journal.update_change(session_id, rec.change_id, state=J.UNDONE,
                                  result_etag=(now or {}).get("etag"), event="undone")
            outcome(rec, "undone")
            return
        if isinstance(exc, EtagMismatch):
            journal.update_change(session_id, rec.change_id, state=J.UNDO_FAILED, error=exc.message,
                                  event=exc.message)
            outcome(rec, "failed", "changed by someone else while undoing (412); nothing was overwritten")
            return
        journal.update_change(session_id, rec.change_id, state=J.UNDO_FAILED, error=exc.message,
                              event=exc.message)
        outcome(rec, "failed", exc.message)
        return
    # Judge by a fresh GET, not by the write's answer: ARM may accept a body and keep a value.
    result = gateway.read(rec.resource_id)
    gone = not_back(rec, result)
    if gone:
        msg = f"{INCOMPLETE}: {', '.join(gone)} did not come back (ARM kept the wizard's value)"
        journal.update_change(session_id, rec.change_id, state=J.UNDO_FAILED, error=msg, note=msg,
                              result_etag=(result or {}).get("etag"), event=msg)
        outcome(rec, "failed", msg)
        return
    lost = unrestorable_note(rec.before_image if rec.action == "delete" else rec.plan_before)
    journal.update_change(session_id, rec.change_id, state=J.UNDONE, result_etag=(result or {}).get("etag"),
                          note=lost or None, event=lost or "undone")
    outcome(rec, "undone", lost)


def _read_or_none(gateway: ArmGateway, resource_id: str) -> dict[str, Any] | None:
    try:
        return gateway.read(resource_id)  # type: ignore[no-any-return]
    except ZtwError:
        return None


def reapply(gateway: ArmGateway, journal: J.Journal, session_id: str, change_ids: Iterable[str] | None = None,
            **kwargs: Any) -> Any:
    """Apply undone changes again (from their journaled plan), with apply's checks."""
    from .apply import apply_changes

    rows = journal.changes(session_id, states=[J.UNDONE], change_ids=change_ids)
    if change_ids and len(rows) != len(set(change_ids)):
        raise UsageError("Only undone changes can be re-applied.", "List the session's changes with `ztwizard sessions`.")
    return apply_changes(gateway, journal, session_id, [r.to_change() for r in rows], **kwargs)
