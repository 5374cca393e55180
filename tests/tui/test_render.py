"""What the screens print: noise-free diffs, exact requests, glyphs that do not need colour."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ztwizard import remedy
from ztwizard.model import Change, Finding, StepResult
from ztwizard.tui.render import (
    GLYPH,
    count_widths,
    counts_text,
    diff_text,
    findings_text,
    request_text,
    short_name,
)

ACCOUNT = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/st1"
RES = {"id": ACCOUNT, "etag": '"e1"', "location": "westeurope",
       "properties": {"minimumTlsVersion": "TLS1_0", "allowBlobPublicAccess": True, "accessTier": "Hot"}}


def test_diff_shows_only_what_the_change_sets():
    change = remedy.patch("storage-1b", RES, {"properties.minimumTlsVersion": "TLS1_2"})
    text = diff_text(change).plain
    assert '-    "minimumTlsVersion": "TLS1_0"' in text
    assert '+    "minimumTlsVersion": "TLS1_2"' in text
    assert "accessTier" not in text and "allowBlobPublicAccess" not in text


def test_request_is_exact_even_for_a_full_put():
    change = remedy.put("spoke-x", RES, {"properties.accessTier": "Cool"})
    change.api_version = "2023-05-01"
    text = request_text(change, "https://management.azure.com/").plain
    first, *rest = text.splitlines()
    assert first == f"PUT https://management.azure.com{ACCOUNT}?api-version=2023-05-01"
    assert rest[0] == 'If-Match: "e1"'
    body = json.loads("\n".join(rest[1:]))
    assert body == change.body and "etag" not in body  # read-only fields are not sent back


def test_create_shows_everything_as_added_and_no_if_match():
    change = remedy.create("hub-3a", ACCOUNT + "x", {"location": "westeurope", "properties": {"routes": []}})
    assert all(line.startswith(("+", " ")) for line in diff_text(change).plain.splitlines() if line)
    assert "If-Match" not in request_text(change, "https://h").plain


def test_glyphs_are_distinct_without_colour():
    assert len(set(GLYPH.values())) == len(GLYPH)


def test_findings_are_grouped_per_resource_with_actual_and_expected():
    text = findings_text([
        Finding("storage-1b", ACCOUNT, "fail", "properties.minimumTlsVersion", "TLS1_0", "TLS1_2", "m"),
        Finding("storage-1a", ACCOUNT, "pass", "properties.supportsHttpsTrafficOnly", True, True, "ok"),
    ]).plain
    assert text.count("st1 (storageAccounts)") == 1
    assert "'TLS1_0' → expected 'TLS1_2'" in text


def test_short_names_say_whose_child_it_is():
    assert short_name(ACCOUNT + "/fileServices/default") == "st1/default (fileServices)"
    assert short_name("/subscriptions/s1/providers/Microsoft.Security/pricings/VirtualMachines") == \
        "VirtualMachines (pricings)"


def test_no_color_is_respected(make_app, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app()
    assert app.no_color


def test_engine_core_and_the_app_factory_import_without_textual():
    code = ("import sys; import ztwizard.engine, ztwizard.apply, ztwizard.undo, ztwizard.resume, "
            "ztwizard.core; from ztwizard.tui import make_app; sys.exit('textual' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


def test_change_round_trips_through_the_plan_json():
    change = remedy.patch("storage-1b", RES, {"properties.minimumTlsVersion": "TLS1_2"})
    assert Change.from_dict(json.loads(json.dumps(change.to_dict()))) == change


def _result(step: str, fail: int, passing: int) -> StepResult:
    findings = ([Finding("x", f"{ACCOUNT}{i}", "fail") for i in range(fail)]
                + [Finding("x", f"{ACCOUNT}{i}", "pass") for i in range(passing)])
    return StepResult(step, "storage", 1, "t", "fail" if fail else "pass", findings, [])


def test_checklist_counts_line_up_when_some_steps_count_hundreds():
    results = [_result("storage-1", 772, 324), _result("storage-3", 5, 35), _result("vm-1", 40, 0)]
    widths = count_widths(results)
    rows = [counts_text(r, widths).plain for r in results]
    assert rows == ["772✗  0! 324✓", "  5✗  0!  35✓", " 40✗  0!   0✓"]
    assert counts_text(results[1]).plain == " 5✗  0! 35✓", "a lone row keeps the narrow columns"
