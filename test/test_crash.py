"""A push killed with SIGKILL at each phase leaves the old or the new state, never a mix.

GIT_TEST_S3_KILL_AT is the helper's test-only hook (see git-remote-s3 --help)."""

import os

import pytest

# Every guarantee holds for encrypted repositories too (test_encryption.py), and for
# refs kept in tables (test_refs.py).
pytestmark = pytest.mark.parametrize("world", ["plain", "encrypted", "tables"],
                                    indirect=True)

PHASES = {"upload": "old", "uploaded": "old", "staged": "old", "committed": "new"}


def bundles_on_bucket(world):
    return sorted(k for k in world.keys() if k.startswith("bundles/"))


@pytest.mark.early
@pytest.mark.parametrize("phase", PHASES)
def test_push_killed_at_each_phase(world, phase):
    work = world.repo()
    world.git("push", "-q", "-u", "origin", "main", cwd=work)
    old = world.rev(work, "HEAD")
    # Over the multipart threshold, so that 'upload' dies between two parts; the other
    # phases need no more than a small commit.
    size = 24 * 1024 * 1024 if phase == "upload" else 1000
    new = world.commit(work, "new", {"new.bin": os.urandom(size)})
    stored = bundles_on_bucket(world)

    world.git("push", "origin", "main", cwd=work, ok=False, env={"GIT_TEST_S3_KILL_AT": phase})
    expected = {"old": old, "new": new}[PHASES[phase]]
    assert world.remote_refs()["refs/heads/main"] == expected
    # The log says what the refs say: the push's entry landed with it, or not at all.
    assert world.manifest()["log"][-1]["refs"]["refs/heads/main"][1] == expected
    if phase == "upload":
        assert bundles_on_bucket(world) == stored  # no half-written object is visible
    copy = world.clone("copy")
    assert world.rev(copy, "HEAD") == expected
    world.assert_fsck_clean(copy)

    after = world.commit(work, "after the crash")
    world.git("push", "-q", "origin", "main", cwd=work)
    assert world.remote_refs()["refs/heads/main"] == after
    world.git("pull", "-q", cwd=copy)
    world.assert_fsck_clean(copy)
    assert list((work / ".git" / "s3" / "origin").iterdir()) == []
