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


# ---- hostile requests over a real socket (issue 10 item 5) ---------------------------------
NSG_PATH = (f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/networkSecurityGroups/"
            "nsg-app?api-version=2026-03-01")


def _https(conn):
    import http.client
    import ssl
    from urllib.parse import urlsplit

    url = urlsplit(conn["endpoint"])
    ctx = ssl.create_default_context(cafile=conn["ca_bundle"])
    return http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=10)


def _raw(conn, method, path, headers, body=b""):
    """One request with exactly these headers (http.client adds none we did not ask for)."""
    c = _https(conn)
    try:
        c.putrequest(method, path, skip_accept_encoding=True)
        for k, v in headers.items():
            c.putheader(k, v)
        c.endheaders()
        if body:
            c.send(body)
        r = c.getresponse()
        data = r.read()
        return r.status, dict(r.getheaders()), json.loads(data) if data else None
    finally:
        c.close()


def _served(tmp_path, small_estate):
    seed = tmp_path / "seed"
    Sandbox(seed, estate=small_estate)
    estate_file = tmp_path / "estate.json"
    export(seed, estate_file)
    return _start_serve(tmp_path / "state", estate_file)


def _rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_300mb_unauthenticated_body_is_refused_unread_and_memory_stays_flat(tmp_path, small_estate):
    proc, conn = _served(tmp_path, small_estate)
    try:
        before = _rss_kb(proc.pid)
        size = 300 * 1024 * 1024
        # headers only: the 401 arrives before a byte of the body was sent
        c = _https(conn)
        c.putrequest("PUT", NSG_PATH, skip_accept_encoding=True)
        c.putheader("Content-Type", "application/json")
        c.putheader("Content-Length", str(size))
        c.endheaders()
        sock = c.sock
        r = c.getresponse()
        assert r.status == 401 and json.loads(r.read())["error"]["code"] == "AuthenticationFailed"
        assert r.getheader("Connection") == "close"
        # and a client that streams anyway is cut off long before 300 MB
        sent = 0
        chunk = b" " * (1024 * 1024)
        with pytest.raises(OSError):
            while sent < size:
                sock.sendall(chunk)
                sent += len(chunk)
        sock.close()
        c.close()
        assert sent < 64 * 1024 * 1024
        # Expect: 100-continue gets the refusal instead of the invitation
        c = _https(conn)
        c.putrequest("PUT", NSG_PATH, skip_accept_encoding=True)
        for k, v in {"Content-Type": "application/json", "Content-Length": str(size), "Expect": "100-continue",
                     "Authorization": "Bearer wrong"}.items():
            c.putheader(k, v)
        c.endheaders()
        r = c.getresponse()
        assert r.status == 401
        c.close()
        assert _rss_kb(proc.pid) - before < 20 * 1024  # KiB: flat, not +300 MB
        # an authenticated body above ARM's 4 MB is refused by its size, also unread
        status, _, body = _raw(conn, "PUT", NSG_PATH, {"Authorization": f"Bearer {conn['token']}",
                                                       "Content-Type": "application/json",
                                                       "Content-Length": str(size)})
        assert (status, body["error"]["code"]) == (413, "RequestContentTooLarge")
        assert "4 MB" in body["error"]["message"]
        assert _rss_kb(proc.pid) - before < 20 * 1024
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert b"Traceback" not in err, err.decode()


def _nested(depth):
    return b'{"properties":' * depth + b"{}" + b"}" * depth


