"""Concurrent pushes: exactly one winner per branch, nothing lost, others retried; and
pushers under random faults: every acknowledged change kept, no failure landed."""

import dataclasses
import os
import random
import threading

import pytest

# Every guarantee holds for encrypted repositories too (test_encryption.py), and for
# refs kept in tables (test_refs.py).
pytestmark = pytest.mark.parametrize("world", ["plain", "encrypted", "tables"],
                                    indirect=True)

CLIENTS = 4


def push_all_at_once(world, clones, refspec_for):
    procs = [world.start_git("push", "origin", refspec_for(i), cwd=clone)
             for i, clone in enumerate(clones)]
    return [world.finish(p) for p in procs]


@pytest.mark.early
@pytest.mark.parametrize("rounds", [pytest.param(3, marks=pytest.mark.short),
                                    pytest.param(10, marks=pytest.mark.long)])
def test_same_branch_each_round_has_one_winner_and_no_commit_is_lost(world, rounds):
    seed = world.repo()
    world.git("push", "-q", "-u", "origin", "main", cwd=seed)
    clones = [world.clone(f"client{i}") for i in range(CLIENTS)]
    accepted = []
    for round_ in range(rounds):
        for clone in clones:
            world.git("pull", "-q", "--no-rebase", cwd=clone)
        made = [world.commit(c, f"round {round_} client {i}") for i, c in enumerate(clones)]
        results = push_all_at_once(world, clones, lambda i: "main")
        winners = [i for i, r in enumerate(results) if r.returncode == 0]
        assert len(winners) == 1, [r.stderr for r in results]
        accepted.append(made[winners[0]])
        for i, result in enumerate(results):
            if i in winners:
                continue
            assert "(fetch first)" in result.stderr
            world.git("pull", "-q", "--no-rebase", "--no-edit", cwd=clones[i])
            world.git("push", "-q", "origin", "main", cwd=clones[i])
            accepted += [made[i], world.rev(clones[i], "HEAD")]

    final = world.clone("final")
    for sha in accepted:
        assert world.git("merge-base", "--is-ancestor", sha, "HEAD", cwd=final,
                         ok=None).returncode == 0, f"commit {sha} was lost"
    world.assert_fsck_clean(final)


@pytest.mark.early
def test_pushes_to_different_branches_at_the_same_moment_all_succeed(world):
    seed = world.repo()
    world.git("push", "-q", "origin", "main", cwd=seed)
    clones = [world.clone(f"client{i}") for i in range(CLIENTS)]
    for round_ in range(5):
        made = [world.commit(c, f"round {round_} client {i}") for i, c in enumerate(clones)]
        results = push_all_at_once(world, clones, lambda i: f"HEAD:refs/heads/client{i}")
        assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
        refs = world.remote_refs()
        assert [refs[f"refs/heads/client{i}"] for i in range(CLIENTS)] == made
    final = world.clone("final")
    world.git("fetch", "-q", "origin", cwd=final)
    world.assert_fsck_clean(final)


def test_a_lost_manifest_write_is_retried_when_the_refs_do_not_conflict(world):
    # Two helpers list the same manifest; the first commits, the second's conditional
    # write fails, and it re-reads and succeeds because it updates another branch.
    seed = world.repo()
    world.git("push", "-q", "origin", "main", cwd=seed)
    world.git("branch", "a", cwd=seed)
    world.git("branch", "b", cwd=seed)
    world.commit(seed, "for b")
    world.git("branch", "-f", "b", cwd=seed)
    helpers = [world.start_helper_for_push(seed, env={"GIT_REMOTE_S3_VERBOSE": "1"})[0]
               for _ in range(2)]
    first = world.finish(helpers[0], "push refs/heads/a:refs/heads/a\n\n")
    second = world.finish(helpers[1], "push refs/heads/b:refs/heads/b\n\n")
    assert first.stdout == "ok refs/heads/a\n\n" and second.stdout == "ok refs/heads/b\n\n"
    assert "reading it again" in second.stderr
    refs = world.remote_refs()
    assert refs["refs/heads/a"] == world.rev(seed, "a")
    assert refs["refs/heads/b"] == world.rev(seed, "b")


