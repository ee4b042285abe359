"""lfs-s3-py with real git-lfs: objects at <prefix>/lfs/<oid>, usable right after clone."""

import hashlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from conftest import ROOT, load_script

import pytest


def lfs_repo(world, name="work", files=None, install=True):
    """A repository tracking *.bin with git-lfs, with `files` committed."""
    repo = world.repo(name)
    if install:
        world.run("lfs-s3-py", "install", cwd=repo)
    world.git("lfs", "track", "*.bin", cwd=repo)
    world.commit(repo, "large files", {".gitattributes": (repo / ".gitattributes").read_text(),
                                       **(files or {"data.bin": os.urandom(100_000)})})
    return repo


def oid_of(content):
    return hashlib.sha256(content).hexdigest()


def lfs_keys(world, prefix=None):
    return [k for k in world.keys(prefix) if k.startswith("lfs/")]


def run_agent(world, repo, *events, args=(), env=None):
    """Drive lfs-s3-py as git-lfs does; returns the JSON messages it sent back."""
    lines = "".join(json.dumps(e) + "\n" for e in events) + '{"event": "terminate"}\n'
    out = world.run("lfs-s3-py", *args, cwd=repo, input=lines, env=env).stdout
    return [json.loads(line) for line in out.splitlines()]


class RunningAgent:
    """lfs-s3-py started as git-lfs starts it and driven one event at a time; its
    stderr (GIT_REMOTE_S3_VERBOSE) goes to a file, `log`. Its own process, not a copy
    in the fork server: the tests stop it by its group and find its siblings' socket
    by this process's pid, its launcher."""

    def __init__(self, world, repo, name):
        self.world, self.log = world, world.tmp / f"{name}.log"
        self.proc = subprocess.Popen(
            ["lfs-s3-py"], cwd=repo, text=True, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.log.open("w"), start_new_session=True,
            env={**world.env, "GIT_REMOTE_S3_VERBOSE": "1", "GIT_TEST_S3_EXEC": "1"})
        self.replies = queue.Queue()
        threading.Thread(target=lambda: [self.replies.put(json.loads(line))
                                         for line in self.proc.stdout], daemon=True).start()

    def ask(self, event, timeout=60):
        """Send one event; return the replies up to its answer (`{}` for init)."""
        self.proc.stdin.write(json.dumps(event) + "\n")
        self.proc.stdin.flush()
        replies = [self.replies.get(timeout=timeout)]
        while replies[-1].get("event") == "progress" and len(replies) < 1000:
            replies.append(self.replies.get(timeout=timeout))
        return replies

    def upload(self, repo, content):
        oid = oid_of(content)
        path = repo / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
        return self.ask({"event": "upload", "oid": oid, "size": len(content),
                         "path": str(path), "action": None})[-1]

    def kill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.world.finish(self.proc)

    def stop(self):
        self.world.finish(self.proc, input='{"event": "terminate"}\n')
        return self.log.read_text()


def test_push_stores_objects_at_prefix_lfs_oid_and_clone_checks_them_out(lfs):
    world = lfs
    small, large = os.urandom(50_000), os.urandom(3_000_000)
    work = lfs_repo(world, files={"small.bin": small, "sub/large.bin": large})
    world.git("push", "-q", "origin", "main", cwd=work)
    assert sorted(lfs_keys(world)) == sorted(f"lfs/{oid_of(c)}" for c in (small, large))

    copy = world.clone("copy")
    assert (copy / "small.bin").read_bytes() == small
    assert (copy / "sub" / "large.bin").read_bytes() == large
    assert "Git LFS fsck OK" in world.git("lfs", "fsck", cwd=copy).stdout


def test_clone_keeps_lfs_settings_the_user_already_has(lfs, helper_bin):
    world = lfs
    content = os.urandom(10_000)
    work = lfs_repo(world, files={"a.bin": content})
    world.git("push", "-q", "origin", "main", cwd=work)
    world.git("config", "--global", "lfs.customtransfer.lfs-s3-py.path",
              str(helper_bin / "lfs-s3-py"))
    copy = world.clone("copy")
    assert (copy / "a.bin").read_bytes() == content
    local = world.git("config", "--local", "--list", cwd=copy).stdout
    assert "lfs.customtransfer.lfs-s3-py.path" not in local
    assert "standalonetransferagent=lfs-s3-py" in local


def test_install_remote_scopes_the_agent_to_one_remote(lfs):
    world = lfs
    work = lfs_repo(world, install=False, files={"a.bin": os.urandom(20_000)})
    bare = world.tmp / "elsewhere.git"
    world.git("init", "-q", "--bare", bare)
    world.git("remote", "add", "elsewhere", f"file://{bare}", cwd=work)
    world.run("lfs-s3-py", "install", "--remote", "origin", cwd=work)

    world.git("push", "-q", "elsewhere", "main", cwd=work)  # git-lfs's own file transfer
    assert list((bare / "lfs" / "objects").rglob("*"))
    assert lfs_keys(world) == []
    world.git("push", "-q", "origin", "main", cwd=work)
    assert len(lfs_keys(world)) == 1


def test_plain_install_covers_every_s3_remote(lfs):
    world = lfs
    work = lfs_repo(world, install=False)
    second = f"{world.url}-second"
    world.git("remote", "add", "second", second, cwd=work)
    trace = world.tmp / "trace"
    out = world.run("lfs-s3-py", "install", cwd=work, env={"GIT_TRACE": str(trace)}).stdout
    assert "origin" in out and "second" in out
    # what it reads of git config, for both remotes, comes from one listing of it
    read = re.findall(r"trace: built-in: git config (-z --list|--get\b)", trace.read_text())
    assert read == ["-z --list"], read
    world.git("push", "-q", "second", "main", cwd=work)
    assert len(lfs_keys(world, f"{world.prefix}-second")) == 1


