"""Encrypted repositories: gpg to chosen recipients, nothing readable on the bucket but
sizes, every guarantee of the plain format kept (test_concurrency, test_crash and
test_faults run on encrypted repositories too)."""

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from test_lfs import lfs_keys, lfs_repo, oid_of
from test_errors import fatal_line

encrypted = pytest.mark.parametrize("world", ["encrypted"], indirect=True)


def bucket_bytes(world):
    """{key: bytes} of everything under the test's prefix."""
    return {key: world.s3.get_object(Bucket=world.server.bucket,
                                     Key=f"{world.prefix}/{key}")["Body"].read()
            for key in world.keys()}


def fingerprint(world, email):
    listing = subprocess.run(["gpg", "--batch", "--with-colons", "--list-keys", email],
                             capture_output=True, text=True, check=True, timeout=60,
                             env={**os.environ, "GNUPGHOME": world.gpg_homes["owner"]})
    return next(line.split(":")[9] for line in listing.stdout.splitlines()
                if line.startswith("fpr:"))


def encrypted_to(world, data):
    """The key ids a gpg message is encrypted to (its public-key packets)."""
    packets = subprocess.run(["gpg", "--batch", "--list-packets"], input=data,
                             capture_output=True, timeout=60,
                             env={**os.environ, "GNUPGHOME": world.gpg_homes["stranger"]})
    return set(re.findall(rb"pubkey enc packet: .*keyid ([0-9A-F]{16})", packets.stdout))


@encrypted
def test_a_push_creates_the_repository_encrypted_and_nothing_on_the_bucket_reads(world):
    work = world.repo()
    secret = "the launch code is 0000\n"
    world.commit(work, "secret plans", files={"plans.txt": secret})
    world.git("tag", "-a", "v1", "-m", "release one", cwd=work)
    world.git("push", "-q", "origin", "main", "v1", cwd=work)

    stored = bucket_bytes(world)
    assert set(stored) <= {"manifest.json"} | {k for k in stored if k.startswith("bundles/")}
    shas = [world.rev(work, "main"), world.rev(work, "v1")]
    for key, data in stored.items():
        for clue in [b"refs/heads/main", b"refs/tags/v1", b"plans", secret.encode(),
                     *(s.encode() for s in shas)]:
            assert clue not in data, f"{key} shows {clue!r}"
    envelope = json.loads(stored["manifest.json"])
    # Older clients read an empty repository of a format they refuse to write.
    assert (envelope["format"], envelope["refs"], envelope["bundles"]) == (3, {}, [])
    assert envelope["encrypted"]["to"] == [fingerprint(world, "alice@example.com")]
    assert world.manifest()["refs"]["refs/heads/main"] == shas[0]

    copy = world.clone("copy")
    assert (copy / "plans.txt").read_text() == secret
    world.assert_fsck_clean(copy)
    world.commit(work, "more plans")
    world.git("push", "-q", "origin", "main", cwd=work)
    world.git("pull", "-q", cwd=copy)
    assert world.rev(copy, "HEAD") == world.rev(work, "main")


@encrypted
def test_without_a_recipients_key_one_line_names_the_recipients(world):
    work = world.repo()
    world.git("push", "-q", "origin", "main", cwd=work)
    before = world.snapshot()
    stranger = {"GNUPGHOME": world.gpg_homes["stranger"]}
    alice = fingerprint(world, "alice@example.com")
    cloned = world.git("clone", world.url, world.tmp / "copy", ok=False, env=stranger)
    world.commit(work, "from a stranger")
    pushed = world.git("push", "origin", "main", cwd=work, ok=False, env=stranger)
    for failed in (cloned, pushed):
        assert "Traceback" not in failed.stderr and "corrupt" not in failed.stderr
        assert re.search(rf"^fatal: '{re.escape(world.url)}/manifest.json' is encrypted to "
                         rf"{alice} and cannot be decrypted here \(gpg: .*\)$",
                         failed.stderr, re.M), failed.stderr
    assert world.snapshot() == before


