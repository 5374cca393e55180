"""Concurrent apply against the sandbox, through the real azure-mgmt clients and pipeline: the
same end state and journal as one change at a time, per-resource order, prerequisites first,
and no change lost or sent twice under faults."""

from __future__ import annotations

import copy
import re
import threading
import time
from urllib.parse import urlsplit

import pytest

from ztwizard import journal as J
from ztwizard.apply import apply_changes, start_session, unit_key
from ztwizard.engine import inspect
from ztwizard.gateway import Gateway
from ztwizard.journal import Journal
from ztwizard.outcomes import ApplyInterrupted
from ztwizard.sandbox import Sandbox
from ztwizard.sandbox.faults import Faults
from ztwizard.sandbox.transport import make_transport
from ztwizard.target import in_process_target

from .conftest import World, comparable


@pytest.fixture
def twin(tmp_path, small_estate):
    """A second world with its own journal: the sequential run to compare against."""
    made: list[World] = []

    def make(estate=None, **knobs):
        knobs.setdefault("lro_seconds", 0)
        sb = Sandbox(None, estate=small_estate if estate is None else estate, **knobs)
        w = World(sb, Gateway(in_process_target(sb)), Journal(tmp_path / "twin"), tmp_path / "twin")
        made.append(w)
        return w

    yield make
    for w in made:
        w.journal.close()


def _apply(w, parallel, **kw):
    changes = inspect(w.gw).changes()
    sid = start_session(w.journal, w.gw, changes)
    kw.setdefault("allow_disruptive", True)
    kw.setdefault("allow_cost", True)
    report = apply_changes(w.gw, w.journal, sid, changes, parallel=parallel, verify=False, **kw)
    return sid, changes, report


_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d")


def _estate(w):
    """The sandbox's estate as compared, without the times a provider stamps on a write and the
    principal ARM makes up for a new managed identity."""
    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items()
                    if not (isinstance(v, str) and _STAMP.match(v)) and k != "principalId"}
        return [strip(v) for v in o] if isinstance(o, list) else o
    return strip(comparable(w.sb.export()))


def _journal(w, sid):
    """The journal's content without what differs between two runs (times, sequence numbers)."""
    return {r.change_id: (r.state, r.note, r.error) for r in w.journal.changes(sid)}


def _writes(w):
    """(method, path) of every write the sandbox answered with success, in order."""
    return [(m, p) for (m, p, s) in w.sb.request_log if m in ("PUT", "PATCH", "DELETE", "POST") and 200 <= s < 300]


@pytest.mark.parametrize("estate", [None, "reference"])
def test_concurrent_apply_ends_like_sequential(world, twin, estate):
    one, many = twin(estate=estate), world(estate=estate)
    sid1, changes, seq = _apply(one, 1)
    sid8, _, par = _apply(many, 8)
    assert sorted(o.change_id for o in par.outcomes) == sorted(c.id for c in changes), "each change reported once"
    assert [(o.change_id, o.result) for o in par.outcomes] == [(o.change_id, o.result) for o in seq.outcomes], \
        "the same outcomes, listed in plan order"
    assert _journal(many, sid8) == _journal(one, sid1)
    assert _estate(many) == _estate(one)
    assert many.journal.session(sid8).status == J.DONE


def test_changes_to_one_resource_keep_plan_order_and_prerequisites_come_first(world):
    w = world(estate="reference")
    changes = inspect(w.gw).changes()
    sid = start_session(w.journal, w.gw, changes)
    started: dict[str, float] = {}
    finished: dict[str, float] = {}
    lock = threading.Lock()
    clock = iter(range(10**6))

    def on_event(ev):
        with lock:
            (started if ev.kind == "start" else finished)[ev.change.id] = next(clock)

    report = apply_changes(w.gw, w.journal, sid, changes, allow_disruptive=True, allow_cost=True,
                           parallel=8, verify=False, on_event=on_event)
    assert not report.failed, "\n".join(report.lines())
    by_id = {c.id: c for c in changes}
    planned = [c.id for c in changes]
    seen_keys: dict[str, list[str]] = {}
    for cid in sorted(started, key=started.__getitem__):
        seen_keys.setdefault(unit_key(by_id[cid].resource_id).lower(), []).append(cid)
    # Several resources were written at once, or this test would prove nothing.
    overlaps = sum(1 for a in started for b in started if a != b and started[a] < started[b] < finished[a])
    assert overlaps > 0, "some changes ran concurrently"
    for cid in started:
        for dep in by_id[cid].depends_on:
            if dep in by_id:
                assert dep in finished and finished[dep] < started[cid], f"{cid} started before {dep} finished"
    for key, ids in seen_keys.items():
        same = [c for c in planned if c in ids]
        rids = {by_id[c].resource_id.lower() for c in ids}
        if len(rids) == 1:
            assert ids == same, f"changes to {key} ran out of plan order"