@pytest.mark.parametrize("lfsconfig", [None, "committed", "in the index"])
def test_install_scopes_the_agent_to_the_endpoint_git_lfs_computes(lfs, lfsconfig):
    # install names the endpoint itself when it is the lfsurl it set, and asks git-lfs
    # when an lfs.url may come first: git-lfs reads .lfsconfig from the index and HEAD
    # too, also when the file is gone from the work tree.
    world = lfs
    work = world.repo()
    if lfsconfig:
        (work / ".lfsconfig").write_text("[lfs]\n\turl = https://lfs.example.com/repo\n")
        world.git("add", ".lfsconfig", cwd=work)
        if lfsconfig == "committed":
            world.git("commit", "-q", "-m", "lfsconfig", cwd=work)
        (work / ".lfsconfig").unlink()
    world.run("lfs-s3-py", "install", "--remote", "origin", "--quiet", cwd=work)
    env = world.git("lfs", "env", cwd=work).stdout
    endpoint = re.search(r"^Endpoint=(\S+)", env, re.M).group(1)
    assert endpoint == ("https://lfs.example.com/repo" if lfsconfig else f"s3::{world.url}")
    assert world.git("config", f"lfs.{endpoint}.standalonetransferagent",
                     cwd=work).stdout.strip() == "lfs-s3-py"


def test_lfs_only_use_keeps_code_elsewhere_and_large_files_on_s3(lfs):
    world = lfs
    bare = world.tmp / "code.git"
    world.git("init", "-q", "--bare", bare)
    work = world.repo(remote=False)
    world.git("remote", "add", "origin", f"file://{bare}", cwd=work)
    world.run("lfs-s3-py", "install", "--url", world.url, cwd=work)
    content = os.urandom(30_000)
    world.git("lfs", "track", "*.bin", cwd=work)
    world.commit(work, "on s3", {"a.bin": content})
    world.git("push", "-q", "origin", "main", cwd=work)
    assert lfs_keys(world) == [f"lfs/{oid_of(content)}"]
    assert not (bare / "lfs").exists()

    copy = world.tmp / "copy"
    world.git("clone", "-q", f"file://{bare}", copy, env={"GIT_LFS_SKIP_SMUDGE": "1"})
    world.run("lfs-s3-py", "install", "--url", world.url, cwd=copy)
    world.git("lfs", "pull", cwd=copy)
    assert (copy / "a.bin").read_bytes() == content


def test_lfs_url_from_lfsconfig_is_honoured(lfs):
    world = lfs
    content = os.urandom(5_000)
    work = lfs_repo(world, files={"a.bin": content})
    world.git("push", "-q", "origin", "main", cwd=work)
    plain = world.repo("plain", remote=False)
    (plain / ".lfsconfig").write_text(f"[lfs]\n\turl = {world.url}\n")
    oid = oid_of(content)
    sent = run_agent(world, plain, {"event": "init", "operation": "download",
                                    "remote": "origin", "concurrent": True},
                     {"event": "download", "oid": oid, "size": len(content)})
    assert sent[0] == {}
    assert open(sent[-1]["path"], "rb").read() == content


def test_git_lfs_pull_fetch_all_push_all_and_prune(lfs):
    world = lfs
    work = lfs_repo(world, files={"v1.bin": os.urandom(10_000)})
    world.commit(work, "second version", {"v1.bin": os.urandom(10_000)})
    world.git("push", "-q", "origin", "main", cwd=work)
    copy = world.tmp / "copy"
    world.git("clone", "-q", world.url, copy, env={"GIT_LFS_SKIP_SMUDGE": "1"})
    assert (copy / "v1.bin").read_text().startswith("version https://git-lfs")
    world.git("lfs", "pull", cwd=copy)
    assert (copy / "v1.bin").read_bytes() == (work / "v1.bin").read_bytes()
    world.git("lfs", "fetch", "--all", cwd=copy)
    assert len(world.git("lfs", "ls-files", "--all", cwd=copy).stdout.splitlines()) == 2

    second = f"{world.url}-copy"
    world.git("remote", "add", "second", second, cwd=copy)
    world.run("lfs-s3-py", "install", "--remote", "second", cwd=copy)
    world.git("lfs", "push", "--all", "second", cwd=copy)
    assert len(lfs_keys(world, f"{world.prefix}-copy")) == 2
    # Only the checked-out version is needed (no offset keeps recent history); the
    # older one is pushed, so git-lfs's own prune drops it from the clone.
    current = oid_of((copy / "v1.bin").read_bytes())
    pruned = world.git("-c", "lfs.pruneoffsetdays=0", "lfs", "prune", cwd=copy)
    assert "2 local objects, 1 retained" in pruned.stdout + pruned.stderr
    kept = [p.name for p in (copy / ".git" / "lfs" / "objects").rglob("*") if p.is_file()]
    assert kept == [current]


