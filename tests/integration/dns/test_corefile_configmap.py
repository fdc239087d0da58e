"""The Corefile from a ConfigMap (kube-system/coredns): read through the API, edits picked up at the next
check, an unreadable or invalid one refused while the running configuration keeps answering. A small
aiohttp app on loopback stands in for the API server's ConfigMap endpoint."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from svcnet.client.config import ClientConfig
from svcnet.dns.metrics import Metrics
from svcnet.dns.reload import CorefileServer, configmap_source, load_config
from svcnet.dns.zone import zone_from_objects
from tests.integration.dns.test_corefile_reload import address, ask
from tests.unit.dns.helpers import cluster_objects

COREFILE = ".:0 {{\n    hosts {{\n       {address} printer.lan\n       fallthrough\n    }}\n    kubernetes cluster.local\n}}\n"
PATH = "/api/v1/namespaces/kube-system/configmaps/coredns"


@pytest.fixture
async def api() -> AsyncIterator[tuple[dict, str]]:
    """(the ConfigMap served, or {} for 404; the server URL)."""
    state: dict = {"configmap": {}}

    async def get(_: web.Request) -> web.Response:
        if not state["configmap"]:
            return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound",
                                      "message": 'configmaps "coredns" not found'}, status=404)
        return web.json_response(state["configmap"])
    app = web.Application()
    app.router.add_get(PATH, get)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield state, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def configmap(text: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system"},
            "data": {"Corefile": text}}


async def test_configmap_edits_take_effect_and_bad_ones_are_refused(api: tuple[dict, str],
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    state, url = api
    state["configmap"] = configmap(COREFILE.format(address="10.1.2.3"))
    source = configmap_source("kube-system/coredns", ClientConfig(server=url))
    text = await source.read()
    server = CorefileServer(source, text, load_config(text, {}), zone_from_objects(cluster_objects()), Metrics(),
                            host="127.0.0.1", local_ips=(), env={})
    await server.start()
    port = server.servers[0].port
    try:
        assert address(await ask(port, "printer.lan.", 1)) == "10.1.2.3"
        state["configmap"] = configmap(COREFILE.format(address="10.1.2.3").replace("hosts", "hostz"))
        with caplog.at_level(logging.ERROR, logger="svcnet.dns.reload"):
            assert not await server.check()
            state["configmap"] = {}
            assert not await server.check()
        messages = [r.getMessage() for r in caplog.records]
        assert messages[0] == ("Restart failed: Corefile:2 - Error during parsing: Unknown directive 'hostz' "
                               "(kube-system/coredns keeps its running configuration)")
        assert messages[1].startswith("Restart failed: cannot read kube-system/coredns: ")
        assert address(await ask(port, "printer.lan.", 2)) == "10.1.2.3"
        state["configmap"] = configmap(COREFILE.format(address="10.1.2.7"))
        assert await server.check()
        assert address(await ask(port, "printer.lan.", 3)) == "10.1.2.7"
    finally:
        await server.stop()


@pytest.mark.parametrize("spec", ["coredns", "/coredns", "kube-system/"])
def test_a_malformed_configmap_reference_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="NAMESPACE/NAME"):
        configmap_source(spec, ClientConfig(server="http://127.0.0.1:1"))


async def test_a_configmap_without_the_key_cannot_be_read(api: tuple[dict, str]) -> None:
    state, url = api
    state["configmap"] = configmap("x")
    with pytest.raises(LookupError, match="configmap kube-system/coredns has no key 'Corefile.d'"):
        await configmap_source("kube-system/coredns:Corefile.d", ClientConfig(server=url)).read()
