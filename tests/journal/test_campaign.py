"""The slow campaigns of issue 10, on `ztwizard sandbox serve` in its own process:

* 100 SIGKILL points spread over apply (60) and undo (40). Kills come in chains: each killed run
  is followed by another killed run on whatever state it left (new apply sessions, or the same
  undo continued), and a chain ends by settling every session (resume) and undoing them all, after
  which the estate must be exactly the original. A killed process is the CLI; the settling is the
  library over the same HTTPS endpoint, to keep the campaign within minutes.
* A fault matrix (429 with and without Retry-After, 500, 503, connection resets before and after
  the write, failed LROs, LROs that outlive the apply's deadline) over three `serve --seed N` runs: apply, re-apply until nothing is left,
  then undo, and count lost or duplicated changes (0 expected)."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import _small_estate

from ztwizard import journal as J
from ztwizard.gateway import Gateway
from ztwizard.outcomes import DEFAULT_PARALLEL, ApplyInterrupted
from ztwizard.resume import continue_session, reconcile
from ztwizard.target import sandbox_target
from ztwizard.undo import undo_changes

from .served import APPLY, CLI, Served, run_cli

APPLY_KILLS = 60
UNDO_KILLS = 40


def _settle_and_undo_all(srv: Served) -> None:
    """Every session settled, then undone newest first (the library, over HTTPS)."""
    gw = srv.gateway()
    J.wait_unlocked(srv.state, timeout=30)
    with J.Journal(srv.state) as j:
        for s in j.sessions():
            if j.changes(s.id, states=J.UNSETTLED):
                reconcile(gw, j, s.id)
        for s in j.sessions():  # newest first
            if j.changes(s.id, states=(*J.UNDOABLE, *J.UNSETTLED)):
                report = undo_changes(gw, j, s.id)
                assert report.ok, "\n".join(report.lines())
        left = [(s.id, r.change_id, r.state) for s in j.sessions()
                for r in j.changes(s.id, states=(*J.UNDOABLE, *J.UNSETTLED))]
        assert not left, left


def _invariants(state: Path) -> None:
    with J.Journal(state, write=False) as j:
        for s in j.sessions():
            rows = j.changes(s.id)
            assert len({r.change_id for r in rows}) == len(rows), "no change recorded twice"
            unsettled = j.changes(s.id, states=J.UNSETTLED)
            # one write under way per apply worker (the CLI's default --parallel)
            assert len(unsettled) <= DEFAULT_PARALLEL, "at most the writes under way are in flight"
            assert all(r.before_image is not None for r in unsettled if r.action != "create")


def _differing(now: dict, was: dict) -> dict:
    """The first few resources whose views differ: (now, was)."""
    keys = sorted(k for k in now.keys() | was.keys() if now.get(k) != was.get(k))
    return {k: (now.get(k), was.get(k)) for k in keys[:3]}


def _points(total: int, n: int, offset: int) -> list[str]:
    """`n` kill specs spread over `total` commits: right after a commit, or 15/30 ms into the next request."""
    out = []
    for i in range(n):
        p = 2 + (i * 7 + offset) % max(1, total - 2)
        out.append(f"{p}+{(i % 3) * 15}" if i % 3 else str(p))
    return out


def _commits_of_a_full_apply(srv: Served) -> int:
    run = run_cli(APPLY, srv.state)
    assert run.returncode == 0, run.stdout + run.stderr
    with J.Journal(srv.state, write=False) as j:
        n = len(j.events(j.latest_session().id))
    _settle_and_undo_all(srv)
    return n


@pytest.mark.slow
def test_one_hundred_kills_over_apply_and_undo_restore_the_estate(served, figure):
    srv = served("--latency-ms", "5")
    original = srv.export()
    total = _commits_of_a_full_apply(srv)
    assert srv.export() == original
    assert total > 20

    tally = {"apply": [0, 0], "undo": [0, 0]}  # restored, tried
    # apply: chains of 6 kills, each a new session on what the last one left
    specs = _points(total, APPLY_KILLS, 0)
    for start in range(0, len(specs), 6):
        chain = specs[start:start + 6]
        for kill in chain:
            run = run_cli(APPLY, srv.state, {J.KILL_ENV: kill})
            assert run.returncode in (-9, 0, 1), run.stdout + run.stderr  # killed, or done before the point
            _invariants(srv.state)
        _settle_and_undo_all(srv)
        now = srv.export()
        restored = now == original
        tally["apply"][1] += len(chain)
        tally["apply"][0] += len(chain) if restored else 0
        assert restored, f"estate not restored after apply kills {chain}: {_differing(now, original)}"

    # undo: one full apply, then undo killed again and again until it completes
    specs = _points(12, UNDO_KILLS, 3)
    i = 0
    while i < len(specs):
        run = run_cli(APPLY, srv.state)
        assert run.returncode == 0, run.stdout + run.stderr
        chain = []
        while i < len(specs):
            kill = specs[i]
            undo = run_cli(["--sandbox", "undo", "--yes"], srv.state, {J.KILL_ENV: kill})
            assert undo.returncode in (-9, 0, 2), undo.stdout + undo.stderr
            chain.append(kill)
            i += 1
            _invariants(srv.state)
            if undo.returncode != -9:
                break  # the undo finished before the kill point: this chain is done
        _settle_and_undo_all(srv)
        now = srv.export()
        restored = now == original
        tally["undo"][1] += len(chain)
        tally["undo"][0] += len(chain) if restored else 0
        assert restored, f"estate not restored after undo kills {chain}: {_differing(now, original)}"
    figure(f"kill restores: apply {tally['apply'][0]}/{tally['apply'][1]}, "
           f"undo {tally['undo'][0]}/{tally['undo'][1]}")
    assert tally["apply"][1] + tally["undo"][1] >= 100


FAULTS = "429:0.08,500:0.04,503:0.04,reset:0.03,reset-after:0.03,lro-fail:0.08,lro-hang:0.04"
# a hung operation outlives the apply's LRO deadline, then finishes: resume must settle it once
HANG = ("--lro-hang-seconds", "3")
APPLY_WITH_DEADLINE = [*APPLY, "--lro-timeout", "1"]


def _accounted(state: Path) -> tuple[int, int]:
    """(lost, duplicated): changes with no final state, and the same change settled twice."""
    lost = dup = 0
    with J.Journal(state, write=False) as j:
        for s in j.sessions():
            rows = j.changes(s.id)
            ids = [r.change_id for r in rows]
            dup += len(ids) - len(set(ids))
            lost += sum(1 for r in rows if r.state in (J.PLANNED, *J.UNSETTLED))
    return lost, dup


def _deadline_stops(state: Path) -> int:
    """Writes whose operation outlived the apply's LRO deadline (journaled as unknown)."""
    with J.Journal(state, write=False) as j:
        return sum(1 for s in j.sessions() for e in j.events(s.id)
                   if "Outcome unknown; resume reconciles it" in (e["message"] or ""))


