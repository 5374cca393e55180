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
