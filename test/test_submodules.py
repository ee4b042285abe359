"""A superproject and its submodule, both on s3:// remotes."""


def test_clone_recurse_submodules_once_the_s3_protocol_is_allowed(world):
    sub_url, super_url = f"{world.url}/lib", f"{world.url}/app"
    lib = world.repo("lib", remote=False)
    world.commit(lib, "library", files={"lib.txt": "shared code\n"})
    world.git("push", "-q", sub_url, "main", cwd=lib)
    app = world.repo("app", remote=False)
    world.git("-c", "protocol.s3.allow=always", "submodule", "add", "-q", sub_url, "lib",
              cwd=app)
    world.git("commit", "-q", "-m", "add lib", cwd=app)
    world.git("push", "-q", super_url, "main", cwd=app)

    # git lets submodules use only protocols it knows to be safe, unless told
    refused = world.git("clone", "--recurse-submodules", super_url, world.tmp / "no",
                        ok=False)
    assert "transport 's3' not allowed" in refused.stderr

    world.git("config", "--global", "protocol.s3.allow", "always")
    world.git("clone", "-q", "--recurse-submodules", super_url, world.tmp / "yes")
    assert (world.tmp / "yes" / "lib" / "lib.txt").read_text() == "shared code\n"
    assert world.rev(world.tmp / "yes" / "lib", "HEAD") == world.rev(lib, "main")
