"""A proposed change read as a plan reads (Terraform's habit): a marker (`+` create, `~` update,
`-` delete), the resource named with its parents (`vnet-hub/GatewaySubnet`), one row per
attribute the change sets (before → after, in ARM's spelling), and the tally
`Plan: N to create, M to update, K to delete.` The text plan, the Markdown report and the
command line's apply confirmation all render changes through here, so they show the same diff."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from . import resource_id as rid
from .armjson import READ_ONLY_KEYS, format_path, literal
from .model import Change

MARKER = {"create": "+", "update": "~", "delete": "-"}
# A create's header already names these; repeating them as rows is noise.
_NAMED_IN_HEADER = frozenset({"id", "name", "type"})


@dataclass(frozen=True)
class Row:
    """One attribute: `marker` is `+` (set by a create), `~` (changed), `-` (removed by a delete)."""

    marker: str
    path: str
    before: Any
    after: Any

    def text(self, arrow: str = "→") -> str:
        if self.marker == "+":
            return f"+ {self.path}: {literal(self.after)}"
        if self.marker == "-":
            return f"- {self.path}: {literal(self.before)}"
        return f"~ {self.path}: {literal(self.before)} {arrow} {literal(self.after)}"


def marker(change: Change) -> str:
    return MARKER.get(change.action, "~")


def target(resource_id: str) -> str:
    """`vnet-hub/GatewaySubnet (subnets, rg-hub)`: the resource with its parents' names, its kind and
    where it lives; an extension resource says what it sits on."""
    if not resource_id:
        return "(scope)"
    p = rid.parse(resource_id)
    if not p.name:
        return resource_id
    tail = resource_id.strip("/").split("/")
    provs = [i for i, seg in enumerate(tail) if seg.lower() == "providers"]
    if not provs:  # a subscription or a resource group
        return f"{p.name} ({p.type.rsplit('/', 1)[-1]})"
    last = provs[-1]
    names = tail[last + 2:][1::2]  # namespace/type/name[/type/name…]: the names, outermost first
    kind = p.type.rsplit("/", 1)[-1]
    where = []
    scope = "/" + "/".join(tail[:last])
    if "/providers/" in scope.lower():  # an extension resource (a role assignment on an account)
        where.append(f"on {rid.parse(scope).name}")
    elif p.resource_group:
        where.append(p.resource_group)
    elif p.subscription:
        where.append(f"subscription {p.subscription[:8]}")
    return f"{'/'.join(names) or p.name} ({', '.join([kind, *where])})"


def rows(change: Change) -> list[Row]:
    """The attributes the change sets, each with its value before and after. An update shows
    only what differs between `before` and `after` (which hold only the properties it sets); a
    create every attribute it sends, a delete every attribute it takes away. Named lists (subnets,
    ip configurations) are compared element by element, so one added ASG is one row."""
    if change.action == "create":
        return [Row("+", path, None, a) for _, path, _, a in _pairs(None, _body(change.after), ()) if a is not None]
    if change.action == "delete":
        return [Row("-", path, b, None) for _, path, b, _ in _pairs(_body(change.before), None, ()) if b is not None]
    return [Row(m, path, b, a) for m, path, b, a in _pairs(change.before or {}, change.after or {}, ())
            if b != a]


def lines(change: Change, *, arrow: str = "→") -> list[str]:
    """The change's attribute rows as text, one per line; a change with none says so."""
    out = [r.text(arrow) for r in rows(change)]
    return out or ["(no attribute changes)"]


def header(change: Change) -> str:
    """`~ stfiles (storageAccounts, rg-storage): Require HTTPS on stfiles [disruptive]`."""
    flags = "".join([" [disruptive]" if change.disruptive else "", " [billable]" if change.billable else "",
                     " [one-way: undo cannot take it back]" if getattr(change, "one_way", "") else ""])
    return f"{marker(change)} {target(change.resource_id)}: {change.title or change.check}{flags}"


def tally(changes: Iterable[Change]) -> dict[str, int]:
    out = {"create": 0, "update": 0, "delete": 0}
    for c in changes:
        out[c.action if c.action in out else "update"] += 1
    return out


def summary_line(changes: Iterable[Change]) -> str:
    t = tally(changes)
    return f"Plan: {t['create']} to create, {t['update']} to update, {t['delete']} to delete."


# ---- walking ----------------------------------------------------------------------------------

def _named(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, dict) and isinstance(v.get("name"), str) for v in value)


def _by_name(items: Any) -> dict[str, Any]:
    return {str(v["name"]).lower(): v for v in items} if _named(items) else {}


def _show(path: tuple[str, ...]) -> str:
    """`properties.ipConfigurations[ipconfig1].properties.subnet`: keys joined with dots (a key
    holding a dot bracketed, as armjson writes it), list elements by name in brackets."""
    out = ""
    for seg in path:
        if seg.startswith("[") and seg.endswith("]"):
            out += seg
        else:
            key = format_path((seg,))
            out += key if key.startswith("[") or not out else "." + key
    return out


def _pairs(before: Any, after: Any, path: tuple[str, ...]) -> Iterator[tuple[str, str, Any, Any]]:
    """(marker, path, before, after) for every leaf on either side. Objects are walked; named
    lists are walked by element name (`routes[default]`), an element only one side has being one
    `+` or `-` row; anything else is a `~` leaf. Read-only fields (etags, provisioning states)
    are never rows: no change sets them."""
    def walkable(x: Any, y: Any, test: Any) -> bool:
        return (test(x) or x is None) and (test(y) or y is None) and bool(x or y)

    if walkable(before, after, lambda v: isinstance(v, dict)):
        b, a = before or {}, after or {}
        for k in [*b, *(k for k in a if k not in b)]:
            if k not in READ_ONLY_KEYS:
                yield from _pairs(b.get(k), a.get(k), (*path, str(k)))
        return
    if walkable(before, after, _named):
        b, a = _by_name(before), _by_name(after)
        for name in [*b, *(n for n in a if n not in b)]:
            x, y = b.get(name), a.get(name)
            seg = (*path, f"[{(x if x is not None else y or {}).get('name')}]")
            if x is not None and y is not None:  # the element on both sides: its attributes
                yield from _pairs({k: v for k, v in x.items() if k not in _NAMED_IN_HEADER},
                                  {k: v for k, v in y.items() if k not in _NAMED_IN_HEADER}, seg)
            else:  # added or removed whole; its name is in the path already
                yield "-" if y is None else "+", _show(seg), _element(x), _element(y)
        return
    yield "~", _show(path), before, after


def _element(item: dict[str, Any] | None) -> Any:
    return None if item is None else _clean({k: v for k, v in item.items() if k not in _NAMED_IN_HEADER})


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k not in READ_ONLY_KEYS}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _body(tree: dict[str, Any] | None) -> dict[str, Any]:
    """A whole resource without what the header names."""
    return {k: v for k, v in (tree or {}).items() if k not in _NAMED_IN_HEADER}
