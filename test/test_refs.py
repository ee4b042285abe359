"""Branches and tags: create, update, delete, --tags, --mirror, fetch --prune, clone -b;
and many refs, kept in ref tables."""

import pytest


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


# Many refs: a repository of many tags keeps them in immutable ref tables (format 6),
# so a push or a fetch moves what changed, not every ref.

def tagged(world, count, commits=20):
    """A repository of `commits` commits with `count` tags into them (one update-ref,
    as a release history or CI would make them), pushed to origin and to a local bare
    repository, git's own answer to every question below."""
    work = world.repo(commits=commits)
    shas = world.git("rev-list", "main", cwd=work).stdout.split()
    world.git("update-ref", "--stdin", cwd=work, input="".join(
        f"create refs/tags/v{i:05d} {shas[i % len(shas)]}\n" for i in range(count)))
    world.git("init", "-q", "--bare", world.tmp / "oracle.git")
    world.git("remote", "add", "oracle", world.tmp / "oracle.git", cwd=work)
    for remote in ("origin", "oracle"):
        world.git("push", "-q", remote, "refs/heads/*:refs/heads/*",
                  "refs/tags/*:refs/tags/*", cwd=work)
    return work


def assert_same_refs(world):
    oracle = world.remote_refs(world.tmp / "oracle.git")
    assert world.remote_refs() == oracle and len(oracle) > 1


def tables_on_bucket(world):
    return {k for k in world.keys() if k.startswith("tables/")}


def test_many_refs_live_in_tables_and_a_push_rewrites_only_what_changed(world, helper_module):
    work = tagged(world, 300)
    manifest = world.manifest()
    assert manifest["format"] == helper_module.TABLES_FORMAT and manifest["refs"] == {}
    assert manifest["changed"] == {} and [t["count"] for t in manifest["tables"]] == [301]
    (bundle,) = manifest["bundles"]
    # The tips of the one bundle are the refs: the same table, stored once.
    assert bundle["tips"] == {} and bundle["tips_table"] == manifest["tables"][0]["key"]
    assert_same_refs(world)
    tables = tables_on_bucket(world)

    world.commit(work, "one more")
    for remote in ("origin", "oracle"):
        world.git("push", "-q", remote, "main", ":refs/tags/v00007", cwd=work)
    manifest = world.manifest()
    assert manifest["changed"] == {"refs/heads/main": world.rev(work, "main"),
                                   "refs/tags/v00007": None}
    assert tables_on_bucket(world) == tables  # nothing but the manifest and a bundle
    body = world.s3.get_object(Bucket=world.server.bucket,
                               Key=f"{world.prefix}/manifest.json")["Body"].read()
    assert len(body) < 4096, len(body)
    assert_same_refs(world)
    copy = world.clone("copy")
    assert world.git("tag", cwd=copy).stdout.split() == \
        world.git("tag", cwd=world.tmp / "oracle.git").stdout.split()
    world.assert_fsck_clean(copy)


def test_changes_beyond_the_manifest_go_in_tables_that_merge_as_bundles_do(world):
    world.env["GIT_TEST_S3_CHANGES_KEPT"] = "4"
    work = tagged(world, 40, commits=3)
    for round_ in range(6):  # 5 new tags a push: a new table each time, merged when small
        world.git("update-ref", "--stdin", cwd=work, input="".join(
            f"create refs/tags/r{round_}-{i} HEAD\n" for i in range(5)))
        world.git("tag", "-d", f"v{round_:05d}", cwd=work)
        for remote in ("origin", "oracle"):
            world.git("push", "-q", "--prune", remote, "refs/tags/*:refs/tags/*", cwd=work)
        assert_same_refs(world)
    manifest = world.manifest()
    counts = [t["count"] for t in manifest["tables"]]
    assert len(counts) < 6 and counts == sorted(counts, reverse=True), counts
    assert len(manifest["changed"]) <= 4
    live = {t["key"] for t in manifest["tables"]} | {b.get("tips_table") for b in
                                                     manifest["bundles"]}
    retired = {r["key"] for r in manifest["retired"]}
    assert retired and tables_on_bucket(world) == (live | retired) - {None}
    copy = world.clone("copy")
    assert world.git("tag", cwd=copy).stdout.split() == \
        world.git("tag", cwd=world.tmp / "oracle.git").stdout.split()


def table_gets(proxy):
    return [key for method, key, *_ in proxy.traffic if method == "GET" and "/tables/" in key]


