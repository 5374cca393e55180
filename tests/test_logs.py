"""Logging: off by default, --debug to stderr, --log-file to a private file; never a secret."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ztwizard import logs

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "ztwizard.cli"]

BEARER = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQifQ.c2lnbmF0dXJlLXBhcnQ"
OPAQUE_TOKEN = "Zq3-opaque_token.value~42"
SAS_SIG = "r4nd0mS1gnatureValue%2Bwith%3Dstuff"
STORAGE_KEY = "Xy7Jk2Lm9Pq4Rs6Tu8Vw0Yz1Ab3Cd5Ef7Gh9Ij2Kl4Mn6Op8Qr0St2Uv4Wx6Yz8Ab0Cd2Ef4Gh6Ij8Kl0Mn2Op4Qr6S=="
CONN_KEY = "S3CR3TKEYforConnString"
PASSWORD = "Pa55w0rd!Secret"


@pytest.fixture
def restore_logging():
    yield
    logs.configure()  # back to off, and our handlers closed


def test_every_secret_is_scrubbed_from_every_logger(tmp_path, restore_logging):
    path = tmp_path / "ztwizard.log"
    logs.configure(log_file=str(path))
    log = logging.getLogger("ztwizard.gateway")
    log.info("sending with Authorization: Bearer %s", BEARER)
    log.info("headers %s", {"Authorization": f"Bearer {OPAQUE_TOKEN}", "x-ms-client-request-id": "abc-123"})
    log.info("GET https://stblob01.blob.core.windows.net/c/b?sv=2022-11-02&se=2030-01-01&sp=r&sig=%s", SAS_SIG)
    log.info("listKeys answered %s", json.dumps({"keys": [{"keyName": "key1", "value": STORAGE_KEY}]}))
    logging.getLogger("azure.core.pipeline").warning(
        "conn DefaultEndpointsProtocol=https;AccountName=stblob01;AccountKey=%s;EndpointSuffix=core.windows.net",
        CONN_KEY)
    logging.getLogger("msal.token_cache").warning("form client_secret=%s&password=%s", OPAQUE_TOKEN, PASSWORD)
    try:
        raise RuntimeError(f"failed with token {BEARER}")
    except RuntimeError:
        log.exception("a traceback carrying a secret")
    text = path.read_text()
    for secret in (BEARER, OPAQUE_TOKEN, SAS_SIG, STORAGE_KEY, CONN_KEY, PASSWORD):
        assert secret not in text, secret
    # ... while what a person needs to read the log stays.
    assert "stblob01" in text and "x-ms-client-request-id" in text and "sig=***" in text
    assert "RuntimeError" in text and "AccountKey=***" in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_an_existing_log_file_is_made_private(tmp_path, restore_logging):
    path = tmp_path / "old.log"
    path.write_text("earlier\n")
    path.chmod(0o644)
    logs.configure(log_file=str(path))
    logging.getLogger("ztwizard.apply").info("appended")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text().startswith("earlier\n") and "appended" in path.read_text()


_SDK_NOISE = textwrap.dedent("""
    import logging, sys
    from ztwizard import logs
    logs.configure(debug=sys.argv[1] == "debug", log_file=sys.argv[2] or None)
    logging.getLogger("azure.mgmt.security._serialization").warning(
        "Discriminator source is absent or null, use base class ResourceDetails.")
    logging.getLogger("ztwizard.gateway").warning("retrying GET after 500")
""")


@pytest.mark.parametrize("mode", ["off", "debug", "file"])
def test_sdk_warnings_reach_stderr_only_with_debug(tmp_path, mode):
    log_file = str(tmp_path / "f.log") if mode == "file" else ""
    out = subprocess.run([sys.executable, "-c", _SDK_NOISE, mode, log_file], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    if mode == "debug":
        assert "Discriminator" in out.stderr and "retrying GET" in out.stderr
    else:
        assert out.stderr == ""
    if mode == "file":
        text = Path(log_file).read_text()
        assert "Discriminator" in text and "retrying GET" in text


_FALLBACK_UNDER_FAULTS = textwrap.dedent("""
    import sys
    from ztwizard import logs
    from ztwizard.engine import inspect
    from ztwizard.gateway import Gateway
    from ztwizard.sandbox import Sandbox
    from ztwizard.sandbox.estates import load_estate
    from ztwizard.target import in_process_target

    logs.configure(debug=sys.argv[1] == "debug")
    sb = Sandbox(None, estate=load_estate("reference"), lro_seconds=0,
                 faults="429:0.1,500:0.05,503:0.05,reset:0.02", seed=3)
    real = sb.handle
    def handle(method, url, headers, body):  # Resource Graph refused: the list calls the SDK warns on
        if method == "POST" and "resourcegraph" in url.lower():
            return 403, {"Content-Type": "application/json"}, b'{"error":{"code":"AuthorizationFailed","message":"no"}}'
        return real(method, url, headers, body)
    sb.handle = handle
    plan = inspect(Gateway(in_process_target(sb)))
    print(len(plan.steps))
""")


@pytest.mark.parametrize("debug", [False, True])
def test_a_plan_under_faults_prints_no_sdk_warning(debug):
    out = subprocess.run([sys.executable, "-c", _FALLBACK_UNDER_FAULTS, "debug" if debug else "off"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "23"
    if debug:  # the warnings are there, and --debug shows them ...
        assert "Discriminator" in out.stderr
    else:  # ... but never on stderr by default
        assert "Discriminator" not in out.stderr and out.stderr == ""


def _run(args, state, timeout=180):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZTWIZARD_")}
    return subprocess.run([*CLI, "--state-dir", str(state), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def test_cli_plan_against_a_faulty_served_sandbox_logs_to_file_only(tmp_path):
    state = tmp_path / "state"
    serve = subprocess.Popen([*CLI, "sandbox", "serve", "--state-dir", str(state),
                              "--faults", "429:0.1,500:0.05,reset:0.02,lro-fail:0.05"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn = state / "sandbox" / "connection.json"
        deadline = time.monotonic() + 30
        while not conn.exists():
            assert serve.poll() is None and time.monotonic() < deadline, "sandbox serve did not start"
            time.sleep(0.05)
        log_file = tmp_path / "run.log"
        out = _run(["--sandbox", "--log-file", str(log_file), "plan", "--format", "json",
                    "--output", str(tmp_path / "plan.json")], state)
        assert out.returncode == 0, out.stderr
        assert "Discriminator" not in out.stderr and out.stderr == ""
        text = log_file.read_text()
        assert " -> 200" in text  # the requests made, with their status
        assert json.loads(conn.read_text())["token"] not in text
        assert stat.S_IMODE(os.stat(log_file).st_mode) == 0o600
    finally:
        serve.terminate()
        serve.wait(10)


@pytest.mark.parametrize("make", ["missing-dir", "directory"])
def test_a_bad_log_file_is_a_usage_error(tmp_path, make):
    target = tmp_path / "no" / "such" / "x.log" if make == "missing-dir" else tmp_path
    out = _run(["--log-file", str(target), "steps"], tmp_path / "state")
    assert out.returncode == 2
    assert out.stderr.startswith("ztwizard: error: ") and "log file" in out.stderr.lower()
    assert "Traceback" not in out.stderr
