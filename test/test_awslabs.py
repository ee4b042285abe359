"""Coming from awslabs' git-remote-s3 (pip git-remote-s3==0.4.2): their commands, names
and LFS settings keep working with ours. Their release is installed in the test venv
as a peer; `awslabs(...)` runs its own scripts."""

import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_legacy_layout
from test_lfs import lfs_keys, oid_of

PEER_BIN = Path(sys.executable).parent  # where pip put awslabs' scripts


def awslabs(world, name, *args, **kwargs):
    """One of awslabs' own scripts (git-lfs-s3, git-s3), not ours."""
    return world.run(PEER_BIN / name, *args, **kwargs)


def by_hand(world, *args):
    """Run our helper as a person would: no GIT_DIR, no protocol on stdin."""
    return world.run("git-remote-s3", *args, env={"GIT_DIR": None}, input="")


def test_their_repair_command_runs_git_s3(world):
    work = world.pushed()
    checked = by_hand(world, "doctor", world.url)
    assert f"'{world.url}' is healthy" in checked.stdout
    world.git("push", "-q", "origin", "main:topic", cwd=work)
    by_hand(world, "delete-branch", world.url, "topic")
    assert "refs/heads/topic" not in world.remote_refs()


def test_a_remote_named_like_a_verb_still_works(world):
    work = world.repo(remote=False)
    world.git("remote", "add", "doctor", world.url, cwd=work)
    world.git("push", "-q", "doctor", "main", cwd=work)
    assert world.remote_refs()["refs/heads/main"] == world.rev(work, "main")


def test_by_hand_without_git_s3_it_says_what_to_type(world, helper_bin, tmp_path):
    only = tmp_path / "only-helper"
    only.mkdir()
    (only / "git-remote-s3").symlink_to(helper_bin / "git-remote-s3")
    (only / "python3").symlink_to(sys.executable)  # with boto3, without any git-s3
    told = world.run(only / "git-remote-s3", "doctor", world.url, ok=False,
                     env={"GIT_DIR": None, "PATH": f"{only}:/usr/bin:/bin"}, input="")
    assert told.stderr == (f"fatal: 'doctor' is a command of git-s3, which is not on PATH: "
                           f"install it (make install), then run: git s3 doctor "
                           f"{world.url}\n")


def test_at_a_terminal_it_never_waits_for_git(world):
    leader, follower = pty.openpty()
    try:
        helper = subprocess.Popen(["git-remote-s3", "origin", world.url], stdin=follower,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={k: v for k, v in world.env.items() if k != "GIT_DIR"},
                                  start_new_session=True)
        told = world.finish(helper, timeout=30)
    finally:
        os.close(leader)
        os.close(follower)
    assert told.returncode == 129
    assert told.stderr.startswith("usage: git-remote-s3 <remote> <url>")


def test_their_git_s3_forms(world):
    work = world.pushed()
    world.git("push", "-q", "origin", "main:topic", "main:kept", cwd=work)
    world.run("git-s3", "protect", world.url, "kept")
    assert world.manifest()["protected"] == ["refs/heads/kept"]
    world.run("git-s3", "delete-branch", world.url, "topic")
    assert "refs/heads/topic" not in world.remote_refs()
    both = world.run("git-s3", "delete-branch", world.url, "kept", "-b", "main", ok=False)
    assert both.stderr.startswith("fatal: name one branch to delete")
    noted = world.run("git-s3", "doctor", world.url, "-d", "--lock-ttl", "60",
                      "--delete-stale-locks")
    assert "note:      --delete-bundle, --lock-ttl, --delete-stale-locks: nothing to do " \
           "in this layout" in noted.stdout
    assert "is healthy" in noted.stdout


def test_their_doctor_options_on_their_layout_point_to_migrate(world):
    work = world.repo(commits=2)
    write_legacy_layout(world, work, {"refs/heads/main": "main"})
    before = world.snapshot()
    refused = world.run("git-s3", "doctor", world.url, "--delete-stale-locks", ok=False)
    assert "instead of --delete-stale-locks, migrate it: raced bundles become branches" \
        in refused.stderr
    assert f"hint: git s3 migrate {world.url}" in refused.stderr
    assert world.snapshot() == before


