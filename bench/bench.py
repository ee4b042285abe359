"""make bench: git-remote-s3 against its lower bounds, measured in the same run.

For a ~10 MB and a ~100 MB repository (deterministic, built from the installed Python
standard library's sources), compare a push/clone/fetch through s3:// on a local
SeaweedFS with the same operation against a local `file://` bare repository (git's
own cost), and report bytes moved, storage, ls-remote with 20,000 unrelated objects
under the prefix, and the helper's peak RSS; for 100 MB also the push and clone of
the same repository encrypted with gpg, beside the plain ones, and partial and shallow
clones (where git's server sends less and ours the whole history). Then git-lfs push and fetch of 100 files
of 1 MB and of 2 files of 200 MB through lfs-s3-py, through awslabs' agent (git-lfs-s3
from pip git-remote-s3==0.4.2, in the venv), and the floor: git-lfs with an agent that
moves no bytes (bench/noop_agent.py) plus raw boto3 moving the same files. Last, round
trips: each everyday operation through test/faultproxy.py holding every request
BENCH_DELAY_MS (50) ms, beside the same at 0 ms: how many requests waited on each other
(the proxy's timeline: the longest run of requests each answered before the next
arrived), which on a real network is what a command costs, and the extra time over the
delay as a check; with the floor of our design and awslabs' figure beside it. Targets are printed beside
each figure.
Last, many refs: a one-commit push, a fetch into an up-to-date clone, ls-remote and
clone at 100, 10,000 and 100,000 refs, beside file://, with the bytes moved.
BENCH_ONLY="10 MB" | "100 MB" | "lfs" | "round trips" | "refs" runs one part.
"""

import concurrent.futures
import hashlib
import os
import random
import shutil
import string
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "test"))
from s3server import LocalS3  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402

DATE = "1700000000 +0000"
SIZES = {"10 MB": 1.4, "100 MB": 14}  # generations of the standard library (~7 MB each)
LFS_SETS = {"100 files of 1 MB": {f"f{i:03d}.bin": 2**20 for i in range(100)},
            "2 files of 200 MB": {"a.bin": 200 * 2**20, "b.bin": 200 * 2**20}}


# ---------------------------------------------------------------------------
# Building deterministic repositories from real text

def stdlib_sources():
    std = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in std.rglob("*.py") if "site-packages" not in p.parts)
    return [(p.relative_to(std), p.read_bytes()) for p in files]


def cipher(generation):
    """A letter substitution per generation: text that compresses like source code,
    but shares nothing with other generations for git's deltas to find."""
    if generation == 0:
        return None
    rng = random.Random(generation)
    lower = list(string.ascii_lowercase)
    rng.shuffle(lower)
    table = bytes.maketrans(string.ascii_lowercase.encode(), "".join(lower).encode())
    return table


def build_repo(path, generations, env):
    sources = stdlib_sources()
    run(["git", "init", "-q", "-b", "main", str(path)], env)
    whole, part = int(generations), generations - int(generations)
    for g in range(whole + (1 if part else 0)):
        table = cipher(g)
        count = len(sources) if g < whole else int(len(sources) * part)
        for batch in range(4):  # each generation lands in four commits
            for rel, text in sources[batch * count // 4:(batch + 1) * count // 4]:
                target = path / "src" / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(text.translate(table) if table else text)
            run(["git", "add", "-A"], env, cwd=path)
            run(["git", "commit", "-q", "-m", f"generation {g} part {batch}"], env, cwd=path)
    run(["git", "gc", "-q"], env, cwd=path)


def add_commit(repo, env, name):
    (repo / f"{name}.txt").write_text(f"{name}\n" * 20)
    run(["git", "add", "-A"], env, cwd=repo)
    run(["git", "commit", "-q", "-m", name], env, cwd=repo)


# ---------------------------------------------------------------------------
# Measuring

def run(cmd, env, cwd=None):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(map(str, cmd))} failed:\n{proc.stderr}")
    return proc.stdout


def best_of(count, cmd, env, leaves):
    """The fastest of `count` runs of a command that creates the directory `leaves`."""
    times = []
    for _ in range(count):
        shutil.rmtree(leaves, ignore_errors=True)
        times.append(timed(cmd, env))
    return min(times)


def timed(cmd, env, cwd=None):
    start = time.monotonic()
    run(cmd, env, cwd)
    return time.monotonic() - start


