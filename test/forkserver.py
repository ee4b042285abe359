"""Our scripts for the tests, with botocore already imported: a fork server.

Every git command a test runs starts git-remote-s3, and `git s3` starts git-s3. Before
either does any work it spends about 0.35 s of CPU importing botocore, compiling itself
and making a client (botocore reads 3 MB of JSON for it): most of what the whole suite
cost. So the tests put a shim under each of those names on PATH (shim.c, which
`write_shim()` compiles: a few thousand start a run, and a python one cost 13 ms of
CPU each; `ForkServer` starts this server and places the shims). The shim hands its argv,
environment, working directory, umask, parent's pid and standard descriptors to this
server, which forks a copy of itself (botocore imported and its data read, the script
compiled) and runs the real script in it as __main__, from its first line; the shim
waits and ends as the copy did: its exit status, or the signal that killed it. The copy
ends as Python would, less the tear-down of its modules (end()). A botocore client
the copy makes for settings an earlier copy had is a copy of one the server made for
them (SharedClients). A shim whose script
would start in another interpreter (another python3 on PATH, PYTHON* variables, another
locale) execs it instead.

What the script sees is what it would see as the shim's own process: the same argv,
sys.executable, environment, time zone, directory, umask, descriptors and streams,
ignored and blocked signals, and os.getppid() (test_forkserver.py compares them). Its
pid is its own, and it leads a session of its own (no terminal, as for a test's
commands), which the server kills when the shim dies (a test's timeout kills the
shim's group); signals the shim gets reach that session as a signal to the shim's
group would. What stays the server's: resource limits, and the seed of str hashes,
which is one per worker rather than one per run. And what only a tear-down does is not
done: what the script's globals still hold is never finalized (a file left open is not
flushed, no __del__ runs, a suspended generator's finally does not); ours hold nothing
of the kind, and atexit and weakref.finalize do run.

lfs-s3-py's agents know their siblings by the process that launched them (its
launcher(): the parent, or the parent's parent when that is one of its SHELLS), which
for a copy is whoever forked it. So an agent's copy is forked by a stand-in for its
launcher: a copy of this server made for the first agent a launcher starts, which
serves that launcher's agents only and ends once the launcher has ended and its copies
have. The agents of one git-lfs share a parent, those of two never do, as without the
server. What differs: /proc names the stand-in as an agent's parent (os.getppid() the
shim's); the socket they meet at is named by the stand-in's pid rather than git-lfs's;
an agent whose git-lfs has ended keeps the stand-in as its launcher, where its own
process would be reparented; and SIGSTOP, which a shim cannot pass on, stops the shim
only. The tests that rely on these run the agent as its own process. An agent the
server cannot hand over (a stand-in that died, a /proc it cannot read) execs, and works
alone, as an agent does whose siblings cannot be reached.

GIT_TEST_S3_EXEC=1 makes every shim exec its script, as does a server that does not
answer or cannot serve a request (a script that does not compile). Without a C
compiler there is no server: the names link to the scripts themselves.
"""

import ast
import atexit
import builtins
import errno
import gc
import hashlib
import importlib
import importlib.machinery
import json
import os
import re
import selectors
import shlex
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
import warnings
from pathlib import Path

SHIM_SOURCE = Path(__file__).with_name("shim.c")


def write_shim(path, script, address, names=None, siblings=()):
    """Compile a shim (shim.c) at `path` that runs `script` through the server.
    `names`: a directory of links to the script under the names it is started by, for
    the shim to exec it by the same name (lfs-s3-py is git-lfs-s3 too). `siblings`: the
    first arguments ("" for none) that start it as an agent, whose copy a stand-in
    for its launcher forks."""
    defines = {"SCRIPT": c_string(script), "NAMES": c_string(names) if names else "NULL",
               "SIBLINGS": "".join(c_string(each) + "," for each in siblings),
               "ADDRESS": c_string(address)}
    proc = subprocess.run([*compiler(), "-O2", "-o", str(path), str(SHIM_SOURCE),
                           *(f"-D{name}={value}" for name, value in defines.items())],
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"the shim did not compile:\n{proc.stderr}")


def compiler():
    """The command that compiles the shims ($CC, else cc), or None."""
    command = shlex.split(os.environ.get("CC") or "cc")
    return command if command and shutil.which(command[0]) else None


