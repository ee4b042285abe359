"""The sections shared verbatim between the scripts.

The S3 section (URL parsing, client, error translation) is in all three scripts; the
repository section (manifest, bundles, fetching) is in git-remote-s3 and git-s3.
git-remote-s3 holds the canonical copy of both. `python test/shared_section.py`
(make sync-shared) copies them into every other script that has the markers;
test_shared.py checks they are identical.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CANONICAL = "git-remote-s3"
SCRIPTS = ("git-remote-s3", "lfs-s3-py", "git-s3")
SECTIONS = {"S3": SCRIPTS, "REPOSITORY": ("git-remote-s3", "git-s3")}


def markers(name):
    return f"# BEGIN SHARED {name} SECTION\n", f"# END SHARED {name} SECTION\n"


def section(text, name="S3"):
    """The text between a section's markers, or None when a file has no such section."""
    begin, end = markers(name)
    if begin not in text or end not in text:
        return None
    return text.split(begin, 1)[1].split(end, 1)[0]


def scripts_with_section(name="S3"):
    texts = {script: (ROOT / script).read_text() for script in SCRIPTS
             if (ROOT / script).exists()}
    return {script: section(text, name) for script, text in texts.items()
            if section(text, name) is not None}


def sync():
    for name in SECTIONS:
        begin, end = markers(name)
        canonical = section((ROOT / CANONICAL).read_text(), name)
        for script, current in scripts_with_section(name).items():
            if current != canonical:
                text = (ROOT / script).read_text()
                head, rest = text.split(begin, 1)
                (ROOT / script).write_text(head + begin + canonical + end +
                                           rest.split(end, 1)[1])
                print(f"updated the shared {name} section in {script}")


if __name__ == "__main__":
    sys.exit(sync())