def pack_bytes(repo, env, tip, exclude):
    """What `git push` sends for tip ^exclude: a thin pack, as send-pack makes it."""
    revs = f"{tip}\n" + (f"^{exclude}\n" if exclude else "")
    proc = subprocess.run(["git", "pack-objects", "--stdout", "--thin", "--revs",
                           "--delta-base-offset", "-q"], cwd=repo, env=env,
                          input=revs.encode(), capture_output=True)
    return len(proc.stdout)


def dir_bytes(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


class Bucket:
    def __init__(self, server):
        key, secret = server.keys["admin"]
        self.s3 = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                               aws_access_key_id=key, aws_secret_access_key=secret)
        self.bucket = server.bucket

    def sizes(self, prefix):
        sizes, token = {}, {}
        while True:
            page = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix + "/", **token)
            sizes.update({o["Key"]: (o["Size"], o["ETag"]) for o in page.get("Contents", [])})
            if not page.get("IsTruncated"):
                return sizes
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def written_since(self, prefix, before):
        """Bytes of objects created or replaced since the `before` listing."""
        return sum(size for key, (size, etag) in self.sizes(prefix).items()
                   if before.get(key, (0, None))[1] != etag)

    def cleared(self, prefix, measure, *args, **kwargs):
        """Run measure(...) with nothing under `prefix` on the bucket first."""
        keys = list(self.sizes(prefix))
        for start in range(0, len(keys), 1000):
            self.s3.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": k} for k in keys[start:start + 1000]]})
        return measure(*args, **kwargs)

    def fill(self, prefix, count):
        def put(i):
            self.s3.put_object(Bucket=self.bucket, Key=f"{prefix}/lfs/{i:064x}", Body=b"x")
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(put, range(count)))


def report_row(what, first, second, target=""):
    print(f"  {what:<44} {first:>14} {second:>14}  {target}", flush=True)


def fmt_s(seconds):
    return f"{seconds:.2f} s"