def c_string(text):
    """`text` (a str or path) as a C string literal."""
    raw = os.fsencode(text)
    return '"' + "".join(chr(b) if 32 <= b < 127 and chr(b) not in '"\\?' else f"\\{b:03o}"
                         for b in raw) + '"'


class ForkServer:
    """This server for one test worker, for the scripts in `root`: started with the
    environment a World gives its commands (LANG=C: the same stdio encoding), stopped
    when we close its stdin. GIT_TEST_S3_EXEC=1 in pytest's environment turns it off,
    as does a machine without a C compiler for the shims (under CI=true, an error):
    `off` says why."""

    def __init__(self, root):
        self.root = root

    def __enter__(self):
        self.directory = tempfile.mkdtemp(prefix="git-remote-s3-forks-")
        self.address = os.path.join(self.directory, "socket")
        self.process = self.off = None
        if os.environ.get("GIT_TEST_S3_EXEC") == "1":
            self.off = "GIT_TEST_S3_EXEC=1"
            return self
        if not compiler():
            self.off = "no C compiler (cc, or $CC) for its shims"
            if os.environ.get("CI") == "true":  # CI's time depends on it
                raise RuntimeError(f"no fork server: {self.off}")
            warnings.warn(f"no fork server, so the tests run slower: {self.off}")
            return self
        env = {"LANG": "C", "PATH": os.environ["PATH"], "HOME": self.directory}
        self.process = subprocess.Popen(
            [sys.executable, __file__, self.address,
             *(str(self.root / name) for name in ("git-remote-s3", "git-s3", "lfs-s3-py"))],
            stdin=subprocess.PIPE, env=env)
        for _ in range(300):  # it imports botocore first: a second or so
            if os.path.exists(self.address) or self.process.poll() is not None:
                break
            time.sleep(0.02)
        return self

    def name(self, path, script, siblings=()):
        """A link at `path` to the shim for `script` (write_shim), or to the script
        itself without a server: every name of one script leads to one file, as
        without shims."""
        if not self.process:
            return path.symlink_to(script)
        shim = Path(self.directory) / "shims" / script.name
        names = Path(self.directory) / "names"  # for a shim that execs the script
        if not shim.exists():
            shim.parent.mkdir(exist_ok=True)
            write_shim(shim, script, self.address, names, siblings)
        names.mkdir(exist_ok=True)
        (names / path.name).symlink_to(script)
        path.symlink_to(shim)

    def __exit__(self, *exc):
        died = self.process and self.process.poll()
        if self.process:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.directory, ignore_errors=True)
        if died is not None:  # its shims exec'd since: slower, but not a quiet change
            raise RuntimeError(f"the fork server died during the tests ({died})")


def preload(scripts):
    """Import what the scripts import, and what botocore imports only when a client is
    made; read botocore's data once (share_loader) and keep what it works out about
    its event handlers (share_hooks), a client's rule tree and class
    (share_client_parts) and dataclasses' code (share_dataclass_code). Then run each
    script's body once, not as __main__: what it leaves in the caches a copy shares
    (re's compiled patterns, a module imported on first use) saves every copy the work;
    a copy still runs its script from the first line."""
    for script in scripts:
        with open(script) as f:
            for name in re.findall(r"^ *import ([\w.]+)$", f.read(), re.M):
                importlib.import_module(name)
    share_loader()
    share_hooks()
    share_client_parts()
    share_dataclass_code()
    importlib.import_module("encodings.idna")  # the first connection encodes the host
    import botocore.config
    import botocore.session
    config = botocore.config.Config(retries={"mode": "standard"})
    for service in ("s3", "sts"):  # sts: the remote's log names who wrote
        botocore.session.Session().create_client(
            service, region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
            aws_access_key_id="x", aws_secret_access_key="y", config=config)
    for script in scripts:
        try:
            with open(script, "rb") as f:
                exec(compile(f.read(), script, "exec", dont_inherit=True),
                     {"__name__": "forkserver-preload", "__builtins__": builtins})
        except BaseException:  # its copies will show it, as its own start would
            pass


