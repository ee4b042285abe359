"""Pure functions of the helper: URL parsing, manifest parsing, the HEAD rule, what a
push writes, compaction decisions."""

import json
import os
import random
import subprocess

import pytest


def test_urls_parse_into_profile_bucket_and_prefix(helper_module):
    url = helper_module.S3Url("s3://team@my-bucket/a/b/c/")
    assert (url.scheme, url.profile, url.bucket, url.prefix) == ("s3", "team", "my-bucket",
                                                                 "a/b/c")
    assert url.key("manifest.json") == "a/b/c/manifest.json"
    root = helper_module.S3Url("s3+zip://my.bucket")
    assert (root.scheme, root.profile, root.prefix) == ("s3+zip", None, "")
    assert root.key("manifest.json") == "manifest.json"


@pytest.mark.parametrize("text", ["http://bucket/x", "s3:/bucket", "s3://ab", "s3://UPPER",
                                  "s3://-dash", "s3://a..b", "s3://192.168.1.1/x",
                                  "s3://bucket/a//b", "s3://bucket/./x", "s3://@bucket"])
def test_malformed_urls_are_refused(helper_module, text):
    with pytest.raises(helper_module.Fatal, match="is not|empty profile"):
        helper_module.S3Url(text)


def test_manifest_round_trips_and_rejects_what_it_cannot_trust(helper_module):
    m = helper_module
    sha = "a" * 40
    manifest = m.Manifest(refs={"refs/heads/main": sha}, head="refs/heads/main",
                          bundles=[m.BundleEntry(f"bundles/{'b' * 64}.bundle", 10,
                                                 {"refs/heads/main": sha})])
    again = m.Manifest.parse(manifest.dump(), "x")
    assert again == manifest
    assert again.known_objects() == {sha}
    for broken in (b"[]", b'{"format": 1}', manifest.dump().replace(b"refs/heads/main\"",
                                                                    b"main\"", 1),
                   manifest.dump().replace(b"bundles/", b"../", 1),
                   manifest.dump().replace(b'"format": 1', b'"format": "one"')):
        with pytest.raises(m.ManifestError):
            m.Manifest.parse(broken, "x")


def test_a_manifest_that_protects_a_branch_is_format_2(helper_module):
    m = helper_module
    manifest = m.Manifest(refs={"refs/heads/main": "a" * 40}, head="refs/heads/main")
    assert json.loads(manifest.dump())["format"] == 1
    manifest.protected = ["refs/heads/main"]
    dumped = manifest.dump()
    assert json.loads(dumped)["format"] == 2
    assert m.Manifest.parse(dumped, "x").protected == ["refs/heads/main"]
    for bad in (b'"refs/tags/v1"', b'"main"'):
        with pytest.raises(m.ManifestError):
            m.Manifest.parse(dumped.replace(b'"refs/heads/main"\n ]', bad + b"]"), "x")


def test_every_write_is_remembered_until_writes_kept_later_writes(helper_module,
                                                                      monkeypatch):
    m = helper_module
    monkeypatch.setenv("GIT_TEST_S3_WRITES_KEPT", "3")
    base = m.Manifest(refs={"refs/heads/main": "a" * 40}, head="refs/heads/main")
    ours = base.written_over(base, "0" * 16)
    assert (ours.serial, ours.writes) == (1, ["0" * 16])
    dumped = json.loads(ours.dump())
    assert (dumped["format"], dumped["serial"], dumped["writes"]) == (4, 1, ["0" * 16])
    assert ours.holds_write(ours) is True
    assert base.holds_write(ours) is False  # not there yet
    rival = base.written_over(base, "1" * 16)  # another writer won the same slot
    assert rival.holds_write(ours) is False
    later = ours
    for i in range(2, 5):
        later = later.written_over(later, f"{i}" * 16)
        assert later.holds_write(ours) is (True if i < 4 else None)
    assert later.writes == ["2" * 16, "3" * 16, "4" * 16]
    parsed = m.Manifest.parse(later.dump(), "x")
    assert (parsed.serial, parsed.writes, parsed.format) == (4, later.writes, 4)
    for broken in (later.dump().replace(b'"serial": 4', b'"serial": 2'),  # 3 writes?
                   later.dump().replace(b'"2222222222222222"', b'"not an id"')):
        with pytest.raises(m.ManifestError):
            m.Manifest.parse(broken, "x")


