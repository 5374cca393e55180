"""SIGKILL a real `ztwizard apply` against `ztwizard sandbox serve` at points of the
deallocate → change → start sequence, then `resume` and `undo`: every VM is back in its power
state and every property as it was.

Kill points are named by the journal event just committed (ZTWIZARD_TEST_KILL_AT_EVENT,
`KIND[@TEXT][+MS]`): `+MS` dies that many milliseconds later, inside the request that follows
(the deallocation's or start's LRO, the PATCH while the VM is down)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ztwizard import journal as J
from ztwizard.gateway import Gateway
from ztwizard.target import sandbox_target

from .conftest import register_feature
from .served import Served, run_cli

APPLY = ["--sandbox", "apply", "--yes", "--allow-disruptive", "--allow-cost", "--step", "vm-3", "--step", "vm-4"]
KILLS = ["power-was", "deallocating+40", "deallocated", "in_flight@vm-3a", "in_flight@vm-4c+10",
         "applied@vm-4c", "starting", "starting+40", "restored"]


def _vm_power(gw: Gateway, export: list[dict]) -> dict[str, str]:
    return {r["name"]: gw.power_state(r["id"]) for r in export
            if r.get("type", "").lower() == "microsoft.compute/virtualmachines"}


@pytest.mark.slow
def test_sigkill_in_the_power_sequence_then_resume_and_undo_restore_power_and_properties(tmp_path):
    sb = Served(tmp_path / "state", Path("reference"), "--latency-ms", "5")  # the built-in reference estate
    try:
        gw = Gateway(sandbox_target(sb.state))
        register_feature(gw, "Microsoft.Compute", "UseStandardSecurityType")  # undo leaves Trusted Launch
        original = sb.export()
        was = {k: v for k, v in original.items() if k.endswith("#power")}
        assert was and set(was.values()) == {"running"}
        log = []
        for kill in KILLS:
            run = run_cli(APPLY, sb.state, {J.KILL_AT_EVENT_ENV: kill})
            assert run.returncode == -9, f"{kill}: {run.stdout}{run.stderr}"
            with J.Journal(sb.state, write=False) as j:
                sid = j.latest_session().id
                stage = [g.stage for g in j.power_guards(sid)]
            resumed = run_cli(["--sandbox", "resume", sid], sb.state)
            assert resumed.returncode == 0, f"{kill}: {resumed.stdout}{resumed.stderr}"
            with J.Journal(sb.state, write=False) as j:
                assert not j.power_guards(sid), f"{kill}: a guard is still open after resume"
                assert not j.changes(sid, states=J.UNSETTLED)
            now = sb.export()
            assert {k: now[k] for k in was} == was, f"{kill}: power after resume {now}"
            undone = run_cli(["--sandbox", "undo", "--yes", "--session", sid], sb.state)
            assert undone.returncode == 0, f"{kill}: {undone.stdout}{undone.stderr}"
            after = sb.export()
            changed = sorted(k for k in set(after) | set(original) if after.get(k) != original.get(k))
            assert not changed, f"{kill}: not restored: {changed}\n{undone.stdout}"
            log.append(f"{kill}: open guard {stage or '-'}; {resumed.stdout.splitlines()[0]}")
        print("\n".join(log))  # -s shows where each kill left the guard
        assert any("deallocated" in line or "starting" in line for line in log), "\n".join(log)
    finally:
        sb.stop()