def fmt_b(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def verdict(ok):
    return "ok" if ok else "MISSED"


# ---------------------------------------------------------------------------

def bench_size(label, generations, work, env, bucket):
    print(f"\n{label} repository", flush=True)
    source = work / f"src-{label.split()[0]}"
    build_repo(source, generations, env)
    packed = dir_bytes(source / ".git" / "objects" / "pack")
    print(f"  (built: {packed / 1e6:.1f} MB packed, "
          f"{run(['git', 'rev-list', '--count', 'HEAD'], env, cwd=source).strip()} commits)")
    prefix = f"bench-{label.split()[0]}-{os.getpid()}"
    url = f"s3://{bucket.bucket}/{prefix}"
    bare = work / f"bare-{label.split()[0]}.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], env)
    file_url = f"file://{bare}"

    t_file = timed(["git", "push", "-q", file_url, "main"], env, cwd=source)
    t_s3 = t_push_s3 = timed(["git", "push", "-q", url, "main"], env, cwd=source)
    report_row(f"initial push ({label})", fmt_s(t_file), fmt_s(t_s3),
               f"{t_s3 / t_file:.2f}x")

    old = run(["git", "rev-parse", "HEAD"], env, cwd=source).strip()
    add_commit(source, env, "one more commit")
    new = run(["git", "rev-parse", "HEAD"], env, cwd=source).strip()
    sent = pack_bytes(source, env, new, old)
    before = bucket.sizes(prefix)
    t_file = timed(["git", "push", "-q", file_url, "main"], env, cwd=source)
    t_s3 = timed(["git", "push", "-q", url, "main"], env, cwd=source)
    uploaded = bucket.written_since(prefix, before)
    manifest = bucket.sizes(prefix)[f"{prefix}/manifest.json"][0]
    report_row("one-commit push: time", fmt_s(t_file), fmt_s(t_s3))
    report_row("one-commit push: bytes up", fmt_b(sent), fmt_b(uploaded),
               f"target < 2x + manifest: {verdict(uploaded < 2 * sent + manifest)}")

    clone_file, clone_s3 = work / f"clone-file-{label[:3]}", work / f"clone-s3-{label[:3]}"
    rss_mark = rss_count(env)
    t_file = best_of(3, ["git", "clone", "-q", "--no-local", file_url, str(clone_file)], env,
                     clone_file)
    t_s3 = best_of(3, ["git", "clone", "-q", url, str(clone_s3)], env, clone_s3)
    down_file = dir_bytes(clone_file / ".git" / "objects" / "pack")
    down_s3 = sum(size for key, (size, _) in bucket.sizes(prefix).items()
                  if "/bundles/" in key or key.endswith("manifest.json"))
    report_row("clone: time (best of 3)", fmt_s(t_file), fmt_s(t_s3),
               f"{t_s3 / t_file:.2f}x, target <= 1.3x: {verdict(t_s3 <= 1.3 * t_file)}")
    report_row("clone: bytes down", fmt_b(down_file), fmt_b(down_s3))
    clone_rss = max_rss_since(env, rss_mark)
    if label == "100 MB":
        bench_encrypted(source, work, env, bucket, t_push_s3, t_s3)
        bench_narrow_clones(work, env, file_url, url)

    add_commit(source, env, "fetch me")
    run(["git", "push", "-q", file_url, "main"], env, cwd=source)
    run(["git", "push", "-q", url, "main"], env, cwd=source)
    t_file = timed(["git", "fetch", "-q"], env, cwd=clone_file)
    t_s3 = timed(["git", "fetch", "-q"], env, cwd=clone_s3)
    report_row("one-commit fetch: time", fmt_s(t_file), fmt_s(t_s3))

    for i in range(5):
        run(["git", "branch", "-f", f"branch{i}", "main"], env, cwd=source)
    branches = [f"branch{i}" for i in range(5)]
    run(["git", "push", "-q", file_url, *branches], env, cwd=source)
    run(["git", "push", "-q", url, *branches], env, cwd=source)
    run(["git", "gc", "-q"], env, cwd=bare)
    stored = sum(size for key, (size, _) in bucket.sizes(prefix).items() if "/lfs/" not in key)
    report_row("storage after 5 branches of that history", fmt_b(dir_bytes(bare / "objects")),
               fmt_b(stored))

    t_before = min(timed(["git", "ls-remote", url], env) for _ in range(3))
    bucket.fill(prefix, 20_000)
    t_after = min(timed(["git", "ls-remote", url], env) for _ in range(3))
    report_row("ls-remote: plain / +20,000 lfs objects", fmt_s(t_before), fmt_s(t_after),
               f"target independent: {verdict(t_after < 1.5 * t_before + 0.05)}")
    report_row("helper peak RSS (clone)", "", f"{clone_rss / 1024:.0f} MiB",
               f"target < 150 MiB: {verdict(clone_rss < 150 * 1024)}")
    report_row("helper peak RSS (whole run)", "", f"{max_rss_since(env, 0) / 1024:.0f} MiB",
               f"target < 150 MiB: {verdict(max_rss_since(env, 0) < 150 * 1024)}")
    for path in (source, bare, clone_file, clone_s3):
        shutil.rmtree(path)


def bench_narrow_clones(work, env, file_url, url):
    """Partial and shallow clones: git's server sends less; ours sends the whole
    history (with a warning), so these rows say what that costs."""
    for label, option in (("partial clone (--filter=blob:none)", "--filter=blob:none"),
                          ("shallow clone (--depth 1)", "--depth=1")):
        times = []
        for remote in (file_url, url):
            clone = work / "clone-narrow"
            times.append(best_of(3, ["git", "clone", "-q", option, remote, str(clone)], env,
                                 clone))
            shutil.rmtree(clone)
        report_row(label, fmt_s(times[0]), fmt_s(times[1]), f"{times[1] / times[0]:.2f}x")


def bench_encrypted(source, work, env, bucket, t_push, t_clone):
    """The same push and clone of a repository encrypted with gpg (a throw-away key),
    beside the plain ones just measured."""
    gnupg = work / "gnupg"
    gnupg.mkdir(mode=0o700)
    env = {**env, "GNUPGHOME": str(gnupg)}
    run(["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "",
         "--quick-gen-key", "Bench <bench@example.com>", "future-default", "default",
         "never"], env)
    url = f"s3://{bucket.bucket}/bench-encrypted-{os.getpid()}"
    t_sealed = timed(["git", "-c", "s3.encryptTo=bench@example.com", "push", "-q", url,
                      "HEAD:refs/heads/main"], env, cwd=source)
    report_row("encrypted initial push: plain / gpg", fmt_s(t_push), fmt_s(t_sealed),
               f"{t_sealed / t_push:.2f}x")
    clone = work / "clone-encrypted"
    t_sealed = best_of(3, ["git", "clone", "-q", url, str(clone)], env, clone)
    report_row("encrypted clone: plain / gpg (best of 3)", fmt_s(t_clone), fmt_s(t_sealed),
               f"{t_sealed / t_clone:.2f}x, target <= 1.5x: "
               f"{verdict(t_sealed <= 1.5 * t_clone)}")
    shutil.rmtree(clone)
    subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True)