def push_one(m, bundles, size):
    """The bundle list after a push of `size` bytes, as the helper composes it."""
    start = m.compaction_start(bundles, size, lambda b: True)
    merged = sum(b.size for b in bundles[start:])
    return bundles[:start] + ([m.BundleEntry("k", merged, {})] if merged else []) + [
        m.BundleEntry("k", size, {})]


def test_compaction_keeps_few_bundles_and_the_newest_push_separate(helper_module):
    m = helper_module
    rng = random.Random(7)
    big_first = [100_000_000] + [rng.randint(200, 5000) for _ in range(3000)]
    for sizes in (big_first, [1000] * 3000, [rng.randint(1, 10**6) for _ in range(3000)]):
        bundles, most = [], 0
        for size in sizes:
            bundles = push_one(m, bundles, size)
            most = max(most, len(bundles))
            assert bundles[-1].size == size  # a fetch one push behind gets just that push
        assert most <= 16


def test_a_small_push_onto_a_large_history_merges_nothing(helper_module):
    m = helper_module
    bundles = push_one(m, push_one(m, [], 100_000_000), 2_000)
    assert [b.size for b in bundles] == [100_000_000, 2_000]


def test_compaction_never_absorbs_a_bundle_the_pusher_cannot_rebuild(helper_module):
    m = helper_module
    bundles = [m.BundleEntry(f"k{i}", 100, {}) for i in range(5)]
    assert m.compaction_start(bundles, 100, lambda b: True) == 0
    assert m.compaction_start(bundles, 100, lambda b: b.key != "k1") == 2
    # Absorbing a single bundle would only rename it: nothing merges.
    assert m.compaction_start(bundles, 100, lambda b: b.key != "k3") == 5


@pytest.mark.parametrize("name", ["main", "refs/heads/a b", "refs/heads/x\n0 refs/heads/evil",
                                  "refs/heads/a..b", "refs/heads/a.lock", "refs/heads/a/",
                                  "refs/heads/.hidden", "refs/heads/a~1", "refs/heads/a:b",
                                  "refs/heads/a@{1}", "refs//x", "refs/heads/x\n"])
def test_manifest_refuses_ref_names_git_would_refuse(helper_module, name):
    # Ref names go verbatim into the protocol and into bundle headers.
    m = helper_module
    manifest = m.Manifest(refs={name: "a" * 40})
    with pytest.raises(m.ManifestError):
        m.Manifest.parse(manifest.dump(), "x")
    assert m.REF_NAME.match("refs/heads/feature/ünï-1.0")


@pytest.mark.parametrize("branches, head", [
    (["refs/heads/master", "refs/heads/main"], "refs/heads/main"),
    (["refs/heads/zeta", "refs/heads/master"], "refs/heads/master"),
    (["refs/heads/zeta", "refs/heads/alpha", "refs/tags/v1"], "refs/heads/alpha"),
    (["refs/tags/v1"], None),
])
def test_one_rule_chooses_head_when_it_names_no_branch(helper_module, branches, head):
    m = helper_module
    manifest = m.Manifest(refs={name: "a" * 40 for name in branches}, head="refs/heads/gone")
    manifest.choose_head()
    assert manifest.head == head
    manifest.refs["refs/heads/chosen"] = "b" * 40
    manifest.head = "refs/heads/chosen"
    manifest.choose_head()  # a HEAD that names a branch stays
    assert manifest.head == "refs/heads/chosen"


