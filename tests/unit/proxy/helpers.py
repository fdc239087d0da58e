"""Builders for Service / EndpointSlice dicts and a one-call render+model for proxy tests."""
from __future__ import annotations

from typing import Any

from svcnet.proxy import ProxyConfig, build_model, plan
from svcnet.proxy.iptables import jump_rules_restore_text, render_iptables
from svcnet.proxy.iptables.render import RenderedRules
from svcnet.proxy.iptables.ruleset import IptablesModel

NODE = "node-1"
NODE_IP = "192.168.0.2"
CLUSTER_CIDR = "10.244.0.0/16"


def service(namespace: str, name: str, cluster_ip: str, *ports: dict[str, Any], **spec: Any) -> dict:
    status = spec.pop("status", {})
    labels = spec.pop("labels", None)
    meta: dict[str, Any] = {"namespace": namespace, "name": name}
    if labels:
        meta["labels"] = labels
    return {"kind": "Service", "metadata": meta,
            "spec": {"clusterIP": cluster_ip, "ports": list(ports), **spec}, "status": status}


def port(name: str, number: int, protocol: str = "TCP", node_port: int | None = None) -> dict:
    result: dict[str, Any] = {"name": name, "port": number, "protocol": protocol}
    if node_port:
        result["nodePort"] = node_port
    return result


def endpoint(ip: str, node: str | None = None, ready: bool = True, serving: bool | None = None,
             terminating: bool = False) -> dict:
    conditions: dict[str, Any] = {"ready": ready, "terminating": terminating}
    if serving is not None:
        conditions["serving"] = serving
    result: dict[str, Any] = {"addresses": [ip], "conditions": conditions}
    if node:
        result["nodeName"] = node
    return result


def endpoint_slice(namespace: str, service_name: str, endpoints: list[dict], *ports: dict,
                   suffix: str = "abcde", address_type: str = "IPv4") -> dict:
    return {
        "kind": "EndpointSlice",
        "metadata": {"namespace": namespace, "name": f"{service_name}-{suffix}",
                     "labels": {"kubernetes.io/service-name": service_name}},
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": [{"name": p["name"], "port": p["port"], "protocol": p.get("protocol", "TCP")} for p in ports],
    }


def config(**overrides: Any) -> ProxyConfig:
    values: dict[str, Any] = {"cluster_cidrs": (CLUSTER_CIDR,), "node_ips": (NODE_IP,)}
    values.update(overrides)
    return ProxyConfig(**values)


def render(services: list[dict], slices: list[dict], *, node: str = NODE, **config_overrides: Any,
           ) -> RenderedRules:
    cfg = config(**config_overrides)
    state = build_model(services, slices, node, family=cfg.family)
    return render_iptables(plan(state, cfg))


def node_model(rendered: RenderedRules, local_addresses: tuple[str, ...] = (NODE_IP,)) -> IptablesModel:
    """A fresh node namespace with kube-proxy's jumps ensured and the rendered rules restored."""
    return IptablesModel.empty(local_addresses).restore(jump_rules_restore_text()).restore(rendered.text)


def lines_of(rendered: RenderedRules, chain: str) -> list[str]:
    return [line for line in rendered.text.splitlines() if line.startswith(f"-A {chain} ")]
