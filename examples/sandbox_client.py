"""Talk to a running `ztwizard sandbox serve` with nothing but the azure-mgmt SDK clients.

    .venv/bin/ztwizard sandbox serve --state-dir D &
    .venv/bin/python examples/sandbox_client.py D

It lists the reference estate, PATCHes a storage account, PUTs an NSG with a stale If-Match
(and gets 412), and completes a VM update long-running operation. It imports nothing from
ztwizard: what works here works for any ARM client pointed at the sandbox."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.storage import StorageManagementClient


class Token:
    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


def main(state_dir: str) -> int:
    conn = json.loads((Path(state_dir) / "sandbox" / "connection.json").read_text())
    kw = {"base_url": conn["endpoint"], "connection_verify": conn["ca_bundle"], "polling_interval": 0}
    cred = Token(conn["token"])
    result: dict[str, object] = {}

    subs = set()
    from azure.mgmt.resource.subscriptions import SubscriptionClient
    for s in SubscriptionClient(cred, **kw).subscriptions.list():
        subs.add(s.subscription_id)
    result["subscriptions"] = len(subs)

    accounts, nsgs, vms = [], [], []
    for sub in sorted(subs):
        accounts += [(sub, a) for a in StorageManagementClient(cred, sub, **kw).storage_accounts.list()]
        nsgs += [(sub, n) for n in NetworkManagementClient(cred, sub, **kw).network_security_groups.list_all()]
        vms += [(sub, v) for v in ComputeManagementClient(cred, sub, **kw).virtual_machines.list_all()]
    result.update(storage_accounts=len(accounts), nsgs=len(nsgs), vms=len(vms))

    sub, acct = accounts[0]
    rg = acct.id.split("/")[4]
    storage = StorageManagementClient(cred, sub, **kw)
    updated = storage.storage_accounts.update(rg, acct.name, {"properties": {"minimumTlsVersion": "TLS1_2"}})
    result["patched_tls"] = updated.minimum_tls_version

    sub, nsg = nsgs[0]
    net = NetworkManagementClient(cred, sub, **kw)
    rg = nsg.id.split("/")[4]
    stale = nsg.etag
    net.network_security_groups.begin_create_or_update(rg, nsg.name, nsg).result()  # moves the etag on
    try:
        net.network_security_groups.begin_create_or_update(rg, nsg.name, nsg, headers={"If-Match": stale}).result()
        result["stale_put"] = "accepted"
    except HttpResponseError as exc:
        result["stale_put"] = exc.status_code

    sub, vm = vms[0]
    compute = ComputeManagementClient(cred, sub, **kw)
    rg = vm.id.split("/")[4]
    done = compute.virtual_machines.begin_update(rg, vm.name, {"tags": {"hardened-by": "example"}}).result()
    result["vm_update"] = done.provisioning_state
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
