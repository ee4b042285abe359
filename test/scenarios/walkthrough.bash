# Sourced by the walkthrough scripts: the helper on PATH, an identity for commits,
# the S3 URL to use ($url), a scratch directory that is removed at exit, and `run`,
# which prints each command as the README shows it, then its output. The helper is
# this checkout's, or what DEMO_BIN holds (the tests': the same scripts, started
# through their fork server).
set -euo pipefail
export PATH="${DEMO_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}:$PATH"
export GIT_AUTHOR_NAME=${GIT_AUTHOR_NAME:-Demo} GIT_AUTHOR_EMAIL=${GIT_AUTHOR_EMAIL:-demo@example.com}
export GIT_COMMITTER_NAME=$GIT_AUTHOR_NAME GIT_COMMITTER_EMAIL=$GIT_AUTHOR_EMAIL
url="s3://${S3_BUCKET:?set S3_BUCKET to a bucket you may write}/${DEMO_PREFIX:-demo-$$}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

run() { printf '\n$ %s\n' "$*"; "$@" 2>&1; }