def test_upload_skips_an_object_already_on_the_bucket(lfs):
    world = lfs
    content = os.urandom(40_000)
    first = lfs_repo(world, "first", files={"same.bin": content})
    world.git("push", "-q", "origin", "main", cwd=first)
    key = f"{world.prefix}/lfs/{oid_of(content)}"
    before = world.s3.head_object(Bucket=world.server.bucket, Key=key)["LastModified"]
    second = lfs_repo(world, "second", files={"same.bin": content, "x.txt": "other\n"})
    world.run("lfs-s3-py", "enable-debug", cwd=second)
    world.git("push", "-q", "origin", "main:refs/heads/second", cwd=second)
    log = (second / ".git" / "lfs" / "tmp" / "lfs-s3-py.log").read_text()
    # One create-only PUT, refused, then a HEAD for its size: no HEAD in line before
    # every upload, never a download, never a listing.
    assert f"PutObject s3://{world.server.bucket}/{key} IfNoneMatch=*" in log
    assert f"lfs/{oid_of(content)}' holds 40000 bytes" in log or \
        f"lfs/{oid_of(content)} holds 40000 bytes" in log
    assert "GetObject" not in log and "ListObjects" not in log
    assert world.s3.head_object(Bucket=world.server.bucket, Key=key)["LastModified"] == before


def test_large_files_go_up_in_parallel_parts_and_come_back_verified(lfs):
    world = lfs
    content = os.urandom(40 * 1024 * 1024)
    work = lfs_repo(world, files={"huge.bin": content})
    world.run("lfs-s3-py", "enable-debug", cwd=work)
    world.git("push", "-q", "origin", "main", cwd=work)
    log = (work / ".git" / "lfs" / "tmp" / "lfs-s3-py.log").read_text()
    assert log.count("s3: UploadPart s3://") == 5
    assert "CompleteMultipartUpload" in log and "IfNoneMatch=*" in log
    copy = world.clone("copy")
    assert (copy / "huge.bin").read_bytes() == content
    # Pushed again from elsewhere: one HEAD finds it, rather than every part sent again
    # only for the completion to be refused.
    world.run("lfs-s3-py", "enable-debug", cwd=copy)
    world.git("push", "-q", "origin", "main:refs/heads/again", cwd=copy)
    world.git("lfs", "push", "--all", "origin", cwd=copy)
    log = (copy / ".git" / "lfs" / "tmp" / "lfs-s3-py.log").read_text()
    assert "is already on the bucket" in log and "UploadPart" not in log


def test_debug_log_goes_to_the_real_gitdir_and_can_be_turned_off(lfs):
    world = lfs
    work = lfs_repo(world)
    worktree = world.tmp / "worktree"
    world.git("worktree", "add", "-q", "-b", "side", worktree, cwd=work)
    world.run("lfs-s3-py", "enable-debug", cwd=worktree)
    world.commit(worktree, "from the worktree", {"w.bin": os.urandom(1000)})
    world.git("push", "-q", "origin", "side", cwd=worktree)
    log = work / ".git" / "lfs" / "tmp" / "lfs-s3-py.log"
    assert "PutObject" in log.read_text()

    world.run("lfs-s3-py", "disable-debug", cwd=work)
    size = log.stat().st_size
    world.commit(work, "quiet", {"q.bin": os.urandom(1000)})
    world.git("push", "-q", "origin", "main", cwd=work)
    assert log.stat().st_size == size


def test_verbose_s3_calls_reach_git_lfs_trace_and_tracing_adds_tracebacks(lfs):
    world = lfs
    work = lfs_repo(world)
    pushed = world.git("lfs", "push", "origin", "main", cwd=work,
                       env={"GIT_TRACE": "1", "GIT_REMOTE_S3_VERBOSE": "1"})
    assert "xfer[lfs-s3-py]: s3: PutObject s3://" in pushed.stderr
    world.git("remote", "add", "hub", "https://example.invalid/repo.git", cwd=work)
    refused = world.run("lfs-s3-py", "install", "--remote", "hub", cwd=work, ok=False,
                        env={"GIT_REMOTE_S3_TRACE": "1"})
    assert "Traceback (most recent call last)" in refused.stderr
    assert refused.stderr.rstrip().splitlines()[-1].startswith(
        "fatal: remote 'hub' is not an s3:// remote")


def test_uninstall_removes_what_install_wrote(lfs):
    world = lfs
    work = lfs_repo(world)
    before = world.git("config", "--local", "--list", cwd=work).stdout
    world.run("lfs-s3-py", "install", "--url", f"{world.url}/other", cwd=work)
    world.run("lfs-s3-py", "enable-debug", cwd=work)
    world.run("lfs-s3-py", "uninstall", cwd=work)
    after = world.git("config", "--local", "--list", cwd=work).stdout
    assert "lfs-s3-py" not in after and "s3://" not in after.replace(world.url + "\n", "")
    assert [line for line in after.splitlines() if line.startswith("lfs.")] == [
        line for line in before.splitlines()
        if line.startswith("lfs.") and "lfs-s3-py" not in line and "locksverify" not in line]


def test_help_and_usage(lfs):
    world = lfs
    helped = world.run("lfs-s3-py", "--help").stdout
    assert "lfs-s3-py install --remote NAME" in helped and "enable-debug" in helped
    bad = world.run("lfs-s3-py", "install", "--remote", ok=False)
    assert bad.stderr.startswith("fatal: usage: lfs-s3-py install")
    outside = world.run("lfs-s3-py", "install", ok=False, cwd=world.tmp)
    assert outside.stderr == "fatal: not in a git repository\n"
    no_s3 = world.repo("no-s3", remote=False)
    refused = world.run("lfs-s3-py", "install", ok=False, cwd=no_s3)
    assert "has no s3:// remote" in refused.stderr
    world.git("remote", "add", "hub", "https://example.invalid/repo.git", cwd=no_s3)
    not_s3 = world.run("lfs-s3-py", "install", "--remote", "hub", ok=False, cwd=no_s3)
    assert not_s3.stderr.startswith("fatal: remote 'hub' is not an s3:// remote")
    unknown = world.run("lfs-s3-py", "frobnicate", ok=False)
    assert unknown.stderr == "fatal: unknown command 'frobnicate' (see lfs-s3-py --help)\n"