def test_git_s3_encrypt_creates_then_adds_and_removes_recipients(world, gpg_keys):
    world.env["GNUPGHOME"] = gpg_keys["owner"]
    world.gpg_homes = gpg_keys
    alice, bob = (fingerprint(world, who) for who in ("alice@example.com", "bob@example.com"))
    made = world.git_s3("encrypt", world.url, "--to", "alice@example.com")
    assert made.stdout.strip() == f"'{world.url}' is encrypted to {alice}"
    work = world.repo()  # no s3.encryptTo: the repository says it is encrypted
    world.git("push", "-q", "origin", "main", cwd=work)
    bundle = next(k for k in world.keys() if k.startswith("bundles/"))
    first = encrypted_to(world, bucket_bytes(world)[bundle])
    assert len(first) == 1

    assert bob in world.git_s3("encrypt", world.url, "--to", "bob@example.com").stdout
    info = world.git_s3("info", world.url).stdout
    assert f"encrypted:  to {alice}, {bob}" in info
    removed = world.git_s3("encrypt", world.url, "--remove", alice[-16:]).stdout
    assert f"is encrypted to {bob}" in removed and "until 'git s3 gc'" in removed
    last = world.git_s3("encrypt", world.url, "--remove", "bob@example.com", ok=False)
    assert fatal_line(last).startswith("fatal: refusing to remove every recipient")
    unknown = world.git_s3("encrypt", world.url, "--remove", "carol@example.com", ok=False)
    assert fatal_line(unknown).startswith("fatal: 'carol@example.com' is not a recipient")

    world.git_s3("gc", world.url)  # re-encrypts what is there to Bob alone
    (entry,) = world.manifest()["bundles"]
    now = encrypted_to(world, bucket_bytes(world)[entry["key"]])
    assert len(now) == 1 and now != first
    assert world.manifest()["recipients"] == [bob]
    copy = world.clone("copy")
    assert world.rev(copy, "HEAD") == world.rev(work, "main")


def test_git_s3_encrypt_refuses_a_plaintext_repository(world, gpg_keys):
    world.env["GNUPGHOME"] = gpg_keys["owner"]
    work = world.repo()
    world.git("push", "-q", "origin", "main", cwd=work)
    before = world.snapshot()
    refused = world.git_s3("encrypt", world.url, "--to", "alice@example.com", ok=False)
    assert refused.stderr.startswith(f"fatal: '{world.url}' holds a plaintext repository")
    unknown = world.git_s3("encrypt", world.url, "--to", "nobody@example.com", ok=False)
    assert unknown.stderr.startswith("fatal: no public key 'nobody@example.com'")
    assert world.snapshot() == before


def test_s3_encrypt_to_never_pushes_plaintext_to_a_plain_repository(world, gpg_keys):
    work = world.repo()
    world.git("push", "-q", "origin", "main", cwd=work)
    before = world.snapshot()
    world.commit(work, "meant to be secret")
    world.git("config", "s3.encryptTo", "alice@example.com", cwd=work)
    refused = world.git("push", "origin", "main", cwd=work, ok=False,
                        env={"GNUPGHOME": gpg_keys["owner"]})
    assert f"fatal: '{world.url}' is not encrypted, and s3.encryptTo asks" in refused.stderr
    assert world.snapshot() == before


@encrypted
def test_zip_archives_of_an_encrypted_repository_need_consent(world):
    work = world.repo()
    world.git("push", "-q", "origin", "main", cwd=work)
    world.git("remote", "set-url", "origin", world.url.replace("s3://", "s3+zip://"),
              cwd=work)
    world.commit(work, "for CI")
    refused = world.git("push", "origin", "main", cwd=work, ok=False)
    assert "is encrypted, and the zip archives of s3+zip:// would be plaintext" in \
        refused.stderr
    assert "hint: allow them with 'git config s3.plaintextArchives true'" in refused.stderr
    assert not [k for k in world.keys() if k.endswith("repo.zip")]
    world.git("config", "s3.plaintextArchives", "true", cwd=work)
    world.git("push", "-q", "origin", "main", cwd=work)
    assert "refs/heads/main/repo.zip" in world.keys()


