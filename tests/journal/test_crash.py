"""The story the journal exists for: `ztwizard apply` is SIGKILLed at some instant while a sandbox
serves ARM in another process; `resume` settles the journal, every change is accounted for, and
`undo` brings the estate back to what it was.

Kill points come from ZTWIZARD_TEST_KILL_AFTER_COMMITS: "N" dies right after the Nth durable
commit, "N+MS" dies MS milliseconds later, in the middle of the request that follows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ztwizard import journal as J
from ztwizard.apply import DEFAULT_PARALLEL
from ztwizard.undo import one_way_of

from .conftest import estate_view, without_one_way

CLI = [sys.executable, "-m", "ztwizard.cli"]
SETTLED = {J.PLANNED, J.SKIPPED, J.APPLIED, J.FAILED, J.NOT_APPLIED, J.DRIFTED, J.UNDONE}


def _run(args: list[str], state: Path, env: dict[str, str] | None = None, timeout: float = 120):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ZTWIZARD_")}
    full_env.update(env or {})
    return subprocess.run([*CLI, "--state-dir", str(state), *args], env=full_env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _serve_command(state: Path, estate_file: Path, latency_ms: int) -> list[str]:
    return [*CLI, "sandbox", "serve", "--state-dir", str(state), "--estate", str(estate_file),
            "--latency-ms", str(latency_ms)]


class Served:
    """`ztwizard sandbox serve` in its own process, on an estate file."""

    def __init__(self, state: Path, estate_file: Path, latency_ms: int) -> None:
        self.state = state
        conn = state / "sandbox" / "connection.json"
        self.proc = subprocess.Popen(_serve_command(state, estate_file, latency_ms),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not conn.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"sandbox serve did not start: {self.proc.stderr.read() if self.proc.stderr else ''}")
            time.sleep(0.05)

    def export(self) -> dict:
        """The estate as ARM shows it: `sandbox export`, and service children read through ARM."""
        from ztwizard.gateway import Gateway
        from ztwizard.target import sandbox_target

        out = _run(["sandbox", "export"], self.state)
        assert out.returncode == 0, out.stderr
        exported = json.loads(out.stdout)
        return estate_view(exported, Gateway(sandbox_target(self.state)))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def served(tmp_path, small_estate):
    estate = tmp_path / "estate.json"
    estate.write_text(json.dumps(small_estate))
    servers: list[Served] = []

    def start(latency_ms: int = 5) -> Served:
        s = Served(tmp_path / "state", estate, latency_ms)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


APPLY = ["--sandbox", "apply", "--yes", "--allow-disruptive", "--allow-cost"]


def _crash_resume_undo(sb: Served, kill: str, original: dict, resume: bool = True) -> str:
    """One kill point. Without `resume`, undo settles the in-flight changes itself."""
    state = sb.state
    run = _run(APPLY, state, {J.KILL_ENV: kill})
    assert run.returncode == -9, run.stdout + run.stderr  # killed mid-apply
    with J.Journal(state, write=False) as j:
        session = j.latest_session()
        assert session is not None
        sid = session.id
    with J.Journal(state, write=False) as j:
        rows = j.changes(sid)
        assert rows, "the plan was recorded before any write"
        assert len(j.changes(sid, states=J.UNSETTLED)) <= DEFAULT_PARALLEL, "at most the writes under way are in flight"
        assert all(r.before_image is not None for r in j.changes(sid, states=J.UNSETTLED) if r.action != "create")
    applied: list = []
    settled = ""
    if resume:
        resumed = _run(["--sandbox", "resume", sid], state)
        assert resumed.returncode == 0, resumed.stderr
        settled = " ".join(line.split(": ", 1)[1].split(" (")[0] for line in resumed.stdout.splitlines()
                           if " -> " in line)
        with J.Journal(state, write=False) as j:
            rows = j.changes(sid)
            assert all(r.state in SETTLED for r in rows), {r.change_id: r.state for r in rows}
            assert len({r.change_id for r in rows}) == len(rows)
            applied = [r for r in rows if r.state == J.APPLIED]
            assert all(r.before_image is not None or r.action == "create" for r in applied)
    undone = _run(["--sandbox", "undo", "--yes", "--session", sid], state)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    with J.Journal(state, write=False) as j:
        left = [r for r in j.changes(sid) if r.state in (*J.UNDOABLE, *J.UNSETTLED) and not one_way_of(r)]
        assert not left, "every applied change was undone"
    with J.Journal(state, write=False) as j:  # one-way changes stay (labelled so in the plan)
        now, original = without_one_way(sb.export(), j, sid), without_one_way(original, j, sid)
    if now != original:
        changed = {k for k in set(now) | set(original) if now.get(k) != original.get(k)}
        with J.Journal(state, write=False) as j:
            rows = [(r.change_id, r.state, r.note, r.error) for r in j.changes(sid)
                    if r.resource_id.lower() in changed]
            events = [(e["change_id"], e["kind"], e["message"]) for e in j.events(sid)
                      if any(e["change_id"] == r[0] for r in rows)]
        raise AssertionError(f"estate not restored after kill point {kill}: {sorted(changed)}\n{rows}\n{events}\n"
                             f"{undone.stdout}")
    return f"{kill}: {len(applied)} applied; {settled or 'nothing in flight'}"


def _commits_in_a_full_apply(sb: Served, original: dict) -> int:
    """Run the apply once to the end, count its journal commits, then undo it."""
    run = _run(APPLY, sb.state)
    assert run.returncode == 0, run.stdout + run.stderr
    with J.Journal(sb.state, write=False) as j:
        sid = j.latest_session().id
        n = len(j.events(sid))  # one event per commit that journaled a step of the work (a floor)
    undo = _run(["--sandbox", "undo", "--yes", "--session", sid], sb.state)
    assert undo.returncode == 0, undo.stdout + undo.stderr
    with J.Journal(sb.state, write=False) as j:
        assert without_one_way(sb.export(), j, sid) == without_one_way(original, j, sid)
    return n


def test_kill_apply_at_a_few_points_then_resume_and_undo(served):
    sb = served(latency_ms=5)
    original = sb.export()
    _crash_resume_undo(sb, "9+15", original)  # mid-request, then resume, then undo
    _crash_resume_undo(sb, "30", original, resume=False)  # right after a commit; undo settles it itself


@pytest.mark.slow
def test_kill_apply_at_twenty_points_spread_over_the_run(served):
    sb = served(latency_ms=10)
    original = sb.export()
    total = _commits_in_a_full_apply(sb, original)
    assert total > 40
    points = sorted({max(2, round(i * total / 22)) for i in range(1, 22)})
    kills = [f"{p}+{(i % 3) * 15}" if i % 3 else str(p) for i, p in enumerate(points)]
    assert len(kills) >= 20
    log = [_crash_resume_undo(sb, kill, original, resume=i % 4 != 3) for i, kill in enumerate(kills)]
    assert any("in_flight ->" in line for line in log), "\n".join(log)  # some kills caught a write under way
