"""Installing on today's systems: `make install` into a private virtual environment
(the system Python has no boto3 and refuses pip), pipx, and one line when the boto3
that runs us is too old. Each install is used through its installed names only."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from test_errors import fatal_line
from test_lfs import lfs_keys, lfs_repo, run_agent

SYSTEM = "/usr/bin:/bin"  # the distribution's python3, git, git-lfs, make
# Downloads are kept between tests and runs (each test has its own HOME).
PIP_CACHE = os.environ.get("PIP_CACHE_DIR") or os.path.expanduser("~/.cache/pip")
MINIMUM = re.search(r'^BOTO3_MINIMUM = "(.*)"', (ROOT / "git-remote-s3").read_text(),
                    re.M).group(1)


@pytest.fixture
def system_python():
    """The distribution's python3, as a new user has it: no boto3 (and, on Debian 12
    or Ubuntu 23.04+, no pip install into its site either)."""
    python = "/usr/bin/python3"
    if not os.access(python, os.X_OK):
        pytest.skip("no system python3 at /usr/bin/python3")
    if subprocess.run([python, "-c", "import boto3"], capture_output=True).returncode == 0:
        pytest.skip("the system python3 has boto3: it cannot stand for a new user's")
    return python


def round_trip(world, bin_dir):
    """Push (with LFS), clone through s3:// and s3+zip://, and git s3 info, with only
    `bin_dir` and the system's directories on PATH."""
    env = {"PATH": f"{bin_dir}:{SYSTEM}"}
    work = lfs_repo(world, files={"big.bin": os.urandom(50_000)}, install=False)
    world.run("lfs-s3-py", "install", cwd=work, env=env)
    world.git("push", "-q", "origin", "main", cwd=work, env=env)
    assert len(lfs_keys(world)) == 1
    copy = world.tmp / "copy"
    world.git("clone", "-q", world.url.replace("s3://", "s3+zip://"), copy, env=env)
    assert world.rev(copy, "HEAD") == world.rev(work, "HEAD")
    assert (copy / "big.bin").read_bytes() == (work / "big.bin").read_bytes()
    shown = world.git("s3", "info", "origin", cwd=work, env=env)
    assert "HEAD:       main" in shown.stdout and "LFS:        1 objects" in shown.stdout


@pytest.mark.early
def test_make_install_brings_its_own_boto3_where_the_system_python_has_none(lfs,
                                                                           system_python):
    world = lfs
    prefix = world.tmp / "prefix"
    make = {"PATH": SYSTEM, "PIP_CACHE_DIR": PIP_CACHE}
    refused = world.run(system_python, "-m", "pip", "install", "boto3", ok=None, env=make)
    if refused.returncode == 0:
        pytest.fail("pip installed into the system python3: test with one that refuses")
    world.run("make", "-C", ROOT, "install", f"PREFIX={prefix}", env=make, timeout=600)
    bin_dir = prefix / "bin"
    assert sorted(p.name for p in bin_dir.iterdir()) == sorted(
        ["git-remote-s3", "git-remote-s3+zip", "git-s3", "lfs-s3-py", "git-lfs-s3"])
    venv_python = prefix / "share" / "git-remote-s3" / "venv" / "bin" / "python3"
    assert (bin_dir / "git-s3").read_text().splitlines()[0] == f"#!{venv_python}"
    round_trip(world, bin_dir)

    again = world.run("make", "-C", ROOT, "install", f"PREFIX={prefix}", env=make,
                      timeout=600)  # upgrades in place
    assert again.returncode == 0 and (bin_dir / "git-remote-s3").exists()
    (bin_dir / "git-lfs-s3").unlink()  # another tool's, installed since (awslabs', say)
    (bin_dir / "git-lfs-s3").write_text("#!/bin/sh\n")
    world.run("make", "-C", ROOT, "uninstall", f"PREFIX={prefix}", env=make)
    assert [p.name for p in bin_dir.iterdir()] == ["git-lfs-s3"]  # only ours went
    assert not (prefix / "share" / "git-remote-s3").exists()


