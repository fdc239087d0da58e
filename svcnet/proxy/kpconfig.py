"""kube-proxy's configuration: a KubeProxyConfiguration file (kubeproxy.config.k8s.io/v1alpha1) or its
command line, resolved into the settings svcnet's proxy acts on. Pure: callers read the file.

Upstream (cmd/kube-proxy/app/options.go, pkg/proxy/apis/config/v1alpha1 defaults and conversion,
validation/validation.go, server_linux.go's platform defaults, ≈ v1.33) does, and so does this:

- `--config FILE` decodes the file strictly; if only strictness fails (an unknown field), it decodes
  again leniently and goes on with a warning. A value of the wrong type, a missing or foreign
  apiVersion/kind, or YAML that does not parse is an error ("failed to decode: ...").
- The file then *is* the configuration: kube-proxy ignores its other flags (it documents so, and
  issues #98302 and #107156 show it), except `--hostname-override`, which wins over the file's
  hostnameOverride. svcnet does the same and notes each ignored flag, so no flag is dropped silently.
- Without --config, flags override the v1alpha1 defaults.
- v1alpha1's per-mode fields collapse by mode: masqueradeAll and the sync periods come from
  `nftables:` in nftables mode and `iptables:` otherwise; the masquerade bit is nftables.masqueradeBit
  in nftables mode (the `--iptables-masquerade-bit` flag sets only the iptables one, as upstream).
- Platform defaults: mode iptables; detectLocalMode ClusterCIDR; nftables mode accepts NodePorts on
  the node's primary IPs only unless nodePortAddresses says otherwise.
- validation: every field error is collected and reported at once, in upstream's
  "Field: Invalid value: v: why" form, `[a, b]` for several.

svcnet implements the iptables and nftables modes; `ipvs` is a clear error.
"""
from __future__ import annotations

import argparse
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from svcnet.proxy import flags
from svcnet.proxy.plan import (
    DETECT_LOCAL_BRIDGE,
    DETECT_LOCAL_CLUSTER_CIDR,
    DETECT_LOCAL_INTERFACE_PREFIX,
    DETECT_LOCAL_NODE_CIDR,
)

API_VERSION = "kubeproxy.config.k8s.io/v1alpha1"
KIND = "KubeProxyConfiguration"
# A KubeProxyConfiguration is a few hundred bytes; a file past this is not one (and is not read whole).
MAX_CONFIG_BYTES = 1 << 20

MODE_IPTABLES = "iptables"
MODE_NFTABLES = "nftables"
MODE_IPVS = "ipvs"
PROXY_MODES = (MODE_IPTABLES, MODE_NFTABLES)  # what svcnet implements
DETECT_LOCAL_MODES = (DETECT_LOCAL_CLUSTER_CIDR, DETECT_LOCAL_NODE_CIDR, DETECT_LOCAL_BRIDGE,
                      DETECT_LOCAL_INTERFACE_PREFIX)
NODEPORT_PRIMARY = "primary"

HEALTHZ_PORT = 10256
METRICS_PORT = 10249


class ConfigError(Exception):
    """The configuration cannot be used; the message says why, in kube-proxy's words."""


@dataclass(frozen=True)
class KubeProxySettings:
    """kube-proxy's configuration after defaulting: the parts svcnet's proxy acts on.

    The bind addresses are None when nothing set them (a flag-only command line): the daemon then
    picks kube-proxy's defaults for a node namespace, and nothing for a proxy outside one.
    """

    mode: str = ""  # "" until platform defaults: iptables
    hostname_override: str = ""
    bind_address: str = "0.0.0.0"
    cluster_cidrs: tuple[str, ...] = ()
    detect_local_mode: str = ""  # "" until platform defaults: ClusterCIDR
    bridge_interface: str = ""
    interface_name_prefix: str = ""
    iptables_masquerade_bit: int = 14
    nftables_masquerade_bit: int = 14
    masquerade_all: bool = False
    localhost_nodeports: bool = True
    nodeport_addresses: tuple[str, ...] = ()
    sync_period: float = 30.0
    min_sync_period: float = 1.0
    config_sync_period: float = 900.0
    healthz_bind_address: str | None = None
    metrics_bind_address: str | None = None
    kubeconfig: str = ""
    conntrack_tcp_be_liberal: bool = False
    # Checked only, as upstream validates them; svcnet does not act on them.
    checked: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def masquerade_bit(self) -> int:
        return self.nftables_masquerade_bit if self.mode == MODE_NFTABLES else self.iptables_masquerade_bit


