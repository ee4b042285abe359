"""A misbehaving network and store, through the fault proxy (faultproxy.py): transient
faults are absorbed, persistent ones end in one line, cut-short bodies are resumed and
a write whose answer was lost is recognised as our own."""

import os
import time

import pytest

from test_errors import fatal_line


def healthy(world, repo=None):
    """What a fault-free client sees afterwards: a clone that fscks clean, a remote
    doctor calls healthy (leftovers aside)."""
    copy = world.clone(f"check-{time.monotonic_ns()}")
    world.assert_fsck_clean(copy)
    assert "is healthy" in world.git_s3("doctor", world.url, cwd=world.tmp).stdout
    return copy


def big_history(world, megabytes):
    work = world.repo(commits=0)
    world.commit(work, "big", {"big.bin": os.urandom(megabytes * 1024 * 1024)})
    world.git("push", "-q", "origin", "main", cwd=work)
    return work


@pytest.mark.parametrize("megabytes", [3, 20], ids=["one-get", "ranged"])
def test_a_clone_resumes_a_bundle_cut_short(world, proxy, megabytes):
    work = big_history(world, megabytes)
    proxy.add("cut", method="GET", key=r"/bundles/", first=2, after=1_000_000)
    copy = world.tmp / "copy"
    world.git("clone", "-q", world.url, copy, env=proxy.env)
    assert len(proxy.fired("cut")) == 2
    assert world.rev(copy, "HEAD") == world.rev(work, "HEAD")
    world.assert_fsck_clean(copy)


def test_a_body_cut_short_every_time_ends_in_one_line(world, proxy):
    big_history(world, 1)
    proxy.add("cut", method="GET", key=r"/bundles/", after=1000)
    started = time.monotonic()
    failed = world.git("clone", world.url, world.tmp / "copy", ok=False, env=proxy.env)
    assert fatal_line(failed).startswith("fatal: downloading '")
    assert "the connection broke off 5 times" in failed.stderr
    assert time.monotonic() - started < 60
    assert not (world.tmp / "copy").exists()  # git removes a failed clone


@pytest.mark.parametrize("fault", ["500", "503", "reset", "drop"])
@pytest.mark.parametrize("what", ["manifest", "bundle"])
def test_a_push_absorbs_a_transient_fault(world, proxy, fault, what):
    work, copy = world.published()
    new = world.commit(work, "through a fault")
    key = r"manifest\.json$" if what == "manifest" else r"/bundles/"
    proxy.add(fault, method="PUT", key=key, first=1)
    pushed = world.git("push", "origin", "main", cwd=work, env=proxy.env)
    assert proxy.fired(fault), "the fault did not fire"
    assert "main -> main" in pushed.stderr and "rejected" not in pushed.stderr
    assert world.remote_refs()["refs/heads/main"] == new
    world.git("pull", "-q", cwd=copy)
    assert world.rev(copy, "HEAD") == new
    healthy(world)


@pytest.mark.parametrize("push", [["--force-with-lease", "origin", "+main"],
                                  ["origin", "--delete", "topic"],
                                  ["--atomic", "origin", "+main", "+topic"]],
                         ids=["lease", "delete", "atomic"])
def test_a_manifest_write_whose_answer_was_lost_is_our_own(world, proxy, push):
    work, _ = world.published(commits=2)
    world.git("push", "-q", "origin", "main:topic", cwd=work)
    world.git("fetch", "-q", "origin", cwd=work)
    world.git("reset", "-q", "--hard", "HEAD~1", cwd=work)
    world.commit(work, "rewritten")
    world.git("branch", "-f", "topic", cwd=work)
    expected = world.git("push", "--dry-run", "--porcelain", *push, cwd=work).stdout
    proxy.add("drop", method="PUT", key=r"manifest\.json$", first=1)
    pushed = world.git("push", "--porcelain", *push, cwd=work, env=proxy.env)
    assert proxy.fired("drop")
    assert pushed.stdout == expected  # what git reports without the fault
    for line in pushed.stdout.splitlines():
        assert "[rejected]" not in line and "stale info" not in line
    refs = world.remote_refs()
    if "--delete" in push:
        assert "refs/heads/topic" not in refs
    else:
        assert refs["refs/heads/main"] == world.rev(work, "main")
    healthy(world)


def test_the_first_push_recognises_its_own_manifest_after_a_lost_answer(world, proxy):
    work = world.repo()
    proxy.add("drop", method="PUT", key=r"manifest\.json$", first=1)
    world.git("push", "-q", "origin", "main", cwd=work, env=proxy.env)
    assert proxy.fired("drop")
    assert world.remote_refs()["refs/heads/main"] == world.rev(work, "main")


def test_a_persistent_fault_ends_in_one_line_within_bounds(world, proxy):
    work, _ = world.published()
    world.commit(work, "never lands")
    before = world.snapshot()
    proxy.add("503", method="PUT", key=r"manifest\.json$")
    started = time.monotonic()
    failed = world.git("push", "origin", "main", cwd=work, ok=False, env=proxy.env)
    assert time.monotonic() - started < 60
    assert "SlowDown" in fatal_line(failed)
    assert len(proxy.fired("503")) == 5  # botocore's attempts, then one line
    assert {k: v for k, v in world.snapshot().items() if k.endswith("manifest.json")} == \
        {k: v for k, v in before.items() if k.endswith("manifest.json")}
    healthy(world)


@pytest.mark.parametrize("fault", ["500", "503", "reset", "cut"])
def test_fetch_absorbs_a_transient_fault_on_the_manifest(world, proxy, fault):
    work, copy = world.published()
    new = world.commit(work, "to fetch")
    world.git("push", "-q", "origin", "main", cwd=work)
    proxy.add(fault, method="GET", key=r"manifest\.json$", first=2, after=10)
    world.git("fetch", "-q", cwd=copy, env=proxy.env)
    assert proxy.fired(fault)
    assert world.rev(copy, "origin/main") == new


