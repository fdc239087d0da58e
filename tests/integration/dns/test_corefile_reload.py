"""Reloading a Corefile in process (svcnet.dns.reload.CorefileServer on loopback): the swap drops no query,
an invalid Corefile is refused once with CoreDNS's message and the old configuration keeps answering,
and ports follow the Corefile."""
from __future__ import annotations

import asyncio
import logging
import socket

import dns.message
import pytest

from svcnet.dns.metrics import Metrics
from svcnet.dns.reload import CorefileServer, load_config
from svcnet.dns.zone import zone_from_objects
from tests.unit.dns.helpers import cluster_objects

TEMPLATE = """\
.:0 {{
    hosts {{
       {address} printer.lan
       fallthrough
    }}
    kubernetes cluster.local
}}
"""
DEADLINE = 10.0  # a UDP query unanswered this long was dropped


class MemoryCorefile:
    """A CorefileSource holding its text: what a ConfigMap source would hand over."""

    name = "memory"

    def __init__(self, text: str) -> None:
        self.text = text

    async def read(self) -> str:
        return self.text


async def start(text: str) -> tuple[CorefileServer, MemoryCorefile]:
    source = MemoryCorefile(text)
    server = CorefileServer(source, text, load_config(text, {}), zone_from_objects(cluster_objects()), Metrics(),
                            host="127.0.0.1", local_ips=(), env={})
    await server.start()
    return server, source


async def ask(port: int, name: str, qid: int) -> dns.message.Message:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        query = dns.message.make_query(name, "A")
        query.id = qid
        await loop.sock_sendall(sock, query.to_wire())
        return dns.message.from_wire(await asyncio.wait_for(loop.sock_recv(sock, 65535), DEADLINE))
    finally:
        sock.close()


def address(message: dns.message.Message) -> str:
    return message.answer[0][0].to_text()


async def test_swaps_under_load_drop_no_query() -> None:
    server, source = await start(TEMPLATE.format(address="10.1.2.3"))
    port = server.servers[0].port
    seen: set[str] = set()
    try:
        async def client(offset: int) -> int:
            answered = 0
            for i in range(60):
                name = "printer.lan." if i % 2 else "kubernetes.default.svc.cluster.local."
                got = await ask(port, name, offset + i)
                assert got.rcode() == 0 and got.answer
                seen.add(address(got))
                answered += 1
            return answered
        clients = [asyncio.create_task(client(1000 * n)) for n in range(4)]
        reloads = 0
        while not all(c.done() for c in clients):
            source.text = TEMPLATE.format(address=f"10.1.2.{4 + reloads % 2}")
            assert await server.check()
            reloads += 1
            await asyncio.sleep(0.005)  # pacing only: the clients' queries interleave with the swaps
        assert sum(await asyncio.gather(*clients)) == 240
        assert reloads >= 2
        last = f"10.1.2.{4 + (reloads - 1) % 2}"
        assert address(await ask(port, "printer.lan.", 1)) == last
    finally:
        await server.stop()
    assert "10.96.0.1" in seen and seen & {"10.1.2.4", "10.1.2.5"}


async def test_an_invalid_corefile_is_refused_once_and_the_old_one_keeps_serving(
        caplog: pytest.LogCaptureFixture) -> None:
    server, source = await start(TEMPLATE.format(address="10.1.2.3"))
    port = server.servers[0].port
    try:
        source.text = TEMPLATE.format(address="10.1.2.3").replace("kubernetes cluster.local",
                                                                 "kubernetes cluster.local {\n pods maybe\n }")
        with caplog.at_level(logging.ERROR, logger="svcnet.dns.reload"):
            assert not await server.check()
            assert not await server.check()  # the same bad text: not reported again
        refusals = [r.getMessage() for r in caplog.records if "Restart failed" in r.getMessage()]
        assert refusals == ["Restart failed: plugin/kubernetes: Corefile:7 - Error during parsing: wrong value for "
                            "pods: maybe,  must be one of: disabled, verified, insecure (memory keeps its running "
                            "configuration)"]
        assert address(await ask(port, "printer.lan.", 7)) == "10.1.2.3"
        source.text = TEMPLATE.format(address="10.1.2.9")
        assert await server.check()
        assert address(await ask(port, "printer.lan.", 8)) == "10.1.2.9"
    finally:
        await server.stop()


async def test_an_unchanged_corefile_is_not_reloaded() -> None:
    server, _ = await start(TEMPLATE.format(address="10.1.2.3"))
    try:
        before = server.routers
        assert not await server.check()
        assert server.routers is before
    finally:
        await server.stop()


async def test_ports_follow_the_corefile_and_an_unbindable_port_refuses_the_reload() -> None:
    server, source = await start(TEMPLATE.format(address="10.1.2.3"))
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    try:
        taken = busy.getsockname()[1]
        source.text = TEMPLATE.format(address="10.1.2.3") + f"extra.lan:{taken} {{\n    hosts\n}}\n"
        assert not await server.check()
        assert sorted(server.servers) == [0]
        assert address(await ask(server.servers[0].port, "printer.lan.", 9)) == "10.1.2.3"
    finally:
        busy.close()
        await server.stop()


async def test_a_changed_hosts_file_is_read_again(tmp_path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("10.0.0.1 nas.home\n")
    server, _ = await start(f".:0 {{\n    hosts {hosts} {{\n       reload 1s\n       fallthrough\n    }}\n"
                            "    kubernetes cluster.local\n}\n")
    port = server.servers[0].port
    try:
        assert address(await ask(port, "nas.home.", 1)) == "10.0.0.1"
        assert address(await ask(port, "kubernetes.default.svc.cluster.local.", 2)) == "10.96.0.1"  # in the table
        assert server.reread_hosts() == set()
        hosts.write_text("10.0.0.2 nas.home\n10.0.0.3 kubernetes.default.svc.cluster.local\n")
        assert server.reread_hosts() == {str(hosts)}
        assert address(await ask(port, "nas.home.", 3)) == "10.0.0.2"
        # hosts comes before kubernetes: the table's answer for the name is gone with the change
        assert address(await ask(port, "kubernetes.default.svc.cluster.local.", 4)) == "10.0.0.3"
    finally:
        await server.stop()


async def test_a_reload_that_turns_on_log_logs_every_query(caplog: pytest.LogCaptureFixture) -> None:
    """The query log needs datagrams one by one: the UDP server leaves recvmmsg batches for it."""
    server, source = await start(TEMPLATE.format(address="10.1.2.3"))
    port = server.servers[0].port
    udp = server.servers[0]._udp
    try:
        batched = udp.batched
        source.text = TEMPLATE.format(address="10.1.2.3").replace("    kubernetes", "    log\n    kubernetes")
        assert await server.check()
        assert not udp.batched
        with caplog.at_level(logging.INFO, logger="svcnet.dns.query"):
            await ask(port, "kubernetes.default.svc.cluster.local.", 1)
            await ask(port, "kubernetes.default.svc.cluster.local.", 2)  # a table hit
        assert len([r for r in caplog.records if r.name == "svcnet.dns.query"]) == 2
        source.text = TEMPLATE.format(address="10.1.2.3")
        assert await server.check()
        assert udp.batched == batched
    finally:
        await server.stop()
