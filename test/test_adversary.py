"""Whoever may write to the bucket, holding no key of an encrypted repository, tries
to read it or change it: every forgery ends in one line, the victim writes nothing
after it, and nothing on the bucket becomes readable by the forger."""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from test_errors import fatal_line


@pytest.fixture(scope="session")
def mallory(gpg_keys, tmp_path_factory):
    """A GNUPGHOME with Mallory's own key pair and the repository's public keys."""
    home = tmp_path_factory.mktemp("mallory")
    home.chmod(0o700)

    def gpg(*args, input=None, env_home=home):
        return subprocess.run(["gpg", "--batch", "--quiet", *args], input=input, check=True,
                              capture_output=True, timeout=120,
                              env={"GNUPGHOME": str(env_home), "PATH": "/usr/bin:/bin",
                                   "LANG": "C.UTF-8"}).stdout
    gpg("--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key",
        "Mallory <mallory@example.com>", "future-default", "default", "never")
    gpg("--import", input=gpg("--export", env_home=gpg_keys["owner"]))
    return gpg


def fingerprint_of(gpg, email):
    listing = gpg("--with-colons", "--list-keys", email).decode()
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


@pytest.fixture
def victim(world, gpg_keys):
    """An encrypted repository and two clones of it that have read it (and so pinned
    its keys): `work`, which created it, and `copy`."""
    world.encrypt(gpg_keys)
    work, copy = world.published(commits=2)
    world.commit(work, "second push")
    world.git("push", "-q", "origin", "main", cwd=work)
    world.git("fetch", "-q", cwd=copy)
    return {"work": work, "copy": copy}


def envelope(world):
    return json.loads(world.s3.get_object(Bucket=world.server.bucket,
                                          Key=f"{world.prefix}/manifest.json")["Body"].read())


def forged(world, mallory, how, **changes):
    """The manifest Mallory would like the victim to believe (the real one, which she
    may know, with `changes`), sealed `how`, in the envelope."""
    inner = {**world.manifest(), "serial": world.manifest()["serial"] + 1, **changes}
    data = json.dumps(inner).encode()
    alice = fingerprint_of(mallory, "alice@example.com")
    to_alice = ["--trust-model", "always", "--recipient", alice]
    message = {
        "literal": lambda: mallory("--armor", "--store", input=data),
        "symmetric": lambda: mallory("--armor", "--pinentry-mode", "loopback",
                                     "--passphrase", "x", "--symmetric", input=data),
        "unsigned": lambda: mallory("--armor", *to_alice, "--encrypt", input=data),
        "signed by mallory": lambda: mallory("--armor", *to_alice, "--sign", "--encrypt",
                                             input=data),
    }[how]().decode()
    outer = envelope(world)
    outer["encrypted"]["message"] = message
    return json.dumps(outer).encode()


def add_mallory(world, mallory):
    return {"recipients": world.manifest()["recipients"] +
            [fingerprint_of(mallory, "mallory@example.com")]}


FORGERIES = {
    # literal data: gpg --decrypt exits 0 on it; recipients that add Mallory's key
    "literal": (lambda w, m: forged(w, m, "literal", **add_mallory(w, m)),
                "is not sealed to this repository's keys (it is not encrypted at all)"),
    "symmetric": (lambda w, m: forged(w, m, "symmetric", **add_mallory(w, m)),
                  "is not sealed to this repository's keys (it is encrypted with a "
                  "passphrase, not to a key)"),
    # real encryption to the real recipients, which anybody can do with public keys
    "more recipients": (lambda w, m: forged(w, m, "signed by mallory", **add_mallory(w, m)),
                        "a key this clone does not trust: refusing it"),
    "unsigned": (lambda w, m: forged(w, m, "unsigned"), "is not signed: refusing it"),
    "foreign-signed": (lambda w, m: forged(w, m, "signed by mallory"),
                       "a key this clone does not trust: refusing it"),
    "plaintext": (lambda w, m: b'{"format": 1, "refs": {}, "bundles": []}',
                  "is encrypted as far as this clone knows, and its manifest is not: "
                  "refusing it (a downgrade?)"),
    "malformed": (lambda w, m: json.dumps({**envelope(w), "encrypted": {"to": []}}).encode(),
                  "is corrupt (a malformed envelope)"),
}