# --- decoding the file -------------------------------------------------------------------------------------------

# The v1alpha1 fields, each with how its JSON value is typed ("?" marks a pointer field that may stay unset).
_DURATION, _STR, _BOOL, _INT32, _FLOAT, _STRLIST, _BOOLMAP, _OBJECT = (
    "duration", "string", "bool", "int32", "float32", "[]string", "map[string]bool", "object")
_SCHEMA: dict[str, Any] = {
    "apiVersion": _STR, "kind": _STR,
    "featureGates": _BOOLMAP,
    "clientConnection": {"kubeconfig": _STR, "acceptContentTypes": _STR, "contentType": _STR, "qps": _FLOAT,
                         "burst": _INT32},
    "logging": _OBJECT,  # component-base's LoggingConfiguration, taken as it is
    "hostnameOverride": _STR, "bindAddress": _STR, "healthzBindAddress": _STR, "metricsBindAddress": _STR,
    "bindAddressHardFail": _BOOL, "enableProfiling": _BOOL, "showHiddenMetricsForVersion": _STR,
    "mode": _STR,
    "iptables": {"masqueradeBit": _INT32, "masqueradeAll": _BOOL, "localhostNodePorts": _BOOL,
                 "syncPeriod": _DURATION, "minSyncPeriod": _DURATION},
    "ipvs": {"syncPeriod": _DURATION, "minSyncPeriod": _DURATION, "scheduler": _STR, "excludeCIDRs": _STRLIST,
             "strictARP": _BOOL, "tcpTimeout": _DURATION, "tcpFinTimeout": _DURATION, "udpTimeout": _DURATION},
    "nftables": {"masqueradeBit": _INT32, "masqueradeAll": _BOOL, "syncPeriod": _DURATION,
                 "minSyncPeriod": _DURATION},
    "winkernel": {"networkName": _STR, "sourceVip": _STR, "enableDSR": _BOOL, "rootHnsEndpointName": _STR,
                  "forwardHealthCheckVip": _BOOL},
    "detectLocalMode": _STR,
    "detectLocal": {"bridgeInterface": _STR, "interfaceNamePrefix": _STR},
    "clusterCIDR": _STR,
    "nodePortAddresses": _STRLIST,
    "oomScoreAdj": _INT32,
    "conntrack": {"maxPerCore": _INT32, "min": _INT32, "tcpEstablishedTimeout": _DURATION,
                  "tcpCloseWaitTimeout": _DURATION, "tcpBeLiberal": _BOOL, "udpTimeout": _DURATION,
                  "udpStreamTimeout": _DURATION},
    "configSyncPeriod": _DURATION,
    "portRange": _STR,
    "windowsRunAsService": _BOOL,
}


def load_yaml(text: str) -> Any:
    """The one YAML (or JSON) document in text, safely: PyYAML's safe loader (no objects built from tags),
    the size bounded by MAX_CONFIG_BYTES, and no recursion past Python's limit. Aliases stay shared
    objects and decode() walks only the schema's fields, so no alias expansion can blow up."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"failed to decode: the file is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"failed to decode: yaml: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ConfigError("failed to decode: yaml: nested too deeply") from None


def decode(text: str) -> tuple[KubeProxySettings, tuple[str, ...]]:
    """(settings, warnings) from a KubeProxyConfiguration file; ConfigError when kube-proxy would refuse it."""
    document = load_yaml(text)
    if document is None:
        raise ConfigError("failed to decode: Object 'Kind' is missing in the file (it is empty)")
    if not isinstance(document, dict):
        raise ConfigError(f"failed to decode: expected a {KIND} object, got {_json_type(document)}")
    kind, api_version = document.get("kind"), document.get("apiVersion")
    if not kind:
        raise ConfigError("failed to decode: Object 'Kind' is missing")
    if api_version != API_VERSION or kind != KIND:
        raise ConfigError(f'failed to decode: no kind "{kind}" is registered for version "{api_version}" '
                          f'(kube-proxy reads kind {KIND}, apiVersion {API_VERSION})')
    unknown: list[str] = []
    values = _typed(document, _SCHEMA, "", unknown)
    warnings = tuple(f'using lenient decoding as strict decoding failed: strict decoding error: unknown field '
                     f'"{name}"' for name in unknown)
    return _convert(values), warnings


def _typed(obj: Mapping[str, Any], schema: Mapping[str, Any], path: str, unknown: list[str]) -> dict[str, Any]:
    """obj's known fields, type-checked as Go's JSON decoding checks them; unknown field paths collected."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{path}{key}"
        kind = schema.get(key) if isinstance(key, str) else None
        if kind is None:
            unknown.append(str(name))
            continue
        if value is None:  # JSON null leaves a Go field at its zero value
            continue
        if isinstance(kind, dict):
            if not isinstance(value, dict):
                raise _type_error(value, name, "struct")
            out[key] = _typed(value, kind, f"{name}.", unknown)
        else:
            out[key] = _check_type(value, kind, name)
    return out