BAD_REQUESTS = [
    ("content-length abc", "PUT", NSG_PATH, {"Content-Length": "abc"}, b"", 400, "InvalidContentLength"),
    ("content-length negative", "PUT", NSG_PATH, {"Content-Length": "-5"}, b"", 400, "InvalidContentLength"),
    ("two content-lengths", "PUT", NSG_PATH, {"Content-Length": ["2", "3"]}, b"{}", 400, "InvalidContentLength"),
    ("chunked", "PUT", NSG_PATH, {"Transfer-Encoding": "chunked"}, b"2\r\n{}\r\n0\r\n\r\n", 411, "LengthRequired"),
    ("text/plain", "PUT", NSG_PATH, {"Content-Type": "text/plain"}, b'{"location":"westeurope"}', 415,
     "UnsupportedMediaType"),
    ("no content type", "PUT", NSG_PATH, {}, b'{"location":"westeurope"}', 415, "UnsupportedMediaType"),
    ("not json", "PUT", NSG_PATH, {"Content-Type": "application/json"}, b"{nope", 400, "InvalidRequestContent"),
    ("65 levels deep", "PUT", NSG_PATH, {"Content-Type": "application/json"}, _nested(65), 400,
     "InvalidRequestContent"),
    ("100000 levels deep", "PUT", NSG_PATH, {"Content-Type": "application/json"}, b"[" * 100_000 + b"]" * 100_000,
     400, "InvalidRequestContent"),
    ("properties is a number (network)", "PUT", NSG_PATH, {"Content-Type": "application/json"},
     b'{"location":"westeurope","properties":5}', 400, "InvalidRequestFormat"),
    ("properties is a number (storage)", "PATCH",
     f"/subscriptions/{SUB}/resourceGroups/rg-st/providers/Microsoft.Storage/storageAccounts/stblob01"
     "?api-version=2026-09-01", {"Content-Type": "application/json"}, b'{"properties":5}', 400,
     "InvalidRequestContent"),
    ("body is an array", "PUT", NSG_PATH, {"Content-Type": "application/json"}, b"[1]", 400, "InvalidRequestFormat"),
    ("unknown api-version", "GET", NSG_PATH.replace("2026-03-01", "2099-01-01"), {}, b"", 400,
     "NoRegisteredProviderFound"),
    ("api-version of another provider", "GET",
     f"/subscriptions/{SUB}/resourceGroups/rg-st/providers/Microsoft.Storage/storageAccounts/stblob01"
     "?api-version=2026-03-01", {}, b"", 400, "NoRegisteredProviderFound"),
    ("unknown api-version on a resource group", "GET",
     f"/subscriptions/{SUB}/resourceGroups/rg-net?api-version=2014-01-01", {}, b"", 400,
     "InvalidApiVersionParameter"),
]


@pytest.mark.parametrize("name, method, path, headers, body, status, code", BAD_REQUESTS,
                         ids=[case[0] for case in BAD_REQUESTS])
def test_each_bad_request_gets_arms_status_and_code_and_no_traceback(tmp_path, small_estate, name, method, path,
                                                                      headers, body, status, code):
    proc, conn = _served(tmp_path, small_estate)
    try:
        c = _https(conn)
        c.putrequest(method, path, skip_accept_encoding=True)
        c.putheader("Authorization", f"Bearer {conn['token']}")
        for k, v in headers.items():
            for one in (v if isinstance(v, list) else [v]):
                c.putheader(k, one)
        if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
            c.putheader("Content-Length", str(len(body)))
        c.endheaders()
        if body:
            c.send(body)
        r = c.getresponse()
        answer = json.loads(r.read())
        c.close()
        assert (r.status, answer["error"]["code"]) == (status, code), answer
        assert answer["error"]["message"].endswith(".")
        # the server is still answering, and the NSG was not touched
        net = _client(NetworkManagementClient, conn)
        assert net.network_security_groups.get("rg-net", "nsg-app").location == "westeurope"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert b"Traceback" not in err, err.decode()


def test_every_serve_has_fresh_tokens_and_server_key_under_the_same_ca(tmp_path, small_estate):
    from azure.core.exceptions import ClientAuthenticationError
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    seen = []
    for _ in range(2):
        with running(tmp_path, estate=small_estate) as srv:
            conn = dict(srv.connection)
            on_disk = json.loads((tmp_path / "sandbox" / "connection.json").read_text())
            assert on_disk["token"] == conn["token"] and on_disk["reader_token"] == conn["reader_token"]
            ca = (tmp_path / "sandbox" / "ca.pem").read_bytes()
            leaf = x509.load_pem_x509_certificate((tmp_path / "sandbox" / "server.pem").read_bytes())
            net = _client(NetworkManagementClient, conn)  # the kept CA verifies the new certificate
            assert net.network_security_groups.get("rg-net", "nsg-app").name == "nsg-app"
            if seen:
                old = seen[-1]
                stale = _client(NetworkManagementClient, {**conn, "token": old["token"]}, retry_total=0)
                with pytest.raises(ClientAuthenticationError):
                    stale.network_security_groups.get("rg-net", "nsg-app")
            seen.append({"token": conn["token"], "reader": conn["reader_token"], "ca": ca,
                         "key": leaf.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
                         "serial": leaf.serial_number})
    first, second = seen
    assert first["ca"] == second["ca"]
    assert first["token"] != second["token"] and first["reader"] != second["reader"]
    assert first["key"] != second["key"] and first["serial"] != second["serial"]
