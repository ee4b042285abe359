"""The shared sections are byte-identical in every script that should have them."""

import pytest

from shared_section import CANONICAL, SECTIONS, scripts_with_section


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_every_script_carries_the_same_shared_section(name):
    sections = scripts_with_section(name)
    assert set(sections) == set(SECTIONS[name]), \
        f"the shared {name} section is missing from {set(SECTIONS[name]) - set(sections)}"
    different = [script for script, text in sections.items() if text != sections[CANONICAL]]
    assert not different, f"run 'make sync-shared': {different} differ from {CANONICAL}"
