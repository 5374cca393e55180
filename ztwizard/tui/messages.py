"""Typed messages that workers post back to the app; tests assert on their sequence."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from ..core import ApplyOutcome, DriftRow, JournalView, ResumeResult, SessionInfo, Subscription, UndoResult
from ..model import StepResult


class SubscriptionsLoaded(Message):
    def __init__(self, subscriptions: list[Subscription], session: SessionInfo | None,
                 error: str = "") -> None:
        super().__init__()
        self.subscriptions = subscriptions
        self.session = session
        self.error = error


class InspectProgress(Message):
    def __init__(self, done: int, total: int, label: str) -> None:
        super().__init__()
        self.done, self.total, self.label = done, total, label


class StepsInspected(Message):
    """Results for some or all steps; `final` closes an inspection run."""

    def __init__(self, results: list[StepResult], *, final: bool = True, error: str = "",
                 notes: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.results = results
        self.final = final
        self.error = error
        self.notes = notes  # the plan's notes (a subscription left out, ...); None: not a whole plan


class ChangeProgress(Message):
    """One change moved: pending → in_flight → applied|failed (or undone)."""

    def __init__(self, change_id: str, state: str, message: str = "") -> None:
        super().__init__()
        self.change_id, self.state, self.message = change_id, state, message


class ApplyFinished(Message):
    def __init__(self, step_id: str, outcomes: list[ApplyOutcome], error: str = "",
                 interrupted: bool = False) -> None:
        super().__init__()
        self.step_id = step_id
        self.outcomes = outcomes
        self.error = error
        self.interrupted = interrupted


class JournalLoaded(Message):
    def __init__(self, view: JournalView | None, error: str = "", *, drift_read: bool = True) -> None:
        super().__init__()
        self.view = view
        self.error = error
        self.drift_read = drift_read  # False: the rows carry no drift; keep what was known


class UndoFinished(Message):
    def __init__(self, result: UndoResult | None, change_ids: list[str], error: str = "") -> None:
        super().__init__()
        self.result = result
        self.change_ids = change_ids
        self.error = error


class Resumed(Message):
    def __init__(self, session_id: str, result: ResumeResult | None, error: str = "") -> None:
        super().__init__()
        self.session_id = session_id
        self.result = result
        self.error = error


class DriftRead(Message):
    """A journalled change's resource was read again: the three-way rows where it differs."""

    def __init__(self, change_id: str, rows: list[DriftRow], error: str = "") -> None:
        super().__init__()
        self.change_id = change_id
        self.rows = rows
        self.error = error
