"""The sandbox over HTTPS on 127.0.0.1, and the functions behind `ztwizard sandbox serve|reset|export`.

The same `Sandbox.handle` core answers; only the socket and TLS differ from the in-process
transport. `connection.json` tells other processes where it listens and with which CA and token;
it exists only while the server runs."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import UsageError, ZtwError
from ..files import write_output
from . import certs
from .arm import Sandbox, _resolve_estate
from .faults import ConnectionReset
from .store import atomic_write_json

HOST = "127.0.0.1"


def sandbox_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "sandbox"


def connection_path(state_dir: Path) -> Path:
    return sandbox_dir(state_dir) / "connection.json"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if len(body) < length:  # the client went away mid-request: there is nothing to act on
            self.close_connection = True
            return
        host = self.headers.get("Host") or f"{HOST}:{self.server.server_address[1]}"
        url = f"https://{host}{self.path}"
        try:
            status, headers, data = self.server.sandbox.handle(self.command, url, dict(self.headers.items()), body)
        except ConnectionReset:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        except Exception:  # noqa: BLE001 - a bug must not kill the server; never echo the request
            status, headers = 500, {"Content-Type": "application/json"}
            data = b'{"error":{"code":"InternalServerError","message":"The sandbox failed to answer."}}'
            headers["Content-Length"] = str(len(data))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and data:
            self.wfile.write(data)

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST = do_HEAD = _answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the request log lives in Sandbox
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sandbox: Sandbox
    tls: ssl.SSLContext

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS handshake here, in the connection's own thread, so a slow client stalls only itself."""
        request.settimeout(30)
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)  # type: ignore[arg-type]
        except (ssl.SSLError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()


class SandboxServer:
    """A running HTTPS sandbox; `close()` stops it and removes connection.json."""

    def __init__(self, state_dir: Path, port: int = 0, **sandbox_kwargs: Any) -> None:
        self.state_dir = Path(state_dir)
        directory = sandbox_dir(self.state_dir)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_fd = _exclusive(directory, self.state_dir)
        try:
            self.sandbox = Sandbox(self.state_dir, **sandbox_kwargs)
            files = certs.ensure(directory)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(files.cert, files.key)
            try:
                self.httpd = _Server((HOST, port), _Handler)
            except OSError as exc:
                raise UsageError(f"Cannot listen on {HOST}:{port} ({exc.strerror}).",
                                 hint="Choose another --port, or omit it for a free one.") from exc
            self.httpd.sandbox = self.sandbox
            self.httpd.tls = ctx
            self.port = self.httpd.server_address[1]
            self.endpoint = f"https://{HOST}:{self.port}"
            self.connection = {"endpoint": self.endpoint, "ca_bundle": str(files.ca_cert.resolve()),
                               "token": self.sandbox.token, "reader_token": self.sandbox.reader_token,
                               "pid": os.getpid()}
            atomic_write_json(connection_path(self.state_dir), self.connection)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._thread: threading.Thread | None = None

    def start(self) -> SandboxServer:
        """Serve in a background thread (for tests and an in-process TUI)."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="ztwizard-sandbox", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
        self.httpd.server_close()
        with self.sandbox._lock:  # a request still being answered finishes its save first
            pass
        path = connection_path(self.state_dir)
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _exclusive(directory: Path, state_dir: Path) -> int:
    """One server per state dir: an advisory lock held for the server's lifetime."""
    fd = os.open(directory / "serve.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        conn = _read_connection(state_dir) or {}
        who = f" (PID {conn['pid']}, {conn['endpoint']})" if conn.get("pid") else ""
        raise ZtwError(f"A sandbox is already serving {state_dir}{who}.",
                       hint="Use that one (ztwizard --sandbox connects to it), or stop it first.") from None
    return fd


def start_server(state_dir: Path, port: int = 0, **sandbox_kwargs: Any) -> SandboxServer:
    """An HTTPS sandbox running in a background thread; close() it when done."""
    return SandboxServer(state_dir, port, **sandbox_kwargs).start()


def serve(state_dir: Path, port: int = 0, estate: str | list[dict[str, Any]] | None = "reference", *,
          latency_ms: int = 0, faults: str | None = None, seed: int = 0,
          ready: Callable[[dict[str, Any]], None] | None = None, **sandbox_kwargs: Any) -> None:
    """`ztwizard sandbox serve`: run in the foreground until SIGINT/SIGTERM. `estate` only seeds
    a state dir that has no state yet (use `reset` to replace one)."""
    server = SandboxServer(state_dir, port, estate=estate, latency_ms=latency_ms, faults=faults, seed=seed,
                           **sandbox_kwargs)
    stopping = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.httpd.shutdown, daemon=True).start()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, stop)
    try:
        if ready is not None:
            ready(dict(server.connection))
        server.serve_forever()
    finally:
        server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _read_connection(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(connection_path(state_dir).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def connection_alive(state_dir: Path) -> dict[str, Any] | None:
    """connection.json when its process lives and its port completes a TLS handshake with its CA."""
    conn = _read_connection(Path(state_dir))
    if not conn or not _pid_alive(conn.get("pid")):
        return None
    try:
        url = urlsplit(conn["endpoint"])
        ctx = ssl.create_default_context(cafile=conn["ca_bundle"])
        with socket.create_connection((url.hostname, url.port), timeout=2) as raw:
            with ctx.wrap_socket(raw, server_hostname=url.hostname):
                pass
    except (KeyError, TypeError, ValueError, OSError, ssl.SSLError):
        return None
    return conn


def reset(state_dir: Path, estate: str | list[dict[str, Any]] | None = "reference") -> dict[str, Any]:
    """`ztwizard sandbox reset`: replace the state with a fresh estate (tokens kept). The estate is
    read in full before anything is written, so bad input leaves the old state untouched."""
    state_dir = Path(state_dir)
    conn = connection_alive(state_dir)
    if conn:
        raise ZtwError(f"The sandbox at {conn['endpoint']} (PID {conn['pid']}) is serving {state_dir}.",
                       hint="Stop it (Ctrl-C or SIGTERM) before resetting its state.")
    resources = _resolve_estate(estate)
    state = sandbox_dir(state_dir) / "state.json"
    sb = None
    if state.exists():
        try:
            sb = Sandbox(state_dir, estate=None)
        except UsageError:  # unreadable state: a reset is exactly the way out
            state.unlink()
    if sb is None:
        sb = Sandbox(state_dir, estate=resources)
    else:
        sb.reset(resources)
    return {"state": str(sb.state_path), "resources": len(sb.store)}


def export(state_dir: Path, output: str | Path | None = None) -> int:
    """`ztwizard sandbox export`: the estate as an estate file (atomic) or on stdout; returns the
    number of entries."""
    state_dir = Path(state_dir)
    if not (sandbox_dir(state_dir) / "state.json").exists():
        raise UsageError(f"There is no sandbox state in {state_dir}.",
                         hint="Run `ztwizard sandbox reset` or `ztwizard sandbox serve` first.")
    data = Sandbox(state_dir, estate=None).export()
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    write_output(None if output is None else str(output), text)  # the same file policy as plan --output
    return len(data)


@contextlib.contextmanager
def running(state_dir: Path, **kwargs: Any) -> Iterator[SandboxServer]:
    """`with running(dir) as srv:` an HTTPS sandbox for the block's duration."""
    server = start_server(state_dir, **kwargs)
    try:
        yield server
    finally:
        server.close()
