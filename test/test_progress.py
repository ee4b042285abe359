"""What the helper says on stderr: git-style progress when asked, nothing with -q,
every S3 call with -v."""

import re


def test_push_and_clone_show_progress_in_git_style(world):
    work = world.repo(commits=3)
    pushed = world.git("push", "--progress", "origin", "main", cwd=work)
    assert re.search(r"Writing objects to S3: 100% \([\d.]+ \w+/[\d.]+ \w+\), "
                     r"[\d.]+ \w+/s, done\.", pushed.stderr)
    cloned = world.git("clone", "--progress", world.url, world.tmp / "copy")
    assert re.search(r"Downloading bundles from S3: 100% .*, done\.", cloned.stderr)
    assert "Resolving deltas" in cloned.stderr or "Receiving objects" in cloned.stderr


def test_quiet_push_and_clone_print_nothing(world):
    work = world.repo(commits=3)
    assert world.git("push", "-q", "origin", "main", cwd=work).stderr == ""
    assert world.git("clone", "-q", world.url, world.tmp / "copy").stderr == ""
    world.commit(work, "more")
    assert world.git("push", "-q", "origin", "main", cwd=work).stderr == ""
    assert world.git("pull", "-q", cwd=world.tmp / "copy").stderr == ""


def test_without_a_terminal_there_is_no_progress(world):
    work = world.repo(commits=3)
    pushed = world.git("push", "origin", "main", cwd=work)
    assert "Writing objects to S3" not in pushed.stderr
    assert "\r" not in pushed.stderr


def test_verbose_explains_every_s3_call(world):
    work = world.repo()
    pushed = world.git("push", "-v", "origin", "main", cwd=work)
    calls = re.findall(r"^s3: (\w+) s3://", pushed.stderr, re.M)
    # no manifest yet, so also the old layout's HEAD; the probe of conditional writes
    # (a write, a create-only and a stale If-Match write that must be refused, the
    # delete); the bundle, the manifest
    probe = ["PutObject", "PutObject", "PutObject", "DeleteObjects"]
    assert calls == ["GetObject", "GetObject", *probe, "PutObject", "PutObject"]
    assert "the store enforces conditional writes" in pushed.stderr
    world.commit(work, "second")
    again = world.git("push", "-v", "origin", "main", cwd=work)
    assert re.findall(r"^s3: (\w+) s3://", again.stderr, re.M) == [
        "GetObject", "PutObject", "PutObject"]
    assert re.search(r"^s3: GetObject s3://\S+/HEAD$", pushed.stderr, re.M)
    assert re.search(r"^s3: PutObject s3://\S+/manifest.json IfNoneMatch=\*$",
                     pushed.stderr, re.M)
    fetched = world.git("ls-remote", world.url, env={"GIT_REMOTE_S3_VERBOSE": "1"})
    assert "s3: GetObject -> HTTP 200" in fetched.stderr
