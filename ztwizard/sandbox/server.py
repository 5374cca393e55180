"""The sandbox over HTTPS on 127.0.0.1, and the functions behind `ztwizard sandbox serve|reset|export`.

The same `Sandbox.handle` core answers; only the socket and TLS differ from the in-process
transport. `connection.json` tells other processes where it listens and with which CA and token;
it exists only while the server runs."""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import json
import os
import re
import secrets
import signal
import socket
import ssl
import threading
import uuid
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


# ARM refuses request content above 4 MB (RequestContentTooLarge) and JSON nested deeper than
# its deserializer's MaxDepth of 64 (InvalidRequestContent).
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_JSON_DEPTH = 64
LINGER_BYTES = 1024 * 1024
_JSON_TYPES = ("application/json", "text/json")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def _error_reply(status: int, code: str, message: str, extra: dict[str, str] | None = None
                 ) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", "Content-Length": str(len(data)),
               "x-ms-request-id": str(uuid.uuid4()), **(extra or {})}
    return status, headers, data


def json_depth(body: bytes) -> int:
    """How deep objects and arrays nest in `body`, brackets inside strings not counted; found
    without parsing, so a hostile nesting never reaches the recursive JSON parser."""
    depth = deepest = 0
    for m in _BRACKET.finditer(_STRING.sub(b'""', body)):
        if m.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _url(self) -> str:
        host = self.headers.get("Host") or f"{HOST}:{self.server.server_address[1]}"
        return f"https://{host}{self.path}"

    def _authenticated(self) -> bool:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        given = token.strip().encode()
        return any(hmac.compare_digest(given, str(p["token"]).encode())
                   for p in self.server.sandbox.principals.values())

    def _precheck(self) -> tuple[tuple[int, dict[str, str], bytes] | None, int]:
        """What must be refused before a byte of the body is read: framing, the token, the size
        and the media type. Returns (refusal or None, content length)."""
        if self.headers.get("Transfer-Encoding", "identity").strip().lower() != "identity":
            return _error_reply(411, "LengthRequired", "The request must carry a Content-Length header; "
                                "chunked transfer encoding is not supported."), 0
        raw = self.headers.get_all("Content-Length") or []
        if len(set(v.strip() for v in raw)) > 1 or any(not v.strip().isdigit() for v in raw):
            return _error_reply(400, "InvalidContentLength",
                                "The Content-Length header must be one non-negative integer."), 0
        length = int(raw[0]) if raw else 0
        if not self._authenticated():
            # the sandbox core writes ARM's 401 (and its challenge); it is given no body
            return self.server.sandbox.handle(self.command, self._url(), dict(self.headers.items()), b""), length
        if length > MAX_BODY_BYTES:
            return _error_reply(413, "RequestContentTooLarge",
                                "The request content size exceeds the maximum size of 4 MB."), length
        if length > 0:
            media = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if media not in _JSON_TYPES:
                shown = media or "(none)"
                return _error_reply(415, "UnsupportedMediaType",
                                    f"The content media type '{shown}' is not supported. "
                                    "Only 'application/json' is supported."), length
        return None, length

    def handle_expect_100(self) -> bool:
        """`Expect: 100-continue`: refuse before the client sends the body, or invite it."""
        refusal, _ = self._precheck()
        if refusal is not None:
            self._send(*refusal, close=True)
            return False
        return super().handle_expect_100()

    def _answer(self) -> None:
        refusal, length = self._precheck()
        if refusal is not None:
            # the body (if any) stays unread: the connection cannot be reused
            self._send(*refusal, close=length > 0 or refusal[0] in (400, 411))
            return
        body = self.rfile.read(length) if length > 0 else b""
        if len(body) < length:  # the client went away mid-request: there is nothing to act on
            self.close_connection = True
            return
        if body and json_depth(body) > MAX_JSON_DEPTH:
            self._send(*_error_reply(400, "InvalidRequestContent",
                                     "The request content was invalid and could not be deserialized: "
                                     f"the JSON nests deeper than the maximum depth of {MAX_JSON_DEPTH}."))
            return
        try:
            status, headers, data = self.server.sandbox.handle(self.command, self._url(), dict(self.headers.items()),
                                                               body)
        except ConnectionReset:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        except Exception:  # noqa: BLE001 - a bug must not kill the server; never echo the request
            status, headers, data = _error_reply(500, "InternalServerError", "The sandbox failed to answer.")
        self._send(status, headers, data)

    def _send(self, status: int, headers: dict[str, str], data: bytes, *, close: bool = False) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and data:
            self.wfile.write(data)
        if close:
            self._linger()

    def _linger(self) -> None:
        """Read (and drop) a little of what the client is still sending before closing, so that
        closing with unread bytes does not reset the connection and lose the answer just sent."""
        with contextlib.suppress(OSError, ValueError):
            self.wfile.flush()
            self.connection.settimeout(0.2)
            for _ in range(LINGER_BYTES // 65536):
                if not self.rfile.read1(65536):
                    break

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST = do_HEAD = _answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the request log lives in Sandbox
        return

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - malformed requests get an answer, not a log
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sandbox: Sandbox
    tls: ssl.SSLContext

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS handshake here, in the connection's own thread, so a slow client stalls only itself."""
        request.settimeout(30)
        # headers and body leave in two writes: without NODELAY, Nagle and the client's delayed
        # ACK hold every answer back ~40 ms
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
            # fresh bearer tokens every run: a token seen once (a log, a shell history) dies with it
            for principal in self.sandbox.principals.values():
                principal["token"] = secrets.token_urlsafe(32)
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
          ready: Callable[[dict[str, Any]], None] | None = None, **sandbox_kwargs: Any) -> str:
    """`ztwizard sandbox serve`: run in the foreground until SIGINT/SIGTERM. `estate` only seeds
    a state dir that has no state yet (use `reset` to replace one). Returns the line saying
    what was served (`served N requests (R reads, W writes, T throttled)`)."""
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
    return server.sandbox.tally.summary()


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
