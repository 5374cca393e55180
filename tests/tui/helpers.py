"""Small waits for pilot tests: workers post messages that spawn more workers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.pilot import Pilot
from textual.worker import WorkerCancelled, WorkerState


async def workers_done(pilot: Pilot) -> None:
    """Wait until every worker has finished. An exclusive worker that a newer one cancelled is
    finished too (Textual's wait_for_complete raises WorkerCancelled for it, which on a loaded
    machine depends on when the wait began); a worker's error still fails the test."""
    while pending := [w for w in pilot.app.workers if not w.is_finished]:
        if any(w.state == WorkerState.PENDING for w in pending):
            await asyncio.sleep(0.01)  # not started yet: wait() refuses it
            continue
        for outcome in await asyncio.gather(*(w.wait() for w in pending), return_exceptions=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, WorkerCancelled):
                raise outcome


async def settle(pilot: Pilot, rounds: int = 4) -> None:
    """Wait until no worker runs and the message queue is drained, a few times over."""
    for _ in range(rounds):
        await workers_done(pilot)
        await pilot.pause()


async def until(pilot: Pilot, cond: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)  # not pilot.pause: that also waits for the screen to go idle


def cursors_shown(pilot: Pilot) -> None:
    """Stop the text cursors blinking, shown: a cursor toggles every half second, so a frame
    taken later on a loaded machine would show it hidden."""
    from textual.widgets import Input

    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False  # Textual then shows a focused field's cursor steadily


async def steady(pilot: Pilot, interval: float = 0.1, timeout: float = 20.0) -> None:
    """Wait until two screenshots `interval` apart are the same.

    Layout and repaint run on the screen's update timer, not through the message queue, so on a
    loaded machine `pilot.pause()` can return before a changed pane is laid out again; a snapshot
    taken then shows half of the old frame."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    await settle(pilot, rounds=1)
    cursors_shown(pilot)
    last = pilot.app.export_screenshot()
    while True:
        await pilot.pause(interval)
        await settle(pilot, rounds=1)
        shot = pilot.app.export_screenshot()
        if shot == last:
            return
        if loop.time() > deadline:
            raise AssertionError("the screen kept changing")
        last = shot


async def palette_offers(pilot: Pilot, text: str, timeout: float = 10.0) -> None:
    """Wait until the command palette's first (highlighted) hit mentions `text`.

    The palette searches in a worker and shows its hits in batches a quarter of a second apart,
    so a fixed pause is a guess; on a loaded machine Enter then picks nothing or a stale hit."""
    from textual.command import CommandList, CommandPalette

    def offered() -> bool:
        screen = pilot.app.screen
        if not isinstance(screen, CommandPalette):
            return False
        hits = screen.query_one(CommandList)
        first = hits.highlighted_option
        return first is not None and text.lower() in str(first.prompt).lower()

    await until(pilot, offered, timeout)
