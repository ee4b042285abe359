"""Branches and tags: create, update, delete, --tags, --mirror, fetch --prune, clone -b."""


def test_branches_are_created_updated_and_deleted(world):
    work = world.repo()
    world.git("push", "-q", "origin", "main", cwd=work)
    world.git("checkout", "-q", "-b", "feature", cwd=work)
    first = world.commit(work, "feature work")
    world.git("push", "-q", "origin", "feature", cwd=work)
    assert world.remote_refs()["refs/heads/feature"] == first
    second = world.commit(work, "more feature work")
    world.git("push", "-q", "origin", "feature", cwd=work)
    assert world.remote_refs()["refs/heads/feature"] == second

    deleted = world.git("push", "origin", "--delete", "feature", cwd=work)
    assert "- [deleted]         feature" in deleted.stderr
    assert "refs/heads/feature" not in world.remote_refs()
    assert "refs/heads/main" in world.remote_refs()


def test_lightweight_and_annotated_tags_travel_with_push_tags(world):
    work = world.repo(commits=2)
    world.git("push", "-q", "origin", "main", cwd=work)
    world.git("tag", "v1-light", "HEAD~1", cwd=work)
    world.git("tag", "-a", "v1", "-m", "release one", cwd=work)
    world.git("push", "-q", "origin", "--tags", cwd=work)
    refs = world.remote_refs()
    assert refs["refs/tags/v1-light"] == world.rev(work, "HEAD~1")
    assert refs["refs/tags/v1"] == world.rev(work, "v1")  # the tag object itself

    copy = world.clone("copy")
    assert world.git("cat-file", "-t", "v1", cwd=copy).stdout.strip() == "tag"
    assert world.git("tag", "-l", "-n1", "v1", cwd=copy).stdout.split() == [
        "v1", "release", "one"]
    world.assert_fsck_clean(copy)

    world.git("push", "-q", "origin", ":refs/tags/v1-light", cwd=work)
    assert "refs/tags/v1-light" not in world.remote_refs()


def test_mirror_makes_the_remote_equal_the_local_refs(world):
    work = world.repo()
    world.git("branch", "gone", cwd=work)
    world.git("push", "-q", "--all", "origin", cwd=work)
    world.git("branch", "-D", "gone", cwd=work)
    world.git("branch", "fresh", cwd=work)
    world.git("tag", "t1", cwd=work)
    world.git("push", "-q", "--mirror", "origin", cwd=work)
    refs = world.remote_refs()
    assert "refs/heads/gone" not in refs
    assert {"refs/heads/main", "refs/heads/fresh", "refs/tags/t1"} <= set(refs)


def test_fetch_prune_removes_branches_deleted_on_the_remote(world):
    work = world.repo()
    world.git("branch", "short-lived", cwd=work)
    world.git("push", "-q", "origin", "main", "short-lived", cwd=work)
    copy = world.clone("copy")
    assert world.git("branch", "-r", cwd=copy).stdout.count("origin/short-lived") == 1
    world.git("push", "-q", "origin", "--delete", "short-lived", cwd=work)
    pruned = world.git("fetch", "--prune", cwd=copy)
    assert "[deleted]" in pruned.stderr
    assert "origin/short-lived" not in world.git("branch", "-r", cwd=copy).stdout


def test_clone_b_checks_out_the_named_branch(world):
    work = world.repo()
    world.git("checkout", "-q", "-b", "release", cwd=work)
    release = world.commit(work, "release only")
    world.git("push", "-q", "origin", "main", "release", cwd=work)
    copy = world.clone("copy", None, "-b", "release")
    assert world.rev(copy, "HEAD") == release
    assert world.git("branch", "--show-current", cwd=copy).stdout.strip() == "release"


def test_any_revision_can_be_pushed_to_a_new_ref(world):
    work = world.repo(commits=3)
    world.git("push", "-q", "origin", "HEAD~2:refs/heads/old", "HEAD:refs/tags/now", cwd=work)
    refs = world.remote_refs()
    assert refs["refs/heads/old"] == world.rev(work, "HEAD~2")
    assert refs["refs/tags/now"] == world.rev(work, "HEAD")
    assert world.manifest()["head"] == "refs/heads/old"