def attempts(world, victim):
    """What the victim does next: fetch, push, and a git s3 command; each must fail."""
    world.commit(victim["work"], "after the forgery")
    return [world.git("fetch", cwd=victim["copy"], ok=False),
            world.git("push", "origin", "main", cwd=victim["work"], ok=False),
            world.git_s3("info", "origin", cwd=victim["copy"], ok=False)]


def refused_everywhere(world, clones, forgery, said):
    """Put the forged manifest; fetch, push and git s3 each end in the line `said`,
    and nothing is written after it."""
    world.put("manifest.json", forgery)
    forged = world.snapshot()
    for failed in attempts(world, clones):
        assert said in fatal_line(failed), failed.stderr
    assert world.snapshot() == forged


@pytest.mark.parametrize("name", list(FORGERIES))
def test_a_forged_manifest_is_refused_and_nothing_is_written(world, victim, mallory, name):
    forge, said = FORGERIES[name]
    refused_everywhere(world, victim, forge(world, mallory), said)


def test_a_deleted_manifest_is_a_downgrade_too(world, victim):
    world.s3.delete_object(Bucket=world.server.bucket, Key=f"{world.prefix}/manifest.json")
    forgery = world.snapshot()
    for failed in attempts(world, victim):
        assert "and its manifest is not: refusing it" in fatal_line(failed)
    assert world.snapshot() == forgery  # no plaintext repository created in its place


def test_an_older_manifest_is_a_rollback(world, victim):
    older = world.s3.get_object(Bucket=world.server.bucket,
                                Key=f"{world.prefix}/manifest.json")["Body"].read()
    world.commit(victim["work"], "newer")
    world.git("push", "-q", "origin", "main", cwd=victim["work"])
    world.git("fetch", "-q", cwd=victim["copy"])
    world.put("manifest.json", older)  # as S3 versioning keeps every version
    forgery = world.snapshot()
    for failed in attempts(world, victim):
        assert ": a rollback: refusing it" in fatal_line(failed)
        assert "hint: if you expected this, accept it with: git s3 trust" in failed.stderr
    assert world.snapshot() == forgery


def test_a_manifest_copied_from_another_repository_is_refused(world, victim):
    # Another repository encrypted to the same keys, its manifest genuinely signed by
    # Alice, and newer: copied over the victim's, with its bundles.
    other = world.url + "-other"
    elsewhere = world.repo("elsewhere", remote=False)
    for i in range(4):
        world.commit(elsewhere, f"elsewhere {i}")
        world.git("push", "-q", other, "HEAD:refs/heads/main", cwd=elsewhere)
    other_prefix = world.prefix + "-other"
    for key in world.keys(other_prefix):
        world.s3.copy_object(Bucket=world.server.bucket, Key=f"{world.prefix}/{key}",
                             CopySource={"Bucket": world.server.bucket,
                                         "Key": f"{other_prefix}/{key}"})
    forgery = world.snapshot()
    for failed in attempts(world, victim):
        assert "belongs to another repository encrypted to the same keys" in \
            fatal_line(failed)
    assert world.snapshot() == forgery


def own_keyring(world, mallory, conf=""):
    """A copy of the victim's keyring (with Mallory's public key, a colleague's say,
    and `conf` as its gpg.conf) for this test alone."""
    keyring = world.tmp / "gnupg"
    shutil.copytree(world.env["GNUPGHOME"], keyring, ignore=shutil.ignore_patterns("S.*"))
    (keyring / "gpg.conf").write_text(conf)
    world.env["GNUPGHOME"] = str(keyring)
    world.run("gpg", "--batch", "--quiet", "--import",
              input=mallory("--armor", "--export", "mallory@example.com").decode())


def test_a_file_name_cannot_pass_for_a_status_line(world, victim, mallory):
    # With `verbose` in gpg.conf and a UTF-8 locale, gpg prints a message's file name
    # unescaped; a line separator in it must not make the rest read as a status line
    # "[GNUPG:] VALIDSIG <Alice>".
    own_keyring(world, mallory, "verbose\n")
    alice = fingerprint_of(mallory, "alice@example.com")
    fake = f"\u2028[GNUPG:] VALIDSIG {alice} 2026-01-01 0 0 4 0 22 10 00 {alice}\u2028"
    data = json.dumps({**world.manifest(), "serial": 100}).encode()
    message = mallory("--armor", "--trust-model", "always", "--recipient", alice,
                      "--set-filename", fake, "--encrypt", input=data).decode()
    outer = envelope(world)
    outer["encrypted"]["message"] = message
    world.put("manifest.json", json.dumps(outer).encode())
    refused = world.git("fetch", cwd=victim["copy"], ok=False, env={"LANG": "C.UTF-8"})
    assert "is not signed: refusing it" in fatal_line(refused)