def test_next_manifest_moves_refs_and_replaces_bundles_without_touching_the_read_one(
        helper_module):
    m = helper_module

    def entry(letter, size):
        return m.BundleEntry(f"bundles/{letter * 64}.bundle", size, {})
    read = m.Manifest(refs={"refs/heads/main": "a" * 40, "refs/heads/old": "a" * 40},
                      head="refs/heads/old", bundles=[entry("a", 100), entry("b", 10)],
                      retired=[{"key": entry("c", 0).key, "since": 0},
                               {"key": entry("d", 0).key, "since": 2 ** 40}])
    updates = [m.Update("x", "refs/heads/main", False, "b" * 40),
               m.Update("", "refs/heads/old", False, None)]
    new, expired = m.next_manifest(read, updates, 1, [entry("e", 15)])
    assert new.refs == {"refs/heads/main": "b" * 40}
    assert new.head == "refs/heads/main"  # HEAD's branch was deleted: the one rule
    assert [b.key for b in new.bundles] == [entry("a", 0).key, entry("e", 0).key]
    assert [r["key"] for r in new.retired] == [entry("d", 0).key, entry("b", 0).key]
    assert expired == [entry("c", 0).key]  # its grace period is long over
    assert read.refs["refs/heads/old"] == "a" * 40 and len(read.bundles) == 2


def test_the_retired_list_is_bounded_whatever_the_push_rate(helper_module):
    m = helper_module
    now = int(m.time.time())
    keys = [f"bundles/{i:064x}.bundle" for i in range(m.RETIRED_KEPT + 10)]
    manifest = m.Manifest(retired=[{"key": k, "since": now} for k in keys])  # none expired
    assert manifest.drop_expired() == sorted(keys[:10])  # the oldest beyond the bound
    assert [r["key"] for r in manifest.retired] == keys[10:]


def test_a_ref_already_at_its_new_value_is_ok_whatever_the_lease_expected(helper_module):
    # Our write landed, its answer was lost, and another push landed on top before we
    # read again: the lease still names the old value, but the ref is where we wanted.
    m = helper_module
    leases = {"refs/heads/main": "a" * 40}
    manifest = m.Manifest(refs={"refs/heads/main": "b" * 40, "refs/heads/x": "c" * 40})
    assert m.judge(m.Update("main", "refs/heads/main", True, "b" * 40), manifest, leases,
                   None) == m.OK
    assert m.judge(m.Update("main", "refs/heads/main", True, "c" * 40), manifest, leases,
                   None) == m.rejected("stale info")


class KnownHistory:
    """What a local repository would say: the types of the ids it has and which commit
    descends from which; it records every question, for the judge must ask none it
    does not need."""

    def __init__(self, types, descent):
        self.types, self.descent, self.asked = types, descent, []

    def kinds(self, *shas):
        self.asked.append(("kinds", shas))
        return [self.types.get(sha) for sha in shas]

    def descends(self, old, new):
        self.asked.append(("descends", old, new))
        return (old, new) in self.descent

    def fast_forward(self, old, new):
        return self.kinds(old, new) == ["commit", "commit"] and self.descends(old, new)


BASE, AHEAD, ASIDE, TAG, UNKNOWN = "1" * 40, "2" * 40, "3" * 40, "4" * 40, "5" * 40
JUDGED = [  # (dst, new, kind, force, lease, protected, verdict, warned)
    ("refs/heads/main", AHEAD, "commit", False, None, False, "ok", False),
    ("refs/heads/main", ASIDE, "commit", False, None, False, "non-fast forward", False),
    ("refs/heads/main", ASIDE, "commit", True, None, False, "forced", False),
    ("refs/heads/main", ASIDE, "commit", True, None, True,
     "protected branch: no force push; 'git s3 unprotect' allows it", False),
    ("refs/heads/main", AHEAD, "commit", True, None, True, "ok", False),
    ("refs/heads/main", AHEAD, "commit", False, BASE, True, "ok", False),
    ("refs/heads/main", ASIDE, "commit", False, BASE, False, "forced", False),
    ("refs/heads/main", ASIDE, "commit", False, AHEAD, False, "stale info", False),
    ("refs/heads/main", None, None, False, None, False,
     "deletion of the current branch prohibited", True),
    ("refs/heads/main", None, None, True, None, True,
     "protected branch: no delete; 'git s3 unprotect' allows it", False),
    ("refs/heads/topic", None, None, False, None, False, "ok", False),
    ("refs/heads/topic", TAG, "tag", True, None, False, "failed to update ref", True),
    ("refs/heads/new", TAG, "tag", False, None, False, "failed to update ref", True),
    ("refs/heads/other", AHEAD, "commit", False, None, False, "fetch first", False),
    ("refs/heads/topic", TAG, "tag", False, None, False, "needs force", False),
    ("refs/tags/v1", AHEAD, "commit", False, None, False, "already exists", False),
    ("refs/tags/v1", AHEAD, "commit", True, None, False, "forced", False),
]


