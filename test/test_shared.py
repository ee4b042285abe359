"""The shared S3 section is byte-identical in every script that has it."""

from shared_section import CANONICAL, scripts_with_section


def test_every_script_carries_the_same_shared_s3_section():
    sections = scripts_with_section()
    assert CANONICAL in sections, "git-remote-s3 lost its shared S3 section markers"
    different = [name for name, text in sections.items() if text != sections[CANONICAL]]
    assert not different, f"run 'make sync-shared': {different} differ from {CANONICAL}"
