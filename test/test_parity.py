"""git's own server is the oracle: each git command of the table runs twice from the
same starting state, against a local bare repository (file://) and against the S3
remote, and what git reports must be the same: exit status, the remote's refs and
HEAD, the local repository's refs, and the per-ref report lines.

Every command runs under the World's timeout, which kills its whole process group:
a hang fails its row instead of stalling the suite."""

import re
import shutil

import pytest

from conftest import World

DATES = {"GIT_AUTHOR_DATE": "1700000000 +0000", "GIT_COMMITTER_DATE": "1700000000 +0000"}

# Where we differ from git's server on purpose, and why (README says the same).
SHALLOW = ("s3:// remotes send whole bundles: a shallow fetch gets the whole history, "
           "with one warning")
PARTIAL = ("s3:// remotes send whole bundles: a partial clone gets the whole history, "
           "with one warning")
SIGNED = "no push certificates: git's server without receive.certNonceSeed refuses too"
FOLLOWED = ("a fetch brings whole bundles, so git also follows the tags whose commits "
            "arrived in them")
INTENDED = {}


def row(name, command, where="work", prepare=(), differs=None, compare=("status", "remote",
        "local", "report")):
    if differs:
        INTENDED[name] = differs
    return pytest.param(dict(command=command, where=where, prepare=prepare,
                             compare=compare), id=name)


# The starting state, the same on both remotes: main (3 commits, HEAD), topic, the
# lightweight tag l1 and the annotated tag v1; `work` pushed them and `copy` cloned.
# {remote} is the remote's URL, {blob} a blob's id, {first} main's first commit.
ROWS = [
    # clone
    row("clone", ["clone", "{remote}", "new"], where="tmp"),
    row("clone --bare", ["clone", "--bare", "{remote}", "new"], where="tmp"),
    row("clone --mirror", ["clone", "--mirror", "{remote}", "new"], where="tmp"),
    row("clone --branch tag", ["clone", "--branch", "v1", "{remote}", "new"], where="tmp"),
    row("clone --single-branch", ["clone", "--single-branch", "--branch", "topic",
                                  "{remote}", "new"], where="tmp", differs=FOLLOWED,
        compare=("status", "remote", "report")),
    row("clone --no-checkout", ["clone", "--no-checkout", "{remote}", "new"], where="tmp"),
    row("clone --origin", ["clone", "--origin", "up", "{remote}", "new"], where="tmp"),
    row("clone --reference", ["clone", "--reference", "{work}", "{remote}", "new"],
        where="tmp"),
    row("clone --recurse-submodules", ["clone", "--recurse-submodules", "{remote}", "new"],
        where="tmp"),
    row("clone --filter", ["clone", "--filter=blob:none", "{remote}", "new"], where="tmp",
        differs=PARTIAL),
    row("clone --depth", ["clone", "--depth", "1", "{remote}", "new"], where="tmp",
        differs=SHALLOW, compare=("status", "remote", "report")),
    row("clone --shallow-since", ["clone", "--shallow-since=1600000000", "{remote}", "new"],
        where="tmp", differs=SHALLOW, compare=("status", "remote", "report")),
    # fetch, in the clone, after work moved the remote on
    row("fetch", ["fetch"], where="copy", prepare=[["push", "origin", "HEAD:refs/heads/new"]]),
    row("fetch by commit id", ["fetch", "origin", "{first}"], where="copy"),
    row("fetch glob refspec", ["fetch", "origin", "+refs/heads/*:refs/remotes/all/*"],
        where="copy"),
    row("fetch --prune", ["fetch", "--prune"], where="copy",
        prepare=[["push", "origin", "--delete", "topic"]]),
    row("fetch --prune-tags", ["fetch", "--prune", "--prune-tags"], where="copy",
        prepare=[["push", "origin", "--delete", "l1"]]),
    row("fetch --tags", ["fetch", "--tags"], where="copy",
        prepare=[["tag", "l2"], ["push", "origin", "l2"]]),
    row("fetch --force", ["fetch", "--force", "origin", "+refs/heads/*:refs/remotes/origin/*"],
        where="copy", prepare=[["push", "--force", "origin", "HEAD~1:refs/heads/topic"]]),
    row("fetch --refetch", ["fetch", "--refetch"], where="copy"),
    row("fetch --depth", ["fetch", "--depth", "1"], where="copy", differs=SHALLOW,
        compare=("status", "remote", "report")),
    row("fetch --unshallow", ["fetch", "--unshallow"], where="copy"),
    # push, from work
    row("push --all", ["push", "--all", "origin"], prepare=[["branch", "side"]]),
    row("push --tags", ["push", "--tags", "origin"], prepare=[["tag", "l2"]]),
    row("push --follow-tags", ["push", "--follow-tags", "origin", "main"],
        prepare=[["commit", "--allow-empty", "-m", "next"], ["tag", "-a", "v2", "-m", "v2"]]),
    row("push --mirror", ["push", "--mirror", "origin"],
        prepare=[["branch", "-D", "topic"], ["branch", "side"]]),
    row("push --prune", ["push", "--prune", "origin", "refs/heads/*:refs/heads/*"],
        prepare=[["branch", "-D", "topic"]]),
    row("push --delete", ["push", "origin", "--delete", "topic"]),
    row("push --delete HEAD's branch", ["push", "origin", "--delete", "main"]),
    row("push --delete a missing ref", ["push", "origin", "--delete", "nothing"]),
    row("push --atomic", ["push", "--atomic", "origin", "main", "HEAD~2:topic"],
        prepare=[["commit", "--allow-empty", "-m", "next"]]),
    row("push non-fast-forward", ["push", "origin", "HEAD~1:topic", "main"],
        prepare=[["commit", "--allow-empty", "-m", "next"]]),
    row("push --force", ["push", "--force", "origin", "HEAD~2:topic"]),
    row("push --force-with-lease", ["push", "--force-with-lease=topic:{first}", "origin",
                                    "HEAD~2:topic"]),
    row("push --force-if-includes", ["push", "--force-with-lease", "--force-if-includes",
                                     "origin", "HEAD~2:topic"]),
    row("push --dry-run", ["push", "--dry-run", "origin", "HEAD:refs/heads/dry"]),
    row("push --porcelain", ["push", "--porcelain", "origin", "HEAD:refs/heads/p",
                             "HEAD~1:topic"]),
    row("push -o", ["push", "-o", "ci.skip", "origin", "HEAD:refs/heads/o"]),
    row("push --signed", ["push", "--signed", "origin", "HEAD:refs/heads/s"],
        differs=SIGNED, compare=("status", "remote")),
    row("push glob refspec", ["push", "origin", "refs/heads/*:refs/heads/copy/*"]),
    row("push an annotated tag to a branch", ["push", "origin", "v1:refs/heads/x",
                                              "main:refs/heads/y"]),
    row("push a blob to a branch", ["push", "origin", "{blob}:refs/heads/x",
                                    "main:refs/heads/y"]),
    row("push a blob to a tag", ["push", "origin", "{blob}:refs/tags/b"]),
    row("push an existing tag moved", ["push", "origin", "HEAD~1:refs/tags/l1"]),
]


