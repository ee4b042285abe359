"""Our scripts for the tests, with botocore already imported: a fork server.

Every git command a test runs starts git-remote-s3, and `git s3` starts git-s3. Before
either does any work it spends about 0.35 s of CPU importing botocore, compiling itself
and making a client (botocore reads 3 MB of JSON for it): most of what the whole suite
cost. So the tests put a shim under each of those names on PATH (`shim()` writes it).
The shim hands its argv, environment, working directory, umask, parent's pid and
standard descriptors to this server, which forks a copy of itself (botocore imported
and its data read, the script compiled) and runs the real script in it as __main__,
from its first line; the shim waits and ends as the copy did: its exit status, or the
signal that killed it. A shim whose script would start in another interpreter (another
python3 on PATH, PYTHON* variables, another locale) execs it instead.

What the script sees is what it would see as the shim's own process: the same argv,
sys.executable, environment, directory, umask, descriptors and os.getppid(). Its pid is
its own, and it leads a process group of its own, which the server kills when the shim
dies (a test's timeout kills the shim's group). Signals the shim gets are passed on.

Not lfs-s3-py: its agents find each other by the process that launched them, which
here would be this server for all of them. GIT_TEST_S3_EXEC=1 makes a shim exec the
script itself, as does a server that does not answer.
"""

import builtins
import gc
import importlib
import io
import os
import re
import selectors
import signal
import socket
import stat
import struct
import sys
import types

SHIM = """#!{python} -SE
# Runs {script} in the tests' fork server (test/forkserver.py), or execs it.
import os, socket, sys
script = {script!r}
def run_here():
    os.execv(script, [script] + sys.argv[1:])
try:
    if os.environ.get("GIT_TEST_S3_EXEC") == "1":
        raise OSError
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.connect({address!r})
except OSError:
    run_here()
import signal
mask = os.umask(0o22)
os.umask(mask)
python = ""  # what "#!/usr/bin/env python3" would start
for entry in os.environ.get("PATH", os.defpath).split(os.pathsep):
    python = os.path.join(entry or ".", "python3")
    if os.access(python, os.X_OK) and not os.path.isdir(python):
        break
fields = [script, python, str(mask), str(os.getppid()), str(len(sys.argv))] + sys.argv
fields += [f"{{k}}={{v}}" for k, v in os.environ.items()]
request = "\\0".join(fields).encode("utf-8", "surrogateescape")
try:  # a closed standard descriptor, or a directory we may not open: run it here
    here = os.open(".", os.O_RDONLY)
    socket.send_fds(server, [request], [0, 1, 2, here])
except OSError:
    run_here()
os.close(here)
answer = server.recv(32)
if answer == b"exec":  # another python, or one told otherwise by PYTHON* or locale
    run_here()
pid = int(answer or 0)
def forward(number, frame):
    os.kill(pid, number)
for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
               signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(number, forward)
status = server.recv(32)
if not pid or not status:
    sys.stderr.write("fatal: the tests' fork server went away\\n")
    os._exit(125)
status = int(status)
if os.WIFSIGNALED(status):
    if os.WTERMSIG(status) != signal.SIGKILL:
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(status))
os._exit(os.waitstatus_to_exitcode(status) & 0xff)
"""


def shim(path, script, address):
    """Write an executable shim at `path` that runs `script` through the server."""
    with open(path, "w") as f:
        f.write(SHIM.format(python=sys.executable, script=str(script), address=address))
    os.chmod(path, 0o755)


def preload(scripts):
    """Import what the scripts import, and what botocore imports only when a client is
    made; and read botocore's data once (see share_loader)."""
    for script in scripts:
        with open(script) as f:
            for name in re.findall(r"^ *import ([\w.]+)$", f.read(), re.M):
                importlib.import_module(name)
    share_loader()
    import botocore.config
    import botocore.session
    config = botocore.config.Config(retries={"mode": "standard"})
    for service in ("s3", "sts"):  # sts: the remote's log names who wrote
        botocore.session.Session().create_client(
            service, region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
            aws_access_key_id="x", aws_secret_access_key="y", config=config)


def share_loader():
    """Every botocore session reads the S3 model, the endpoints and more (3 MB of
    JSON) and lists its 400 service directories, through a loader of its own that
    keeps what it read. Here the sessions of one data path share one loader: the
    server's, which has read them, and each copy has a copy of it. What a loader
    keeps depends only on those files, which do not change while the tests run."""
    import botocore.session
    create = botocore.session.create_loader
    made = {}

    def create_loader(search_path_string=None):
        if search_path_string not in made:
            made[search_path_string] = create(search_path_string)
        return made[search_path_string]
    botocore.session.create_loader = create_loader


