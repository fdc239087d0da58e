"""A parsed Corefile -> svcnet's DNS configuration: each plugin's setup, as CoreDNS's plugin/*/setup.go.

Pure: the two files a Corefile can name (a forward target that is a resolv.conf,
a hosts file) are read through the `read_file` callable the caller passes in.

The chain order is CoreDNS's plugin.cfg order (PLUGIN_ORDER), never the order of
the Corefile's lines. Directives CoreDNS does not know fail to parse
(`Unknown directive 'foo'`); plugins CoreDNS knows but svcnet does not run are
refused naming the plugin. Plugin errors read as CoreDNS's
(`plugin/forward: Corefile:3 - Error during parsing: unknown policy 'x'`); svcnet
also names the line where CoreDNS prints a bare error.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from svcnet.dns import names
from svcnet.dns.corefile import CorefileError, Directive, ServerBlock, parse, parse_error
from svcnet.dns.forward import parse_resolv_conf, split_host_port

# plugin.cfg of coredns/coredns: execution order, first to last.
PLUGIN_ORDER = (
    "metadata", "geoip", "cancel", "tls", "timeouts", "multisocket", "reload", "nsid", "bufsize", "bind",
    "debug", "trace", "ready", "health", "pprof", "prometheus", "errors", "log", "dnstap", "local", "dns64",
    "acl", "any", "chaos", "loadbalance", "tsig", "cache", "rewrite", "header", "dnssec", "autopath",
    "minimal", "template", "transfer", "hosts", "route53", "azure", "clouddns", "k8s_external", "kubernetes",
    "file", "auto", "secondary", "etcd", "loop", "forward", "grpc", "erratic", "whoami", "on", "sign", "view",
)
SUPPORTED = frozenset({"reload", "bufsize", "ready", "health", "prometheus", "errors", "log", "loadbalance",
                       "cache", "rewrite", "hosts", "kubernetes", "loop", "forward"})
MAX_UPSTREAMS = 15  # forward's `max`
ERR_ONCE = "this plugin can only be used once per Server Block"

ReadFile = Callable[[str], str]


# ------------------------------------------------------------------ configs

@dataclass(frozen=True)
class KubernetesConfig:
    zones: tuple[str, ...]  # forward zones in order (the first is primary), then reverse ones
    reverse_zones: tuple[str, ...]
    pods: str = "disabled"  # the plugin's default; kubeadm's Corefile says insecure
    ttl: int = 5
    fallthrough: tuple[str, ...] | None = None  # None: never; () would not occur: "." means every zone
    endpoint_pod_names: bool = False
    ignore_empty_service: bool = False


@dataclass(frozen=True)
class ForwardConfig:
    from_zone: str
    to: tuple[tuple[str, int], ...]
    excepted: tuple[str, ...] = ()
    policy: str = "random"
    max_concurrent: int = 0
    max_fails: int = 2
    health_check: float = 0.5
    expire: float = 10.0
    force_tcp: bool = False


@dataclass(frozen=True)
class CacheConfig:
    zones: tuple[str, ...]
    success_capacity: int = 9984
    success_ttl: int = 3600
    success_min_ttl: int = 5
    denial_capacity: int = 9984
    denial_ttl: int = 1800
    denial_min_ttl: int = 5
    disable_success: tuple[str, ...] = ()
    disable_denial: tuple[str, ...] = ()
    serve_stale: float = 0.0  # seconds an expired answer may still be served when upstreams fail
    stale_verify: bool = False  # verify: ask upstream first; immediate (default): stale first, refresh after


@dataclass(frozen=True)
class HostsConfig:
    path: str
    zones: tuple[str, ...]
    inline: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (address, names)
    ttl: int = 3600
    reverse: bool = True
    fallthrough: tuple[str, ...] | None = None
    reload: float = 5.0


@dataclass(frozen=True)
class RewriteRule:
    kind: str  # exact | prefix | suffix | substring | regex
    match: str
    replacement: str
    answer: RewriteRule | None = None  # applied to the answer's owner names (`answer auto|name`)
    stop: bool = True


@dataclass(frozen=True)
class ServerConfig:
    zones: tuple[str, ...]
    port: int
    plugins: tuple[str, ...]  # in chain order
    kubernetes: KubernetesConfig | None = None
    forward: ForwardConfig | None = None
    cache: CacheConfig | None = None
    hosts: HostsConfig | None = None
    rewrites: tuple[RewriteRule, ...] = ()
    loop: bool = False
    loadbalance: bool = False
    log: bool = False
    bufsize: int | None = None
    line: int = 0


@dataclass(frozen=True)
class CorefileConfig:
    servers: tuple[ServerConfig, ...]
    health: tuple[str, float] | None = None  # (address, lameduck seconds)
    ready: str | None = None
    prometheus: str | None = None
    reload: tuple[float, float] | None = None  # (interval, jitter) seconds
    ports: tuple[int, ...] = field(default=())


# ---------------------------------------------------------------- helpers

class _Stanza:
    """One directive being set up: CoreDNS's errors, named for the plugin and the line."""

    def __init__(self, directive: Directive, filename: str) -> None:
        self.d = directive
        self.filename = filename

    def err(self, message: str, line: int | None = None) -> CorefileError:
        base = parse_error(self.filename, line or self.d.line, message)
        return CorefileError(f"plugin/{self.d.name}: {base}")

    def arg_err(self, after: Directive | None = None) -> CorefileError:
        where = after or self.d
        last = (where.args or (where.name,))[-1]
        return self.err(f"Wrong argument count or unexpected line ending after '{last}'", where.line)

    def integer(self, text: str, line: int) -> int:
        try:
            return int(text)
        except ValueError:
            raise self.err(f'strconv.Atoi: parsing "{text}": invalid syntax', line) from None

    def duration(self, text: str, line: int) -> float:
        try:
            return parse_duration(text)
        except ValueError:
            raise self.err(f'time: invalid duration "{text}"', line) from None


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration ("30s", "1m30s", "500ms", "0") in seconds; ValueError otherwise."""
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        m = _DURATION.match(body, pos)
        if m is None:
            raise ValueError(text)
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not body:
        raise ValueError(text)
    return -total if text.startswith("-") else total


def normalize_zone(text: str) -> str:
    """plugin.Host(...).Normalize for one zone: lowercased, absolute, a dns:// prefix and port dropped."""
    text = text.removeprefix("dns://")
    if text.startswith("[") or text.count(":") == 1:
        text = split_host_port(text, 53)[0]
    return names.normalize(text) if text not in ("", ".") else "."


