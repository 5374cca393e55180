"""Dotted property paths (`properties.networkAcls.defaultAction`) over ARM JSON dicts."""

from __future__ import annotations

import copy
from typing import Any

_MISSING = object()


def get_path(obj: Any, path: str, default: Any = None) -> Any:
    cur = obj
    for key in path.split("."):
        if not isinstance(cur, dict):
            return default
        # ARM property names are case-insensitive on the wire; try exact, then case-folded.
        if key in cur:
            cur = cur[key]
            continue
        low = key.lower()
        for k in cur:
            if k.lower() == low:
                cur = cur[k]
                break
        else:
            return default
    return cur


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    cur = obj
    for key in keys[:-1]:
        nxt = cur.get(key)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[key] = nxt
        cur = nxt
    cur[keys[-1]] = value


def nested(values: dict[str, Any]) -> dict[str, Any]:
    """{"properties.a.b": 1} -> {"properties": {"a": {"b": 1}}}"""
    out: dict[str, Any] = {}
    for path, value in values.items():
        set_path(out, path, copy.deepcopy(value))
    return out
