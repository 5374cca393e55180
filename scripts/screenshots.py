"""Regenerate the README's screenshots of the wizard: `.venv/bin/python scripts/screenshots.py`.

Drives the real wizard headless on a throw-away sandbox with the reference estate, at 100x30,
and saves SVGs of the checklist, a step with its diff, a create's parameter form, the typed
confirmation of a disruptive apply, the journal, the drift table, quitting mid-apply and the
resume that follows.

Deterministic: the journal's clock and session-id suffix are pinned while the script runs, so a
second run writes the same bytes (`git status` stays clean when nothing on screen changed)."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import threading
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "screenshots"
SIZE = (100, 30)
CLOCK = datetime(2026, 6, 1, 9, 30, 0, tzinfo=UTC)


@contextmanager
def pinned_clock():
    """Session ids are `YYYYmmdd-HHMMSS-<6 hex>`: the same on every run while screenshots are taken."""
    import ztwizard.journal as journal

    class Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Clock:  # type: ignore[override]
            return cls.fromtimestamp(CLOCK.timestamp(), tz)

    fixed = mock.Mock(hex="5c4ee75b0000")
    with mock.patch.object(journal, "datetime", Clock), mock.patch.object(journal.uuid, "uuid4", return_value=fixed):
        yield


async def shoot(workdir: Path) -> list[Path]:
    from ztwizard.core import Core
    from ztwizard.gateway import Gateway
    from ztwizard.sandbox import Sandbox
    from ztwizard.target import in_process_target
    from ztwizard.tui import make_app

    def wizard() -> Any:
        sandbox = Sandbox(workdir / "sandbox", estate="reference")  # a second wizard sees the same ARM state
        return make_app(Core(Gateway(in_process_target(sandbox)), state_dir=workdir / "state"))

    app = wizard()
    saved: list[Path] = []

    async def settle(pilot: Any) -> None:
        for _ in range(4):
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()

    def save(name: str, on: Any = None) -> None:
        a = on or app
        a.clear_notifications()
        saved.append(Path(a.save_screenshot(f"{name}.svg", path=str(OUT))))

    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        save("checklist")

        app.action_open_step("storage-1")
        await pilot.pause()
        await pilot.press("c", "down")
        await pilot.pause()
        save("step-diff")

        # every change of storage-1, the disruptive one too: the confirmation wants the step id typed
        app.selected["storage-1"] = {c.id for c in app.results["storage-1"].changes}
        await pilot.press("a")
        await pilot.pause()
        await pilot.press(*"storage")
        await pilot.pause()
        save("confirm")
        await pilot.press(*"-1", "ctrl+y")
        await settle(pilot)

        await pilot.press("j")
        await settle(pilot)
        save("journal")

        # someone else lowers the TLS floor the wizard raised: d re-reads it and shows three ways
        gateway = app.core.gateway
        tls = next(r for r in app.journal_rows if r.check == "storage-1b")
        gateway.write("PATCH", tls.resource_id, {"properties": {"minimumTlsVersion": "TLS1_1"}})
        app.screen.query_one("#journal").move_cursor(row=app.journal_rows.index(tls))
        await pilot.press("d")
        await settle(pilot)
        save("drift")
        await pilot.press("escape", "escape")
        await pilot.pause()

        # a create with parameters: the route table for GatewaySubnet
        app.action_open_step("hub-3")
        await pilot.pause()
        step = app.screen
        step.action_show_changes()  # the step view kept storage-1's tab; c would toggle it
        await pilot.pause()
        create = next(c for c in step.changes if c.action == "create" and c.check == "hub-3a")
        step.query_one("#changes").highlighted = step.changes.index(create)
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        assert type(app.screen).__name__ == "ParamsScreen", app.screen
        save("params")
        await pilot.press("escape")
        await pilot.pause()

        # quit while an apply runs: it asks, then stops after the change in flight
        real_write, wrote, release = gateway.write, threading.Event(), threading.Event()

        def held_write(*args: Any, **kwargs: Any) -> Any:
            out = real_write(*args, **kwargs)
            wrote.set()
            release.wait(10)
            return out

        gateway.write = held_write
        app.selected["hub-3"] = {c.id for c in step.changes}
        await pilot.press("a", *"hub-3", "ctrl+y")
        while not wrote.is_set():
            await asyncio.sleep(0.02)
        await pilot.press("q")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmScreen", app.screen
        save("quit-mid-apply")
        await pilot.press("ctrl+y")
        release.set()
        while app.is_running:
            await asyncio.sleep(0.05)
    app.core.close()

    again = wizard()
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        save("resume", again)
        await pilot.press("q")
    again.core.close()
    return saved


def main() -> int:
    sys.path.insert(0, str(ROOT))
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ztwizard-shots-") as tmp, pinned_clock():
        saved = asyncio.run(shoot(Path(tmp)))
    for path in saved:
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
