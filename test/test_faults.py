"""A misbehaving network and store, through the fault proxy (faultproxy.py): transient
faults are absorbed, persistent ones end in one line, cut-short bodies are resumed and
a write whose answer was lost is recognised as our own."""

import contextlib
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
# and `writes` are the (method, key) its faults aim at. One repository meets the faults
# in turn: before each, `again` gives the operation something new to do. A transient
# fault fires on the first matching requests and the operation must succeed as without
# it; a persistent one, last, fires on all of them and the operation must end in one
# line, within bounds, leaving the old state. What a fault-free client sees is checked
# after every step, and once more at the end with a clone and doctor.

@dataclasses.dataclass
class Operation:
    prepare: object  # world -> state (a dict)
    again: object    # (world, state) -> None: something new to do, without faults
    act: object      # (world, state, env, ok) -> the finished command
    check: object    # (world, state) -> None, after success
    reads: tuple = None
    writes: tuple = None
    lfs: bool = False


def pushed(world, state, *args, env, ok):
    return world.git("push", *args, cwd=state["work"], env=env, ok=ok)


def remote_is(world, state, refs):
    assert {r: world.remote_refs(state.get("url")).get(r) for r in refs} == \
        {r: world.rev(state["work"], r.split("/")[-1]) for r in refs}


def prepare_initial(world):
    return {"work": world.repo(commits=2)}


def another_repository(world, state):
    """A new repository and a URL nobody pushed to: an initial push again."""
    n = state["n"] = state.get("n", 0) + 1
    state["url"] = f"{world.url}-{n}"
    state["work"] = world.repo(f"work-{n}", commits=2, remote=False)
    world.git("remote", "add", "origin", state["url"], cwd=state["work"])


def prepare_published(world, *branches):
    work, copy = world.published(commits=2)
    for branch in branches:
        world.git("branch", branch, cwd=work)
    world.commit(work, "through faults")
    return {"work": work, "copy": copy}


def one_more_commit(world, state, *branches):
    state["n"] = state.get("n", 0) + 1
    world.commit(state["work"], f"again {state['n']}")
    for branch in branches:
        world.git("branch", "-f", branch, cwd=state["work"])


def rewritten(world, state, back):
    """A's main with its last `back` commits replaced by another."""
    world.git("reset", "-q", "--hard", f"HEAD~{back}", cwd=state["work"])
    world.commit(state["work"], f"rewritten {time.monotonic_ns()}")
    return state


def prepare_lease(world):
    return rewritten(world, prepare_published(world), 2)


def prepare_fetch(world):
    state = prepare_published(world)
    world.git("push", "-q", "origin", "main", cwd=state["work"])
    return state


def pushed_again(world, state):
    one_more_commit(world, state)
    world.git("push", "-q", "origin", "main", cwd=state["work"])


def prepare_gc(world):
    state = prepare_fetch(world)
    pushed_again(world, state)
    return state


def nothing_new(world, state):
    state["n"] = state.get("n", 0) + 1


def cloned(world, state):
    return world.tmp / f"cloned-{state.get('n', 0)}"


def prepare_lfs_upload(world):
    from test_lfs import lfs_repo
    content = os.urandom(300_000)
    return {"work": lfs_repo(world, files={"a.bin": content}), "contents": [content]}


def another_lfs_object(world, state):
    content = os.urandom(300_000)
    state["contents"].append(content)
    world.commit(state["work"], f"object {len(state['contents'])}", {"a.bin": content})


def prepare_lfs_download(world):
    state = prepare_lfs_upload(world)
    world.git("push", "-q", "origin", "main", cwd=state["work"])
    state["copy"] = world.tmp / "copy"
    world.git("clone", "-q", world.url, state["copy"], env={"GIT_LFS_SKIP_SMUDGE": "1"})
    return state


def another_lfs_object_pushed(world, state):
    another_lfs_object(world, state)
    world.git("push", "-q", "origin", "main", cwd=state["work"])
    world.git("pull", "-q", cwd=state["copy"], env={"GIT_LFS_SKIP_SMUDGE": "1"})


def check_lfs(world, state):
    from test_lfs import lfs_keys, oid_of
    assert lfs_keys(world) == sorted(world.lfs_name(oid_of(c)) for c in state["contents"])
    copy = state.get("copy") or world.clone(f"lfs-check-{len(state['contents'])}")
    assert (copy / "a.bin").read_bytes() == state["contents"][-1]


