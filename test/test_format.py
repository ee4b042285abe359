"""The on-bucket format, as behaviour: one GET to list, incremental transfers,
compaction, plain git bundles, and a versioned manifest."""

import json
import re

import pytest

VERBOSE = {"GIT_REMOTE_S3_VERBOSE": "1"}


def s3_calls(stderr):
    """The S3 operations the helper logged, as (operation, key) pairs."""
    return re.findall(r"^s3: (\w+) s3://[^/]+/(\S*)", stderr, re.M)


def bundle_downloads(stderr):
    return [key for op, key in s3_calls(stderr) if op == "GetObject" and "/bundles/" in key]


def test_ls_remote_is_one_get_whatever_else_is_under_the_prefix(world):
    work = world.repo()
    world.git("push", "-q", "origin", "main", cwd=work)
    for i in range(50):
        world.put(f"lfs/{i:064x}", b"large file content")
    listed = world.git("ls-remote", world.url, env=VERBOSE)
    assert s3_calls(listed.stderr) == [("GetObject", f"{world.prefix}/manifest.json")]
    assert "refs/heads/main" in listed.stdout


def test_fetch_downloads_only_the_bundle_it_lacks(world):
    work, copy = world.published(commits=3)
    world.commit(work, "one more")
    world.git("push", "-q", "origin", "main", cwd=work)
    newest = world.manifest()["bundles"][-1]["key"]
    fetched = world.git("fetch", cwd=copy, env=VERBOSE)
    assert bundle_downloads(fetched.stderr) == [f"{world.prefix}/{newest}"]
    assert world.rev(copy, "origin/main") == world.rev(work, "main")
    nothing = world.git("fetch", cwd=copy, env=VERBOSE)
    assert bundle_downloads(nothing.stderr) == []


def test_clone_downloads_each_bundle_once(world):
    work = world.repo()
    for i in range(6):
        world.commit(work, f"push {i}")
        world.git("push", "-q", "origin", "main", cwd=work)
    cloned = world.git("clone", world.url, world.tmp / "copy", env=VERBOSE)
    downloads = bundle_downloads(cloned.stderr)
    assert sorted(downloads) == sorted(f"{world.prefix}/{b['key']}"
                                       for b in world.manifest()["bundles"])
    assert len(set(downloads)) == len(downloads)


def test_after_30_one_commit_pushes_a_clone_downloads_a_handful_of_bundles(world):
    # test_units proves the bound over thousands of simulated pushes; this is the
    # same compaction end to end, on real bundles.
    work = world.repo()
    for i in range(30):
        world.commit(work, f"push {i}")
        world.git("push", "-q", "origin", "main", cwd=work)
    bundles = world.manifest()["bundles"]
    assert len(bundles) <= 6
    cloned = world.git("clone", world.url, world.tmp / "copy", env=VERBOSE)
    assert sorted(bundle_downloads(cloned.stderr)) == sorted(
        f"{world.prefix}/{b['key']}" for b in bundles)
    copy = world.tmp / "copy"
    assert int(world.git("rev-list", "--count", "HEAD", cwd=copy).stdout) == 31
    world.assert_fsck_clean(copy)


def test_replaced_bundles_are_deleted_once_their_grace_period_is_over(world):
    work = world.repo()
    for i in range(8):
        world.commit(work, f"push {i}")
        world.git("push", "-q", "origin", "main", cwd=work)
    manifest = world.manifest()
    assert manifest["retired"], "eight small pushes should have merged some bundles"
    retired = {r["key"] for r in manifest["retired"]}
    assert retired <= set(world.keys())  # still readable during the grace period

    world.commit(work, "after the grace period")
    world.git("push", "-q", "origin", "main", cwd=work,
              env={"GIT_TEST_S3_RETIRE_GRACE": "0"})
    manifest = world.manifest()
    live = {b["key"] for b in manifest["bundles"]}
    assert manifest["retired"] == []
    assert not retired & set(world.keys()) - live
    assert [k for k in world.keys() if k.startswith("bundles/")] == sorted(live)
    world.assert_fsck_clean(world.clone("copy"))


