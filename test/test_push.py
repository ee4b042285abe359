"""Pushing: the quick start, incremental uploads, shared history, remote HEAD."""

import os


def bundle_keys(world):
    return [k for k in world.keys() if k.startswith("bundles/")]


def bundle_bytes(world):
    return sum(b["size"] for b in world.manifest()["bundles"])


def test_push_then_clone_fetch_pull_and_ls_remote(world):
    work = world.repo(commits=2)
    push = world.git("push", "-u", "origin", "main", cwd=work)
    assert "* [new branch]      main -> main" in push.stderr
    copy = world.clone("copy")
    assert world.rev(copy, "HEAD") == world.rev(work, "HEAD")
    world.assert_fsck_clean(copy)

    newer = world.commit(work, "third")
    world.git("push", cwd=work)
    world.git("fetch", cwd=copy)
    assert world.rev(copy, "origin/main") == newer
    newest = world.commit(work, "fourth")
    world.git("push", cwd=work)
    world.git("pull", "-q", cwd=copy)
    assert world.rev(copy, "HEAD") == newest
    assert world.remote_refs() == {"HEAD": newest, "refs/heads/main": newest}


def test_url_forms_bucket_root_deep_prefix_and_profile(world, tmp_path):
    deep = f"{world.url}/a/b/c"
    work = world.repo(remote=False)
    world.git("push", "-q", deep, "main", cwd=work)
    assert world.remote_refs(deep)["refs/heads/main"] == world.rev(work, "HEAD")
    assert "a/b/c/manifest.json" in world.keys()

    key, secret = world.server.keys["admin"]
    (tmp_path / "credentials").write_text(
        f"[team]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
           "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    profile_url = world.url.replace("s3://", "s3://team@") + "/p"
    world.git("push", "-q", profile_url, "main", cwd=work, env=env)
    assert "p/manifest.json" in world.keys()
    world.git("clone", "-q", profile_url, tmp_path / "via-profile", env=env)

    zipped = world.url.replace("s3://", "s3+zip://") + "/z"
    world.git("push", "-q", zipped, "main", cwd=work)
    world.git("clone", "-q", zipped, tmp_path / "via-zip")


def test_bucket_root_holds_a_repository(world):
    # A bucket of our own, so the root is ours: created by the admin identity.
    bucket = f"root-{world.prefix.split('-')[-1]}"
    world.s3.create_bucket(Bucket=bucket)
    work = world.repo(remote=False)
    world.git("push", "-q", f"s3://{bucket}", "main", cwd=work)
    keys = [o["Key"] for o in world.s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert "manifest.json" in keys
    assert world.remote_refs(f"s3://{bucket}")["refs/heads/main"] == world.rev(work, "HEAD")


def test_push_of_nothing_new_uploads_no_bundle(world):
    work = world.repo(commits=3)
    world.git("push", "-q", "origin", "main", cwd=work)
    before = bundle_keys(world)
    world.git("branch", "other", cwd=work)
    world.git("tag", "light", cwd=work)
    world.git("push", "-q", "origin", "other", "light", cwd=work)
    assert bundle_keys(world) == before
    assert set(world.remote_refs()) == {"HEAD", "refs/heads/main", "refs/heads/other",
                                        "refs/tags/light"}
    up_to_date = world.git("push", "origin", "main", cwd=work)
    assert "Everything up-to-date" in up_to_date.stderr


def test_one_commit_onto_a_large_history_uploads_kilobytes(world):
    work = world.repo(commits=0)
    for i in range(4):  # 8 MB of incompressible history
        world.commit(work, f"blob {i}", {f"blob{i}.bin": os.urandom(2 * 1024 * 1024)})
    world.git("push", "-q", "origin", "main", cwd=work)
    assert bundle_bytes(world) > 8_000_000
    world.commit(work, "small change")
    world.git("push", "-q", "origin", "main", cwd=work)
    bundles = world.manifest()["bundles"]
    assert len(bundles) == 2
    assert bundles[-1]["size"] < 4096


def test_branches_sharing_history_store_it_once(world):
    work = world.repo(commits=0)
    world.commit(work, "shared", {"big.bin": os.urandom(1024 * 1024)})
    for name in ("a", "b", "c", "d"):
        world.git("checkout", "-q", "-b", name, "main", cwd=work)
        world.commit(work, f"on {name}")
    world.git("push", "-q", "origin", "main", "a", "b", cwd=work)
    world.git("push", "-q", "origin", "c", cwd=work)
    world.git("push", "-q", "origin", "d", cwd=work)
    assert 1024 * 1024 < bundle_bytes(world) < 1.1 * 1024 * 1024


def test_remote_head_is_the_first_branch_pushed_and_clone_checks_it_out(world):
    work = world.repo()
    world.git("checkout", "-q", "-b", "develop", cwd=work)
    develop = world.commit(work, "on develop")
    world.git("push", "-q", "origin", "develop", cwd=work)
    world.git("push", "-q", "origin", "main", cwd=work)
    assert world.manifest()["head"] == "refs/heads/develop"
    copy = world.clone("copy")
    assert world.git("symbolic-ref", "HEAD", cwd=copy).stdout.strip() == "refs/heads/develop"
    assert world.rev(copy, "HEAD") == develop
    main_copy = world.clone("main-copy", None, "-b", "main")
    assert world.rev(main_copy, "HEAD") == world.rev(work, "main")


def test_first_push_of_main_and_master_makes_main_head_as_everywhere_else(world):
    # One rule for HEAD (main, else master, else the first branch by name), the same
    # as doctor --fix, delete-branch and migrate use.
    work = world.repo()
    world.git("branch", "master", cwd=work)
    world.git("push", "-q", "origin", "master", "main", cwd=work)
    assert world.manifest()["head"] == "refs/heads/main"
    copy = world.clone("copy")
    assert world.git("symbolic-ref", "HEAD", cwd=copy).stdout.strip() == "refs/heads/main"


def test_clone_of_an_empty_prefix_then_first_push_creates_the_remote(world):
    clone = world.git("clone", world.url, world.tmp / "empty")
    assert "You appear to have cloned an empty repository." in clone.stderr
    empty = world.tmp / "empty"
    sha = world.commit(empty, "first")
    world.git("push", "-q", "origin", "main", cwd=empty)
    assert world.remote_refs()["refs/heads/main"] == sha
    assert world.manifest()["head"] == "refs/heads/main"


def in_line(world, proxy, *git, cwd=None):
    """The requests of one git command that waited on each other, each held 0.1 s."""
    proxy.timeline.clear()
    proxy.add("delay", seconds=0.1)
    world.git(*git, cwd=cwd, env=proxy.env)
    proxy.clear()
    return [(method, key.rpartition("/")[2] if "bundles/" in key else
             key[len(world.prefix) + 1:]) for method, key in proxy.in_line()]


def test_each_command_waits_on_no_more_requests_than_it_must(world, proxy):
    # Counted by the proxy: requests that ran one after another, none overlapping.
    work = world.repo()
    world.commit(work, "large", {"large.bin": os.urandom(200_000)})
    first = in_line(world, proxy, "push", "-q", "origin", "main", cwd=work)
    assert first[0] == ("GET", "manifest.json") and first[-1] == ("PUT", "manifest.json")
    assert len(first) <= 6, first  # the probe beside the old-layout check, its conditions at once
    for size in (20_000, 2_000):  # each too small to merge with the one before: 3 bundles
        world.commit(work, f"{size} bytes", {f"{size}.bin": os.urandom(size)})
        pushed = in_line(world, proxy, "push", "-q", "origin", "main", cwd=work)
        assert [m for m, _ in pushed] == ["GET", "PUT", "PUT"], pushed
    assert len(world.manifest()["bundles"]) == 3
    assert in_line(world, proxy, "ls-remote", world.url) == [("GET", "manifest.json")]
    cloned = in_line(world, proxy, "clone", "-q", world.url, world.tmp / "copy")
    assert len(cloned) == 2 and cloned[0] == ("GET", "manifest.json"), cloned  # all at once
    merges = 0
    for i in range(4):  # merging the newest bundles: the merged one beside the new one
        world.commit(work, f"small {i}")
        pushed = in_line(world, proxy, "push", "-q", "origin", "main", cwd=work)
        assert [m for m, _ in pushed] == ["GET", "PUT", "PUT"], pushed
        merges += [m for *_, m, k in proxy.timeline if "bundles/" in k] == ["PUT", "PUT"]
    assert merges, "no push merged bundles: the test proves nothing"
