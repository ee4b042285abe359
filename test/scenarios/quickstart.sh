#!/usr/bin/env bash
# The README's quick start: push a repository to S3, clone it, push and pull a change.
# Needs S3 credentials in the environment and S3_BUCKET; `make demo` runs it against a
# local SeaweedFS server, test_scenarios.py under pytest.
. "$(dirname "$0")/walkthrough.bash"

run git init -q -b main project
cd project
echo "hello from S3" > README
git add README
run git commit -q -m "first commit"
run git remote add origin "$url"
run git push -u origin main
cd ..
run git clone "$url" copy

cd project
echo "a second line" >> README
run git commit -q -am "second commit"
run git push
cd ../copy
run git pull
run git log --oneline
run git ls-remote origin

test "$(git rev-parse HEAD)" = "$(git -C ../project rev-parse HEAD)"
printf '\nThe clone has both commits: it works.\n'