def _check_type(value: Any, kind: str, name: str) -> Any:
    if kind == _STR and isinstance(value, str):
        return value
    if kind == _BOOL and isinstance(value, bool):
        return value
    if kind == _INT32 and isinstance(value, int) and not isinstance(value, bool):
        if not -2**31 <= value < 2**31:
            raise ConfigError(f"failed to decode: json: cannot unmarshal number {value} into Go struct field "
                              f"{name} of type int32")
        return value
    if kind == _FLOAT and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == _DURATION and isinstance(value, str):
        try:
            return flags.go_duration(value)
        except ValueError as exc:
            raise ConfigError(f"failed to decode: {name}: {exc}") from None
    if kind == _STRLIST and isinstance(value, list):
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise _type_error(item, f"{name}[{index}]", "string")
        return tuple(value)
    if kind == _BOOLMAP and isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not isinstance(item, bool):
                raise _type_error(item, f"{name}.{key}", "bool")
        return dict(value)
    if kind == _OBJECT and isinstance(value, dict):
        return value
    raise _type_error(value, name, {_DURATION: "string"}.get(kind, kind))


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__  # a YAML timestamp or binary: not JSON at all


def _type_error(value: Any, name: str, go_type: str) -> ConfigError:
    return ConfigError(f"failed to decode: json: cannot unmarshal {_json_type(value)} into Go struct field "
                       f"{name} of type {go_type}")


def _convert(v: dict[str, Any]) -> KubeProxySettings:
    """The decoded v1alpha1 fields with v1alpha1's defaults applied, collapsed by mode as upstream converts."""
    mode = v.get("mode", "")
    by_mode = v.get("nftables", {}) if mode == MODE_NFTABLES else v.get("iptables", {})
    if mode == MODE_IPVS:
        by_mode = {**v.get("ipvs", {}), "masqueradeAll": v.get("iptables", {}).get("masqueradeAll", False)}
    bind_address = v.get("bindAddress") or "0.0.0.0"
    ipv6 = ":" in bind_address
    healthz = _append_port(v.get("healthzBindAddress", ""), "[::]" if ipv6 else "0.0.0.0", HEALTHZ_PORT)
    metrics = _append_port(v.get("metricsBindAddress", ""), "[::1]" if ipv6 else "127.0.0.1", METRICS_PORT)
    detect_local = v.get("detectLocal", {})
    iptables, nftables = v.get("iptables", {}), v.get("nftables", {})
    conntrack = v.get("conntrack", {})
    return KubeProxySettings(
        mode=mode,
        hostname_override=v.get("hostnameOverride", ""),
        bind_address=bind_address,
        cluster_cidrs=tuple(v["clusterCIDR"].split(",")) if v.get("clusterCIDR") else (),
        detect_local_mode=v.get("detectLocalMode", ""),
        bridge_interface=detect_local.get("bridgeInterface", ""),
        interface_name_prefix=detect_local.get("interfaceNamePrefix", ""),
        iptables_masquerade_bit=iptables.get("masqueradeBit", 14),
        nftables_masquerade_bit=nftables.get("masqueradeBit", 14),
        masquerade_all=by_mode.get("masqueradeAll", False),
        localhost_nodeports=iptables.get("localhostNodePorts", True),
        nodeport_addresses=v.get("nodePortAddresses", ()),
        # v1alpha1 defaults a zero period: in a file, "0s" means the default, not "none".
        sync_period=by_mode.get("syncPeriod") or 30.0,
        min_sync_period=by_mode.get("minSyncPeriod") or 1.0,
        config_sync_period=v.get("configSyncPeriod") or 900.0,
        healthz_bind_address=healthz,
        metrics_bind_address=metrics,
        kubeconfig=v.get("clientConnection", {}).get("kubeconfig", ""),
        conntrack_tcp_be_liberal=conntrack.get("tcpBeLiberal", False),
        checked={"oomScoreAdj": v.get("oomScoreAdj"), "conntrack": conntrack,
                 "burst": v.get("clientConnection", {}).get("burst", 10), "portRange": v.get("portRange", "")},
    )