def server_key(key: str, default_port: int) -> tuple[str, int]:
    """A server block key -> (zone, port), as core/dnsserver/address.go normalizeZone."""
    scheme, sep, rest = key.partition("://")
    if not sep:
        rest = key
    elif scheme != "dns":
        raise CorefileError(f"Corefile: transport {scheme!r} in {key!r} is not supported by svcnet (dns only)")
    host, port = rest, default_port
    if rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
        try:
            port = int(port_text)
        except ValueError:
            raise CorefileError(f"Corefile: invalid port in {key!r}") from None
    if "/" in host:
        host = _cidr_zone(host, key)
    return (names.normalize(host) if host not in ("", ".") else "."), port


def _cidr_zone(text: str, key: str) -> str:
    """10.0.0.0/8 -> 10.in-addr.arpa (octet-aligned networks only, as svcnet serves them)."""
    try:
        net = ipaddress.ip_network(text)
    except ValueError:
        raise CorefileError(f"Corefile: invalid network in {key!r}") from None
    step = 8 if net.version == 4 else 4
    if net.prefixlen % step:
        raise CorefileError(f"Corefile: {key!r}: only octet/nibble-aligned networks are supported")
    labels = net.network_address.reverse_pointer.split(".")
    keep = net.prefixlen // step
    total = 4 if net.version == 4 else 32
    return ".".join(labels[total - keep:])


def in_zones(name: str, zones: tuple[str, ...]) -> bool:
    return any(z == "." or name == z or name.endswith("." + z) for z in zones)


# ----------------------------------------------------------- the plugins