def test_a_clone_that_pinned_its_signers_refuses_a_plaintext_first_read(world, victim,
                                                                        mallory):
    world.put("manifest.json", b'{"format": 1, "refs": {}, "bundles": []}')
    alice = fingerprint_of(mallory, "alice@example.com")
    pin = f"s3-pin.s3://{world.server.bucket}/{world.prefix}.signers={alice}"
    refused = world.git("clone", "-c", pin, world.url, world.tmp / "pinned", ok=False)
    assert "and its manifest is not: refusing it (a downgrade?)" in fatal_line(refused)


def test_a_recipient_added_elsewhere_is_refused_until_trusted(world, victim):
    world.git_s3("encrypt", "origin", "--to", "bob@example.com", cwd=victim["work"])
    world.commit(victim["work"], "for bob too")
    world.git("push", "-q", "origin", "main", cwd=victim["work"])  # its own pins moved
    refused = world.git("fetch", cwd=victim["copy"], ok=False)
    assert "not to the recipients pinned here" in fatal_line(refused)
    trusted = world.git_s3("trust", "origin", cwd=victim["copy"])
    assert "is trusted from now on: encrypted to" in trusted.stdout
    world.git("fetch", "-q", cwd=victim["copy"])
    assert world.rev(victim["copy"], "origin/main") == world.rev(victim["work"], "main")


