"""The rule-shaping flags' values, checked once for `svcnet proxy run`, `render` and `trace`.

Each function takes what argparse collected and returns the normalised value, or raises FlagError
naming the flag and the bad entry, as kube-proxy's flag validation does.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence


class FlagError(Exception):
    """A flag's value is not valid; the message names the flag."""


def cluster_cidrs(values: Sequence[str] | None, default: Sequence[str]) -> tuple[str, ...]:
    """--cluster-cidr, repeatable and comma-separated; the default when not given."""
    raw = default if values is None else [c for value in values for c in value.split(",")]
    cidrs = tuple(c.strip() for c in raw if c.strip())
    for cidr in cidrs:
        _check_cidr("--cluster-cidr", cidr)
    return cidrs


def node_ips(values: Iterable[str]) -> tuple[str, ...]:
    """--node-ip, repeatable: each an IPv4 or IPv6 address."""
    ips = tuple(values)
    for ip in ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise FlagError(f"--node-ip: invalid IP address {ip!r}") from None
    return ips


def nodeport_addresses(text: str | Sequence[str]) -> tuple[str, ...]:
    """--nodeport-addresses: CIDRs (repeatable, comma-separated, as a pflag string slice), or `primary`
    alone (the node's primary IPs): kube-proxy refuses `primary` mixed with CIDRs."""
    values = [text] if isinstance(text, str) else list(text)
    entries = tuple(a.strip() for value in values for a in value.split(",") if a.strip())
    for entry in entries:
        if entry == "primary":
            if len(entries) != 1:
                raise FlagError("--nodeport-addresses: can't use both 'primary' and CIDRs")
        else:
            _check_cidr("--nodeport-addresses", entry)
    return entries


def go_bool(text: str) -> bool:
    """A boolean flag's explicit value (`--masquerade-all=false`), as Go's strconv.ParseBool reads it."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f"invalid boolean {text!r}")


go_bool.__name__ = "boolean"  # argparse names the type in its error: "invalid boolean value: 'x'"


# --- durations ---------------------------------------------------------------------------------------------------

_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def go_duration(text: str) -> float:
    """Seconds in a Go duration ("30s", "1m30s", "500ms", "-1s", "0"), as time.ParseDuration reads it:
    the form of kube-proxy's duration flags and of the config file's durations. ValueError otherwise."""
    value = text
    sign = 1.0
    if value[:1] in ("+", "-"):
        sign, value = (-1.0 if value[0] == "-" else 1.0), value[1:]
    if value == "0":
        return 0.0
    parts = _GO_PART.findall(value)
    if not value or not parts or "".join(n + u for n, u in parts) != value:
        if value and re.fullmatch(r"\d+\.?\d*", value):
            raise ValueError(f'time: missing unit in duration "{text}"')
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * sum(float(n) * _GO_UNITS[u] for n, u in parts)


def parse_duration(text: str) -> float:
    """A duration flag: Go's form, or (svcnet's shorthand) a bare number of seconds; never negative."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = go_duration(value)
        except ValueError:
            raise FlagError(f"invalid duration {text!r} (use e.g. 1s, 500ms, 1m)") from None
    if not 0 <= seconds < float("inf"):
        raise FlagError(f"duration {text!r} must be a finite time, not negative")
    return seconds


def format_go_duration(seconds: float) -> str:
    """Seconds as Go's Duration.String() writes them ("1m30s", "500ms", "0s"), for messages."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    nanos = round(abs(seconds) * 1e9)
    if nanos < 1_000_000_000:
        for unit, scale in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanos >= scale:
                return f"{sign}{_trim(nanos / scale)}{unit}"
    hours, rest = divmod(nanos, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = f"{_trim(rest / 1e9)}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def _trim(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")


def _check_cidr(flag: str, cidr: str) -> None:
    try:
        ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise FlagError(f"{flag}: invalid CIDR {cidr!r}") from None
