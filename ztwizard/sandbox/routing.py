"""Which handler answers a request: a route table over the path's segments (ARM's own endpoints,
then anything under a `providers` segment), and, under a provider, a table by the shape of the
path (a collection, a resource, an action on a resource, a view of it) and the method. A new
endpoint is one more row: put specific routes before the generic provider routes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import deployments, management, policy
from .request import Reply, Request, arm_error, method_not_allowed, not_found, require_rg
from .store import RG_TYPE, parse
from .writes import Writes

ANY_METHOD: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Route:
    """`pattern`: lower-case literal segments, "*" for any one segment, a last "**" for any
    number (at least one) of further segments. `handler` names the Sandbox method, (ctx) -> Reply."""

    pattern: tuple[str, ...]
    methods: frozenset[str]
    handler: str

    def matches(self, low: list[str]) -> bool:
        pat = self.pattern
        if pat and pat[-1] == "**":
            if len(low) < len(pat):
                return False
            pat = pat[:-1]
            low = low[:len(pat)]
        elif len(low) != len(pat):
            return False
        return all(p in ("*", s) for p, s in zip(pat, low, strict=True))


def _get(*pattern: str, handler: str) -> Route:
    return Route(tuple(pattern), frozenset({"GET"}), handler)


# First match wins; a matching path with another method is 405.
ROUTES: list[Route] = [
    _get("sandbox", "operations", "*", handler="_monitor"),
    _get("sandbox", "operationresults", "*", handler="_monitor"),
    Route(("providers", "microsoft.resourcegraph", "resources"), frozenset({"POST"}), "_graph"),
    _get("subscriptions", handler="_list_subscriptions"),
    _get("subscriptions", "*", handler="_get_subscription"),
    _get("subscriptions", "*", "providers", "microsoft.features", "features", handler="_list_features"),
    _get("subscriptions", "*", "providers", "microsoft.features", "providers", "*", "features",
         handler="_list_features"),
    _get("subscriptions", "*", "providers", "microsoft.features", "providers", "*", "features", "*",
         handler="_get_feature"),
    Route(("subscriptions", "*", "providers", "microsoft.features", "providers", "*", "features", "*", "register"),
          frozenset({"POST"}), "_register_feature"),
    Route(("subscriptions", "*", "providers", "microsoft.features", "providers", "*", "features", "*",
           "unregister"), frozenset({"POST"}), "_register_feature"),
    _get("subscriptions", "*", "providers", "microsoft.compute", "skus", handler="_skus"),
    Route(("subscriptions", "*", "providers", "**"), ANY_METHOD, "_provider"),
    Route(("subscriptions", "*", "resourcegroups", "*", "providers", "**"), ANY_METHOD, "_provider"),
    _get("subscriptions", "*", "resourcegroups", handler="_list_resource_groups"),
    _get("subscriptions", "*", "resources", handler="_list_subscription_resources"),
    Route(("subscriptions", "*", "resourcegroups", "*"), ANY_METHOD, "_resource_group"),
    _get("subscriptions", "*", "resourcegroups", "*", "resources", handler="_list_group_resources"),
]

# Under a provider, by the shape of the path and the method. Shapes: "collection" (…/{type}),
# "resource" (…/{type}/{name}), "action" (POST …/{type}/{name}/{action}), "view" (GET …/{name}/{view}).
PROVIDER_ROUTES: dict[tuple[str, str], str] = {
    ("collection", "GET"): "_list_collection",
    ("resource", "GET"): "_get_resource",
    ("resource", "HEAD"): "_get_resource",
    ("resource", "PUT"): "_write",
    ("resource", "PATCH"): "_write",
    ("resource", "DELETE"): "_delete",
    ("action", "POST"): "_action",
    ("view", "GET"): "_view",
}
# Views of a resource (GET …/{name}/{view}): view segment -> handler.
VIEWS: dict[str, str] = {"instanceview": "_instance_view"}
# Actions (POST …/{name}/{action}): (resource type, action), lower case -> handler.
ACTIONS: dict[tuple[str, str], str] = {
    **{("microsoft.compute/virtualmachines", verb): "_vm_action"
       for verb in ("deallocate", "start", "poweroff", "restart")},
    ("microsoft.storage/storageaccounts", "regeneratekey"): "_regenerate_key",
}


class Router(Writes):
    routes: list[Route] = ROUTES
    provider_routes: dict[tuple[str, str], str] = PROVIDER_ROUTES
    actions: dict[tuple[str, str], str] = ACTIONS

    def _handler(self, name: str) -> Callable[[Request], Reply]:
        handler: Callable[[Request], Reply] = getattr(self, name)
        return handler

    def _route(self, ctx: Request) -> Reply:
        low = ctx.low
        if len(low) >= 2 and low[0] == "subscriptions" and low[1] not in self.store.subscriptions:
            raise arm_error(404, "SubscriptionNotFound", f"The subscription '{ctx.segs[1]}' could not be found.")
        answer = (management.route(self, ctx) or policy.route(self, ctx)  # APIs in modules of their own
                  or deployments.route(self, ctx))
        if answer is not None:
            return answer
        for route in self.routes:
            if route.matches(low):
                if route.methods and ctx.method not in route.methods:
                    raise method_not_allowed(ctx)
                return self._handler(route.handler)(ctx)
        raise arm_error(404, "NotFound", f"No route for '{ctx.path}'.")

    # ---- under a provider --------------------------------------------------------------
    def _provider_parts(self, ctx: Request) -> tuple[str, str, list[str]]:
        """(scope, namespace, the segments after it) for the last `providers` segment."""
        segs, low = ctx.segs, ctx.low
        last = max(i for i, s in enumerate(low) if s == "providers")
        rest = segs[last + 1:]
        if len(rest) < 2:
            raise arm_error(404, "NotFound", f"No route for '{ctx.path}'.")
        return "/" + "/".join(segs[:last]), rest[0], rest[1:]

    def _provider(self, ctx: Request) -> Reply:
        segs, low = ctx.segs, ctx.low
        if len(low) >= 4 and low[2] == "resourcegroups":
            require_rg(self.store, segs[1], segs[3])
        scope, _ns, tail = self._provider_parts(ctx)
        self._default_services(ctx)
        if len(tail) % 2 == 1:
            shape = "collection"
            if len(tail) >= 3 and ctx.method == "POST":
                shape = "action"
            elif len(tail) >= 3 and ctx.method == "GET" and tail[-1].lower() in VIEWS:
                shape = "view"
        else:
            shape = "resource"
            self._require_parents(ctx, scope, tail)
        name = self.provider_routes.get((shape, ctx.method))
        if name is None:
            raise method_not_allowed(ctx)
        return self._handler(name)(ctx)

    def _require_parents(self, ctx: Request, scope: str, tail: list[str]) -> None:
        segs = ctx.segs
        # `locations/{region}` (JIT policies, for one) is a path segment, never a resource
        if len(tail) > 2 and tail[-4].lower() != "locations" and self.store.get("/" + "/".join(segs[:-2])) is None:
            pid = "/" + "/".join(segs[:-2])
            if ctx.method in ("PUT", "PATCH"):
                raise arm_error(404, "ParentResourceNotFound",
                                f"Can not perform requested operation on nested resource. Parent resource "
                                f"'{parse(pid).name}' not found.")
            raise not_found(pid)
        if len(tail) == 2 and scope.count("/") > 4 and self.store.get(scope) is None \
                and parse(scope).type != RG_TYPE:
            raise not_found(scope)

    def _list_collection(self, ctx: Request) -> Reply:
        scope, ns, tail = self._provider_parts(ctx)
        rtype = "/".join([ns, *tail[0::2]])
        parent = scope if len(tail) == 1 else "/".join([scope, "providers", ns, *tail[:-1]])
        return self._list(ctx, parent, rtype, child=len(tail) > 1)

    def _view(self, ctx: Request) -> Reply:
        return self._handler(VIEWS[ctx.low[-1]])(ctx)

    def _action(self, ctx: Request) -> Reply:
        resource_id, action = "/" + "/".join(ctx.segs[:-1]), ctx.segs[-1]
        name = self.actions.get((parse(resource_id).type.lower(), action.lower()))
        if name is None:
            if self.store.get(resource_id) is None:
                raise not_found(resource_id)
            raise arm_error(400, "InvalidResourceOperation", f"The action '{action}' is not supported by the sandbox.")
        return self._handler(name)(ctx)


__all__: list[Any] = ["ACTIONS", "ROUTES", "PROVIDER_ROUTES", "Route", "Router", "VIEWS"]
