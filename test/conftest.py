"""Shared fixtures: a real S3 server (see s3server.py), real git, one prefix per test.

Every test gets `world`: an isolated HOME and git config, the helper on PATH, the S3
server's credentials in the environment, and its own `s3://bucket/<prefix>` URL.
Without a server (no `weed` binary) tests skip locally; under CI=true they fail.

Tests marked `long` are the long forms of quicker ones marked `short` (more rounds of
the same race): under CI=true or with GIT_REMOTE_S3_LONG_TESTS=1 the long forms run
instead of the short ones, which they contain; otherwise the short ones run.
"""

import functools
import hmac
import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import forkserver  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402
from s3server import LocalS3, SCOPED_PREFIX  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 300  # seconds for any one command: every test stops by itself


def load_script(name):
    """Import one of the top-level scripts as a module (they have no .py suffix)."""
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(ROOT / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def pytest_configure(config):
    config.addinivalue_line("markers", "long: the long form of a test (CI runs it; "
                            "GIT_REMOTE_S3_LONG_TESTS=1 make test does too)")
    config.addinivalue_line("markers", "short: the quick form of a long test, left out "
                            "where the long form runs")
    config.addinivalue_line("markers", "early: takes ten seconds or more; starts before "
                            "the rest of its worker's share (spread())")


def pytest_collection_modifyitems(config, items):
    long = os.environ.get("CI") == "true" or os.environ.get("GIT_REMOTE_S3_LONG_TESTS") == "1"
    left_out = [item for item in items if item.get_closest_marker("short" if long else "long")]
    if os.environ.get("S3_TEST_SERVER") == "moto":
        # Encryption happens in the client: the encrypted runs of the concurrency,
        # crash and fault suites face SeaweedFS only; moto runs test_encryption.py.
        left_out += [item for item in items if getattr(item, "callspec", None) and
                     item.callspec.params.get("world") == "encrypted" and
                     item.module.__name__ != "test_encryption"]
        # What never talks to a server (the units, the fork server, the shared
        # sections' copies) would run here as it does under `make test`.
        left_out += [item for item in items if "s3server" not in item.fixturenames]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]
    spread(items, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1)))


def spread(items, workers):
    """Order the run for xdist's worksteal, which hands each worker a stretch of this
    order and lets an idle one take the back half of another's: every file's tests
    dealt evenly over the stretches, its `early` ones first in each. Else
    test_faults.py, whose tests mostly wait (retry pauses, reads past a timeout),
    fills one worker's stretch while two cores idle, and a long test starts last."""
    groups = {}
    for item in items:
        groups.setdefault((item.path, bool(item.get_closest_marker("early"))), []).append(item)
    place = {id(item): (n + 0.5) / len(tests)
             for tests in groups.values() for n, item in enumerate(tests)}
    dealt = sorted(items, key=lambda item: place[id(item)])
    early = [item for item in dealt if item.get_closest_marker("early")]
    rest = [item for item in dealt if not item.get_closest_marker("early")]
    items.clear()
    for n in range(workers):  # the stretches as worksteal cuts them
        size = (len(dealt) - len(items)) // (workers - n)
        items += early[n::workers]
        filler = max(0, size - len(early[n::workers]))
        items += rest[:filler]
        del rest[:filler]
    items += rest


def pytest_terminal_summary(terminalreporter):
    """The seed and size of every randomized run, also when it passed, so that a CI
    log says what was tried."""
    for report in terminalreporter.getreports("passed") + terminalreporter.getreports(
            "failed"):
        for name, value in getattr(report, "user_properties", []):
            if name == "random faults" and report.when == "call":
                terminalreporter.write_line(f"{report.nodeid}: {value}")


@pytest.fixture(scope="session")
def s3server():
    server = LocalS3()
    try:
        server.start()
    except RuntimeError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"no S3 server: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def helper_bin(tmp_path_factory, fork_server):
    """A PATH entry with our scripts under every name make install gives them: the
    helper under both names git looks for, the LFS agent also as git-lfs-s3, git-s3.
    It comes before the venv's bin, where awslabs' release (a test peer) has its own
    git-remote-s3, git-s3 and git-lfs-s3."""
    bin_dir = tmp_path_factory.mktemp("bin")
    for name in ("git-remote-s3", "git-remote-s3+zip"):
        fork_server.name(bin_dir / name, ROOT / "git-remote-s3")
    for name in ("lfs-s3-py", "git-lfs-s3"):  # its agents: forked by a stand-in
        fork_server.name(bin_dir / name, ROOT / "lfs-s3-py", ("", "debug", "--debug"))
    fork_server.name(bin_dir / "git-s3", ROOT / "git-s3")
    return bin_dir


