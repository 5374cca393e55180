"""In-process transport: the real azure-core pipeline, with the socket replaced by a call into
the sandbox. Nothing leaves the process, so tests need no ports, certificates or sleeps."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import requests
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import HTTPAdapter
from urllib3.response import HTTPResponse

from .faults import ConnectionReset

Handler = Callable[[str, str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]


class InProcessAdapter(HTTPAdapter):
    """A requests adapter that hands each request to the sandbox's `handle`."""

    def __init__(self, handler: Handler) -> None:
        super().__init__()
        self.handler = handler

    def send(self, request: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        elif not isinstance(body, bytes):  # a file-like body
            body = body.read()
        try:
            status, headers, data = self.handler(request.method, request.url, dict(request.headers), body)
        except ConnectionReset as exc:
            # what requests raises when the peer drops the connection; azure-core maps it to
            # ServiceRequestError and retries it like any network failure
            raise requests.exceptions.ConnectionError(str(exc), request=request) from exc
        raw = HTTPResponse(body=io.BytesIO(data), headers=headers, status=status,
                           preload_content=False, decode_content=False)
        return self.build_response(request, raw)


class FastTransport(RequestsTransport):
    """RetryPolicy back-off and LRO polling call `sleep`: record instead of waiting, so tests can
    assert that Retry-After was honoured without spending the time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sleeps: list[float] = []

    def sleep(self, duration: float) -> None:
        self.sleeps.append(float(duration))


def make_transport(handler: Handler) -> FastTransport:
    session = requests.Session()
    for prefix in ("https://", "http://"):  # nothing can reach the real network
        session.mount(prefix, InProcessAdapter(handler))
    return FastTransport(session=session, session_owner=False)