AGENTS = {  # name: the program git-lfs starts (awslabs' from pip, in the venv)
    "noop": [sys.executable, str(ROOT / "bench" / "noop_agent.py")],
    "awslabs": [str(Path(sys.executable).parent / "git-lfs-s3")],
    "lfs-s3-py": [str(ROOT / "lfs-s3-py")],
    # ours with every agent on its own (as on systems other than Linux): what the
    # agents of one git-lfs command gain by sharing one S3 client
    "alone": ["/usr/bin/env", "GIT_TEST_LFS_ALONE=1", str(ROOT / "lfs-s3-py")],
}


def with_agent(agent, command):
    """`git -c ... <command>` with git-lfs using `agent` for every transfer."""
    program, *args = AGENTS[agent]
    settings = [f"lfs.standalonetransferagent={agent}", "lfs.locksverify=false",
                f"lfs.customtransfer.{agent}.path={program}"]
    settings += [f"lfs.customtransfer.{agent}.args={' '.join(args)}"] if args else []
    return ["git", *(x for s in settings for x in ("-c", s)), *command]


def bench_lfs(name, files, work, env, bucket):
    """git lfs push / fetch of `files` ({name: size}) with lfs-s3-py, with awslabs'
    agent, and the floor: git-lfs with an agent that moves no bytes plus raw boto3
    moving the same bytes. Best of three, taken in turns, each from nothing."""
    print(f"\nLFS: {name}", flush=True)
    rng = random.Random(name)
    repo = work / f"lfs-{len(files)}"
    source = work / "noop-source"  # the files by oid, for the no-op agent's downloads
    source.mkdir()
    run(["git", "init", "-q", "-b", "main", str(repo)], env)
    run(["git", "lfs", "track", "*.bin"], env, cwd=repo)
    for file, size in files.items():
        data = rng.randbytes(size)
        (repo / file).write_bytes(data)
        (source / hashlib.sha256(data).hexdigest()).write_bytes(data)
    run(["git", "add", "-A"], env, cwd=repo)
    run(["git", "commit", "-q", "-m", "large files"], env, cwd=repo)
    total = sum(files.values())
    prefix = f"bench-lfs-{len(files)}-{os.getpid()}"
    run(["git", "remote", "add", "origin", f"s3://{bucket.bucket}/{prefix}"], env, cwd=repo)
    env = {**env, "BENCH_NOOP_SOURCE": str(source)}
    paths = [repo / file for file in files]

    push = {agent: (lambda a=agent: bucket.cleared(
        f"{prefix}/lfs", timed, with_agent(a, ["lfs", "push", "origin", "main"]), env,
        cwd=repo)) for agent in AGENTS}
    push["raw"] = lambda: bucket.cleared(f"{prefix}-raw", raw_transfer, "upload", paths,
                                         bucket.bucket, f"{prefix}-raw", env)
    lfs_row("push", total, best_in_turns(push))
    run(with_agent("lfs-s3-py", ["push", "-q", "origin", "main"]), env, cwd=repo)

    copy = work / f"lfs-copy-{len(files)}"
    run(["git", "clone", "-q", f"s3://{bucket.bucket}/{prefix}", str(copy)],
        {**env, "GIT_LFS_SKIP_SMUDGE": "1"})
    # The clone set lfs-s3-py up for its remote's endpoint, which would outrank the
    # agent with_agent names for every run.
    run([AGENTS["lfs-s3-py"][0], "uninstall"], env, cwd=copy)
    down = work / "raw-down"
    fetch = {agent: (lambda a=agent: emptied(
        copy / ".git" / "lfs" / "objects", timed,
        with_agent(a, ["lfs", "fetch", "origin", "main"]), env, cwd=copy))
        for agent in AGENTS}
    fetch["raw"] = lambda: emptied(down, raw_transfer, "download",
                                   [down / p.name for p in paths], bucket.bucket,
                                   f"{prefix}-raw", env)
    lfs_row("fetch", total, best_in_turns(fetch))
    for path in (repo, copy, down, source):
        shutil.rmtree(path)


def lfs_row(what, total, best):
    """Targets: faster than awslabs' agent; within 1.3x of the floor (no-op + raw)."""
    floor = best["noop"] + best["raw"]
    ours = best["lfs-s3-py"]
    print(f"  {what:<7} {rate(total, best['raw']):>10} {fmt_s(best['noop']):>9} "
          f"{fmt_s(floor):>9} {fmt_s(best['awslabs']):>9} {fmt_s(ours):>10}  "
          f"{best['awslabs'] / ours:.2f}x faster than awslabs: {verdict(ours < best['awslabs'])}; "
          f"{ours / floor:.2f}x the floor, <= 1.3x: {verdict(ours <= 1.3 * floor)}; "
          f"agents alone {fmt_s(best['alone'])}, sharing {best['alone'] / ours:.2f}x "
          f"faster", flush=True)