@pytest.mark.parametrize("dst, new, kind, force, lease, protected, verdict, warned", JUDGED)
def test_one_function_judges_a_ref_update_as_receive_pack_does(
        helper_module, dst, new, kind, force, lease, protected, verdict, warned):
    m = helper_module
    manifest = m.Manifest(refs={"refs/heads/main": BASE, "refs/heads/topic": BASE,
                                "refs/heads/other": UNKNOWN, "refs/tags/v1": BASE},
                          head="refs/heads/main",
                          protected=["refs/heads/main"] if protected else [])
    history = KnownHistory({BASE: "commit", AHEAD: "commit", ASIDE: "commit", TAG: "tag"},
                           {(BASE, AHEAD)})
    got = m.judge(m.Update("x", dst, force, new, kind), manifest,
                  {dst: lease} if lease else {}, history)
    said = m.status_line(dst, got)
    assert said == {"ok": f"ok {dst}", "forced": f"ok {dst} forced update"}.get(
        verdict, f"error {dst} {verdict}")
    assert got.ok == (verdict in ("ok", "forced")) and got.forced == (verdict == "forced")
    assert bool(got.warning) == warned
    if force and not protected or lease and not protected or new is None:
        assert not [q for q in history.asked if q[0] == "descends"]  # nothing to ask


def test_an_atomic_push_is_rejected_whole_and_each_warning_is_kept(helper_module):
    m = helper_module
    manifest = m.Manifest(refs={"refs/heads/main": BASE}, head="refs/heads/main")
    history = KnownHistory({BASE: "commit", AHEAD: "commit"}, {(BASE, AHEAD)})
    updates = [m.Update("x", "refs/heads/topic", False, AHEAD, "commit"),
               m.Update("", "refs/heads/main", False)]
    judged = m.judge_all(updates, manifest, m.Options(atomic=True), history)
    assert judged["refs/heads/topic"] == m.rejected("atomic push failed")
    assert judged["refs/heads/main"].reason == "deletion of the current branch prohibited"
    assert "refusing to delete the current branch" in judged["refs/heads/main"].warning
    alone = m.judge_all(updates, manifest, m.Options(), history)
    assert alone["refs/heads/topic"] == m.OK


@pytest.mark.parametrize("args, dry", [
    (["--dry-run", "origin"], True), (["-vn"], True), (["--dry"], True), (["-fnq"], True),
    (["--dry-run", "--no-dry-run"], False), (["-n", "--no-dry"], False),
    (["-n", "--no-d"], True), (["-o", "n"], False), (["-on"], False),
    (["-o", "x", "-n"], True), (["--push-option", "-n"], False), (["--", "-n"], False),
    (["--d"], False), (["origin", "main"], False)])
def test_a_dry_run_is_read_from_git_pushs_arguments(helper_module, args, dry):
    assert helper_module.dry_run_in(args) is dry


def test_orphaned_scratch_is_removed_and_one_gone_meanwhile_is_passed_over(
        helper_module, tmp_path, monkeypatch):
    """What a killed command left goes; a live one's stays; an entry removed between
    the listing and the look (its command ending, another's clean-up) is no error."""
    ended = subprocess.Popen(["true"])
    ended.wait()
    left = tmp_path / f"git-remote-s3-{ended.pid}-fetch-x"
    (left / "objects").mkdir(parents=True)
    live = tmp_path / f"git-remote-s3-{os.getpid()}-fetch-y"
    live.mkdir()
    listed = os.listdir
    monkeypatch.setattr(os, "listdir",
                        lambda d: [*listed(d), f"git-remote-s3-{ended.pid}-gone"])
    helper_module.remove_orphans(str(tmp_path), "git-remote-s3-")
    assert listed(tmp_path) == [live.name]


