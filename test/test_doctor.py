"""git s3 doctor (checks, leftovers, garbage, --deep, --fix) and git s3 gc."""

import json
import time

import pytest


def test_a_healthy_repository_exits_0(world):
    work = world.pushed(commits=3)
    world.git("push", "-q", "origin", "main:topic", cwd=work)
    checked = world.git_s3("doctor", "origin", cwd=work)
    assert checked.stdout.strip().endswith(f"'{world.url}' is healthy")
    assert "bundles:   1 of 1 present" in checked.stdout
    assert "HEAD:      main" in checked.stdout
    deep = world.git_s3("doctor", "--deep", "origin", cwd=work)
    assert "is healthy" in deep.stdout


def test_doctor_reads_each_log_part_once(world, proxy):
    """Whatever the bucket holds, doctor reads each part of the log once (it read the
    whole chain again for every bundle and table it listed)."""
    world.env["GIT_TEST_S3_LOG_KEPT"] = "1"
    work = world.pushed()
    for i in range(4):
        world.commit(work, f"change {i}")
        world.git("push", "-q", "origin", "main", cwd=work)
    proxy.timeline.clear()
    assert "is healthy" in world.git_s3("doctor", "origin", cwd=work, env=proxy.env).stdout
    parts = [key for *_, method, key in proxy.timeline
             if method == "GET" and "/logs/" in key]
    assert len(parts) >= 4 and len(parts) == len(set(parts))


def test_leftovers_of_a_killed_push_are_listed_and_fixed_after_the_grace_period(world):
    work = world.pushed()
    world.commit(work, "killed")
    world.git("push", "origin", "main", cwd=work, ok=False,
              env={"GIT_TEST_S3_KILL_AT": "uploaded"})
    leftover = [k for k in world.keys() if k.startswith("bundles/")
                and k not in {b["key"] for b in world.manifest()["bundles"]}]
    assert len(leftover) == 1

    young = world.git_s3("doctor", "origin", cwd=work)  # a push may still be using it
    assert f"leftover:  {leftover[0]}" in young.stdout and "a push may still" in young.stdout

    grace = {"GIT_TEST_S3_RETIRE_GRACE": "0"}
    found = world.git_s3("doctor", "origin", cwd=work, env=grace, ok=False)
    assert found.returncode == 1
    assert "error: 1 leftover(s) older than 0 seconds (--fix removes them)" in found.stdout
    assert "doctor found problems" in found.stdout
    fixed = world.git_s3("doctor", "--fix", "origin", cwd=work, env=grace)
    assert "fixed:     removed 1 leftover(s)" in fixed.stdout
    assert leftover[0] not in world.keys()
    world.git_s3("doctor", "origin", cwd=work, env=grace)
    world.assert_fsck_clean(world.clone("after"))


def test_a_missing_or_truncated_bundle_is_a_problem(world):
    work = world.pushed()
    world.commit(work, "second")
    world.git("push", "-q", "origin", "main", cwd=work)
    first, second = [b["key"] for b in world.manifest()["bundles"]]
    world.put(second, b"short")
    truncated = world.git_s3("doctor", "origin", cwd=work, ok=False)
    assert f"error: bundle '{second}' has 5 bytes, the manifest says" in truncated.stdout
    assert "error: 'refs/heads/main' points to" in truncated.stdout
    assert "which no bundle holds" in truncated.stdout
    world.s3.delete_object(Bucket=world.server.bucket, Key=f"{world.prefix}/{first}")
    missing = world.git_s3("doctor", "origin", cwd=work, ok=False)
    assert f"error: bundle '{first}' is missing" in missing.stdout


def test_deep_finds_a_bundle_damaged_inside(world):
    work = world.pushed(commits=2)
    key = world.manifest()["bundles"][0]["key"]
    data = bytearray(world.s3.get_object(Bucket=world.server.bucket,
                                         Key=f"{world.prefix}/{key}")["Body"].read())
    data[-30] ^= 0xFF  # same size, damaged pack
    world.put(key, bytes(data))
    deep = world.git_s3("doctor", "--deep", "origin", cwd=work, ok=False)
    assert f"error: bundle '{key}' is damaged" in deep.stdout


def test_head_naming_no_branch_is_repaired_by_fix(world):
    work = world.pushed()
    manifest = world.manifest()
    manifest["head"] = "refs/heads/gone"
    world.put("manifest.json", json.dumps(manifest))
    found = world.git_s3("doctor", "origin", cwd=work, ok=False)
    assert "error: HEAD names 'gone', which is not a branch (--fix repairs it)" in found.stdout
    fixed = world.git_s3("doctor", "--fix", "origin", cwd=work)
    assert "fixed:     HEAD now names 'main'" in fixed.stdout
    assert world.manifest()["head"] == "refs/heads/main"