def _append_port(address: str, default_host: str, port: int) -> str:
    """v1alpha1's defaulting of a bind address: unset is the default host; an IP alone gets the port."""
    if not address:
        return f"{default_host}:{port}"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


# --- platform defaults and validation ----------------------------------------------------------------------------

def apply_platform_defaults(s: KubeProxySettings) -> KubeProxySettings:
    """server_linux.go's platformApplyDefaults: iptables mode, ClusterCIDR detection, nftables' primary NodePorts."""
    mode = s.mode or MODE_IPTABLES
    nodeport_addresses = s.nodeport_addresses
    if mode == MODE_NFTABLES and not nodeport_addresses:
        nodeport_addresses = (NODEPORT_PRIMARY,)
    return replace(s, mode=mode, detect_local_mode=s.detect_local_mode or DETECT_LOCAL_CLUSTER_CIDR,
                   nodeport_addresses=nodeport_addresses)


def validate(s: KubeProxySettings) -> None:
    """kube-proxy's validation.Validate on the settings; ConfigError listing every problem."""
    errors: list[str] = []
    root = "KubeProxyConfiguration"

    def invalid(path: str, value: Any, why: str) -> None:
        errors.append(f"{root}.{path}: Invalid value: {_show(value)}: {why}")

    for path, bit in (("KubeProxyIPTablesConfiguration.MasqueradeBit", s.iptables_masquerade_bit),
                      *((("KubeProxyNFTablesConfiguration.MasqueradeBit", s.nftables_masquerade_bit),)
                        if s.mode == MODE_NFTABLES else ())):
        if not 0 <= bit <= 31:
            invalid(path, bit, "must be within the range [0, 31]")
    _validate_linux(s, invalid)
    if s.mode not in ("", MODE_IPTABLES, MODE_IPVS, MODE_NFTABLES):
        invalid("Mode.ProxyMode", s.mode,
                "must be iptables, ipvs, nftables or blank (blank means the best-available proxy [currently iptables])")
    if s.checked.get("burst", 0) < 0:
        invalid("ClientConnection.Burst", s.checked["burst"], "must be greater than or equal to 0")
    _validate_periods(s, invalid)
    try:
        ipaddress.ip_address(s.bind_address)
    except ValueError:
        invalid("BindAddress", s.bind_address, "not a valid textual representation of an IP address")
    if s.healthz_bind_address:
        _validate_host_port(s.healthz_bind_address, f"{root}.HealthzBindAddress", errors)
    if s.metrics_bind_address is not None:
        _validate_host_port(s.metrics_bind_address, f"{root}.MetricsBindAddress", errors)
    port_range = s.checked.get("portRange", "")
    if port_range and not re.fullmatch(r"\d+(?:[-+]\d+)?", port_range.strip()):
        invalid("PortRange", port_range, "must be a valid port range (e.g. 300-2000)")
    _validate_nodeport_addresses(s.nodeport_addresses, invalid)
    _validate_detect_local(s, invalid, errors)
    if errors:
        raise ConfigError(errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]")
    if s.mode == MODE_IPVS:
        raise ConfigError("proxy mode ipvs: svcnet implements the iptables and nftables modes only")


def _validate_linux(s: KubeProxySettings, invalid: Callable[[str, Any, str], None]) -> None:
    base = "KubeProxyLinuxConfiguration"
    conntrack = s.checked.get("conntrack", {})
    for key, name in (("maxPerCore", "MaxPerCore"), ("min", "Min")):
        if conntrack.get(key, 0) < 0:
            invalid(f"{base}.KubeProxyConntrackConfiguration.{name}", conntrack[key], "must be greater than or equal to 0")
    for key, name in (("tcpEstablishedTimeout", "TCPEstablishedTimeout"), ("tcpCloseWaitTimeout", "TCPCloseWaitTimeout"),
                      ("udpTimeout", "UDPTimeout"), ("udpStreamTimeout", "UDPStreamTimeout")):
        if conntrack.get(key, 0) < 0:
            invalid(f"{base}.KubeProxyConntrackConfiguration.{name}", flags.format_go_duration(conntrack[key]),
                    "must be greater than or equal to 0")
    oom = s.checked.get("oomScoreAdj")
    if oom is not None and not -1000 <= oom <= 1000:
        invalid(f"{base}.OOMScoreAdj", oom, "must be within the range [-1000, 1000]")