def test_install_without_git_lfs_says_how_to_get_it(world, tmp_path):
    only_git = tmp_path / "only-git"
    only_git.mkdir()
    (only_git / "git").symlink_to(shutil.which("git"))
    work = world.repo()
    env = {"PATH": os.pathsep.join([str(only_git), os.path.dirname(sys.executable)])}
    refused = world.run(sys.executable, ROOT / "lfs-s3-py", "install", cwd=work,
                        ok=False, env=env)
    assert refused.stderr.startswith("fatal: git-lfs is not installed")


def test_clone_warns_when_the_agent_cannot_be_set_up(lfs, tmp_path):
    world = lfs
    work = lfs_repo(world)
    world.git("push", "-q", "origin", "main", cwd=work)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "lfs-s3-py").write_text("#!/bin/sh\necho 'fatal: no luck' >&2\nexit 128\n")
    (broken / "lfs-s3-py").chmod(0o755)
    env = {"PATH": f"{broken}{os.pathsep}{world.env['PATH']}",
           "GIT_LFS_SKIP_SMUDGE": "1"}
    cloned = world.git("clone", world.url, world.tmp / "copy", env=env)
    assert "warning: git-lfs is not set up for 'origin': fatal: no luck" in cloned.stderr


# Failures: per object, inside the complete event, and shown by git-lfs.

def test_the_agent_reports_progress_then_completes(lfs):
    world = lfs
    content = os.urandom(20 * 1024 * 1024)  # several parts, so several progress events
    work = lfs_repo(world, files={"big.bin": content})
    path = work / ".git" / "lfs" / "objects" / oid_of(content)[:2] / oid_of(content)[2:4] / \
        oid_of(content)
    sent = run_agent(world, work, {"event": "init", "operation": "upload", "remote": "origin"},
                     {"event": "upload", "oid": oid_of(content), "size": len(content),
                      "path": str(path), "action": None})
    progress = [m for m in sent if m.get("event") == "progress"]
    assert progress and sent.index(progress[-1]) < len(sent) - 1  # before complete
    assert progress[-1]["bytesSoFar"] == len(content)
    assert sum(m["bytesSinceLast"] for m in progress) == len(content)
    assert sent[-1] == {"event": "complete", "oid": oid_of(content)}


def test_init_fails_clearly_for_a_remote_without_an_s3_url(lfs):
    world = lfs
    plain = world.repo("plain", remote=False)
    world.git("remote", "add", "origin", "https://example.invalid/repo.git", cwd=plain)
    oid = "a" * 64
    sent = run_agent(world, plain, {"event": "init", "operation": "download",
                                    "remote": "origin"},
                     {"event": "download", "oid": oid, "size": 1})
    assert sent == [
        {"error": {"code": 32, "message": (
            "remote 'origin' has no s3:// URL; run 'lfs-s3-py install --url "
            "s3://bucket/prefix' to keep LFS on S3")}},
        {"event": "complete", "oid": oid, "error": {
            "code": 32, "message": "no s3:// URL: the agent's init failed"}}]


def test_a_corrupt_manifest_stops_transfers_rather_than_guess_plaintext(lfs):
    """Whether the repository is encrypted is in its manifest: unreadable, no guess."""
    world = lfs
    content = os.urandom(10_000)
    work = lfs_repo(world, files={"x.bin": content})
    world.put("manifest.json", b"{not json")
    path = work / ".git" / "lfs" / "objects" / oid_of(content)[:2] / oid_of(content)[2:4] / \
        oid_of(content)
    sent = run_agent(world, work, {"event": "init", "operation": "upload", "remote": "origin"},
                     {"event": "upload", "oid": oid_of(content), "size": len(content),
                      "path": str(path)})
    assert sent[-1]["error"]["message"].startswith(
        f"the manifest '{world.url}/manifest.json' is corrupt (")
    assert lfs_keys(world) == []


def test_an_unreadable_local_file_fails_that_object_only(lfs):
    world = lfs
    work = lfs_repo(world)
    content = b"present"
    (work / "present.bin").write_bytes(content)
    sent = run_agent(world, work, {"event": "init", "operation": "upload", "remote": "origin"},
                     {"event": "upload", "oid": "b" * 64, "size": 3,
                      "path": str(work / "gone.bin")},
                     {"event": "upload", "oid": oid_of(content), "size": len(content),
                      "path": str(work / "present.bin")})
    assert "No such file or directory" in sent[1]["error"]["message"]
    assert sent[-1] == {"event": "complete", "oid": oid_of(content)}
    assert lfs_keys(world) == [f"lfs/{oid_of(content)}"]


@pytest.mark.parametrize("damage", ["same size, other bytes", "truncated"])
def test_a_corrupted_object_is_detected_and_never_checked_out(lfs, damage):
    world = lfs
    content = os.urandom(20_000)
    work = lfs_repo(world, files={"a.bin": content})
    world.git("push", "-q", "origin", "main", cwd=work)
    stored = os.urandom(len(content)) if damage == "same size, other bytes" else content[:-1]
    world.put(f"lfs/{oid_of(content)}", stored)
    copy = world.tmp / "copy"
    world.git("clone", "-q", world.url, copy, env={"GIT_LFS_SKIP_SMUDGE": "1"})
    pulled = world.git("lfs", "pull", cwd=copy, ok=False)
    assert f"object {oid_of(content)}" in pulled.stderr and "is corrupt" in pulled.stderr
    assert (copy / "a.bin").read_text().startswith("version https://git-lfs")
    assert os.listdir(copy / ".git" / "lfs" / "tmp") == []