def share_hooks():
    """Each botocore session registers ~120 event handlers, and each client copies
    them: botocore looks at every handler's signature (inspect) and rewrites every
    event name by its aliases, for every session anew. Both answers depend only on the
    handler and on the name, so here they are kept, across sessions and into the
    copies: a client takes about 6 ms rather than 13 once botocore's data is read."""
    import botocore.hooks
    inspected = botocore.hooks.accepts_kwargs
    known = {}

    def accepts_kwargs(func):
        # A bound method by its function: the same signature, and no client kept alive
        key = getattr(func, "__func__", func)
        try:
            return known[key]
        except KeyError:
            known[key] = answer = inspected(func)
            return answer
        except TypeError:  # unhashable: asked anew, as botocore would
            return inspected(func)
    botocore.hooks.accepts_kwargs = accepts_kwargs

    aliases = dict(botocore.hooks.EVENT_ALIASES)
    aliased = {}  # event name -> its name after these aliases
    init = botocore.hooks.EventAliaser.__init__

    def __init__(self, event_emitter, event_aliases=None):
        init(self, event_emitter, event_aliases)
        if self._event_aliases == aliases:
            self._alias_name_cache = aliased
    botocore.hooks.EventAliaser.__init__ = __init__


def share_client_parts():
    """Two parts of every client depend only on what botocore read (the shared
    loader's data, the same objects for every session): the tree of rules it parses
    from the endpoint rule set (which answers the same for the same parameters), and
    the client class with a method per operation of the model. Here each is made once
    per rule set and model. The class is what every session of one botocore would make
    only while no session has handlers of its own for creating-client-class: botocore's
    are the same for all, and our scripts register theirs on a client (its
    meta.events), never on a session; boto3's Session would add some."""
    import botocore.client
    import botocore.regions
    providers, classes = {}, {}
    provider = botocore.regions.EndpointProvider

    def endpoint_provider(**kwargs):
        key = tuple((name, id(value)) for name, value in sorted(kwargs.items()))
        if key not in providers:  # kept with what it was made of: ids stay theirs
            providers[key] = (kwargs, provider(**kwargs))
        return providers[key][1]
    botocore.regions.EndpointProvider = endpoint_provider

    create_class = botocore.client.ClientCreator._create_client_class

    def _create_client_class(self, service_name, service_model):
        key = (service_name, id(service_model._service_description))
        if key not in classes:
            classes[key] = (service_model._service_description,
                            create_class(self, service_name, service_model))
        return classes[key][1]
    botocore.client.ClientCreator._create_client_class = _create_client_class


def share_dataclass_code():
    """dataclasses writes each class's __init__, __repr__, __eq__ as source text and
    compiles it: 4.5 of the 7 ms a copy spends in git-remote-s3's body. The same text
    compiles to the same code, so each text is compiled once (the server's run of the
    bodies compiles them all) and executed as dataclasses would the text."""
    import dataclasses
    compiled = {}

    def exec_(source, globals=None, locals=None):
        if isinstance(source, str):
            if source not in compiled:
                compiled[source] = compile(source, "<string>", "exec", dont_inherit=True)
            source = compiled[source]
        return exec(source, globals, locals)
    dataclasses.exec = exec_  # its name for the builtin, in its own module


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


