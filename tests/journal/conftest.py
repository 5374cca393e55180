"""A world for journal tests: an in-process sandbox, a gateway on it through the real azure-mgmt
clients, and a journal in a temporary state dir."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import small_estate  # tests/conftest.py

from ztwizard.gateway import Gateway
from ztwizard.journal import Journal
from ztwizard.sandbox import Sandbox
from ztwizard.target import in_process_target

# What ARM changes on every write. resourceGuid is server-assigned and kept by real ARM across a
# PUT; the sandbox drops it when a PUT body omits it, so it is left out of comparisons too.
VOLATILE = {"etag", "provisioningState", "resourceGuid"}


def comparable(export: list[dict[str, Any]]) -> dict[str, Any]:
    """An export keyed by id, without what ARM changes on every write (etags, provisioning states)
    and with explicit nulls dropped (ARM treats null and absent alike)."""

    def strip(o: Any) -> Any:
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k not in VOLATILE and v is not None}
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o

    return {r["id"].lower(): strip(r) for r in export}


@dataclass
class World:
    sb: Any
    gw: Gateway
    journal: Journal
    state_dir: Path

    def gateway(self, **kw: Any) -> Gateway:
        return Gateway(in_process_target(self.sb, **kw))


@pytest.fixture
def world(tmp_path):
    def make(estate: Any = None, **knobs: Any) -> World:
        knobs.setdefault("lro_seconds", 0)
        sb = Sandbox(None, estate=small_estate() if estate is None else estate, **knobs)
        state = tmp_path / "state"
        w = World(sb, Gateway(in_process_target(sb)), Journal(state), state)
        made.append(w)
        return w

    made: list[World] = []
    yield make
    for w in made:
        w.journal.close()
