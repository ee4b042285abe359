"""git s3 info, protect / unprotect, delete-branch and set-head."""

import json

import pytest


def test_info_shows_refs_head_protection_bundles_and_lfs(world):
    work = world.pushed(commits=2)
    world.git("push", "-q", "origin", "main:topic", cwd=work)
    world.git_s3("protect", "origin", "main", cwd=work)
    world.put(f"lfs/{'a' * 64}", b"x" * 2048)
    shown = world.git_s3("info", "origin", cwd=work).stdout
    main = world.rev(work, "main")
    assert f"repository: {world.url} (manifest format 7)" in shown
    assert "HEAD:       main" in shown and "protected:  main" in shown
    assert f"  {main}  refs/heads/main" in shown and f"  {main}  refs/heads/topic" in shown
    bundle = world.manifest()["bundles"][0]
    assert f"bundles:    1 ({bundle['size']} bytes)" in shown and bundle["key"] in shown
    assert "LFS:        1 objects (2.0 KiB)" in shown


def test_a_protected_branch_fast_forwards_but_refuses_force_and_delete(world):
    work, copy = world.published(commits=2)
    protected = world.git_s3("protect", world.url, "main", cwd=world.tmp)
    assert "protected 'main'" in protected.stdout
    assert world.manifest()["protected"] == ["refs/heads/main"]

    forward = world.commit(work, "forward")
    world.git("push", "-q", "--force", "origin", "main", cwd=work)  # --force, yet a fast-forward
    world.git("reset", "-q", "--hard", "HEAD~2", cwd=work)
    before = world.snapshot()
    forced = world.git("push", "--force", "origin", "main", cwd=work, ok=False)
    assert "! [remote rejected] main -> main (protected branch: no force push; " \
           "'git s3 unprotect' allows it)" in forced.stderr
    deleted = world.git("push", "origin", "--delete", "main", cwd=work, ok=False)
    assert "(protected branch: no delete; 'git s3 unprotect' allows it)" in deleted.stderr
    assert world.snapshot() == before
    assert world.remote_refs()["refs/heads/main"] == forward

    world.git_s3("unprotect", "origin", "main", cwd=work)
    assert "protected" not in world.manifest()
    world.git("push", "-q", "--force", "origin", "main", cwd=work)
    assert world.remote_refs()["refs/heads/main"] == world.rev(work, "main")


def test_delete_branch_refuses_head_and_protected_branches_unless_forced(world):
    work = world.pushed()
    world.git("push", "-q", "origin", "main:topic", "main:kept", cwd=work)
    world.git_s3("protect", "origin", "kept", cwd=work)

    world.git_s3("delete-branch", "origin", "-b", "topic", cwd=work)
    assert "refs/heads/topic" not in world.remote_refs()
    before = world.snapshot()
    head = world.git_s3("delete-branch", "origin", "-b", "main", cwd=work, ok=False)
    assert "fatal: refusing to delete 'main': deletion of the current branch " \
        "prohibited\nhint: git s3 set-head another branch first, or use --force" in head.stderr
    pushed = world.git("push", "origin", "--delete", "main", cwd=work, ok=False)
    assert "! [remote rejected] main (deletion of the current branch prohibited)" in \
        pushed.stderr  # the same decision, from the same code
    kept = world.git_s3("delete-branch", "origin", "-b", "kept", cwd=work, ok=False)
    assert "fatal: refusing to delete 'kept': protected branch: no delete; 'git s3 " \
        "unprotect' allows it\nhint: use --force to delete it anyway" in kept.stderr
    assert world.snapshot() == before

    world.git_s3("delete-branch", "origin", "-b", "kept", "--force", cwd=work)
    assert "refs/heads/kept" not in world.remote_refs()
    assert "protected" not in world.manifest()
    missing = world.git_s3("delete-branch", "origin", "-b", "nope", cwd=work, ok=False)
    assert missing.stderr.strip() == f"fatal: there is no branch 'nope' on '{world.url}'"