ANY_PUT = ("PUT", r"(manifest\.json|/bundles/)")
MANIFEST_GET = ("GET", r"manifest\.json$")
BUNDLE_GET = ("GET", r"/bundles/")

OPERATIONS = {
    "initial push": Operation(
        prepare_initial, another_repository,
        lambda world, s, env, ok: pushed(world, s, "origin", "main", env=env, ok=ok),
        lambda world, s: remote_is(world, s, ["refs/heads/main"]),
        writes=ANY_PUT),  # no manifest to read yet
    "incremental push": Operation(
        prepare_published, one_more_commit,
        lambda world, s, env, ok: pushed(world, s, "origin", "main", env=env, ok=ok),
        lambda world, s: remote_is(world, s, ["refs/heads/main"]),
        reads=MANIFEST_GET, writes=ANY_PUT),
    "atomic push": Operation(
        lambda world: prepare_published(world, "feature"),
        lambda world, s: one_more_commit(world, s, "feature"),
        lambda world, s, env, ok: pushed(world, s, "--atomic", "origin", "main", "feature",
                                         env=env, ok=ok),
        lambda world, s: remote_is(world, s, ["refs/heads/main", "refs/heads/feature"]),
        reads=MANIFEST_GET, writes=ANY_PUT),
    "lease push": Operation(
        prepare_lease, lambda world, s: rewritten(world, s, 1),
        lambda world, s, env, ok: pushed(world, s, "--force-with-lease", "origin", "+main",
                                         env=env, ok=ok),
        lambda world, s: remote_is(world, s, ["refs/heads/main"]),
        reads=MANIFEST_GET, writes=ANY_PUT),
    "clone": Operation(
        prepare_fetch, nothing_new,
        lambda world, s, env, ok: world.git("clone", "-q", world.url, cloned(world, s),
                                            env=env, ok=ok),
        lambda world, s: world.assert_fsck_clean(cloned(world, s)),
        reads=BUNDLE_GET),
    "fetch": Operation(
        prepare_fetch, pushed_again,
        lambda world, s, env, ok: world.git("fetch", "-q", cwd=s["copy"], env=env, ok=ok),
        lambda world, s: assert_equal(world.rev(s["copy"], "origin/main"),
                                      world.rev(s["work"], "main")),
        reads=BUNDLE_GET),
    "gc": Operation(
        prepare_gc, pushed_again,
        lambda world, s, env, ok: world.git_s3("gc", "origin", cwd=s["work"], env=env,
                                               ok=ok),
        lambda world, s: assert_equal(len(world.manifest()["bundles"]), 1),
        reads=BUNDLE_GET, writes=ANY_PUT),
    "doctor": Operation(
        prepare_gc, nothing_new,
        lambda world, s, env, ok: world.git_s3("doctor", "origin", cwd=s["work"], env=env,
                                               ok=ok),
        lambda world, s: None,
        reads=BUNDLE_GET),
    "LFS upload": Operation(
        prepare_lfs_upload, another_lfs_object,
        lambda world, s, env, ok: world.git("-c", "lfs.transfer.maxretries=1", "push",
                                            "origin", "main", cwd=s["work"], env=env, ok=ok),
        check_lfs, writes=("PUT", r"/lfs/"), lfs=True),
    "LFS download": Operation(
        prepare_lfs_download, another_lfs_object_pushed,
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


@contextlib.contextmanager
def under(fault):
    """Name the fault in whatever fails while it is set."""
    try:
        yield
    except AssertionError as exc:
        raise AssertionError(f"under the fault '{fault}': {exc}") from exc


@pytest.mark.early
@pytest.mark.parametrize("name", list(OPERATIONS))
def test_transient_faults_are_absorbed_and_a_persistent_one_ends_in_one_line(
        request, world, proxy, name):
    operation = OPERATIONS[name]
    if operation.lfs:
        request.getfixturevalue("lfs")
    state = operation.prepare(world)
    for n, fault in enumerate(f for f in FAULTS if aim(operation, f)):
        if n:
            operation.again(world, state)
        method, key = aim(operation, fault)
        proxy.reset()
        # two in a row where they repeat, one where a repeat needs a new write (drop),
        # one past the read timeout (delay)
        proxy.add(fault, method=method, key=key, first=1 if fault in ("drop", "delay")
                  else 2, after=100, seconds=3)
        with under(fault):
            operation.act(world, state, proxy.env, True)
            assert proxy.fired(fault), "the fault did not fire"
            operation.check(world, state)

    operation.again(world, state)
    proxy.reset()
    method, key = aim(operation, "503")
    proxy.add("503", method=method, key=key)
    before = manifest_version(world, state.get("url"))
    started = time.monotonic()
    # two attempts (the user's AWS_MAX_ATTEMPTS) keep this quick; the default five
    # are test_by_default_a_request_is_sent_five_times_then_ends_in_one_line's
    with under("persistent 503"):
        failed = operation.act(world, state, {**proxy.env, "AWS_MAX_ATTEMPTS": "2"}, False)
        assert time.monotonic() - started < 60
        assert len(proxy.fired("503")) >= 2  # every attempt, then it gave up
        assert "Traceback" not in failed.stderr
        if operation.lfs:
            assert "SlowDown: Please reduce your request rate." in failed.stderr
            return
        assert "SlowDown" in fatal_line(failed)
        assert manifest_version(world, state.get("url")) == before  # the old state
    healthy(world)


@pytest.mark.early
def test_by_default_a_request_is_sent_five_times_then_ends_in_one_line(world, proxy):
    work = world.pushed()
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


def test_a_conditional_write_that_met_another_is_sent_again(world, proxy):
    # AWS answers 409 ConditionalRequestConflict, and botocore does not retry it: the
    # manifest write, a bundle's create-only PUT and the probe's must be sent again.
    work = world.repo()
    proxy.add("409", method="PUT", first=3)
    world.git("push", "-q", "origin", "main", cwd=work, env=proxy.env)
    assert len(proxy.fired("409")) == 3
    world.commit(work, "second")
    proxy.add("409", method="PUT", key=r"manifest\.json$", first=2)
    world.git("push", "-q", "origin", "main", cwd=work, env=proxy.env)
    assert len(proxy.fired("409")) == 5
    assert world.remote_refs()["refs/heads/main"] == world.rev(work, "main")
    healthy(world)


def manifest_version(world, url=None):
    """{key: etag} of the manifest at `url` (the world's), {} where there is none."""
    prefix = (url or world.url).split("/", 3)[3]
    return {k: v for k, v in world.snapshot(prefix).items() if k.endswith("/manifest.json")}


@pytest.mark.parametrize("megabytes", [3, 20], ids=["one-get", "ranged"])
def test_a_clone_resumes_a_bundle_cut_short(world, proxy, megabytes):
    work = big_history(world, megabytes)
    proxy.add("cut", method="GET", key=r"/bundles/", first=2, after=1_000_000)
    copy = world.tmp / "copy"
    world.git("clone", "-q", world.url, copy, env=proxy.env)
    assert len(proxy.fired("cut")) == 2
    assert world.rev(copy, "HEAD") == world.rev(work, "HEAD")
    world.assert_fsck_clean(copy)


def test_an_object_that_changes_before_its_download_resumes_ends_in_one_line(world,
                                                                              proxy):
    big_history(world, 1)
    key = world.manifest()["bundles"][0]["key"]
    replaced = world.s3.get_object(Bucket=world.server.bucket,
                                   Key=f"{world.prefix}/{key}")["Body"].read() + b"more"
    proxy.add("cut", method="GET", key=r"/bundles/", first=1, after=1000,
              then=lambda: world.put(key, replaced))  # as gc re-encrypting in place
    cloned = world.git("clone", world.url, world.tmp / "copy", env=proxy.env, ok=False)
    assert fatal_line(cloned) == (f"fatal: '{world.url}/{key}' changed while it was being "
                                  "downloaded (rewritten by 'git s3 gc'?); try again")
    assert "Traceback" not in cloned.stderr


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
    work = world.pushed(commits=2)
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


# The column "answer lost, raced by another writer": A's manifest write lands, its
# answer is held (a stalled connection) while B makes a change of its own and is told
# it landed, then A's client sends the write again and is refused. A must report what
# landed and write nothing more; B's change must survive.

def prepare_race(world):
    work, copy = world.published(commits=2)
    world.git("push", "-q", "origin", "main:feature", cwd=work)
    world.git("fetch", "-q", "origin", cwd=work)
    return {"work": work, "copy": copy}


def prepare_rewrite(world):
    return rewritten(world, prepare_race(world), 1)


def prepare_two_refs(world):
    state = prepare_race(world)
    world.commit(state["work"], "A's main and feature")
    world.git("branch", "-f", "feature", cwd=state["work"])
    return state


def prepare_ahead(world):
    state = prepare_race(world)
    world.commit(state["work"], "A's fast-forward")
    return state


def prepare_bundles(world):
    state = prepare_race(world)
    for i in range(2):
        world.commit(state["work"], f"bundle {i}")
        world.git("push", "-q", "origin", "main", cwd=state["work"])
    state["epoch"] = world.manifest()["epoch"]
    return state


def b_pushes(ref):
    """B fetches (A's write is there), commits on top of the remote `ref` (or of main,
    where A deleted it) and pushes it."""
    def change(world, state):
        copy = state["copy"]
        world.git("fetch", "-q", "origin", cwd=copy)
        remote = world.git("rev-parse", "-q", "--verify", f"origin/{ref}", cwd=copy, ok=None)
        world.git("checkout", "-q", "-B", "b-work", remote.stdout.strip() or "origin/main",
                  cwd=copy)
        state["b"] = world.commit(copy, f"B's change to {ref}")
        world.git("push", "-q", "origin", f"HEAD:refs/heads/{ref}", cwd=copy)
    return change


def b_runs(*args):
    def change(world, state):
        world.git_s3(*args, cwd=state["copy"])
    return change


def a_pushes(*args):
    def act(world, state, env):
        state["expected"] = world.git("push", "--dry-run", "--porcelain", *args,
                                      cwd=state["work"]).stdout
        return world.git("push", "--porcelain", *args, cwd=state["work"], env=env)
    return act


def a_runs(*args):
    def act(world, state, env):
        return world.git_s3(*args, cwd=state["work"], env=env)
    return act


def reported_as_without_the_fault(world, state, done):
    assert done.stdout == state["expected"]


def said(line):
    def check(world, state, done):
        assert line.format(url=world.url) in done.stdout
    return check


def b_is_at(ref, a_too=()):
    """B's acknowledged commit is the ref's tip; A's landed commits are in it."""
    def check(world, state):
        refs = world.remote_refs()
        assert refs[f"refs/heads/{ref}"] == state["b"], "B's acknowledged push was undone"
        for a_ref in a_too:
            assert world.git("merge-base", "--is-ancestor", world.rev(state["work"], a_ref),
                             state["b"], cwd=state["copy"], ok=None).returncode == 0
    return check


def head_is(branch):
    def check(world, state):
        assert world.manifest()["head"] == f"refs/heads/{branch}"
    return check


def not_protected(world, state):
    assert "protected" not in world.manifest()


def gc_ran_once(world, state):
    b_is_at("main")(world, state)
    manifest = world.manifest()
    assert manifest["epoch"] == state["epoch"] + 1  # gc's rewrite, once
    assert len(manifest["bundles"]) == 2  # gc's one bundle, and B's push on top


@dataclasses.dataclass
class Race:
    prepare: object  # world -> state
    a: object        # (world, state, env) -> A's finished command
    b: object        # (world, state) -> None: B's change, made while A's answer is held
    reported: object  # (world, state, A's command) -> None: A said what landed
    survived: object  # (world, state) -> None: B's change is there, and A's


RACES = {
    "push": Race(prepare_ahead, a_pushes("origin", "main"), b_pushes("main"),
                 reported_as_without_the_fault, b_is_at("main", ["main"])),
    "force": Race(prepare_rewrite, a_pushes("--force", "origin", "main"), b_pushes("main"),
                  reported_as_without_the_fault, b_is_at("main", ["main"])),
    "delete": Race(prepare_race, a_pushes("origin", "--delete", "feature"),
                   b_pushes("feature"), reported_as_without_the_fault, b_is_at("feature")),
    "lease": Race(prepare_rewrite, a_pushes("--force-with-lease", "origin", "+main"),
                  b_pushes("main"), reported_as_without_the_fault, b_is_at("main", ["main"])),
    "atomic": Race(prepare_two_refs, a_pushes("--atomic", "origin", "main", "feature"),
                   b_pushes("main"), reported_as_without_the_fault,
                   b_is_at("main", ["main", "feature"])),
    "delete-branch": Race(prepare_race, a_runs("delete-branch", "origin", "feature"),
                          b_pushes("feature"), said("deleted 'feature' from '{url}'"),
                          b_is_at("feature")),
    "set-head": Race(prepare_race, a_runs("set-head", "origin", "feature"),
                     b_runs("set-head", "origin", "main"),
                     said("HEAD of '{url}' is now 'feature'"), head_is("main")),
    "protect": Race(prepare_race, a_runs("protect", "origin", "main"),
                    b_runs("unprotect", "origin", "main"),
                    said("protected 'main': pushes may only fast-forward it"),
                    not_protected),
    "gc": Race(prepare_bundles, a_runs("gc", "origin"), b_pushes("main"),
               said("rewrote '{url}': "), gc_ran_once),
}


@pytest.mark.parametrize("name", list(RACES))
def test_an_answer_lost_while_another_writer_commits_is_reported_once(world, proxy, name):
    race = RACES[name]
    state = race.prepare(world)
    # A's client gives up on the held answer after 2 seconds and sends the write again;
    # the proxy holds that resend until B's change has landed.
    proxy.add("stall", method="PUT", key=r"manifest\.json$", first=1, seconds=3,
              then=lambda: race.b(world, state))
    done = race.a(world, state, proxy.env)
    assert proxy.fired("stall") and not proxy.errors, proxy.errors
    assert "Traceback" not in done.stderr
    race.reported(world, state, done)
    race.survived(world, state)
    healthy(world)


def may_have_landed(world, done, why):
    line = fatal_line(done)
    assert line.startswith(f"fatal: the write of '{world.url}/manifest.json' may have "
                           f"landed: its answer was lost, and {why}"), line
    assert line.endswith(f"; check with 'git ls-remote {world.url}' or 'git s3 doctor "
                         f"{world.url}'")


def test_a_write_whose_fate_cannot_be_read_back_may_have_landed(world, proxy):
    state = prepare_ahead(world)
    proxy.add("stall", method="PUT", key=r"manifest\.json$", first=1, seconds=3,
              then=lambda: proxy.add("503", method="GET", key=r"manifest\.json$"))
    done = world.git("push", "origin", "main", cwd=state["work"], ok=False,
                     env={**proxy.env, "AWS_MAX_ATTEMPTS": "2"})
    may_have_landed(world, done, "reading it back failed (GetObject on ")
    assert "SlowDown" in fatal_line(done)
    proxy.clear()
    assert world.remote_refs()["refs/heads/main"] == world.rev(state["work"], "main")


def test_a_write_the_manifest_no_longer_remembers_may_have_landed(world, proxy):
    state = prepare_ahead(world)
    kept = {"GIT_TEST_S3_WRITES_KEPT": "2"}

    def two_writes():
        world.git_s3("protect", "origin", "feature", cwd=state["copy"], env=kept)
        world.git_s3("unprotect", "origin", "feature", cwd=state["copy"], env=kept)
    proxy.add("stall", method="PUT", key=r"manifest\.json$", first=1, seconds=3,
              then=two_writes)
    done = world.git("push", "origin", "main", cwd=state["work"], ok=False,
                     env={**proxy.env, **kept})
    assert not proxy.errors, proxy.errors
    may_have_landed(world, done, "the 2 writes since are more than the manifest remembers")
    assert world.remote_refs()["refs/heads/main"] == world.rev(state["work"], "main")


def test_a_write_never_answered_may_still_land(world, proxy):
    # Every attempt is reset unanswered: a copy held up on the way could still land
    # while the manifest is the version it replaces, so nobody can say it did not.
    state = prepare_ahead(world)
    before = manifest_version(world)
    proxy.add("reset", method="PUT", key=r"manifest\.json$")
    done = world.git("push", "origin", "main", cwd=state["work"], ok=False,
                     env={**proxy.env, "AWS_MAX_ATTEMPTS": "2"})
    may_have_landed(world, done, "it is not there yet (")
    assert manifest_version(world) == before


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
    work = world.pushed()
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


@pytest.mark.early
def test_a_multipart_completion_whose_answer_was_lost_is_our_own(world, proxy):
    # botocore sends the completion again; the store no longer knows the upload
    # (UploadGone) or refuses the condition: the object of our size is ours.
    work = world.repo()
    world.commit(work, "big", {"big.bin": os.urandom(20 * 1024 * 1024)})
    proxy.add("drop", method="POST", key=r"/bundles/", nth=2)  # create, then complete
    world.git("push", "-q", "origin", "main", cwd=work, env=proxy.env)
    assert proxy.fired("drop")
    assert world.remote_refs()["refs/heads/main"] == world.rev(work, "main")
    healthy(world)
