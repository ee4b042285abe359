"""Failures: one clear line, a non-zero exit, no traceback, nothing half-written."""

import json
import socket
import sys

import pytest


NO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None,
                  "AWS_PROFILE": None, "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                  "AWS_CONFIG_FILE": "/nonexistent"}


def fatal_line(result):
    """The helper's one fatal line; and no traceback anywhere."""
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("fatal:")]
    assert lines, result.stderr
    return lines[0]


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_missing_bucket(world):
    work = world.repo()
    url = "s3://no-such-bucket-for-git-remote-s3/repo"
    push = world.git("push", url, "main", cwd=work, ok=False)
    assert fatal_line(push) == "fatal: bucket 'no-such-bucket-for-git-remote-s3' does not exist"
    clone = world.git("clone", url, world.tmp / "c", ok=False)
    assert "does not exist" in fatal_line(clone)


def test_tracing_adds_the_traceback_and_keeps_the_line(world):
    traced = world.git("ls-remote", "s3://no-such-bucket-for-git-remote-s3/repo", ok=False,
                       env={"GIT_REMOTE_S3_TRACE": "1"})
    assert "Traceback (most recent call last)" in traced.stderr
    assert traced.stderr.rstrip().endswith(
        "fatal: bucket 'no-such-bucket-for-git-remote-s3' does not exist")


