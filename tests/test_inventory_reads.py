"""Need-driven child reads, pacing within ARM's budgets, Resource Graph batches and quota, and
one copy of each resource: the inventory at scale, through the real SDK clients and sandbox."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest

from ztwizard import engine
from ztwizard import gateway as gateway_module
from ztwizard.gateway import _CHILD_READS, _SUBSCRIPTION_READS, SUBSCRIPTION, Gateway
from ztwizard.pacing import LIMITS, RESERVE, Pacer, buckets_for
from ztwizard.resource_id import subscription_of
from ztwizard.sandbox import Sandbox
from ztwizard.sandbox.estates import load_estate
from ztwizard.sandbox.throttle import provider_bucket
from ztwizard.steps import STEPS
from ztwizard.target import in_process_target

CONTAINERS = "/blobservices/default/containers"


class Clock:
    """One clock for the sandbox's buckets and the gateway's pacer: waiting advances it."""

    def __init__(self) -> None:
        self.now = 5000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += max(0.0, seconds)


@pytest.fixture(scope="module")
def scale_estate():
    return load_estate("scale:1500")


def _gateway(estate, **sandbox_knobs):
    sb = Sandbox(None, estate=estate, page_size=1000, **sandbox_knobs)
    return Gateway(in_process_target(sb), retry_total=2), sb


def _comparable(plan):
    d = plan.to_dict()
    d.pop("generated_at")
    return d


@pytest.mark.parametrize("estate_name", ["reference", "scale"])
def test_need_driven_reads_give_the_same_plan_as_reading_every_child(estate_name, scale_estate):
    """Reading only what the checks declare must not change a single verdict or change."""
    estate = load_estate("reference") if estate_name == "reference" else scale_estate
    gw, sb = _gateway(estate)
    everything = gw.inventory(reads=None)
    all_requests = len(sb.request_log)
    full = engine.make_plan(everything, target=gw.target.describe(), api_version_for=gw.api_version_for)
    sb.request_log.clear()
    needed = engine.survey(gw).plan
    assert len(sb.request_log) < all_requests
    needed.target = full.target
    assert _comparable(needed) == _comparable(full)


def _mixed_estate():
    """The reference estate (a hub, a VM with an open management port) beside a scale estate
    (neither), with one account made FileStorage and one with shares given an approved `file`
    private endpoint: each catalog `when` holds for some parent and not for another."""
    from ztwizard.sandbox.estates.reference import _resource

    scale = [dict(r) for r in load_estate("scale:300")]
    accounts = [r for r in scale if r["type"] == "Microsoft.Storage/storageAccounts"]
    accounts[0].update(kind="FileStorage", sku={"name": "Premium_LRS", "tier": "Premium"})
    sharing = next(a for a in accounts[1:] if any(r["id"].startswith(a["id"] + "/fileServices/") for r in scale))
    subnet = next(r for r in scale if r["type"] == "Microsoft.Network/virtualNetworks/subnets")
    pe = sharing["id"].split("/providers/")[0] + "/providers/Microsoft.Network/privateEndpoints/pe-files"
    scale.append(_resource(pe, "Microsoft.Network/privateEndpoints", {
        "subnet": {"id": subnet["id"]},
        "privateLinkServiceConnections": [{"name": "files", "id": f"{pe}/privateLinkServiceConnections/files",
                                           "properties": {"privateLinkServiceId": sharing["id"], "groupIds": ["file"],
                                                          "privateLinkServiceConnectionState": {
                                                              "status": "Approved", "actionsRequired": "None"}}}]},
        location=sharing["location"]))
    estate = load_estate("reference") + scale
    return estate, accounts[0]["id"], sharing["id"]


def test_each_condition_skips_exactly_the_reads_it_rules_out_and_no_verdict_changes():
    from ztwizard.steps import hub, spoke, storage, vm

    estate, file_storage, file_endpoint = _mixed_estate()
    gw, sb = _gateway(estate)
    everything = gw.inventory(reads=None)
    full = engine.make_plan(everything, target=gw.target.describe(), api_version_for=gw.api_version_for)
    subs = {s.lower(): {"id": f"/subscriptions/{s}", "name": s, "type": SUBSCRIPTION} for s in everything.subscriptions}
    holding = {f.__name__: {k for k, s in subs.items() if f(s, everything)}
               for f in (hub.holds_hub, spoke.holds_spoke, vm.exposes_management_ports)}
    for name, where in holding.items():  # each holds somewhere and not everywhere
        assert where and where != set(subs), name
    accounts = everything.of_type("Microsoft.Storage/storageAccounts")
    assert {storage.shares_decide_file_endpoint(a, everything) for a in accounts} == {True, False}

    sb.request_log.clear()
    needed = engine.survey(gw).plan
    needed.target = full.target
    assert _comparable(needed) == _comparable(full)
    paths = [p.lower() for _, p, _ in sb.request_log]

    def subs_listing(tail):
        return {p.split("/")[2] for p in paths if p.startswith("/subscriptions/") and p.split("/", 3)[3] == tail[1:]}

    assert subs_listing("/providers/microsoft.authorization/policyassignments") == holding["holds_hub"]
    assert subs_listing("/providers/microsoft.insights/diagnosticsettings") == holding["holds_spoke"]
    assert subs_listing("/providers/microsoft.security/jitnetworkaccesspolicies") == \
        holding["exposes_management_ports"]
    shares = {p.split("/fileservices")[0] for p in paths if p.endswith("/shares")}
    assert file_storage.lower() not in shares and file_endpoint.lower() not in shares
    assert len(shares) == len(accounts) - 2
    # the account whose shares went unread still needs (and has) its file endpoint
    covered = next(f for f in needed.step("storage-3").findings
                   if f.check == "storage-3a" and f.resource_id.lower() == file_endpoint.lower())
    assert "file" in covered.expected and everything.children(f"{file_endpoint}/fileServices/default",
                                                               "Microsoft.Storage/storageAccounts/fileServices/shares")


def test_resource_groups_come_from_resource_graph_as_arm_lists_them():
    gw, sb = _gateway(load_estate("reference"))
    by_graph = gw.inventory()
    graph_paths = [p.lower() for _, p, _ in sb.request_log]
    assert not [p for p in graph_paths if p.endswith("/resourcegroups")]  # no list per subscription
    sb.request_log.clear()
    by_lists = gw.inventory(use_graph=False)  # without Graph: ARM's list, once per subscription
    listed = [p.lower() for _, p, _ in sb.request_log if p.lower().endswith("/resourcegroups")]
    assert len(listed) == len(by_lists.subscriptions)

    def groups(inv):
        # etag left out: ARM's ResourceGroup schema has none, and Graph shows none
        return [{k: v for k, v in g.items() if k != "etag"} for g in inv.of_type("Microsoft.Resources/resourceGroups")]

    assert groups(by_graph) == groups(by_lists) and len(groups(by_graph)) > 3


def test_plan_of_storage_1_sends_fewer_requests_than_plan(scale_estate):
    gw, sb = _gateway(scale_estate)
    engine.survey(gw)
    whole = sb.tally.requests
    engine.survey(gw, step_ids=["storage-1"])
    storage_1 = sb.tally.requests - whole
    assert storage_1 < whole * 0.8, (storage_1, whole)
    # containers only of accounts that still allow anonymous access
    listed = {p.lower().split(CONTAINERS)[0] for m, p, _ in list(sb.request_log)[-storage_1:] if p.lower().endswith(CONTAINERS)}
    accounts = [r for r in scale_estate if r["type"] == "Microsoft.Storage/storageAccounts"]
    open_ones = {a["id"].lower() for a in accounts if a["properties"].get("allowBlobPublicAccess") is not False}
    assert listed == open_ones and 0 < len(listed) < len(accounts)
    # no Defender-for-Storage setting is read for storage-1 (storage-4c needs those), nor any list
    # per subscription (only VM and hub/spoke checks need them)
    storage_1_paths = [p.lower() for _, p, _ in list(sb.request_log)[-storage_1:]]
    assert not [p for p in storage_1_paths if "defenderforstoragesettings" in p]
    assert not [p for p in storage_1_paths if p.startswith("/subscriptions/") and p.count("/") == 5]


def test_a_read_may_wait_for_another_read_in_a_second_round(scale_estate):
    """A `when` that looks at children read earlier runs in the next round: blobServices only
    of accounts whose fileServices (not in Resource Graph) were read in the round before."""
    from ztwizard.steps._base import Read

    acct_t = "Microsoft.Storage/storageAccounts"
    files_t = "Microsoft.Storage/storageAccounts/fileServices"
    reads = [Read(files_t, acct_t),
             Read("Microsoft.Storage/storageAccounts/blobServices", acct_t,
                  lambda acct, inv: bool(inv.children(acct["id"], files_t)))]
    gw, sb = _gateway(scale_estate)
    gw.inventory(reads=reads)
    paths = [p.lower() for _, p, _ in sb.request_log]
    files = [i for i, p in enumerate(paths) if p.endswith("/fileservices/default")]
    blobs = [i for i, p in enumerate(paths) if p.endswith("/blobservices")]
    accounts = [r for r in scale_estate if r["type"] == acct_t]
    assert len(files) == len(accounts) and 0 < len(blobs) <= len(files)
    assert max(files) < min(blobs)  # the second round starts once the first is read


def test_storage_1f_reads_file_services_only_of_kinds_that_have_one(scale_estate):
    estate = [dict(r) for r in scale_estate]
    accounts = [r for r in estate if r["type"] == "Microsoft.Storage/storageAccounts"]
    for r in accounts[:5]:
        r["kind"] = "BlockBlobStorage"
    gw, sb = _gateway(estate)
    engine.survey(gw, check_ids=["storage-1f"])
    read = {p.lower().rsplit("/fileservices", 1)[0] for _, p, _ in sb.request_log
            if p.lower().endswith("/fileservices/default")}
    assert read == {a["id"].lower() for a in accounts[5:]}
    assert not [p for _, p, _ in sb.request_log if p.lower().endswith(("/shares", "/containers"))]


def test_an_account_s_file_service_is_a_storage_read_its_lists_are_storage_lists(scale_estate):
    """fileServices/default by GET draws on Storage's 800 reads per 5 minutes; only the share and
    container lists draw on its 100 lists, the budget that binds at scale (notes §7). The
    sandbox's throttle, with its own classification, sorts them the same way."""
    gw, sb = _gateway(scale_estate)
    engine.survey(gw, check_ids=["storage-1f", "storage-1c", "storage-3a"])
    storage = [(m, p) for m, p, _ in sb.request_log if "/microsoft.storage/" in p.lower()]
    drawn = Counter(buckets_for(m, p)[-1] for m, p in storage)
    accounts = [r for r in scale_estate if r["type"] == "Microsoft.Storage/storageAccounts"]
    services = [p for _, p in storage if p.lower().endswith("/fileservices/default")]
    lists = [p for _, p in storage if p.lower().endswith(("/shares", "/containers"))]
    assert len(services) == len(accounts) and lists
    assert drawn == {"storage-reads": len(services), "storage-lists": len(lists)}
    assert {provider_bucket("GET", p) for p in services} == {"reads"}
    assert {provider_bucket("GET", p) for p in lists} == {"lists"}


