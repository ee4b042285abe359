"""The README walkthroughs, as shell scripts in test/scenarios/, run for real."""

from pathlib import Path

import pytest

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.sh"))


@pytest.mark.parametrize("script", SCENARIOS, ids=[s.stem for s in SCENARIOS])
def test_walkthrough_runs_as_the_readme_says(world, script, helper_bin):
    result = world.run("bash", script, env={"DEMO_PREFIX": world.prefix,
                                            "DEMO_BIN": str(helper_bin)})
    assert "it works." in result.stdout
    assert "fatal:" not in result.stdout
