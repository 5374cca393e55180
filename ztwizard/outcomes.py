"""What a write run reports: one outcome per change, the apply report, progress events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import BUSY_NOTE, ZtwError
from .model import Change, StepResult


@dataclass
class Outcome:
    change_id: str
    check: str
    step_id: str
    resource_id: str
    title: str
    result: str  # applied | adopted | failed | skipped (undo: undone | failed | skipped | refused)
    message: str = ""

    def line(self) -> str:
        name = self.resource_id.rsplit("/", 1)[-1]
        text = f"{self.result:8} {self.check:12} {self.title or self.change_id} ({name})"
        return f"{text}: {self.message}" if self.message else text


# What to do about a failure ApplyReport.busy lists.
BUSY_HINT = ("Wait until the other operation has finished (the resource's Activity log shows who started it), "
             "then run apply again")
# How the skip notes of changes waiting for an unapplied prerequisite begin (ApplyReport.blocked).
BLOCKED_PREFIXES = ("depends on", "needs")
# Writes an apply keeps in flight at most (each also waits for its subscription's and region's
# write budget): ARM refills a write bucket at 10/s, which a handful of ~0.1-1 s writes at once
# already uses.
DEFAULT_PARALLEL = 8


@dataclass
class ApplyReport:
    session_id: str
    outcomes: list[Outcome] = field(default_factory=list)
    verification: list[StepResult] = field(default_factory=list)
    verify_error: str = ""

    def _of(self, result: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.result == result]

    @property
    def applied(self) -> list[Outcome]:
        return self._of("applied")

    @property
    def adopted(self) -> list[Outcome]:
        """Creates found already made by this wizard: done, with nothing sent."""
        return self._of("adopted")

    @property
    def failed(self) -> list[Outcome]:
        return self._of("failed")

    @property
    def skipped(self) -> list[Outcome]:
        return self._of("skipped")

    @property
    def blocked(self) -> list[Outcome]:
        """Skipped because a change they depend on was not applied (the contract's exit 1)."""
        return [o for o in self.skipped if o.message.startswith(BLOCKED_PREFIXES)]

    @property
    def busy(self) -> list[Outcome]:
        """Failed because another operation held the resource through the retries (409)."""
        return [o for o in self.failed if BUSY_NOTE in o.message]

    def failed_because(self) -> str:
        """Why changes failed, when ARM said another operation held their resource: ' because …'
        when that is every failure, ' (N because …)' when some; '' otherwise."""
        n = len(self.busy)
        if not n:
            return ""
        why = ("another operation, not one this run started, was still running on the resource "
               "(ARM's AnotherOperationInProgress)")
        return f" because {why}" if n == len(self.failed) else f" ({n} because {why})"

    @property
    def ok(self) -> bool:
        return not self.failed

    def lines(self) -> list[str]:
        out = [f"Session {self.session_id}: {len(self.applied)} applied, {len(self.failed)} failed, "
               f"{len(self.skipped)} skipped" + (f", {len(self.adopted)} adopted." if self.adopted else ".")]
        out += ["  " + o.line() for o in self.outcomes]
        if self.verification:
            out.append("Re-inspected after apply (what ARM now holds):")
            for s in self.verification:
                c = s.counts()
                out.append(f"  {s.id:10} {s.status:14} pass {c['pass']}, fail {c['fail']}, manual {c['manual']}, "
                           f"error {c['error']}")
        if self.verify_error:
            out.append(f"Could not re-inspect: {self.verify_error}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"session": self.session_id,
                "outcomes": [o.__dict__ for o in self.outcomes],
                "verification": [{"id": s.id, "status": s.status, "counts": s.counts()} for s in self.verification]}


class ApplyInterrupted(ZtwError):
    """Apply stopped part-way; `report` says what had been done by then."""

    def __init__(self, message: str, hint: str, report: ApplyReport) -> None:
        super().__init__(message, hint)
        self.report = report


@dataclass
class Event:
    """Progress for a UI: `kind` is start | applied | adopted | failed | skipped."""

    kind: str
    change: Change
    step_id: str
    message: str = ""
