"""The command line's contract for bad input: one sentence, a hint, exit 2, no traceback."""

import pytest

from ztwizard.cli import main


@pytest.mark.parametrize("argv, needle", [
    (["plan", "--step", "storage-9"], "Unknown step id 'storage-9'"),
    (["plan", "--check", "hub-3z"], "Unknown check id 'hub-3z'"),
    (["-s", "prod-subscription", "plan"], "is not a GUID"),
    (["plan", "-s", "not-a-guid"], "is not a GUID"),
])
def test_bad_input_is_one_sentence_and_exit_2(argv, needle, capsys, tmp_path):
    code = main(["--state-dir", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err
    assert "hint:" in err
    assert "Traceback" not in err


def test_unknown_step_suggests_the_closest_id(capsys, tmp_path):
    assert main(["--state-dir", str(tmp_path), "plan", "--step", "storage1"]) == 2
    assert "Did you mean 'storage-1'?" in capsys.readouterr().err


def test_estate_and_sandbox_together_is_a_usage_error(capsys, tmp_path):
    estate = tmp_path / "e.json"
    estate.write_text("[]")
    assert main(["--state-dir", str(tmp_path), "--sandbox", "--estate", str(estate), "plan"]) == 2
    assert "cannot be combined" in capsys.readouterr().err


def test_output_to_missing_directory_is_refused_without_writing(capsys, tmp_path):
    from ztwizard.cli import write_output
    from ztwizard.errors import UsageError

    with pytest.raises(UsageError):
        write_output("x", str(tmp_path / "nope" / "plan.json"))
    assert not (tmp_path / "nope").exists()


# ---- apply --param: edit a proposed change before it is applied --------------------------------

@pytest.fixture
def reference_state(tmp_path, monkeypatch):
    """A state dir whose in-process sandbox holds the reference estate."""
    monkeypatch.setenv("ZTWIZARD_SANDBOX_IN_PROCESS", "1")
    monkeypatch.delenv("ZTWIZARD_STATE_DIR", raising=False)
    return tmp_path


def _spoke_3a_create(state, capsys):
    """The reference estate's spoke-3a NSG create for snet-data, and the association naming it."""
    import json

    assert main(["--sandbox", "--state-dir", str(state), "plan", "--check", "spoke-3a", "--format", "json"]) == 0
    changes = [c for s in json.loads(capsys.readouterr().out)["steps"] for c in s["changes"]]
    association = next(c for c in changes if c["action"] == "update" and c["resource_id"].endswith("/snet-data"))
    (create,) = [c for c in changes if c["id"] in association["depends_on"]]
    assert create["action"] == "create" and "name" in create["params"]
    return create, association


def _read(state, resource_id):
    from ztwizard.gateway import Gateway
    from ztwizard.target import sandbox_target

    return Gateway(sandbox_target(state)).read(resource_id)


def test_apply_param_creates_the_edited_name(reference_state, capsys):
    create, association = _spoke_3a_create(reference_state, capsys)
    new_id = create["resource_id"].rsplit("/", 1)[0] + "/nsg-data-edited"
    code = main(["--sandbox", "--state-dir", str(reference_state), "apply", "--yes", "--check", "spoke-3a",
                 "--param", f"{create['id']}.name=nsg-data-edited"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "applied  spoke-3a" in out
    assert _read(reference_state, new_id) is not None  # the edited name was created
    assert _read(reference_state, create["resource_id"]) is None  # the proposed one was not
    subnet = _read(reference_state, association["resource_id"])
    assert subnet["properties"]["networkSecurityGroup"]["id"].lower() == new_id.lower()  # the association follows


@pytest.mark.parametrize("param, needle", [
    ("nsg-name", "is not CHANGE.NAME=VALUE"),
    ("spoke-3a-0000000000=value", "is not CHANGE.NAME=VALUE"),
    (".name=x", "is not CHANGE.NAME=VALUE"),
    ("spoke-3a-0000000000.=x", "is not CHANGE.NAME=VALUE"),
])
def test_apply_param_bad_syntax_is_exit_2_with_a_hint(param, needle, reference_state, capsys):
    code = main(["--sandbox", "--state-dir", str(reference_state), "apply", "--yes", "--param", param])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and "hint: Write --param CHANGE.NAME=VALUE" in err and "Traceback" not in err
    assert not (reference_state / "journal.sqlite3").exists()  # refused before anything was opened


def test_apply_param_naming_an_unknown_change_or_parameter_writes_nothing(reference_state, capsys):
    from ztwizard import journal as J

    create, _ = _spoke_3a_create(reference_state, capsys)
    base = ["--sandbox", "--state-dir", str(reference_state), "apply", "--yes", "--check", "spoke-3a"]
    assert main([*base, "--param", "spoke-3a-0000000000.name=x"]) == 2
    err = capsys.readouterr().err
    assert "No proposed change has the id 'spoke-3a-0000000000'" in err and "hint:" in err
    assert main([*base, "--param", f"{create['id']}.colour=blue"]) == 2
    err = capsys.readouterr().err
    assert "no parameter 'colour'" in err and "name" in err
    with J.Journal(reference_state, write=False) as journal:
        assert journal.sessions() == []  # refused before a session began
    assert _read(reference_state, create["resource_id"]) is None


# ---- apply meets someone else's operation ------------------------------------------------------

def test_a_resource_busy_with_someone_elses_operation_fails_its_change_saying_so(reference_state, capsys,
                                                                                  arm_client):
    """Someone else's operation on vm-web-02 is still running (a PATCH that does not finish), so
    ARM answers the extension's PUT with 409 AnotherOperationInProgress through every retry: that
    change fails with ARM's message, the others apply, and the run says why in one sentence with
    what to do (exit 1, no traceback)."""
    from azure.mgmt.compute import ComputeManagementClient

    from ztwizard.sandbox import Sandbox
    from ztwizard.sandbox.estates.reference import WORKLOAD_SUB

    sb = Sandbox(reference_state, faults="lro-hang:1")  # its operations never finish
    compute = arm_client(ComputeManagementClient, sb, WORKLOAD_SUB)
    compute.virtual_machines.begin_update("rg-vms", "vm-web-02", {"tags": {"backup": "running"}}, polling=False)
    del sb, compute  # the wizard's own in-process sandbox loads the state, the operation still running

    code = main(["--sandbox", "--state-dir", str(reference_state), "apply", "--yes", "--check", "vm-7a"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.startswith("ztwizard: error: 1 change(s) failed because another operation, not one this run "
                          "started, was still running on the resource (ARM's AnotherOperationInProgress); "
                          "1 applied and 0 skipped"), err
    assert "hint: Wait until the other operation has finished" in err and "Traceback" not in err
    (failed,) = [line for line in out.splitlines() if line.strip().startswith("failed")]
    assert "vm-web-02" in failed and "IaaSAntimalware" in failed
    assert "another operation was still running on it after the retries" in failed
    assert "is still in progress" in failed, "ARM's own message is kept"
    assert any(line.strip().startswith("applied") and "vm-sql-01" in line for line in out.splitlines())