def test_gc_and_doctor_absorb_transient_faults(world, proxy):
    work, _ = world.published()
    for i in range(3):
        world.commit(work, f"more {i}")
        world.git("push", "-q", "origin", "main", cwd=work)
    proxy.add("cut", method="GET", key=r"/bundles/", first=1, after=100)
    proxy.add("503", method="PUT", key=r"manifest\.json$", first=1)
    proxy.add("drop", method="PUT", key=r"/bundles/", first=1)
    world.git_s3("gc", "origin", cwd=work, env=proxy.env)
    assert {f for f, _, _ in proxy.fired()} == {"cut", "503", "drop"}
    assert len(world.manifest()["bundles"]) == 1
    proxy.add("cut", method="GET", key=r"/bundles/", first=1, after=100)
    proxy.add("500", method="GET", key=r"", first=1)
    checked = world.git_s3("doctor", "origin", cwd=work, env=proxy.env)
    assert "is healthy" in checked.stdout
    healthy(world)


# Stores that accept conditional writes and ignore the conditions

def test_a_store_that_ignores_conditions_is_refused_before_the_first_push(world, proxy):
    work = world.repo()
    proxy.add("ignore", method="PUT")
    refused = world.git("push", "origin", "main", cwd=work, ok=False, env=proxy.env)
    assert proxy.fired("ignore")
    line = fatal_line(refused)
    assert "ignores conditional writes (If-None-Match and If-Match were not refused)" in line
    assert "hint: if you alone push to this repository, accept the risk with " \
           "'git config s3.singleWriter true' (or GIT_REMOTE_S3_SINGLE_WRITER=1)" \
           in refused.stderr
    assert world.keys() == []  # no manifest, no bundle, no probe left behind

    world.git("config", "s3.singleWriter", "true", cwd=work)
    world.git("push", "-q", "origin", "main", cwd=work, env=proxy.env)
    assert world.remote_refs()["refs/heads/main"] == world.rev(work, "main")
    world.commit(work, "later pushes probe nothing")
    later = world.git("push", "-v", "origin", "main", cwd=work, env=proxy.env)
    assert "conditional-write-probe" not in later.stderr
    assert not [k for k in world.keys() if "probe" in k]


def test_doctor_tells_whether_the_store_enforces_conditional_writes(world, proxy):
    work, _ = world.published()
    checked = world.git_s3("doctor", "origin", cwd=work)
    assert "store:     enforces conditional writes" in checked.stdout
    proxy.add("ignore", method="PUT")
    found = world.git_s3("doctor", "origin", cwd=work, ok=False, env=proxy.env)
    assert found.returncode == 1
    assert "error: the S3 store ignores conditional writes" in found.stdout
    assert not [k for k in world.keys() if "probe" in k]


# LFS through faults: git-lfs sees success, or its per-object error

@pytest.mark.parametrize("fault", ["503", "reset", "drop"])
def test_lfs_upload_absorbs_a_transient_fault(lfs, proxy, fault):
    from test_lfs import lfs_keys, lfs_repo, oid_of
    world = lfs
    content = os.urandom(200_000)
    work = lfs_repo(world, files={"a.bin": content})
    proxy.add(fault, method="PUT", key=r"/lfs/", first=1)
    world.git("push", "-q", "origin", "main", cwd=work, env=proxy.env)
    assert proxy.fired(fault)
    assert lfs_keys(world) == [f"lfs/{oid_of(content)}"]
    copy = world.clone("copy")
    assert (copy / "a.bin").read_bytes() == content


@pytest.mark.parametrize("megabytes", [1, 20], ids=["one-get", "ranged"])
def test_lfs_download_resumes_a_cut_short_object(lfs, proxy, megabytes):
    from test_lfs import lfs_repo
    world = lfs
    content = os.urandom(megabytes * 1024 * 1024)
    work = lfs_repo(world, files={"a.bin": content})
    world.git("push", "-q", "origin", "main", cwd=work)
    copy = world.tmp / "copy"
    world.git("clone", "-q", world.url, copy, env={"GIT_LFS_SKIP_SMUDGE": "1"})
    proxy.add("cut", method="GET", key=r"/lfs/", first=2, after=300_000)
    world.git("lfs", "pull", cwd=copy, env=proxy.env)
    assert len(proxy.fired("cut")) == 2
    assert (copy / "a.bin").read_bytes() == content


def test_lfs_persistent_fault_is_a_per_object_error_and_nothing_half_downloaded(
        lfs, proxy):
    from test_lfs import lfs_repo, oid_of
    world = lfs
    content = os.urandom(500_000)
    work = lfs_repo(world, files={"a.bin": content})
    world.git("push", "-q", "origin", "main", cwd=work)
    copy = world.tmp / "copy"
    world.git("clone", "-q", world.url, copy, env={"GIT_LFS_SKIP_SMUDGE": "1"})
    proxy.add("cut", method="GET", key=r"/lfs/", after=1000)
    started = time.monotonic()
    pulled = world.git("-c", "lfs.transfer.maxretries=1", "lfs", "pull", cwd=copy,
                       ok=False, env=proxy.env)
    assert time.monotonic() - started < 60
    assert "the connection broke off 5 times" in pulled.stderr
    assert "Traceback" not in pulled.stderr
    assert (copy / "a.bin").read_bytes().startswith(b"version https://git-lfs")
    assert os.listdir(copy / ".git" / "lfs" / "tmp") == []
    oid = oid_of(content)
    assert not (copy / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid).exists()