class SharedClients:
    """A client costs a copy about 12 ms of CPU and 2,000 page faults, and most copies
    make one for settings the copies before them had. So the first copy that makes
    one for new settings asks the server for it (ask()), which makes one (make()), and
    every copy forked since takes its own copy of that, once.

    The settings are all a client is made of: the service and arguments, every
    variable but those botocore never reads (client_variables), and what is in the
    config and credentials files it would read. Only for a session with nothing of
    its own (a profile, variables, credentials or a default client config set on it)
    and credentials from the environment: so no other source of credentials (a
    credential_process, SSO, a role) is asked, here or for a copy. What a script does
    to its client (handlers on its meta.events) stays in its copy."""

    KEPT = 32  # clients, the newest

    def __init__(self):
        import botocore.session
        self.made = {}      # settings -> a client made here for them
        self.asked = set()  # settings a copy asked for: made once, or found unfit once
        self.ask_at = None  # in a copy: the server's address
        self.create = botocore.session.Session.create_client
        shared = self

        def create_client(self, service_name, *args, **kwargs):
            settings = shared.settings(self, service_name, args, kwargs)
            client = shared.made.pop(settings, None) if settings else None
            if client is None:
                client = shared.create(self, service_name, *args, **kwargs)
                if settings and settings not in shared.asked and shared.ask_at:
                    shared.ask(settings)
            return client
        botocore.session.Session.create_client = create_client

    @staticmethod
    def settings(session, service_name, args, kwargs):
        """What a client of `session` made with these arguments is made of, as JSON
        text; None where the server makes none."""
        env = client_variables(os.environ)
        if args or session._session_instance_vars or session._credentials or \
                session._client_config or not fit_for_sharing(env):
            return None
        files = []
        for name in ("config_file", "credentials_file"):  # where botocore reads them
            path = os.path.expanduser(os.path.expandvars(session.get_config_variable(name)))
            try:
                if not os.path.isfile(path):  # botocore reads none other (a fifo)
                    raise FileNotFoundError(errno.ENOENT, path)
                with open(path, "rb") as f:
                    files.append(hashlib.sha256(f.read()).hexdigest())
            except OSError as exc:
                files.append(exc.errno)
        config = kwargs.get("config")
        try:
            return json.dumps([service_name, {**kwargs, "config": config and
                                              config._user_provided_options}, env, files],
                              sort_keys=True)
        except (TypeError, ValueError):  # an argument JSON does not hold
            return None

    def ask(self, settings):
        """In a copy: ask the server for a client for `settings`, and go on at once."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as server:
                server.setblocking(False)
                server.connect(self.ask_at)
                server.send(b"client\0" + json.dumps(
                    {"settings": settings, "home": os.environ.get("HOME")}).encode())
        except OSError:
            pass  # busy or gone: a later copy asks again

    def make(self, message):
        """Make a client for the settings a copy asked for, in the environment it had
        (ask()'s message)."""
        import botocore.config
        import botocore.session
        ours = dict(os.environ)
        try:
            asked = json.loads(message)
            if asked["settings"] in self.asked:
                return
            self.asked.add(asked["settings"])
            service_name, kwargs, env, _ = json.loads(asked["settings"])
            if not fit_for_sharing(env):  # a message not from a copy: nothing is asked
                return
            for name in client_variables(os.environ):
                del os.environ[name]
            os.environ.update(env, HOME=asked["home"] or ours["HOME"])
            session = botocore.session.Session()
            if kwargs["config"] is not None:
                kwargs["config"] = botocore.config.Config(**kwargs["config"])
            # kept under what it is made of: the files may have changed since
            settings = self.settings(session, service_name, (), kwargs)
            if settings is None:
                return
            client = self.create(session, service_name, **kwargs)
            credentials = session.get_credentials()
        except Exception:  # what the server cannot make a client of, the copy can
            return
        finally:
            os.environ.clear()
            os.environ.update(ours)
        if credentials and credentials.method == "env":
            client._shared_by_fork_server = True  # for test_forkserver.py
            self.made[settings] = client
            while len(self.made) > self.KEPT:
                del self.made[next(iter(self.made))]


def client_variables(env):
    """The variables of `env` that may bear on a client: all but git's (GIT_*, ours
    among them), HOME (what botocore reads under it is in the settings by content)
    and those of shells and gpg."""
    return {name: value for name, value in env.items() if not name.startswith("GIT_")
            and name not in ("HOME", "GNUPGHOME", "PWD", "OLDPWD", "SHLVL", "_")}


def fit_for_sharing(env):
    """Credentials from the environment, no profile: nothing else is asked for them."""
    return bool(env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY")) and \
        "AWS_PROFILE" not in env


class Server:
    def __init__(self, address):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(address)
        self.address = address
        self.clients = SharedClients()
        self.listener.listen(64)
        self.code = {}          # script -> (mtime, size, code object)
        self.children = {}      # pid -> the shim's connection
        self.stand_ins = {}     # launcher's pid -> (its pidfd, our end of the
                                #                   stand-in's socket, the stand-in's pid)
        self.handed = None      # in a stand-in: the server's end, while it has one
        self.selector = selectors.DefaultSelector()
        self.wakeup, self.wakeup_write = wakeup_pipe()
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wakeup, selectors.EVENT_READ, "reap")
        self.selector.register(sys.stdin, selectors.EVENT_READ, "stop")

    def serve(self):
        """Serve until the test worker that started us goes (a stand-in: until its
        launcher and copies have); in a copy made for a request, return that request."""
        while self.handed is not False or self.children:
            for key, _ in self.selector.select():
                if key.data == "accept":
                    served = self.accept()
                elif key.data == "handed":
                    served = self.take()
                elif key.data == "reap":
                    served = self.reap()
                elif key.data == "stop":
                    return None
                elif isinstance(key.data, tuple):
                    served = self.forget(key.data[1])
                else:
                    served = self.shim_gone(key.fileobj, key.data)
                if served == "stand-in":
                    break  # a new selector: what was selected is the server's
                if served:
                    return served
        return None

    def accept(self):
        conn, _ = self.listener.accept()
        conn.settimeout(2)  # a shim sends at once: a stalled one holds up no other
        fds = []
        try:
            pid, uid, _ = struct.unpack("3i", conn.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
            message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 4)
            if uid == os.getuid() and not fds and message.startswith(b"client\0"):
                conn.close()  # a copy asking for a client: it does not wait
                return self.clients.make(message[len(b"client\0"):])
            if uid != os.getuid() or len(fds) != 4:  # only our own shims
                raise OSError("not a shim")
            request = self.parse(message)
            if not self.alike(request):
                raise OSError("not for us")
            if request["agent"]:
                launcher = launcher_of(pid, shells(request["script"]))
                return self.hand_over(launcher, conn, fds, message)
            pid = os.fork()
        except Exception:  # whatever it is, the script's own start shows it
            return refuse(conn, fds)
        return self.started(pid, conn, fds, request)

    def take(self):
        """In a stand-in: the next request the server handed over, forked."""
        message, fds, _, _ = socket.recv_fds(self.handed, 1 << 20, 5)
        if not fds:  # the launcher has ended: no more will come
            self.selector.unregister(self.handed)
            self.handed.close()
            self.handed = False
            return None
        conn = socket.socket(fileno=fds[0])
        conn.settimeout(2)
        try:
            request = self.parse(message)
            pid = os.fork()
        except Exception:
            return refuse(conn, fds[1:])
        return self.started(pid, conn, fds[1:], request)

    def started(self, pid, conn, fds, request):
        """After the fork for `request`: in the copy, the request to run; here,
        the copy is told to the shim and watched."""
        if pid == 0:
            self.close(conn)
            self.clients.ask_at = self.address
            return request, fds
        for fd in fds:
            os.close(fd)
        try:
            conn.sendall(str(pid).encode())
        except OSError:  # the shim is gone already
            conn.close()
            kill(pid)
            return None
        self.children[pid] = conn
        self.selector.register(conn, selectors.EVENT_READ, pid)
        return None

    def hand_over(self, launcher, conn, fds, message):
        """Hand an agent's request to the stand-in for its launcher, made first if
        there is none yet: "stand-in" in the one just made, which takes it from there."""
        if launcher not in self.stand_ins:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            watch = None
            try:
                watch = os.pidfd_open(launcher)  # readable once the launcher has ended
                pid = os.fork()
            except OSError:
                ours.close()
                theirs.close()
                if watch is not None:
                    os.close(watch)
                raise
            if pid == 0:
                try:
                    os.close(watch)
                    ours.close()
                    release(conn, fds)
                    return self.stand_in(theirs)
                except BaseException:  # the server finds it gone and makes another
                    os._exit(1)
            theirs.close()
            self.stand_ins[launcher] = (watch, ours, pid)
            self.selector.register(watch, selectors.EVENT_READ, ("launcher", launcher))
        try:
            socket.send_fds(self.stand_ins[launcher][1], [message], [conn.fileno(), *fds])
        except OSError:
            self.forget(launcher)  # it died: the next agent gets another
            raise
        return release(conn, fds)

    def stand_in(self, handed):
        """Become the stand-in for a launcher: fork the copies of the requests the
        server hands over on `handed`, and nothing else."""
        self.selector.close()
        for each in (self.listener, *self.children.values()):
            each.close()
        for launcher in list(self.stand_ins):
            self.forget(launcher, quietly=True)
        self.children, self.handed = {}, handed
        shared = (self.wakeup, self.wakeup_write)  # one would read the other's SIGCHLD
        self.wakeup, self.wakeup_write = wakeup_pipe()
        for fd in shared:
            os.close(fd)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.wakeup, selectors.EVENT_READ, "reap")
        self.selector.register(handed, selectors.EVENT_READ, "handed")
        return "stand-in"

    def forget(self, launcher, quietly=False):
        """The launcher has ended, or its stand-in has: that stand-in gets no more (it
        ends with its copies), and the launcher's next agent gets another."""
        watch, ours, _ = self.stand_ins.pop(launcher)
        if not quietly:
            self.selector.unregister(watch)
        os.close(watch)
        ours.close()

    def parse(self, message):
        fields = message.decode("utf-8", "surrogateescape").split("\0")
        script, python, umask, ppid, ignored, mask, agent, count = fields[:8]
        argv = fields[8:8 + int(count)]
        env = as_python_starts(dict(field.split("=", 1) for field in fields[8 + int(count):]))
        return dict(script=script, python=python, umask=int(umask), ppid=int(ppid),
                    ignored=[int(n) for n in ignored.split()],
                    mask=[int(n) for n in mask.split()], agent=agent == "1", argv=argv,
                    env=env, code=self.compiled(script))

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

    def compiled(self, script):
        """The script's code, compiled once (again when it changes). Named by its own
        path, so that a traceback shows its lines."""
        info = os.stat(script)
        cached = self.code.get(script)
        if not cached or cached[:2] != (info.st_mtime_ns, info.st_size):
            with open(script, "rb") as f:
                cached = (info.st_mtime_ns, info.st_size,
                          compile(f.read(), script, "exec", dont_inherit=True))
            self.code[script] = cached
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
            for launcher, (_, _, stand_in) in list(self.stand_ins.items()):
                if stand_in == pid:  # ended before its launcher did: killed
                    self.forget(launcher)

    def shim_gone(self, conn, pid):
        """The shim closed its end before its copy ended: it was killed. So is the
        copy, with everything it started."""
        if self.children.get(pid) is not conn:
            return  # reaped in the same round
        self.selector.unregister(conn)
        del self.children[pid]
        conn.close()
        kill(pid)

    def close(self, *conns):
        """In a copy: none of the server's descriptors stay open in the script."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        for each in (self.listener, self.handed, *conns, *self.children.values()):
            if each:
                each.close()
        for watch, ours, _ in self.stand_ins.values():
            os.close(watch)
            ours.close()
        os.close(self.wakeup)
        os.close(self.wakeup_write)


def as_python_starts(env):
    """`env` as a script's own python3 has it from its start: under the C locale (or
    POSIX) it sets LC_CTYPE=C.UTF-8 (PEP 538), unless LC_ALL or PYTHONCOERCECLOCALE=0
    says otherwise. The shim, not a python, has not."""
    ctype = env.get("LC_ALL") or env.get("LC_CTYPE") or env.get("LANG") or "C"
    if ctype in ("C", "POSIX") and not env.get("LC_ALL") and \
            env.get("PYTHONCOERCECLOCALE") != "0":
        return {**env, "LC_CTYPE": "C.UTF-8"}
    return env


def wakeup_pipe():
    """A pipe a SIGCHLD writes to (the signal handler does nothing but wake select)."""
    wakeup, write = os.pipe()
    os.set_blocking(wakeup, False)
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write)
    return wakeup, write


def refuse(conn, fds):
    """Tell the shim to exec its script."""
    try:
        conn.sendall(b"exec")
    except OSError:
        pass
    return release(conn, fds)


def release(conn, fds):
    """Close a shim's connection and the descriptors it sent: no longer ours."""
    for fd in fds:
        os.close(fd)
    conn.close()