# Pushers under random faults. Each pusher works in its own clone: commits to the
# shared main (rebased on the remote first), force-pushes, deletes and recreates a
# branch only it writes, pushes tags, fetches; one runs a gc. Every request through the
# proxy may meet a fault. The checker knows what each command reported and fails on
# an acknowledged change that is not on the remote, a failure that landed anyway, and
# a traceback. A failure that says the write may have landed may have either outcome.

FAULT_CHANCE = 0.01  # per kind of fault: about 6% of requests meet one
RANDOM_FAULTS = ["500", "503", "reset", "drop", "stall", "cut"]


@dataclasses.dataclass
class Pusher:
    world: object
    number: int
    clone: object
    env: dict
    draw: random.Random
    problems: list
    acked: set = dataclasses.field(default_factory=set)   # commits acknowledged on main
    failed: set = dataclasses.field(default_factory=set)  # commits refused on main
    own: str = None  # what this pusher's branch holds on the remote (None: no branch)
    made: int = 0
    commands: int = 0

    @property
    def branch(self):
        return f"own{self.number}"

    def git(self, *args):
        return self.world.git(*args, cwd=self.clone, env=self.env, ok=None)

    def local(self, *args):
        return self.world.git(*args, cwd=self.clone).stdout.strip()

    def commit(self, where):
        self.made += 1
        return self.world.commit(self.clone, f"pusher {self.number} {where} {self.made}")

    def outcome(self, done, what):
        """'ok', 'failed' or 'unknown' (may have landed), after checking the one line."""
        self.commands += 1
        if "Traceback" in done.stderr:
            self.problems.append(f"{what}: a traceback\n{done.stderr}")
        if done.returncode == 0:
            return "ok"
        if "may have landed" in done.stderr:
            return "unknown"
        if not any(line.startswith(("fatal:", "error:")) for line in done.stderr.splitlines()):
            self.problems.append(f"{what}: failed without saying why\n{done.stderr}")
        return "failed"

    def remote(self, ref):
        return self.world.remote_refs().get(ref)  # straight to the server, no faults

    def shared(self):
        if self.git("pull", "-q", "--rebase", "origin", "main").returncode != 0:
            self.git("rebase", "--abort")
            return
        sha = self.commit("main")
        said = self.outcome(self.git("push", "-q", "origin", "HEAD:refs/heads/main"),
                            f"push of {sha} to main")
        if said == "ok":
            self.acked.add(sha)
        elif said == "failed":
            self.failed.add(sha)
            # never push the same commit twice, so each one has one verdict
            self.local("commit", "-q", "--amend", "-m", f"pusher {self.number} again")

    def own_branch(self):
        kind = self.draw.choice(["push", "force", "delete"] if self.own else ["push"])
        self.local("checkout", "-q", "-B", self.branch, self.own or "main")
        if kind == "delete":
            done, new = self.git("push", "-q", "origin", "--delete", self.branch), None
        else:
            if kind == "force":
                self.local("reset", "-q", "--hard", "HEAD~1")
            new = self.commit(kind)
            done = self.git("push", "-q", "--force", "origin", self.branch)
        said = self.outcome(done, f"{kind} of {self.branch} to {new}")
        found = self.remote(f"refs/heads/{self.branch}")
        expected = {"ok": [new], "failed": [self.own], "unknown": [new, self.own]}[said]
        if found not in expected:
            self.problems.append(f"{kind} of {self.branch} said {said}: the remote holds "
                                 f"{found}, not {expected}")
        self.own = found
        self.local("checkout", "-q", "main")

    def tag(self):
        name = f"v{self.number}.{self.made}"
        sha = self.commit("tagged")
        self.local("tag", name, sha)
        said = self.outcome(self.git("push", "-q", "origin", f"refs/tags/{name}"),
                            f"push of tag {name}")
        found = self.remote(f"refs/tags/{name}")
        if {"ok": found != sha, "failed": found is not None, "unknown": False}[said]:
            self.problems.append(f"push of tag {name} said {said}; the remote holds {found}")

    def fetch(self):
        self.outcome(self.git("fetch", "-q", "origin"), "fetch")

    def gc(self):
        self.outcome(self.world.git_s3("gc", "origin", cwd=self.clone, env=self.env,
                                       ok=None), "gc")

    def run(self, operations):
        try:
            for i in range(operations):
                if self.number == 0 and i == operations // 2:
                    self.gc()
                    continue
                self.draw.choice([self.shared, self.shared, self.own_branch, self.tag,
                                  self.fetch])()
        except Exception as exc:  # a setup step that must not fail did
            self.problems.append(f"pusher {self.number}: {exc}")