def test_access_denied_names_the_operation_and_the_key(world, scoped_url):
    if "scoped" not in world.server.keys:
        pytest.skip("the endpoint has no prefix-scoped identity")
    key, secret = world.server.keys["scoped"]
    env = {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
    denied = world.git("ls-remote", world.url, ok=False, env=env)
    assert fatal_line(denied) == (
        f"fatal: access denied: GetObject on '{world.url}/manifest.json'")
    # The same identity works inside its own prefix.
    work = world.repo(remote=False)
    world.git("push", "-q", scoped_url, "main", cwd=work, env=env)
    world.git("ls-remote", scoped_url, env=env)


def test_no_credentials(world):
    denied = world.git("ls-remote", world.url, ok=False, env=NO_CREDENTIALS)
    assert fatal_line(denied).startswith("fatal: no AWS credentials found")


def test_unknown_profile(world):
    url = world.url.replace("s3://", "s3://nobody@")
    denied = world.git("ls-remote", url, ok=False, env={"AWS_CONFIG_FILE": "/nonexistent"})
    assert fatal_line(denied) == "fatal: AWS profile 'nobody' is not configured"


def test_wrong_secret_and_unknown_key(world):
    if not world.server.checks_signatures:
        pytest.skip("the endpoint checks no signatures")
    wrong = world.git("ls-remote", world.url, ok=False,
                      env={"AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    assert "rejected the AWS secret access key" in fatal_line(wrong)
    unknown = world.git("ls-remote", world.url, ok=False,
                        env={"AWS_ACCESS_KEY_ID": "NOSUCHKEY00000000000"})
    assert "does not know this AWS access key id" in fatal_line(unknown)


def test_unreachable_endpoint_gives_up_after_bounded_retries(world):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    failed = world.git("ls-remote", world.url, ok=False, timeout=120,
                       env={"AWS_ENDPOINT_URL_S3": endpoint, "AWS_MAX_ATTEMPTS": "3"})
    assert fatal_line(failed).startswith("fatal: cannot reach the S3 endpoint")
    assert endpoint in failed.stderr


def test_read_only_credentials_cannot_push_and_write_nothing(world):
    if "reader" not in world.server.keys:
        pytest.skip("the endpoint has no read-only identity")
    work = world.repo()
    world.git("push", "-q", "origin", "main", cwd=work)
    before = world.snapshot()
    world.commit(work, "not allowed")
    key, secret = world.server.keys["reader"]
    env = {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
    world.git("ls-remote", "origin", cwd=work, env=env)  # reading is allowed
    push = world.git("push", "origin", "main", cwd=work, ok=False, env=env)
    assert fatal_line(push).startswith("fatal: access denied: PutObject on ")
    assert world.snapshot() == before


def test_malformed_urls_and_bucket_names(world):
    cases = {
        "s3://": "is not a valid S3 bucket name",
        "s3://Bad_Bucket/repo": "'Bad_Bucket' is not a valid S3 bucket name",
        "s3://ok-bucket//double": "is not a valid prefix",
        "s3://ok-bucket/a/../b": "is not a valid prefix",
        "s3://@ok-bucket/repo": "empty profile name",
    }
    for url, message in cases.items():
        result = world.git("ls-remote", url, ok=False)
        assert message in fatal_line(result), url


def test_temporary_files_are_removed_after_success_and_failure(world, proxy):
    work, copy = world.published(commits=2)
    world.commit(work, "more")
    world.git("push", "-q", "origin", "main", cwd=work)
    world.git("fetch", "-q", cwd=copy)
    world.commit(copy, "diverged")
    world.git("push", "origin", "main", cwd=copy, ok=False)  # rejected
    proxy.add("503", method="PUT")  # fails once the bundle is built, mid-push
    world.git("push", "origin", "HEAD:refs/heads/other", cwd=copy, ok=False,
              env={**proxy.env, "AWS_MAX_ATTEMPTS": "1"})
    assert proxy.fired("503")
    for repo in (work, copy):
        state = repo / ".git" / "s3" / "origin"
        assert not state.exists() or list(state.iterdir()) == []


def test_helper_explains_itself_when_run_by_hand(world):
    usage = world.run("git-remote-s3", ok=False)
    assert usage.stderr.startswith("usage: git-remote-s3 <remote> <url>")
    helped = world.run("git-remote-s3", "--help")
    assert "s3://[profile@]bucket[/prefix]" in helped.stdout
    assert "GIT_TEST_S3_KILL_AT" in helped.stdout


def test_missing_boto3_is_one_line(world):
    from conftest import ROOT
    result = world.run(sys.executable, "-S", "-I", ROOT / "git-remote-s3", "origin",
                       world.url, ok=False)
    assert result.stderr == (
        f"fatal: boto3 is not installed for {sys.executable}: install git-remote-s3 with "
        "'make install' or 'pipx install' (README, Install), or run 'pip install boto3' in "
        "a virtual environment\n")


def test_a_corrupt_bundle_fails_the_clone_with_one_line(world):
    work = world.repo(commits=2)
    world.git("push", "-q", "origin", "main", cwd=work)
    key = world.manifest()["bundles"][0]["key"]
    body = world.s3.get_object(Bucket=world.server.bucket,
                               Key=f"{world.prefix}/{key}")["Body"].read()
    header_end = body.index(b"\n\n") + 2
    world.put(key, body[:header_end] + b"PACK" + b"\0" * (len(body) - header_end - 4))
    cloned = world.git("clone", world.url, world.tmp / "copy", ok=False)
    assert fatal_line(cloned) == ("fatal: git index-pack failed on a downloaded bundle "
                                  "(pack version 0 unsupported)")
    assert cloned.stderr.count("fatal:") == 1


def test_a_ref_the_bundles_do_not_hold_is_reported(world):
    work = world.repo()
    world.git("push", "-q", "origin", "main", cwd=work)
    manifest = world.manifest()
    manifest["refs"]["refs/heads/ghost"] = "1" * 40
    world.put("manifest.json", json.dumps(manifest))
    fetched = world.git("clone", "-b", "ghost", world.url, world.tmp / "copy", ok=False)
    assert f"lack {'1' * 40}" in fatal_line(fetched)


def test_helper_refuses_what_git_never_sends(world):
    work = world.repo()
    unknown = world.run("git-remote-s3", "origin", world.url, cwd=work, ok=False,
                        input="bogus\n")
    assert unknown.stderr == "fatal: unknown command 'bogus' from git\n"
    missing = world.run("git-remote-s3", "origin", world.url, cwd=work, ok=False,
                        input="push refs/heads/nope:refs/heads/nope\n\n")
    assert missing.stderr == (
        "fatal: 'refs/heads/nope' is not an object in the local repository\n")