def _validate_periods(s: KubeProxySettings, invalid: Callable[[str, Any, str], None]) -> None:
    go = flags.format_go_duration
    if s.config_sync_period <= 0:
        invalid("ConfigSyncPeriod", go(s.config_sync_period), "must be greater than 0")
    if s.sync_period <= 0:
        invalid("SyncPeriod", go(s.sync_period), "must be greater than 0")
    if s.min_sync_period < 0:
        invalid("MinSyncPeriod", go(s.min_sync_period), "must be greater than or equal to 0")
    if s.min_sync_period > s.sync_period:
        invalid("SyncPeriod", go(s.min_sync_period), "must be greater than or equal to KubeProxyConfiguration.MinSyncPeriod")


def _validate_host_port(text: str, path: str, errors: list[str]) -> None:
    host, sep, port = text.rpartition(":")
    if not sep or (":" in host and not (host.startswith("[") and host.endswith("]"))):
        errors.append(f"{path}: Invalid value: {_show(text)}: must be IP:port")
        return
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        errors.append(f"{path}: Invalid value: {_show(host)}: must be a valid IP")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        errors.append(f"{path}: Invalid value: {_show(port)}: must be a valid port")


def _validate_nodeport_addresses(addresses: Sequence[str], invalid: Callable[[str, Any, str], None]) -> None:
    for index, address in enumerate(addresses):
        if address == NODEPORT_PRIMARY:
            if index != 0 or len(addresses) != 1:
                invalid(f"NodePortAddresses[{index}]", address, "can't use both 'primary' and CIDRs")
            break
        if not _is_cidr(address):
            invalid(f"NodePortAddresses[{index}]", address, "must be a valid CIDR")


def _validate_detect_local(s: KubeProxySettings, invalid: Callable[[str, Any, str], None],
                           errors: list[str]) -> None:
    mode = s.detect_local_mode
    if mode not in ("", *DETECT_LOCAL_MODES):
        supported = ", ".join(f'"{m}"' for m in (*DETECT_LOCAL_MODES, ""))
        errors.append(f'KubeProxyConfiguration.DetectLocalMode: Unsupported value: "{mode}": '
                      f"supported values: {supported}")
    path = "DetectLocalConfiguration"
    if mode == DETECT_LOCAL_BRIDGE and not s.bridge_interface:
        invalid(f"{path}.InterfaceName", "", "must not be empty")
    if mode == DETECT_LOCAL_INTERFACE_PREFIX and not s.interface_name_prefix:
        invalid(f"{path}.InterfacePrefix", "", "must not be empty")
    if mode == DETECT_LOCAL_CLUSTER_CIDR and s.cluster_cidrs:
        cidrs = s.cluster_cidrs
        pair_error = "must be a either a single CIDR or dual-stack pair of CIDRs (e.g. [10.100.0.0/16, fde4:8dba:82e1::/48]"
        if len(cidrs) > 2:
            invalid(f"{path}.ClusterCIDRs", list(cidrs), pair_error)
            return
        for index, cidr in enumerate(cidrs):
            if not _is_cidr(cidr):
                invalid(f"{path}.ClusterCIDRs[{index}]", cidr,
                        "must be a valid CIDR block (e.g. 10.100.0.0/16 or fde4:8dba:82e1::/48)")
        if len(cidrs) == 2 and all(map(_is_cidr, cidrs)) and len({":" in c for c in cidrs}) != 2:
            invalid(f"{path}.ClusterCIDRs", list(cidrs), pair_error)


def _is_cidr(text: str) -> bool:
    if "/" not in text:
        return False  # Go's net.ParseCIDR wants the prefix length
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[]string{" + ", ".join(f'"{v}"' for v in value) + "}"
    return str(value)


# --- the command line --------------------------------------------------------------------------------------------

