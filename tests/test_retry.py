"""One retry layer: azure-core's policy as the gateway configures it, plus the ARM states it does
not cover. Faults are injected by wrapping the sandbox's request handler (real clients, real
pipeline); the wrapper counts what reached "ARM"."""

from __future__ import annotations

import json

import pytest

from ztwizard import gateway as G
from ztwizard.apply import apply_changes, start_session
from ztwizard.errors import Conflict
from ztwizard.gateway import Gateway
from ztwizard.journal import Journal
from ztwizard.model import Change
from ztwizard.sandbox import ConnectionReset, Sandbox
from ztwizard.sandbox.estates import reference as ref
from ztwizard.target import in_process_target

J_HEADERS = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def reference_estate():
    from ztwizard.sandbox.estates import load_estate

    return load_estate("reference")


def _wrapped(estate, answer):
    """A gateway on a sandbox whose handler first asks `answer(method, url, n)`; a reply tuple is
    sent instead of the sandbox's, None passes the request on. `n` counts requests per (method, path)."""
    sb = Sandbox(None, estate=estate, lro_seconds=0)
    real = sb.handle
    seen: dict[tuple[str, str], int] = {}

    def handle(method, url, headers, body):
        k = (method, url.split("?")[0].lower())
        seen[k] = seen.get(k, 0) + 1
        reply = answer(method, url, seen[k])
        return real(method, url, headers, body) if reply is None else reply

    sb.handle = handle
    target = in_process_target(sb)
    return Gateway(target), sb, seen, target.transport


def _count(seen, method, fragment):
    return sum(n for (m, p), n in seen.items() if m == method and fragment.lower() in p)


def _error(status, code, headers=None):
    return status, {**J_HEADERS, **(headers or {})}, json.dumps({"error": {"code": code, "message": code}}).encode()


def test_a_busy_resource_is_retried_until_its_operation_ends(reference_estate):
    def busy_twice(method, url, n):
        if method == "PATCH" and n <= 2:
            return _error(409, "AnotherOperationInProgress")
        return None

    gw, _sb, seen, transport = _wrapped(reference_estate, busy_twice)
    out = gw.write("PATCH", ref.BLOB_ACCOUNT, {"properties": {"minimumTlsVersion": "TLS1_2"}})
    assert out["properties"]["minimumTlsVersion"] == "TLS1_2"
    assert _count(seen, "PATCH", "storageaccounts") == 3
    assert transport.sleeps and transport.sleeps[-1] > 0  # backed off (without waiting, in tests)


def test_a_conflict_that_is_not_a_running_operation_is_not_retried(reference_estate):
    gw, _sb, seen, _t = _wrapped(reference_estate, lambda m, u, n: _error(409, "Conflict") if m == "PATCH" else None)
    with pytest.raises(Conflict):
        gw.write("PATCH", ref.BLOB_ACCOUNT, {"properties": {"minimumTlsVersion": "TLS1_2"}})
    assert _count(seen, "PATCH", "storageaccounts") == 1


def test_resource_graph_429_without_retry_after_is_retried_not_abandoned(reference_estate):
    def throttle_graph(method, url, n):
        if method == "POST" and "resourcegraph" in url.lower() and n <= 2:
            headers = {"x-ms-user-quota-resets-after": "00:00:03"} if n == 2 else {}
            return _error(429, "RateLimiting", headers)
        return None

    gw, _sb, seen, transport = _wrapped(reference_estate, throttle_graph)
    inv = gw.inventory()
    assert len(inv.of_type("Microsoft.Storage/storageAccounts")) == 3 and not inv.unreadable
    assert 3.0 in transport.sleeps  # ARG's quota reset was waited for
    # Graph answered in the end: no fall-back to per-type list calls.
    assert not [p for (m, p) in seen if m == "GET" and p.endswith("/providers/microsoft.storage/storageaccounts")]
    assert _count(seen, "POST", "resourcegraph") >= 3


def test_a_patch_whose_connection_dropped_is_sent_again_once(reference_estate):
    def reset_first(method, url, n):
        if method == "PATCH" and n == 1:
            raise ConnectionReset("dropped")
        return None

    gw, _sb, seen, _t = _wrapped(reference_estate, reset_first)
    out = gw.write("PATCH", ref.BLOB_ACCOUNT, {"properties": {"minimumTlsVersion": "TLS1_2"}})
    assert out["properties"]["minimumTlsVersion"] == "TLS1_2"
    assert _count(seen, "PATCH", "storageaccounts") == 2


def test_retries_do_not_stack_in_apply(reference_estate, tmp_path):
    """A write ARM keeps refusing with 500 is tried as often as the pipeline allows, once."""
    gw, _sb, seen, _t = _wrapped(reference_estate, lambda m, u, n: _error(500, "InternalServerError")
                                 if m == "PATCH" else None)
    before = gw.read(ref.BLOB_ACCOUNT)
    change = Change(check="storage-1b", resource_id=ref.BLOB_ACCOUNT, action="update", method="PATCH",
                    body={"properties": {"minimumTlsVersion": "TLS1_2"}},
                    before={"properties": {"minimumTlsVersion": before["properties"]["minimumTlsVersion"]}},
                    after={"properties": {"minimumTlsVersion": "TLS1_2"}})
    with Journal(tmp_path) as journal:
        sid = start_session(journal, gw, [change])
        report = apply_changes(gw, journal, sid, [change], verify=False)
    assert [o.result for o in report.outcomes] == ["failed"]
    assert _count(seen, "PATCH", "storageaccounts") == 1 + G.RETRY["retry_status"]


