"""The wizard's one doorway to the engine: inspect, apply, undo, resume.

Kept free of Textual so that the screens only ever see plain data (StepResult, JournalRow,
ApplyOutcome) and every blocking call can run in a worker thread. When the engine's API moves,
this is the only TUI module that changes."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ZtwError
from ..model import Change, StepResult

Progress = Callable[[int, int, str], None]


@dataclass
class SessionInfo:
    """An unfinished session the journal offers to resume."""

    id: str
    step: str | None
    status: str
    started_at: str = ""
    changes: int = 0
    in_flight: int = 0


@dataclass
class ApplyOutcome:
    change_id: str
    ok: bool
    state: str  # applied | failed | skipped | in_flight | undone | drift
    message: str = ""


@dataclass
class DriftRow:
    path: str
    before: Any
    wrote: Any
    now: Any


@dataclass
class JournalRow:
    """One journalled change as the journal view lists it."""

    change_id: str
    step: str
    check: str
    resource_id: str
    action: str
    method: str
    state: str
    title: str = ""
    message: str = ""
    drift: list[DriftRow] = field(default_factory=list)


@dataclass
class UndoResult:
    outcomes: list[ApplyOutcome]
    drift: dict[str, list[DriftRow]] = field(default_factory=dict)  # change id -> three-way rows


def _swap(obj: Any, old: Any, new: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _swap(v, old, new) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_swap(v, old, new) for v in obj]
    if obj == old and type(obj) is type(old):
        return copy.deepcopy(new)
    if isinstance(obj, str) and isinstance(old, int | float) and not isinstance(old, bool) and obj == str(old):
        return str(new)  # ARM often carries numbers as strings (e.g. Defender's caps)
    if isinstance(obj, str) and isinstance(old, str) and isinstance(new, str) and old and len(old) > 2:
        return obj.replace(old, new)
    return obj


class Interrupted(Exception):
    """Raised from apply's progress hook when the wizard is closing: stop between writes."""


@dataclass
class ResumeResult:
    session_id: str
    step: str | None
    settled: list[ApplyOutcome]
    remaining: list[str]  # change ids planned but not yet applied