def best_in_turns(measures, rounds=3):
    """{name: best time} of several measurements, taken in turns."""
    times = {name: [] for name in measures}
    for _ in range(rounds):
        for name, measure in measures.items():
            times[name].append(measure())
    return {name: min(values) for name, values in times.items()}


def emptied(directory, measure, *args, **kwargs):
    """Run measure(...) with `directory` empty first."""
    shutil.rmtree(directory, ignore_errors=True)
    Path(directory).mkdir(parents=True)
    return measure(*args, **kwargs)


def raw_transfer(direction, paths, bucket, prefix, env):
    return timed([sys.executable, str(ROOT / "bench" / "raw_transfer.py"), direction, bucket,
                  prefix, *map(str, paths)], env)


def rate(nbytes, seconds):
    return f"{nbytes / seconds / 2**20:.0f} MiB/s"


# ---------------------------------------------------------------------------
# Round trips

# The floor of our design for each operation (DESIGN.md, Round trips): the manifest
# read, the bundle downloads all at once, the manifest write after the bundle. For LFS,
# what is ours (the push's, git-lfs's pre-push ls-remote, the clone's) plus one request
# per object in git-lfs's waves: it runs its first transfer alone, then 8 lanes, 1 + 7
# waves for 50 objects. Its lanes start a little apart, so the proxy may see one more.
FLOORS = {"ls-remote": 1, "push one commit": 3, "fetch one commit": 2,
          "clone (5 bundles)": 2, "first push": 6, "push, 50 LFS objects": (4, 8),
          "clone, 50 LFS objects": (2, 8)}
LFS_OBJECTS = {f"o{i:02d}.bin": 200_000 for i in range(50)}


class RoundTrips:
    """One implementation's operations, timed through the proxy at a delay."""

    def __init__(self, work, env, bucket, name):
        self.work, self.bucket, self.name = work / f"rt-{name}", bucket, name
        self.work.mkdir()
        self.env, self.n = env, 0

    def fresh(self, stem):
        self.n += 1
        return f"s3://{self.bucket.bucket}/rt-{self.name}-{stem}-{os.getpid()}-{self.n}"

    def repo(self, commits, url=None, lfs=False):
        self.n += 1
        repo = self.work / f"repo-{self.n}"
        run(["git", "init", "-q", "-b", "main", str(repo)], self.env)
        if lfs:
            run(["git", "lfs", "track", "*.bin"], self.env, cwd=repo)
        for i in range(commits):
            add_commit(repo, self.env, f"c{self.n}-{i}")
        if url:
            run(["git", "remote", "add", "origin", url], self.env, cwd=repo)
        return repo

    def operations(self):
        """{name: (prepare, measure)}: prepare() returns the state measure(state) uses."""
        published = self.fresh("repo")
        source = self.repo(1, published)
        for i in range(5):  # five pushes: five bundles
            add_commit(source, self.env, f"p{i}")
            run(["git", "push", "-q", "origin", "main"], self.env, cwd=source)
        lfs_url = self.fresh("lfs")
        lfs = self.repo(1, lfs_url, lfs=True)
        self.setup_lfs(lfs)
        self.add_files(lfs, "first")
        run(["git", "push", "-q", "origin", "main"], self.env, cwd=lfs)

        def clone(url=published):
            self.n += 1
            target = self.work / f"clone-{self.n}"
            return lambda: run(["git", "clone", "-q", url, str(target)], self.env)

        def push_one():
            add_commit(source, self.env, f"one-{self.n}")
            self.n += 1
            return lambda: run(["git", "push", "-q", "origin", "main"], self.env, cwd=source)

        behind = self.work / "behind"
        run(["git", "clone", "-q", published, str(behind)], self.env)

        def fetch_one():
            add_commit(source, self.env, f"fetched-{self.n}")
            self.n += 1
            run(["git", "push", "-q", "origin", "main"], self.env, cwd=source)
            return lambda: run(["git", "fetch", "-q"], self.env, cwd=behind)

        def first_push():
            repo = self.repo(3, self.fresh("first"))
            return lambda: run(["git", "push", "-q", "origin", "main"], self.env, cwd=repo)

        def lfs_push():
            self.n += 1
            self.add_files(lfs, f"more-{self.n}")
            return lambda: run(["git", "push", "-q", "origin", "main"], self.env, cwd=lfs)

        return {
            "ls-remote": lambda: lambda: run(["git", "ls-remote", published], self.env,
                                             cwd=self.work),
            "push one commit": push_one,
            "fetch one commit": fetch_one,
            "clone (5 bundles)": clone,
            "first push": first_push,
            "push, 50 LFS objects": lfs_push,
            "clone, 50 LFS objects": lambda: clone(lfs_url),
        }

    def add_files(self, repo, stem):
        rng = random.Random(stem)
        for name, size in LFS_OBJECTS.items():
            (repo / name).write_bytes(rng.randbytes(size))
        run(["git", "add", "-A"], self.env, cwd=repo)
        run(["git", "commit", "-q", "-m", stem], self.env, cwd=repo)

    def setup_lfs(self, repo):
        run([str(ROOT / "lfs-s3-py"), "install"], self.env, cwd=repo)


