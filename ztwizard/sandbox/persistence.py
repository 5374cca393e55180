"""Durability: the sandbox's state on disk (a snapshot, plus an append-only write log for large
estates), written before an answer leaves so that no acknowledged write is lost."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .store import Store, atomic_write_json

STATE_FORMAT = "ztwizard.sandbox/v1"


class Persistence:
    """The state every part of the sandbox shares, and how it is saved and loaded."""

    state_dir: Path | None
    tenant_id: str
    principals: dict[str, dict[str, Any]]
    store: Store
    ops: dict[str, dict[str, Any]]  # long-running operations by id
    power: dict[str, str]  # VM key -> PowerState/… code (absent: running)
    features: dict[str, dict[str, str]]  # subscription key -> feature -> registration state
    snapshot_threshold: int
    compact_every: int
    _seq: int
    _log_records: int
    _ops_changed: set[str]
    _graph_cache: dict[Any, tuple[int, list[str]]]
    _dirty: bool

    def _store_replaced(self) -> None:
        """Called whenever `store` is a new Store (load, reset): parts that watch it re-attach."""

    @property
    def state_path(self) -> Path | None:
        return self.state_dir / "sandbox" / "state.json" if self.state_dir else None

    @property
    def log_path(self) -> Path | None:
        return self.state_dir / "sandbox" / "state.log" if self.state_dir else None

    def _load(self) -> bool:
        path = self.state_path
        if path is None or not path.exists():
            return False
        try:
            data = json.loads(path.read_text())
            if data.get("format") != STATE_FORMAT:
                raise ValueError("unknown format")
            self.tenant_id = data["tenant_id"]
            self.principals = data["principals"]
            self.store = Store.from_snapshot(data)
            self._store_replaced()
            self.ops = data.get("ops", {})
            self.power = data.get("power", {})
            self.features = data.get("features", {})
            self._seq = int(data.get("seq", 0))
            self._log_records = 0
            self._graph_cache = {}
            self._replay()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"The sandbox state {path} is unreadable ({exc}).",
                             hint="Run `ztwizard sandbox reset` to start from a fresh estate.") from exc
        self.store.changed.clear()
        return True

    def _replay(self) -> None:
        """Apply the write log over the snapshot. A torn last line is a write that was never
        acknowledged (the answer waits for the fsync), so it is dropped."""
        log = self.log_path
        if log is None or not log.exists():
            return
        for line in log.read_bytes().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                break
            if rec["seq"] <= self._seq:
                continue
            for entry in rec["put"]:
                self.store.put(entry)
            for k in rec["del"]:
                self.store.delete(k)
            self.ops.update(rec["ops"])
            self.power = rec["power"]
            self.features = rec.get("features", self.features)
            self._seq = rec["seq"]
            self._log_records += 1

    def _save(self, full: bool = False) -> None:
        """Make every change durable before the answer leaves. Small estates rewrite the whole
        state file (atomic: temp file, fsync, rename); large ones append the changed entries to
        `state.log` (fsync) and fold it into the state file every `compact_every` writes."""
        path, log = self.state_path, self.log_path
        if path is None or log is None:
            self.store.changed.clear()
            return
        self._seq += 1
        if full or len(self.store) <= self.snapshot_threshold or self._log_records >= self.compact_every:
            finished = [k for k, op in self.ops.items() if op["status"] != "InProgress"]
            for k in finished[:-2000]:
                del self.ops[k]
            data = {"format": STATE_FORMAT, "seq": self._seq, "tenant_id": self.tenant_id,
                    "principals": self.principals, **self.store.snapshot(), "ops": self.ops, "power": self.power,
                    "features": self.features}
            atomic_write_json(path, data)
            log.unlink(missing_ok=True)
            self._log_records = 0
        else:
            changed = self.store.changed
            rec = {"seq": self._seq,
                   "put": [self.store.entries[k] for k in sorted(changed) if k in self.store.entries],
                   "del": [k for k in sorted(changed) if k not in self.store.entries],
                   "ops": {i: self.ops[i] for i in sorted(self._ops_changed) if i in self.ops},
                   "power": self.power, "features": self.features}
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, json.dumps(rec, separators=(",", ":")).encode() + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            self._log_records += 1
        self.store.changed.clear()
        self._ops_changed.clear()