# Each kube-proxy flag svcnet takes: (flag, argparse dest). All default to None, so "given" is "not None".
KUBE_PROXY_FLAGS: tuple[tuple[str, str], ...] = (
    ("--proxy-mode", "mode"), ("--cluster-cidr", "cluster_cidr"), ("--detect-local-mode", "detect_local_mode"),
    ("--pod-bridge-interface", "pod_bridge_interface"), ("--pod-interface-name-prefix", "pod_interface_name_prefix"),
    ("--iptables-masquerade-bit", "iptables_masquerade_bit"), ("--masquerade-all", "masquerade_all"),
    ("--iptables-localhost-nodeports", "iptables_localhost_nodeports"),
    ("--nodeport-addresses", "nodeport_addresses"), ("--iptables-sync-period", "sync_period"),
    ("--iptables-min-sync-period", "min_sync_period"), ("--metrics-bind-address", "metrics_bind_address"),
    ("--healthz-bind-address", "healthz_bind_address"), ("--conntrack-tcp-be-liberal", "conntrack_tcp_be_liberal"),
)


def add_kube_proxy_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                         default_cluster_cidrs: Sequence[str]) -> None:
    """kube-proxy's flags, with its names and meanings (svcnet's older names as aliases)."""
    def boolean(*names: str, dest: str, help: str) -> None:
        parser.add_argument(*names, dest=dest, nargs="?", const=True, default=None, type=flags.go_bool,
                            metavar="true|false", help=help)

    parser.add_argument("--config", default=None, metavar="FILE",
                        help=f"a {KIND} ({API_VERSION}) YAML file; as kube-proxy, it then replaces every other "
                             "kube-proxy flag except --hostname-override")
    parser.add_argument("--proxy-mode", "--mode", dest="mode", default=None, choices=PROXY_MODES,
                        help="proxy mode (default iptables)")
    parser.add_argument("--cluster-cidr", action="append", metavar="CIDR[,CIDR]",
                        help="pod network(s): with --detect-local-mode ClusterCIDR, traffic from outside is "
                             "masqueraded; repeat (or comma-join) for dual-stack; '' for none "
                             f"(default {','.join(default_cluster_cidrs)})")
    parser.add_argument("--detect-local-mode", default=None, choices=DETECT_LOCAL_MODES,
                        help="how traffic from local pods is recognised (default ClusterCIDR)")
    parser.add_argument("--pod-bridge-interface", default=None, metavar="NAME",
                        help="with --detect-local-mode BridgeInterface: traffic from this bridge is local")
    parser.add_argument("--pod-interface-name-prefix", default=None, metavar="PREFIX",
                        help="with --detect-local-mode InterfaceNamePrefix: traffic from interfaces named so is local")
    parser.add_argument("--iptables-masquerade-bit", type=int, default=None, metavar="0-31",
                        help="the fwmark bit that marks packets to masquerade (default 14)")
    boolean("--masquerade-all", dest="masquerade_all", help="SNAT all traffic to cluster IPs")
    boolean("--iptables-localhost-nodeports", dest="iptables_localhost_nodeports",
            help="accept NodePort connections to 127.0.0.1 (default true)")
    parser.add_argument("--nodeport-addresses", action="append", default=None, metavar="CIDR,...",
                        help="only node addresses in these CIDRs (or 'primary') accept NodePorts")
    parser.add_argument("--iptables-min-sync-period", "--min-sync-period", dest="min_sync_period", default=None,
                        metavar="DURATION", help="minimum time between syncs (default 1s)")
    parser.add_argument("--iptables-sync-period", "--sync-period", dest="sync_period", default=None,
                        metavar="DURATION",
                        help="a full resync at least this often; repairs rules deleted by hand (default 30s)")
    parser.add_argument("--metrics-bind-address", default=None, metavar="IP:PORT",
                        help=f"serve /metrics here (default 127.0.0.1:{METRICS_PORT}; \"\" or 0 turns it off)")
    parser.add_argument("--healthz-bind-address", default=None, metavar="IP:PORT",
                        help=f"serve /healthz and /livez here (default 0.0.0.0:{HEALTHZ_PORT}; \"\" or 0 turns it off)")
    boolean("--conntrack-tcp-be-liberal", dest="conntrack_tcp_be_liberal",
            help="set nf_conntrack_tcp_be_liberal, so out-of-window TCP packets are not INVALID")


