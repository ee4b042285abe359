"""The log of the remote's refs: every change, who made it, and `git s3 restore`."""

import json
import time

import pytest

from test_errors import fatal_line


def log(world, *args):
    return json.loads(world.git_s3("log", world.url, "--format=json", *args).stdout)


def changes(world, ref):
    """[(old, new, kind)] of `ref`, newest first."""
    return [tuple(e["refs"][ref]) for e in log(world, ref)]


def force_pushed(world):
    """A published repository whose main was force-pushed over its last commit:
    (work, a clone from before, the commit thrown away)."""
    work, copy = world.published(commits=2)
    good = world.rev(work, "main")
    world.git("reset", "-q", "--hard", "HEAD~1", cwd=work)
    world.commit(work, "rewritten")
    world.git("push", "-q", "--force", "origin", "main", cwd=work)
    return work, copy, good


def test_a_force_push_is_logged_and_restore_puts_the_branch_back(world):
    work, _, good = force_pushed(world)
    bad = world.rev(work, "main")
    assert changes(world, "refs/heads/main")[:2] == [(good, bad, "forced"),
                                                      (None, good, "created")]
    (newest,) = log(world)[:1]
    assert newest["op"] == "push" and newest["email"] == "test@example.com"
    key = f"access key {world.server.keys['admin'][0]}"
    if world.server.kind == "moto":  # it answers STS: the ARN of our credentials
        assert newest["by"].startswith("arn:aws:"), newest["by"]
    elif world.server.kind == "weed":  # no STS
        assert newest["by"] == key
    else:  # AWS: an ARN; another store: the key
        assert newest["by"].startswith("arn:aws:") or newest["by"] == key
    shown = world.git_s3("log", "origin", "main", cwd=work).stdout.splitlines()
    assert "forced" in shown[0] and f"{good[:7]} -> {bad[:7]}" in shown[0]
    assert "test@example.com" in shown[0]

    restored = world.git_s3("restore", "origin", "main", cwd=work)
    assert restored.stdout.strip() == (f"restored 'refs/heads/main' to {good[:7]} (it was "
                                       f"{bad[:7]})")
    assert world.remote_refs()["refs/heads/main"] == good
    assert changes(world, "refs/heads/main")[0] == (bad, good, "restored")
    copy = world.clone("fresh")
    assert world.rev(copy, "HEAD") == good
    world.assert_fsck_clean(copy)


def test_a_deleted_branch_comes_back_and_a_time_or_an_id_picks_the_version(world):
    work = world.pushed()
    world.git("switch", "-q", "-c", "release", cwd=work)
    first = world.commit(work, "release one")
    world.git("push", "-q", "origin", "release", cwd=work)
    at_first = log(world)[0]["at"] + 1
    second = world.commit(work, "release two")
    world.git("push", "-q", "origin", "release", cwd=work)
    world.git("switch", "-q", "main", cwd=work)
    world.git("push", "-q", "origin", "--delete", "release", cwd=work)
    assert "refs/heads/release" not in world.remote_refs()
    assert changes(world, "refs/heads/release")[0] == (second, None, "deleted")

    world.git_s3("restore", "origin", "release", cwd=work)
    assert world.remote_refs()["refs/heads/release"] == second
    world.git_s3("restore", "origin", "release", first[:9], cwd=work)
    assert world.remote_refs()["refs/heads/release"] == first
    unknown = world.git_s3("restore", "origin", "release", "deadbeef", cwd=work, ok=False)
    assert fatal_line(unknown).startswith("fatal: 'deadbeef' is not an id the log of")
    early = world.git_s3("restore", "origin", "release", "--before", "@1", cwd=work,
                         ok=False)
    assert fatal_line(early).startswith(f"fatal: the log of '{world.url}' does not reach "
                                        "back before")
    del at_first  # a time within the same second as the next push is no proof
    # git fetch of an id the log names works while its objects are kept.
    copy = world.clone("fresh")
    world.git("fetch", "-q", "origin", second, cwd=copy)
    assert world.git("cat-file", "-t", second, cwd=copy).stdout.strip() == "commit"