@encrypted
def test_lfs_objects_are_encrypted_under_a_keyed_name(world, lfs):
    content = b"large and secret " * 5000
    work = lfs_repo(world, files={"big.bin": content})
    world.git("push", "-q", "origin", "main", cwd=work)
    stored = lfs_keys(world)
    assert len(stored) == 1 and oid_of(content) not in stored[0]
    data = bucket_bytes(world)[stored[0]]
    assert b"large and secret" not in data and len(data) > len(content)

    copy = world.clone("copy")
    assert (copy / "big.bin").read_bytes() == content
    doctor = world.git_s3("doctor", "--lfs", "--deep", world.url)
    assert "LFS:       1 objects the refs need, 1 of them on the bucket" in doctor.stdout
    pruned = world.git_s3("lfs-prune", "--dry-run", "--grace-hours", "0", world.url)
    assert "would delete 0 LFS objects" in pruned.stdout

    world.run("lfs-s3-py", "enable-debug", cwd=work)  # again: already there, refused
    before = world.snapshot()
    world.git("lfs", "push", "--all", "origin", cwd=work)
    log = (work / ".git" / "lfs" / "tmp" / "lfs-s3-py.log").read_text()
    assert "IfNoneMatch=*" in log and "holds" in log and "GetObject" not in log
    assert world.snapshot() == before  # not written again

    # Bob instead of Alice: gc encrypts the object again, to Bob alone.
    before = encrypted_to(world, data)
    world.git_s3("encrypt", "origin", "--to", "bob@example.com", "--remove",
                 "alice@example.com", cwd=work)
    gc = world.git_s3("gc", "origin", cwd=work).stdout
    assert "encrypted 1 LFS objects again to the current recipients" in gc
    after = encrypted_to(world, bucket_bytes(world)[stored[0]])
    assert len(after) == 1 and after != before
    again = world.clone("again")
    assert (again / "big.bin").read_bytes() == content


@encrypted
def test_no_change_writes_a_plaintext_manifest_over_an_encrypted_one(world, helper_module,
                                                                      monkeypatch):
    """Store.commit's own guard, whatever a change returns."""
    work = world.repo()
    world.git("push", "-q", "origin", "main", cwd=work)
    before = world.snapshot()
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    store = helper_module.Store(helper_module.S3Url(world.url))

    def downgrade(manifest):
        return helper_module.dataclasses.replace(manifest, seal=None, head=None), None
    with pytest.raises(helper_module.ManifestError, match="refusing to write a plaintext"):
        store.commit(downgrade)
    assert world.snapshot() == before


# SSE-KMS: the bucket's own encryption with the user's KMS key

@pytest.mark.early
def test_sse_kms_with_the_chosen_key_on_every_object_written(lfs, proxy):
    """The test server has no KMS: the proxy notes what each request asked for and
    forwards it without (faultproxy's `kms`)."""
    world = lfs
    proxy.add("kms")
    world.git("config", "--global", "s3.kmsKeyId", "alias/team-git")
    work = lfs_repo(world, files={"big.bin": os.urandom(17 * 2**20)})  # multipart
    world.commit(work, "code", files={"raw.dat": os.urandom(17 * 2**20)})  # a big bundle
    world.git("remote", "add", "ci", world.url.replace("s3://", "s3+zip://"), cwd=work)
    world.run("lfs-s3-py", "install", "--remote", "ci", cwd=work)
    world.git("push", "-q", "ci", "main", cwd=work, env=proxy.env)  # with a zip
    world.git_s3("protect", "origin", "main", cwd=work, env=proxy.env)
    world.commit(work, "other key")
    world.git("push", "-q", "origin", "main", cwd=work,
              env={**proxy.env, "GIT_REMOTE_S3_KMS_KEY_ID": "alias/other"})

    def kind(method, path):
        if method == "PUT":
            return "UploadPart" if "partNumber=" in path else "PutObject"
        if method == "POST" and path.endswith("?uploads"):
            return "CreateMultipartUpload"
        return None
    writes = [(kind(m, p), p.split("?")[0], sse, key) for m, p, sse, key in proxy.encryption
              if kind(m, p) in ("PutObject", "CreateMultipartUpload")]
    for what in (("CreateMultipartUpload", "/lfs/"), ("CreateMultipartUpload", "/bundles/"),
                 ("PutObject", "/manifest.json"), (None, "/repo.zip")):
        assert any(what[0] in (None, w[0]) and what[1] in w[1] for w in writes), what
    assert all(sse == "aws:kms" for _, _, sse, _ in writes)
    keys = [key for _, _, _, key in writes]
    assert set(keys) == {"alias/team-git", "alias/other"} and keys[-1] == "alias/other"
    parts = [e for e in proxy.encryption if kind(e[0], e[1]) == "UploadPart"]
    assert parts and all(e[2] is None for e in parts)  # S3 takes them at the start only
    assert (world.clone("copy") / "big.bin").stat().st_size == 17 * 2**20


