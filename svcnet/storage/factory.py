"""Pick a storage driver from a DSN, in one place (as kine's factory does)."""
from __future__ import annotations

import os
from urllib.parse import parse_qs

from svcnet.storage.base import Store
from svcnet.storage.memory import MemoryStore
from svcnet.storage.sqlite import SqliteStore

SUPPORTED = ("memory://", "sqlite:///ABSOLUTE/PATH.db", "sqlite://RELATIVE/PATH.db", "/a/bare/path.db",
             "etcd://HOST:PORT[,HOST:PORT...][?cacert=PATH&cert=PATH&key=PATH&prefix=/NAMESPACE]",
             "etcd:///ABSOLUTE/SOCKET/PATH[,...] (etcd on unix sockets)")
MAX_ETCD_ENDPOINTS = 16
ETCD_OPTIONS = ("cacert", "cert", "key", "prefix")
DEFAULT_ETCD_PORT = 2379


def open_store(dsn: str) -> Store:
    """memory:// is the in-memory driver; sqlite://PATH or a bare path is SQLite; etcd://… is etcd."""
    scheme, separator, rest = dsn.partition("://")
    if dsn == "etcd":  # `svcnet up --storage etcd` runs one; a bare API server needs to be told where
        raise ValueError("storage DSN 'etcd' names no endpoint: use etcd://HOST:PORT "
                         "(`svcnet up --storage etcd` runs a local etcd itself)")
    if not separator:
        return _sqlite(dsn)
    if scheme == "memory":
        if rest:
            raise ValueError(f"storage DSN {dsn!r}: memory:// takes no path")
        return MemoryStore()
    if scheme == "sqlite":
        return _sqlite(rest)
    if scheme == "etcd":
        from svcnet.storage.etcd import EtcdStore  # grpc loads only for a cluster that uses etcd
        return EtcdStore(parse_etcd_dsn(dsn))
    raise ValueError(f"storage DSN {dsn!r}: unknown scheme {scheme!r}; use one of {', '.join(SUPPORTED)}")


def _sqlite(path: str) -> Store:
    if not path:
        raise ValueError("storage DSN names no SQLite file; use sqlite:///ABSOLUTE/PATH.db")
    if path.startswith("//"):  # sqlite:/// followed by an absolute path: one root is enough
        path = "/" + path.lstrip("/")
    return SqliteStore(path)


def parse_etcd_dsn(dsn: str):  # -> EtcdConfig (imported lazily, as open_store does)
    """etcd://host:port[,host:port…] with TLS and a key namespace as query parameters.

    An endpoint that is an absolute path is etcd's client unix socket (etcd:///var/lib/svcnet/etcd/
    svcnet.client:0, what `svcnet up --storage etcd` runs).

    cacert turns TLS on (the CA that signed etcd's serving certificate, etcd's --trusted-ca-file);
    cert and key are a client certificate for etcd's --client-cert-auth, always as a pair; prefix is
    put before every key, so several clusters can share one etcd (kube-apiserver's --etcd-prefix
    is "/registry", which svcnet's keys carry already).
    """
    from svcnet.storage.etcd import EtcdConfig

    rest = dsn.partition("://")[2]
    hosts, _, query = rest.partition("?")
    if not hosts.startswith("/"):  # etcd://host:2379/ as etcd://host:2379; a socket path keeps its slashes
        hosts = hosts.rstrip("/")
    if not hosts or hosts == "/":
        raise ValueError(f"storage DSN {dsn!r} names no etcd endpoint; use etcd://HOST:PORT")
    endpoints = tuple(_endpoint(dsn, part) for part in hosts.split(","))
    if len(endpoints) > MAX_ETCD_ENDPOINTS:
        raise ValueError(f"storage DSN {dsn!r}: at most {MAX_ETCD_ENDPOINTS} etcd endpoints")
    options = _options(dsn, query)
    if ("cert" in options) != ("key" in options):
        raise ValueError(f"storage DSN {dsn!r}: cert and key go together (a client certificate and its key)")
    if "cert" in options and "cacert" not in options:
        raise ValueError(f"storage DSN {dsn!r}: a client certificate needs TLS; give cacert too")
    for name in ("cacert", "cert", "key"):
        if name in options and not os.path.isfile(options[name]):
            raise ValueError(f"storage DSN {dsn!r}: {name} file {options[name]!r} does not exist")
    prefix = options.get("prefix", "")
    if prefix and (not prefix.startswith("/") or prefix.endswith("/") or len(prefix) > 256):
        raise ValueError(f"storage DSN {dsn!r}: prefix must start with '/', not end with one, "
                         "and be at most 256 characters")
    return EtcdConfig(endpoints, ca_cert=options.get("cacert"), cert=options.get("cert"), key=options.get("key"),
                      root=prefix)


def _endpoint(dsn: str, text: str) -> tuple[str, int]:
    """(host, port), or (absolute unix socket path, 0)."""
    if text.startswith("/"):
        if len(text) > 107 or "\0" in text:
            raise ValueError(f"storage DSN {dsn!r}: bad unix socket path {text!r} (at most 107 characters)")
        return text, 0
    host, port = text, str(DEFAULT_ETCD_PORT)
    if text.startswith("["):  # [IPv6]:port
        host, _, after = text[1:].partition("]")
        if after:
            if not after.startswith(":"):
                raise ValueError(f"storage DSN {dsn!r}: bad endpoint {text!r}")
            port = after[1:]
    elif ":" in text:
        host, _, port = text.rpartition(":")
    if not host or len(host) > 253 or any(c in host for c in "/@ "):
        raise ValueError(f"storage DSN {dsn!r}: bad etcd host {host!r}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"storage DSN {dsn!r}: bad etcd port {port!r} (1-65535)")
    return host, int(port)


def _options(dsn: str, query: str) -> dict[str, str]:
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=len(ETCD_OPTIONS))
    except ValueError as exc:
        raise ValueError(f"storage DSN {dsn!r}: bad query ({exc})") from None
    options: dict[str, str] = {}
    for name, values in parsed.items():
        if name not in ETCD_OPTIONS:
            raise ValueError(f"storage DSN {dsn!r}: unknown option {name!r}; use {', '.join(ETCD_OPTIONS)}")
        if len(values) != 1 or not values[0]:
            raise ValueError(f"storage DSN {dsn!r}: option {name!r} takes one non-empty value")
        options[name] = values[0]
    return options
