"""Repositories in the bundle-per-ref layout of awslabs' git-remote-s3: read-only
clone and fetch, refused pushes, and `git s3 migrate`."""

from conftest import write_legacy_layout


def legacy_repository(world):
    """A repository with main, a tag and a protected release branch, stored in the
    old layout; main has a second bundle from a race (its older tip)."""
    work = world.repo(commits=2)
    world.git("tag", "v1", "HEAD~1", cwd=work)
    world.git("branch", "release", "HEAD~1", cwd=work)
    write_legacy_layout(world, work, {"refs/heads/main": ["HEAD~1", "main"],
                                      "refs/heads/release": "release",
                                      "refs/tags/v1": "v1"})
    world.put("refs/heads/release/PROTECTED#", b"")
    return work


def test_an_old_layout_clones_and_fetches_with_a_warning(world):
    work = legacy_repository(world)
    cloned = world.git("clone", world.url, world.tmp / "copy")
    assert "warning:" in cloned.stderr and "old bundle-per-ref layout" in cloned.stderr
    assert "git s3 migrate" in cloned.stderr
    copy = world.tmp / "copy"
    assert world.rev(copy, "HEAD") == world.rev(work, "main")
    assert world.rev(copy, "v1") == world.rev(work, "v1")
    assert world.rev(copy, "origin/release") == world.rev(work, "release")
    world.assert_fsck_clean(copy)

    newer = world.commit(work, "newer")
    for key in world.keys():  # the old tool's push replaces the ref's bundle
        if key.startswith("refs/heads/main/"):
            world.s3.delete_object(Bucket=world.server.bucket, Key=f"{world.prefix}/{key}")
    write_legacy_layout(world, work, {"refs/heads/main": "main"})
    world.git("fetch", "-q", "origin", cwd=copy)
    assert world.rev(copy, "origin/main") == newer


def test_a_push_to_an_old_layout_is_refused_with_the_migrate_hint(world):
    work = legacy_repository(world)
    before = world.snapshot()
    world.commit(work, "more")
    refused = world.git("push", "origin", "main", cwd=work, ok=False)
    assert "fatal:" in refused.stderr and "old bundle-per-ref layout" in refused.stderr
    assert "hint: convert it first: git s3 migrate origin" in refused.stderr
    assert world.snapshot() == before


def test_migrate_carries_over_refs_head_protection_and_raced_bundles(world):
    work = legacy_repository(world)
    older = world.rev(work, "main~1")
    migrated = world.git_s3("migrate", "origin", cwd=work)
    assert "migrated" in migrated.stdout and "--delete-legacy" in migrated.stdout

    refs = world.remote_refs()
    assert refs["refs/heads/main"] == world.rev(work, "main")
    assert refs["refs/heads/release"] == world.rev(work, "release")
    assert refs["refs/tags/v1"] == world.rev(work, "v1")
    assert refs[f"refs/heads/main-{older[:7]}"] == older  # the raced bundle's tip
    assert refs["HEAD"] == refs["refs/heads/main"]
    assert world.manifest()["protected"] == ["refs/heads/release"]
    assert "HEAD" in world.keys()  # the old objects stay

    copy = world.clone("copy")
    world.assert_fsck_clean(copy)
    world.commit(copy, "after the migration")
    world.git("push", "-q", "origin", "main", cwd=copy)
    world.git("push", "origin", "--delete", "release", cwd=copy, ok=False)  # protected
    again = world.git_s3("migrate", world.url, cwd=work)
    assert "already migrated" in again.stdout


def test_delete_legacy_removes_only_the_old_layout(world):
    work = legacy_repository(world)
    world.put("refs/heads/main/repo.zip", b"zip")
    world.git_s3("migrate", "origin", cwd=work)
    deleted = world.git_s3("migrate", "origin", "--delete-legacy", cwd=work)
    assert "deleted 6 objects of the old layout" in deleted.stdout
    keys = world.keys()
    assert "HEAD" not in keys and not [k for k in keys if k.endswith((".bundle", "#"))
                                       and not k.startswith("bundles/")]
    assert "refs/heads/main/repo.zip" in keys  # CI systems read the archives
    world.assert_fsck_clean(world.clone("copy"))
    nothing = world.git_s3("migrate", "origin", "--delete-legacy", cwd=work)
    assert "nothing to migrate" in nothing.stdout


def test_delete_legacy_refuses_while_the_old_layout_holds_unmigrated_commits(world):
    work = legacy_repository(world)
    world.git_s3("migrate", "origin", cwd=work)
    late = world.commit(work, "pushed with the old tool after the migration")
    write_legacy_layout(world, work, {"refs/heads/late": "main"})
    before = world.snapshot()
    refused = world.git_s3("migrate", "origin", "--delete-legacy", cwd=work, ok=False)
    assert f"fatal: the old layout holds {late[:12]}" in refused.stderr
    assert world.snapshot() == before


def test_migrate_without_any_repository_says_so(world):
    work = world.repo()
    missing = world.git_s3("migrate", "origin", cwd=work, ok=False)
    assert missing.stderr.strip() == f"fatal: there is no repository at '{world.url}'"


def test_git_s3_commands_on_an_old_layout_point_to_migrate(world):
    work = legacy_repository(world)
    before = world.snapshot()
    for args in (["info", "origin"], ["protect", "origin", "main"], ["gc", "origin"]):
        refused = world.git_s3(*args, cwd=work, ok=False)
        assert f"fatal: '{world.url}' is in the old bundle-per-ref layout" in refused.stderr
        assert "hint: convert it with: git s3 migrate origin" in refused.stderr
    assert world.snapshot() == before