def _kubernetes(s: _Stanza, block_zones: tuple[str, ...]) -> KubernetesConfig:
    zones = tuple(normalize_zone(z) for z in s.d.args) or block_zones
    forward = tuple(z for z in zones if not z.endswith(("in-addr.arpa.", "ip6.arpa.")))
    reverse = tuple(z for z in zones if z not in forward)
    if not forward:
        raise CorefileError("plugin/kubernetes: non-reverse zone name must be used")
    opts: dict = {}
    for line in s.d.lines:
        a = line.args
        if line.name == "pods":
            if len(a) != 1:
                raise s.arg_err(line)
            if a[0] not in ("disabled", "verified", "insecure"):
                raise s.err(f"wrong value for pods: {a[0]},  must be one of: disabled, verified, insecure",
                            line.line)
            opts["pods"] = a[0]
        elif line.name == "endpoint_pod_names":
            if a:
                raise s.arg_err(line)
            opts["endpoint_pod_names"] = True
        elif line.name == "fallthrough":
            opts["fallthrough"] = tuple(normalize_zone(z) for z in a) or (".",)
        elif line.name == "ttl":
            if not a:
                raise s.arg_err(line)
            ttl = s.integer(a[0], line.line)
            if not 0 <= ttl <= 3600:
                raise s.err(f"ttl must be in range [0, 3600]: {ttl}", line.line)
            opts["ttl"] = ttl
        elif line.name == "ignore":
            if a and a[0] != "empty_service":
                raise s.err(f"unable to parse ignore value: '{a[0]}'", line.line)
            opts["ignore_empty_service"] = bool(a)
        elif line.name in ("endpoint", "kubeconfig", "tls", "namespaces", "labels", "namespace_labels",
                           "noendpoints", "multicluster", "startup_timeout", "apiserver_qps",
                           "apiserver_burst", "apiserver_max_inflight"):
            raise s.err(f"property '{line.name}' is not supported by svcnet (it watches the cluster "
                        f"`svcnet dns` is pointed at)", line.line)
        else:
            raise s.err(f"unknown property '{line.name}'", line.line)
    return KubernetesConfig(zones=forward, reverse_zones=reverse, **opts)


def _upstreams(s: _Stanza, targets: tuple[str, ...], read_file: ReadFile) -> tuple[tuple[str, int], ...]:
    """parse.HostPortOrFile: each target an address[:port] or a resolv.conf's nameservers."""
    out: list[tuple[str, int]] = []
    for target in targets:
        spec = target.removeprefix("dns://")
        if spec.startswith("tls://"):
            raise s.err(f"'tls' is not supported as a destination protocol by svcnet: {target}")
        try:
            host, port = split_host_port(spec, 53)
            out.append((str(ipaddress.ip_address(host)), port))
            continue
        except ValueError:
            pass
        try:
            text = read_file(spec)
        except OSError:
            raise s.err(f'not an IP address or file: "{target}"') from None
        servers = parse_resolv_conf(text)
        if not servers:
            raise s.err(f'no nameservers found in "{target}"')
        out.extend((ip, 53) for ip in servers)
    return tuple(out)


def _forward(s: _Stanza, read_file: ReadFile) -> ForwardConfig:
    if len(s.d.args) < 2:
        raise s.arg_err()
    to = _upstreams(s, s.d.args[1:], read_file)
    if len(to) > MAX_UPSTREAMS:
        raise s.err(f"more than {MAX_UPSTREAMS} TOs configured: {len(to)}")
    opts: dict = {}
    for line in s.d.lines:
        a = line.args
        if line.name == "except":
            if not a:
                raise s.arg_err(line)
            opts["excepted"] = opts.get("excepted", ()) + tuple(normalize_zone(z) for z in a)
        elif line.name in ("max_fails", "max_concurrent"):
            if len(a) != 1:
                raise s.arg_err(line)
            value = s.integer(a[0], line.line)
            if value < 0:
                raise s.err(f"{line.name} can't be negative: {value}", line.line)
            opts[line.name] = value
        elif line.name in ("health_check", "expire"):
            if not a:
                raise s.arg_err(line)
            seconds = s.duration(a[0], line.line)
            if seconds < 0:
                raise s.err(f"{line.name} can't be negative: {a[0]}", line.line)
            opts[line.name] = seconds
        elif line.name == "policy":
            if len(a) != 1:
                raise s.arg_err(line)
            if a[0] not in ("random", "round_robin", "sequential"):
                raise s.err(f"unknown policy '{a[0]}'", line.line)
            opts["policy"] = a[0]
        elif line.name == "force_tcp":
            opts["force_tcp"] = True
        elif line.name == "prefer_udp":
            pass  # svcnet asks over UDP first anyway
        elif line.name in ("tls", "tls_servername"):
            raise s.err(f"property '{line.name}' is not supported by svcnet", line.line)
        else:
            raise s.err(f"unknown property '{line.name}'", line.line)
    return ForwardConfig(from_zone=normalize_zone(s.d.args[0]), to=to, **opts)