def test_a_missing_object_names_the_oid_and_the_key(lfs):
    world = lfs
    content = os.urandom(20_000)
    work = lfs_repo(world, files={"a.bin": content})
    world.git("push", "-q", "origin", "main", cwd=work)
    world.s3.delete_object(Bucket=world.server.bucket,
                           Key=f"{world.prefix}/lfs/{oid_of(content)}")
    copy = world.tmp / "copy"
    world.git("clone", "-q", world.url, copy, env={"GIT_LFS_SKIP_SMUDGE": "1"})
    pulled = world.git("lfs", "pull", cwd=copy, ok=False)
    assert f"object {oid_of(content)} is not on the bucket" in pulled.stderr
    assert f"{world.url}/lfs/{oid_of(content)}" in pulled.stderr


def test_an_invalid_oid_is_rejected_before_any_file_or_key_is_touched(lfs):
    world = lfs
    work = lfs_repo(world)
    before = world.snapshot()
    sent = run_agent(world, work,
                     {"event": "init", "operation": "upload", "remote": "origin"},
                     {"event": "upload", "oid": "../../escape", "size": 5,
                      "path": str(work / "data.bin")},
                     {"event": "download", "oid": "A" * 64, "size": 5})
    assert [m.get("error", {}).get("message", "") for m in sent[1:]] == [
        "invalid object id '../../escape'", f"invalid object id '{'A' * 64}'"]
    assert world.snapshot() == before
    assert not (work / ".git" / "lfs" / "tmp").exists() or \
        os.listdir(work / ".git" / "lfs" / "tmp") == []


@pytest.mark.parametrize("case", ["read-only", "missing bucket", "no credentials"])
def test_s3_failures_reach_the_user_through_git_lfs(lfs, case):
    world = lfs
    work = lfs_repo(world, files={"a.bin": os.urandom(10_000)})
    env, expected = {}, ""
    if case == "read-only":
        if "reader" not in world.server.keys:
            pytest.skip("the endpoint has no read-only identity")
        key, secret = world.server.keys["reader"]
        env = {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
        expected = "access denied: "
    elif case == "missing bucket":
        world.git("remote", "set-url", "origin", "s3://no-such-bucket-for-lfs/x", cwd=work)
        world.run("lfs-s3-py", "install", cwd=work)
        expected = "bucket 'no-such-bucket-for-lfs' does not exist"
    else:
        env = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None,
               "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent"}
        expected = "no AWS credentials found"
    pushed = world.git("lfs", "push", "origin", "main", cwd=work, ok=False, env=env)
    assert expected in pushed.stderr
    assert "Traceback" not in pushed.stderr
    assert lfs_keys(world) == []


@pytest.mark.parametrize("sharing", ["shared", "alone"])
def test_many_files_with_concurrent_agents(lfs, sharing):
    """git-lfs starts 8 agents; on Linux the first to get work serves the others' too."""
    world = lfs
    files = {f"f{i:02d}.bin": os.urandom(5_000 + i) for i in range(40)}
    work = lfs_repo(world, files=files)
    world.git("config", "lfs.concurrenttransfers", "8", cwd=work)
    env = {"GIT_TRACE": "1", "GIT_REMOTE_S3_VERBOSE": "1",
           "GIT_TEST_LFS_ALONE": "1" if sharing == "alone" else None}
    pushed = world.git("push", "-q", "origin", "main", cwd=work, env=env).stderr
    hosts = pushed.count("s3: serving the transfers of sibling agents too")
    relays = pushed.count("s3: relaying transfers to a sibling agent")
    assert (hosts, relays > 0) == ((1, True) if sharing == "shared" else (0, False))
    assert pushed.count(f"s3: PutObject {world.url}/lfs/") == 40 and "Traceback" not in pushed
    assert len(lfs_keys(world)) == 40
    copy = world.tmp / "copy"
    world.git("clone", "-q", world.url, copy, env=env)
    assert all((copy / name).read_bytes() == data for name, data in files.items())


def host_and_sibling(world):
    """Two agents of one launcher, the first hosting (it uploaded x), the second
    relaying (it uploaded y through the host); z is left to upload."""
    x, y, z = (os.urandom(30_000) for _ in range(3))
    work = lfs_repo(world, files={"x.bin": x, "y.bin": y, "z.bin": z})
    host, sibling = RunningAgent(world, work, "host"), RunningAgent(world, work, "sibling")
    for agent in (host, sibling):
        assert agent.ask({"event": "init", "operation": "upload", "remote": "origin"}) == [{}]
    assert host.upload(work, x) == {"event": "complete", "oid": oid_of(x)}
    assert sibling.upload(work, y) == {"event": "complete", "oid": oid_of(y)}
    return work, host, sibling, (x, y, z)


