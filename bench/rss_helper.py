"""Run git-remote-s3 as git would, and append its own peak RSS (KiB) to $BENCH_RSS_LOG.

bench.py puts this on PATH as `git-remote-s3`; RUSAGE_SELF leaves out the git
processes the helper starts, which a wait4() on it would count."""

import atexit
import os
import resource
import runpy
import sys


def record():
    with open(os.environ["BENCH_RSS_LOG"], "a") as log:
        log.write(f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\n")


atexit.register(record)
sys.argv[0] = os.environ["BENCH_HELPER"]
runpy.run_path(os.environ["BENCH_HELPER"], run_name="__main__")