@pytest.mark.early
def test_pipx_installs_all_five_names_with_a_recent_boto3(lfs):
    world = lfs
    pipx = {"PIPX_HOME": str(world.tmp / "pipx"), "PIPX_BIN_DIR": str(world.tmp / "pipx-bin"),
            "PIPX_MAN_DIR": str(world.tmp / "pipx-man"), "PIP_CACHE_DIR": PIP_CACHE,
            "PATH": f"{os.path.dirname(sys.executable)}:{SYSTEM}"}
    world.run(sys.executable, "-m", "pipx", "install", "--python", sys.executable, ROOT,
              env=pipx, timeout=600)
    bin_dir = Path(pipx["PIPX_BIN_DIR"])
    assert sorted(p.name for p in bin_dir.iterdir()) == sorted(
        ["git-remote-s3", "git-remote-s3+zip", "git-s3", "lfs-s3-py", "git-lfs-s3"])
    round_trip(world, bin_dir)


def test_pyproject_asks_for_the_boto3_the_scripts_check_for():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^dependencies = \["boto3>=(.*)"\]', pyproject, re.M).group(1) == MINIMUM


@pytest.mark.early
def test_a_boto3_too_old_ends_every_script_in_one_line(lfs, system_python):
    world = lfs
    venv = world.tmp / "old"
    # Our pip installs into it where it can (pip 22.3 and newer): a venv's own pip
    # (ensurepip) costs 5 s of CPU.
    world.run(system_python, "-m", "venv", "--without-pip", venv)
    install = ["install", "--quiet", "--disable-pip-version-check", "boto3==1.26.*"]
    pip = {"PIP_CACHE_DIR": PIP_CACHE}
    ours = world.run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python3",
                     *install, env=pip, timeout=600, ok=None)
    if ours.returncode and "no such option: --python" in ours.stderr:
        world.run(system_python, "-m", "venv", venv)
        world.run(venv / "bin" / "pip", *install, env=pip, timeout=600)
    elif ours.returncode:
        pytest.fail(f"pip failed:\n{ours.stderr}")
    old = {"PATH": f"{venv / 'bin'}:{world.env['PATH']}"}  # its python3 runs our scripts
    botocore = world.run(venv / "bin" / "python3", "-c",
                         "import botocore; print(botocore.__version__)").stdout.strip()
    said = (f"fatal: botocore {botocore} (for {venv / 'bin' / 'python3'}) is too old: "
            f"git-remote-s3 needs boto3 {MINIMUM} or newer (conditional writes, "
            "AWS_ENDPOINT_URL_S3); install git-remote-s3 with 'make install' or 'pipx "
            "install' (README, Install), or run 'pip install -U boto3' in a virtual "
            "environment")
    work = lfs_repo(world, files={"big.bin": os.urandom(1000)})
    failed = [world.git("push", "origin", "main", cwd=work, env=old, ok=False),
              world.git("clone", world.url, world.tmp / "copy", env=old, ok=False),
              world.git_s3("info", world.url, env=old, ok=False)]
    for proc in failed:
        assert fatal_line(proc) == said, proc.stderr
        assert "Traceback" not in proc.stderr
    oid = subprocess.run(["git", "lfs", "ls-files", "-l"], cwd=work, capture_output=True,
                         text=True).stdout.split()[0]
    path = work / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    sent = run_agent(world, work, {"event": "init", "operation": "upload", "remote": "origin"},
                     {"event": "upload", "oid": oid, "size": path.stat().st_size,
                      "path": str(path)}, env=old)
    assert "fatal: " + sent[-1]["error"]["message"] == said
    assert world.keys() == []
    assert shutil.which("python3", path=old["PATH"]) == str(venv / "bin" / "python3")