def test_every_child_the_gateway_can_read_is_declared_by_a_check():
    declared = {(r.of.lower(), r.child.lower()) for s in STEPS for c in s.checks for r in c.reads}
    readable = {(p, c.lower()) for p, pairs in _CHILD_READS.items() for c, _ in pairs}
    unused = readable - declared
    # blobServices: no check judges them today; everything else must be declared to be read
    assert unused == {("microsoft.storage/storageaccounts", "microsoft.storage/storageaccounts/blobservices")}
    # and every list per subscription too
    listed = {(SUBSCRIPTION.lower(), t.lower()) for t in _SUBSCRIPTION_READS}
    assert listed <= declared


def test_each_resource_is_held_once():
    gw, _sb = _gateway(load_estate("reference"))
    inv = gw.inventory()
    for vnet in inv.of_type("Microsoft.Network/virtualNetworks"):
        for inline in vnet["properties"].get("subnets", []):
            assert inline is inv.get(inline["id"])  # the same dict, not a copy
    ids = [id(r) for r in inv.resources.values()]
    assert len(ids) == len(set(ids))


def test_pacing_keeps_reads_within_the_bucket_with_zero_429s(scale_estate):
    """300 reads of one subscription against ARM's 250-token bucket: the pacer waits for the
    refill instead of colliding; without it, ARM answers 429."""
    clock = Clock()
    sb = Sandbox(None, estate=scale_estate, throttle="arm", clock=clock)
    account = next(r["id"] for r in scale_estate if r["type"] == "Microsoft.Storage/storageAccounts")
    paced = Gateway(in_process_target(sb), retry_total=0, pacer=Pacer(clock=clock, sleep=clock.sleep))
    for _ in range(300):
        assert paced.read(account)
    assert 429 not in {s for _, _, s in sb.request_log}
    assert paced.pacer.waited > 0
    clock.sleep(60)  # the bucket refills
    sb.request_log.clear()
    unpaced = Gateway(in_process_target(sb), retry_total=0, pacer=Pacer(clock=clock, sleep=clock.sleep, limits={}))
    from ztwizard.errors import Throttled

    with pytest.raises(Throttled):
        for _ in range(300):
            unpaced.read(account)