class AwslabsRoundTrips(RoundTrips):
    """The same through awslabs' helper and agent (git-remote-s3==0.4.2 in the venv)."""

    def __init__(self, work, env, bucket, name):
        venv_bin = Path(sys.executable).parent
        # Their agent for every repository, through git's environment config; their
        # helper first on PATH (ours, in the bench's bin directory, left out).
        agent = {"lfs.standalonetransferagent": "git-lfs-s3",
                 "lfs.customtransfer.git-lfs-s3.path": str(venv_bin / "git-lfs-s3")}
        count = int(env.get("GIT_CONFIG_COUNT", 0))
        config = {"GIT_CONFIG_COUNT": str(count + len(agent))}
        for i, (key, value) in enumerate(agent.items(), count):
            config.update({f"GIT_CONFIG_KEY_{i}": key, f"GIT_CONFIG_VALUE_{i}": value})
        path = [p for p in env["PATH"].split(os.pathsep) if not Path(p, "lfs-s3-py").exists()]
        super().__init__(work, {**env, **config, "PATH": os.pathsep.join([str(venv_bin),
                                                                           *path])},
                         bucket, name)

    def setup_lfs(self, repo):
        pass  # the agent comes from the environment's config


def bench_round_trips(work, env, server, bucket):
    delay = float(os.environ.get("BENCH_DELAY_MS", "50")) / 1000
    print(f"\nRound trips: every request held D = {delay * 1000:.0f} ms: time at 0 and at "
          "D, requests by method, requests in line (each waited for the one before; "
          "the extra time over D beside it), the floor, awslabs'", flush=True)
    print(f"  {'':<24} {'at 0':>7} {'at D':>7}  {'requests':<24} {'in line':>12} "
          f"{'floor':>5} {'awslabs':>8}  target")
    proxy = FaultProxy(server.endpoint, server.keys["admin"])
    through = {**env, "AWS_ENDPOINT_URL_S3": proxy.endpoint}
    try:
        ours = RoundTrips(work, through, bucket, "ours")
        theirs = AwslabsRoundTrips(work, through, bucket, "awslabs")
        found = {}
        for impl in (ours, theirs):
            for name, prepare in impl.operations().items():
                found[impl.name, name] = measure_round_trips(proxy, prepare, delay)
        for name, floor in FLOORS.items():
            t0, td, requests, chain, slope = found["ours", name]
            theirs = len(found["awslabs", name][3])
            ours, waves = (floor, 0) if isinstance(floor, int) else floor
            objects = sum(key.startswith("lfs/") or "/lfs/" in key for _, key in chain)
            own = len(chain) - objects
            shown = f"{len(chain)}" + (f" = {own}+{objects}" if waves else "")
            print(f"  {name:<24} {fmt_s(t0):>7} {fmt_s(td):>7}  {requests:<24} "
                  f"{shown:>9} ({slope:4.1f}) "
                  f"{ours + waves if not waves else f'{ours}+{waves}':>5} {theirs:>8}  "
                  + (f"ours at the floor, git-lfs's waves within one: "
                     f"{verdict(own <= ours and objects <= waves + 1)}" if waves else
                     f"at the floor: {verdict(own <= ours)}"), flush=True)
    finally:
        proxy.stop()