@pytest.mark.parametrize("form", [[], ["--remote", "origin"]], ids=["plain", "scoped"])
def test_a_repository_set_up_by_their_agent_works_with_ours(lfs, form):
    world = lfs
    work = world.repo()
    theirs = os.urandom(50_000)
    world.git("lfs", "track", "*.bin", cwd=work)
    world.commit(work, "their object", {".gitattributes": (work / ".gitattributes")
                                        .read_text(), "theirs.bin": theirs})
    awslabs(world, "git-lfs-s3", "install", *form, cwd=work)
    config = world.git("config", "--local", "--list", cwd=work).stdout
    assert "lfs.customtransfer.git-lfs-s3.path=git-lfs-s3" in config
    # their agent uploads (it alone is on PATH as git-lfs-s3)...
    world.git("lfs", "push", "origin", "main", cwd=work,
              env={"PATH": f"{PEER_BIN}:{world.env['PATH']}"})
    assert lfs_keys(world) == [f"lfs/{oid_of(theirs)}"]
    world.git("push", "-q", "origin", "main", cwd=work)

    # ...and with the same config ours downloads what theirs uploaded, and uploads
    shutil.rmtree(work / ".git" / "lfs" / "objects")
    traced = {"GIT_TRACE": "1", "GIT_REMOTE_S3_VERBOSE": "1"}
    pulled = world.git("lfs", "pull", cwd=work, env=traced)
    assert "xfer[git-lfs-s3]: s3: GetObject" in pulled.stderr  # our agent's words
    assert (work / "theirs.bin").read_bytes() == theirs
    ours = os.urandom(40_000)
    world.commit(work, "our object", {"ours.bin": ours})
    pushed = world.git("push", "origin", "main", cwd=work, env=traced)
    assert "xfer[git-lfs-s3]: s3: PutObject" in pushed.stderr
    assert sorted(lfs_keys(world)) == sorted(f"lfs/{oid_of(c)}" for c in (theirs, ours))
    assert world.git("config", "--local", "--list", cwd=work).stdout == config


def test_our_agent_takes_their_commands_under_their_name(lfs):
    world = lfs
    work = world.repo()
    world.run("git-lfs-s3", "install", "--remote", "origin", cwd=work)
    config = world.git("config", "--local", "--list", cwd=work).stdout
    assert "lfs.customtransfer.git-lfs-s3.path=git-lfs-s3" in config
    awslabs(world, "git-lfs-s3", "enable-debug", cwd=work)  # theirs writes args=debug
    content = os.urandom(20_000)
    world.git("lfs", "track", "*.bin", cwd=work)
    world.commit(work, "debugged", {".gitattributes": (work / ".gitattributes")
                                    .read_text(), "a.bin": content})
    world.git("push", "-q", "origin", "main", cwd=work)
    log = work / ".git" / "lfs" / "tmp" / "git-lfs-s3.log"
    assert f"s3: PutObject s3://{world.server.bucket}/{world.prefix}/lfs/" in log.read_text()
    world.run("git-lfs-s3", "disable-debug", cwd=work)
    assert "git-lfs-s3.args" not in world.git("config", "--list", cwd=work).stdout
    world.run("git-lfs-s3", "enable-debug", cwd=work)  # ours writes args=--debug
    assert world.git("config", "lfs.customtransfer.git-lfs-s3.args", cwd=work).stdout \
        == "--debug\n"

    plain = world.repo("plain")
    installed = world.run("git-lfs-s3", "install", cwd=plain)
    assert installed.stdout == "lfs-s3-py: git-lfs uses S3 for origin\n"
    assert "standalonetransferagent=git-lfs-s3" in world.git(
        "config", "--local", "--list", cwd=plain).stdout


def test_migrate_reports_the_lfs_objects_it_found(world):
    work = world.repo(commits=2)
    write_legacy_layout(world, work, {"refs/heads/main": "main"})
    world.put(f"lfs/{'a' * 64}", b"x" * 3000)
    migrated = world.git_s3("migrate", "origin", cwd=work)
    assert f"LFS:       1 objects (2.9 KiB) at {world.url}/lfs/<oid>, where lfs-s3-py " \
           "reads them too: nothing to convert" in migrated.stdout