def test_child_reads_wait_only_as_long_as_the_tightest_budget_needs(scale_estate):
    """Storage lists spread over 20 (subscription, region) budgets, each too small for its
    share: the budgets refill side by side, so the inventory waits about as long as the busiest
    one needs, not for each in turn (in parent order it waited about six times as long)."""
    clock = Clock()
    sb = Sandbox(None, estate=scale_estate, throttle="arm", clock=clock)
    capacity, rate = 4, 0.1
    pacer = Pacer(clock=clock, sleep=clock.sleep, limits={**LIMITS, "storage-lists": (capacity, rate)})
    gw = Gateway(in_process_target(sb), pacer=pacer, read_workers=1)
    start = clock.now
    gw.inventory()
    per_budget = Counter((subscription_of(p).lower(), sb._region_of(p)) for m, p, _ in sb.request_log
                         if p.lower().startswith("/subscriptions/") and "storage-lists" in buckets_for(m, p))
    usable = 1 - RESERVE
    busiest = max((n - capacity * usable) / (rate * usable) for n in per_budget.values())
    assert len(per_budget) >= 20 and busiest > 0
    assert clock.now - start <= busiest + 1 / (rate * usable)
    assert 429 not in {s for _, _, s in sb.request_log}


def test_pacing_follows_the_remaining_headers(scale_estate):
    """Another client (same principal) spent most of the bucket: the first answer's
    x-ms-ratelimit-remaining-subscription-reads lowers the pacer's budget, so still no 429."""
    clock = Clock()
    sb = Sandbox(None, estate=scale_estate, throttle="arm", clock=clock)
    account = next(r["id"] for r in scale_estate if r["type"] == "Microsoft.Storage/storageAccounts")
    other = Gateway(in_process_target(sb), retry_total=0, pacer=Pacer(clock=clock, sleep=clock.sleep, limits={}))
    for _ in range(200):
        other.read(account)
    gw = Gateway(in_process_target(sb), retry_total=0, pacer=Pacer(clock=clock, sleep=clock.sleep))
    for _ in range(150):
        gw.read(account)
    assert 429 not in {s for _, _, s in sb.request_log}