def starting_state(world):
    """The history both remotes start from, in a repository `template`."""
    template = world.tmp / "template"
    world.git("init", "-q", "-b", "main", template, env=DATES)
    for i in range(3):
        world.commit(template, f"commit {i}", files={f"f{i}.txt": f"{i}\n"})
    world.git("branch", "topic", "HEAD~1", cwd=template)
    world.git("tag", "l1", "HEAD~1", cwd=template)
    world.git("tag", "-a", "v1", "-m", "release", cwd=template, env=DATES)
    return template


def started(world, remote, side):
    """`work` pushed the starting state to `remote`, and `copy` cloned it."""
    work, copy = side / "work", side / "copy"
    shutil.copytree(world.tmp / "template", work, symlinks=True)
    world.git("remote", "add", "origin", remote, cwd=work)
    world.git("push", "-q", "origin", "main", "topic", "l1", "v1", cwd=work)
    world.git("clone", "-q", remote, copy)


@pytest.fixture(scope="session")
def s3_start(s3server, helper_bin, tmp_path_factory):
    """The starting state on S3, pushed and cloned once per worker: a row copies the
    objects on the server and the two repositories on disk (a push and a clone less)."""
    base = World(s3server, tmp_path_factory.mktemp("parity"), helper_bin, "parity start")
    starting_state(base)
    started(base, base.url, base.tmp / "s3")
    return base


