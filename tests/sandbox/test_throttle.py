"""The sandbox as a throttled ARM (`throttle="arm"`): 2024 token buckets per subscription, region
and principal, Storage's own limits per region, Resource Graph's user quota, the real headers,
429 + Retry-After, and the `served …` line of `sandbox serve`. Driven through the SDK clients."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.resourcegraph import ResourceGraphClient
from azure.mgmt.resourcegraph.models import QueryRequest
from azure.mgmt.storage import StorageManagementClient

from ztwizard.resource_id import parse
from ztwizard.sandbox.estates import scale
from ztwizard.sandbox.throttle import ARM_LIMITS, GRAPH_QUOTA, STORAGE_LIMITS


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def estate():
    return scale.build(3000)


def _accounts(estate):
    """Storage accounts by subscription, then by region."""
    out: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in estate:
        if r["type"] == "Microsoft.Storage/storageAccounts":
            out[parse(r["id"]).subscription][r["location"]].append(r["id"])
    return out


def _two_regions(estate):
    for sub, regions in _accounts(estate).items():
        if len(regions) >= 2:
            (r1, a1), (r2, a2) = list(regions.items())[:2]
            return sub, a1[0], a2[0]
    raise AssertionError("scale:3000 has no subscription with accounts in two regions")


def _storage(sandbox_obj, arm_client, sub, transport):
    return arm_client(StorageManagementClient, sandbox_obj, sub, transport=transport, retry_total=0)


def test_arm_reads_bucket_250_then_429_with_retry_after_and_refill(sandbox, arm_client, estate):
    clock = Clock()
    sb = sandbox(estate=estate, throttle="arm", clock=clock)
    sub, account, _ = _two_regions(estate)
    p = parse(account)
    st = _storage(sb, arm_client, sub, sb.transport())
    seen = []
    raw = {"raw_response_hook": lambda r: seen.append(r.http_response.headers)}
    capacity, refill = ARM_LIMITS["reads"]
    for _ in range(capacity):
        st.storage_accounts.get_properties(p.resource_group, p.name, **raw)
    assert seen[0]["x-ms-ratelimit-remaining-subscription-reads"] == str(capacity - 1)
    assert seen[-1]["x-ms-ratelimit-remaining-subscription-reads"] == "0"
    with pytest.raises(HttpResponseError) as err:
        st.storage_accounts.get_properties(p.resource_group, p.name)
    assert err.value.status_code == 429 and err.value.response.headers["Retry-After"] == "1"
    assert [s for _, _, s in sb.request_log].count(429) == 1
    clock.now += 1.0  # 25 tokens back
    for _ in range(int(refill)):
        st.storage_accounts.get_properties(p.resource_group, p.name)
    with pytest.raises(HttpResponseError):
        st.storage_accounts.get_properties(p.resource_group, p.name)


def test_storage_lists_100_per_5_minutes_per_region(sandbox, arm_client, estate):
    """Listing an account's containers draws on Storage's lists bucket of its region: the 101st
    list in five minutes is refused there while another region of the same subscription is not."""
    clock = Clock()
    sb = sandbox(estate=estate, throttle="arm", clock=clock)
    sub, here, there = _two_regions(estate)
    st = _storage(sb, arm_client, sub, sb.transport())
    limit = STORAGE_LIMITS["lists"][0]
    hp, tp = parse(here), parse(there)
    headers = []
    for _ in range(limit):
        list(st.blob_containers.list(hp.resource_group, hp.name,
                                     raw_response_hook=lambda r: headers.append(r.http_response.headers)))
    assert headers[-1]["x-ms-ratelimit-remaining-subscription-resource-entities-read"] == "0"
    with pytest.raises(HttpResponseError) as err:
        list(st.blob_containers.list(hp.resource_group, hp.name))
    assert err.value.status_code == 429
    wait = int(err.value.response.headers["Retry-After"])
    assert 1 <= wait <= 3  # one list token refills in 3 s
    list(st.blob_containers.list(tp.resource_group, tp.name))  # the other region has its own bucket
    st.storage_accounts.get_properties(hp.resource_group, hp.name)  # a single read is another bucket
    clock.now += wait
    list(st.blob_containers.list(hp.resource_group, hp.name))


def test_resource_graph_user_quota_15_per_5_seconds_without_retry_after(sandbox, arm_client, estate):
    clock = Clock()
    sb = sandbox(estate=estate, throttle="arm", clock=clock)
    graph = arm_client(ResourceGraphClient, sb, transport=sb.transport(), retry_total=0)
    seen = []
    for _ in range(GRAPH_QUOTA):
        graph.resources(QueryRequest(query="resources | order by id asc"),
                        raw_response_hook=lambda r: seen.append(r.http_response.headers))
    assert [h["x-ms-user-quota-remaining"] for h in seen] == [str(n) for n in range(GRAPH_QUOTA - 1, -1, -1)]
    assert seen[0]["x-ms-user-quota-resets-after"] == "00:00:05.00"
    with pytest.raises(HttpResponseError) as err:
        graph.resources(QueryRequest(query="resources | order by id asc"))
    assert err.value.status_code == 429
    assert "Retry-After" not in err.value.response.headers
    assert err.value.response.headers["x-ms-user-quota-remaining"] == "0"
    clock.now += 5.0
    graph.resources(QueryRequest(query="resources | order by id asc"))


def test_throttle_off_by_default_in_process(sandbox, arm_client, estate):
    sb = sandbox(estate=estate)
    sub, account, _ = _two_regions(estate)
    p = parse(account)
    st = _storage(sb, arm_client, sub, sb.transport())
    for _ in range(ARM_LIMITS["reads"][0] + 20):
        st.storage_accounts.get_properties(p.resource_group, p.name)
    assert 429 not in {s for _, _, s in sb.request_log}
    assert sb.tally.summary() == f"served {ARM_LIMITS['reads'][0] + 20} requests ({ARM_LIMITS['reads'][0] + 20} reads, 0 writes, 0 throttled)"


def test_serve_prints_what_it_served_on_exit(tmp_path):
    """`ztwizard sandbox serve` (throttling on by default) says on exit what it answered."""
    state = tmp_path / "state"
    env = {**os.environ, "ZTWIZARD_STATE_DIR": str(state)}
    proc = subprocess.Popen([sys.executable, "-c", "from ztwizard.cli import main; raise SystemExit(main())", "sandbox", "serve", "--state-dir", str(state),
                             "--estate", "scale:300"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        from ztwizard.sandbox.server import connection_alive

        deadline, conn = time.time() + 30, None
        while time.time() < deadline and conn is None:
            if proc.poll() is not None:
                pytest.fail(f"serve exited: {proc.stderr.read().decode()}")
            conn = connection_alive(state)
            time.sleep(0.05)
        assert conn is not None
        import requests

        sub = scale.subscription_ids(20)[0]
        url = f"{conn['endpoint']}/subscriptions/{sub}/resourceGroups?api-version=2025-04-01"
        for _ in range(3):
            r = requests.get(url, headers={"Authorization": f"Bearer {conn['token']}"}, verify=conn["ca_bundle"],
                             timeout=10)
            assert r.status_code == 200
            assert int(r.headers["x-ms-ratelimit-remaining-subscription-reads"]) < ARM_LIMITS["reads"][0]
        requests.put(url.replace("resourceGroups?", "resourceGroups/rg-new?"), json={"location": "westeurope"},
                     headers={"Authorization": f"Bearer {conn['token']}"}, verify=conn["ca_bundle"], timeout=10)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert err.decode().strip().splitlines()[-1] == "served 4 requests (3 reads, 1 writes, 0 throttled)"


def test_every_route_kind_is_admitted_or_refused_never_a_failure(sandbox, arm_client, estate):
    """Network lists, Storage lists, single reads, writes and deletes all map to a bucket."""
    sb = sandbox(estate=estate, throttle="arm")
    sub, account, _ = _two_regions(estate)
    p = parse(account)
    from azure.mgmt.network import NetworkManagementClient

    net = arm_client(NetworkManagementClient, sb, sub, retry_total=0)
    st = _storage(sb, arm_client, sub, sb.transport())
    assert list(net.network_security_groups.list_all())
    assert list(net.virtual_networks.list(p.resource_group))
    st.storage_accounts.update(p.resource_group, p.name, {"minimum_tls_version": "TLS1_2"})
    assert {s for _, _, s in sb.request_log} == {200}


def test_storage_writes_are_1200_per_hour_on_top_of_10_per_second(sandbox, arm_client, estate):
    """Writes at Storage's 10 per second never meet that bucket, but its hourly window of 1,200
    (notes §7) runs out after about two minutes of them: 429 with the Retry-After of one token."""
    clock = Clock()
    sb = sandbox(estate=estate, throttle="arm", clock=clock, lro_seconds=0)
    sub, account, _ = _two_regions(estate)
    p = parse(account)
    st = _storage(sb, arm_client, sub, sb.transport())
    left: list[int] = []
    sent = 0

    def hook(response):
        if response.http_response.status_code == 200:
            left.append(int(response.http_response.headers["x-ms-ratelimit-remaining-subscription-resource-requests"]))

    with pytest.raises(HttpResponseError) as err:
        while sent < 1400:
            st.storage_accounts.update(p.resource_group, p.name, {"tags": {"n": str(sent)}}, raw_response_hook=hook)
            sent += 1
            clock.now += 0.1  # 10 per second: the per-second bucket is never short
    assert err.value.status_code == 429 and 1200 < sent < 1300, sent
    assert 1 <= int(err.value.response.headers["Retry-After"]) <= 3  # one token in 3 s
    assert left[0] == 9 and left[-1] == 0  # the tighter window's count: first the second's, then the hour's
    clock.now += 3
    st.storage_accounts.update(p.resource_group, p.name, {"tags": {"n": "again"}})
