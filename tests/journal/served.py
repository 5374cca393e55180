"""`ztwizard sandbox serve` in its own process, for the tests that kill the CLI mid-run: the CLI
as a subprocess (`run_cli`) and a served sandbox on an estate file (`Served`); conftest's `served`
fixture starts them and stops every one it started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ztwizard.gateway import Gateway
from ztwizard.target import sandbox_target

CLI = [sys.executable, "-m", "ztwizard.cli"]
APPLY = ["--sandbox", "apply", "--yes", "--allow-disruptive", "--allow-cost"]


def run_cli(args: list[str], state: Path, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The CLI on `state`, without the ZTWIZARD_ settings of the environment the tests run in."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ZTWIZARD_")}
    full_env.update(env or {})
    return subprocess.run([*CLI, "--state-dir", str(state), *args], env=full_env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


class Served:
    """`ztwizard sandbox serve` on an estate file, `extra` its further options (latency, faults)."""

    def __init__(self, state: Path, estate_file: Path, *extra: str) -> None:
        self.state = state
        conn = state / "sandbox" / "connection.json"
        self.proc = subprocess.Popen([*CLI, "sandbox", "serve", "--state-dir", str(state), "--estate",
                                      str(estate_file), *extra], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60  # a loaded machine starts Python slowly
        while not conn.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"sandbox serve did not start: {self.proc.stderr.read() if self.proc.stderr else ''}")
            time.sleep(0.05)

    def gateway(self) -> Gateway:
        return Gateway(sandbox_target(self.state))

    def export(self) -> dict[str, Any]:
        """The estate as ARM shows it: `sandbox export`, and service children read through ARM."""
        from .conftest import estate_view  # conftest imports this module for its fixture

        out = run_cli(["sandbox", "export"], self.state)
        assert out.returncode == 0, out.stderr
        return estate_view(json.loads(out.stdout), self.gateway())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