def _cache_sizes(s: _Stanza, line: Directive, kind: str) -> dict:
    a = line.args
    if not a:
        raise s.arg_err(line)
    out = {f"{kind}_capacity": s.integer(a[0], line.line)}
    if len(a) > 1:
        ttl = s.integer(a[1], line.line)
        if ttl <= 0:
            raise s.err(f"cache TTL can not be zero or negative: {ttl}", line.line)
        out[f"{kind}_ttl"] = ttl
    if len(a) > 2:
        minimum = s.integer(a[2], line.line)
        if minimum < 0:
            raise s.err(f"cache min TTL can not be negative: {minimum}", line.line)
        out[f"{kind}_min_ttl"] = minimum
    return out


def _cache(s: _Stanza, block_zones: tuple[str, ...]) -> CacheConfig:
    args = list(s.d.args)
    opts: dict = {}
    if args and args[0].lstrip("-").isdigit():
        ttl = int(args.pop(0))
        if ttl <= 0:
            raise s.err(f"cache TTL can not be zero or negative: {ttl}")
        opts["success_ttl"] = opts["denial_ttl"] = ttl
    zones = tuple(normalize_zone(z) for z in args) or block_zones
    for line in s.d.lines:
        if line.name in ("success", "denial"):
            opts.update(_cache_sizes(s, line, line.name))
        elif line.name == "serve_stale":
            a = line.args
            if len(a) > 2:
                raise s.arg_err(line)
            opts["serve_stale"] = s.duration(a[0], line.line) if a else 3600.0
            if opts["serve_stale"] < 0:
                raise s.err(f"invalid negative duration for serve_stale: {a[0]}", line.line)
            if len(a) > 1 and a[1] not in ("immediate", "verify"):
                raise s.err(f"invalid value for serve_stale refresh mode: {a[1]}", line.line)
            opts["stale_verify"] = len(a) > 1 and a[1] == "verify"
        elif line.name == "disable":
            if not line.args or line.args[0] not in ("success", "denial"):
                raise s.arg_err(line)
            opts[f"disable_{line.args[0]}"] = tuple(normalize_zone(z) for z in line.args[1:]) or zones
        elif line.name in ("prefetch", "keepttl"):
            pass  # accepted: svcnet's cache does not prefetch, and keeps counting TTLs down
        else:
            raise s.arg_err(line)
    return CacheConfig(zones=zones, **opts)


def _hosts(s: _Stanza, block_zones: tuple[str, ...]) -> HostsConfig:
    args = s.d.args
    path = args[0] if args else "/etc/hosts"
    zones = tuple(normalize_zone(z) for z in args[1:]) or block_zones
    opts: dict = {}
    inline: list[tuple[str, tuple[str, ...]]] = []
    for line in s.d.lines:
        a = line.args
        if line.name == "fallthrough":
            opts["fallthrough"] = tuple(normalize_zone(z) for z in a) or (".",)
        elif line.name == "no_reverse":
            opts["reverse"] = False
        elif line.name == "ttl":
            if len(a) != 1:
                raise s.arg_err(line)
            ttl = s.integer(a[0], line.line)
            if not 0 <= ttl <= 2**32 - 1:
                raise s.err(f"ttl provided is invalid: {a[0]}", line.line)
            opts["ttl"] = ttl
        elif line.name == "reload":
            if len(a) != 1:
                raise s.arg_err(line)
            opts["reload"] = s.duration(a[0], line.line)
            if opts["reload"] < 0:
                raise s.err(f"invalid negative duration for reload '{a[0]}'", line.line)
        else:
            entry = _hosts_line((line.name, *a))
            if entry is not None:
                inline.append(entry)
    return HostsConfig(path=path, zones=zones, inline=tuple(inline), **opts)


def _hosts_line(fields: tuple[str, ...]) -> tuple[str, tuple[str, ...]] | None:
    """ADDRESS NAME... (an address with a zone %eth0 has it dropped); None when not an entry."""
    if len(fields) < 2:
        return None
    try:
        address = str(ipaddress.ip_address(fields[0].split("%", 1)[0]))
    except ValueError:
        return None
    return address, tuple(names.normalize(n) for n in fields[1:])