@pytest.mark.parametrize("world", ["plain", "tables"], indirect=True)
def test_every_bundle_is_a_plain_git_bundle_and_rebuilds_the_repository(world):
    # DESIGN.md's recipe, with boto3 as the S3 client; with refs in tables (format 6) too.
    work = world.repo(commits=3)
    world.git("tag", "-a", "v1", "-m", "one", cwd=work)
    world.git("push", "-q", "origin", "main", "v1", cwd=work)
    world.git("checkout", "-q", "-b", "topic", cwd=work)
    for i in range(4):
        world.commit(work, f"topic {i}")
        world.git("push", "-q", "origin", "topic", cwd=work)
    manifest = world.manifest()
    rebuilt = world.tmp / "rebuilt.git"
    world.git("init", "-q", "--bare", rebuilt)
    for i, bundle in enumerate(manifest["bundles"]):
        path = world.tmp / f"{i}.bundle"
        world.s3.download_file(world.server.bucket, f"{world.prefix}/{bundle['key']}",
                               str(path))
        world.git("bundle", "verify", "-q", path, cwd=rebuilt)
        world.git("bundle", "unbundle", path, cwd=rebuilt)
    refs = dict(manifest["refs"])
    for table in manifest.get("tables", []):
        body = world.s3.get_object(Bucket=world.server.bucket,
                                   Key=f"{world.prefix}/{table['key']}")["Body"].read()
        refs.update(json.loads(body)["refs"])
    refs.update(manifest.get("changed", {}))
    assert ("tables" in manifest) == (world.env.get("GIT_TEST_S3_CHANGES_KEPT") == "1")
    updates = "".join(f"update {ref} {sha}\n" for ref, sha in refs.items() if sha)
    world.git("update-ref", "--stdin", cwd=rebuilt, input=updates)
    world.assert_fsck_clean(rebuilt)
    assert world.rev(rebuilt, "topic") == world.rev(work, "topic")
    assert world.rev(rebuilt, "v1") == world.rev(work, "v1")
    assert world.git("for-each-ref", cwd=rebuilt).stdout == \
        world.git("for-each-ref", "refs/heads", "refs/tags", cwd=work).stdout


def test_manifest_of_a_newer_format_is_read_with_a_warning_but_never_written(
        world, helper_module):
    work = world.repo()
    world.git("push", "-q", "origin", "main", cwd=work)
    manifest = world.manifest()
    assert manifest["format"] == helper_module.LOG_FORMAT  # what a plain push writes
    manifest["format"] = helper_module.FORMAT + 1
    world.put("manifest.json", json.dumps(manifest))
    before = world.snapshot()

    listed = world.git("ls-remote", world.url)
    assert "warning:" in listed.stderr and \
        f"manifest format {helper_module.FORMAT + 1}" in listed.stderr
    world.commit(work, "refused")
    refused = world.git("push", "origin", "main", cwd=work, ok=False)
    assert "fatal: refusing to write" in refused.stderr
    assert "hint: upgrade git-remote-s3" in refused.stderr
    assert world.snapshot() == before


def test_a_corrupt_manifest_is_refused_with_how_to_repair(world):
    work = world.repo()
    world.git("push", "-q", "origin", "main", cwd=work)
    for corrupt in (b"{not json", b'{"format": 1, "refs": {"main": "x"}, "bundles": []}'):
        world.put("manifest.json", corrupt)
        before = world.snapshot()
        listed = world.git("ls-remote", world.url, ok=False)
        assert "fatal: the manifest" in listed.stderr and "is corrupt" in listed.stderr
        assert "hint: restore an earlier version" in listed.stderr
        assert "Traceback" not in listed.stderr
        world.git("push", "origin", "main:refs/heads/other", cwd=work, ok=False)
        assert world.snapshot() == before
