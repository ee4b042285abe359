"""s3+zip:// remotes: a zip of each pushed branch and tag for CI systems (AWS
CodePipeline's S3 source reads `<ref>/repo.zip` and its revision summary)."""

import io
import zipfile

SUMMARY = "codepipeline-artifact-revision-summary"


def archive(world, ref):
    got = world.s3.get_object(Bucket=world.server.bucket,
                              Key=f"{world.prefix}/{ref}/repo.zip")
    return zipfile.ZipFile(io.BytesIO(got["Body"].read())), got["Metadata"]


def test_each_pushed_branch_and_tag_gets_a_zip_with_the_commit_message(world):
    work = world.repo()
    world.commit(work, "build me", files={"src/app.py": "print('hi')\n"})
    world.git("tag", "-a", "v1", "-m", "release one", cwd=work)
    zip_url = world.url.replace("s3://", "s3+zip://", 1)
    world.git("remote", "set-url", "origin", zip_url, cwd=work)
    world.git("push", "-q", "origin", "main", "v1", cwd=work)

    files, metadata = archive(world, "refs/heads/main")
    assert files.read("src/app.py") == b"print('hi')\n"
    assert metadata[SUMMARY] == "build me"
    tag, tag_metadata = archive(world, "refs/tags/v1")
    assert "src/app.py" in tag.namelist() and tag_metadata[SUMMARY] == "build me"

    world.commit(work, "second build\n\nwith a body, and ünïcode",
                 files={"src/more.py": "pass\n"})
    world.git("push", "-q", "origin", "main", cwd=work)
    files, metadata = archive(world, "refs/heads/main")
    assert files.read("src/more.py") == b"pass\n"
    # one line of ASCII: S3 metadata travels in HTTP headers
    assert metadata[SUMMARY] == "second build with a body, and ?n?code"

    # the same repository through s3://, and the zip goes with a deleted branch
    assert world.remote_refs(world.url)["refs/heads/main"] == world.rev(work, "main")
    world.git("push", "-q", "origin", "main:topic", cwd=work)
    assert "refs/heads/topic/repo.zip" in world.keys()
    world.git("push", "-q", "origin", "--delete", "topic", cwd=work)
    assert "refs/heads/topic/repo.zip" not in world.keys()
    checked = world.git_s3("doctor", "origin", cwd=work, env={"GIT_TEST_S3_RETIRE_GRACE": "0"})
    assert "repo.zip" not in checked.stdout  # zips are neither leftovers nor unknown


def test_a_plain_s3_remote_writes_no_zip_and_a_dry_run_none_either(world):
    work = world.repo()
    world.git("push", "-q", "origin", "main", cwd=work)
    zip_url = world.url.replace("s3://", "s3+zip://", 1)
    world.git("push", "-q", "--dry-run", zip_url, "main:other", cwd=work)
    assert not [k for k in world.keys() if k.endswith("repo.zip")]


def test_a_ref_without_a_tree_gets_a_warning_and_the_push_still_lands(world):
    work = world.repo()
    blob = world.git("hash-object", "-w", "--stdin", cwd=work, input="just a blob\n")
    world.git("tag", "blob-tag", blob.stdout.strip(), cwd=work)
    zip_url = world.url.replace("s3://", "s3+zip://", 1)
    pushed = world.git("push", zip_url, "main", "blob-tag", cwd=work)
    assert "warning: no archive for 'refs/tags/blob-tag': git archive failed" in pushed.stderr
    assert world.remote_refs()["refs/tags/blob-tag"] == blob.stdout.strip()
    assert "refs/heads/main/repo.zip" in world.keys()
