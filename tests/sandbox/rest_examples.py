"""Helpers for replaying Azure/azure-rest-api-specs examples against the sandbox (see
test_conformance.py): the operation a request URL belongs to, the example's own subscription
swapped for ours, the request sent through the real azure-mgmt HTTP pipeline, and the shape of a
documented response compared with an answer (key paths and JSON types, never values)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.rest import HttpRequest

DATA = Path(__file__).parent.parent / "data" / "rest-examples"
HOST = "https://management.azure.com"


# ---- which operation a request is ---------------------------------------------------------

def operation_of(method: str, url: str) -> tuple[str, str, str]:
    """(METHOD, path pattern, api-version) of a request: subscription, resource group and every
    resource name become placeholders, so requests to different resources of one operation match."""
    path, _, query = url.partition("?")
    path = re.sub(r"^https?://[^/]+", "", path)
    version = next((q.split("=", 1)[1] for q in query.split("&") if q.lower().startswith("api-version=")), "-")
    segs = [s for s in path.split("/") if s]
    out: list[str] = []
    i = 0
    while i < len(segs):
        low = segs[i].lower()
        if low == "subscriptions" and i + 1 < len(segs):
            out += ["subscriptions", "{subscriptionId}"]
            i += 2
        elif low == "resourcegroups" and i + 1 < len(segs):
            out += ["resourceGroups", "{resourceGroupName}"]
            i += 2
        elif low == "providers" and i + 1 < len(segs):
            out += ["providers", segs[i + 1]]
            i += 2
            while i < len(segs) and segs[i].lower() != "providers":
                out.append(segs[i])  # a type segment, then its name (absent for a list or an action)
                if i + 1 < len(segs):
                    out.append("{name}")
                i += 2
        else:
            out.append(segs[i])
            i += 1
    return method.upper(), "/" + "/".join(out), version


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def localise(tree: Any, example_sub: str | None, sub: str) -> Any:
    """The example with its own subscription id replaced by ours (in paths and in the ids that
    body properties reference), so the references point at resources placed in our estate."""
    if not example_sub:
        return tree
    pattern = re.compile(r"(/?subscriptions/)" + re.escape(example_sub) + r"(?![\w-])", re.IGNORECASE)
    raw = json.dumps(tree)
    return json.loads(pattern.sub(lambda m: m.group(1) + sub, raw))


# ---- the real pipeline --------------------------------------------------------------------

class _Token:
    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


class Replayer:
    """Sends raw example requests through ResourceManagementClient's own pipeline (bearer token
    policy, retry, headers) and the sandbox's in-process transport."""

    def __init__(self, sb: Any, sub: str) -> None:
        from azure.mgmt.resource.resources import ResourceManagementClient

        self.client = ResourceManagementClient(_Token(sb.token), sub, transport=sb.transport(),
                                               polling_interval=0, retry_total=0)

    def send(self, method: str, path: str, version: str | None, body: Any = None,
             query: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        url = HOST + path + (f"?api-version={version}" if version else "")
        params = dict(query or {})
        req = (HttpRequest(method, url, json=body, params=params) if body is not None
               else HttpRequest(method, url, params=params))
        resp = self.client.send_request(req)
        text = resp.text()
        return resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, json.loads(text) if text else None

    def settle(self, headers: dict[str, str]) -> list[int]:
        """Follow the LRO monitor the sandbox gave until it ends, as ARMPolling would; the statuses."""
        url = headers.get("azure-asyncoperation") or headers.get("location")
        seen: list[int] = []
        for _ in range(20):
            if not url:
                break
            resp = self.client.send_request(HttpRequest("GET", url))
            seen.append(resp.status_code)
            text = resp.text()
            running = resp.status_code == 202 or (
                "azure-asyncoperation" in headers and text and json.loads(text).get("status") == "InProgress")
            if not running:
                break
            url = resp.headers.get("Location", url) if resp.status_code == 202 else url
        return seen


# ---- shapes ------------------------------------------------------------------------------

def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


# Objects whose keys are data (tag names, identity ids, webhook keys), not property names.
MAPS = {"tags", "userAssignedIdentities", "webhookProperties"}


def shape_gaps(documented: Any, answer: Any, path: str = "") -> set[str]:
    """Where `answer` lacks the documented shape: a documented key it does not have (the key's
    path, its subtree not looked into), or a value of another JSON type (`path: documented/got`).
    Array items are compared with the answer item of the same id or name (else position) or, when the
    answer has fewer, not at all (how many items a list holds is state, not shape). A documented null
    says nothing about the type; the keys of a map (MAPS) are data, so only its type counts."""
    gaps: set[str] = set()
    if documented is None:
        return gaps
    want, got = _kind(documented), _kind(answer)
    if want != got:
        return {f"{path or '<body>'}: {want}/{got}"}
    if isinstance(documented, dict) and path.rsplit(".", 1)[-1] not in MAPS:
        for k, v in documented.items():
            sub = f"{path}.{k}" if path else k
            if k not in answer:
                gaps.add(sub)
            else:
                gaps |= shape_gaps(v, answer[k], sub)
    elif isinstance(documented, list):
        for i, item in enumerate(documented[: len(answer)]):
            gaps |= shape_gaps(item, _counterpart(item, answer, i), f"{path}[]")
    return gaps


def _counterpart(item: Any, answer: list[Any], i: int) -> Any:
    """The answer's item with the documented item's id or name (lists come back in ARM's order,
    not the example's), else the one at the same position."""
    for field in ("id", "name"):
        value = item.get(field) if isinstance(item, dict) else None
        if isinstance(value, str):
            for other in answer:
                if isinstance(other, dict) and str(other.get(field, "")).lower() == value.lower():
                    return other
    return answer[i]


def leaves(tree: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Key path -> value of every scalar, array and empty object in a JSON object tree (keys may
    hold dots, as `odata.type` does, so paths are tuples)."""
    if isinstance(tree, dict) and tree:
        out: dict[tuple[str, ...], Any] = {}
        for k, v in tree.items():
            out.update(leaves(v, (*prefix, k)))
        return out
    return {prefix: tree}


MISSING = object()


def at(tree: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(tree, dict) or part not in tree:
            return MISSING
        tree = tree[part]
    return tree
