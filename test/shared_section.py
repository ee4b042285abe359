"""The S3 helper section shared verbatim by the three scripts.

`python test/shared_section.py` (make sync-shared) copies git-remote-s3's section into
every other script that has the markers; test_shared.py checks they are identical.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CANONICAL = "git-remote-s3"
SCRIPTS = ("git-remote-s3", "lfs-s3-py", "git-s3")
BEGIN, END = "# BEGIN SHARED S3 SECTION\n", "# END SHARED S3 SECTION\n"


def section(text):
    """The text between the markers, or None when a file has no section."""
    if BEGIN not in text or END not in text:
        return None
    return text.split(BEGIN, 1)[1].split(END, 1)[0]


def scripts_with_section():
    return {name: section((ROOT / name).read_text()) for name in SCRIPTS
            if (ROOT / name).exists() and section((ROOT / name).read_text()) is not None}


def sync():
    canonical = section((ROOT / CANONICAL).read_text())
    for name, current in scripts_with_section().items():
        if current != canonical:
            text = (ROOT / name).read_text()
            head, rest = text.split(BEGIN, 1)
            (ROOT / name).write_text(head + BEGIN + canonical + END + rest.split(END, 1)[1])
            print(f"updated the shared S3 section in {name}")


if __name__ == "__main__":
    sys.exit(sync())