@pytest.fixture(scope="session")
def fork_server():
    """Our scripts start with botocore imported (forkserver.py)."""
    with forkserver.ForkServer(ROOT) as server:
        yield server


@functools.lru_cache(maxsize=None)
def admin_client(server):
    """One boto3 client per server for every test's own look at the bucket: making one
    costs a tenth of a second, and clients are safe to share."""
    key, secret = server.keys["admin"]
    return boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=key,
                        aws_secret_access_key=secret, region_name="us-east-1")


class World:
    """One test's world: its own HOME, git config, S3 prefix and helpers to use them."""

    def __init__(self, server, tmp_path, bin_dir, test_name):
        self.server = server
        self.tmp = tmp_path
        home = tmp_path / "home"
        home.mkdir()
        # No upkeep of git's own (maintenance --auto after each commit and fetch, gc
        # after a push to a local repository): it never touches ours, and started
        # 1,600 processes a run.
        (home / ".gitconfig").write_text(
            "[user]\n\tname = Test\n\temail = test@example.com\n"
            "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
            "[maintenance]\n\tauto = false\n[receive]\n\tautogc = false\n")
        self.env = {
            "HOME": str(home), "PATH": os.pathsep.join(
                [str(bin_dir), os.path.dirname(sys.executable), os.environ["PATH"]]),
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0", "LANG": "C",
            **server.env(),
        }
        prefix = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40]
        self.prefix = f"t/{prefix}-{uuid.uuid4().hex[:8]}"
        self.url = f"s3://{server.bucket}/{self.prefix}"
        self.s3 = admin_client(server)

    # running things

    def run(self, *cmd, cwd=None, ok=True, env=None, input=None, timeout=TIMEOUT):
        """Run a command; with ok=True it must succeed, with ok=False it must fail.
        `env` adds variables, and removes those it maps to None."""
        merged = {k: v for k, v in {**self.env, **(env or {})}.items() if v is not None}
        started = subprocess.Popen([str(c) for c in cmd], cwd=cwd or self.tmp, text=True,
                                   stdin=subprocess.PIPE if input is not None else
                                   subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=merged,
                                   start_new_session=True)
        proc = self.finish(started, input=input, timeout=timeout)
        if ok is not None and (proc.returncode == 0) != ok:
            raise AssertionError(
                f"{' '.join(map(str, cmd))} exited {proc.returncode}, expected "
                f"{'success' if ok else 'failure'}\n--- stdout\n{proc.stdout}"
                f"--- stderr\n{proc.stderr}")
        return proc

    def git(self, *args, **kwargs):
        return self.run("git", *args, **kwargs)

    def git_s3(self, *args, **kwargs):
        """`git s3 ...`, found on PATH the way git finds it."""
        return self.run("git", "s3", *args, **kwargs)

    def start_git(self, *args, cwd, env=None):
        """Start git in the background; finish it with finish()."""
        return subprocess.Popen(["git", *map(str, args)], cwd=cwd, text=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env={**self.env, **(env or {})},
                                start_new_session=True)

    def start_helper_for_push(self, repo, env=None):
        """Start the helper as git does for a push and let it list the refs; returns
        the process (finish it with the rest of its input) and the listing."""
        helper = subprocess.Popen(["git-remote-s3", "origin", self.url], cwd=repo, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env={**self.env, **(env or {})},
                                  start_new_session=True)
        helper.stdin.write("list for-push\n")
        helper.stdin.flush()
        return helper, list(iter(helper.stdout.readline, "\n"))

    @staticmethod
    def finish(proc, input=None, timeout=TIMEOUT):
        """Wait for a command started in its own process group; past the timeout,
        kill the whole group (git, the helper, whatever they started) and fail."""
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise AssertionError(f"{' '.join(map(str, proc.args))} did not finish in "
                                 f"{timeout} seconds; its process group was killed")
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    # repositories

    def repo(self, name="work", commits=1, remote=True):
        """A new local repository with `commits` commits and origin set to our URL."""
        path = self.tmp / name
        self.git("init", "-q", path)
        for i in range(commits):
            self.commit(path, f"{name} commit {i}")
        if remote:
            self.git("remote", "add", "origin", self.url, cwd=path)
        return path

    def pushed(self, commits=1):
        """A repository pushed to our URL (main tracks origin/main)."""
        work = self.repo(commits=commits)
        self.git("push", "-q", "-u", "origin", "main", cwd=work)
        return work

    def published(self, commits=1):
        """pushed(), and a clone of it."""
        work = self.pushed(commits)
        return work, self.clone("copy")

    def commit(self, repo, message="change", files=None):
        """Commit `files` ({path: text}), by default a file named after the message
        (so that independent commits merge without conflicts)."""
        files = files or {re.sub(r"[^A-Za-z0-9]+", "-", message) + ".txt": message + "\n"}
        for rel, text in files.items():
            target = Path(repo) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(text if isinstance(text, bytes) else text.encode())
        self.git("add", "-A", cwd=repo)
        self.git("commit", "-q", "-m", message, cwd=repo)
        return self.rev(repo, "HEAD")

    def rev(self, repo, rev):
        return self.git("rev-parse", rev, cwd=repo).stdout.strip()

    def clone(self, name, url=None, *args):
        self.git("clone", "-q", *args, url or self.url, self.tmp / name)
        return self.tmp / name

    def remote_refs(self, url=None):
        """{ref: sha} as `git ls-remote` shows them (HEAD included)."""
        out = self.git("ls-remote", url or self.url).stdout
        return {name: sha for sha, name in (line.split("\t") for line in out.splitlines())}

    def assert_fsck_clean(self, repo):
        self.git("fsck", "--strict", "--no-dangling", cwd=repo)

    def encrypt(self, keys):
        """Use the throw-away keyring, and create repositories encrypted to Alice."""
        self.gpg_homes = keys
        self.env["GNUPGHOME"] = keys["owner"]
        with open(Path(self.env["HOME"]) / ".gitconfig", "a") as config:
            config.write("[s3]\n\tencryptTo = alice@example.com\n")

    def decrypt(self, data):
        """The plaintext of a gpg message on the bucket, with the owner's keys."""
        return subprocess.run(["gpg", "--batch", "--quiet", "--decrypt"], input=data,
                              check=True, capture_output=True, timeout=60,
                              env={**os.environ, "GNUPGHOME": self.env["GNUPGHOME"]}).stdout

    def lfs_name(self, oid):
        """Where lfs-s3-py keeps the object `oid`: lfs/<oid>, or in an encrypted
        repository lfs/<HMAC-SHA256 of the oid under the manifest's lfs_key>."""
        key = self.manifest().get("lfs_key")
        return f"lfs/{hmac.new(bytes.fromhex(key), oid.encode(), 'sha256').hexdigest()}" \
            if key else f"lfs/{oid}"

    # the bucket

    def keys(self, prefix=None):
        """Every key under our prefix (or `prefix`), relative to it."""
        prefix = (prefix or self.prefix) + "/"
        keys, token = [], {}
        while True:
            page = self.s3.list_objects_v2(Bucket=self.server.bucket, Prefix=prefix, **token)
            keys += [o["Key"][len(prefix):] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return sorted(keys)
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def snapshot(self, prefix=None):
        """{key: etag} under our prefix (or `prefix`), to prove that nothing was
        written."""
        prefix = (prefix or self.prefix) + "/"
        page = self.s3.list_objects_v2(Bucket=self.server.bucket, Prefix=prefix)
        return {o["Key"]: o["ETag"] for o in page.get("Contents", [])}

    def manifest(self):
        """The manifest as JSON; an encrypted or signed one's content."""
        body = json.loads(self.s3.get_object(Bucket=self.server.bucket,
                                             Key=f"{self.prefix}/manifest.json")["Body"].read())
        for envelope in ("encrypted", "signed"):
            if envelope in body:
                return json.loads(self.decrypt(body[envelope]["message"].encode()))
        return body

    def copy_from(self, prefix):
        """Copy every object under `prefix` to ours, on the server (CopyObject): a
        repository pushed once serves many tests. Keys are relative to the prefix."""
        source = prefix + "/"
        for key in self.keys(prefix):
            self.s3.copy_object(Bucket=self.server.bucket, Key=f"{self.prefix}/{key}",
                                CopySource={"Bucket": self.server.bucket,
                                            "Key": source + key})

    def put(self, name, body):
        self.s3.put_object(Bucket=self.server.bucket, Key=f"{self.prefix}/{name}", Body=body)


@pytest.fixture
def world(s3server, tmp_path, helper_bin, request):
    """A world; parametrized indirectly with "encrypted", one whose pushes create
    repositories encrypted to Alice (s3.encryptTo), whose key it holds; or "tables",
    where a write puts every second changed ref and every tip in ref tables (format
    6), as a repository of many refs does."""
    world = World(s3server, tmp_path, helper_bin, request.node.name)
    kind = getattr(request, "param", "plain")
    if kind == "encrypted":
        world.encrypt(request.getfixturevalue("gpg_keys"))
    if kind == "tables":
        world.env.update(GIT_TEST_S3_CHANGES_KEPT="1", GIT_TEST_S3_TIPS_KEPT="0")
    return world


@pytest.fixture(scope="session")
def gpg_keys(tmp_path_factory):
    """Throw-away gpg keys without passphrases, never the user's: GNUPGHOMEs "owner"
    (Alice's and Bob's secret keys) and "stranger" (only their public keys)."""
    if shutil.which("gpg") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("gpg is not installed (make test installs gnupg)")
        pytest.skip("gpg is not installed")
    base = tmp_path_factory.mktemp("gpg")
    homes = {"owner": base / "owner", "stranger": base / "stranger"}
    for home in homes.values():
        home.mkdir(mode=0o700)

    def gpg(home, *args, **kwargs):
        return subprocess.run(["gpg", "--batch", "--quiet", *args], check=True,
                              capture_output=True, timeout=120,
                              env={**os.environ, "GNUPGHOME": str(homes[home])}, **kwargs)
    for who in ("Alice", "Bob"):
        gpg("owner", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key",
            f"{who} <{who.lower()}@example.com>", "future-default", "default", "never")
    gpg("stranger", "--import", input=gpg("owner", "--export").stdout)
    yield {name: str(home) for name, home in homes.items()}
    for home in homes.values():
        subprocess.run(["gpgconf", "--kill", "all"], capture_output=True, timeout=60,
                       env={**os.environ, "GNUPGHOME": str(home)})


@pytest.fixture
def lfs(world):
    """git-lfs set up in the test's HOME, as `git lfs install` does for a user; with
    three agents per transfer rather than git-lfs's eight. Most tests move one to a
    few objects, and every agent beyond those only starts and stops (0.13 s of CPU as
    its own process, 0.03 s as a copy in the fork server). The tests of many agents
    ask for eight."""
    if shutil.which("git-lfs") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("git-lfs is not installed (make test installs it)")
        pytest.skip("git-lfs is not installed")
    world.git("lfs", "install", "--skip-repo")
    world.git("config", "--global", "lfs.concurrenttransfers", "3")
    return world


@pytest.fixture
def proxy(world):
    """A fault-injecting proxy (faultproxy.py) in front of the test's S3 server.
    `proxy.env` sends a command through it, with the test-only short timeouts."""
    if world.server.endpoint.startswith("https:"):
        pytest.skip("the fault proxy speaks plain HTTP only")
    faults = FaultProxy(world.server.endpoint, world.server.keys["admin"])
    faults.env = {"AWS_ENDPOINT_URL_S3": faults.endpoint, "GIT_TEST_S3_TIMEOUT": "2"}
    yield faults
    faults.stop()


@pytest.fixture(scope="session")
def helper_module():
    return load_script("git-remote-s3")


@pytest.fixture
def scoped_url(world):
    """A URL inside the prefix the 'scoped' identity may use."""
    return f"s3://{world.server.bucket}/{SCOPED_PREFIX}/{world.prefix}"


def write_legacy_layout(world, repo, refs, head="refs/heads/main", prefix=None):
    """Write `refs` ({ref: rev}, or {ref: [revs, oldest first]}) of `repo` the way
    awslabs' git-remote-s3 stores them: `<prefix>/<ref>/<sha>.bundle` and `HEAD`."""
    prefix = prefix or world.prefix
    for ref, revs in refs.items():
        for i, rev in enumerate([revs] if isinstance(revs, str) else revs):
            if i:
                time.sleep(1.1)  # LastModified has whole seconds: newest must be clear
            sha = world.rev(repo, rev)
            bundle = world.tmp / f"legacy-{sha}.bundle"
            world.git("branch", "-f", "legacy-tmp", sha, cwd=repo)
            world.git("bundle", "create", "-q", bundle, "legacy-tmp", cwd=repo)
            # The bundle must name the real ref, as the old tool's did.
            data = bundle.read_bytes().replace(b" refs/heads/legacy-tmp\n",
                                               f" {ref}\n".encode(), 1)
            world.s3.put_object(Bucket=world.server.bucket,
                                Key=f"{prefix}/{ref}/{sha}.bundle", Body=data)
            world.git("branch", "-D", "legacy-tmp", cwd=repo)
    world.s3.put_object(Bucket=world.server.bucket, Key=f"{prefix}/HEAD",
                        Body=head.encode())