def test_a_sibling_does_its_transfers_itself_once_the_host_agent_is_gone(lfs):
    world = lfs
    work, host, sibling, (x, y, z) = host_and_sibling(world)
    host.kill()
    assert sibling.upload(work, z) == {"event": "complete", "oid": oid_of(z)}
    sibling_log, host_log = sibling.stop(), host.log.read_text()
    assert "serving the transfers of sibling agents too" in host_log
    assert f"PutObject {world.url}/lfs/{oid_of(y)}" in host_log  # done by the host
    assert "relaying transfers to a sibling agent" in sibling_log
    assert "hosting transfers is gone: working alone" in sibling_log
    assert f"PutObject {world.url}/lfs/{oid_of(z)}" in sibling_log
    assert sorted(lfs_keys(world)) == sorted(f"lfs/{oid_of(c)}" for c in (x, y, z))


def test_a_sibling_works_alone_within_seconds_once_its_host_stops_answering(lfs):
    world = lfs
    work, host, sibling, (x, y, z) = host_and_sibling(world)
    os.killpg(host.proc.pid, signal.SIGSTOP)  # alive, connected, and silent
    try:
        stopped(host.proc.pid)
        started = time.monotonic()
        assert sibling.upload(work, z) == {"event": "complete", "oid": oid_of(z)}
        assert time.monotonic() - started < 20
    finally:
        os.killpg(host.proc.pid, signal.SIGCONT)
    assert "hosting transfers is gone: working alone" in sibling.stop()
    host.stop()
    assert sorted(lfs_keys(world)) == sorted(f"lfs/{oid_of(c)}" for c in (x, y, z))


def stopped(pid):
    """Wait until every thread of `pid` has stopped: a SIGSTOP takes effect as each
    thread next runs, not when kill returns."""
    for _ in range(500):
        states = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        if all(state in "tT" for state in states):
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not stop: {states}")


def test_a_relay_sends_nothing_to_a_host_that_is_no_sibling(lfs, monkeypatch):
    """A process of the same user that took the agents' socket first (here: this
    test, no sibling of the agent it starts) gets no request, and the agent works."""
    world = lfs
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)  # the agents' place is ours
    world.env["TMPDIR"] = tempfile.gettempdir()
    x = os.urandom(30_000)
    work = lfs_repo(world, files={"x.bin": x})
    address = load_script("lfs-s3-py").sharing_address(world.url, os.getpid())
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as trap:
        trap.bind(address)
        trap.listen(8)
        try:
            agent = RunningAgent(world, work, "agent")
            agent.ask({"event": "init", "operation": "upload", "remote": "origin"})
            started = time.monotonic()
            assert agent.upload(work, x) == {"event": "complete", "oid": oid_of(x)}
            assert time.monotonic() - started < 20
            trap.settimeout(10)
            conn, _ = trap.accept()  # it connected, checked who listens...
            with conn:
                conn.settimeout(10)
                assert conn.recv(1) == b""  # ...and closed without a word
            log = agent.stop()
        finally:
            os.unlink(address)
    assert "held by no sibling agent: working alone" in log
    assert lfs_keys(world) == [f"lfs/{oid_of(x)}"]


def test_only_agents_of_the_same_git_lfs_may_use_the_host_agent(lfs, monkeypatch):
    """The host runs transfers with the user's credentials and reads the files it is
    told to: a process that is not a sibling agent is refused."""
    world = lfs
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)  # the agents' place is ours
    world.env["TMPDIR"] = tempfile.gettempdir()
    x = os.urandom(30_000)
    work = lfs_repo(world, files={"x.bin": x})
    secret = world.tmp / "secret"
    secret.write_bytes(b"not for the bucket\n")
    host = RunningAgent(world, work, "host")
    host.ask({"event": "init", "operation": "upload", "remote": "origin"})
    host.upload(work, x)
    # The host's launcher is this test process, which is no sibling of it.
    address = load_script("lfs-s3-py").sharing_address(world.url, os.getpid())
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(60)
        conn.connect(address)
        request = {"event": "upload", "oid": oid_of(secret.read_bytes()),
                   "size": secret.stat().st_size, "path": str(secret)}
        try:
            conn.sendall(json.dumps(request).encode() + b"\n")
            answer = conn.recv(1)
        except (BrokenPipeError, ConnectionResetError):  # closed before it read it
            answer = b""
        assert answer == b""  # no answer: closed
    log = host.stop()
    assert "refused a connection from a process that is no sibling agent" in log
    assert lfs_keys(world) == [f"lfs/{oid_of(x)}"]


# On the bucket: git s3 doctor --lfs checks every pointer the refs reach

def test_doctor_lfs_checks_every_pointer_of_every_branch_and_tag(lfs):
    world = lfs
    a, b, c = (os.urandom(n) for n in (30_000, 20_000, 10_000))
    work = lfs_repo(world, files={"a.bin": a})
    world.git("tag", "v1", cwd=work)
    world.commit(work, "b", {"b.bin": b})
    world.git("checkout", "-q", "-b", "side", "v1", cwd=work)
    side = world.commit(work, "c", {"dir/c.bin": c})
    world.git("push", "-q", "origin", "main", "side", "v1", cwd=work)
    checked = world.git_s3("-v", "doctor", "--lfs", "origin", cwd=work)
    assert "LFS:       3 objects the refs need, 3 of them on the bucket" in checked.stdout
    assert checked.stderr.count("s3: ListObjectsV2 s3://") == 1  # one listing, no HEADs
    assert "HeadObject" not in checked.stderr

    world.s3.delete_object(Bucket=world.server.bucket, Key=f"{world.prefix}/lfs/{oid_of(b)}")
    world.put(f"lfs/{oid_of(c)}", c[:-1])
    found = world.git_s3("doctor", "--lfs", "origin", cwd=work, ok=False)
    assert found.returncode == 1
    main = world.rev(work, "main")
    assert f"error: LFS object {oid_of(b)} (19.5 KiB) is missing; 'b.bin' in {main[:12]} " \
           "(refs/heads/main) points to it" in found.stdout
    assert f"error: LFS object {oid_of(c)} has 9999 bytes; the pointer in 'dir/c.bin' in " \
           f"{side[:12]} (refs/heads/side) says 10000" in found.stdout
    assert "LFS:       3 objects the refs need, 2 of them on the bucket" in found.stdout


