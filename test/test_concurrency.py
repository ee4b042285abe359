"""Concurrent pushes: exactly one winner per branch, nothing lost, others retried."""

import pytest

# Every guarantee holds for encrypted repositories too (test_encryption.py).
pytestmark = pytest.mark.parametrize("world", ["plain", "encrypted"], indirect=True)

CLIENTS = 4


def push_all_at_once(world, clones, refspec_for):
    procs = [world.start_git("push", "origin", refspec_for(i), cwd=clone)
             for i, clone in enumerate(clones)]
    return [world.finish(p) for p in procs]


@pytest.mark.parametrize("rounds", [3, pytest.param(10, marks=pytest.mark.long)])
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
