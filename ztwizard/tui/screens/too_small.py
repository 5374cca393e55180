"""Below 80x24 the wizard's screens overlap; this says so plainly instead, and goes away by itself."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Middle
from textual.screen import Screen
from textual.widgets import Static

from ..render import SYM

MIN_WIDTH, MIN_HEIGHT = 80, 24


def too_small(width: int, height: int) -> bool:
    return width < MIN_WIDTH or height < MIN_HEIGHT


class TooSmallScreen(Screen[None]):
    """Covers every other screen (their keys do not reach through) until the terminal is large enough."""

    BINDINGS = [Binding("q", "app.quit", "Quit"), Binding("ctrl+c", "app.quit", "Quit", show=False)]

    def compose(self) -> ComposeResult:
        with Middle(), Center():
            yield Static(id="too-small-text")

    def on_mount(self) -> None:
        self.show_size(self.app.size.width, self.app.size.height)

    def show_size(self, width: int, height: int) -> None:
        self.query_one("#too-small-text", Static).update(
            f"Make the terminal at least {MIN_WIDTH}{SYM['times']}{MIN_HEIGHT}.\n\n"
            f"It is {width}{SYM['times']}{height} now; the wizard comes back as soon as it fits.\n"
            "Press q to quit.")
