"""A git-lfs custom transfer agent that moves no bytes: what git-lfs itself costs.

Uploads complete at once. A download hands git-lfs a hard link of the file named by
its oid in $BENCH_NOOP_SOURCE, so git-lfs still checks and stores a real object."""

import json
import os
import subprocess
import sys


def main():
    common = subprocess.run(["git", "rev-parse", "--git-common-dir"], capture_output=True,
                            text=True).stdout.strip()
    tmp = os.path.join(os.path.abspath(common), "lfs", "tmp")
    for line in sys.stdin:
        event = json.loads(line)
        if event["event"] == "init":
            answer = {}
        elif event["event"] == "upload":
            answer = {"event": "complete", "oid": event["oid"]}
        elif event["event"] == "download":
            os.makedirs(tmp, exist_ok=True)
            path = os.path.join(tmp, f"{event['oid']}-noop-{os.getpid()}")
            os.link(os.path.join(os.environ["BENCH_NOOP_SOURCE"], event["oid"]), path)
            answer = {"event": "complete", "oid": event["oid"], "path": path}
        else:
            return
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
