"""Regenerate the README's screenshots of the wizard: `.venv/bin/python scripts/screenshots.py`.

Drives the real wizard headless on a throw-away sandbox with the reference estate, at 100x30,
and saves SVGs of the checklist, a step with its diff, the apply confirmation and the journal."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "screenshots"
SIZE = (100, 30)


async def shoot(workdir: Path) -> list[Path]:
    from ztwizard.core import Core
    from ztwizard.gateway import Gateway
    from ztwizard.sandbox import Sandbox
    from ztwizard.target import in_process_target
    from ztwizard.tui import make_app

    sandbox = Sandbox(workdir / "sandbox", estate="reference")
    core = Core(Gateway(in_process_target(sandbox)), state_dir=workdir / "state")
    app = make_app(core)
    saved: list[Path] = []

    async def settle(pilot) -> None:
        for _ in range(4):
            await app.workers.wait_for_complete()
            await pilot.pause()

    def save(name: str) -> None:
        app.clear_notifications()
        saved.append(Path(app.save_screenshot(f"{name}.svg", path=str(OUT))))

    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        await pilot.pause()
        save("checklist")
        app.action_open_step("storage-1")
        await pilot.pause()
        await pilot.press("c", "down")
        await pilot.pause()
        save("step-diff")
        await pilot.press("a")
        await pilot.pause()
        save("confirm")
        await pilot.press("ctrl+y")
        await settle(pilot)
        await pilot.press("j")
        await settle(pilot)
        await pilot.pause()
        save("journal")
        await pilot.press("q")
    core.close()
    return saved


def main() -> int:
    sys.path.insert(0, str(ROOT))
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ztwizard-shots-") as tmp:
        saved = asyncio.run(shoot(Path(tmp)))
    for path in saved:
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