@pytest.mark.early
@pytest.mark.parametrize("pushers, operations", [
    pytest.param(3, 6, marks=pytest.mark.short), pytest.param(4, 20, marks=pytest.mark.long)])
def test_pushers_under_random_faults_keep_what_was_acknowledged(world, proxy, pushers,
                                                                operations, request):
    seed = int(os.environ.get("GIT_TEST_S3_SEED") or random.randrange(2 ** 32))
    seed_repo = world.repo(commits=2)
    world.git("push", "-q", "origin", "main", cwd=seed_repo)
    for n, fault in enumerate(RANDOM_FAULTS):
        proxy.add(fault, method="GET" if fault == "cut" else None, chance=FAULT_CHANCE,
                  seed=seed + n, after=100, seconds=3)
    # and one sure to fire: about one run in a hundred draws none by chance
    sure = RANDOM_FAULTS[seed % len(RANDOM_FAULTS)]
    proxy.add(sure, method="GET" if sure == "cut" else None, first=1, after=100, seconds=3)
    problems = []
    crew = [Pusher(world, i, world.clone(f"pusher{i}"), proxy.env,
                   random.Random(seed * 1000 + i), problems) for i in range(pushers)]
    threads = [threading.Thread(target=p.run, args=(operations,)) for p in crew]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    proxy.clear()

    final = world.clone("final")
    for pusher in crew:
        for sha in pusher.acked | pusher.failed:
            landed = world.git("merge-base", "--is-ancestor", sha, "origin/main",
                               cwd=final, ok=None).returncode == 0
            if landed != (sha in pusher.acked):
                problems.append(f"{sha}, {'acknowledged' if sha in pusher.acked else 'refused'}"
                                f" on main, is{'' if landed else ' not'} on it")
    assert not problems, f"seed {seed} (GIT_TEST_S3_SEED={seed} replays the draws), " \
        f"{len(proxy.fired())} faults:\n" + "\n".join(problems)
    assert proxy.fired(), f"seed {seed}: no fault fired"
    request.node.user_properties.append(("random faults", (  # conftest prints it
        f"seed {seed}: {sum(p.commands for p in crew)} commands by {pushers} pushers, "
        f"{len(proxy.fired())} faults")))
    world.assert_fsck_clean(final)
    assert "is healthy" in world.git_s3("doctor", world.url, cwd=world.tmp).stdout


def test_pushes_to_others_branches_never_leave_a_clone_more_bundles_than_allowed(world):
    # Each pusher lacks the other's branch, so merging the newest bundles needs the
    # other's objects too: without fetching them, bundles pile up for every clone.
    env = {"GIT_TEST_S3_MAX_BUNDLES": "4"}
    work, copy = world.published()
    for repo, branch in ((work, "ann"), (copy, "bob")):
        world.git("checkout", "-q", "-b", branch, cwd=repo)
    counts = []
    for i in range(6):
        for repo, branch in ((work, "ann"), (copy, "bob")):
            world.commit(repo, f"{branch} {i}", {f"{branch}-{i}.bin": os.urandom(3000)})
            world.git("push", "-q", "origin", branch, cwd=repo, env=env)
            counts.append(len(world.manifest()["bundles"]))
    assert max(counts) <= 4, counts
    fresh = world.clone("fresh")
    refs = world.remote_refs()
    for branch, repo in (("ann", work), ("bob", copy)):
        assert refs[f"refs/heads/{branch}"] == world.rev(repo, branch)
        assert world.rev(fresh, f"origin/{branch}") == world.rev(repo, branch)
    world.assert_fsck_clean(fresh)