def test_quota_reset_header_parses():
    assert G._quota_reset_seconds("00:01:02") == 62.0
    assert G._quota_reset_seconds("garbage") is None and G._quota_reset_seconds(None) is None


# ---- inventory: ARM errors are findings, bugs are bugs ------------------------------------------

def test_an_arm_error_in_the_inventory_is_could_not_read(reference_estate):
    def no_blob_services(method, url, n):
        return _error(500, "InternalServerError") if method == "GET" and "/blobservices" in url.lower() else None

    gw, _sb, _seen, _t = _wrapped(reference_estate, no_blob_services)
    inv = gw.inventory()
    reason = inv.unreadable_reason("Microsoft.Storage/storageAccounts/blobServices")
    assert reason and "500" in reason
    assert len(inv.of_type("Microsoft.Storage/storageAccounts")) == 3  # the rest was read


@pytest.mark.parametrize("bug", [TypeError("'NoneType' object is not subscriptable"), KeyError("id")])
def test_a_bug_in_the_inventory_propagates(reference_estate, monkeypatch, bug):
    def broken_reader(gw, res):
        raise bug

    reads = dict(G._CHILD_READS)
    reads["microsoft.storage/storageaccounts"] = [("Microsoft.Storage/storageAccounts/blobServices", broken_reader)]
    monkeypatch.setattr(G, "_CHILD_READS", reads)
    gw, _sb, _seen, _t = _wrapped(reference_estate, lambda m, u, n: None)
    with pytest.raises(type(bug)):
        gw.inventory()


def test_a_bug_in_a_list_call_propagates_too(reference_estate, monkeypatch):
    def broken(gw, sub):
        raise TypeError("bug")

    monkeypatch.setitem(G._LISTERS, "Microsoft.Storage/storageAccounts", broken)
    gw, _sb, _seen, _t = _wrapped(reference_estate, lambda m, u, n: None)
    with pytest.raises(TypeError):
        gw.inventory(use_graph=False)


# ---- Resource Graph answers that are not whole: a looping $skipToken, a truncated result -----------

def _graph_rewritten(estate, rewrite):
    """A gateway on a sandbox whose Resource Graph pages pass through `rewrite(request, page)`
    first (the page as the sandbox answered it); counts Graph POSTs and ARM list GETs."""
    sb = Sandbox(None, estate=estate, lro_seconds=0)
    real = sb.handle
    seen = {"graph": 0, "arm": 0}

    def handle(method, url, headers, body):
        status, reply_headers, reply = real(method, url, headers, body)
        if "resourcegraph" not in url.lower():
            seen["arm"] += 1
            return status, reply_headers, reply
        seen["graph"] += 1
        page = rewrite(json.loads(body), json.loads(reply) if status == 200 else None)
        kept = {k: v for k, v in reply_headers.items() if k.lower() != "content-length"}
        return 200, kept, json.dumps(page).encode()

    sb.handle = handle
    return Gateway(in_process_target(sb)), seen


def _listed(estate):
    gw, _seen = _graph_rewritten(estate, lambda request, page: page)
    return sorted(gw.inventory(use_graph=False, reads=[]).resources)


def test_a_skip_token_that_comes_back_is_not_followed_for_ever(reference_estate):
    """A page whose $skipToken is one already followed would page the same rows for ever; the
    query is abandoned as unavailable and the inventory read by list calls instead."""
    first: dict[str, dict] = {}
    served: dict[str, int] = {}

    def looping(request, page):
        query = request["query"]
        if not (request.get("options") or {}).get("$skipToken"):
            first[query] = {**page, "$skipToken": page.get("$skipToken") or "bG9vcA"}
        served[query] = served.get(query, 0) + 1
        if served[query] > 50:  # the test's own bound: never hang
            return {**first[query], "$skipToken": None}
        return first[query]  # the same page, with the token just followed

    gw, seen = _graph_rewritten(reference_estate, looping)
    inv = gw.inventory(reads=[])
    assert seen["graph"] <= 2 * len(first), seen  # each query's first page and the one that looped
    assert sorted(inv.resources) == _listed(reference_estate)


def test_a_truncated_result_is_not_taken_for_the_whole_scope(reference_estate):
    """`resultTruncated: "true"` without a $skipToken: the rows are not all there is. Taken as
    the scope, checks would pass on resources never read; read by list calls instead."""
    def truncated(request, page):
        return {**page, "data": page["data"][:1], "count": min(1, page["count"]),
                "resultTruncated": "true", "$skipToken": None}

    gw, _seen = _graph_rewritten(reference_estate, truncated)
    inv = gw.inventory(reads=[])
    assert sorted(inv.resources) == _listed(reference_estate)
