"""Ctrl-C during a concurrent apply, as a person sends it: SIGINT to `ztwizard apply --parallel 8`
running in its own process against `sandbox serve` in another. The writes under way finish and
are journaled, nothing more is sent, the run says so in one line with the resume hint (exit 1,
an error that left the session resumable), and `resume --yes` completes the session."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from ztwizard import journal as J
from ztwizard.armjson import side
from ztwizard.gateway import Gateway
from ztwizard.target import sandbox_target

from .served import APPLY, CLI, run_cli


def _applied_so_far(state) -> int:
    if not (state / "journal.sqlite3").exists():
        return 0
    try:
        with J.Journal(state, write=False) as j:
            session = j.latest_session()
            return len(j.changes(session.id, states=(J.APPLIED,))) if session else 0
    except Exception:  # the journal is being created: not yet readable
        return 0


def test_sigint_mid_apply_stops_journaled_and_resume_completes_it(served):
    sb = served("--latency-ms", "20")
    state = sb.state
    gw = Gateway(sandbox_target(state))
    vms = [r["id"] for r in gw.inventory().of_type("microsoft.compute/virtualmachines")]
    power_before = {vm.lower(): gw.power_state(vm) for vm in vms}
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZTWIZARD_")}
    proc = subprocess.Popen([*CLI, "--state-dir", str(state), *APPLY, "--parallel", "8"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while _applied_so_far(state) < 3:
        assert proc.poll() is None, "apply ended before it could be interrupted"
        assert time.monotonic() < deadline, "apply applied nothing within 90 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)

    assert proc.returncode == 1, out + err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    message = [line for line in err.splitlines() if line.strip()]
    assert len(message) == 2, err  # the sentence and its hint
    assert message[0].startswith("ztwizard: error: Interrupted: apply stopped with ") and "change(s) applied" in message[0]
    assert message[0].count(". ") == 0 and message[0].endswith("."), "one sentence"
    assert message[1].startswith("hint: Run `ztwizard") and "resume` to reconcile it" in message[1]

    with J.Journal(state, write=False) as j:
        sid = j.latest_session().id
        rows = j.changes(sid)
        guards = {g.vm_id.lower(): g for g in j.power_guards(sid)}
    states = {r.state for r in rows}
    assert not states & set(J.UNSETTLED), "the writes under way finished and were journaled"
    assert J.APPLIED in states and J.PLANNED in states, "interrupted mid-run: some applied, the rest not sent"
    for r in rows:  # the journal says what ARM holds
        now = gw.read(r.resource_id)
        if r.state == J.APPLIED and r.action == "update":
            assert side(now, r.plan_before, r.plan_after) == "after", r.change_id
        elif r.state == J.PLANNED and r.action == "update" and not any(
                o.state == J.APPLIED and o.resource_id.lower() == r.resource_id.lower() for o in rows):
            assert side(now, r.plan_before, r.plan_after) == "before", r.change_id
        elif r.state == J.PLANNED and r.action == "create":
            assert now is None, r.change_id
    for vm, was in power_before.items():
        if gw.power_state(vm) != was:
            assert vm in guards, f"{vm} left {gw.power_state(vm)} with no journal record"

    resumed = run_cli(["--sandbox", "resume", "--yes", sid], state, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    with J.Journal(state, write=False) as j:
        rows = j.changes(sid)
        assert not j.power_guards(sid), "every VM put back"
    assert not {r.state for r in rows} & {J.PLANNED, *J.UNSETTLED}, resumed.stdout
    assert len({r.change_id for r in rows}) == len(rows)
    assert {vm: gw.power_state(vm) for vm in power_before} == power_before
