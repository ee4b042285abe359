"""The shared sections are byte-identical in every script that should have them."""

import subprocess
import sys

import pytest

from shared_section import CANONICAL, ROOT, SECTIONS, markers, scripts_with_section


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_every_script_carries_the_same_shared_section(name):
    sections = scripts_with_section(name)
    assert set(sections) == set(SECTIONS[name]), \
        f"the shared {name} section is missing from {set(SECTIONS[name]) - set(sections)}"
    different = [script for script, text in sections.items() if text != sections[CANONICAL]]
    assert not different, (
        f"the shared {name} section of {different} differs from {CANONICAL}'s, which is "
        f"the canonical copy: make the change in {CANONICAL}, then run make sync-shared")


def test_sync_refuses_to_erase_an_edit_made_in_a_copy(tmp_path):
    """make sync-shared copies the canonical section over stale copies only."""
    tree = tmp_path / "tree"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(tree)],
                   check=True)
    for name in ("git-remote-s3", "lfs-s3-py", "git-s3", "test/shared_section.py"):
        (tree / name).write_bytes((ROOT / name).read_bytes())  # the work tree as it is
    subprocess.run(["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-qam", "as now", "--allow-empty"], check=True)
    begin, _ = markers("S3")

    def sync():
        return subprocess.run([sys.executable, str(tree / "test" / "shared_section.py")],
                              capture_output=True, text=True)

    canonical = tree / CANONICAL
    canonical.write_text(canonical.read_text().replace(begin, begin + "# new line\n"))
    synced = sync()
    assert synced.returncode == 0
    assert "updated the shared S3 section in lfs-s3-py" in synced.stdout
    assert "# new line" in (tree / "lfs-s3-py").read_text()

    subprocess.run(["git", "-C", str(tree), "checkout", "-q", "."], check=True)
    copy = tree / "git-s3"
    copy.write_text(copy.read_text().replace(begin, begin + "# edited in a copy\n"))
    canonical.write_text(canonical.read_text().replace(begin, begin + "# new line\n"))
    refused = sync()
    assert refused.returncode == 1
    assert "+# edited in a copy" in refused.stderr
    assert "the shared S3 section of git-s3 was edited" in refused.stderr
    assert f"{CANONICAL} holds the canonical copy" in refused.stderr
    assert "# edited in a copy" in copy.read_text()  # nothing erased