def _slow_starts(handle, seconds, monitors):
    """The sandbox behind a VM start that takes a while, as on Azure (a minute there): each poll of
    a start's operation is answered `seconds` late. Writes meanwhile meet the running start.
    `monitors` gets {VM path (lower): its start's operation path}."""

    def slow(method, url, headers, body):
        path = urlsplit(url).path
        if method == "GET" and path in monitors.values():
            time.sleep(seconds)
        status, out, data = handle(method, url, headers, body)
        if method == "POST" and path.lower().endswith("/start") and status == 202:
            monitors[path.lower()[:-len("/start")]] = urlsplit(out["Location"]).path
        return status, out, data

    return slow


def test_a_vms_next_unit_is_sent_only_after_its_start_has_finished(world):
    """Deterministic form of the race above. Each VM's guarded change (encryption at host) and its
    extension are units of their own, with the other VMs' changes between them in plan order. A
    start takes 1.6 s here, longer than apply's dispatch tick (0.5 s): were an extension's unit let
    go once the guarded change had its outcome, its PUT would land mid-start, meet 409
    AnotherOperationInProgress and spend its retries at once in-process (the transport does not
    sleep), and the change would fail. Operations settle by their polls only (not by age), as
    a start that is still being polled is still running."""
    w = world(estate="reference", lro_seconds=60)
    changes = inspect(w.gw, check_ids=["vm-4c", "vm-7a"], use_graph=False).changes()
    target = in_process_target(w.sb)
    monitors: dict[str, str] = {}
    target.transport = make_transport(_slow_starts(w.sb.handle, 0.8, monitors))
    gw = Gateway(target)
    sid = start_session(w.journal, gw, changes)
    report = apply_changes(gw, w.journal, sid, changes, allow_disruptive=True, parallel=8, verify=False)
    assert not report.failed and not report.skipped, "\n".join(report.lines())
    log = list(w.sb.request_log)
    assert [(m, p) for (m, p, s) in log if s == 409] == []
    puts = [(i, p.lower().split("/extensions/")[0]) for i, (m, p, s) in enumerate(log)
            if m == "PUT" and "/extensions/" in p]
    assert len(puts) == 2, "two VMs had an extension to install after their guarded change"
    for put, vm in puts:
        done = max(i for i, (m, p, s) in enumerate(log) if p == monitors[vm] and s == 200)
        assert done < put, f"the extension of {vm.rsplit('/', 1)[-1]} was sent while it was starting"


def test_a_dependent_is_skipped_when_its_prerequisite_was_not_applied(world):
    w = world(estate="reference")
    changes = inspect(w.gw).changes()
    ids = {c.id for c in changes}
    dependent = next(c for c in changes if c.check.startswith("storage-3b") and set(c.depends_on) <= ids)
    prereq = next(c for c in changes if c.id in dependent.depends_on and c.action == "create")
    others = [c for c in changes if c.id != dependent.id and set(c.depends_on) <= ids
              and c.check.startswith("storage-3b")]
    # Someone else creates the private endpoint (not as planned) after the plan: the planned create
    # is refused as stale, so the storage account's change that needs it must not be sent.
    body = copy.deepcopy(prereq.body or {})
    body["properties"]["privateLinkServiceConnections"][0]["name"] = "someone-elses-connection"
    w.gw.write("PUT", prereq.resource_id, body)
    sid = start_session(w.journal, w.gw, changes)
    started: list[str] = []
    lock = threading.Lock()

    def on_event(ev):
        if ev.kind == "start":
            with lock:
                started.append(ev.change.id)

    report = apply_changes(w.gw, w.journal, sid, changes, allow_disruptive=True, allow_cost=True,
                           parallel=8, verify=False, on_event=on_event)
    results = {o.change_id: o for o in report.outcomes}
    assert results[prereq.id].result == "skipped" and "already exists" in results[prereq.id].message
    assert results[dependent.id].result == "skipped"
    assert results[dependent.id].message.startswith("depends on") and prereq.id in results[dependent.id].message
    assert dependent.id not in started, "a dependent never starts when its prerequisite was not applied"
    assert w.journal.change(sid, dependent.id).state == J.SKIPPED
    assert any(results[o.id].result == "applied" for o in others), "the others' prerequisites were met"


