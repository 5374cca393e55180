"""The estates the sandbox can start from: the reference landing zone, a generated one of any
size, or an exported estate file. All three yield the same thing: a fresh list of ARM wire-JSON
resources, children as their own entries, ready for the sandbox to store."""

from __future__ import annotations

import os
import re
from typing import Any

from ...errors import UsageError

SCALE_MAX = 2_000_000
_SCALE = re.compile(r"^scale:(.*)$", re.IGNORECASE)


def load_estate(spec: str) -> list[dict[str, Any]]:
    """`reference`, `scale:N` or the path of an estate file -> resources (a new list every call)."""
    if not isinstance(spec, str) or not spec.strip():
        raise UsageError("No estate given.", "Use --estate reference, --estate scale:N or --estate FILE.")
    text = spec.strip()
    if text.lower() == "reference":
        from .reference import build
        return build()
    m = _SCALE.match(text)
    if m and not os.path.exists(text):
        count = m.group(1).strip().replace("_", "")
        if not count.isdigit() or int(count) < 1:
            raise UsageError(f"Estate {spec!r} needs a positive whole number after 'scale:'.",
                             "For example --estate scale:5000.")
        if int(count) > SCALE_MAX:
            raise UsageError(f"Estate {spec!r} asks for more than {SCALE_MAX:,} resources.",
                             f"Use at most scale:{SCALE_MAX}.")
        from .scale import build as build_scale
        return build_scale(int(count))
    from ...estate import load_estate_file
    if not os.path.exists(text) and os.sep not in text and "." not in text:
        raise UsageError(f"Unknown estate {spec!r}.",
                         "Use reference, scale:N, or the path of an estate file (JSON).")
    return load_estate_file(text)


__all__ = ["load_estate"]
