"""Signing in (issue 12, items 1-3): one credential per run with a deadline and a token cache,
and a missing, refused or silent sign-in as one sentence + hint, exit 1, within the deadline.

The CLI runs in a child process with an empty environment and HOME in a temp dir. Where this
machine allows it (root and `unshare`), the child runs in a new network namespace that has only
a loopback interface, so no test can send anything off the machine; otherwise the IMDS address
azure-identity probes is pointed at a closed local port. Silent identity endpoints are local
sockets that accept and never answer."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ztwizard.credentials import SharedCredential, SignInError, build_credential, cli_active_cloud

SUB = "00000000-0000-0000-0000-0000000000a1"  # the small estate's subscription (conftest.py)

CHILD = str(Path(__file__).with_name("signin_child.py"))
SLACK = 8.0  # interpreter start-up and imports on a busy 2-core machine, on top of the deadline


def _netns_available() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


NETNS = _netns_available()
UNSHARE = shutil.which("unshare") or "unshare"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Run:
    def __init__(self, proc: subprocess.CompletedProcess[str], elapsed: float) -> None:
        self.code, self.out, self.err, self.elapsed = proc.returncode, proc.stdout, proc.stderr, elapsed


@pytest.fixture
def world(tmp_path):
    """An empty environment: HOME and PATH in temp dirs (PATH holds only a fake `az` if one is
    written), the state dir in tmp_path."""
    home, bin_dir, state = tmp_path / "home", tmp_path / "bin", tmp_path / "state"
    for d in (home, bin_dir, state):
        d.mkdir()

    class World:
        def __init__(self) -> None:
            self.home, self.bin, self.state = home, bin_dir, state

        def fake_az(self, body: str) -> Path:
            az = bin_dir / "az"
            az.write_text("#!/bin/sh\n" + body)
            az.chmod(0o755)
            return az

        def run(self, *args: str, env: dict[str, str] | None = None, silent: tuple[str, ...] = (),
                isolated: bool = True, timeout: float = 120) -> Run:
            """`ztwizard --state-dir STATE ARGS` in a child; `isolated` puts it in a namespace with
            only loopback (the sandbox tests need the parent's loopback and stay out of it)."""
            child_env = {"PATH": str(bin_dir), "HOME": str(home), "LANG": "C.UTF-8"}
            in_netns = isolated and NETNS
            if not in_netns:  # keep the IMDS probe on this machine
                child_env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = f"http://127.0.0.1:{_closed_port()}"
            child_env.update(env or {})
            cmd = [sys.executable, CHILD]
            if in_netns:
                cmd.append("--loopback")
            for spec in silent:
                cmd += ["--silent", spec]
            cmd += ["--", "--state-dir", str(state), *args]
            if in_netns:
                cmd = [UNSHARE, "-n", "--", *cmd]
            start = time.monotonic()
            proc = subprocess.run(cmd, env=child_env, capture_output=True, text=True, timeout=timeout,
                                  cwd=str(tmp_path))
            return Run(proc, time.monotonic() - start)

    return World()


def assert_sign_in_error(run: Run, deadline: float, *needles: str) -> None:
    """Exit 1, stderr exactly one sentence and one hint, no azure-identity noise, in time."""
    lines = run.err.splitlines()
    assert run.code == 1, run.err
    assert len(lines) == 2, run.err
    assert lines[0].startswith("ztwizard: error: ") and lines[1].startswith("hint: "), run.err
    sentence = lines[0].removeprefix("ztwizard: error: ")
    assert sentence.endswith(".") and ". " not in sentence[:-1], sentence
    for noise in ("azure.identity", "DefaultAzureCredential", "Attempted credentials", "Traceback", "aka.ms"):
        assert noise not in run.err
    for needle in needles:
        assert needle in run.err, run.err
    assert run.elapsed < deadline + SLACK, f"{run.elapsed:.1f} s"


SUB_ARG = ("-s", "00000000-0000-0000-0000-000000000001")


def _journal_with_a_session(world) -> None:
    """A session with undoable changes, made on the sandbox, so `undo` gets as far as signing in."""
    from ztwizard.cli import main

    env = {"ZTWIZARD_SANDBOX_IN_PROCESS": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert main(["--sandbox", "--state-dir", str(world.state), "apply", "--step", "storage-1", "--yes"]) == 0
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---- no credential at all ----------------------------------------------------------------------

# `tui` is not in this list: with no terminal (as here) the wizard is refused before it signs in
# (tests/tui/test_launch.py); at a terminal it signs in through the same make_core as these.
@pytest.mark.parametrize("command", [("plan", "--detailed-exitcode"), ("apply", "--yes"), ("undo", "--yes")])
def test_no_credential_is_one_sentence_and_exit_1(world, command, capsys):
    if command[0] == "undo":
        _journal_with_a_session(world)
        capsys.readouterr()
    run = world.run(*SUB_ARG, "--auth-timeout", "10", *command)
    assert_sign_in_error(run, 10, "No Azure credential was found", "az login")
    assert run.out == ""  # no plan of 23 `error` steps, no "Nothing to apply"


def test_no_credential_writes_no_sarif(world):
    out = world.state / "zt.sarif"
    run = world.run(*SUB_ARG, "plan", "--format", "sarif", "--output", str(out))
    assert_sign_in_error(run, 20, "No Azure credential was found")
    assert not out.exists()


@pytest.mark.parametrize("auth, needle", [
    ("cli", "The az CLI is not installed"),
    ("env", "AZURE_* variables of a service principal are not set"),
    ("managed-identity", "No managed identity is available"),
])
def test_each_kind_without_its_credential(world, auth, needle):
    run = world.run(*SUB_ARG, "--auth", auth, "--auth-timeout", "10", "plan")
    assert_sign_in_error(run, 10, needle, "--auth" if auth != "managed-identity" else "managed identity")


def test_azure_identity_lines_only_with_debug(world):
    run = world.run(*SUB_ARG, "--debug", "plan")
    assert run.code == 1
    assert "EnvironmentCredential" in run.err  # the chain's own account of each attempt


# ---- a fake az CLI that fails -------------------------------------------------------------------

FAILING_AZ = 'echo "ERROR: (InternalError) The token cache could not be read." >&2\nexit 1\n'


@pytest.mark.parametrize("command", [("plan",), ("apply", "--yes"), ("undo", "--yes")])
@pytest.mark.parametrize("auth, needle", [
    ("cli", "The az CLI gave no token (--auth cli): ERROR: (InternalError) The token cache could not be read."),
    ("default", "No Azure credential was found"),
])
def test_failing_az_cli(world, command, auth, needle, capsys):
    world.fake_az(FAILING_AZ)
    if command[0] == "undo":
        _journal_with_a_session(world)
        capsys.readouterr()
    run = world.run(*SUB_ARG, "--auth", auth, "--auth-timeout", "10", *command)
    assert_sign_in_error(run, 10, needle)


def test_az_not_signed_in(world):
    world.fake_az("echo \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1\n")
    run = world.run(*SUB_ARG, "--auth", "cli", "plan")
    assert_sign_in_error(run, 20, "The az CLI is not signed in (--auth cli).", "az login --use-device-code")


# ---- silent identity endpoints: the deadline holds -----------------------------------------------

SILENT = {
    "app-service": ("IDENTITY_ENDPOINT=http://127.0.0.1:{port}/msi/token", {"IDENTITY_HEADER": "h"}),
    "cloud-shell": ("MSI_ENDPOINT=http://127.0.0.1:{port}/oauth2/token", {}),
    "imds": ("AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:{port}", {}),
}


@pytest.mark.parametrize("auth", ["default", "managed-identity"])
@pytest.mark.parametrize("endpoint", sorted(SILENT))
def test_silent_identity_endpoint_fails_within_the_deadline(world, auth, endpoint):
    spec, env = SILENT[endpoint]
    run = world.run(*SUB_ARG, "--auth", auth, "--auth-timeout", "1", "plan", env=env, silent=(spec,), timeout=60)
    assert_sign_in_error(run, 1, f"Signing in (--auth {auth}) got no answer", "within 1 s")
    assert run.elapsed >= 1


@pytest.mark.slow
def test_silent_identity_endpoint_default_deadline_is_20_s(world):
    spec, env = SILENT["app-service"]
    run = world.run(*SUB_ARG, "plan", env=env, silent=(spec,), timeout=120)
    assert_sign_in_error(run, 20, "within 20 s")
    assert run.elapsed >= 20


def test_silent_endpoint_in_process_deadline_is_exact(monkeypatch):
    """The real ManagedIdentityCredential against a socket that never answers: the wrapper gives
    up at the deadline (not azure-core's 300 s read timeout times its retries)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "h")
    cred = build_credential("managed-identity", timeout=1.5)
    start = time.monotonic()
    with pytest.raises(SignInError) as err:
        cred.sign_in("https://management.azure.com/.default")
    elapsed = time.monotonic() - start
    assert 1.5 <= elapsed < 1.5 + SLACK  # the deadline, not azure-core's 300 s read timeout and its retries
    assert "within 1.5 s" in err.value.message
    start = time.monotonic()  # remembered for the run: the next client fails at once
    with pytest.raises(SignInError):
        cred.get_token("https://management.azure.com/.default")
    assert time.monotonic() - start < 0.1
    server.close()


# ---- flags ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "-3", "601", "abc", "nan"])
def test_auth_timeout_is_range_checked(world, value):
    run = world.run(*SUB_ARG, "--auth-timeout", value, "plan")
    assert run.code == 2
    assert "--auth-timeout must be a number of seconds from 1 to 600" in run.err and "hint:" in run.err


def test_unknown_auth_kind_is_a_usage_error(world):
    run = world.run("--auth", "browser", "plan")
    assert run.code == 2 and "invalid choice" in run.err


# ---- clouds ---------------------------------------------------------------------------------------

def _az_config(world, cloud: str) -> None:
    (world.home / ".azure").mkdir(exist_ok=True)
    (world.home / ".azure" / "config").write_text(f"[core]\noutput = json\n\n[cloud]\nname = {cloud}\n")


def test_cli_on_another_cloud_is_said_with_the_az_cloud_set_hint(world):
    _az_config(world, "AzureCloud")
    world.fake_az('echo "az must not be run when its cloud is wrong" >&2\nexit 3\n')
    run = world.run(*SUB_ARG, "--cloud", "AzureUSGovernment", "--auth", "cli", "plan")
    assert_sign_in_error(run, 20, "The az CLI's active cloud is AzureCloud, but --cloud is AzureUSGovernment.",
                         "az cloud set --name AzureUSGovernment")


def test_default_leaves_a_cli_on_another_cloud_out_and_says_so(world):
    _az_config(world, "AzureChinaCloud")
    counter = world.state / "az-calls"
    world.fake_az(f'echo call >> "{counter}"\necho "{{}}"\n')
    run = world.run(*SUB_ARG, "plan")
    assert_sign_in_error(run, 20, "the az CLI is signed in to AzureChinaCloud", "az cloud set --name AzureCloud")
    assert not counter.exists()  # a token for another cloud was never asked for


def test_cli_active_cloud_reads_the_config_file(tmp_path):
    assert cli_active_cloud({"HOME": str(tmp_path)}) is None  # az never configured here
    (tmp_path / ".azure").mkdir()
    assert cli_active_cloud({"HOME": str(tmp_path)}) == "AzureCloud"  # the CLI's default
    (tmp_path / ".azure" / "config").write_text("[cloud]\nname = AzureUSGovernment\n")
    assert cli_active_cloud({"HOME": str(tmp_path)}) == "AzureUSGovernment"
    other = tmp_path / "cfg"
    other.mkdir()
    (other / "config").write_text("[cloud]\nname = AzureChinaCloud\n")
    assert cli_active_cloud({"HOME": str(tmp_path), "AZURE_CONFIG_DIR": str(other)}) == "AzureChinaCloud"


@pytest.mark.parametrize("cloud, host", [("AzureCloud", "login.microsoftonline.com"),
                                         ("AzureUSGovernment", "login.microsoftonline.us"),
                                         ("AzureChinaCloud", "login.chinacloudapi.cn")])
def test_cloud_sets_the_authority_of_each_kind_that_takes_one(cloud, host, monkeypatch, tmp_path):
    """The authority each credential will sign in at (read from azure-identity's own objects: no
    request is made). The az CLI and managed identity take none."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("AZURE_AUTHORITY_HOST", raising=False)
    for var, value in (("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_ID", "c"), ("AZURE_CLIENT_SECRET", "s")):
        monkeypatch.setenv(var, value)
    device = build_credential("device-code", cloud).inner
    env = build_credential("env", cloud).inner
    default = build_credential("default", cloud).inner
    assert device._authority == f"https://{host}"
    assert env._credential._authority == f"https://{host}"
    assert default.credentials[0]._credential._authority == f"https://{host}"  # EnvironmentCredential leads the chain
    assert not any(type(c).__name__ == "InteractiveBrowserCredential" for c in default.credentials)


# ---- the token cache, shared by every client ------------------------------------------------------

def _token_az(world, token: str) -> Path:
    counter = world.state / "az-calls"
    expires = int(time.time()) + 3600
    body = json.dumps({"accessToken": token, "expires_on": expires, "subscription": SUB,
                       "tenant": "00000000-0000-0000-0000-0000000000aa", "tokenType": "Bearer"})
    world.fake_az(f"echo call >> \"{counter}\"\nprintf '%s\\n' '{body}'\n")  # builtins only: PATH is bare
    return counter


def test_one_az_call_for_a_whole_plan(world, small_estate):
    """A real plan through every client (resources, graph, storage, network, compute, security,
    authorization, monitor) against the HTTPS sandbox, signed in by AzureCliCredential: one `az`."""
    from ztwizard.sandbox.server import running

    with running(world.state / "sb", estate=small_estate) as srv:
        conn = srv.connection
        counter = _token_az(world, conn["token"])
        run = world.run("--endpoint", conn["endpoint"], "--ca-bundle", conn["ca_bundle"], "--auth", "cli",
                        "-s", SUB, "plan", "--format", "json", isolated=False)
        paths = [path.lower() for _method, path, _status in srv.sandbox.request_log]
    assert run.code == 0, run.err
    plan = json.loads(run.out)
    assert plan["summary"]["error"] == 0 and plan["summary"]["fail"] > 0
    providers = {p.split("/providers/")[1].split("/")[0] for p in paths if "/providers/" in p}
    assert len(paths) >= 10 and len(providers) >= 3, providers  # many requests through several clients ...
    assert counter.read_text().count("call") == 1  # ... one sign-in


def test_shared_credential_caches_per_scope_across_threads():
    """Eight clients asking at once get one acquisition per scope; an expiring token is renewed."""
    from azure.core.credentials import AccessTokenInfo

    calls: list[tuple[str, ...]] = []

    class Counting:
        def __init__(self) -> None:
            self.lifetime = 3600

        def get_token_info(self, *scopes, options=None):
            calls.append(scopes)
            time.sleep(0.05)  # concurrent callers arrive while the first is still signing in
            return AccessTokenInfo(f"t{len(calls)}", int(time.time()) + self.lifetime)

    inner = Counting()
    cred = SharedCredential(inner, timeout=5)
    arm = "https://management.azure.com/.default"
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(cred.get_token(arm).token)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == ["t1"] * 8 and len(calls) == 1
    assert cred.get_token_info("https://graph.microsoft.com/.default").token == "t2"  # another scope
    assert cred.get_token(arm).token == "t1"
    inner.lifetime = 60  # inside the refresh window: every request renews it
    cred._tokens.clear()
    assert cred.get_token(arm).token == "t3"
    assert cred.get_token(arm).token == "t4"


# ---- a refused credential on the sandbox: every read fails, exit 1 always --------------------------

@pytest.mark.parametrize("command", [("plan",), ("plan", "--format", "sarif", "--output", "zt.sarif"),
                                     ("apply", "--yes")])
def test_refused_token_exits_1_not_a_plan_of_errors(world, small_estate, command):
    from ztwizard.sandbox.server import running

    with running(world.state / "sb", estate=small_estate) as srv:
        conn = srv.connection
        _token_az(world, "not-the-sandbox-token")
        start = len(srv.sandbox.request_log)
        run = world.run("--endpoint", conn["endpoint"], "--ca-bundle", conn["ca_bundle"], "--auth", "cli",
                        "-s", SUB, *command, isolated=False)
        sent = list(srv.sandbox.request_log)[start:]
    assert_sign_in_error(run, 20, "ARM rejected the credential (401)")
    assert "Nothing to apply" not in run.out and run.out == ""
    assert not (world.state.parent / "zt.sarif").exists()
    # Resource Graph queries are reads sent by POST; anything else not a GET would be a write
    writes = [(m, p) for m, p, _s in sent if m != "GET" and "/microsoft.resourcegraph/" not in p.lower()]
    assert sent and writes == []
    assert {status for _m, _p, status in sent} == {401}


# ---- exit codes of a plan with failed reads (product.md §3), on the sandbox ------------------------

@pytest.fixture
def faulty_sandbox(monkeypatch):
    """`--sandbox` served in-process with injected 500s (the in-process transport does not sleep
    between retries, so azure-core's retries run in full and quickly)."""
    from ztwizard import target
    from ztwizard.sandbox import Sandbox

    def use(faults: str | None) -> None:
        monkeypatch.setattr(target, "sandbox_target",
                            lambda state_dir, **kw: target.in_process_target(Sandbox(None, faults=faults, seed=5)))

    return use


def _plan(tmp_path, capsys, *extra):
    from ztwizard.cli import main

    out = tmp_path / "plan.json"
    code = main(["--sandbox", "--state-dir", str(tmp_path), "plan", "--format", "json", "--output", str(out), *extra])
    err = capsys.readouterr().err
    findings = [f for s in json.loads(out.read_text())["steps"] for f in s["findings"]] if out.exists() else []
    return code, err, findings


def test_any_error_exits_1_under_detailed_exitcode(tmp_path, capsys, faulty_sandbox):
    faulty_sandbox("500:0.8")  # 0.8^7: about one read in five fails even after the retries
    code, err, findings = _plan(tmp_path, capsys, "--detailed-exitcode")
    errors = [f for f in findings if f["status"] == "error"]
    assert errors and len(errors) < len(findings)  # some reads failed, not all
    assert code == 1
    assert f"{len(errors)} check(s) could not be evaluated" in err and "hint:" in err
    assert "Traceback" not in err


def test_partial_errors_without_detailed_exitcode_still_exit_0(tmp_path, capsys, faulty_sandbox):
    faulty_sandbox("500:0.8")
    code, _err, findings = _plan(tmp_path, capsys)
    assert code == 0 and any(f["status"] == "error" for f in findings)


def test_clean_plan_detailed_exitcode_is_2_when_changes_are_pending(tmp_path, capsys, faulty_sandbox):
    faulty_sandbox(None)
    code, err, findings = _plan(tmp_path, capsys, "--detailed-exitcode")
    assert code == 2, err
    assert findings and not any(f["status"] == "error" for f in findings)


@pytest.mark.parametrize("command", [("plan",), ("apply", "--yes")])
def test_every_read_failed_exits_1_always(tmp_path, capsys, faulty_sandbox, command):
    from ztwizard.cli import main

    faulty_sandbox("500:1.0")
    out = tmp_path / "out.sarif"
    args = [*command, "--format", "sarif", "--output", str(out)] if command[0] == "plan" else list(command)
    code = main(["--sandbox", "--state-dir", str(tmp_path), *args])
    captured = capsys.readouterr()
    assert code == 1
    assert "ARM answered 500 InternalServerError" in captured.err
    assert "Nothing to apply" not in captured.out
    assert not out.exists()


# ---- device code: the prompt on stderr, no browser ------------------------------------------------

def _fake_entra(directory: Path, access_token: str, pending: int = 1):
    """A minimal Microsoft Entra ID over HTTPS on 127.0.0.1 for the device-code flow: discovery,
    the device code, one `authorization_pending`, then a token (with the id_token and client_info
    MSAL builds its account from; nothing is verified by a client, as on the real service)."""
    import base64
    import ssl
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from ztwizard.sandbox import certs

    files = certs.ensure(directory)
    polls: list[str] = []

    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output clean
            pass

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            base = f"https://127.0.0.1:{self.server.server_address[1]}/tenant-1"
            if self.path.startswith("/tenant-1/v2.0/.well-known/openid-configuration"):
                return self._send(200, {"authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                                        "token_endpoint": f"{base}/oauth2/v2.0/token",
                                        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                                        "issuer": f"{base}/v2.0"})
            return self._send(404, {"error": "not_found"})

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            if self.path.endswith("/devicecode"):
                return self._send(200, {"device_code": "dc-1", "user_code": "ZTW-4242", "expires_in": 900,
                                        "interval": 1, "verification_uri": "https://microsoft.com/devicelogin",
                                        "message": "To sign in, use a web browser"})
            if self.path.endswith("/token") and "device_code" in body:
                polls.append(body)
                if len(polls) <= pending:  # the person has not entered the code yet
                    return self._send(400, {"error": "authorization_pending"})
                now = int(time.time())
                claims = {"oid": "u-1", "tid": "tenant-1", "sub": "s", "aud": "a", "iss": "x",
                          "preferred_username": "ops@contoso.example", "iat": now, "exp": now + 3600}
                return self._send(200, {"token_type": "Bearer", "access_token": access_token, "expires_in": 3600,
                                        "scope": "https://management.azure.com/.default",
                                        "id_token": f"{b64({'alg': 'none'})}.{b64(claims)}.",
                                        "client_info": b64({"uid": "u-1", "utid": "tenant-1"})})
            return self._send(400, {"error": "invalid_request"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(files.cert, files.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, files.ca_cert, polls


@pytest.mark.parametrize("pending, deadline", [(1, "10"), (4, "2")])
def test_device_code_prompts_on_stderr_and_signs_in_without_a_browser(world, small_estate, pending, deadline):
    """(4, 2): the person takes ~4 s, longer than the 2 s deadline: a showing code waits for them."""
    from ztwizard.sandbox.server import running

    with running(world.state / "sb", estate=small_estate) as srv:
        conn = srv.connection
        entra, ca, polls = _fake_entra(world.state / "entra", conn["token"], pending)
        try:
            run = world.run("--endpoint", conn["endpoint"], "--ca-bundle", conn["ca_bundle"],
                            "--auth", "device-code", "--auth-timeout", deadline, "-s", SUB, "plan", "--format", "json",
                            env={"AZURE_AUTHORITY_HOST": f"https://127.0.0.1:{entra.server_address[1]}",
                                 "AZURE_TENANT_ID": "tenant-1", "REQUESTS_CA_BUNDLE": str(ca)},
                            isolated=False)
        finally:
            entra.shutdown()
    assert run.code == 0, run.err
    assert "open https://microsoft.com/devicelogin in any browser and enter the code ZTW-4242" in run.err
    assert "ZTW-4242" not in run.out and json.loads(run.out)["summary"]["fail"] > 0  # stdout is the plan only
    assert len(polls) == pending + 1  # it waited for the person, then used the token for every client