def test_faults_under_concurrency_lose_or_duplicate_no_change(world, twin):
    # Faults every retry budget overcomes: a status fault on one request in five, so seven in a row
    # (retry_status 6) is about 1 in 80,000 requests; at one in four it failed a full run now and then
    # (8 workers draw the seeded faults in no fixed order).
    w = world(estate="reference", faults="429:0.10,500:0.05,503:0.05,reset-after:0.03", seed=7,
              fault_retry_after=2)
    sid, changes, report = _apply(w, 8)
    assert sorted(o.change_id for o in report.outcomes) == sorted(c.id for c in changes)
    assert not report.failed, "\n".join(report.lines())
    rows = w.journal.changes(sid)
    assert len(rows) == len({r.change_id for r in rows}) == len(changes)
    assert {r.state for r in rows} <= {J.APPLIED, J.SKIPPED}
    assert any(s in (0, 429, 500, 503) for (_m, _p, s) in w.sb.request_log), "the sandbox injected faults"
    # Against a fault-free sequential run: the same end state, so nothing was lost or sent twice.
    clean = twin(estate="reference")
    _, _, _ = _apply(clean, 1)
    assert _estate(w) == _estate(clean)


def test_an_unreachable_arm_stops_dispatching_and_journals_what_was_in_flight(world):
    w = world(estate="reference")
    changes = inspect(w.gw).changes()
    sid = start_session(w.journal, w.gw, changes)
    starts: list[str] = []

    def on_event(ev):
        if ev.kind == "start":
            starts.append(ev.change.id)
            if len(starts) == 5:
                w.sb.faults = Faults.parse("reset:1.0")

    with pytest.raises(ApplyInterrupted) as stopped:
        apply_changes(w.gw, w.journal, sid, changes, allow_disruptive=True, allow_cost=True, parallel=4,
                      verify=False, on_event=on_event)
    assert "resume" in stopped.value.hint
    rows = w.journal.changes(sid)
    untouched = [r for r in rows if r.state == J.PLANNED]
    assert untouched, "dispatching stopped: later changes were not attempted"
    assert len(starts) < len(changes)
    assert all(r.state in (J.PLANNED, J.APPLIED, J.SKIPPED, J.FAILED, *J.UNSETTLED) for r in rows)


class _Cancel(Exception):
    """What a front end raises from its start hook to cancel."""


def test_cancelling_stops_dispatching_and_lets_in_flight_changes_finish_journaled(world):
    w = world(estate="reference")
    changes = inspect(w.gw).changes()
    sid = start_session(w.journal, w.gw, changes)
    starts: list[str] = []
    lock = threading.Lock()

    def on_event(ev):
        if ev.kind == "start":
            with lock:
                starts.append(ev.change.id)
                if len(starts) > 6:
                    raise _Cancel()

    with pytest.raises(_Cancel):
        apply_changes(w.gw, w.journal, sid, changes, allow_disruptive=True, allow_cost=True, parallel=4,
                      verify=False, on_event=on_event)
    rows = {r.change_id: r for r in w.journal.changes(sid)}
    assert not [r for r in rows.values() if r.state in J.UNSETTLED], "every write sent was journaled with its result"
    sent = [cid for cid in starts[:6]]
    assert all(rows[cid].state in (J.APPLIED, J.SKIPPED, J.FAILED) for cid in sent)
    assert starts[6] in rows and rows[starts[6]].state == J.PLANNED, "the cancelled change was not sent"
    assert sum(r.state == J.PLANNED for r in rows.values()) > len(changes) // 2, "dispatching stopped"
    assert not w.journal.power_guards(sid), "no VM left deallocated"


