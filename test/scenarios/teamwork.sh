#!/usr/bin/env bash
# The README's team walkthrough: two people push to one S3 remote; the second is told
# to fetch first, pulls, and pushes; a tag and a feature branch travel too.
. "$(dirname "$0")/walkthrough.bash"

git init -q -b main alice
cd alice
echo "v1" > app.txt
git add app.txt
git commit -q -m "first version"
run git remote add origin "$url"
run git push -u origin main
cd ..
run git clone "$url" bob

cd alice
echo "alice's change" > alice.txt && git add alice.txt && git commit -q -m "alice's change"
run git push
cd ../bob
echo "bob's change" > bob.txt && git add bob.txt && git commit -q -m "bob's change"
if run git push; then echo "bob's push should have been rejected" >&2; exit 1; fi
run git pull --no-rebase --no-edit
run git push

run git tag -a v1.0 -m "release 1.0"
run git push origin v1.0
run git switch -c feature
echo "wip" > feature.txt && git add feature.txt && git commit -q -m "work in progress"
run git push -u origin feature
run git ls-remote origin

cd ../alice
run git pull
run git fetch --tags
test -f bob.txt && test "$(git rev-parse v1.0^{commit})" = "$(git rev-parse HEAD)"
run git push origin --delete feature
printf '\nBoth changes and the tag reached everyone: it works.\n'