def _resume_until_done(srv: Served, limit: int = 8) -> None:
    """The wizard's resume (reconcile, then apply the rest) until the session completes; a hung
    operation may interrupt it again, as it interrupted the apply."""
    gw = Gateway(sandbox_target(srv.state), lro_timeout=1)
    J.wait_unlocked(srv.state, timeout=30)
    with J.Journal(srv.state) as j:
        info = j.latest_session(unfinished=True)
        assert info is not None, "an interrupted apply leaves its session unfinished"
        for _ in range(limit):
            try:
                continue_session(gw, j, info.id)
                return
            except ApplyInterrupted as exc:
                assert "did not finish within" in exc.message or "may be in flight" in exc.message, exc.message
    raise AssertionError(f"session {info.id} did not complete after {limit} resumes")


def _to_fixpoint(srv: Served, limit: int = 8) -> tuple[int, set[str]]:
    """Apply until a run applies nothing and fails nothing; (runs, what such a run still skips)."""
    for runs in range(1, limit + 1):
        run = run_cli(APPLY_WITH_DEADLINE, srv.state, timeout=300)
        assert "Traceback" not in run.stderr and "unexpected" not in run.stderr.lower(), run.stderr
        assert run.returncode in (0, 1), run.stdout + run.stderr
        if "Nothing to apply" in run.stdout:
            return runs, set()
        m = re.search(r"(\d+) applied, (\d+) failed, (\d+) skipped", run.stdout)
        if m and m.group(1) == "0" and m.group(2) == "0":
            return runs, {line.split(" (")[0].strip() for line in run.stdout.splitlines() if "skipped  " in line}
        if run.returncode == 1 and "resume" in run.stderr:  # stopped mid-way: resume it, as a person would
            _resume_until_done(srv)
    raise AssertionError(f"no fixpoint after {limit} applies:\n{run.stdout}\n{run.stderr}")


