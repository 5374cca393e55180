"""Small waits for pilot tests: workers post messages that spawn more workers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.pilot import Pilot


async def settle(pilot: Pilot, rounds: int = 4) -> None:
    """Wait until no worker runs and the message queue is drained, a few times over."""
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def until(pilot: Pilot, cond: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)  # not pilot.pause: that also waits for the screen to go idle


async def steady(pilot: Pilot, interval: float = 0.1, timeout: float = 20.0) -> None:
    """Wait until two screenshots `interval` apart are the same.

    Layout and repaint run on the screen's update timer, not through the message queue, so on a
    loaded machine `pilot.pause()` can return before a changed pane is laid out again; a snapshot
    taken then shows half of the old frame."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    await settle(pilot, rounds=1)
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
