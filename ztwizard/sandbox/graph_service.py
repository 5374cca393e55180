"""Resource Graph (`POST /providers/Microsoft.ResourceGraph/resources`): the query shapes of
graph.py answered from the store, with `$skipToken` paging and table or object-array results."""

from __future__ import annotations

import bisect
from typing import Any

from . import graph, management
from .reads import Reads
from .request import Reply, Request, arm_error
from .store import key, parse


class GraphService(Reads):
    tenant_id: str

    def _graph_ids(self, q: graph.Query, subs: set[str]) -> list[str]:
        """Matching keys in result order, cached until the next write (paging re-asks often)."""
        sig = (q.signature(), tuple(sorted(subs)))
        hit = self._graph_cache.get(sig)
        if hit is not None and hit[0] == self.store.version:
            return hit[1]
        type_filter = next((vals for col, vals in q.filters if col == "type"), None)
        keys = [k for t in type_filter for k in self.store.of_type(t)] if type_filter is not None \
            else list(self.store.entries)
        out = []
        for k in keys:
            e = self.store.entries[k]
            if graph.table_of(e["type"]) != q.table:
                continue
            if (parse(e["id"]).subscription or "").lower() not in subs:
                continue
            if graph.matches(e, q):
                out.append(k)
        out.sort(reverse=q.descending)
        if len(self._graph_cache) > 64:
            self._graph_cache.clear()
        self._graph_cache[sig] = (self.store.version, out)
        return out

    def _graph(self, ctx: Request) -> Reply:
        req = ctx.json()
        if not isinstance(req, dict) or not isinstance(req.get("query"), str):
            raise arm_error(400, "InvalidRequestContent", "The request needs a `query` string.")
        try:
            q = graph.parse_query(req["query"])
            opts = req.get("options") or {}
            after = graph.decode_token(opts["$skipToken"]) if opts.get("$skipToken") else None
        except graph.InvalidQuery as exc:
            raise arm_error(400, "InvalidQuery", f"Query is invalid: {exc}") from exc
        top = opts.get("$top") or 100
        try:
            top = max(1, min(1000, int(top)))
        except (TypeError, ValueError) as exc:
            raise arm_error(400, "InvalidQuery", "Query is invalid: $top must be a number.") from exc
        skip = int(opts.get("$skip") or 0)
        subs = req.get("subscriptions")
        wanted_subs = {s.lower() for s in subs} if subs else set(self.store.subscriptions)
        if req.get("managementGroups") and not subs:  # the scope of a query without subscriptions
            wanted_subs = management.subscriptions_under(management.groups_of(self),
                                                         [str(g) for g in req["managementGroups"]])
        ids = self._graph_ids(q, wanted_subs)
        total = len(ids)
        if after is not None:
            # ids are sorted lower-cased ids; the token is the last id of the previous page
            if q.descending:
                start = next((i for i, x in enumerate(ids) if x < after), len(ids))
            else:
                start = bisect.bisect_right(ids, after)
            ids = ids[start:]
        elif skip:
            ids = ids[skip:]
        rows = [self.store.entries[k] for k in ids[: top + 1]]
        page, more = rows[:top], len(rows) > top
        data = [graph.row(self.compose(e, for_graph=True), self.tenant_id) for e in page]
        body: dict[str, Any] = {"totalRecords": total, "count": len(data), "resultTruncated": "false",
                                "facets": []}
        if more:
            body["$skipToken"] = graph.encode_token(key(page[-1]["id"]))
        if (opts.get("resultFormat") or "objectArray").lower() == "table":
            body["data"] = {"columns": [{"name": c, "type": "object"} for c in graph.COLUMNS],
                            "rows": [[r[c] for c in graph.COLUMNS] for r in data]}
        else:
            body["data"] = data
        quota = {} if getattr(self, "arm_throttle", None) else {"x-ms-user-quota-remaining": "14",
                                                                 "x-ms-user-quota-resets-after": "00:00:05"}
        return Reply(200, body, quota)  # under throttle="arm", throttle.py sends the real quota