def test_doctor_lfs_deep_checks_the_content(lfs):
    world = lfs
    content = os.urandom(25_000)
    work = lfs_repo(world, files={"a.bin": content})
    world.git("push", "-q", "origin", "main", cwd=work)
    world.put(f"lfs/{oid_of(content)}", os.urandom(len(content)))  # same size
    assert "is healthy" in world.git_s3("doctor", "--lfs", "origin", cwd=work).stdout
    deep = world.git_s3("doctor", "--lfs", "--deep", "origin", cwd=work, ok=False)
    assert f"error: LFS object {oid_of(content)} is corrupt (its SHA-256 differs); " \
           "'a.bin' in" in deep.stdout


# On the bucket: git s3 lfs-prune deletes what no ref needs, never what a push may

NO_GRACE = ("--grace-hours", "0")


def test_lfs_prune_keeps_what_refs_and_tags_need_and_deletes_the_rest(lfs):
    world = lfs
    old, tagged, current = (os.urandom(n) for n in (11_000, 12_000, 13_000))
    work = lfs_repo(world, files={"a.bin": tagged})
    world.git("tag", "v1", cwd=work)
    world.commit(work, "force-pushed away later", {"a.bin": old})
    world.git("push", "-q", "origin", "main", "v1", cwd=work)
    world.git("reset", "-q", "--hard", "v1", cwd=work)
    world.commit(work, "current", {"a.bin": current})
    world.git("push", "-q", "--force", "origin", "main", cwd=work)
    keys = {oid_of(c): c for c in (old, tagged, current)}
    assert set(lfs_keys(world)) == {f"lfs/{o}" for o in keys}
    before = world.snapshot()

    dry = world.git_s3("lfs-prune", "origin", "--dry-run", *NO_GRACE, cwd=work)
    assert f"would delete: lfs/{oid_of(old)} (10.7 KiB)" in dry.stdout
    assert "would delete 1 LFS objects (10.7 KiB); 2 are needed" in dry.stdout
    assert world.snapshot() == before

    young = world.git_s3("lfs-prune", "origin", cwd=work)  # the default 24 hours
    assert f"kept:      lfs/{oid_of(old)} (10.7 KiB): no ref needs it, but it is " \
           "younger than 24 hours" in young.stdout
    assert world.snapshot() == before

    pruned = world.git_s3("lfs-prune", "origin", *NO_GRACE, cwd=work)
    assert "deleted 1 LFS objects (10.7 KiB); 2 are needed" in pruned.stdout
    assert set(lfs_keys(world)) == {f"lfs/{oid_of(tagged)}", f"lfs/{oid_of(current)}"}
    checked = world.git_s3("doctor", "--lfs", "origin", cwd=work)
    assert "LFS:       2 objects the refs need, 2 of them on the bucket" in checked.stdout
    tag = world.clone("tag-copy", None, "-b", "v1")
    assert (tag / "a.bin").read_bytes() == tagged


def test_lfs_prune_never_deletes_what_a_push_in_progress_uploaded(lfs):
    world = lfs
    work = lfs_repo(world, files={"a.bin": os.urandom(10_000)})
    world.git("push", "-q", "origin", "main", cwd=work)
    landing = os.urandom(9_000)
    world.commit(work, "its push has not landed yet", {"b.bin": landing})
    world.git("lfs", "push", "origin", "main", cwd=work)  # git-lfs uploads first
    kept = world.git_s3("lfs-prune", "origin", cwd=work)
    assert f"kept:      lfs/{oid_of(landing)}" in kept.stdout
    assert f"lfs/{oid_of(landing)}" in lfs_keys(world)
    world.git("push", "-q", "origin", "main", cwd=work)  # the push lands: needed now
    world.git_s3("lfs-prune", "origin", *NO_GRACE, cwd=work)
    assert f"lfs/{oid_of(landing)}" in lfs_keys(world)


def test_lfs_prune_keep_days_drops_old_history_but_never_a_tip(lfs):
    world = lfs
    ancient, recent = os.urandom(8_000), os.urandom(7_000)
    work = world.repo()
    world.run("lfs-s3-py", "install", cwd=work)
    world.git("lfs", "track", "*.bin", cwd=work)
    month_ago = {"GIT_COMMITTER_DATE": "@%d +0000" % (time.time() - 30 * 86400)}
    (work / "a.bin").write_bytes(ancient)
    world.git("add", "-A", cwd=work)
    world.git("commit", "-q", "-m", "a month ago", cwd=work, env=month_ago)
    world.git("branch", "stale", cwd=work)
    world.commit(work, "today", {"a.bin": recent})
    world.git("push", "-q", "origin", "main", cwd=work)
    whole = world.git_s3("lfs-prune", "origin", "--dry-run", *NO_GRACE, cwd=work)
    assert "would delete 0 LFS objects" in whole.stdout
    recent_only = world.git_s3("lfs-prune", "origin", "--keep-days", "7", *NO_GRACE, cwd=work)
    assert "deleted 1 LFS objects" in recent_only.stdout
    assert lfs_keys(world) == [f"lfs/{oid_of(recent)}"]
    # a tip older than the window keeps its tree's objects
    world.git("push", "-q", "origin", "stale", cwd=work)
    world.git("lfs", "push", "--object-id", "origin", oid_of(ancient), cwd=work)
    world.git_s3("lfs-prune", "origin", "--keep-days", "7", *NO_GRACE, cwd=work)
    assert set(lfs_keys(world)) == {f"lfs/{oid_of(ancient)}", f"lfs/{oid_of(recent)}"}