def observe(world, remote, case, values, start=None):
    """Run the row against `remote` from a fresh copy of the starting state (for S3,
    of `start`'s)."""
    side = world.tmp / ("file" if remote.startswith("file:") else "s3")
    work, copy, tmp = side / "work", side / "copy", side / "tmp"
    if start:
        world.copy_from(start.prefix)
        for name in ("work", "copy"):
            shutil.copytree(start.tmp / "s3" / name, side / name, symlinks=True)
            world.git("remote", "set-url", "origin", remote, cwd=side / name)
    else:
        started(world, remote, side)
    tmp.mkdir()
    values = {**values, "remote": remote, "work": str(work)}
    for step in case["prepare"]:
        world.git(*step, cwd=work, env=DATES)
    cwd = {"work": work, "copy": copy, "tmp": tmp}[case["where"]]
    done = world.git(*(arg.format(**values) for arg in case["command"]), cwd=cwd, ok=None,
                     env=DATES)
    local = cwd / "new" if case["where"] == "tmp" else cwd
    return {
        "status": done.returncode,
        "remote": remote_refs(world, remote),
        "local": world.git("for-each-ref", "--format=%(refname) %(objectname)", cwd=local,
                           ok=None).stdout if local.exists() else None,
        "report": report_lines(done.stdout + done.stderr, remote),
        "stderr": done.stderr,
    }


def remote_refs(world, remote):
    """ls-remote's lines, sorted. A helper's `list` cannot name peeled tags, so git
    shows no `v1^{}` line for s3:// (a difference of the helper protocol, not ours)."""
    lines = world.git("ls-remote", "--symref", remote).stdout.splitlines()
    return sorted(line for line in lines if not line.endswith("^{}"))


def report_lines(output, remote):
    """git's per-ref lines (and porcelain's), with the remote's URL taken out."""
    lines = [line.replace(remote, "<remote>") for line in output.splitlines()]
    return [line for line in lines
            if re.match(r"^( [ +*!=-] |[ +*!=-]\t|Done$|To <remote>$)", line)]


@pytest.mark.parametrize("case", ROWS)
def test_git_behaves_as_with_its_own_server(world, s3_start, case, request):
    template = world.tmp / "template"
    shutil.copytree(s3_start.tmp / "template", template, symlinks=True)
    bare = world.tmp / "bare.git"
    world.git("init", "-q", "--bare", "-b", "main", bare)
    values = {"first": world.rev(template, "main~2"),
              "blob": world.rev(template, "main:f0.txt")}
    expected = observe(world, f"file://{bare}", case, values)
    got = observe(world, world.url, case, values, start=s3_start)
    name = request.node.callspec.id
    for what in case["compare"]:
        assert got[what] == expected[what], (
            f"{what} differs for '{name}'\n--- file://\n{expected[what]}\n"
            f"--- s3://\n{got[what]}\n--- stderr file://\n{expected['stderr']}"
            f"--- stderr s3://\n{got['stderr']}")
    warned = got["stderr"].count("warning: s3:// remotes have no")
    assert warned == (1 if INTENDED.get(name) in (SHALLOW, PARTIAL) else 0), got["stderr"]


def test_a_partial_clone_finishes_and_everything_works_in_it(world):
    """git marks the clone partial before it fetches: the helper's own git commands
    must not fetch lazily from the remote, which would start the helper again, and
    again (GIT_TRACE to a file sees every process of every level)."""
    work = world.pushed(commits=3)
    world.git("push", "-q", "origin", "main:topic", cwd=work)
    trace = world.tmp / "trace"
    cloned = world.git("clone", "--filter=blob:none", world.url, world.tmp / "partial",
                       env={"GIT_TRACE": str(trace)}, timeout=60)  # a recursion: killed
    assert cloned.stderr.count("warning: s3:// remotes have no partial clone") == 1
    assert trace.read_text().count("git-remote-s3 origin") <= 2  # no helper under ours
    partial = world.tmp / "partial"
    world.commit(work, "later")
    world.git("push", "-q", "origin", "main", cwd=work)
    for step in (["fetch"], ["checkout", "-q", "topic"], ["log", "-p"], ["gc", "-q"],
                 ["merge", "-q", "origin/main"]):
        world.git(*step, cwd=partial)
    world.git("push", "-q", "origin", "HEAD:refs/heads/from-partial", cwd=partial)
    assert world.remote_refs()["refs/heads/from-partial"] == world.rev(partial, "HEAD")
    world.assert_fsck_clean(partial)


def test_a_helper_started_under_the_helper_stops_at_once(world):
    work = world.repo()
    nested = world.run("git-remote-s3", "origin", world.url, cwd=work, input="list\n",
                       ok=False, env={"GIT_REMOTE_S3_RUNNING": f"origin {world.url}"})
    assert nested.returncode == 128 and nested.stdout == ""
    assert nested.stderr.splitlines() == [
        "fatal: git-remote-s3 was started by a git command that git-remote-s3 runs itself "
        f"(for 'origin {world.url}'): refusing to recurse (a lazy fetch in a partial "
        "clone?)"]