# What a provider stamps when a write creates or enables something (when a Defender plan was
# turned on, the principal Entra made for an identity): two runs of the same changes differ there.
STAMPS = (("properties", "enablementTime"), ("identity", "principalId"))


def _stamps_dropped(view: dict) -> dict:
    """A view of another run comparable to this one: the same, without the providers' stamps."""
    out = copy.deepcopy(view)
    for res in out.values():
        for *parents, leaf in STAMPS:
            holder = res
            for k in parents:
                holder = holder.get(k) if isinstance(holder, dict) else None
            if isinstance(holder, dict):
                holder.pop(leaf, None)
    return out


@pytest.fixture(scope="module")
def clean_baseline(tmp_path_factory):
    """The fixpoint without faults, reached once for every seed: (original view, converged view,
    what its last apply still skips)."""
    root = tmp_path_factory.mktemp("clean")
    estate = root / "estate.json"
    estate.write_text(json.dumps(_small_estate()))
    clean = Served(root / "state", estate)
    try:
        original = clean.export()
        _, left = _to_fixpoint(clean)
        return original, clean.export(), left
    finally:
        clean.stop()


@pytest.mark.slow
# Seeds 1 and 3 once ended apart: a fault failed storage-4a's plan while storage-4c gave accounts
# their own setting (or the reverse); the stand-in now waits for the plan (test_stand_in.py).
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fault_matrix_converges_without_lost_or_duplicated_changes(served, clean_baseline, seed, figure):
    """Under faults, repeated applies reach the same fixpoint as without them (the same estate,
    the same changes left skipped), with no change lost or recorded twice; undo restores."""
    original, clean_converged, clean_left = clean_baseline
    # Retry-After comes with the injected 429s; throttling with no header comes from the token bucket
    srv = served("--latency-ms", "2", "--faults", FAULTS, "--seed", str(seed), *HANG, name=f"faulty-{seed}")
    runs, left = _to_fixpoint(srv)
    lost, dup = _accounted(srv.state)
    hung = _deadline_stops(srv.state)  # seeded: 1, 0 and 2 for seeds 1-3 (test_lro_timeout covers it always)
    srv.stop()
    srv2 = served("--latency-ms", "2", name=f"faulty-{seed}")  # the same state, faults off, to compare
    faulty_view, clean_view = _stamps_dropped(srv2.export()), _stamps_dropped(clean_converged)
    converged = faulty_view == clean_view
    differ = sorted(k for k in faulty_view.keys() | clean_view.keys() if faulty_view.get(k) != clean_view.get(k))
    _settle_and_undo_all(srv2)
    restored = srv2.export() == original
    figure(f"fault seed {seed}: fixpoint after {runs} applies; same as without faults: {converged}; "
           f"lost {lost}, duplicated {dup}; hung operations waited out: {hung}; restored by undo: {restored}; "
           f"left skipped: {sorted(left)}")
    assert left == clean_left
    assert converged, {k: (faulty_view.get(k), clean_view.get(k)) for k in differ[:3]}
    assert restored
    assert (lost, dup) == (0, 0)


def test_serve_takes_a_seed():
    out = subprocess.run([*CLI, "sandbox", "serve", "--help"], capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if not k.startswith("ZTWIZARD_")})
    assert "--seed" in out.stdout
