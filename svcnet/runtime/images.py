"""The image catalogue: an image reference resolves to a program on this host (pure).

There is no registry and no root filesystem. A reference is normalised as the
container runtimes do (docker.io/library/busybox:latest), then looked up by its
repository (any tag or digest): built-in programs that svcnet ships, shell
images that run the host's tools, or, for any other image, the container's own
`command`. The process to run then follows kubelet's rules: `command` replaces
the image's entrypoint (and drops its cmd), `args` replace the cmd, and
$(VAR) references expand from the container's environment.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

DEFAULT_DOMAIN = "docker.io"
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")


class ImageError(Exception):
    """An image that cannot be run; reason and message are what the container's Waiting state shows."""

    reason = "ErrImagePull"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ImageNotFound(ImageError):
    reason = "ErrImagePull"


class InvalidImageName(ImageError):
    reason = "InvalidImageName"


class ContainerConfigError(Exception):
    """A container whose process cannot be built (no command, bad env source): CreateContainerConfigError."""

    reason = "CreateContainerConfigError"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason


@dataclass(frozen=True)
class ImageReference:
    domain: str
    path: str  # "library/busybox", "serve_hostname", "anjia0532/google-containers.serve_hostname"
    tag: str = ""
    digest: str = ""

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_image_reference(image: str) -> ImageReference:
    """Normalise a reference as docker/containerd do; the tag defaults to latest when there is no digest."""
    invalid = InvalidImageName(f'Failed to apply default image tag "{image}": couldn\'t parse image name '
                               f'"{image}": invalid reference format')
    rest, _, digest = image.partition("@")
    if digest and not _DIGEST.match(digest):
        raise invalid
    tag = ""
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise invalid
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, remainder
    else:
        domain, path = DEFAULT_DOMAIN, rest
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    if not path or not all(_COMPONENT.match(part) for part in path.split("/")):
        raise invalid
    if not tag and not digest:
        tag = "latest"
    return ImageReference(domain, path, tag, digest)


@dataclass(frozen=True)
class ImageProgram:
    """What an image means here: its entrypoint and cmd (as in an image config) and extra env."""

    name: str  # the catalogue entry, for messages and docs
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = field(default=())


SERVE_HOSTNAME = "serve_hostname"
# svcnet's own Python programs that a shim may fork from itself instead of starting a new interpreter
# (svcnet.runtime.shim.start_program; the fork server imports them once). The process is the same.
IN_PROCESS_PROGRAMS = frozenset({"svcnet.images.serve_hostname"})
SHELL = "shell"
DNS_SERVER = "svcnet-dns"
PAUSE = "pause"
HOST_COMMAND = "host-command"

SERVE_HOSTNAME_REPOSITORIES = frozenset({
    "k8s.gcr.io/serve_hostname",
    "registry.k8s.io/serve_hostname",
    "gcr.io/google_containers/serve_hostname",
    "gcr.io/google-containers/serve_hostname",
    "docker.io/anjia0532/google-containers.serve_hostname",
})
# Images people use for a shell, curl or DNS tools in a pod; here they all run the host's tools.
SHELL_REPOSITORIES: Mapping[str, tuple[str, ...]] = {
    "docker.io/library/busybox": ("sh",),
    "docker.io/library/alpine": ("/bin/sh",),
    "docker.io/library/debian": ("bash",),
    "docker.io/library/ubuntu": ("bash",),
    "docker.io/library/fedora": ("bash",),
    "docker.io/nicolaka/netshoot": ("sh",),
    "docker.io/infoblox/dnstools": ("sh",),
    "docker.io/tutum/dnsutils": ("sh",),
    "registry.k8s.io/e2e-test-images/jessie-dnsutils": ("sh",),
    "gcr.io/kubernetes-e2e-test-images/dnsutils": ("sh",),
    "registry.k8s.io/busybox": ("sh",),
    "k8s.gcr.io/busybox": ("sh",),
}
# curlimages/curl's entrypoint runs curl when the first argument is an option or not a command.
CURL_REPOSITORY = "docker.io/curlimages/curl"
CURL_ENTRYPOINT = ("sh", "-c", 'if [ "${1#-}" != "$1" ] || [ -z "$(command -v "$1")" ]; then set -- curl "$@"; fi; '
                   'exec "$@"', "curl-entrypoint")
PAUSE_REPOSITORIES = frozenset({"registry.k8s.io/pause", "k8s.gcr.io/pause"})
# Hook for the DNS issue: the cluster DNS server image runs `svcnet dns` with the container's args.
DNS_SERVER_REPOSITORIES = frozenset({"docker.io/svcnet/dns"})


def resolve_image(image: str, *, python: str, pythonpath: str = "", has_command: bool = False) -> ImageProgram:
    """The program an image reference stands for; an image with its own `command` may be anything."""
    ref = parse_image_reference(image)
    py_env = (("PYTHONPATH", pythonpath),) if pythonpath else ()
    repository = ref.repository
    if repository in SERVE_HOSTNAME_REPOSITORIES:
        # Like upstream's default HTTP on 9376; UDP on the same port too (no clash, and the issue asks for it).
        return ImageProgram(SERVE_HOSTNAME, (python, "-m", "svcnet.images.serve_hostname"), ("--udp",), py_env)
    if repository in SHELL_REPOSITORIES:
        return ImageProgram(SHELL, (), SHELL_REPOSITORIES[repository])
    if repository == CURL_REPOSITORY:
        return ImageProgram(SHELL, CURL_ENTRYPOINT, ("curl",))
    if repository in PAUSE_REPOSITORIES:
        return ImageProgram(PAUSE, ("sleep", "infinity"))
    if repository in DNS_SERVER_REPOSITORIES:
        return ImageProgram(DNS_SERVER, (python, "-m", "svcnet", "dns"), (), py_env)
    if has_command:
        return ImageProgram(HOST_COMMAND)
    raise ImageNotFound(
        f'Failed to pull image "{image}": failed to resolve reference "{ref}": {ref}: not found '
        f"(svcnet has no registry: this image is not in its catalogue, and the container has no command "
        f"to run from the host)")


def image_pull_backoff_message(image: str) -> str:
    """The Waiting message once a failed pull is being retried, as kubelet words it."""
    return f'Back-off pulling image "{image}"'


def expand_references(text: str, env: Mapping[str, str]) -> str:
    """kubelet's $(VAR) expansion: defined names are replaced, unknown ones kept, $$ escapes a $."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char != "$" or i + 1 >= n:
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            close = text.find(")", i + 2)
            if close == -1:
                out.append(text[i:])
                break
            name = text[i + 2:close]
            out.append(env[name] if name and name in env else text[i:close + 1])
            i = close + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


def container_argv(program: ImageProgram, command: Sequence[str] | None, args: Sequence[str] | None,
                   env: Mapping[str, str]) -> tuple[str, ...]:
    """The process argv: command replaces the entrypoint (and the image's cmd), args replace the cmd."""
    command = [expand_references(part, env) for part in command or ()]
    args = [expand_references(part, env) for part in args or ()]
    if command:
        argv = (*command, *args)
    elif args:
        argv = (*program.entrypoint, *args)
    else:
        argv = (*program.entrypoint, *program.cmd)
    if not argv:
        raise ContainerConfigError("failed to generate container spec: no command specified",
                                   reason="CreateContainerError")
    return argv
