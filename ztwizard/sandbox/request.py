"""One ARM request as the sandbox sees it, and the ways it answers: a `Reply` raised from anywhere
in a handler ends the request with that status, body and headers (errors, mostly)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .store import parse

JSON = "application/json; charset=utf-8"


class Reply(Exception):
    """Raised inside a handler to answer at once."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def arm_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    """ARM's error envelope: {"error": {"code", "message"}}."""
    return Reply(status, {"error": {"code": code, "message": message}}, headers)


class Request:
    """One request, parsed. `dirty` is set by a handler that changed the state (it is saved
    before the answer leaves)."""

    def __init__(self, method: str, url: str, headers: dict[str, str], body: bytes) -> None:
        parts = urlsplit(url)
        self.method = method.upper()
        self.host = f"{parts.scheme}://{parts.netloc}"
        self.path = "/" + unquote(parts.path).strip("/")
        self.segs = [s for s in self.path.split("/") if s]
        self.low = [s.lower() for s in self.segs]
        self.query = {k.lower(): v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body or b""
        self.principal = ""
        self.reader = False
        self.dirty = False

    @property
    def api_version(self) -> str:
        return self.query.get("api-version", "")

    def json(self) -> Any:
        try:
            data = json.loads(self.body.decode("utf-8") if self.body else "{}")
        except (UnicodeDecodeError, ValueError) as exc:
            raise arm_error(400, "InvalidRequestContent",
                            f"The request content was invalid and could not be deserialized: '{exc}'.") from exc
        return data


def not_found(resource_id: str) -> Reply:
    parts = resource_id.strip("/").split("/")
    low = [x.lower() for x in parts]
    at = max((i for i, x in enumerate(low) if x == "providers"), default=-1)
    shown = "/".join(parts[at + 1:]) if at >= 0 else resource_id
    rg = parse(resource_id).resource_group
    where = f" under resource group '{rg}'" if rg else ""
    return arm_error(404, "ResourceNotFound", f"The Resource '{shown}'{where} was not found. "
                     "For more details please go to https://aka.ms/ARMResourceNotFoundFix")


def method_not_allowed(ctx: Request) -> Reply:
    return arm_error(405, "MethodNotAllowed", f"The requested method '{ctx.method}' is not allowed on '{ctx.path}'.")


def require_rg(store: Any, sub: str, rg: str) -> None:
    if store.get(f"/subscriptions/{sub}/resourceGroups/{rg}") is None:
        raise arm_error(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")


def bare_etag(value: str) -> str:
    v = value.strip()
    if v.startswith("W/"):
        v = v[2:]
    return v.strip('"')


def authorize_write(ctx: Request, read_only: bool, rtype: str, scope: str, action: str | None = None) -> None:
    """403 for the reader principal, or for any principal on a read-only sandbox."""
    if not (ctx.reader or read_only):
        return
    verb = action or ("delete" if ctx.method == "DELETE" else "write")
    oid = ctx.principal
    raise arm_error(403, "AuthorizationFailed",
                    f"The client '{oid}' with object id '{oid}' does not have authorization to perform action "
                    f"'{rtype}/{verb}' over scope '{scope}' or the scope is invalid. If access was recently "
                    "granted, please refresh your credentials.")