def launcher_of(pid, shells):
    """The process that started `pid` as lfs-s3-py's launcher() tells it: the parent,
    or the parent's parent when the parent is one of its `shells` (git-lfs's sh -c)."""
    parent = int(read(f"/proc/{pid}/stat").rpartition(")")[2].split()[1])
    if read(f"/proc/{parent}/comm").strip() not in shells:
        return parent
    return int(read(f"/proc/{parent}/stat").rpartition(")")[2].split()[1])


def shells(script):
    """The shells the agent's launcher() looks through: its script's SHELLS."""
    found = re.search(r"^SHELLS = (\([^)]*\))", read(script), re.M)
    return ast.literal_eval(found.group(1))


def read(path):
    with open(path) as f:
        return f.read()


def kill(pid):
    """A copy and all it started; just the copy while it is not yet a session of its
    own (it has started nothing then)."""
    for each in (os.killpg, os.kill):
        try:
            return each(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def become(request, fds):
    """In the copy: take the shim's place and run its script as __main__."""
    os.setsid()  # no terminal, as for a test's commands; a group the server can kill
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    os.fchdir(fds[3])
    for fd in fds:
        os.close(fd)
    os.umask(request["umask"])
    for number in request["ignored"]:
        signal.signal(number, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, request["mask"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    ppid = request["ppid"]
    os.getppid = lambda: ppid  # the process that started the shim started "us"
    sys.argv = request["argv"]
    sys.executable = request["python"]
    sys.path[0] = os.path.dirname(os.path.realpath(request["script"]))
    streams = []
    for fd, mode, old, name, lines in ((0, "r", sys.stdin, "<stdin>", False),
                                       (1, "w", sys.stdout, "<stdout>", os.isatty(1)),
                                       (2, "w", sys.stderr, "<stderr>", True)):
        stream = open(fd, mode, encoding=old.encoding, errors=old.errors, newline="\n",
                      closefd=False)  # as python makes them
        stream.reconfigure(line_buffering=lines)
        stream.buffer.raw.name = name
        streams.append(stream)
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
    main = types.ModuleType("__main__")
    main.__file__ = sys.argv[0]
    main.__builtins__ = builtins
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", request["script"])
    main.__cached__ = main.__spec__ = main.__package__ = None
    sys.modules["__main__"] = main
    code = None
    try:
        exec(request["code"], main.__dict__)
    except SystemExit as exc:
        code = exc.code
    end(code)  # out of the except: the SystemExit and the frames it holds are gone


def end(code):
    """End as Python ends a script that exits with `code` (sys.exit's argument), but
    without tearing its modules down: in a copy that is ~20 ms and a copy of most pages
    it shares with the server. What shows of an ending is done as Python does it, in its
    order: the message of a code that is no number, waiting for the threads, atexit,
    flushing stdout and stderr (120 when stdout cannot take what is left). Another
    exception than SystemExit ends the copy the usual way, with a full tear-down."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code if -2**63 <= code < 2**63 else -1  # a C long, or Python's -1
    else:
        status = 1
        try:
            text = str(code)
        except Exception:
            text = ""
        if sys.stderr is None:
            os.write(2, f"{text}\n".encode(errors="replace"))
        else:
            sys.stderr.write(f"{text}\n")
    try:
        threading._shutdown()
    except BaseException as exc:  # ^C while waiting: Python reports it and goes on
        ignored(threading, exc, exc.__traceback__.tb_next)
    try:
        atexit._run_exitfuncs()
    except BaseException:  # 3.9 raises again what a callback raised; it was reported
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and not getattr(stream, "closed", False):
                stream.flush()
        except Exception as exc:
            status = 120
            if stream is sys.stdout:  # reported as "ignored"; stderr's, silently
                ignored(stream, exc, exc.__traceback__.tb_next)
    for stream in (sys.__stdout__, sys.__stderr__):  # replaced: tear-down flushes them
        if stream not in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
    os._exit(status & 0xFF)


def ignored(where, exc, frames):
    """Report an exception as Python's sys.unraisablehook does."""
    try:
        sys.stderr.write(f"Exception ignored in: {where!r}\n" + "".join(
            traceback.format_exception(type(exc), exc, frames)))
    except Exception:
        pass


def run(address, scripts):
    preload(scripts)
    server = Server(address)
    gc.freeze()  # what every copy shares stays shared: the collector never writes it
    served = server.serve()
    if served:
        become(*served)
    os._exit(0)  # the server or a stand-in: nothing of ours to tear down


if __name__ == "__main__":
    directory = os.path.dirname(sys.argv[1])
    if os.stat(directory).st_uid != os.getuid() or \
            stat.S_IMODE(os.stat(directory).st_mode) & 0o077:
        sys.exit(f"forkserver: {directory} is not private to us")
    run(sys.argv[1], sys.argv[2:])