class Server:
    def __init__(self, address):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(address)
        self.listener.listen(64)
        self.code = {}          # script -> (mtime, size, code object)
        self.children = {}      # pid -> the shim's connection
        self.selector = selectors.DefaultSelector()
        self.wakeup, self.wakeup_write = os.pipe()
        os.set_blocking(self.wakeup, False)
        os.set_blocking(self.wakeup_write, False)
        signal.set_wakeup_fd(self.wakeup_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wakeup, selectors.EVENT_READ, "reap")
        self.selector.register(sys.stdin, selectors.EVENT_READ, "stop")

    def serve(self):
        """Serve until the test worker that started us goes; in a copy made for a
        request, return that request."""
        while True:
            for key, _ in self.selector.select():
                if key.data == "accept":
                    request = self.accept()
                    if request:
                        return request
                elif key.data == "reap":
                    self.reap()
                elif key.data == "stop":
                    return None
                else:
                    self.shim_gone(key.fileobj, key.data)

    def accept(self):
        conn, _ = self.listener.accept()
        fds = []
        try:
            uid = struct.unpack("3i", conn.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[1]
            message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 4)
            if uid != os.getuid() or len(fds) != 4:  # only our own shims
                raise OSError("not a shim")
            request = self.parse(message)
            if not self.alike(request):
                conn.sendall(b"exec")
                raise OSError("not for us")
        except (OSError, ValueError):
            for fd in fds:
                os.close(fd)
            conn.close()
            return None
        pid = os.fork()
        if pid == 0:
            self.close(conn)
            return request, fds
        for fd in fds:
            os.close(fd)
        conn.sendall(str(pid).encode())
        self.children[pid] = conn
        self.selector.register(conn, selectors.EVENT_READ, pid)
        return None

    def parse(self, message):
        fields = message.decode("utf-8", "surrogateescape").split("\0")
        script, python, mask, ppid, count = fields[:5]
        argv = fields[5:5 + int(count)]
        env = dict(field.split("=", 1) for field in fields[5 + int(count):])
        return dict(script=script, python=python, umask=int(mask), ppid=int(ppid),
                    argv=argv, env=env, code=self.compiled(script, argv[0]))

    @staticmethod
    def alike(request):
        """Whether the script's own start would make the interpreter we are: the same
        python (the same binary, from the same directory: the same venv), and nothing
        in PYTHON* or the locale that changes how it starts."""
        python = request["python"]
        if os.path.dirname(python) != os.path.dirname(sys.executable) or \
                os.path.realpath(python) != os.path.realpath(sys.executable):
            return False
        names = {name for name in (*request["env"], *os.environ)
                 if name.startswith("PYTHON") or name in ("LANG", "LC_ALL", "LC_CTYPE")}
        return all(request["env"].get(name) == os.environ.get(name) for name in names)

    def compiled(self, script, name):
        info = os.stat(script)
        cached = self.code.get((script, name))
        if not cached or cached[:2] != (info.st_mtime_ns, info.st_size):
            with open(script, "rb") as f:
                cached = (info.st_mtime_ns, info.st_size,
                          compile(f.read(), name, "exec", dont_inherit=True))
            self.code[(script, name)] = cached
        return cached[2]

    def reap(self):
        try:
            while os.read(self.wakeup, 512):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            conn = self.children.pop(pid, None)
            if conn:
                self.selector.unregister(conn)
                try:
                    conn.sendall(str(status).encode())
                except OSError:
                    pass
                conn.close()

    def shim_gone(self, conn, pid):
        """The shim closed its end before its copy ended: it was killed. So is the
        copy, with everything it started."""
        if self.children.get(pid) is not conn:
            return  # reaped in the same round
        self.selector.unregister(conn)
        del self.children[pid]
        conn.close()
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


    def close(self, *conns):
        """In a copy: none of the server's descriptors stay open in the script."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        for each in (self.listener, *conns, *self.children.values()):
            each.close()
        os.close(self.wakeup)
        os.close(self.wakeup_write)


def become(request, fds):
    """In the copy: take the shim's place and run its script as __main__."""
    os.setpgid(0, 0)
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    os.fchdir(fds[3])
    for fd in fds:
        os.close(fd)
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["env"])
    ppid = request["ppid"]
    os.getppid = lambda: ppid  # the process that started the shim started "us"
    sys.argv = request["argv"]
    sys.executable = request["python"]
    sys.path[0] = os.path.dirname(os.path.realpath(request["script"]))
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)),
                                 encoding=sys.stdin.encoding, errors=sys.stdin.errors)
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
                                  encoding=sys.stdout.encoding, errors=sys.stdout.errors,
                                  line_buffering=os.isatty(1))
    sys.stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
                                  encoding=sys.stderr.encoding, errors=sys.stderr.errors,
                                  line_buffering=True)
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
    main = types.ModuleType("__main__")
    main.__file__ = sys.argv[0]
    main.__builtins__ = builtins
    main.__cached__ = main.__spec__ = main.__package__ = None
    sys.modules["__main__"] = main
    exec(request["code"], main.__dict__)


def run(address, scripts):
    preload(scripts)
    server = Server(address)
    gc.freeze()  # what every copy shares stays shared: the collector never writes it
    served = server.serve()
    if served:
        become(*served)


if __name__ == "__main__":
    directory = os.path.dirname(sys.argv[1])
    if os.stat(directory).st_uid != os.getuid() or \
            stat.S_IMODE(os.stat(directory).st_mode) & 0o077:
        sys.exit(f"forkserver: {directory} is not private to us")
    run(sys.argv[1], sys.argv[2:])
