"""`make install` puts a working helper on PATH under both of git's names, the LFS
agent and git-s3."""

import os
import sys

from conftest import ROOT


def test_make_install_gives_git_a_working_helper(world):
    prefix = world.tmp / "prefix"
    world.run("make", "-C", ROOT, "install", f"PREFIX={prefix}")
    installed = prefix / "bin"
    assert os.access(installed / "git-remote-s3", os.X_OK)
    assert os.readlink(installed / "git-remote-s3+zip") == "git-remote-s3"

    # Only the installed copy on PATH (and a python3 with boto3).
    env = {"PATH": os.pathsep.join([str(installed), os.path.dirname(sys.executable),
                                    "/usr/local/bin", "/usr/bin", "/bin"])}
    work = world.repo()
    world.git("push", "-q", "origin", "main", cwd=work, env=env)
    zipped = world.url.replace("s3://", "s3+zip://")
    world.git("clone", "-q", zipped, world.tmp / "copy", env=env)
    assert world.rev(world.tmp / "copy", "HEAD") == world.rev(work, "HEAD")
    world.commit(world.tmp / "copy", "for CI")
    world.git("push", "-q", zipped, "main", cwd=world.tmp / "copy", env=env)
    assert "refs/heads/main/repo.zip" in world.keys()
    shown = world.git("s3", "info", "origin", cwd=work, env=env)
    assert "HEAD:       main" in shown.stdout
    assert os.access(installed / "lfs-s3-py", os.X_OK)
    assert os.readlink(installed / "git-lfs-s3") == "lfs-s3-py"  # awslabs' agent's name
