from __future__ import annotations

import pytest

from svcnet.runtime.images import (
    HOST_COMMAND,
    SERVE_HOSTNAME,
    SHELL,
    ContainerConfigError,
    ImageNotFound,
    ImageProgram,
    InvalidImageName,
    container_argv,
    expand_references,
    parse_image_reference,
    resolve_image,
)

PY = "/venv/bin/python"


@pytest.mark.parametrize("image, expected", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("curlimages/curl", "docker.io/curlimages/curl:latest"),
    ("k8s.gcr.io/serve_hostname", "k8s.gcr.io/serve_hostname:latest"),
    ("localhost:5000/app:v1", "localhost:5000/app:v1"),
    ("index.docker.io/library/alpine@sha256:" + "a" * 64, "docker.io/library/alpine@sha256:" + "a" * 64),
])
def test_references_are_normalised_like_the_runtimes(image: str, expected: str) -> None:
    assert str(parse_image_reference(image)) == expected


@pytest.mark.parametrize("image", ["Busybox", "busybox:", "a//b", ":tag", "busybox@sha256:xyz"])
def test_malformed_references_are_invalid_image_names(image: str) -> None:
    with pytest.raises(InvalidImageName) as caught:
        parse_image_reference(image)
    assert caught.value.reason == "InvalidImageName"
    assert "invalid reference format" in caught.value.message


@pytest.mark.parametrize("image", [
    "k8s.gcr.io/serve_hostname", "k8s.gcr.io/serve_hostname:1.1", "registry.k8s.io/serve_hostname:v1.4",
    "anjia0532/google-containers.serve_hostname", "docker.io/anjia0532/google-containers.serve_hostname:1.3",
])
def test_serve_hostname_under_its_upstream_names(image: str) -> None:
    program = resolve_image(image, python=PY)
    assert program.name == SERVE_HOSTNAME
    assert program.entrypoint == (PY, "-m", "svcnet.images.serve_hostname")


@pytest.mark.parametrize("image, argv", [
    ("busybox", ("sh",)), ("alpine:3.20", ("/bin/sh",)), ("ubuntu", ("bash",)), ("debian:12", ("bash",)),
])
def test_shell_images_run_a_host_shell_without_a_command(image: str, argv: tuple[str, ...]) -> None:
    program = resolve_image(image, python=PY)
    assert program.name == SHELL and container_argv(program, None, None, {}) == argv


def test_curl_image_runs_curl_for_option_arguments() -> None:
    program = resolve_image("curlimages/curl:8.1.0", python=PY)
    argv = container_argv(program, None, ["-s", "http://x"], {})
    assert argv[0] == "sh" and argv[-2:] == ("-s", "http://x")


def test_unknown_image_with_a_command_runs_it_from_the_host() -> None:
    program = resolve_image("example.com/team/tool:2", python=PY, has_command=True)
    assert program.name == HOST_COMMAND
    assert container_argv(program, ["/usr/bin/env"], ["A=1"], {}) == ("/usr/bin/env", "A=1")


def test_unknown_image_without_a_command_is_not_found_with_a_pull_message() -> None:
    with pytest.raises(ImageNotFound) as caught:
        resolve_image("nginx", python=PY)
    assert caught.value.reason == "ErrImagePull"
    assert caught.value.message.startswith('Failed to pull image "nginx": ')
    assert "docker.io/library/nginx:latest: not found" in caught.value.message


@pytest.mark.parametrize("command, args, expected", [
    (None, None, ("entry", "cmd")),
    (["run"], None, ("run",)),  # command drops the image's cmd too
    (None, ["a1"], ("entry", "a1")),
    (["run"], ["a1"], ("run", "a1")),
    (["echo", "$(NAME)", "$$(NAME)", "$(MISSING)"], None, ("echo", "web", "$(NAME)", "$(MISSING)")),
])
def test_command_and_args_follow_kubelet(command: list[str] | None, args: list[str] | None,
                                         expected: tuple[str, ...]) -> None:
    program = ImageProgram("x", ("entry",), ("cmd",))
    assert container_argv(program, command, args, {"NAME": "web"}) == expected


def test_nothing_to_run_is_a_create_container_error() -> None:
    with pytest.raises(ContainerConfigError) as caught:
        container_argv(ImageProgram("x"), None, None, {})
    assert caught.value.reason == "CreateContainerError"


@pytest.mark.parametrize("text, expected", [
    ("$(A)-$(B)", "1-$(B)"), ("$$", "$"), ("a$b", "a$b"), ("$(A", "$(A"), ("$()", "$()"), ("end$", "end$"),
])
def test_reference_expansion(text: str, expected: str) -> None:
    assert expand_references(text, {"A": "1"}) == expected