def test_a_corrupt_manifest_is_a_problem(world):
    work = world.pushed()
    world.put("manifest.json", b"{broken")
    found = world.git_s3("doctor", "origin", cwd=work, ok=False)
    assert found.returncode == 1
    assert "error: the manifest" in found.stdout and "is corrupt" in found.stdout


def test_garbage_is_reported_and_gc_drops_it(world):
    work = world.pushed()
    world.git("switch", "-q", "-c", "topic", cwd=work)
    for i in range(3):
        world.commit(work, f"topic {i}")
    world.git("push", "-q", "origin", "topic", cwd=work)
    world.git("push", "-q", "origin", "--delete", "topic", cwd=work)
    checked = world.git_s3("doctor", "origin", cwd=work)
    assert "garbage: 9 no ref reaches ('git s3 gc' drops what the log" in checked.stdout

    old = [b["key"] for b in world.manifest()["bundles"]]
    time.sleep(1.1)  # the log names the deleted branch: a retention of 0 days drops it
    collected = world.git_s3("gc", "origin", cwd=work,
                             env={"GIT_CONFIG_PARAMETERS": "'s3.logRetention=0'"})
    assert f"rewrote '{world.url}': 2 bundles" in collected.stdout
    manifest = world.manifest()
    assert len(manifest["bundles"]) == 1 and manifest["epoch"] == 1
    assert manifest["bundles"][0]["tips"] == manifest["refs"]
    replaced = set(old) - {manifest["bundles"][0]["key"]}  # same bytes, same key
    assert replaced and {r["key"] for r in manifest["retired"]} == replaced
    assert replaced <= set(world.keys())  # still readable by running clones
    assert "garbage:" not in world.git_s3("doctor", "origin", cwd=work).stdout
    again = world.git_s3("gc", "origin", cwd=work)
    assert "already one bundle of exactly its refs" in again.stdout
    world.assert_fsck_clean(world.clone("after"))

    # after the grace period, the next writer deletes the retired bundles
    world.commit(work, "later")
    world.git("push", "-q", "origin", "HEAD:main", cwd=work,
              env={"GIT_TEST_S3_RETIRE_GRACE": "0"})
    assert not replaced & set(world.keys())


def test_clones_and_pushes_during_gc_succeed_and_nothing_is_lost(world):
    work = world.pushed()
    for i in range(6):
        world.commit(work, f"history {i}")
        world.git("push", "-q", "origin", "main", cwd=work)
    pushed = []
    for round in range(3):
        gc = world.start_git("s3", "gc", "origin", cwd=work)
        clone = world.start_git("clone", "-q", world.url, world.tmp / f"clone-{round}",
                                cwd=world.tmp)
        world.commit(work, f"during gc {round}")
        push = world.start_git("push", "-q", "origin", f"HEAD:refs/heads/r{round}",
                               cwd=work)
        pushed.append(world.rev(work, "HEAD"))
        for proc in (gc, clone, push):
            done = world.finish(proc)
            assert done.returncode == 0, done.stderr
        world.assert_fsck_clean(world.tmp / f"clone-{round}")
    refs = world.remote_refs()
    assert [refs[f"refs/heads/r{i}"] for i in range(3)] == pushed
    final = world.clone("final")
    world.assert_fsck_clean(final)
    assert world.rev(final, "origin/r2") == pushed[-1]


def test_deep_compares_each_bundle_header_with_the_manifest(world):
    work = world.pushed()
    manifest = world.manifest()
    bundle = manifest["bundles"][0]
    bundle["tips"] = {"refs/heads/renamed": bundle["tips"]["refs/heads/main"]}
    world.put("manifest.json", json.dumps(manifest))
    assert "is healthy" in world.git_s3("doctor", "origin", cwd=work).stdout
    deep = world.git_s3("doctor", "--deep", "origin", cwd=work, ok=False)
    assert f"error: bundle '{bundle['key']}' names other tips than the manifest says" \
        in deep.stdout


def test_keys_that_are_not_ours_are_named_and_never_removed(world):
    work = world.pushed()
    world.put("notes/readme.txt", b"somebody else's file")
    grace = {"GIT_TEST_S3_RETIRE_GRACE": "0"}
    fixed = world.git_s3("doctor", "--fix", "origin", cwd=work, env=grace)
    assert "unknown:   notes/readme.txt (not written by git-remote-s3; left alone)" \
        in fixed.stdout
    assert "is healthy" in fixed.stdout
    assert "notes/readme.txt" in world.keys()


def test_read_only_credentials_check_all_but_the_store(world):
    if "reader" not in world.server.keys:
        pytest.skip("the endpoint has no read-only identity")
    work = world.pushed()
    key, secret = world.server.keys["reader"]
    checked = world.git_s3("doctor", "origin", cwd=work,
                           env={"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret})
    assert "store:     conditional writes not checked (access denied: PutObject" \
        in checked.stdout
    assert "is healthy" in checked.stdout
