"""An operation that never ends: the write's wait has a deadline, the change stays in flight
("unknown, will reconcile"), apply stops with a resume hint, and resume settles it by reading ARM
without sending the write again. Through the real azure-mgmt clients and LRO pollers."""

from __future__ import annotations

import time

import pytest

from ztwizard import journal as J
from ztwizard.apply import apply_changes, start_session
from ztwizard.engine import inspect
from ztwizard.gateway import Gateway
from ztwizard.outcomes import ApplyInterrupted
from ztwizard.resume import continue_session
from ztwizard.sandbox.faults import Faults
from ztwizard.target import in_process_target

from .served import run_cli


def _writes_to(sb, resource_id: str) -> int:
    path = resource_id.lower()
    return sum(1 for method, p, _ in sb.request_log
               if method in ("PUT", "PATCH", "DELETE") and p.split("?")[0].lower() == path)


def test_a_hung_operation_stays_in_flight_and_resume_settles_it_once(world):
    w = world(lro_hang_seconds=3.0)  # the stuck operation finishes (Succeeded) 3 s after it began
    gw = Gateway(in_process_target(w.sb), lro_timeout=0.5)
    changes = inspect(gw).changes()
    sid = start_session(w.journal, gw, changes)
    w.sb.faults = Faults.parse("lro-hang:1.0")

    started = time.monotonic()
    with pytest.raises(ApplyInterrupted) as stopped:
        # one write at a time: the first hangs and stops the run (concurrent stops: test_concurrent_apply)
        apply_changes(gw, w.journal, sid, changes, allow_disruptive=True, allow_cost=True, parallel=1)
    assert time.monotonic() - started < 20, "the deadline ended the wait"
    assert "did not finish within 0.5 s" in stopped.value.message
    assert "may be in flight" in stopped.value.message and "resume" in stopped.value.hint

    unsettled = w.journal.changes(sid, states=J.UNSETTLED)
    assert [r.state for r in unsettled] == [J.IN_FLIGHT], "the hung change is kept as unknown"
    hung = unsettled[0]
    events = [e["message"] for e in w.journal.events(sid) if e["change_id"] == hung.change_id]
    assert any("Outcome unknown; resume reconciles it" in m for m in events), events
    later = [r for r in w.journal.changes(sid) if r.ordinal > hung.ordinal]
    assert later and all(r.state == J.PLANNED for r in later), "nothing after it was attempted"
    assert _writes_to(w.sb, hung.resource_id) == 1

    w.sb.faults = Faults.parse("")
    settled, report = continue_session(gw, w.journal, sid)
    assert [(s.change_id, s.was, s.now) for s in settled.settled] == [(hung.change_id, J.IN_FLIGHT, J.APPLIED)]
    assert _writes_to(w.sb, hung.resource_id) == 1, "resume read ARM and did not send the write again"
    assert w.journal.change(sid, hung.change_id).state == J.APPLIED
    assert report is not None and not report.failed, report.lines()
    assert not w.journal.changes(sid, states=J.UNSETTLED)


def test_cli_lro_timeout_is_range_checked(tmp_path):
    out = run_cli(["--sandbox", "--lro-timeout", "0", "plan"], tmp_path / "state")
    assert out.returncode == 2
    assert "--lro-timeout" in out.stderr and "seconds from 1 to 86400" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "state").exists()