def test_a_storage_write_spends_the_write_budget_not_the_read_budget(scale_estate):
    """ARM reports a Storage write's remaining provider budget in `resource-requests`, the header
    a read's comes in: taken as the read budget, every write left reads waiting ~13 s (Storage
    refills 800 reads per 5 minutes). Twenty read-then-write rounds wait only for write tokens."""
    clock = Clock()
    sb = Sandbox(None, estate=scale_estate, throttle="arm", clock=clock, lro_seconds=0)
    gw = Gateway(in_process_target(sb), retry_total=0, pacer=Pacer(clock=clock, sleep=clock.sleep))
    account = next(r["id"] for r in scale_estate if r["type"] == "Microsoft.Storage/storageAccounts")
    start = clock.now
    for i in range(20):
        res = gw.read(account)
        assert res is not None
        gw.write("PATCH", account, {"tags": {"round": str(i)}}, etag=res.get("etag"))
    assert 429 not in {s for _, _, s in sb.request_log}
    # 20 writes: a burst of 10 (less the reserve), then 10 per second
    assert clock.now - start < 3.0, f"waited {clock.now - start:.1f} s of budget"
    key, tokens, rate = gw.write_headroom(account)
    assert key[2] == "storage-writes" and key[1] == "westeurope" and rate == pytest.approx(9.5)


def test_storage_writes_are_paced_on_the_hourly_window_too(scale_estate):
    """Storage allows 10 writes per second but only 1,200 per hour (notes §7): paced on the
    per-second bucket alone, the 1,241st write of a steady run met a 429; the hourly window is
    a budget of its own, so a long apply to one subscription-region waits instead."""
    clock = Clock()
    sb = Sandbox(None, estate=scale_estate, throttle="arm", clock=clock, lro_seconds=0)
    gw = Gateway(in_process_target(sb), retry_total=0, pacer=Pacer(clock=clock, sleep=clock.sleep))
    account = next(r["id"] for r in scale_estate if r["type"] == "Microsoft.Storage/storageAccounts")
    assert gw.read(account)
    for i in range(1300):
        gw.write("PATCH", account, {"tags": {"round": str(i)}})
    assert 429 not in {s for _, _, s in sb.request_log}
    key, _tokens, rate = gw.write_headroom(account)
    assert key[2] == "storage-writes-hour" and rate == pytest.approx(1200 / 3600 * (1 - RESERVE))