def measure_round_trips(proxy, prepare, delay, rounds=3):
    """(best time at 0, best at `delay`, requests by method, requests in line (the
    most of any run at `delay`), extra time over the delay) of one operation, each
    run prepared afresh."""
    best, in_line = {}, []
    for seconds in (0.0, delay):
        times = []
        for _ in range(rounds):
            measure = prepare()
            proxy.clear()
            proxy.log.clear()
            proxy.timeline.clear()
            proxy.add("delay", seconds=seconds)
            start = time.monotonic()
            measure()
            times.append(time.monotonic() - start)
            methods = {}
            for _, method, _ in proxy.fired("delay"):
                methods[method] = methods.get(method, 0) + 1
            if seconds:
                in_line = max(in_line, proxy.in_line(), key=len)
        best[seconds] = min(times)
    proxy.clear()
    requests = " ".join(f"{m} {n}" for m, n in sorted(methods.items()))
    return best[0.0], best[delay], requests, in_line, (best[delay] - best[0.0]) / delay


# ---------------------------------------------------------------------------
# Many refs

REF_COUNTS = (100, 10_000, 100_000)
HISTORY = 300  # commits the tags point into


def history_repo(path, env, commits):
    """A repository of `commits` small commits on main, made by one fast-import."""
    run(["git", "init", "-q", "-b", "main", str(path)], env)
    stream = []
    for i in range(commits):
        text = f"commit {i}\n"
        stream.append(f"commit refs/heads/main\nmark :{i + 1}\n"
                      f"committer Bench <bench@example.com> {1700000000 + i} +0000\n"
                      f"data {len(text)}\n{text}"
                      + (f"from :{i}\n" if i else "")
                      + f"M 100644 inline f{i % 50}.txt\ndata {len(text)}\n{text}\n")
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, env=env, check=True,
                   input="".join(stream).encode())
    run(["git", "reset", "-q", "--hard", "main"], env, cwd=path)
    return run(["git", "rev-list", "main"], env, cwd=path).split()


def bench_refs(work, env, server, bucket):
    """A one-commit push and a fetch from an up-to-date clone at 100, 10,000 and
    100,000 refs (tags into 300 commits), and ls-remote and clone from nothing:
    time beside file:// (the bare repository as pushes leave it, its refs loose; and
    with its refs packed, as a server's gc leaves them), and the bytes through the
    proxy (requests and answers)."""
    print("\nMany refs: main plus tags into 300 commits; s3:// beside file:// (refs as "
          "pushed, and packed), bytes moved both ways (s3://)", flush=True)
    print(f"  {'':<34} {'file://':>9} {'packed':>9} {'s3://':>9} {'moved':>10}  target")
    proxy = FaultProxy(server.endpoint, server.keys["admin"])
    through = {**env, "AWS_ENDPOINT_URL_S3": proxy.endpoint}
    found = {}
    try:
        for count in REF_COUNTS:
            found[count] = bench_ref_count(count, work / f"refs-{count}", through, bucket,
                                           proxy)
    finally:
        proxy.stop()
    small, large = found[REF_COUNTS[0]], found[REF_COUNTS[-1]]
    for what in ("ls-remote from nothing", "clone"):
        grew = {kind: large[what][kind] - small[what][kind] for kind in large[what]}
        print(f"  {what + ': growth 100 to 100,000':<34} {fmt_s(grew['file']):>9} "
              f"{fmt_s(grew['packed']):>9} {fmt_s(grew['s3']):>9} {'':>10}  no more than "
              f"file://'s: {verdict(grew['s3'] <= grew['file'])}")