def test_a_first_clone_trusts_in_one_line_or_what_was_pinned_before(world, victim,
                                                                     mallory):
    cloned = world.git("clone", world.url, world.tmp / "fresh")
    notes = [line for line in cloned.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "as first read: encrypted to" in notes[0]
    assert "signed by" in notes[0]

    # Mallory re-seals the repository to Alice herself, signed by her own key, which
    # the victim knows (a colleague's, say): a clone that pinned Alice's key as the
    # only signer, as CI should, refuses it from the first read.
    world.put("manifest.json", forged(world, mallory, "signed by mallory"))
    own_keyring(world, mallory)
    alice = fingerprint_of(mallory, "alice@example.com")
    pin = f"s3-pin.s3://{world.server.bucket}/{world.prefix}.signers={alice}"
    refused = world.git("clone", "-c", pin, world.url, world.tmp / "pinned", ok=False)
    assert "a key this clone does not trust: refusing it" in fatal_line(refused)
    unpinned = world.git("clone", world.url, world.tmp / "trusting")
    assert "as first read" in unpinned.stderr  # what pinning up front is for


# A signed plaintext repository (git s3 sign): anybody may read it, and a clone refuses
# refs that no key it trusts signed.

@pytest.fixture
def signed(world, gpg_keys):
    """A plaintext repository created signed by Alice (git s3 sign on an empty prefix),
    pushed to twice, and a clone that has read it."""
    world.env["GNUPGHOME"] = gpg_keys["owner"]
    created = world.git_s3("sign", world.url, "--by", "alice@example.com")
    assert "is signed from now on: every write by one of" in created.stdout
    work, copy = world.published(commits=2)
    world.commit(work, "second push")
    world.git("push", "-q", "origin", "main", cwd=work)
    world.git("fetch", "-q", cwd=copy)
    return {"work": work, "copy": copy}


def forged_signature(world, mallory, **changes):
    """The manifest Mallory would like believed, in a signed envelope, signed by her."""
    inner = {**world.manifest(), "serial": world.manifest()["serial"] + 1, **changes}
    outer = envelope(world)
    outer["signed"]["message"] = mallory("--armor", "--sign", input=json.dumps(
        inner).encode()).decode()
    return json.dumps(outer).encode()


SIGNED_FORGERIES = {
    "unsigned": (lambda w, m: json.dumps({**w.manifest(), "serial": 100}).encode(),
                 "is signed as far as this clone knows, and its manifest is not: "
                 "refusing it (a downgrade?)"),
    "signed by mallory": (lambda w, m: forged_signature(
        w, m, signers=[fingerprint_of(m, "mallory@example.com")]),
        "a key this clone does not trust: refusing it"),
    # Mallory's public key is known here (a colleague's), so her signature verifies
    "a signer it does not name": (lambda w, m: (own_keyring(w, m), forged_signature(w, m))[1],
                                  "which it does not name as a signer: refusing it"),
    "literal, no signature": (lambda w, m: json.dumps({**envelope(w), "signed": {
        "message": m("--armor", "--store", input=json.dumps(w.manifest()).encode())
        .decode()}}).encode(), "is not signed: refusing it"),
    "malformed": (lambda w, m: json.dumps({**envelope(w), "signed": {"by": []}}).encode(),
                  "is corrupt (a malformed envelope)"),
    # gpg would decrypt it with Alice's key (or ask for a passphrase): never tried
    "encrypted": (lambda w, m: json.dumps({**envelope(w), "signed": {
        **envelope(w)["signed"], "message": m(
            "--armor", "--trust-model", "always", "--recipient",
            fingerprint_of(m, "alice@example.com"), "--encrypt",
            input=json.dumps(w.manifest()).encode()).decode()}}).encode(),
        "is encrypted where only a signature belongs: refusing it"),
}


@pytest.mark.parametrize("name", list(SIGNED_FORGERIES))
def test_a_signed_repository_refuses_refs_no_trusted_key_signed(world, signed, mallory,
                                                                name):
    forge, said = SIGNED_FORGERIES[name]
    refused_everywhere(world, signed, forge(world, mallory), said)


def test_a_signed_repository_refuses_a_rollback_and_another_repositorys_manifest(
        world, signed):
    older = world.s3.get_object(Bucket=world.server.bucket,
                                Key=f"{world.prefix}/manifest.json")["Body"].read()
    world.commit(signed["work"], "newer")
    world.git("push", "-q", "origin", "main", cwd=signed["work"])
    world.git("fetch", "-q", cwd=signed["copy"])
    world.put("manifest.json", older)
    for failed in attempts(world, signed):
        assert ": a rollback: refusing it" in fatal_line(failed)

    # Another repository Alice signs, newer than any here, copied over this one.
    other = world.url + "-other"
    world.git_s3("sign", other, "--by", "alice@example.com")
    for i in range(5):
        world.commit(signed["work"], f"elsewhere {i}")
        world.git("push", "-q", "-f", other, "HEAD:refs/heads/main", cwd=signed["work"])
    world.put("manifest.json", world.s3.get_object(
        Bucket=world.server.bucket, Key=f"{world.prefix}-other/manifest.json")["Body"].read())
    refused = world.git("fetch", cwd=signed["copy"], ok=False)
    assert "belongs to another repository signed by the same keys" in fatal_line(refused)


@pytest.mark.parametrize("body", [
    b'{"format": 4, "refs": {}, "bundles": [], "serial": 1e400}',  # int() overflows
    b"[" * 100_000])  # deeper than Python's recursion limit
def test_a_manifest_that_breaks_the_parser_is_corrupt_in_one_line(world, signed, body):
    world.put("manifest.json", body)
    for failed in attempts(world, signed):
        assert "is corrupt (" in fatal_line(failed), failed.stderr
        assert "Traceback" not in failed.stderr
    from test_lfs import run_agent
    sent = run_agent(world, signed["copy"], {"event": "init", "operation": "download",
                                             "remote": "origin"},
                     {"event": "download", "oid": "0" * 64, "size": 1})
    assert "is corrupt (" in sent[-1]["error"]["message"]


def test_anybody_reads_a_signed_repository_and_only_a_signer_writes_it(world, signed,
                                                                       gpg_keys):
    assert b"BEGIN PGP MESSAGE" in world.s3.get_object(
        Bucket=world.server.bucket, Key=f"{world.prefix}/manifest.json")["Body"].read()
    info = world.git_s3("info", "origin", cwd=signed["copy"]).stdout
    assert "signed:     by one of " in info
    ci = shlex.split(info.split("pin in CI:  ")[1].splitlines()[0])
    assert ci[:2] == ["git", "clone"] and ci[-1] == world.url
    pinned = world.git(*ci[1:], world.tmp / "ci")  # as CI would run it
    assert "as first read" not in pinned.stderr
    world.env["GNUPGHOME"] = gpg_keys["stranger"]  # Alice's public key, no secret
    reader = world.clone("reader")
    assert world.rev(reader, "origin/main") == world.rev(signed["work"], "main")
    world.commit(reader, "from a reader")
    before = world.snapshot()
    refused = world.git("push", "origin", "main", cwd=reader, ok=False)
    assert "no secret key of" in fatal_line(refused)
    assert "here to sign the manifest with" in fatal_line(refused)
    assert world.snapshot() == before


def test_signers_change_and_signing_stops_each_with_one_command(world, signed, gpg_keys):
    copy = signed["copy"]
    said = world.git_s3("sign", "origin", "--by", "bob@example.com", cwd=signed["work"])
    assert "every write by one of" in said.stdout
    world.commit(signed["work"], "signed by bob")
    world.git("push", "-q", "origin", "main", cwd=signed["work"])  # its pins followed
    refused = world.git("fetch", cwd=copy, ok=False)
    assert "a key this clone does not trust: refusing it" in fatal_line(refused)
    assert "git s3 trust" in refused.stderr
    trusted = world.git_s3("trust", "origin", cwd=copy)
    assert "is trusted from now on: signed by one of" in trusted.stdout
    world.git("fetch", "-q", cwd=copy)
    assert world.rev(copy, "origin/main") == world.rev(signed["work"], "main")

    # A clone that pins its signers up front, as CI should, refuses the others.
    alice = fingerprint_of(lambda *a: subprocess.run(
        ["gpg", "--batch", *a], check=True, capture_output=True,
        env={**os.environ, "GNUPGHOME": gpg_keys["owner"]}).stdout, "alice@example.com")
    pin = f"s3-pin.s3://{world.server.bucket}/{world.prefix}.signers={alice}"
    refused = world.git("clone", "-c", pin, world.url, world.tmp / "ci", ok=False)
    assert "a key this clone does not trust: refusing it" in fatal_line(refused)

    stopped = world.git_s3("sign", "origin", "--stop", cwd=signed["work"])
    assert "is no longer signed" in stopped.stdout
    world.commit(signed["work"], "unsigned again")
    world.git("push", "-q", "origin", "main", cwd=signed["work"])
    refused = world.git("fetch", cwd=copy, ok=False)
    assert "and its manifest is not: refusing it (a downgrade?)" in fatal_line(refused)
    world.git_s3("trust", "origin", "--plaintext", cwd=copy)
    world.git("fetch", "-q", cwd=copy)
    assert world.rev(copy, "origin/main") == world.rev(signed["work"], "main")


def test_a_key_is_named_by_a_user_id_gpg_holds_valid_or_by_fingerprint(world, signed,
                                                                       tmp_path):
    # Keys anybody could make, claiming Bob's address and a new one, imported into the
    # victim's keyring (as a colleague's keys are, uncertified).
    fake = tmp_path / "fake"
    fake.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(fake)}
    for who in ("Bob <bob@example.com>", "Carol <carol@example.com>"):
        subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
                        "--quick-gen-key", who, "future-default", "default", "never"],
                       check=True, capture_output=True, timeout=120, env=env)
    exported = subprocess.run(["gpg", "--batch", "--export"], check=True,
                              capture_output=True, timeout=60, env=env).stdout
    own = world.tmp / "gnupg"
    shutil.copytree(world.env["GNUPGHOME"], own, ignore=shutil.ignore_patterns("S.*"))
    world.env["GNUPGHOME"] = str(own)
    subprocess.run(["gpg", "--batch", "--quiet", "--import"], input=exported, check=True,
                   capture_output=True, timeout=60, env={**os.environ, "GNUPGHOME": str(own)})
    before = world.snapshot()
    twice = world.git_s3("sign", "origin", "--by", "bob@example.com", cwd=signed["work"],
                         ok=False)
    assert "'bob@example.com' names 2 keys in your gpg keyring: name one by its " \
        "fingerprint" in fatal_line(twice)
    carol = world.git_s3("sign", "origin", "--by", "carol@example.com", cwd=signed["work"],
                         ok=False)
    assert "is 'carol@example.com' (gpg holds no user id of it valid)" in fatal_line(carol)
    assert world.snapshot() == before


