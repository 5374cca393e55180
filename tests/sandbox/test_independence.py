"""The sandbox keeps its own model: loading it, building the reference estate and answering
requests imports nothing from the wizard's side (inventory, catalog, gateway, engine, armjson),
so a mistake in the wizard's tables cannot be repeated by the sandbox that tests it."""

from __future__ import annotations

import subprocess
import sys

CLIENT_SIDE = ("ztwizard.inventory", "ztwizard.armjson", "ztwizard.gateway", "ztwizard.engine",
               "ztwizard.steps", "ztwizard.catalog", "ztwizard.apply", "ztwizard.undo")


def test_the_sandbox_imports_nothing_from_the_client_side():
    code = (
        "import sys\n"
        "from ztwizard.sandbox import Sandbox\n"
        "sb = Sandbox(None, estate='reference')\n"
        "sub = next(iter(sb.store.subscriptions.values()))['subscriptionId']\n"
        "h = {'Authorization': 'Bearer ' + sb.token}\n"
        "for url in (f'https://m/subscriptions/{sub}/resources?api-version=2025-04-01',\n"
        "            f'https://m/subscriptions/{sub}/providers/Microsoft.Compute/virtualMachines?api-version=2026-04-01'):\n"
        "    assert sb.handle('GET', url, h, b'')[0] == 200\n"
        f"print(sorted(m for m in sys.modules if m in {CLIENT_SIDE!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