def test_plan_at_scale_throttled_has_no_429_and_few_requests_per_resource(scale_estate):
    clock = Clock()
    sb = Sandbox(None, estate=scale_estate, throttle="arm", clock=clock, page_size=1000)
    labels: list[str] = []
    gw = Gateway(in_process_target(sb), pacer=Pacer(clock=clock, sleep=clock.sleep))
    engine.survey(gw, progress=lambda done, total, label: labels.append(label))
    assert sb.tally.throttled == 0
    # about three reads per storage account (fileServices, shares, Defender setting) plus six per
    # subscription (resource groups, settings, activity log, policy, JIT, the VMs' instance views);
    # at 1,500 resources over 20 subscriptions that is under 0.32 per resource. On top, one key
    # list per vault (storage-1g, vm-4a).
    per_resource = {"microsoft.keyvault/vaults"}
    extra = sum(1 for r in scale_estate if r["type"].lower() in per_resource)
    assert (sb.tally.requests - extra) / len(scale_estate) < 0.32, sb.tally.summary()
    assert any(lbl.startswith("Child resources: ") and "left" in lbl for lbl in labels), labels


def test_graph_batches_subscriptions_and_waits_out_its_quota_without_list_calls(scale_estate):
    """Bounded batches per request; an exhausted quota (429, no Retry-After) is waited out
    (x-ms-user-quota-resets-after), never answered by falling back to list calls."""
    clock = Clock()
    sb = Sandbox(None, estate=scale_estate, throttle="arm", clock=clock, page_size=1000)
    target = in_process_target(sb)
    target.transport.sleep = lambda seconds: (target.transport.sleeps.append(seconds), clock.sleep(seconds))
    bodies: list[dict] = []

    class Recording(Gateway):
        def _before_send(self, request):
            if "resourcegraph" in request.http_request.url.lower():
                bodies.append(json.loads(request.http_request.body))
            super()._before_send(request)

    gw = Recording(target, graph_batch=3, pacer=Pacer(clock=clock, sleep=clock.sleep, limits={}))
    subs = gw.list_subscriptions()
    assert len(subs) >= 20
    from azure.mgmt.resourcegraph.models import QueryRequest

    for _ in range(15):  # someone else spends the whole quota
        gw.client("graph").resources(QueryRequest(query="resources | order by id asc", subscriptions=subs[:1]))
    sb.request_log.clear()
    bodies.clear()
    inv = gw.inventory(reads=[])
    assert inv.of_type("Microsoft.Storage/storageAccounts")
    assert bodies and max(len(b.get("subscriptions") or []) for b in bodies) <= 3
    batches = {tuple(b["subscriptions"]) for b in bodies}
    assert {s for batch in batches for s in batch} == set(subs)
    statuses = [s for m, p, s in sb.request_log if "resourcegraph" in p.lower()]
    assert 429 in statuses and statuses[-1] == 200
    assert any(0 < s <= 5 for s in target.transport.sleeps)
    assert not [p for m, p, _ in sb.request_log if m == "GET" and p.lower().endswith("/storageaccounts")]


def test_disabled_subscriptions_are_skipped_and_said_so(caplog):
    sb = Sandbox(None, estate=load_estate("scale:400"))
    subs = sorted(sb.store.subscriptions)
    sb.store.subscriptions[subs[0]]["state"] = "Disabled"
    gw = Gateway(in_process_target(sb))
    with caplog.at_level("WARNING", logger="ztwizard.gateway"):
        listed = gw.list_subscriptions()
        inv = gw.inventory(reads=[])
    assert subs[0] not in {s.lower() for s in listed} and len(listed) == len(subs) - 1
    assert subs[0] not in {s.lower() for s in inv.subscriptions}
    assert [s.lower() for s, _n, state in gw.skipped_subscriptions] == [subs[0]]
    assert any("Skipping subscription" in r.getMessage() and "Disabled" in r.getMessage() for r in caplog.records)