def given_flags(args: argparse.Namespace) -> list[str]:
    """The kube-proxy flags (as named above) the command line set."""
    return [name for name, dest in KUBE_PROXY_FLAGS if getattr(args, dest, None) is not None]


def from_flags(args: argparse.Namespace, default_cluster_cidrs: Sequence[str]) -> KubeProxySettings:
    """v1alpha1's defaults with the flags given on top (FlagError names a bad flag)."""
    given = {dest: getattr(args, dest, None) for _, dest in KUBE_PROXY_FLAGS}
    s = KubeProxySettings(cluster_cidrs=flags.cluster_cidrs(given["cluster_cidr"], default_cluster_cidrs))
    updates: dict[str, Any] = {}
    if given["mode"] is not None:
        updates["mode"] = given["mode"]
    for dest, name in (("detect_local_mode", "detect_local_mode"), ("pod_bridge_interface", "bridge_interface"),
                       ("pod_interface_name_prefix", "interface_name_prefix"),
                       ("masquerade_all", "masquerade_all"), ("iptables_localhost_nodeports", "localhost_nodeports"),
                       ("iptables_masquerade_bit", "iptables_masquerade_bit"),
                       ("conntrack_tcp_be_liberal", "conntrack_tcp_be_liberal"),
                       ("metrics_bind_address", "metrics_bind_address"),
                       ("healthz_bind_address", "healthz_bind_address")):
        if given[dest] is not None:
            updates[name] = given[dest]
    if given["iptables_masquerade_bit"] is not None and not 0 <= given["iptables_masquerade_bit"] <= 31:
        raise flags.FlagError("--iptables-masquerade-bit: must be within the range [0, 31]")
    if given["nodeport_addresses"] is not None:
        updates["nodeport_addresses"] = flags.nodeport_addresses(given["nodeport_addresses"])
    for dest, flag in (("min_sync_period", "--iptables-min-sync-period"), ("sync_period", "--iptables-sync-period")):
        if given[dest] is not None:
            try:
                updates[dest] = flags.parse_duration(given[dest])
            except flags.FlagError as exc:
                raise flags.FlagError(f"{flag}: {exc}") from None
    s = replace(s, **updates)
    if s.sync_period and s.sync_period < s.min_sync_period:
        raise flags.FlagError("--iptables-sync-period must not be shorter than --iptables-min-sync-period")
    return s


def resolve(args: argparse.Namespace, default_cluster_cidrs: Sequence[str],
            config_text: str | None) -> tuple[KubeProxySettings, list[str]]:
    """(settings, notes) from the command line and, when --config was given, the file's text.

    Raises flags.FlagError for a bad flag and ConfigError for a bad file or configuration.
    """
    notes: list[str] = []
    if config_text is None:
        s = from_flags(args, default_cluster_cidrs)
    else:
        s, warnings = decode(config_text)
        notes.extend(warnings)
        notes.extend(f"{flag} is ignored: kube-proxy takes its configuration from --config alone"
                     for flag in given_flags(args))
    hostname = getattr(args, "node", "") or ""
    if hostname:
        if not hostname.strip():
            raise flags.FlagError("empty hostname-override is invalid")
        s = replace(s, hostname_override=hostname.strip().lower())
    s = apply_platform_defaults(s)
    if config_text is None:
        _validate_flag_values(s)
    else:
        validate(s)
    return s, notes


def _validate_flag_values(s: KubeProxySettings) -> None:
    """The cross-field checks upstream's validation makes, worded for flags."""
    if s.detect_local_mode == DETECT_LOCAL_BRIDGE and not s.bridge_interface:
        raise flags.FlagError("--detect-local-mode BridgeInterface needs --pod-bridge-interface")
    if s.detect_local_mode == DETECT_LOCAL_INTERFACE_PREFIX and not s.interface_name_prefix:
        raise flags.FlagError("--detect-local-mode InterfaceNamePrefix needs --pod-interface-name-prefix")
    if s.detect_local_mode == DETECT_LOCAL_CLUSTER_CIDR and len(s.cluster_cidrs) > 1:
        if len(s.cluster_cidrs) > 2 or len({":" in c for c in s.cluster_cidrs}) != 2:
            raise flags.FlagError("--cluster-cidr: must be a single CIDR or a dual-stack pair of CIDRs "
                                  "(e.g. 10.100.0.0/16,fde4:8dba:82e1::/48)")
