"""No secret reaches the journal, a plan output or a log: secrets are planted in every place an
estate keeps them (extension settings, protected settings, SAS URLs, tags, connection strings,
OS profile), the whole catalog is planned and applied through the real azure-mgmt clients, and
the journal's file bytes, the plan in every format and the captured log records are searched."""

from __future__ import annotations

import copy
import logging
import sqlite3

from conftest import SUB

from ztwizard import journal as J
from ztwizard.apply import apply_changes, start_session
from ztwizard.engine import inspect
from ztwizard.redact import REDACTED
from ztwizard.remedy import delete
from ztwizard.report import render
from ztwizard.undo import undo_changes

MARK = "SEKRIT"  # every planted secret carries it; nothing else in the estate does
RG_VM = f"/subscriptions/{SUB}/resourceGroups/rg-vm"
VM = f"{RG_VM}/providers/Microsoft.Compute/virtualMachines/vm-web"
SAS_URL = f"https://stblob01.blob.core.windows.net/scripts/run.sh?sv=2022-11-02&sp=r&sig={MARK}sig%3D"
CONN = f"DefaultEndpointsProtocol=https;AccountName=stblob01;AccountKey={MARK}key==;EndpointSuffix=core.windows.net"
SQL = f"Server=tcp:db.example.net;Database=app;User ID=app;Password={MARK}pw;"
SB = f"Endpoint=sb://bus.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={MARK}bus="
SECRET_TAGS = {"storageConnection": CONN, "sqlConnection": SQL, "busConnection": SB, "scriptUrl": SAS_URL,
               "dbPassword": f"{MARK}tagpw"}


def planted(estate: list[dict]) -> list[dict]:
    out = copy.deepcopy(estate)
    for res in out:
        res.setdefault("tags", {}).update(SECRET_TAGS)
        if res["id"].lower() == VM.lower():
            res["properties"]["osProfile"] = {"computerName": "vm-web", "adminUsername": "azureuser",
                                              "adminPassword": f"{MARK}admin", "customData": f"{MARK}cloudinit"}
        if res["id"].lower().endswith("/extensions/azuremonitorlinuxagent"):
            res["properties"]["settings"] = {"commandToExecute": f"curl -H 'x-key: {MARK}cmd' https://x",
                                             "fileUris": [SAS_URL], "script": f"{MARK}base64script"}
            res["properties"]["protectedSettings"] = {"storageAccountName": "stblob01",
                                                      "storageAccountKey": f"{MARK}ext=="}
    out.append({"id": f"{VM}/extensions/CustomScript", "location": "westeurope", "tags": dict(SECRET_TAGS),
                "properties": {"publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
                               "typeHandlerVersion": "2.1",
                               "settings": {"commandToExecute": f"./run.sh --token {MARK}tok", "fileUris": [SAS_URL]},
                               "protectedSettings": {"commandToExecute": f"./run.sh --pw {MARK}prot"}}})
    return out


def _journal_bytes(state) -> bytes:
    return b"".join(p.read_bytes() for p in state.iterdir() if p.name.startswith(J.DB_NAME) and p.is_file())


def test_planted_secrets_reach_no_journal_plan_or_log(world, small_estate, caplog):
    w = world(estate=planted(small_estate))
    assert MARK in str(w.sb.export()), "the secrets are in the estate ARM serves"
    caplog.set_level(logging.DEBUG, logger="ztwizard")
    caplog.set_level(logging.DEBUG, logger="azure")
    plan = inspect(w.gw)
    outputs = {fmt: render(plan, fmt) for fmt in ("text", "json", "markdown", "sarif")}
    changes = plan.changes()
    sid = start_session(w.journal, w.gw, changes)
    report = apply_changes(w.gw, w.journal, sid, changes, allow_disruptive=True, allow_cost=True)
    assert report.applied
    undo_changes(w.gw, w.journal, sid)
    w.journal.db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    found = {fmt: text.count(MARK) for fmt, text in outputs.items() if MARK in text}
    data = _journal_bytes(w.state_dir)
    found_journal = data.count(MARK.encode())
    found_logs = caplog.text.count(MARK)
    assert (found, found_journal, found_logs) == ({}, 0, 0), "secrets found: 0 expected"
    # not vacuous: before-images of resources holding the secrets were journaled, redacted
    db = sqlite3.connect(w.state_dir / J.DB_NAME)
    images = [r[0] for r in db.execute("SELECT before_image FROM changes WHERE before_image IS NOT NULL")]
    db.close()
    assert images and any(REDACTED in i and "storageConnection" in i for i in images)


def test_undo_says_which_secret_values_it_cannot_restore(world, small_estate):
    w = world(estate=planted(small_estate))
    ext = w.gw.read(f"{VM}/extensions/CustomScript")
    assert ext is not None
    ch = delete("vm-6d", ext, title="remove the CustomScript extension")
    sid = start_session(w.journal, w.gw, [ch])
    report = apply_changes(w.gw, w.journal, sid, [ch], verify=False)
    assert [o.result for o in report.outcomes] == ["applied"]
    assert w.gw.read(ext["id"]) is None
    undo = undo_changes(w.gw, w.journal, sid)
    [out] = undo.outcomes
    assert out.result == "undone"
    assert "could not be restored" in out.message and "properties.settings.commandToExecute" in out.message
    assert "tags.storageConnection" in out.message
    back = w.gw.read(ext["id"])
    assert back is not None and MARK not in str(back), "re-created without secrets, never with the marker"
    assert REDACTED not in str(back)


def test_the_cli_with_a_log_file_writes_no_planted_secret(tmp_path, small_estate):
    import json

    from ztwizard.cli import main

    estate = tmp_path / "planted.json"
    estate.write_text(json.dumps(planted(small_estate)))
    state, log = tmp_path / "state", tmp_path / "ztw.log"
    assert main(["sandbox", "reset", "--state-dir", str(state), "--estate", str(estate)]) == 0
    outputs = []
    for fmt in ("text", "json", "markdown", "sarif"):
        out = tmp_path / f"plan.{fmt}"
        assert main(["--state-dir", str(state), "--sandbox", "--log-file", str(log), "plan", "--format", fmt,
                     "--output", str(out)]) in (0, 2)
        outputs.append(out.read_text())
    code = main(["--state-dir", str(state), "--sandbox", "--log-file", str(log), "apply", "--yes",
                 "--allow-disruptive", "--allow-cost"])
    assert code in (0, 1)
    assert log.stat().st_size > 0, "the log recorded the run"
    found = {"log": log.read_text().count(MARK), "journal": _journal_bytes(state).count(MARK.encode()),
             "plans": sum(o.count(MARK) for o in outputs)}
    assert found == {"log": 0, "journal": 0, "plans": 0}