def test_management_group_scope_lists_its_subscriptions_and_queries_graph_by_group():
    from ztwizard.sandbox import management

    sb = Sandbox(None, estate=load_estate("scale:1200"), page_size=1000)
    groups = management.hierarchy(sb.tenant_id, [s["subscriptionId"] for s in sb.store.subscriptions.values()])
    corp = sorted(s.lower() for s in groups["mg-corp"][1])
    target = in_process_target(sb)
    target.management_groups = ["mg-corp"]
    bodies: list[dict] = []

    class Recording(Gateway):
        def _before_send(self, request):
            if "resourcegraph" in request.http_request.url.lower():
                bodies.append(json.loads(request.http_request.body))
            super()._before_send(request)

    gw = Recording(target)
    inv = gw.inventory(reads=[])
    assert sorted(s.lower() for s in inv.subscriptions) == corp
    assert {r["id"].split("/")[2].lower() for r in inv.resources.values()} == set(corp)
    assert bodies and all(b.get("managementGroups") == ["mg-corp"] and not b.get("subscriptions") for b in bodies)
    # a disabled subscription under the group: skipped, and the query names the others instead
    sb.store.subscriptions[corp[0]]["state"] = "Disabled"
    bodies.clear()
    inv = gw.inventory(reads=[])
    assert sorted(s.lower() for s in inv.subscriptions) == corp[1:]
    assert {r["id"].split("/")[2].lower() for r in inv.resources.values()} == set(corp[1:])
    assert bodies and all(sorted(x.lower() for x in b["subscriptions"]) == corp[1:] for b in bodies)
    assert [s.lower() for s, _n, _st in gw.skipped_subscriptions] == [corp[0]]


def test_management_group_is_narrowed_by_s_and_refuses_what_is_outside(tmp_path, capsys):
    from ztwizard.errors import UsageError
    from ztwizard.sandbox import management

    sb = Sandbox(None, estate=load_estate("scale:600"), page_size=1000)
    groups = management.hierarchy(sb.tenant_id, [s["subscriptionId"] for s in sb.store.subscriptions.values()])
    online, platform = groups["mg-online"][1], groups["mg-platform"][1]
    target = in_process_target(sb)
    target.management_groups = ["mg-landingzones"]
    target.subscriptions = [online[0]]
    inv = Gateway(target).inventory(reads=[])
    assert [s.lower() for s in inv.subscriptions] == [online[0].lower()]
    target.subscriptions = [platform[0]]
    with pytest.raises(UsageError, match="is not under management group mg-landingzones"):
        Gateway(target).inventory(reads=[])
    target.subscriptions, target.management_groups = [], ["mg-nowhere"]
    with pytest.raises(UsageError, match="Management group 'mg-nowhere' was not found"):
        Gateway(target).inventory(reads=[])


def _vm_7d(estate):
    gw, sb = _gateway(estate)
    plan = engine.inspect(gw, check_ids=["vm-7d"])
    findings = sorted((f.resource_id, f.status, f.message) for s in plan.steps for f in s.findings)
    return findings, [p for _, p, _ in sb.request_log]


def test_instance_views_come_from_one_list_per_subscription_with_the_verdicts_of_a_get_per_vm(
        scale_estate, monkeypatch):
    """vm-7d needs every VM's agent status: one `virtualMachines?statusOnly=true` list per
    subscription gives it, instead of a GET {vm}/instanceView per VM, with the same findings."""
    estate = [dict(r) for r in scale_estate]
    vms = [r for r in estate if r["type"] == "Microsoft.Compute/virtualMachines"]
    stopped = vms[0]
    stopped["properties"] = {**stopped["properties"], "instanceView": {
        "statuses": [{"code": "ProvisioningState/succeeded"}, {"code": "PowerState/deallocated"}]}}
    listed, sent = _vm_7d(estate)
    assert not [p for p in sent if p.lower().endswith("/instanceview")]
    lists = [p for p in sent if p.lower().endswith("/providers/microsoft.compute/virtualmachines")]
    assert len(lists) == len({r["id"].split("/")[2].lower() for r in vms})
    monkeypatch.delitem(gateway_module._BULK_READS, "microsoft.compute/virtualmachines/instanceview")
    one_by_one, sent = _vm_7d(estate)
    assert len([p for p in sent if p.lower().endswith("/instanceview")]) == len(vms)
    assert listed == one_by_one
    assert {s for _, s, _ in listed} == {"pass", "manual"}  # the deallocated VM's agent says nothing