def test_a_clone_keeps_the_tables_it_read_and_never_downloads_them_again(world, proxy):
    world.env["GIT_TEST_S3_CHANGES_KEPT"] = "2"
    work = tagged(world, 50, commits=2)
    copy = world.clone("copy")
    proxy.traffic.clear()
    world.git("fetch", "-q", cwd=copy, env=proxy.env)
    assert table_gets(proxy) == []  # all kept from the clone
    world.commit(work, "one more")
    world.git("push", "-q", "origin", "main", cwd=work)
    proxy.traffic.clear()
    world.git("fetch", "-q", cwd=copy, env=proxy.env)
    assert table_gets(proxy) == []  # one change: in the manifest itself
    world.git("update-ref", "--stdin", cwd=work, input="".join(
        f"create refs/tags/new{i} HEAD\n" for i in range(3)))
    world.git("push", "-q", "origin", "--tags", cwd=work)
    proxy.traffic.clear()
    world.git("fetch", "-q", "--tags", cwd=copy, env=proxy.env)
    newest = world.manifest()["tables"][-1]["key"]
    assert [k.rpartition("/tables/")[2] for k in table_gets(proxy)] == [newest[7:]]
    assert world.git("tag", cwd=copy).stdout.split() == world.git("tag", cwd=work).stdout.split()

    # A damaged copy in the clone is not taken: the table is downloaded again.
    kept = next((copy / ".git" / "s3").glob("tables-*"))
    for path in kept.iterdir():
        path.write_bytes(path.read_bytes().replace(b"refs/tags/new1", b"refs/tags/bad1"))
    proxy.traffic.clear()
    listed = world.git("ls-remote", "origin", cwd=copy, env=proxy.env).stdout
    assert "refs/tags/new1" in listed and "bad1" not in listed and table_gets(proxy)


def test_a_table_that_does_not_hold_what_its_name_says_is_refused(world):
    world.env["GIT_TEST_S3_CHANGES_KEPT"] = "2"
    tagged(world, 10, commits=2)
    key = world.manifest()["tables"][0]["key"]
    world.put(key, b'{"refs": {"refs/heads/main": "' + b"1" * 40 + b'"}}\n')
    listed = world.git("ls-remote", world.url, ok=False)
    assert listed.stderr.strip().splitlines()[-1] == (
        f"fatal: '{world.url}/{key}' does not hold what its name says (it was replaced): "
        "refusing it")
    assert "Traceback" not in listed.stderr


@pytest.mark.parametrize("world", ["encrypted"], indirect=True)
def test_an_encrypted_repository_keeps_its_tables_encrypted(world, gpg_keys):
    world.env["GIT_TEST_S3_CHANGES_KEPT"] = "2"
    work = tagged(world, 12, commits=2)
    tables = tables_on_bucket(world)
    assert tables
    for key in tables:
        data = world.s3.get_object(Bucket=world.server.bucket,
                                   Key=f"{world.prefix}/{key}")["Body"].read()
        assert b"refs/" not in data and world.rev(work, "main").encode() not in data
        assert b"refs/tags/v00003" in world.decrypt(data)
    assert_same_refs(world)
    # New recipients: the tables are made anew, for them too; the old ones retire.
    world.git_s3("encrypt", world.url, "--to", "bob@example.com")
    manifest = world.manifest()
    assert not {t["key"] for t in manifest["tables"]} & tables
    assert tables <= {r["key"] for r in manifest["retired"]}
    assert_same_refs(world)


def test_gc_and_doctor_know_the_tables(world):
    world.env["GIT_TEST_S3_CHANGES_KEPT"] = "2"
    work = tagged(world, 20, commits=3)
    world.git("push", "-q", "origin", ":refs/tags/v00001", ":refs/tags/v00002",
              ":refs/tags/v00003", cwd=work)
    world.git("push", "-q", "oracle", ":refs/tags/v00001", ":refs/tags/v00002",
              ":refs/tags/v00003", cwd=work)
    stray = f"tables/{'0' * 64}.json"
    world.put(stray, b"{}")
    checked = world.git_s3("doctor", world.url).stdout  # young: a push may be using it
    assert f"leftover:  {stray}" in checked and "tables:    2 of 18 refs" in checked
    world.git_s3("gc", world.url)
    manifest = world.manifest()
    assert len(manifest["tables"]) == 1 and manifest["changed"] == {}
    assert manifest["tables"][0]["count"] == 18
    assert_same_refs(world)
    world.s3.delete_object(Bucket=world.server.bucket, Key=f"{world.prefix}/{stray}")
    assert f"'{world.url}' is healthy" in world.git_s3("doctor", world.url).stdout