# Another user of the same host. The LFS agents of one git-lfs command meet on a
# socket; another user who could take it would receive their upload requests.

def second_user():
    """The uid and gid of a throw-away user (made once; the tests run as root in CI)."""
    if os.getuid() != 0 or shutil.which("useradd") is None or shutil.which("setpriv") is None:
        pytest.skip("acting as a second user needs root, useradd and setpriv")
    name = "git-s3-squatter"
    if subprocess.run(["id", "-u", name], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", name], check=True, capture_output=True)
    ids = [subprocess.run(["id", flag, name], check=True, capture_output=True,
                          text=True).stdout.strip() for flag in ("-u", "-g")]
    return ids


def as_user(ids, code):
    """Run Python `code` as the second user; returns the process (kill it after)."""
    uid, gid = ids
    return subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={gid}",
                             "--clear-groups", sys.executable, "-c", code],
                            start_new_session=True)


def test_another_user_cannot_take_the_lfs_agents_meeting_place(lfs):
    from test_lfs import lfs_keys, lfs_repo, oid_of
    world = lfs
    ids = second_user()
    # like /tmp, where anybody may make entries (and the second user can reach)
    shared = Path(tempfile.mkdtemp(prefix="git-s3-shared-"))
    shared.chmod(0o1777)
    world.env["TMPDIR"] = str(shared)
    meeting = shared / f"lfs-s3-py-{os.getuid()}"
    # The squatter makes the agents' directory first, open to all, and waits there
    # with a socket that accepts and never answers.
    squatter = as_user(ids, f"""
import os, socket, time
os.mkdir({str(meeting)!r}); os.chmod({str(meeting)!r}, 0o777)
s = socket.socket(socket.AF_UNIX); s.bind({str(meeting / 'trap')!r}); s.listen(64)
open({str(shared / 'ready')!r}, 'w').close()
time.sleep(300)
""")
    try:
        for _ in range(100):
            if (shared / "ready").exists():
                break
            time.sleep(0.1)
        assert meeting.stat().st_uid == int(ids[0])
        files = {f"f{i}.bin": os.urandom(20_000 + i) for i in range(12)}
        work = lfs_repo(world, files=files)
        world.git("config", "lfs.concurrenttransfers", "8", cwd=work)
        started = time.monotonic()
        pushed = world.git("push", "-q", "origin", "main", cwd=work,
                           env={"GIT_REMOTE_S3_VERBOSE": "1", "GIT_TRACE": "1"}, timeout=60)
        assert time.monotonic() - started < 60
    finally:
        os.killpg(squatter.pid, signal.SIGKILL)
        squatter.wait()
        shutil.rmtree(shared)
    assert "is not a private directory of ours: working alone" in pushed.stderr
    assert "relaying transfers" not in pushed.stderr
    assert sorted(lfs_keys(world)) == sorted(world.lfs_name(oid_of(c))
                                             for c in files.values())