def test_set_head_changes_what_clones_check_out(world):
    work = world.pushed()
    world.git("switch", "-q", "-c", "develop", cwd=work)
    develop = world.commit(work, "on develop")
    world.git("push", "-q", "origin", "develop", cwd=work)
    changed = world.git_s3("set-head", "origin", "develop", cwd=work)
    assert f"HEAD of '{world.url}' is now 'develop'" in changed.stdout
    assert world.remote_refs()["HEAD"] == develop
    fresh = world.clone("fresh")
    assert world.git("symbolic-ref", "HEAD", cwd=fresh).stdout.strip() == "refs/heads/develop"
    missing = world.git_s3("set-head", "origin", "missing", cwd=work, ok=False)
    assert missing.stderr == f"fatal: there is no branch 'missing' on '{world.url}'\n"
    assert world.manifest()["head"] == "refs/heads/develop"


def test_a_change_races_a_push_and_both_land(world):
    """git s3 writes the manifest conditionally, as pushes do: neither is lost."""
    work = world.pushed()
    world.git("push", "-q", "origin", "main:topic", cwd=work)
    pushes = []
    for i in range(3):
        world.commit(work, f"racing {i}")
        pushes.append(world.start_git("push", "-q", "origin", f"main:race-{i}", cwd=work))
        world.git_s3("protect" if i % 2 == 0 else "unprotect", "origin", "topic", cwd=work)
    for proc in pushes:
        assert world.finish(proc).returncode == 0
    refs = world.remote_refs()
    assert all(f"refs/heads/race-{i}" in refs for i in range(3))
    assert world.manifest()["protected"] == ["refs/heads/topic"]


@pytest.mark.parametrize("args, message", [
    (["info", "nowhere"], "fatal: 'nowhere' is neither a remote of this repository nor "
                          "an s3:// URL"),
    (["info", "s3://Bad_Bucket/x"], "fatal: 'Bad_Bucket' is not a valid S3 bucket name"),
    (["info", "https://example.com/x"], "is not an s3:// URL"),
    (["frobnicate", "origin"], "error: argument command: invalid choice: 'frobnicate'"),
    (["protect", "origin"], "error: the following arguments are required: branch"),
    (["protect", "origin", "bad..name"], "fatal: 'bad..name' is not a valid branch name"),
])
def test_bad_input_gets_one_clear_line(world, args, message):
    work = world.pushed()
    before = world.snapshot()
    refused = world.git_s3(*args, cwd=work, ok=False)
    assert message in refused.stderr and "Traceback" not in refused.stderr
    assert refused.returncode in (128, 129)
    assert world.snapshot() == before


def test_an_empty_prefix_is_no_repository(world):
    refused = world.git_s3("info", world.url, ok=False)
    assert refused.stderr.strip() == f"fatal: there is no repository at '{world.url}'"


def test_every_command_has_help(world):
    usage = world.run("git-s3", "--help").stdout
    for command in ("info", "doctor", "gc", "protect", "unprotect", "delete-branch",
                    "set-head", "migrate", "lfs-prune"):
        assert f"    {command} <remote>" in usage
        shown = world.git_s3(command, "--help")
        assert shown.stdout.startswith(f"usage: git s3 {command}")
    assert world.git_s3("-h").stdout == usage


def test_a_manifest_of_a_newer_format_is_not_changed(world, helper_module):
    work = world.pushed()
    manifest = world.manifest()
    manifest["format"] = helper_module.FORMAT + 1
    world.put("manifest.json", json.dumps(manifest))
    before = world.snapshot()
    refused = world.git_s3("set-head", "origin", "main", cwd=work, ok=False)
    assert "fatal: refusing to write" in refused.stderr
    assert world.snapshot() == before


def test_verbose_explains_every_s3_call_before_or_after_the_command(world):
    work = world.pushed()
    for args in (["-v", "info", "origin"], ["info", "-v", "origin"]):
        shown = world.git_s3(*args, cwd=work)
        assert "s3: GetObject s3://" in shown.stderr and "manifest.json" in shown.stderr
    assert "s3:" not in world.git_s3("info", "origin", cwd=work).stderr
