"""Resource Graph (`POST /providers/Microsoft.ResourceGraph/resources`): the query shapes of
graph.py answered from the store, with `$skipToken` paging and table or object-array results.

Resource Graph is an index that lags the providers (notes §6): with `graph_lag_ms` > 0 a write
shows in query results only that long after ARM answered it; until then a query sees the
resource as it was (or not at all, for a create). Persisted state is not lagged: after a
restart the index has caught up."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

from . import graph, management
from .model import clone
from .reads import Reads
from .request import Reply, Request, arm_error
from .store import key, parse


class GraphService(Reads):
    tenant_id: str
    graph_lag: float  # seconds
    clock: Callable[[], float]  # monotonic seconds
    # key -> (clock time of a write, the entry before it), oldest first, while within the lag
    _graph_shadow: dict[str, list[tuple[float, dict[str, Any] | None]]]

    def _store_replaced(self) -> None:
        self._graph_shadow = {}
        self.store.observer = self._graph_observe if self.graph_lag > 0 else None

    def _graph_observe(self, k: str, before: dict[str, Any] | None) -> None:
        self._graph_shadow.setdefault(k, []).append((self.clock(), clone(before) if before else None))

    def _graph_entry(self, k: str) -> dict[str, Any] | None:
        """The entry as the index shows it now: the before-image of the oldest write still within
        the lag, else the stored entry."""
        hist = self._graph_shadow.get(k)
        return hist[0][1] if hist else self.store.entries.get(k)

    def _graph_catch_up(self) -> None:
        cutoff = self.clock() - self.graph_lag
        for k in list(self._graph_shadow):
            pending = [(t, b) for t, b in self._graph_shadow[k] if t > cutoff]
            if pending:
                self._graph_shadow[k] = pending
            else:
                del self._graph_shadow[k]

    def _graph_ids(self, q: graph.Query, subs: set[str]) -> list[str]:
        """Matching keys in result order, cached until the next write (paging re-asks often)."""
        self._graph_catch_up()
        sig = (q.signature(), tuple(sorted(subs)))
        hit = self._graph_cache.get(sig)
        if hit is not None and hit[0] == self.store.version and not self._graph_shadow:
            return hit[1]
        type_filter = next((vals for col, vals in q.filters if col == "type"), None)
        keys = [k for t in type_filter for k in self.store.of_type(graph.STORE_TYPE_NAMES.get(t, t))] \
            if type_filter is not None else list(self.store.entries)
        if self._graph_shadow:
            keys = sorted(set(keys) | set(self._graph_shadow))
        out = []
        for k in keys:
            e = self._graph_entry(k)
            if e is None or (type_filter is not None and graph.graph_type(e["type"]) not in type_filter):
                continue
            if graph.table_of(e["type"]) != q.table:
                continue
            if (parse(e["id"]).subscription or "").lower() not in subs:
                continue
            if graph.matches(e, q):
                out.append(k)
        out.sort(reverse=q.descending)
        if len(self._graph_cache) > 64:
            self._graph_cache.clear()
        if not self._graph_shadow:  # a lagging answer changes with time alone: not cached
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
        rows = [e for k in ids[: top + 1] if (e := self._graph_entry(k)) is not None]
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