def lfs_object(repo, content):
    """Put `content` in the clone's LFS store, as git-lfs would; returns its oid."""
    import hashlib
    oid = hashlib.sha256(content).hexdigest()
    path = Path(repo) / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return oid, path


def test_the_agent_takes_no_cached_read_that_others_could_write_or_the_pins_deny(
        world, victim, gpg_keys):
    from test_lfs import lfs_keys, run_agent
    copy = victim["copy"]
    recent = next((copy / ".git" / "s3").glob("recent-*.json"))  # the fetch's read

    def upload(content):
        oid, path = lfs_object(copy, content)
        sent = run_agent(world, copy, {"event": "init", "operation": "upload",
                                       "remote": "origin"},
                         {"event": "upload", "oid": oid, "size": len(content),
                          "path": str(path)})
        assert "error" not in sent[-1], sent
        return oid
    # "plaintext", in the clone's own file: the pins say encrypted, so it is not taken
    recent.write_text(json.dumps({"at": time.time(), "seal": None}))
    oid = upload(os.urandom(3000))
    assert f"lfs/{oid}" not in lfs_keys(world) and world.lfs_name(oid) in lfs_keys(world)
    # the real read, in a file others may write: not taken either (nor needed)
    recent.write_text(json.dumps({"at": time.time(), "seal": {
        "recipients": world.manifest()["recipients"], "lfs_key": "00" * 32}}))
    recent.chmod(0o644)
    oid = upload(os.urandom(3001))
    assert world.lfs_name(oid) in lfs_keys(world)
