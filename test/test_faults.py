"""A misbehaving network and store, through the fault proxy (faultproxy.py): transient
faults are absorbed, persistent ones end in one line, cut-short bodies are resumed and
a write whose answer was lost is recognised as our own."""

import dataclasses
import os
import time

import pytest

from test_errors import fatal_line

# Every guarantee holds for encrypted repositories too (test_encryption.py).
pytestmark = pytest.mark.parametrize("world", ["plain", "encrypted"], indirect=True)


def healthy(world):
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


# The fault matrix: every operation through every fault that can meet it.
#
# An operation prepares its state without faults, then acts through the proxy; `reads`
# and `writes` are the (method, key) its faults aim at. A transient fault fires on the
# first matching requests and the operation must succeed as without it; a persistent
# one fires on all of them and the operation must end in one line, within bounds,
# leaving the old state.

@dataclasses.dataclass
class Operation:
    prepare: object  # world -> state (a dict)
    act: object      # (world, state, env, ok) -> the finished command
    check: object    # (world, state) -> None, after success
    reads: tuple = None
    writes: tuple = None
    lfs: bool = False


def pushed(world, state, *args, env, ok):
    return world.git("push", *args, cwd=state["work"], env=env, ok=ok)


def remote_is(world, state, refs):
    assert {r: world.remote_refs().get(r) for r in refs} == \
        {r: world.rev(state["work"], r.split("/")[-1]) for r in refs}


def prepare_initial(world):
    return {"work": world.repo(commits=2)}


def prepare_published(world, *branches):
    work, copy = world.published(commits=2)
    for branch in branches:
        world.git("branch", branch, cwd=work)
    world.commit(work, "through faults")
    return {"work": work, "copy": copy}


def prepare_lease(world):
    state = prepare_published(world)
    world.git("reset", "-q", "--hard", "HEAD~2", cwd=state["work"])
    world.commit(state["work"], "rewritten")
    return state


def prepare_fetch(world):
    state = prepare_published(world)
    world.git("push", "-q", "origin", "main", cwd=state["work"])
    return state


def prepare_gc(world):
    state = prepare_fetch(world)
    world.commit(state["work"], "one more bundle")
    world.git("push", "-q", "origin", "main", cwd=state["work"])
    return state


def prepare_lfs_upload(world):
    from test_lfs import lfs_repo
    content = os.urandom(300_000)
    return {"work": lfs_repo(world, files={"a.bin": content}), "content": content}


def prepare_lfs_download(world):
    state = prepare_lfs_upload(world)
    world.git("push", "-q", "origin", "main", cwd=state["work"])
    state["copy"] = world.tmp / "copy"
    world.git("clone", "-q", world.url, state["copy"], env={"GIT_LFS_SKIP_SMUDGE": "1"})
    return state


def check_lfs(world, state):
    from test_lfs import lfs_keys, oid_of
    assert lfs_keys(world) == [world.lfs_name(oid_of(state['content']))]
    copy = state.get("copy") or world.clone("lfs-check")
    assert (copy / "a.bin").read_bytes() == state["content"]


ANY_PUT = ("PUT", r"(manifest\.json|/bundles/)")
MANIFEST_GET = ("GET", r"manifest\.json$")
BUNDLE_GET = ("GET", r"/bundles/")

