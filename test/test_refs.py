"""Branches and tags: create, update, delete, --tags, --mirror, fetch --prune, clone -b;
and many refs, kept in ref tables."""

import hashlib
import json

import pytest

from test_faults import test_an_answer_lost_while_another_writer_commits_is_reported_once \
    as answer_lost_while_another_writer_commits


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
    assert manifest["format"] == helper_module.LOG_FORMAT and manifest["refs"] == {}
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
    retired = {r["key"] for r in manifest["retired"] + manifest["retired_tables"]}
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
        f"fatal: the ref table '{world.url}/{key}' does not hold what its name says (it was "
        "replaced): refusing it")
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
    assert tables <= {r["key"] for r in manifest["retired_tables"]}
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
    assert f"leftover:  {stray}" in checked and "tables:    2, holding " in checked
    world.git_s3("gc", world.url)
    manifest = world.manifest()
    assert len(manifest["tables"]) == 1 and manifest["changed"] == {}
    assert manifest["tables"][0]["count"] == 18
    assert_same_refs(world)
    world.s3.delete_object(Bucket=world.server.bucket, Key=f"{world.prefix}/{stray}")
    assert f"'{world.url}' is healthy" in world.git_s3("doctor", world.url).stdout


@pytest.mark.early
@pytest.mark.parametrize("world", ["tables"], indirect=True)
@pytest.mark.parametrize("name", ["push", "delete", "gc"])
def test_with_tables_an_answer_lost_while_another_writer_commits_is_one_write(world, proxy,
                                                                              name):
    # test_faults' races, every write making tables (GIT_TEST_S3_CHANGES_KEPT=1)
    answer_lost_while_another_writer_commits(world, proxy, name)
    assert world.manifest()["tables"]


def test_a_table_retired_and_deleted_is_never_named_again(world, monkeypatch, helper_module):
    # Two writers in one process: B makes the tables of refs that an older, retired
    # table held, and loses its write to A, which deletes that old table (its grace is
    # over). B writes again: it must name only tables that are there.
    m = helper_module
    for name, value in {**world.env, "GIT_TEST_S3_CHANGES_KEPT": "2",
                        "GIT_TEST_S3_RETIRE_GRACE": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(world.tmp)

    def setting(refs):
        def change(manifest):
            new = manifest.copy()
            new.refs = dict(refs)
            return new, new.drop_expired()
        return change
    a, b = m.Store(m.S3Url(world.url)), m.Store(m.S3Url(world.url))
    first = {f"refs/tags/a{i}": f"{i + 1:040x}" for i in range(5)}
    more = {**first, **{f"refs/tags/b{i}": f"{i + 100:040x}" for i in range(6)}}
    a.delete_retired(a.commit(setting(first)))
    old = world.manifest()["tables"][0]["key"]
    a.delete_retired(a.commit(setting(more)))
    assert old in {r["key"] for r in world.manifest()["retired_tables"]}

    write, raced = b.write, []

    def write_after_another(new, etag, attempt):
        if not raced:
            raced.append(a.delete_retired(a.commit(setting({**more, "refs/tags/c": "c" * 40}))))
            assert old not in world.keys()
        return write(new, etag, attempt)
    b.write = write_after_another
    b.delete_retired(b.commit(setting(first)))
    assert raced
    named = {t["key"] for t in world.manifest()["tables"]}
    assert named and named <= set(world.keys()) and old not in named
    assert world.remote_refs() == first


def test_doctor_reads_the_tables_on_the_bucket_not_the_clones_copies(world):
    world.env.update(GIT_TEST_S3_CHANGES_KEPT="2", GIT_TEST_S3_TIPS_KEPT="2")
    work = tagged(world, 10, commits=2)
    manifest = world.manifest()
    assert manifest["bundles"][0]["tips_table"]
    world.s3.delete_object(Bucket=world.server.bucket,
                           Key=f"{world.prefix}/{manifest['bundles'][0]['tips_table']}")
    checked = world.git_s3("doctor", "origin", cwd=work, ok=False)  # the clone has a copy
    assert checked.stdout.splitlines()[0].startswith(
        f"error: the ref table '{world.url}/tables/") and "is missing" in checked.stdout
    assert "Traceback" not in checked.stderr
    listed = world.git("ls-remote", world.url, ok=False)
    assert "is missing" in listed.stderr and "Traceback" not in listed.stderr


def test_a_table_of_tips_that_deletes_refs_is_corrupt(world):
    world.env.update(GIT_TEST_S3_CHANGES_KEPT="2", GIT_TEST_S3_TIPS_KEPT="0")
    work = world.repo()
    world.git("push", "-q", "origin", "main", cwd=work)
    manifest = world.manifest()
    forged = b'{"refs": {"refs/heads/main": null}}\n'
    key = f"tables/{hashlib.sha256(forged).hexdigest()}.json"
    world.put(key, forged)
    manifest["bundles"][0]["tips_table"] = key
    world.put("manifest.json", json.dumps(manifest))
    listed = world.git("ls-remote", world.url, ok=False)
    assert listed.stderr.strip().startswith(f"fatal: the ref tables of '{world.url}' are "
                                            "corrupt")
    assert "Traceback" not in listed.stderr


def test_older_clients_find_nothing_they_call_corrupt_and_the_clone_keeps_only_live_tables(
        world):
    world.env["GIT_TEST_S3_CHANGES_KEPT"] = "2"
    work = tagged(world, 6, commits=2)
    for round_ in range(4):
        world.git("update-ref", "--stdin", cwd=work, input="".join(
            f"create refs/tags/r{round_}-{i} HEAD\n" for i in range(3)))
        world.git("push", "-q", "origin", "--tags", cwd=work)
    manifest = world.manifest()
    # A client of format 5 validates every `retired` key as a bundle's.
    assert manifest["retired_tables"] and all(
        r["key"].startswith("bundles/") for r in manifest["retired"])
    kept = next((work / ".git" / "s3").glob("tables-*"))
    live = {t["key"][len("tables/"):-len(".json")] for t in manifest["tables"]}
    live |= {b["tips_table"][len("tables/"):-len(".json")] for b in manifest["bundles"]
             if b.get("tips_table")}
    assert {p.name for p in kept.iterdir()} == live
