#!/usr/bin/env bash
# awslabs' git-remote-s3 README walkthrough, command for command, against our scripts
# under every name `make install` gives them (the LFS agent also as git-lfs-s3; this
# checkout has them all, as the tests' DEMO_BIN does): create, push, clone, branch,
# LFS, doctor, protect, delete-branch. test_install.py runs `make install` itself.
. "$(dirname "$0")/walkthrough.bash"

# Create a new repo
run git init -q -b main my-repo
cd my-repo
run git remote add origin "$url"
echo hello > hello.txt
run git add -A
run git commit -a -m "hello"
run git push --set-upstream origin main
cd ..

# Clone a repo
run git clone "$url" my-repo-clone

# Branches, etc.
cd my-repo
run git checkout -b new_branch
echo "a new file" > new.txt
run git add -A
run git commit -a -m "new file"
run git push origin new_branch
cd ..

# LFS: creating the repo and pushing
run git init -q -b main lfs-repo
cd lfs-repo
run git lfs install
run git remote add origin "$url-lfs"
run git-lfs-s3 install --remote origin
run git lfs track "*.tiff"
run git add .gitattributes
head -c 200000 /dev/urandom > file.tiff
run git add file.tiff
run git commit -a -m "my first tiff file"
run git push --set-upstream origin main
cd ..

# LFS: clone the repo (their two extra steps are no longer needed, and still work)
run git clone "$url-lfs" lfs-repo-clone
cmp lfs-repo/file.tiff lfs-repo-clone/file.tiff
cd lfs-repo-clone
run git-lfs-s3 install --remote origin
run git reset --hard main
cd ..

# Manage the remote
run git-remote-s3 doctor "$url"
run git-s3 doctor "$url" --lock-ttl 60 --delete-stale-locks
run git s3 protect "$url" main
run git s3 unprotect "$url" main
run git-s3 delete-branch "$url" -b new_branch
run git ls-remote "$url"

test -z "$(git ls-remote "$url" refs/heads/new_branch)"
cmp lfs-repo/file.tiff lfs-repo-clone/file.tiff
printf '\nTheir walkthrough ran against our scripts: it works.\n'