def test_an_interrupted_lfs_prune_leaves_a_consistent_bucket(lfs, proxy):
    world = lfs
    needed, unneeded = os.urandom(6_000), os.urandom(5_000)
    work = lfs_repo(world, files={"a.bin": needed})
    world.git("push", "-q", "origin", "main", cwd=work)
    world.git("checkout", "-q", "-b", "gone", cwd=work)
    world.commit(work, "on a branch that goes", {"b.bin": unneeded})
    world.git("push", "-q", "origin", "gone", cwd=work)
    world.git("push", "-q", "origin", "--delete", "gone", cwd=work)
    proxy.add("reset", method="POST")  # DeleteObjects never answers
    failed = world.git_s3("lfs-prune", "origin", *NO_GRACE, cwd=work, ok=False,
                          env={**proxy.env, "AWS_MAX_ATTEMPTS": "1"})
    assert proxy.fired("reset") and "Traceback" not in failed.stderr
    assert "is healthy" in world.git_s3("doctor", "--lfs", "origin", cwd=work).stdout
    world.git_s3("lfs-prune", "origin", *NO_GRACE, cwd=work)  # again, to the end
    assert lfs_keys(world) == [f"lfs/{oid_of(needed)}"]


def test_git_lfs_never_tries_ssh_for_an_s3_remote(lfs, tmp_path):
    # git-lfs reads s3://bucket/prefix as the SSH host `s3`; a real host of that name
    # would be asked for git-lfs-transfer. An `ssh` first on PATH tells if it was run.
    fake = tmp_path / "fake-ssh"
    fake.mkdir()
    (fake / "ssh").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'ssh-ran'}\nexit 1\n")
    (fake / "ssh").chmod(0o755)
    world = lfs
    env = {"PATH": f"{fake}:{world.env['PATH']}"}
    work = lfs_repo(world)
    world.git("push", "-q", "origin", "main", cwd=work, env=env)
    copy = world.tmp / "copy"
    world.git("clone", "-q", world.url, copy, env=env)
    assert (copy / "data.bin").read_bytes() == (work / "data.bin").read_bytes()
    world.git("lfs", "pull", cwd=copy, env=env)
    assert not (tmp_path / "ssh-ran").exists(), (tmp_path / "ssh-ran").read_text()
    assert world.git("config", "remote.origin.lfsurl", cwd=copy).stdout.strip() == \
        f"s3::{world.url}"


def test_an_object_of_another_size_under_its_oid_is_replaced(lfs):
    world = lfs
    content = os.urandom(30_000)
    world.put(f"lfs/{oid_of(content)}", content[:100])  # damaged: cut short
    work = lfs_repo(world, files={"x.bin": content})
    world.git("push", "-q", "origin", "main", cwd=work)
    assert world.s3.get_object(Bucket=world.server.bucket, Key=f"{world.prefix}/lfs/"
                               f"{oid_of(content)}")["Body"].read() == content


def test_the_agent_takes_what_the_helper_just_read_and_uploads_with_no_head(lfs, proxy):
    world = lfs
    work = lfs_repo(world, files={"first.bin": os.urandom(2000)})
    world.git("push", "-q", "origin", "main", cwd=work)
    world.commit(work, "five more", {f"f{i}.bin": os.urandom(5000 + i) for i in range(5)})
    proxy.timeline.clear()
    world.git("push", "-q", "origin", "main", cwd=work, env=proxy.env)
    requests = [(method, key) for *_, method, key in proxy.timeline]
    # git's list for the push and git-lfs's pre-push ls-remote; none by the agent
    assert requests.count(("GET", f"{world.prefix}/manifest.json")) == 2, requests
    assert not [r for r in requests if r[0] == "HEAD"], requests
    assert len([r for r in requests if r[0] == "PUT" and "/lfs/" in r[1]]) == 5


def test_install_keeps_an_lfsurl_of_the_users_and_follows_a_changed_remote(lfs):
    world = lfs
    work = lfs_repo(world, install=False)
    elsewhere = f"{world.url}-lfs"
    world.git("config", "remote.origin.lfsurl", elsewhere, cwd=work)
    world.run("lfs-s3-py", "install", "--remote", "origin", cwd=work)
    assert world.git("config", "remote.origin.lfsurl", cwd=work).stdout.strip() == elsewhere
    world.git("push", "-q", "origin", "main", cwd=work)
    assert lfs_keys(world) == [] and len(lfs_keys(world, f"{world.prefix}-lfs")) == 1
    world.run("lfs-s3-py", "uninstall", cwd=work)
    assert world.git("config", "remote.origin.lfsurl", cwd=work).stdout.strip() == elsewhere

    other = lfs_repo(world, "other", files={"b.bin": os.urandom(3000)})  # installed: ours
    moved = f"{world.url}-moved"
    world.git("remote", "set-url", "origin", moved, cwd=other)
    world.git("push", "-q", "origin", "main", cwd=other)
    assert len(lfs_keys(world, f"{world.prefix}-moved")) == 1
