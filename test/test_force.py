"""What a push may replace: fast-forwards, force, leases, --atomic and --dry-run."""


def diverge(world):
    """A remote main and a local main that have each moved on from a shared commit."""
    work, other = world.published()
    theirs = world.commit(other, "their change")
    world.git("push", "-q", "origin", "main", cwd=other)
    return work, other, theirs


def test_push_behind_a_moved_remote_is_rejected_with_fetch_first(world):
    work, _, theirs = diverge(world)
    world.commit(work, "my change")
    rejected = world.git("push", "origin", "main", cwd=work, ok=False)
    assert "! [rejected]        main -> main (fetch first)" in rejected.stderr
    assert "hint:" in rejected.stderr
    assert world.remote_refs()["refs/heads/main"] == theirs


def test_non_fast_forward_is_rejected_then_pull_and_push_succeed(world):
    work, _, theirs = diverge(world)
    world.commit(work, "my change")
    world.git("fetch", "-q", cwd=work)
    rejected = world.git("push", "origin", "main", cwd=work, ok=False)
    assert "! [rejected]        main -> main (non-fast-forward)" in rejected.stderr
    world.git("pull", "-q", "--no-rebase", "--no-edit", cwd=work)
    world.git("push", "-q", "origin", "main", cwd=work)
    assert world.git("merge-base", "--is-ancestor", theirs, world.remote_refs()[
        "refs/heads/main"], cwd=work, ok=None).returncode == 0


def test_an_existing_tag_is_not_replaced_without_force(world):
    work = world.repo(commits=2)
    world.git("tag", "v1", "HEAD~1", cwd=work)
    world.git("push", "-q", "origin", "v1", cwd=work)
    world.git("tag", "-f", "v1", "HEAD", cwd=work)
    rejected = world.git("push", "origin", "v1", cwd=work, ok=False)
    assert "(already exists)" in rejected.stderr
    assert world.remote_refs()["refs/tags/v1"] == world.rev(work, "HEAD~1")
    world.git("push", "-q", "--force", "origin", "v1", cwd=work)
    assert world.remote_refs()["refs/tags/v1"] == world.rev(work, "HEAD")


def test_force_and_plus_refspec_replace_the_remote_branch(world):
    work, _, _ = diverge(world)
    mine = world.commit(work, "my change")
    forced = world.git("push", "origin", "+main", cwd=work)
    assert "+" in forced.stderr and "(forced update)" in forced.stderr
    assert world.remote_refs()["refs/heads/main"] == mine
    world.git("reset", "-q", "--hard", "HEAD~1", cwd=work)
    world.git("push", "-q", "--force", "origin", "main", cwd=work)
    assert world.remote_refs()["refs/heads/main"] == world.rev(work, "HEAD")


def test_force_with_lease_replaces_only_what_was_expected(world):
    work, other, theirs = diverge(world)
    world.git("fetch", "-q", cwd=work)
    world.git("reset", "-q", "--hard", "origin/main~1", cwd=work)
    mine = world.commit(work, "rewritten")
    # The lease names what we fetched: it holds, so the rewrite goes through.
    world.git("push", "-q", "--force-with-lease", "origin", "main", cwd=work)
    assert world.remote_refs()["refs/heads/main"] == mine

    # Somebody pushes after our fetch: an explicit lease on the old value is stale.
    world.git("fetch", "-q", cwd=other)
    world.git("reset", "-q", "--hard", "origin/main", cwd=other)
    newest = world.commit(other, "theirs again")
    world.git("push", "-q", "origin", "main", cwd=other)
    world.commit(work, "mine again")
    stale = world.git("push", f"--force-with-lease=main:{mine}", "origin", "+main",
                      cwd=work, ok=False)
    assert "(stale info)" in stale.stderr
    assert world.remote_refs()["refs/heads/main"] == newest
    assert theirs != newest


def test_lease_is_checked_again_when_the_remote_moves_after_listing(world):
    # git checks a lease against the refs the helper listed; the helper must check it
    # again against the manifest it commits on.
    work, other, _ = diverge(world)
    helper, listing = world.start_helper_for_push(work)
    listed = listing[0].split()[0]
    world.commit(other, "lands after the listing")
    world.git("push", "-q", "origin", "main", cwd=other)
    out = world.finish(helper, f"option cas refs/heads/main:{listed}\n"
                               "push +refs/heads/main:refs/heads/main\n\n").stdout
    assert "error refs/heads/main stale info" in out
    assert world.remote_refs()["refs/heads/main"] == world.rev(other, "HEAD")


def test_atomic_push_updates_all_refs_or_none(world):
    work, _, theirs = diverge(world)
    world.git("branch", "feature", cwd=work)
    world.commit(work, "diverging")
    failed = world.git("push", "--atomic", "origin", "main", "feature", cwd=work, ok=False)
    assert "atomic push failed" in failed.stderr
    assert "refs/heads/feature" not in world.remote_refs()
    assert world.remote_refs()["refs/heads/main"] == theirs

    world.git("push", "-q", "--atomic", "origin", "feature", "+main", cwd=work)
    refs = world.remote_refs()
    assert refs["refs/heads/main"] == world.rev(work, "main")
    assert refs["refs/heads/feature"] == world.rev(work, "feature")


def test_atomic_is_enforced_by_the_helper_too(world):
    work, other, _ = diverge(world)
    world.git("branch", "feature", cwd=work)
    helper, _ = world.start_helper_for_push(work)
    world.commit(other, "lands after the listing")
    world.git("push", "-q", "origin", "main", cwd=other)
    out = world.finish(helper, "option atomic true\npush refs/heads/main:refs/heads/main\n"
                               "push refs/heads/feature:refs/heads/feature\n\n").stdout
    assert "error refs/heads/main fetch first" in out
    assert "error refs/heads/feature atomic push failed" in out
    assert "refs/heads/feature" not in world.remote_refs()


def test_dry_run_writes_nothing_to_the_bucket(world):
    work = world.repo()
    world.git("push", "-q", "origin", "main", "main:old", cwd=work)
    world.commit(work, "not pushed")
    world.git("branch", "new-branch", cwd=work)
    before = world.snapshot()
    dry = world.git("push", "--dry-run", "origin", "main", "new-branch", cwd=work)
    assert "main -> main" in dry.stderr and "new-branch -> new-branch" in dry.stderr
    world.git("push", "--dry-run", "origin", "--delete", "old", cwd=work)
    assert world.snapshot() == before


def test_a_refusal_is_explained_once_however_often_the_push_is_judged(world, proxy):
    work = world.pushed()
    world.git("push", "-q", "origin", "main:other", cwd=work)
    world.commit(work, "more")
    proxy.add("412", method="PUT", key=r"manifest\.json$", first=1)  # as if raced
    pushed = world.git("push", "origin", "main:other", ":main", cwd=work, env=proxy.env,
                       ok=False)
    assert proxy.fired("412")
    assert pushed.stderr.count("refusing to delete the current branch") == 1
    assert "[remote rejected] main (deletion of the current branch prohibited)" in \
        pushed.stderr
    assert world.remote_refs()["refs/heads/other"] == world.rev(work, "main")