def bench_ref_count(count, base, env, bucket, proxy):
    base.mkdir()
    source = base / "source"
    commits = history_repo(source, env, HISTORY)
    refs = "".join(f"create refs/tags/v{i:06d} {commits[i % len(commits)]}\n"
                   for i in range(count - 1))
    subprocess.run(["git", "update-ref", "--stdin"], cwd=source, env=env, check=True,
                   input=refs.encode())
    run(["git", "pack-refs", "--all"], env, cwd=source)  # as a clone or gc leaves them
    urls = {"file": f"file://{base}/bare.git", "packed": f"file://{base}/packed.git",
            "s3": f"s3://{bucket.bucket}/refs-{count}-{os.getpid()}"}
    for kind, url in urls.items():
        if kind != "s3":
            run(["git", "init", "-q", "--bare", url[len("file://"):]], env)
        run(["git", "remote", "add", kind, url], env, cwd=source)
        run(["git", "push", "-q", kind, "refs/heads/*:refs/heads/*",
             "refs/tags/*:refs/tags/*"], env, cwd=source)
        run(["git", "clone", "-q", url, str(base / f"up-{kind}")], env)
    run(["git", "pack-refs", "--all"], env, cwd=base / "packed.git")

    def measured(command, cwd):
        proxy.traffic.clear()
        seconds = timed(command, env, cwd)
        return seconds, sum(up + down for _, _, up, down in proxy.traffic)

    pushed, fetched = {}, {}
    for i in range(3):
        add_commit(source, env, f"more-{count}-{i}")
        for kind in urls:
            pushed.setdefault(kind, []).append(measured(["git", "push", "-q", kind, "main"],
                                                        source))
            fetched.setdefault(kind, []).append(measured(["git", "fetch", "-q"],
                                                         base / f"up-{kind}"))
    for what, runs in (("push one commit", pushed), ("fetch, up to date", fetched)):
        best = {kind: min(runs[kind])[0] for kind in urls}
        moved = max(b for _, b in runs["s3"])
        target = f"<= 64 KiB and <= 1/3 of file://: " \
            f"{verdict(moved <= 64 * 1024 and best['s3'] <= best['file'] / 3)}" \
            if count == REF_COUNTS[-1] else ""
        print(f"  {f'{count:,} refs: {what}':<34} {fmt_s(best['file']):>9} "
              f"{fmt_s(best['packed']):>9} {fmt_s(best['s3']):>9} {fmt_b(moved):>10}  "
              f"{target}", flush=True)
    rows = {}
    for what, command in (("ls-remote from nothing", lambda url, n: ["git", "ls-remote",
                                                                      url]),
                          ("clone", lambda url, n: ["git", "clone", "-q", url,
                                                    str(base / f"clone-{n}")])):
        best = {}
        for kind, url in urls.items():
            runs = []
            for n in range(2):
                shutil.rmtree(base / f"clone-{kind}{n}", ignore_errors=True)
                runs.append(measured(command(url, f"{kind}{n}"), base))
            best[kind] = min(runs)
        rows[what] = {kind: seconds for kind, (seconds, _) in best.items()}
        print(f"  {f'{count:,} refs: {what}':<34} {fmt_s(best['file'][0]):>9} "
              f"{fmt_s(best['packed'][0]):>9} {fmt_s(best['s3'][0]):>9} "
              f"{fmt_b(best['s3'][1]):>10}", flush=True)
    shutil.rmtree(base, ignore_errors=True)
    return rows


def rss_count(env):
    log = Path(env["BENCH_RSS_LOG"])
    return len(log.read_text().split()) if log.exists() else 0


def max_rss_since(env, mark):
    values = [int(v) for v in Path(env["BENCH_RSS_LOG"]).read_text().split()[mark:]]
    return max(values, default=0)


def main():
    work = Path(tempfile.mkdtemp(prefix="git-remote-s3-bench-"))
    bin_dir = work / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "git-remote-s3"
    wrapper.write_text(f"#!{sys.executable}\n" + (ROOT / "bench" / "rss_helper.py").read_text())
    wrapper.chmod(0o755)
    (bin_dir / "lfs-s3-py").symlink_to(ROOT / "lfs-s3-py")
    try:
        with LocalS3() as server:
            env = {**os.environ, **server.env(),
                   # The venv's python3 first, as for the awslabs and no-op agents:
                   # our scripts' `#!/usr/bin/env python3` would otherwise go through
                   # whatever shim (pyenv's costs ~50 ms a start) is on PATH.
                   "PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent),
                                            os.environ["PATH"]]),
                   "BENCH_HELPER": str(ROOT / "git-remote-s3"),
                   "BENCH_RSS_LOG": str(work / "rss.log"),
                   "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
                   "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
                   "GIT_AUTHOR_DATE": DATE, "GIT_COMMITTER_DATE": DATE,
                   "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(work),
                   # no gc --auto in the background of the commits that build the
                   # repositories, which the bench's own `git gc` would collide with
                   "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "gc.auto",
                   "GIT_CONFIG_VALUE_0": "0"}
            bucket = Bucket(server)
            print(f"  {'':<44} {'git file://':>14} {'git-remote-s3':>14}  target")
            only = os.environ.get("BENCH_ONLY")
            for label, generations in SIZES.items():
                if not only or only == label:
                    bench_size(label, generations, work, env, bucket)
            if not only or only == "lfs":
                run(["git", "lfs", "install", "--skip-repo"], env)
                print(f"\n  {'':<7} {'raw boto3':>10} {'no-op':>9} {'floor':>9} "
                      f"{'awslabs':>9} {'lfs-s3-py':>10}  targets")
                for name, files in LFS_SETS.items():
                    bench_lfs(name, files, work, env, bucket)
            if not only or only == "round trips":
                run(["git", "lfs", "install", "--skip-repo"], env)
                bench_round_trips(work, env, server, bucket)
            if not only or only == "refs":
                bench_refs(work, env, server, bucket)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