def test_protection_applies_to_restore(world):
    work, _, good = force_pushed(world)
    world.git_s3("protect", "origin", "main", cwd=work)
    refused = world.git_s3("restore", "origin", "main", good, cwd=work, ok=False)
    assert fatal_line(refused).startswith("fatal: 'refs/heads/main' is a protected branch")
    assert world.remote_refs()["refs/heads/main"] != good
    assert [e["op"] for e in log(world)[:2]] == ["protect", "push"]
    assert log(world)[0]["protected"] == [["refs/heads/main"], []]


@pytest.mark.parametrize("world", ["plain", "encrypted"], indirect=True)
def test_each_of_concurrent_pushes_is_logged_once_and_old_entries_go_to_parts(world):
    world.env["GIT_TEST_S3_LOG_KEPT"] = "3"
    seed = world.repo()
    world.git("push", "-q", "origin", "main", cwd=seed)
    clones = [world.clone(f"client{i}") for i in range(4)]
    for round_ in range(2):
        for i, clone in enumerate(clones):
            world.commit(clone, f"round {round_} client {i}")
        procs = [world.start_git("push", "origin", f"HEAD:refs/heads/client{i}", cwd=clone)
                 for i, clone in enumerate(clones)]
        assert all(world.finish(p).returncode == 0 for p in procs)
    entries = log(world)
    assert [e["serial"] for e in entries] == list(range(len(entries), 0, -1))
    pushed = [ref for e in entries for ref in e["refs"] if ref != "refs/heads/main"]
    assert sorted(pushed) == sorted([f"refs/heads/client{i}" for i in range(4)] * 2)
    manifest = world.manifest()
    assert len(manifest["log"]) <= 3 and manifest["log_before"]
    part = world.s3.get_object(Bucket=world.server.bucket,
                               Key=f"{world.prefix}/{manifest['log_before']}")["Body"].read()
    assert (b"refs/heads/client" in part) == ("lfs_key" not in manifest)  # encrypted: none