def _accounts(sub: str, n: int) -> list[dict]:
    """`n` storage accounts in one subscription, each allowing plain HTTP (one change each)."""
    rg = f"/subscriptions/{sub}/resourceGroups/rg-{sub[:4]}"
    out: list[dict] = [{"id": rg, "name": rg.rsplit("/", 1)[1], "type": "Microsoft.Resources/resourceGroups",
                        "location": "westeurope", "properties": {"provisioningState": "Succeeded"}}]
    for i in range(n):
        name = f"st{sub[:4]}{i:04d}"
        out.append({"id": f"{rg}/providers/Microsoft.Storage/storageAccounts/{name}", "name": name,
                    "type": "Microsoft.Storage/storageAccounts", "location": "westeurope",
                    "sku": {"name": "Standard_LRS", "tier": "Standard"}, "kind": "StorageV2",
                    "properties": {"provisioningState": "Succeeded", "supportsHttpsTrafficOnly": False,
                                   "allowBlobPublicAccess": False, "minimumTlsVersion": "TLS1_2",
                                   "publicNetworkAccess": "Enabled", "allowSharedKeyAccess": False,
                                   "networkAcls": {"bypass": "AzureServices", "virtualNetworkRules": [],
                                                   "ipRules": [], "defaultAction": "Deny"}}})
    return out


def test_a_throttled_subscription_does_not_hold_the_workers_of_another(world):
    """Under ARM's buckets, subscription A has 30 writes to make and Storage allows 10 per second
    per subscription and region; B has 4. B's writes go out while A waits for its budget, not
    after every one of A's: the workers go where the budget is. And still no 429."""
    busy, quiet = "0000aaaa-0000-0000-0000-000000000000", "ffffbbbb-0000-0000-0000-000000000000"
    w = world(estate=_accounts(busy, 30) + _accounts(quiet, 4), throttle="arm")
    changes = [c for c in inspect(w.gw, step_ids=["storage-1"]).changes()
               if "supportsHttpsTrafficOnly" in str(c.after)]
    assert len(changes) == 34
    sid = start_session(w.journal, w.gw, changes)
    report = apply_changes(w.gw, w.journal, sid, changes, parallel=4, verify=False)
    assert len(report.applied) == 34 and not report.failed
    writes = [p.lower() for m, p, s in w.sb.request_log if m in ("PUT", "PATCH") and s < 300]
    in_busy = [i for i, p in enumerate(writes) if busy in p]
    in_quiet = [i for i, p in enumerate(writes) if quiet in p]
    assert len(in_busy) == 30 and len(in_quiet) == 4
    # In plan order B's writes would come after all 30 of A's. Under CPU load a worker may come
    # free late for one of B's units (seen once: B at 8, 14, 15 and 24), so three of four suffice.
    early = sum(i < in_busy[15] for i in in_quiet)
    assert early >= 3, f"the quiet subscription's writes went out while the busy one waited ({in_quiet} vs {in_busy})"
    assert 429 not in {s for _m, _p, s in w.sb.request_log}, "paced, not throttled"


@pytest.mark.parametrize("n", ["0", "-3"])
def test_cli_parallel_below_one_is_exit_2_before_anything_is_opened(n, tmp_path, monkeypatch, capsys):
    from ztwizard.cli import main

    monkeypatch.setenv("ZTWIZARD_SANDBOX_IN_PROCESS", "1")
    monkeypatch.delenv("ZTWIZARD_STATE_DIR", raising=False)
    code = main(["--sandbox", "--state-dir", str(tmp_path), "apply", "--yes", "--parallel", n])
    err = capsys.readouterr().err
    assert code == 2 and "--parallel must be at least 1" in err and "hint:" in err and "Traceback" not in err
    assert not (tmp_path / "journal.sqlite3").exists()


def test_cli_apply_with_parallel_one_and_eight_ends_alike(tmp_path, monkeypatch, capsys):
    from ztwizard.cli import main
    from ztwizard.target import sandbox_target

    monkeypatch.setenv("ZTWIZARD_SANDBOX_IN_PROCESS", "1")
    monkeypatch.delenv("ZTWIZARD_STATE_DIR", raising=False)
    views = []
    for n in ("1", "8"):
        state = tmp_path / n
        code = main(["--sandbox", "--state-dir", str(state), "apply", "--yes", "--step", "storage-1", "--parallel", n])
        out = capsys.readouterr().out
        assert code == 0, out
        gw = Gateway(sandbox_target(state))
        views.append({rid_: gw.read(rid_) for rid_ in _storage_accounts(gw)})
    assert views[0], "the estate has storage accounts"
    strip = lambda v: {k: comparable([r])[k.lower()] for k, r in v.items()}  # noqa: E731
    assert strip(views[0]) == strip(views[1])


def _storage_accounts(gw):
    return [r["id"] for r in gw.inventory().resources.values() if r["type"].lower() == "microsoft.storage/storageaccounts"]
