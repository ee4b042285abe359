"""The tests' fork server (forkserver.py) runs a script as the script would run as its
own process: a script that reports what it sees says the same through the server as
when its shim execs it, and the shim ends as the script did."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

PROBE = """#!/usr/bin/env python3
import json, os, signal, sys, time
if os.environ.get("PROBE_KILL"):
    os.kill(os.getpid(), int(os.environ["PROBE_KILL"]))
if os.environ.get("PROBE_SLEEP"):
    with open(os.environ["PROBE_SLEEP"], "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)
mask = os.umask(0)
print(json.dumps({
    "argv": sys.argv, "file": __file__, "name": __name__, "cwd": os.getcwd(),
    "umask": mask, "ppid": os.getppid(), "env": dict(os.environ),
    "parent": int(open("/proc/self/stat").read().rpartition(")")[2].split()[1]),
    "stdin": sys.stdin.read(), "executable": sys.executable,
    "streams": [(s.encoding, s.errors, s.line_buffering)
                for s in (sys.stdin, sys.stdout, sys.stderr)],
    "own_group": os.getpgrp() == os.getpid(),
    "descriptors": sorted(int(fd) for fd in os.listdir("/proc/self/fd"))}))
sys.stderr.write("on stderr\\n")
sys.exit(int(os.environ.get("PROBE_EXIT", "0")))
"""


@pytest.fixture
def probe(tmp_path, fork_server):
    if not fork_server.process:
        pytest.skip("GIT_TEST_S3_EXEC=1: no fork server")
    script = tmp_path / "probe-script"
    script.write_text(PROBE)
    script.chmod(0o755)
    shim = tmp_path / "bin" / "probe"
    shim.parent.mkdir()
    fork_server.shim(shim, script)
    return shim


def environment(**more):
    """As a World's commands have it: our python3 first on PATH, LANG=C."""
    return {"PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]),
            "LANG": "C", **more}


def run(shim, cwd, env=None, input="", umask="022"):
    """The probe started by a shell (whose pid it must see as its parent's)."""
    command = f"umask {umask}; echo $$; {shim} one 'two words'; echo \"exit $?\""
    proc = subprocess.run(["sh", "-c", command], cwd=cwd, input=input, text=True,
                          capture_output=True, timeout=60, env=environment(**(env or {})))
    shell, *report, status = proc.stdout.splitlines()
    return int(shell), json.loads(report[0]) if report else None, status, proc.stderr


def test_a_script_sees_what_it_would_see_as_its_own_process(probe, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    seen = {}
    for how in ("forked", "exec"):
        env = {"PROBE_EXIT": "3", "GIT_TEST_S3_EXEC": "1" if how == "exec" else "0"}
        shell, report, status, stderr = run(probe, work, env, input="in\nput\n",
                                            umask="027")
        assert status == "exit 3" and stderr == "on stderr\n", how
        assert report.pop("ppid") == shell, how
        assert (report.pop("parent") == shell) == (how == "exec")
        seen[how] = report
    forked, execed = seen["forked"], seen["exec"]
    assert forked["env"].pop("GIT_TEST_S3_EXEC") == "0"
    assert execed["env"].pop("GIT_TEST_S3_EXEC") == "1"
    assert forked["own_group"]  # so that the server can kill all it started
    # exec'd, the script knows itself by the path its shim execs
    assert execed.pop("argv")[0] == execed.pop("file") == str(tmp_path / "probe-script")
    assert forked.pop("argv") == [str(probe), "one", "two words"]
    assert forked.pop("file") == str(probe)
    del execed["own_group"], forked["own_group"]
    assert forked == execed
    assert forked["umask"] == 0o027 and forked["stdin"] == "in\nput\n"
    assert forked["cwd"] == str(work) and forked["name"] == "__main__"
    assert forked["executable"] == sys.executable
    assert forked["descriptors"] == [0, 1, 2, 3]  # 3: listdir's own


@pytest.mark.parametrize("env", [{"PYTHONPATH": "/nonexistent"}, {"LANG": "C.UTF-8"},
                                 {"PATH": "/usr/bin:/bin"}])
def test_what_would_start_another_python_runs_the_script_itself(probe, tmp_path, env):
    """Another python3 first on PATH, PYTHON* variables or another locale would
    start the script in an interpreter unlike the server's: the shim execs it."""
    env = {**environment(), **env}
    shell, report, status, _ = run(probe, tmp_path, env)
    assert status == "exit 0" and report["parent"] == shell
    shell, report, status, _ = run(probe, tmp_path)
    assert status == "exit 0" and report["parent"] != shell


@pytest.mark.parametrize("number", [signal.SIGKILL, signal.SIGTERM])
def test_the_shim_ends_by_the_signal_that_ended_the_script(probe, tmp_path, number):
    _, report, status, _ = run(probe, tmp_path, {"PROBE_KILL": str(int(number))})
    assert report is None and status == f"exit {128 + number}"


def test_a_killed_shim_takes_its_script_with_it(probe, tmp_path):
    started = tmp_path / "pid"
    shim = subprocess.Popen([probe], env=environment(PROBE_SLEEP=str(started)),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        for _ in range(500):
            if started.exists() and started.read_text():
                break
            time.sleep(0.01)
        script = int(started.read_text())
        assert script != shim.pid
        shim.kill()
        shim.wait(timeout=10)
        for _ in range(500):
            if not os.path.exists(f"/proc/{script}"):
                break
            time.sleep(0.01)
        assert not os.path.exists(f"/proc/{script}")
    finally:
        shim.kill()
        shim.wait(timeout=10)


def test_a_terminated_shim_passes_the_signal_on(probe, tmp_path):
    started = tmp_path / "pid"
    shim = subprocess.Popen([probe], env=environment(PROBE_SLEEP=str(started)),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        for _ in range(500):
            if started.exists() and started.read_text():
                break
            time.sleep(0.01)
        shim.terminate()
        assert shim.wait(timeout=10) == -signal.SIGTERM
    finally:
        shim.kill()
        shim.wait(timeout=10)