def parse_hosts(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """The entries of a hosts file (comments and lines that are not entries skipped, as CoreDNS)."""
    out = []
    for raw in text.splitlines():
        entry = _hosts_line(tuple(raw.split("#", 1)[0].split()))
        if entry is not None:
            out.append(entry)
    return out


_REWRITE_KINDS = ("exact", "prefix", "suffix", "substring", "regex")


def _rewrite(s: _Stanza) -> RewriteRule:
    args = list(s.d.args)
    stop = True
    if args and args[0] in ("continue", "stop"):
        stop = args.pop(0) == "stop"
    if not args:
        raise s.arg_err()
    if args[0] != "name":
        raise s.err(f"rule type '{args[0]}' is not supported by svcnet (name rules only)")
    args.pop(0)
    kind = args.pop(0) if args and args[0] in _REWRITE_KINDS else "exact"
    if len(args) < 2:
        raise s.arg_err()
    match, replacement, rest = args[0], args[1], args[2:]
    if kind == "regex":
        try:
            re.compile(match)
        except re.error as exc:
            raise s.err(f"invalid regex pattern in a name rule: {match}: {exc}") from None
    answer = _rewrite_answer(s, kind, match, replacement, rest)
    return RewriteRule(kind=kind, match=_rule_name(kind, match), replacement=_rule_name(kind, replacement),
                       answer=answer, stop=stop)


def _rule_name(kind: str, text: str) -> str:
    if kind in ("exact", "suffix"):
        return names.normalize(text)
    if kind == "prefix":
        return text.lower().rstrip(".")
    return text if kind == "regex" else text.lower()


def _rewrite_answer(s: _Stanza, kind: str, match: str, replacement: str, rest: list[str]) -> RewriteRule | None:
    """`answer auto` (the rule reversed) or `answer name FROM TO` (a regex on answer owners)."""
    if not rest:
        return None
    if rest == ["answer", "auto"]:
        if kind == "regex":
            raise s.err("'answer auto' needs an exact, prefix, suffix or substring rule; "
                        "use 'answer name FROM TO' with regex")
        return RewriteRule(kind, _rule_name(kind, replacement), _rule_name(kind, match))
    if len(rest) == 4 and rest[:2] == ["answer", "name"]:
        try:
            re.compile(rest[2])
        except re.error as exc:
            raise s.err(f"invalid regex pattern in an answer rule: {rest[2]}: {exc}") from None
        return RewriteRule("regex", rest[2], rest[3])
    if rest[0] == "answer" and len(rest) >= 2 and rest[1] in ("value", "auto", "name"):
        raise s.arg_err()
    raise s.err(f"unexpected argument(s) {' '.join(rest)!r} in a name rule")


def rewrite_name(rule: RewriteRule, name: str) -> str | None:
    """name (normalized) rewritten by rule, None when the rule does not match (plugin/rewrite name.go)."""
    if rule.kind == "exact":
        return rule.replacement if name == rule.match else None
    if rule.kind == "prefix":
        return rule.replacement + name[len(rule.match):] if name.startswith(rule.match) else None
    if rule.kind == "suffix":
        return name[:-len(rule.match)] + rule.replacement if name.endswith(rule.match) else None
    if rule.kind == "substring":
        return name.replace(rule.match, rule.replacement) if rule.match in name else None
    found = re.search(rule.match, name)
    if found is None:
        return None
    out = rule.replacement
    for index, group in enumerate(found.groups(), start=1):
        out = out.replace(f"{{{index}}}", group or "")
    return names.normalize(out)


# ------------------------------------------------------------- the blocks

def _no_args(s: _Stanza) -> None:
    if s.d.args:
        raise s.arg_err()


def _address(s: _Stanza, default: str) -> str:
    if len(s.d.args) > 1:
        raise s.arg_err()
    return s.d.args[0] if s.d.args else default


def _reload(s: _Stanza) -> tuple[float, float]:
    if len(s.d.args) > 2:
        raise s.arg_err()
    interval = s.duration(s.d.args[0], s.d.line) if s.d.args else 30.0
    jitter = s.duration(s.d.args[1], s.d.line) if len(s.d.args) > 1 else 15.0
    if interval < 2:
        raise CorefileError("plugin/reload: interval value must be greater or equal to 2s")
    if jitter < 1:
        raise CorefileError("plugin/reload: jitter value must be greater or equal to 1s")
    return interval, min(jitter, interval / 2)


def _health(s: _Stanza) -> tuple[str, float]:
    address = _address(s, ":8080")
    lameduck = 0.0
    for line in s.d.lines:
        if line.name != "lameduck":
            raise s.err(f"unknown property '{line.name}'", line.line)
        if len(line.args) != 1:
            raise s.arg_err(line)
        lameduck = s.duration(line.args[0], line.line)
    return address, lameduck


def _bufsize(s: _Stanza) -> int:
    if len(s.d.args) > 1:
        raise s.arg_err()
    size = s.integer(s.d.args[0], s.d.line) if s.d.args else 1232
    if not 512 <= size <= 4096:
        raise s.err("bufsize must be within 512 - 4096")
    return size


@dataclass
class _Globals:
    health: tuple[str, float] | None = None
    ready: str | None = None
    prometheus: str | None = None
    reload: tuple[float, float] | None = None


def _server(block: ServerBlock, filename: str, read_file: ReadFile, zones: tuple[str, ...], port: int,
            glob: _Globals) -> ServerConfig:
    seen: set[str] = set()
    opts: dict = {}
    rewrites: list[RewriteRule] = []
    for directive in block.directives:
        s = _Stanza(directive, filename)
        name = directive.name
        if name not in SUPPORTED:
            raise s.err(f"plugin '{name}' is not supported by svcnet")
        if name in seen and name != "rewrite":
            raise CorefileError(f"plugin/{name}: {ERR_ONCE}")
        seen.add(name)
        if name == "kubernetes":
            opts["kubernetes"] = _kubernetes(s, zones)
        elif name == "forward":
            opts["forward"] = _forward(s, read_file)
        elif name == "cache":
            opts["cache"] = _cache(s, zones)
        elif name == "hosts":
            opts["hosts"] = _hosts(s, zones)
        elif name == "rewrite":
            rewrites.append(_rewrite(s))
        elif name == "bufsize":
            opts["bufsize"] = _bufsize(s)
        elif name in ("loop", "loadbalance"):
            if name == "loadbalance" and directive.args[:1] not in ((), ("round_robin",)):
                raise s.err(f"unknown policy: {directive.args[0]}")
            if name == "loop":
                _no_args(s)
            opts[name] = True
        elif name == "log":
            opts["log"] = True
        elif name == "errors":
            if len(directive.args) > 1 or directive.args[:1] not in ((), ("stdout",)):
                raise s.arg_err()
        else:
            _global(s, glob)
    order = tuple(p for p in PLUGIN_ORDER if p in seen)
    return ServerConfig(zones=zones, port=port, plugins=order, rewrites=tuple(rewrites), line=block.line, **opts)


def _global(s: _Stanza, glob: _Globals) -> None:
    """health, ready, prometheus, reload: one per process; the first block's setting wins, as CoreDNS
    can only bind each address once."""
    name = s.d.name
    if name == "health":
        glob.health = glob.health or _health(s)
    elif name == "ready":
        glob.ready = glob.ready or _address(s, ":8181")
    elif name == "prometheus":
        glob.prometheus = glob.prometheus or _address(s, "localhost:9153")
    elif name == "reload":
        glob.reload = glob.reload or _reload(s)


def build(blocks: list[ServerBlock], *, filename: str = "Corefile", read_file: ReadFile,
          default_port: int = 53) -> CorefileConfig:
    """The configuration the server blocks describe; CorefileError for anything CoreDNS would refuse."""
    if not blocks:
        raise CorefileError(f"{filename}: no server blocks")
    glob = _Globals()
    servers: list[ServerConfig] = []
    defined: set[tuple[str, int]] = set()
    for block in blocks:
        keys = [server_key(k, default_port) for k in block.keys]
        ports = {port for _, port in keys}
        if len(ports) > 1:
            raise CorefileError(f"{filename}:{block.line} - svcnet needs one port per server block: {block.keys}")
        for key in keys:
            if key in defined:
                raise CorefileError(f"cannot serve dns://{key[0]}:{key[1]} - it is already defined")
            defined.add(key)
        zones = tuple(zone for zone, _ in keys)
        servers.append(_server(block, filename, read_file, zones, keys[0][1], glob))
    ports = tuple(sorted({s.port for s in servers}))
    return CorefileConfig(servers=tuple(servers), health=glob.health, ready=glob.ready,
                          prometheus=glob.prometheus, reload=glob.reload, ports=ports)


def load(text: str, *, read_file: ReadFile, env: Mapping[str, str] | None = None, filename: str = "Corefile",
         default_port: int = 53) -> CorefileConfig:
    """Parse and set up a Corefile's text: the whole of what `svcnet dns --corefile` runs."""
    blocks = parse(text, filename=filename, valid=PLUGIN_ORDER, env=env)
    return build(blocks, filename=filename, read_file=read_file, default_port=default_port)
