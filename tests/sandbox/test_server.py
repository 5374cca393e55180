"""The sandbox over real HTTPS: its own CA, connection.json, one server per state dir, signals."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.storage import StorageManagementClient

from ztwizard.errors import ZtwError
from ztwizard.sandbox import Sandbox
from ztwizard.sandbox.server import connection_alive, export, running

SUB = "00000000-0000-0000-0000-0000000000a1"


class _Cred:
    def __init__(self, token):
        self.token = token

    def get_token(self, *scopes, **kw):
        from azure.core.credentials import AccessToken

        return AccessToken(self.token, int(time.time()) + 3600)


def _client(cls, conn, **kw):
    return cls(_Cred(conn["token"]), SUB, base_url=conn["endpoint"], connection_verify=conn["ca_bundle"],
               polling_interval=0, **kw)


def test_https_in_thread_with_lro_and_second_server_refused(tmp_path, sandbox, small_estate):
    with running(tmp_path, estate=small_estate) as srv:
        conn = connection_alive(tmp_path)
        assert conn is not None and conn["endpoint"] == srv.endpoint and conn["pid"] == os.getpid()
        assert srv.endpoint.startswith("https://127.0.0.1:")
        assert stat.S_IMODE(os.stat(tmp_path / "sandbox" / "connection.json").st_mode) == 0o600
        assert stat.S_IMODE(os.stat(tmp_path / "sandbox" / "server-key.pem").st_mode) == 0o600
        st = _client(StorageManagementClient, conn)
        made = st.storage_accounts.begin_create("rg-st", "sthttps", {
            "location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}).result()
        assert made.provisioning_state == "Succeeded"
        monitors = [p for m, p, s in srv.sandbox.request_log if "/sandbox/operations/" in p]
        assert monitors  # polled over HTTPS, on the server's own host
        net = _client(NetworkManagementClient, conn)
        assert net.network_security_groups.get("rg-net", "nsg-app").name == "nsg-app"
        with pytest.raises(ZtwError) as err:
            running(tmp_path).__enter__()
        assert "already serving" in err.value.message and str(os.getpid()) in err.value.message
    assert not (tmp_path / "sandbox" / "connection.json").exists()
    assert connection_alive(tmp_path) is None
    # the write survived the server: state is on disk
    assert Sandbox(tmp_path, estate=None).store.get(
        f"/subscriptions/{SUB}/resourceGroups/rg-st/providers/Microsoft.Storage/storageAccounts/sthttps")


def test_untrusted_ca_and_dropped_connection(tmp_path, small_estate):
    with running(tmp_path, estate=small_estate, faults="reset:1.0") as srv:
        conn = dict(connection_alive(tmp_path))
        net = _client(NetworkManagementClient, conn, retry_total=0)
        with pytest.raises((ServiceRequestError, ServiceResponseError)):
            net.network_security_groups.get("rg-net", "nsg-app")
        untrusted = NetworkManagementClient(_Cred(conn["token"]), SUB, base_url=srv.endpoint, retry_total=0)
        with pytest.raises(ServiceRequestError) as err:
            untrusted.network_security_groups.get("rg-net", "nsg-app")
        assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)


def test_serve_subprocess_writes_connection_json_and_stops_on_sigterm(tmp_path, small_estate):
    seed = tmp_path / "seed"
    Sandbox(seed, estate=small_estate)
    estate_file = tmp_path / "estate.json"
    export(seed, estate_file)
    state = tmp_path / "state"
    code = ("import sys; from pathlib import Path; from ztwizard.sandbox.server import serve; "
            "serve(Path(sys.argv[1]), estate=sys.argv[2])")
    proc = subprocess.Popen([sys.executable, "-c", code, str(state), str(estate_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 30
        conn = None
        while time.time() < deadline and conn is None:
            if proc.poll() is not None:
                pytest.fail(f"serve exited: {proc.stderr.read().decode()}")
            conn = connection_alive(state)
            time.sleep(0.05)
        assert conn is not None and conn["pid"] == proc.pid
        data = json.loads((state / "sandbox" / "connection.json").read_text())
        assert set(data) == {"endpoint", "ca_bundle", "token", "reader_token", "pid"}
        # an independent client, knowing only connection.json
        st = StorageManagementClient(_Cred(data["token"]), SUB, base_url=data["endpoint"],
                                     connection_verify=data["ca_bundle"])
        assert [a.name for a in st.storage_accounts.list()] == ["stblob01"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert not (state / "sandbox" / "connection.json").exists()
        assert connection_alive(state) is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stale_connection_file_is_not_alive(tmp_path):
    from ztwizard.sandbox.store import atomic_write_json

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    atomic_write_json(tmp_path / "sandbox" / "connection.json",
                      {"endpoint": "https://127.0.0.1:1", "ca_bundle": "/nonexistent", "token": "t",
                       "pid": int(dead.stdout)})
    assert connection_alive(tmp_path) is None
    atomic_write_json(tmp_path / "sandbox" / "connection.json",
                      {"endpoint": "https://127.0.0.1:1", "ca_bundle": "/nonexistent", "token": "t",
                       "pid": os.getpid()})  # alive, but nothing listens there
    assert connection_alive(tmp_path) is None
    assert stat.S_IMODE(os.stat(tmp_path / "sandbox").st_mode) == 0o700


def test_head_and_401_over_https(tmp_path, small_estate):
    from azure.core.exceptions import ClientAuthenticationError
    from azure.mgmt.resource.resources import ResourceManagementClient
    with running(tmp_path, estate=small_estate):
        conn = connection_alive(tmp_path)
        res = _client(ResourceManagementClient, conn)
        assert res.resource_groups.check_existence("rg-net") is True
        assert res.resource_groups.check_existence("rg-none") is False
        wrong = ResourceManagementClient(_Cred("not-the-token"), SUB, base_url=conn["endpoint"],
                                         connection_verify=conn["ca_bundle"])
        with pytest.raises(ClientAuthenticationError):
            wrong.resource_groups.get("rg-net")


def test_concurrent_clients_over_https_lose_no_write(tmp_path, small_estate):
    from concurrent.futures import ThreadPoolExecutor

    with running(tmp_path, estate=small_estate) as srv:
        conn = connection_alive(tmp_path)
        net = _client(NetworkManagementClient, conn)

        def create(i):
            return net.route_tables.begin_create_or_update("rg-net", f"rt-{i}", {"location": "westeurope"}).result()

        with ThreadPoolExecutor(max_workers=6) as pool:
            made = list(pool.map(create, range(12)))
        assert all(r.provisioning_state == "Succeeded" for r in made)
        assert len(list(net.route_tables.list("rg-net"))) == 13
        assert not [s for _, _, s in srv.sandbox.request_log if s >= 400]
    assert len([e for e in Sandbox(tmp_path, estate=None).export()
                if e["type"] == "Microsoft.Network/routeTables"]) == 13


def _start_serve(state, estate_file):
    code = ("import sys; from pathlib import Path; from ztwizard.sandbox.server import serve; "
            "serve(Path(sys.argv[1]), estate=sys.argv[2])")
    proc = subprocess.Popen([sys.executable, "-c", code, str(state), str(estate_file)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited: {proc.stderr.read().decode()}")
        conn = connection_alive(state)
        if conn and conn["pid"] == proc.pid:
            return proc, conn
        time.sleep(0.05)
    proc.kill()
    pytest.fail("serve did not come up")


def test_killed_server_keeps_every_acknowledged_write(tmp_path, small_estate):
    import threading

    seed = tmp_path / "seed"
    Sandbox(seed, estate=small_estate)
    estate_file = tmp_path / "estate.json"
    export(seed, estate_file)
    state = tmp_path / "state"
    proc, conn = _start_serve(state, estate_file)
    acked: list[int] = []
    try:
        net = _client(NetworkManagementClient, conn, retry_total=0)

        def writer():
            for i in range(10_000):
                try:
                    net.network_security_groups.update_tags("rg-net", "nsg-app", {"tags": {"n": str(i)}})
                except Exception:  # noqa: BLE001 - the server died under us
                    return
                acked.append(i)

        t = threading.Thread(target=writer)
        t.start()
        while len(acked) < 20:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        t.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    # connection.json is left behind by a killed server, but it is not alive
    assert connection_alive(state) is None
    tags = Sandbox(state, estate=None).store.get(
        f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/networkSecurityGroups/nsg-app")["tags"]
    assert int(tags["n"]) >= acked[-1]  # the last acknowledged write (or one after it) is on disk
    proc2, _ = _start_serve(state, estate_file)  # and a new server starts on the same state
    proc2.send_signal(signal.SIGTERM)
    assert proc2.wait(timeout=10) == 0
