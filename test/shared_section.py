"""The sections shared verbatim between the scripts.

The S3 section (URL parsing, client, errors, logging) and the encryption section (gpg,
the manifest's envelope, LFS names) are in all three scripts; the repository section
(manifest, bundles, fetching, committing) is in git-remote-s3 and git-s3. git-remote-s3 holds the canonical copy of both: edit them there.
`python test/shared_section.py` (make sync-shared) copies them into every other script
that has the markers. It refuses to overwrite a copy that was edited, since that would
silently erase the edit: a copy is untouched while it holds the text of the last commit
(all copies are equal there: test_shared.py sees to it) or of the last sync (whose
SHA-256 it keeps in the git dir). test_shared.py checks they are identical.
"""

import difflib
import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CANONICAL = "git-remote-s3"
SCRIPTS = ("git-remote-s3", "lfs-s3-py", "git-s3")
SECTIONS = {"S3": SCRIPTS, "ENCRYPTION": SCRIPTS, "REPOSITORY": ("git-remote-s3", "git-s3")}


def markers(name):
    return f"# BEGIN SHARED {name} SECTION\n", f"# END SHARED {name} SECTION\n"


def section(text, name="S3"):
    """The text between a section's markers, or None when a file has no such section."""
    begin, end = markers(name)
    if text is None or begin not in text or end not in text:
        return None
    return text.split(begin, 1)[1].split(end, 1)[0]


def scripts_with_section(name="S3"):
    texts = {script: (ROOT / script).read_text() for script in SCRIPTS
             if (ROOT / script).exists()}
    return {script: section(text, name) for script, text in texts.items()
            if section(text, name) is not None}


def git(*args):
    proc = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()


def last_synced_file():
    path = git("rev-parse", "--git-path", "shared-sections.json")
    return (ROOT / path.strip()) if path else None


def last_synced():
    """{section name: SHA-256 of the text the last sync copied}."""
    path = last_synced_file()
    return json.loads(path.read_text()) if path and path.exists() else {}


def edited_copy(script, name, current, canonical):
    """What syncing would erase of an edit made in a non-canonical copy (a diff from
    the canonical text to the copy), or None when the copy is untouched (or new: only
    its two markers)."""
    if current == "" or current == section(git("show", f"HEAD:{script}"), name) or \
            digest(current) == last_synced().get(name):
        return None
    return "".join(difflib.unified_diff(
        canonical.splitlines(True), current.splitlines(True),
        f"{CANONICAL} (canonical)", f"{script} (its edit would be erased)"))


def sync():
    refused = set()
    synced = last_synced()
    for name in SECTIONS:
        begin, end = markers(name)
        canonical = section((ROOT / CANONICAL).read_text(), name)
        for script, current in scripts_with_section(name).items():
            if current == canonical:
                continue
            edit = edited_copy(script, name, current, canonical)
            if edit is not None:
                sys.stderr.write(
                    f"{edit}error: the shared {name} section of {script} was edited (diff "
                    f"above); syncing would erase that. {CANONICAL} holds the canonical "
                    f"copy: make the change there, undo it in {script} "
                    f"(git checkout {script}), then run make sync-shared again\n")
                refused.add(name)
                continue
            text = (ROOT / script).read_text()
            head, rest = text.split(begin, 1)
            (ROOT / script).write_text(head + begin + canonical + end + rest.split(end, 1)[1])
            print(f"updated the shared {name} section in {script}")
        if name not in refused:  # every copy holds the canonical text now
            synced[name] = digest(canonical)
    if last_synced_file():
        last_synced_file().write_text(json.dumps(synced))
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(sync())