def test_the_identity_of_each_writer_is_logged(world, scoped_url):
    if "scoped" not in world.server.keys:
        pytest.skip("the endpoint has no second identity")
    work = world.repo(remote=False)
    world.git("push", "-q", scoped_url, "main", cwd=work)
    key, secret = world.server.keys["scoped"]
    world.commit(work, "by the other one")
    world.git("push", "-q", scoped_url, "main", cwd=work,
              env={"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret})
    entries = json.loads(world.git_s3("log", scoped_url, "--format=json").stdout)
    assert [e["by"] for e in entries] == [f"access key {key}",
                                          f"access key {world.server.keys['admin'][0]}"]


def test_gc_keeps_what_the_log_names_within_the_retention_and_drops_the_rest(world):
    work, _, good = force_pushed(world)
    checked = world.git_s3("doctor", "origin", cwd=work).stdout
    assert "log:       2 changes since" in checked
    assert "1 objects kept for them beside the refs" in checked

    world.git_s3("gc", "origin", cwd=work)  # within the retention (90 days)
    (bundle,) = world.manifest()["bundles"]
    assert bundle["tips"][f"refs/s3/kept/{good}"] == good
    assert "already one bundle" in world.git_s3("gc", "origin", cwd=work).stdout
    world.git_s3("restore", "origin", "main", good, cwd=work)
    assert world.remote_refs()["refs/heads/main"] == good
    world.git_s3("restore", "origin", "main", cwd=work)  # back to the rewritten one

    time.sleep(1.1)  # every entry is now older than a retention of 0 days
    world.git_s3("gc", "origin", cwd=work, env={"GIT_CONFIG_PARAMETERS":
                                               "'s3.logRetention=0'"})
    manifest = world.manifest()
    assert [e["op"] for e in manifest["log"]] == ["gc"] and not manifest["log_before"]
    assert not any(t.startswith("refs/s3/kept/") for t in manifest["bundles"][0]["tips"])
    gone = world.git_s3("restore", "origin", "main", good, cwd=work, ok=False)
    assert fatal_line(gone).startswith(f"fatal: '{good}' is not an id the log of")
    copy = world.clone("fresh")
    fetched = world.git("fetch", "origin", good, cwd=copy, ok=False)
    assert "fatal:" in fetched.stderr


def test_a_restore_that_gc_overtakes_is_refused_not_made(world, proxy):
    work, _, good = force_pushed(world)
    time.sleep(1.1)  # gc with a retention of 0 days drops the entry naming `good`
    proxy.add("stall", method="GET", key=r"bundles/", first=1, seconds=0.5,
              then=lambda: world.git_s3("gc", world.url, env={
                  "GIT_CONFIG_PARAMETERS": "'s3.logRetention=0'"}))
    raced = world.git_s3("restore", world.url, "main", good, env=proxy.env, ok=False)
    assert proxy.fired("stall") and not proxy.errors
    assert fatal_line(raced) == (f"fatal: '{world.url}' was rewritten by 'git s3 gc' "
                                 "meanwhile; run the restore again")
    assert world.remote_refs()["refs/heads/main"] != good
    world.assert_fsck_clean(world.clone("fresh"))


def test_what_only_the_log_keeps_is_not_downloaded_by_every_fetch(world, proxy):
    work, copy, _ = force_pushed(world)
    world.git("pull", "-q", "--rebase=false", "-X", "theirs", "--no-edit", cwd=copy,
              ok=None)
    world.git("reset", "-q", "--hard", "origin/main", cwd=copy)
    world.git_s3("gc", "origin", cwd=work)
    world.git("reflog", "expire", "--expire=now", "--all", cwd=copy)
    world.git("gc", "-q", "--prune=now", cwd=copy)  # the old commit is gone here
    world.commit(work, "one more")
    world.git("push", "-q", "origin", "main", cwd=work)
    proxy.traffic.clear()
    world.git("fetch", "-q", cwd=copy, env=proxy.env)
    fetched = [k for m, k, *_ in proxy.traffic if m == "GET" and "/bundles/" in k]
    assert len(fetched) == 1 and world.manifest()["bundles"][0]["key"] not in fetched[0]


def test_a_push_of_many_refs_logs_them_in_a_part_and_the_manifest_stays_small(world):
    work = world.repo()
    world.git("push", "-q", "origin", "main", cwd=work)
    world.git("update-ref", "--stdin", cwd=work, input="".join(
        f"create refs/tags/release-{i:03d} HEAD\n" for i in range(40)))
    world.git("push", "-q", "origin", "--tags", cwd=work)
    manifest = world.manifest()
    assert manifest["log"] == [] and manifest["log_before"]
    entries = log(world)
    assert len(entries[0]["refs"]) == 40 and entries[1]["refs"].keys() == {"refs/heads/main"}


def test_short_names_hostile_entries_and_odd_idents(world):
    work = world.pushed()
    world.git("tag", "main", cwd=work)  # a tag named like the branch
    world.git("push", "-q", "origin", "refs/tags/main", cwd=work)
    both = world.git_s3("restore", "origin", "main", cwd=work, ok=False)
    assert fatal_line(both) == ("fatal: 'main' is both a branch and a tag: say which "
                                "(refs/heads/main or refs/tags/main)")
    world.commit(work, "by an odd ident")
    world.git("push", "-q", "origin", "refs/heads/main", cwd=work,
              env={"GIT_COMMITTER_EMAIL": "jos\udce9@example.com"})  # not UTF-8
    assert log(world)[0]["email"] == "jos\ufffd@example.com"

    manifest = world.manifest()
    manifest["log"][-1]["email"] = "\x9b2J\u202eevil"  # terminal controls, reordering
    world.put("manifest.json", json.dumps(manifest))
    refused = world.git("ls-remote", world.url, ok=False)
    assert fatal_line(refused).startswith(f"fatal: the manifest '{world.url}/manifest.json' "
                                          "is corrupt (bad log entry")


def test_what_restore_and_gc_cannot_do_ends_in_one_line(world):
    work = world.pushed()
    created = world.git_s3("restore", "origin", "main", cwd=work, ok=False)
    assert fatal_line(created) == ("fatal: the last change to 'refs/heads/main' created "
                                   "it: there is nothing before it to restore")
    unknown = world.git_s3("restore", "origin", "nope", cwd=work, ok=False)
    assert fatal_line(unknown) == (f"fatal: the log of '{world.url}' has no change to "
                                   "'refs/heads/nope'")
    for days in ("soon", "nan", "-1"):
        bad = world.git_s3("gc", "origin", cwd=work, ok=False,
                           env={"GIT_CONFIG_PARAMETERS": f"'s3.logRetention={days}'"})
        assert fatal_line(bad) == f"fatal: s3.logRetention is '{days}', not a number of days"
        assert "Traceback" not in bad.stderr