class Backend:
    """Wraps a gateway (or a factory of one), the engine and the journal for the wizard."""

    def __init__(self, gateway: Any, *, state_dir: Path | str | None, dry_run: bool) -> None:
        self._gateway_or_factory = gateway
        self._gateway: Any = None
        self.state_dir = Path(state_dir) if state_dir else None
        self.dry_run = dry_run
        self.subscriptions: list[str] | None = None  # None: all the credential can see
        self.session_id: str | None = None
        self._journal: Any = None
        self.shown_session: str | None = None  # the session the journal view lists
        self.shown_status = ""

    # ---- target ---------------------------------------------------------------------------
    @property
    def gateway(self) -> Any:
        if self._gateway is None:
            g = self._gateway_or_factory
            self._gateway = g() if callable(g) and not hasattr(g, "target") else g
        return self._gateway

    def target_label(self) -> str:
        g = self._gateway if self._gateway is not None else self._gateway_or_factory
        target = getattr(g, "target", None)
        if target is None:
            return "Azure"
        kind = getattr(target, "kind", "azure")
        endpoint = getattr(target, "label", "") or getattr(target, "endpoint", "") or ""
        return f"{kind} {endpoint}".strip()

    def endpoint(self) -> str:
        target = getattr(self.gateway, "target", None)
        ep = getattr(target, "endpoint", "") or "https://management.azure.com"
        return ep.rstrip("/")

    def list_subscriptions(self) -> list[tuple[str, str]]:
        """(id, display name) of every subscription the credential can see."""
        if hasattr(self.gateway, "subscription_names"):
            return list(self.gateway.subscription_names())
        out = []
        for s in self.gateway.list_subscriptions():
            if isinstance(s, dict):
                sid = s.get("subscriptionId") or s.get("id", "").rsplit("/", 1)[-1]
                name = s.get("displayName") or sid
            elif isinstance(s, str):
                sid, name = s, s
            else:
                sid = getattr(s, "subscription_id", None) or str(s)
                name = getattr(s, "display_name", None) or sid
            out.append((sid, name))
        return out

    def set_scope(self, subscriptions: list[str] | None) -> None:
        self.subscriptions = subscriptions

    # ---- inspection -----------------------------------------------------------------------
    def inspect(self, step_ids: list[str] | None = None, progress: Progress | None = None,
                on_result: Callable[[StepResult], None] | None = None) -> list[StepResult]:
        """Read the scope's inventory once, then judge each step, reporting each result as it
        is ready so that the checklist fills in while the rest are still being judged."""
        from .. import engine

        selection = engine.selected_steps(step_ids or [])
        phases = 4
        total = phases + len(selection)

        def inv_progress(done: int, _total: int, label: str) -> None:
            if progress:
                progress(min(done, phases), total, label)

        inv = self.gateway.inventory(subscriptions=self.subscriptions, progress=inv_progress)
        out = []
        for i, (step, ids) in enumerate(selection):
            if progress:
                progress(phases + i, total, step.id)
            result = engine.run_step(inv, step, ids, self.gateway.api_version_for)
            out.append(result)
            if on_result:
                on_result(result)
        if progress:
            progress(total, total, "done")
        return out

    def with_params(self, change: Change, params: dict[str, Any]) -> Change:
        """The change rebuilt with edited parameters: every occurrence of an old value in the
        id, body and after-image (names inside ids too) takes the new one. The change keeps its
        id, so the journal and a resumed session still recognise it."""
        if not change.params:
            raise ZtwError("This change has no parameters to edit.")
        new = self.rebind(change, change.params, params)
        new.params = {**change.params, **params}
        return new

    @staticmethod
    def rebind(change: Change, old: dict[str, Any], new_params: dict[str, Any]) -> Change:
        """`change` with the old parameter values swapped for the new ones, e.g. a subnet
        association that names a route table whose name was just edited."""
        pairs = [(v, new_params[k]) for k, v in old.items() if k in new_params and new_params[k] != v]
        new = Change.from_dict(copy.deepcopy(change.to_dict()))
        for before, after in pairs:
            new.resource_id = _swap(new.resource_id, before, after)
            new.body = _swap(new.body, before, after)
            new.after = _swap(new.after, before, after)
        return new

    # ---- journal --------------------------------------------------------------------------
    def _writer(self) -> Any:
        """The journal opened for writing, held until the wizard exits (one writer at a time)."""
        from .. import journal as J

        if self.state_dir is None:
            raise ZtwError("No state directory: the journal cannot be written.",
                           "Pass --state-dir DIR or set ZTWIZARD_STATE_DIR.")
        if self._journal is None:
            self._journal = J.Journal(self.state_dir, write=True)
        return self._journal

    def _reader(self) -> Any:
        from .. import journal as J

        if self._journal is not None:
            return self._journal
        return J.Journal(self.state_dir, write=False)

    def _done_reading(self, j: Any) -> None:
        if j is not self._journal:
            j.close()

    def unfinished_session(self) -> SessionInfo | None:
        """The newest open session on this target, if any: the wizard offers to resume it."""
        from .. import journal as J

        if self.state_dir is None:
            return None
        try:
            here = (self.gateway.target.endpoint or "").rstrip("/")
        except Exception:  # noqa: BLE001 - no target, no filter
            here = ""
        j = self._reader()
        try:
            # sessions on another target (another endpoint) are not this wizard's to resume
            info = next((x for x in j.sessions() if x.status == J.OPEN
                         and (not here or not x.endpoint or x.endpoint.rstrip("/") == here)), None)
        finally:
            self._done_reading(j)
        if info is None:
            return None
        counts = info.counts
        return SessionInfo(id=info.id, step=info.step, status=info.status, started_at=info.created_at,
                           changes=sum(counts.values()),
                           in_flight=sum(counts.get(s, 0) for s in J.UNSETTLED))

    def apply(self, step_id: str, changes: list[Change], progress: Callable[[str, str, str], None],
              cancelled: Callable[[], bool]) -> list[ApplyOutcome]:
        """Apply the confirmed changes, journalled write-ahead. The person confirmed each one
        (typing the step id for disruptive ones), so nothing is skipped for being disruptive
        or billable. `cancelled` is polled before each change: quitting stops between writes."""
        from .. import apply as A
        from .. import journal as J

        if self.dry_run:
            raise ZtwError("Dry-run: apply is disabled; nothing was changed.", "Restart without --dry-run.")
        j = self._writer()
        if self.session_id is None:
            self.session_id = A.start_session(
                j, self.gateway, [], subscriptions=self.subscriptions or [],
                selection={"allow_disruptive": True, "allow_cost": True, "source": "tui"})
        else:
            j.hold(self.session_id)
            j.update_session(self.session_id, status=J.OPEN, step=step_id)
        outcomes: list[ApplyOutcome] = []

        def on_event(ev: Any) -> None:
            if ev.kind == "start":
                if cancelled():
                    raise Interrupted()
                progress(ev.change.id, "in_flight", "")
                return
            outcomes.append(ApplyOutcome(ev.change.id, ev.kind == "applied", ev.kind, ev.message))
            progress(ev.change.id, ev.kind, ev.message)

        try:
            A.apply_changes(self.gateway, j, self.session_id, changes, allow_disruptive=True,
                            allow_cost=True, on_event=on_event, verify=False)
        except Interrupted:
            j.log(self.session_id, "interrupted", "the wizard was closed during apply")
        return outcomes

    def journal(self) -> list[JournalRow]:
        """The current session's changes (or the newest session's), with drift where a resource
        no longer holds what the wizard wrote."""
        from .. import apply as A
        from .. import journal as J
        from .. import undo as U

        if self.state_dir is None:
            return []
        j = self._reader()
        try:
            sid = self.session_id
            if sid is None:
                latest = j.latest_session()
                if latest is None:
                    return []
                sid = latest.id
            self.shown_session = sid
            self.shown_status = j.session(sid).status
            records = j.changes(sid)
        finally:
            self._done_reading(j)
        rows = []
        for rec in records:
            drift: list[DriftRow] = []
            if rec.state in J.UNDOABLE and rec.action == "update":
                now = self.gateway.read(rec.resource_id)
                if A.mismatches(now, rec.plan_after):
                    d = U.three_way(rec, now)
                    drift = [DriftRow(*r) for r in d.rows]
            rows.append(JournalRow(change_id=rec.change_id, step=rec.step_id, check=rec.check_id,
                                   resource_id=rec.resource_id, action=rec.action, method=rec.method,
                                   state=rec.state, title=rec.title, message=rec.error or rec.note or "",
                                   drift=drift))
        return rows

    def undo(self, change_ids: list[str], *, override: bool = False, whole: bool = False,
             progress: Callable[[str, str, str], None] | None = None) -> UndoResult:
        """Undo those changes, or with `whole` the session (which then counts as undone)."""
        from .. import undo as U

        if self.dry_run:
            raise ZtwError("Dry-run: undo is disabled; nothing was changed.", "Restart without --dry-run.")
        sid = self.session_id or self.shown_session
        if sid is None:
            raise ZtwError("There is no session to undo.", "Apply a change first.")
        j = self._writer()
        j.hold(sid)

        def on_event(o: Any) -> None:
            if progress:
                progress(o.change_id, "drift" if o.result == "refused" else o.result, o.message)

        report = U.undo_changes(self.gateway, j, sid, change_ids=None if whole else change_ids,
                                override=override, on_event=on_event)
        outcomes = [ApplyOutcome(o.change_id, o.result == "undone",
                                 "drift" if o.result == "refused" else o.result, o.message)
                    for o in report.outcomes]
        drift = {d.change_id: [DriftRow(*r) for r in d.rows] for d in report.drifts}
        return UndoResult(outcomes, drift)

    def resume(self, session_id: str) -> ResumeResult:
        """Settle the session's in-flight changes by reading ARM, and say where it stopped."""
        from .. import resume as R

        j = self._writer()
        report = R.reconcile(self.gateway, j, session_id)
        info = j.session(session_id)
        self.session_id = session_id
        if info.subscriptions and self.subscriptions is None:
            self.subscriptions = list(info.subscriptions)
        settled = [ApplyOutcome(s.change_id, s.now == "applied", s.now, s.message) for s in report.settled]
        return ResumeResult(session_id, report.next_step or info.step, settled, list(report.remaining))

    def close(self) -> None:
        """Release the journal's writer lock and the gateway's connections."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        close = getattr(self._gateway, "close", None)
        if callable(close):
            close()
