"""The tests' fork server (forkserver.py) runs a script as the script would run as its
own process: a script that reports what it sees says the same through a shim as when
it is started the way git starts ours (PATH finds a link to it), and the shim ends as
the script did."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import forkserver

PROBE = """#!/usr/bin/env python3
import json, os, signal, subprocess, sys, time
SHELLS = ("sh", "dash", "bash")  # as lfs-s3-py's: what its launcher() looks through
if os.environ.get("PROBE_KILL"):
    os.kill(os.getpid(), int(os.environ["PROBE_KILL"]))
if os.environ.get("PROBE_SLEEP"):
    if os.environ.get("PROBE_CHILD"):
        subprocess.Popen(["sleep", "60"])  # holds our stdout
    with open(os.environ["PROBE_SLEEP"], "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)
umask = os.umask(0)
print(json.dumps({
    "argv0": sys.argv[0], "argv": sys.argv[1:], "name": __name__, "cwd": os.getcwd(), "umask": umask,
    "ppid": os.getppid(), "env": dict(os.environ),
    "parent": int(open("/proc/self/stat").read().rpartition(")")[2].split()[1]),
    "stdin": sys.stdin.read(), "executable": sys.executable, "path0": sys.path[0],
    "streams": [(s.encoding, s.errors, s.line_buffering, s.mode, s.buffer.raw.name)
                for s in (sys.stdin, sys.stdout, sys.stderr)],
    "flags": [sys.flags.utf8_mode, sys.flags.ignore_environment],
    "ignored": [int(n) for n in signal.valid_signals() if n not in (9, 19)
                and signal.getsignal(n) == signal.SIG_IGN],
    "blocked": sorted(map(int, signal.pthread_sigmask(signal.SIG_BLOCK, []))),
    "terminal": os.path.exists("/proc/self/fd/0") and os.isatty(0),
    "timezone": time.tzname,
    "descriptors": sorted(int(fd) for fd in os.listdir("/proc/self/fd"))}))
sys.stderr.write("on stderr\\n")
sys.exit(int(os.environ.get("PROBE_EXIT", "0")))
"""


@pytest.fixture
def probe(tmp_path, fork_server):
    return probe_shim(tmp_path, fork_server)


def probe_shim(tmp_path, fork_server, siblings=(), name="probe", text=PROBE):
    """A shim for the probe (or `text`), and beside it (direct/<name>) a link to the
    script itself."""
    if not fork_server.process:
        pytest.skip(f"no fork server: {fork_server.off}")
    script = tmp_path / f"{name}-script"
    script.write_text(text)
    script.chmod(0o755)
    for directory in ("bin", "direct"):
        (tmp_path / directory).mkdir(exist_ok=True)
    (tmp_path / "direct" / name).symlink_to(script)
    forkserver.write_shim(tmp_path / "bin" / name, script, fork_server.address,
                          siblings=siblings)
    return tmp_path / "bin" / name


def direct(shim):
    return shim.parent.parent / "direct" / shim.name


def environment(**more):
    """As a World's commands have it: our python3 first on PATH, LANG=C."""
    return {"PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]),
            "LANG": "C", "TZ": "Asia/Tokyo", **more}


def on_path(program, **more):
    """environment() with `program`'s directory first on PATH."""
    env = environment(**more)
    return {**env, "PATH": f"{program.parent}{os.pathsep}{env['PATH']}"}


def run(program, cwd, env=None, input="", prelude="umask 022"):
    """The probe started by a shell (whose pid it must see as its parent's)."""
    command = f"{prelude}; echo $$; {program} one 'two words'; echo \"exit $?\""
    proc = subprocess.run(["sh", "-c", command], cwd=cwd, input=input, text=True,
                          capture_output=True, timeout=60, env=env or environment())
    shell, *report, status = proc.stdout.splitlines()
    return int(shell), json.loads(report[0]) if report else None, status, proc.stderr


def seen(program, cwd, env=None, **kwargs):
    """What the probe reports, and whether it ran in a process the shell started."""
    shell, report, status, stderr = run(program, cwd, env, **kwargs)
    assert report.pop("ppid") == shell
    return report, report.pop("parent") == shell, status, stderr


def test_a_script_sees_what_it_would_see_as_its_own_process(probe, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    kwargs = dict(input="in\rput\r\nmore\n", prelude="umask 027; trap '' HUP USR1")
    # started by name, as git starts ours: argv[0] is where PATH found it
    forked, own, status, stderr = seen("probe", work, on_path(probe, PROBE_EXIT="3"),
                                       **kwargs)
    assert not own and status == "exit 3" and stderr == "on stderr\n"
    real, own, status, stderr = seen("probe", work, on_path(direct(probe), PROBE_EXIT="3"),
                                     **kwargs)
    assert own and status == "exit 3" and stderr == "on stderr\n"
    assert (forked.pop("argv0"), real.pop("argv0")) == (str(probe), str(direct(probe)))
    assert {**forked, "env": None} == {**real, "env": None}
    assert forked["env"] == {**real["env"], "PATH": forked["env"]["PATH"]}
    assert real["umask"] == 0o027 and real["stdin"] == "in\rput\r\nmore\n"
    assert real["cwd"] == str(work) and real["name"] == "__main__"
    assert real["executable"] == os.path.join(os.path.dirname(sys.executable), "python3")
    assert real["descriptors"] == [0, 1, 2, 3]  # 3: listdir's own
    assert {signal.SIGHUP, signal.SIGUSR1} <= set(real["ignored"])
    assert real["timezone"][0] == "JST" and not real["terminal"]


def test_what_would_start_another_python_runs_the_script_itself(probe, tmp_path):
    """Another python3 first on PATH, PYTHON* variables or another locale would
    start the script in an interpreter unlike the server's: the shim execs it, and the
    script sees what it would if started directly."""
    for env in ({"PYTHONPATH": "/nonexistent"}, {"LANG": "C.UTF-8"},
                {"PATH": "/usr/bin:/bin"}):
        env = {**environment(), **env}
        execed, own, status, _ = seen(probe, tmp_path, env)
        assert own and status == "exit 0", env
        real = seen(direct(probe), tmp_path, env)[0]
        # exec'd by its own path (ForkServer: a link of the name it was started by)
        assert execed.pop("argv0") == str(tmp_path / "probe-script")
        assert {**execed, "argv0": real["argv0"]} == real, env
    assert not seen(probe, tmp_path)[1]


CLIENT = """#!/usr/bin/env python3
import json, os, botocore.config, botocore.session
session = botocore.session.Session()
if os.environ.get("PROBE_KEY"):
    session.set_credentials(os.environ["PROBE_KEY"], "its secret")
config = botocore.config.Config(connect_timeout=7, retries={"mode": "standard",
                                                           "total_max_attempts": 3})
clients = [session.create_client("s3", config=config) for _ in range(2)]
def seen(client):
    credentials = client._request_signer._credentials
    return {"key": credentials and [credentials.access_key, credentials.secret_key],
            "region": client.meta.region_name, "endpoint": client.meta.endpoint_url,
            "verify": client._endpoint.http_session._verify,
            "config": [client.meta.config.connect_timeout, client.meta.config.retries]}
print(json.dumps({"shared": [getattr(c, "_shared_by_fork_server", False) for c in clients],
                  "seen": [seen(c) for c in clients]}))
"""


def test_a_client_for_settings_seen_before_is_the_servers_and_only_for_those(
        tmp_path, fork_server):
    """A botocore client made with the settings of an earlier run is a copy of one
    the server made for them (once per run: a second is made anew); any other
    settings (variables, config files, a profile) get a client of their own, and
    every run sees what it would see without the server."""
    shim = probe_shim(tmp_path, fork_server, name="client", text=CLIENT)
    aws = tmp_path / "home" / ".aws"
    aws.mkdir(parents=True)
    base = environment(HOME=str(aws.parent), AWS_ACCESS_KEY_ID="one",
                       AWS_SECRET_ACCESS_KEY="secret", AWS_REGION="eu-west-1",
                       AWS_ENDPOINT_URL_S3="http://127.0.0.1:9")

    def shared(env):
        """Which clients were the server's; asserts the run saw what it would."""
        ran = [subprocess.run([program], capture_output=True, text=True, timeout=60,
                              env=env) for program in (shim, direct(shim))]
        assert [proc.stderr for proc in ran] == ["", ""], env
        forked, real = (json.loads(proc.stdout) for proc in ran)
        assert forked["seen"] == real["seen"] and not any(real["shared"]), env
        return forked["shared"]

    assert shared(base) == [False, False]  # new settings: the server makes a client
    assert shared(base) == [True, False]
    for change in ({"AWS_ACCESS_KEY_ID": "two"}, {"AWS_SECRET_ACCESS_KEY": "other"},
                   {"AWS_REGION": "us-west-2"}, {"AWS_ENDPOINT_URL_S3": "http://[::1]:9"},
                   {"REQUESTS_CA_BUNDLE": str(tmp_path / "ca.pem")}, {"PROBE_KEY": "mine"}):
        assert shared({**base, **change}) == [False, False], change
    assert shared(base) == [True, False]
    del base["AWS_REGION"]
    (aws / "config").write_text("[default]\nregion = ap-south-1\n")
    assert shared(base) == [False, False]
    assert shared(base) == [True, False]
    (aws / "config").write_text("[default]\nregion = sa-east-1\n")
    assert shared(base) == [False, False]
    assert shared({**base, "AWS_PROFILE": "default"}) == [False, False]
    assert shared({**base, "AWS_PROFILE": "default"}) == [False, False]  # never kept
    for region in ("eu-north-1", "af-south-1"):  # a config file named by a variable
        (tmp_path / region).mkdir()
        (tmp_path / region / "config").write_text(f"[default]\nregion = {region}\n")
    named = {**base, "AWS_CONFIG_FILE": "$CONFIGS/config"}
    assert shared({**named, "CONFIGS": str(tmp_path / "eu-north-1")}) == [False, False]
    assert shared({**named, "CONFIGS": str(tmp_path / "eu-north-1")}) == [True, False]
    assert shared({**named, "CONFIGS": str(tmp_path / "af-south-1")}) == [False, False]


def test_a_request_for_a_client_runs_no_credential_source_and_garbage_is_ignored(
        probe, tmp_path, fork_server):
    """The server makes clients only for credentials from the environment: a message
    from another process of ours (not a copy) cannot make it run a
    credential_process, nor can a malformed one stop it."""
    aws = tmp_path / "home" / ".aws"
    aws.mkdir(parents=True)
    ran = tmp_path / "ran"
    (aws / "config").write_text(f"[default]\ncredential_process = sh -c 'touch {ran}'\n")
    settings = json.dumps(["s3", {"config": None}, {"AWS_REGION": "us-east-1"}, [2, 2]])
    for message in (json.dumps({"settings": settings, "home": str(aws.parent)}), "{",
                    "[]", json.dumps({"settings": "[1]", "home": 3}), "\udcff"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as server:
            server.connect(fork_server.address)
            server.send(b"client\0" + message.encode(errors="surrogateescape"))
    assert not seen(probe, tmp_path)[1]  # served, by a copy
    assert not ran.exists()


LAUNCHER = """
import json, os, subprocess, sys, time
probe, mine, theirs = sys.argv[1:]
def seen(*command):
    out = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                         timeout=20).stdout
    report = json.loads(out)
    return report["parent"], report["descriptors"]
first = seen(probe)
open(mine, "w").close()
for _ in range(400):  # the other launcher has started an agent too: both are alive
    if os.path.exists(theirs):
        break
    time.sleep(0.05)
agents = [first, seen(probe), seen("sh", "-c", probe + "; true")]
print(json.dumps({"agents": agents, "launcher": os.getpid(),
                  "others": sorted({seen(probe, "install")[0] for _ in range(10)})}))
"""


def test_agents_of_one_launcher_share_a_parent_and_those_of_another_do_not(
        tmp_path, fork_server):
    """As lfs-s3-py's launcher() sees them: the agents one process starts, itself or
    through a shell, have one parent (its stand-in), while another process, alive at
    the same time, has another for its own. Its other commands are forked by the
    server (ten of them while stand-ins run). A stand-in ends after its launcher."""
    probe = probe_shim(tmp_path, fork_server, siblings=("",))
    ready = [tmp_path / "one-ready", tmp_path / "two-ready"]
    launchers = [subprocess.Popen([sys.executable, "-c", LAUNCHER, str(probe), str(mine),
                                   str(theirs)], stdout=subprocess.PIPE, text=True,
                                  env=environment())
                 for mine, theirs in (ready, ready[::-1])]
    try:
        one, two = (json.loads(launcher.communicate(timeout=60)[0]) for launcher in launchers)
    finally:
        for launcher in launchers:
            launcher.kill()
    for launched in (one, two):
        assert len({parent for parent, _ in launched["agents"]}) == 1, launched
        assert launched["agents"][0][0] != launched["launcher"]  # a copy: not exec'd
        assert all(fds == [0, 1, 2, 3] for _, fds in launched["agents"])
        assert launched["others"] == [fork_server.process.pid]
    stand_ins = [one["agents"][0][0], two["agents"][0][0]]
    assert stand_ins[0] != stand_ins[1] and fork_server.process.pid not in stand_ins
    # A stand-in for this process: it shares no pipe or socket with the server but
    # the standard descriptors, so neither reads what is the other's (a SIGCHLD).
    ours = json.loads(subprocess.run([probe], capture_output=True, timeout=60,
                                     env=environment()).stdout)["parent"]
    assert ours not in (os.getpid(), fork_server.process.pid, *stand_ins)
    assert not channels(ours) & channels(fork_server.process.pid)
    os.kill(ours, signal.SIGKILL)  # gone before its launcher: the next agent gets another
    for _ in range(100):
        if not os.path.exists(f"/proc/{ours}"):  # reaped
            break
        time.sleep(0.05)
    again = json.loads(subprocess.run([probe], capture_output=True, timeout=60,
                                      env=environment()).stdout)["parent"]
    assert again not in (ours, os.getpid(), fork_server.process.pid, *stand_ins)
    for _ in range(100):  # their launchers have ended: so do they, at once
        if not any(os.path.exists(f"/proc/{pid}") for pid in stand_ins):
            break
        time.sleep(0.05)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in stand_ins)


def channels(pid):
    """The pipes and sockets `pid` holds beyond its standard descriptors."""
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # closed meanwhile
            continue
        if int(fd) > 2 and target.startswith(("pipe:", "socket:")):
            held.add(target)
    return held


def test_a_script_that_does_not_compile_fails_as_it_would_and_the_server_serves_on(
        probe, tmp_path, fork_server):
    broken = tmp_path / "broken-script"
    broken.write_text("#!/usr/bin/env python3\nprint('never'\n")
    broken.chmod(0o755)
    (tmp_path / "direct" / "broken").symlink_to(broken)
    forkserver.write_shim(tmp_path / "bin" / "broken", broken, fork_server.address)
    shell, report, status, stderr = run(tmp_path / "bin" / "broken", tmp_path)
    _, _, direct_status, direct_stderr = run(tmp_path / "direct" / "broken", tmp_path)
    assert report is None and status == direct_status == "exit 1"
    assert "SyntaxError" in stderr and stderr.splitlines()[-1] == direct_stderr.splitlines()[-1]
    assert not seen(probe, tmp_path)[1]  # still forked: the server lives


ENDING = """#!/usr/bin/env python3
import atexit, os, sys, threading, time
with open(os.environ["PROBE_FORKED"], "w") as f:  # our real parent is not git's
    f.write(str(os.getppid() != int(open("/proc/self/stat").read().split(")")[1].split()[1])))
how = sys.argv[1]
print("buffered", end="")  # a pipe's stdout holds it until the end
atexit.register(lambda: print(" at exit", end=""))
if how == "thread":
    threading.Thread(target=lambda: (time.sleep(0.3), print(" thread", end=""))).start()
elif how == "closed":
    time.sleep(0.5)  # the reader is gone by then
elif how == "message":
    sys.exit("fatal: a message")
elif how == "number":
    sys.exit(259)
elif how == "local":  # what main() held is released before atexit, as Python does
    written = os.path.join(os.path.dirname(os.environ["PROBE_FORKED"]), "written")
    atexit.register(lambda: print(" " + open(written).read(), end=""))
    def main():
        out = open(written, "w")
        out.write("held")
        sys.exit(1)
    main()
elif how == "replaced":  # the stream it replaced is flushed all the same
    import io
    sys.stdout = io.StringIO()
"""


@pytest.mark.parametrize("how, expected", [
    ("end", (0, "buffered at exit", "")),
    ("thread", (0, "buffered thread at exit", "")),
    ("message", (1, "buffered at exit", "fatal: a message\n")),
    ("number", (3, "buffered at exit", "")),
    ("local", (1, "buffered held at exit", "")),
    ("replaced", (0, "buffered", "")),
    ("closed", (120, "", "Exception ignored in: <_io.TextIOWrapper name='<stdout>' "
                         "mode='w' encoding='utf-8'>\nBrokenPipeError: [Errno 32] Broken pipe\n"))])
def test_a_script_ends_as_it_would_with_threads_atexit_and_its_output(
        tmp_path, fork_server, how, expected):
    """A copy is not torn down at its end, but what shows of an ending does: the
    message of sys.exit, a thread still running, what main() held released before
    atexit, atexit, stdout flushed last (the replaced one too), 120 when it cannot be."""
    if not fork_server.process:
        pytest.skip(f"no fork server: {fork_server.off}")
    script = tmp_path / "ending-script"
    script.write_text(ENDING)
    script.chmod(0o755)
    forkserver.write_shim(tmp_path / "ending", script, fork_server.address)
    endings = []
    for program, forked in ((tmp_path / "ending", "True"), (script, "False")):
        command = f"{program} {how}; echo \"exit $?\" >&2"
        if how == "closed":
            command = f"{{ {command}; }} | true"
        env = environment(PROBE_FORKED=str(tmp_path / "forked"))
        proc = subprocess.run(["sh", "-c", command], text=True, capture_output=True,
                              timeout=60, env=env)
        assert (tmp_path / "forked").read_text() == forked
        *stderr, status = proc.stderr.splitlines(keepends=True)
        endings.append((int(status.split()[1]), proc.stdout, "".join(stderr)))
    assert endings == [expected, expected]


@pytest.mark.parametrize("number", [signal.SIGKILL, signal.SIGTERM])
def test_the_shim_ends_by_the_signal_that_ended_the_script(probe, tmp_path, number):
    _, report, status, _ = run(probe, tmp_path, environment(PROBE_KILL=str(int(number))))
    assert report is None and status == f"exit {128 + number}"


def sleeping(probe, tmp_path, **env):
    """The probe through its shim, in a session of its own as a test's commands are,
    once it sleeps; and the pid of the script."""
    started = tmp_path / "pid"
    shim = subprocess.Popen([probe], env=environment(PROBE_SLEEP=str(started), **env),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            start_new_session=True)
    for _ in range(500):
        if started.exists() and started.read_text():
            break
        time.sleep(0.01)
    return shim, int(started.read_text())


def gone(pid):
    for _ in range(500):
        if not os.path.exists(f"/proc/{pid}"):
            return True
        time.sleep(0.01)
    return False


def test_a_killed_shim_takes_its_script_with_it(probe, tmp_path):
    shim, script = sleeping(probe, tmp_path)
    try:
        assert script != shim.pid
        shim.kill()
        shim.wait(timeout=10)
        assert gone(script)
    finally:
        shim.kill()
        shim.communicate(timeout=10)


def test_a_signal_to_the_command_reaches_what_the_script_started(probe, tmp_path):
    """SIGTERM to the group of a command, as to a real one: the script and the
    process it started end, and the output closes."""
    shim, script = sleeping(probe, tmp_path, PROBE_CHILD="1")
    try:
        os.killpg(shim.pid, signal.SIGTERM)
        shim.communicate(timeout=20)
        assert shim.returncode == -signal.SIGTERM and gone(script)
    finally:
        shim.kill()
        shim.communicate(timeout=10)