def test_deleting_a_branch_of_an_encrypted_zip_url_names_no_key(world, gpg_keys):
    world.encrypt(gpg_keys)
    work = world.repo()
    world.git("push", "-q", "origin", "main", "main:feature", cwd=work)
    zip_url = world.url.replace("s3://", "s3+zip://")
    deleted = world.git_s3("delete-branch", zip_url, "feature", cwd=work,
                           env={"GIT_REMOTE_S3_VERBOSE": "1"})
    assert "DeleteObjects" not in deleted.stderr and "feature" not in deleted.stderr
    assert "refs/heads/feature" not in world.remote_refs()


def test_scratch_left_by_a_killed_gc_is_removed_by_the_next_command(world, gpg_keys, proxy):
    world.encrypt(gpg_keys)
    work = world.pushed(commits=2)
    temp = world.tmp / "temp"
    temp.mkdir()
    proxy.add("delay", method="GET", key=r"/bundles/", seconds=30)
    gc = world.start_git("s3", "gc", "origin", cwd=work, env={**proxy.env, "TMPDIR": str(temp)})
    for _ in range(200):  # until it downloads (and would decrypt) a bundle
        if proxy.fired("delay"):
            break
        time.sleep(0.1)
    os.killpg(gc.pid, signal.SIGKILL)
    world.finish(gc)
    left = [p.name for p in temp.iterdir()]
    assert left and all(name.startswith("git-s3-") and "-gc-" in name for name in left)
    world.git_s3("info", "origin", cwd=work, env={"TMPDIR": str(temp)})
    assert list(temp.iterdir()) == []


def test_without_gpg_one_line_says_so(world, tmp_path):
    # Only git (and the venv's python3) on PATH: no gpg anywhere.
    only_git = tmp_path / "only-git"
    only_git.mkdir()
    (only_git / "git").symlink_to(shutil.which("git"))
    path = [p for p in world.env["PATH"].split(os.pathsep)
            if not (Path(p) / "gpg").exists()] + [str(only_git)]
    refused = world.git_s3("encrypt", world.url, "--to", "alice@example.com", ok=False,
                           env={"PATH": os.pathsep.join(path)})
    assert fatal_line(refused).startswith("fatal: gpg is not installed (")
    assert "install GnuPG" in fatal_line(refused)
    assert world.keys() == []


@encrypted
def test_a_dry_run_writes_nothing_not_even_the_encrypted_repository(world):
    work = world.repo()
    bare = world.tmp / "bare.git"
    world.git("init", "-q", "--bare", bare)
    for args in (["--dry-run"], ["-vn"], ["--dr", "--no-verify"]):
        ours = world.git("push", *args, "origin", "main", cwd=work)
        git = world.git("push", *args, str(bare), "main", cwd=work)
        assert [line for line in ours.stderr.splitlines() if line.startswith(" ")] == \
            [line for line in git.stderr.splitlines() if line.startswith(" ")]
        assert "[new branch]" in ours.stderr
    assert world.keys() == []
    world.git("push", "-q", "origin", "main", cwd=work)
    assert json.loads(bucket_bytes(world)["manifest.json"])["encrypted"]


@pytest.mark.early
def test_a_locked_key_without_a_pinentry_is_named(world, tmp_path):
    home = tmp_path / "locked"
    home.mkdir(mode=0o700)
    (home / "gpg-agent.conf").write_text("pinentry-program /nonexistent/pinentry\n")
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase",
                    "secret", "--quick-gen-key", "Carol <carol@example.com>",
                    "future-default", "default", "never"], check=True,
                   capture_output=True, timeout=120, env=env)
    try:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], timeout=60, env=env)  # forget it
        world.env["GNUPGHOME"] = str(home)
        refused = world.git_s3("encrypt", world.url, "--to", "carol@example.com", ok=False)
        assert fatal_line(refused) == (
            "fatal: gpg: the secret key is protected by a passphrase and no pinentry "
            "could ask for it here (unlock it first, e.g. with gpg-agent and a pinentry "
            "that works without a terminal)")
        assert world.keys() == []
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], timeout=60, env=env)