def test_one_read_of_git_config_answers_as_git_config_would(helper_module, tmp_path,
                                                             monkeypatch):
    """--get, --get-all and --bool --get, from one `git config --list` (git_config):
    git is the oracle, key by key."""
    m = helper_module
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", repo], check=True)
    with open(repo / ".git" / "config", "a") as config:
        config.write('[s3]\n\tencryptTo = a b\n\tencryptTo = c\n\tsingleWriter\n'
                     '\tkmsKeyId = " k "\n[S3 "Sub.Sec"]\n\tKey = v\n[b]\n\tt1 = yes\n'
                     '\tt2 = off\n\tt3 = 2k\n\tt4 = 0\n\tt5 =\n\tt6 = maybe\n\tt7 = -1\n'
                     '\tt8 = TRUE\n\tt8 = no\n\tt9 = maybe\n\tt9 = yes\n[n]\n')
        odd = ["3g", "2g", "2147483647", "2147483648", "-2147483648", "-2147483649",
               "2097152k", "2097151k", "99999999999999999999", '" true"', '"true "',
               '"\ttrue"', "\u0661", "0x10", "0x0", "010", "08", "0", "+7", "-0", "1m",
               "0X1f", "on", "Off"]
        config.write("".join(f"\tv{n} = {value}\n" for n, value in enumerate(odd)))
    monkeypatch.chdir(repo)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    m.git_config_values.cache_clear()

    def git(*args):
        return subprocess.run(["git", "config", *args], capture_output=True, text=True)
    keys = ["s3.encryptTo", "s3.singleWriter", "s3.kmsKeyId", "s3.Sub.Sec.key",
            "S3.Sub.Sec.KEY", "s3.sub.sec.key", "s3.missing"] + \
        [f"b.t{n}" for n in range(1, 10)] + [f"n.v{n}" for n in range(len(odd))]
    for key in keys:
        got = git("--get", key)
        assert m.git_config(key) == (got.stdout[:-1] if got.returncode == 0 else None), key
        got = git("--get-all", key)
        assert m.git_config(key, every=True) == (
            got.stdout.split("\n")[:-1] if got.returncode == 0 else []), key
        got = git("--bool", "--get", key)
        assert m.git_config_bool(key) == (
            got.stdout == "true\n" if got.returncode == 0 else None), key
    assert m.encrypt_to() == ["a", "b", "c"]
    # The pins are read afresh: another command may have pinned a newer write since.
    git("s3-pin.s3://bucket/p.serial", "7")
    assert m.git_config("s3-pin.s3://bucket/p.serial") is None  # what was read before
    assert m.Pins(m.S3Url("s3://bucket/p")).serial == 7
    m.git_config_values.cache_clear()


def test_the_common_directory_is_found_from_git_dir_as_rev_parse_finds_it(
        helper_module, tmp_path, monkeypatch):
    m = helper_module
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", repo], check=True)
    subprocess.run(["git", "-C", repo, "commit", "-q", "--allow-empty", "-m", "x"],
                   check=True, env={**os.environ, "GIT_AUTHOR_NAME": "a",
                                    "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a",
                                    "GIT_COMMITTER_EMAIL": "a@b"})
    subprocess.run(["git", "-C", repo, "worktree", "add", "-q", tmp_path / "tree"],
                   check=True)
    for cwd, git_dir in ((repo, ".git"), (tmp_path / "tree", None),
                         (tmp_path / "tree", str(repo / ".git" / "worktrees" / "tree")),
                         (tmp_path / "tree", ".git")):  # a gitfile, as `git s3` may get
        monkeypatch.chdir(cwd)
        if git_dir:
            monkeypatch.setenv("GIT_DIR", git_dir)
        else:
            monkeypatch.delenv("GIT_DIR", raising=False)
        said = subprocess.run(["git", "rev-parse", "--git-common-dir"], capture_output=True,
                              text=True, check=True).stdout.strip()
        m.git_common_dir.cache_clear()
        assert m.git_common_dir() == os.path.abspath(said) == str(repo / ".git")
    monkeypatch.chdir(tmp_path)  # no repository: nothing to keep files in
    for git_dir in (None, str(tmp_path / "nonexistent")):
        if git_dir:
            monkeypatch.setenv("GIT_DIR", git_dir)
        else:
            monkeypatch.delenv("GIT_DIR")
        m.git_common_dir.cache_clear()
        assert m.git_common_dir() == "" and m.clone_path(m.S3Url("s3://bucket/p"), "x") == ""
    m.git_common_dir.cache_clear()
