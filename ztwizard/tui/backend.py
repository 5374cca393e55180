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
    if isinstance(obj, str) and isinstance(old, str) and isinstance(new, str) and old and len(old) > 2:
        return obj.replace(old, new)
    return obj


class Backend:
    """Wraps a gateway (or a factory of one), the engine and the journal for the wizard."""

    def __init__(self, gateway: Any, *, state_dir: Path | str | None, dry_run: bool) -> None:
        self._gateway_or_factory = gateway
        self._gateway: Any = None
        self.state_dir = Path(state_dir) if state_dir else None
        self.dry_run = dry_run
        self.subscriptions: list[str] | None = None  # None: all the credential can see
        self.session_id: str | None = None

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
        endpoint = getattr(target, "endpoint", "") or ""
        return f"{kind} {endpoint}".strip()

    def endpoint(self) -> str:
        target = getattr(self.gateway, "target", None)
        ep = getattr(target, "endpoint", "") or "https://management.azure.com"
        return ep.rstrip("/")

    def list_subscriptions(self) -> list[tuple[str, str]]:
        """(id, display name) of every subscription the credential can see."""
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
        """The create change rebuilt with edited parameters: every occurrence of an old value
        in the id, body and after-image (names inside ids too) takes the new one."""
        if change.action != "create":
            raise ZtwError("Only create changes have parameters.")
        pairs = [(old, params[k]) for k, old in change.params.items()
                 if k in params and params[k] != old]
        new = Change.from_dict(copy.deepcopy(change.to_dict()))
        for old, val in pairs:
            new.resource_id = _swap(new.resource_id, old, val)
            new.body = _swap(new.body, old, val)
            new.after = _swap(new.after, old, val)
        new.params = {**change.params, **params}
        return new

    # ---- journal --------------------------------------------------------------------------
    def unfinished_session(self) -> SessionInfo | None:
        return None

    def begin_session(self) -> str:
        raise ZtwError("The journal is not available yet.", "Use `ztwizard plan` to preview.")

    def apply(self, step_id: str, changes: list[Change], progress: Callable[[str, str, str], None],
              cancelled: Callable[[], bool]) -> list[ApplyOutcome]:
        raise ZtwError("Apply is not available yet.", "Use `ztwizard plan` to preview.")

    def journal(self) -> list[JournalRow]:
        return []

    def undo(self, change_ids: list[str], *, override: bool = False,
             progress: Callable[[str, str, str], None] | None = None) -> UndoResult:
        raise ZtwError("Undo is not available yet.")

    def resume(self, session_id: str) -> tuple[str | None, list[ApplyOutcome]]:
        raise ZtwError("Resume is not available yet.")

    def close(self) -> None:
        close = getattr(self._gateway, "close", None)
        if callable(close):
            close()
