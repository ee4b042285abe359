#!/usr/bin/env bash
# The README's "Undoing a mistake": a force push from a stale clone throws away a
# colleague's commit; `git s3 log` shows who did what, `git s3 restore` puts it back;
# a deleted branch comes back the same way.
. "$(dirname "$0")/walkthrough.bash"

git init -q -b main alice
cd alice
echo "v1" > app.txt && git add app.txt && git commit -q -m "first version"
git remote add origin "$url"
git push -q -u origin main
cd ..
git clone -q "$url" bob
cd alice
echo "alice's fix" > fix.txt && git add fix.txt && git commit -q -m "alice's fix"
git push -q
cd ../bob
echo "bob's rewrite" > app.txt && git commit -q -am "bob's rewrite"
run git push --force
run git s3 log origin main
run git s3 restore origin main
run git s3 log origin main
run git pull --no-rebase --no-edit
# Not `git log | grep -q`: git log killed by SIGPIPE once grep has its line fails the
# pipe (pipefail).
subjects=$(git log --format=%s)
grep -qx "alice's fix" <<<"$subjects" && grep -qx "bob's rewrite" <<<"$subjects"
run git push

git switch -q -c release && git push -q -u origin release
run git push origin --delete release
run git s3 restore origin release
test "$(git ls-remote origin refs/heads/release | cut -f1)" = "$(git rev-parse release)"
printf '\nThe fix and the branch are back: it works.\n'