OPERATIONS = {
    "initial push": Operation(
        prepare_initial,
        lambda world, s, env, ok: pushed(world, s, "origin", "main", env=env, ok=ok),
        lambda world, s: remote_is(world, s, ["refs/heads/main"]),
        writes=ANY_PUT),  # no manifest to read yet
    "incremental push": Operation(
        prepare_published,
        lambda world, s, env, ok: pushed(world, s, "origin", "main", env=env, ok=ok),
        lambda world, s: remote_is(world, s, ["refs/heads/main"]),
        reads=MANIFEST_GET, writes=ANY_PUT),
    "atomic push": Operation(
        lambda world: prepare_published(world, "feature"),
        lambda world, s, env, ok: pushed(world, s, "--atomic", "origin", "main", "feature",
                                         env=env, ok=ok),
        lambda world, s: remote_is(world, s, ["refs/heads/main", "refs/heads/feature"]),
        reads=MANIFEST_GET, writes=ANY_PUT),
    "lease push": Operation(
        prepare_lease,
        lambda world, s, env, ok: pushed(world, s, "--force-with-lease", "origin", "+main",
                                         env=env, ok=ok),
        lambda world, s: remote_is(world, s, ["refs/heads/main"]),
        reads=MANIFEST_GET, writes=ANY_PUT),
    "clone": Operation(
        prepare_fetch,
        lambda world, s, env, ok: world.git("clone", "-q", world.url, world.tmp / "cloned",
                                            env=env, ok=ok),
        lambda world, s: world.assert_fsck_clean(world.tmp / "cloned"),
        reads=BUNDLE_GET),
    "fetch": Operation(
        prepare_fetch,
        lambda world, s, env, ok: world.git("fetch", "-q", cwd=s["copy"], env=env, ok=ok),
        lambda world, s: assert_equal(world.rev(s["copy"], "origin/main"),
                                      world.rev(s["work"], "main")),
        reads=BUNDLE_GET),
    "gc": Operation(
        prepare_gc,
        lambda world, s, env, ok: world.git_s3("gc", "origin", cwd=s["work"], env=env,
                                               ok=ok),
        lambda world, s: assert_equal(len(world.manifest()["bundles"]), 1),
        reads=BUNDLE_GET, writes=ANY_PUT),
    "doctor": Operation(
        prepare_gc,
        lambda world, s, env, ok: world.git_s3("doctor", "origin", cwd=s["work"], env=env,
                                               ok=ok),
        lambda world, s: None,
        reads=BUNDLE_GET),
    "LFS upload": Operation(
        prepare_lfs_upload,
        lambda world, s, env, ok: world.git("-c", "lfs.transfer.maxretries=1", "push",
                                            "origin", "main", cwd=s["work"], env=env, ok=ok),
        check_lfs, writes=("PUT", r"/lfs/"), lfs=True),
    "LFS download": Operation(
        prepare_lfs_download,
        lambda world, s, env, ok: world.git("-c", "lfs.transfer.maxretries=1", "lfs", "pull",
                                            cwd=s["copy"], env=env, ok=ok),
        check_lfs, reads=("GET", r"/lfs/"), lfs=True),
}
FAULTS = ["500", "503", "reset", "cut", "drop", "delay"]


def assert_equal(a, b):
    assert a == b


def aim(operation, fault):
    """(method, key) a fault hits in an operation, or None where it cannot meet it:
    a cut needs a body to read, a drop a write to land."""
    if fault == "cut":
        return operation.reads
    if fault == "drop":
        return operation.writes
    return operation.writes or operation.reads


MATRIX = [(name, fault) for name, op in OPERATIONS.items() for fault in FAULTS
          if aim(op, fault)]


def start(request, world, name):
    operation = OPERATIONS[name]
    if operation.lfs:
        request.getfixturevalue("lfs")
    return operation, operation.prepare(world)


@pytest.mark.parametrize("name, fault", MATRIX, ids=[f"{n}-{f}" for n, f in MATRIX])
def test_a_transient_fault_is_absorbed(request, world, proxy, name, fault):
    operation, state = start(request, world, name)
    method, key = aim(operation, fault)
    # two in a row where they repeat, one where a repeat needs a new write (drop), one
    # past the read timeout (delay)
    proxy.add(fault, method=method, key=key, first=1 if fault in ("drop", "delay") else 2,
              after=100, seconds=3)
    operation.act(world, state, proxy.env, True)
    assert proxy.fired(fault), "the fault did not fire"
    operation.check(world, state)
    if not operation.lfs:
        healthy(world)


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_a_persistent_fault_ends_in_one_line(request, world, proxy, name):
    operation, state = start(request, world, name)
    method, key = aim(operation, "503")
    proxy.add("503", method=method, key=key)
    before = manifest_version(world)
    started = time.monotonic()
    # two attempts (the user's AWS_MAX_ATTEMPTS) keep this quick; the default five
    # are test_by_default_a_request_is_sent_five_times_then_ends_in_one_line's
    failed = operation.act(world, state, {**proxy.env, "AWS_MAX_ATTEMPTS": "2"}, False)
    assert time.monotonic() - started < 60
    assert len(proxy.fired("503")) >= 2  # every attempt, then it gave up
    assert "Traceback" not in failed.stderr
    if operation.lfs:
        assert "SlowDown: Please reduce your request rate." in failed.stderr
        return
    assert "SlowDown" in fatal_line(failed)
    assert manifest_version(world) == before  # the old state, never a mix
    if before:
        healthy(world)


def test_by_default_a_request_is_sent_five_times_then_ends_in_one_line(world, proxy):
    work, _ = world.published()
    world.commit(work, "never lands")
    before = manifest_version(world)
    proxy.add("503", method="PUT", key=r"manifest\.json$")
    started = time.monotonic()
    failed = world.git("push", "origin", "main", cwd=work, ok=False, env=proxy.env)
    assert time.monotonic() - started < 30  # README: the pauses add up to 15 s at most
    assert fatal_line(failed) == (
        f"fatal: PutObject on '{world.url}/manifest.json' failed: SlowDown: Please reduce "
        "your request rate.")
    assert len(proxy.fired("503")) == 5
    assert manifest_version(world) == before


def manifest_version(world):
    return {k: v for k, v in world.snapshot().items() if k.endswith("/manifest.json")}


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
