"""The command palette: jump to any step by id or title, or run a wizard action."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from ..steps import STEPS

if TYPE_CHECKING:
    from .app import WizardApp

ACTIONS = [
    ("Checklist", "Show the checklist of all steps", "checklist"),
    ("Journal", "Show the session's changes, undo them", "journal"),
    ("Re-inspect", "Read the estate again and refresh every step", "reinspect"),
    ("Export report", "Write the plan as Markdown, SARIF or JSON to a file you name", "export"),
    ("Screenshot", "Save an SVG of the screen (to ~/Downloads, else the state directory)", "screenshot"),
    ("Help", "Keys and glyphs", "help"),
]


class WizardCommands(Provider):
    """Steps (`storage-1 Protect data…`) and the wizard's own actions."""

    def _entries(self) -> list[tuple[str, str, object]]:
        app: WizardApp = self.app  # type: ignore[assignment]
        out: list[tuple[str, str, object]] = []
        for s in STEPS:
            res = app.results.get(s.id)
            status = res.status if res else "not inspected"
            out.append((f"{s.id}  {s.title}", f"Go to step ({status})", partial(app.action_open_step, s.id)))
        for name, help_text, action in ACTIONS:
            out.append((name, help_text, partial(app.run_action, action)))
        return out

    async def discover(self) -> Hits:
        for text, help_text, callback in self._entries():
            yield DiscoveryHit(text, callback, help=help_text)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, help_text, callback in self._entries():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)  # type: ignore[arg-type]
