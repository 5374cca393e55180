"""A change whose prerequisite lives in a step that was not selected is skipped with the step to add."""

from ztwizard.cli import main


def test_prerequisite_from_an_unselected_step_is_named_not_guessed(capsys, tmp_path):
    state = str(tmp_path / "state")
    code = main(["--state-dir", state, "--sandbox", "apply", "--step", "spoke-5", "--yes",
                 "--allow-disruptive", "--allow-cost"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 1, out  # product.md §3: changes left skipped for unmet dependencies exit 1
    assert "skipped because a change they depend on was not applied" in captured.err
    flow_logs = [line for line in out.splitlines() if "spoke-5d" in line]
    assert flow_logs and all("skipped" in line and "--step hub-4" in line for line in flow_logs)
    # with the prerequisite's step included, the flow logs go in after the watcher
    code = main(["--state-dir", state, "--sandbox", "apply", "--step", "hub-4", "--step", "spoke-5", "--yes",
                 "--allow-disruptive", "--allow-cost"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert any("applied" in line and "spoke-5d" in line for line in out.splitlines())
