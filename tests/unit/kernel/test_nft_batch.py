"""svcnet.kernel.nft_batch: the netlink batch built for a transaction is the one nft 1.0.6 sends.

NFT_1_0_6_BATCH is what `nft -f` (1.0.6) sent the kernel for FORMS (captured
with strace): the batch must carry the same messages, so the kernel builds the
same table. Two things differ by design: nft names the sets it already knows
with the ID from its cache as well (the kernel looks the name up first), and we
ask for an acknowledgement of the last message, so the answer says the commit
happened.
"""
from __future__ import annotations

import errno
import struct
import subprocess
from collections.abc import Sequence

import pytest

from svcnet.kernel.exec import CommandResult
from svcnet.kernel.nft import NetnsNft, NftError, NftTransactionFailed
from svcnet.kernel.nft_batch import (
    MSG_DELCHAIN,
    MSG_DELRULE,
    MSG_DELSET,
    MSG_DELSETELEM,
    MSG_NEWCHAIN,
    MSG_NEWRULE,
    MSG_NEWSET,
    MSG_NEWSETELEM,
    NLM_F_ACK,
    NLM_F_REQUEST,
    SET_ANONYMOUS,
    SET_CONSTANT,
    SET_FLAGS,
    SET_MAP,
    BatchRefused,
    Message,
    Unsupported,
    attr,
    cold_start_split,
    compile_transaction,
    counter_values,
    cstring,
    encode,
    named,
    outcome,
    parse_answers,
    parse_replies,
    set_kind,
)
from svcnet.testing.exec import FakeRunner, printed

T = "ip kube-proxy"
FORMS = f"""add chain {T} xx
flush chain {T} xx
add chain {T} yy
flush chain {T} yy
add rule {T} xx ip daddr 10.96.1.244 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
add rule {T} xx numgen random mod 2 vmap {{ 0 : goto yy , 1 : goto yy }}
add rule {T} yy ip saddr 10.244.19.136 jump mark-for-masquerade
add rule {T} yy meta l4proto tcp dnat to 10.244.19.136:8080
add element {T} service-ips {{ 10.9.9.9 . tcp . 80 : goto xx }}
add element {T} cluster-ips {{ 10.9.9.9 }}
add element {T} no-endpoint-services {{ 10.9.9.8 . tcp . 80 comment "default/foo:http" : goto reject-chain }}
delete element {T} cluster-ips {{ 10.9.9.9 }}
"""
FORMS_2 = f"""add chain {T} xx
add chain {T} yy
add rule {T} xx fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"
add rule {T} xx fib saddr type local goto yy comment "short-circuit local traffic"
add set {T} affinity-X {{ type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }}
add rule {T} xx ip saddr @affinity-X goto yy
add rule {T} yy update @affinity-X {{ ip saddr }}
add rule {T} xx iifname != "veth*" jump mark-for-masquerade
add rule {T} xx iifname "cni0" goto yy
add rule {T} xx jump mark-for-masquerade
add rule {T} xx goto yy
add rule {T} xx ip saddr != 10.244.0.0/20 jump mark-for-masquerade
"""
FIREWALL = f"""add chain {T} fw
add rule {T} fw ip saddr != {{ 203.0.113.0/25 }} drop
add rule {T} fw ip saddr != {{ 1.2.3.0/24 , 5.6.7.8 , 10.0.0.0/8 }} drop
"""
FIREWALL_2 = f"""add chain ip6 kube-proxy fw
add rule ip6 kube-proxy fw ip6 saddr != {{ 2001:db8::/64 , fd00::1 }} drop
add chain {T} fw2
add rule {T} fw2 ip saddr != {{ 1.2.3.0/24 }} drop
add rule {T} fw2 ip saddr != {{ 1.2.3.4 }} drop
add rule {T} fw2 ip saddr != {{ 240.0.0.0/4 , 1.0.0.0/8 }} drop
"""
NFT_SET_ID = 0x3EF  # the first anonymous set's ID in the captured batch
NFT_1_0_6_BATCH = bytes.fromhex("".join([
    "140000001000010000000000000000000000000a2c000000030a01040100000000000000020000000f0001006b756265"
    "2d70726f7879000007000300787800002c000000080a01000200000000000000020000000f0001006b7562652d70726f"
    "7879000007000200787800002c000000030a01040300000000000000020000000f0001006b7562652d70726f78790000"
    "07000300797900002c000000080a01000400000000000000020000000f0001006b7562652d70726f7879000007000200"
    "79790000e8010000060a010c0500000000000000020000000f0001006b7562652d70726f787900000700020078780000"
    "bc010480340001800c0001007061796c6f61640024000280080001000000000108000200000000010800030000000010"
    "08000400000000042c00018008000100636d700020000280080001000000000108000200000000000c00038008000100"
    "0a6001f424000180090001006d6574610000000014000280080002000000001008000100000000012c00018008000100"
    "636d700020000280080001000000000108000200000000000c0003800500010006000000340001800c0001007061796c"
    "6f6164002400028008000100000000010800020000000002080003000000000208000400000000022c00018008000100"
    "636d700020000280080001000000000108000200000000000c0003800600010000500000340001800c0001007061796c"
    "6f6164002400028008000100000000010800020000000001080003000000000c08000400000000022c00018008000100"
    "636d700020000280080001000000000108000200000000010c000380060001000af40000480001800e000100696d6d65"
    "6469617465000000340002800800010000000000280002802400028008000100fffffffd180002006d61726b2d666f72"
    "2d6d617371756572616465008c000000090a01040600000000000000020000000f0001006b7562652d70726f78790000"
    "0c0002005f5f6d6170256400080003000000000b0800040000000004080005000000000408000600ffffff0008000700"
    "0000000008000a00000003ef0c000980080001000000000220000d000004010000000104000000000408000401000000"
    "01000604000000008c0000000c0a01040700000000000000020000000f0001006b7562652d70726f787900000c000200"
    "5f5f6d617025640008000400000003ef54000380280001800c0001800800010000000000180002801400028008000100"
    "fffffffc0700020079790000280002800c0001800800010001000000180002801400028008000100fffffffc07000200"
    "797900009c000000060a010c0800000000000000020000000f0001006b7562652d70726f787900000700020078780000"
    "70000480340001800b0001006e756d67656e000024000280080001000000000108000200000000020800030000000001"
    "0800040000000000380001800b0001006c6f6f6b7570000028000280080002000000000108000300000000000c000100"
    "5f5f6d617025640008000400000003efd8000000060a010c0900000000000000020000000f0001006b7562652d70726f"
    "787900000700020079790000ac000480340001800c0001007061796c6f61640024000280080001000000000108000200"
    "00000001080003000000000c08000400000000042c00018008000100636d700020000280080001000000000108000200"
    "000000000c000380080001000af41388480001800e000100696d6d656469617465000000340002800800010000000000"
    "280002802400028008000100fffffffd180002006d61726b2d666f722d6d6173717565726164650010010000060a010c"
    "0a00000000000000020000000f0001006b7562652d70726f787900000700020079790000e40004802400018009000100"
    "6d6574610000000014000280080002000000001008000100000000012c00018008000100636d70002000028008000100"
    "0000000108000200000000000c00038005000100060000002c0001800e000100696d6d65646961746500000018000280"
    "08000100000000010c000280080001000af413882c0001800e000100696d6d6564696174650000001800028008000100"
    "000000020c000280060001001f90000038000180080001006e6174002c00028008000100000000010800020000000002"
    "080003000000000108000500000000020800070000000002700000000c0a01040b00000000000000020000000f000100"
    "6b7562652d70726f7879000010000200736572766963652d697073000800040000000005340003803000018014000180"
    "100001000a0909090600000000500000180002801400028008000100fffffffc0700020078780000500000000c0a0104"
    "0c00000000000000020000000f0001006b7562652d70726f7879000010000200636c75737465722d6970730008000400"
    "0000000114000380100001800c000180080001000a090909a00000000c0a01040d00000000000000020000000f000100"
    "6b7562652d70726f78790000190002006e6f2d656e64706f696e742d7365727669636573000000000800040000000002"
    "580003805400018014000180100001000a0909080600000000500000240002802000028008000100fffffffc11000200"
    "72656a6563742d636861696e0000000017000600001164656661756c742f666f6f3a687474700000480000000e0a0100"
    "0e00000000000000020000000f0001006b7562652d70726f7879000010000200636c75737465722d6970730014000380"
    "100001800c000180080001000a09090914000000110001000f000000000000000000000a"
]))
NFT_1_0_6_BATCH_2 = bytes.fromhex("".join([
    "140000001000010000000000000000000000000a2c000000030a01040100000000000000020000000f0001006b756265"
    "2d70726f7879000007000300787800002c000000030a01040200000000000000020000000f0001006b7562652d70726f"
    "787900000700030079790000ec000000060a010c0300000000000000020000000f0001006b7562652d70726f78790000"
    "0700020078780000a00004802800018008000100666962001c0002800800030000000001080002000000000308000100"
    "000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800800010002000000"
    "480001800e000100696d6d656469617465000000340002800800010000000000280002802400028008000100fffffffd"
    "180002006d61726b2d666f722d6d617371756572616465001f00070000196d617371756572616465206c6f63616c2074"
    "7261666669630000e0000000060a010c0400000000000000020000000f0001006b7562652d70726f7879000007000200"
    "78780000900004802800018008000100666962001c000280080003000000000108000200000000030800010000000001"
    "2c00018008000100636d700020000280080001000000000108000200000000000c000380080001000200000038000180"
    "0e000100696d6d656469617465000000240002800800010000000000180002801400028008000100fffffffc07000200"
    "7979000022000700001c73686f72742d63697263756974206c6f63616c20747261666669630000006c000000090a0104"
    "0500000000000000020000000f0001006b7562652d70726f787900000f000200616666696e6974792d58000008000300"
    "000000300800040000000007080005000000000408000a00000000010c000b000000000000a4cb800a000d0000040200"
    "00000000d0000000060a010c0600000000000000020000000f0001006b7562652d70726f787900000700020078780000"
    "a4000480340001800c0001007061796c6f6164002400028008000100000000010800020000000001080003000000000c"
    "0800040000000004340001800b0001006c6f6f6b757000002400028008000200000000010f000100616666696e697479"
    "2d5800000800040000000001380001800e000100696d6d65646961746500000024000280080001000000000018000280"
    "1400028008000100fffffffc0700020079790000a0000000060a010c0700000000000000020000000f0001006b756265"
    "2d70726f78790000070002007979000074000480340001800c0001007061796c6f616400240002800800010000000001"
    "0800020000000001080003000000000c08000400000000043c0001800b00010064796e73657400002c00028008000400"
    "0000000108000300000000010f000100616666696e6974792d5800000800020000000001c8000000060a010c08000000"
    "00000000020000000f0001006b7562652d70726f7879000007000200787800009c00048024000180090001006d657461"
    "0000000014000280080002000000000608000100000000012c00018008000100636d7000200002800800010000000001"
    "08000200000000010c0003800800010076657468480001800e000100696d6d6564696174650000003400028008000100"
    "00000000280002802400028008000100fffffffd180002006d61726b2d666f722d6d61737175657261646500c4000000"
    "060a010c0900000000000000020000000f0001006b7562652d70726f7879000007000200787800009800048024000180"
    "090001006d6574610000000014000280080002000000000608000100000000013800018008000100636d70002c000280"
    "080001000000000108000200000000001800038014000100636e6930000000000000000000000000380001800e000100"
    "696d6d656469617465000000240002800800010000000000180002801400028008000100fffffffc0700020079790000"
    "78000000060a010c0a00000000000000020000000f0001006b7562652d70726f7879000007000200787800004c000480"
    "480001800e000100696d6d656469617465000000340002800800010000000000280002802400028008000100fffffffd"
    "180002006d61726b2d666f722d6d6173717565726164650068000000060a010c0b00000000000000020000000f000100"
    "6b7562652d70726f7879000007000200787800003c000480380001800e000100696d6d65646961746500000024000280"
    "0800010000000000180002801400028008000100fffffffc07000200797900001c010000060a010c0c00000000000000"
    "020000000f0001006b7562652d70726f787900000700020078780000f0000480340001800c0001007061796c6f616400"
    "2400028008000100000000010800020000000001080003000000000c0800040000000004440001800c00010062697477"
    "69736500340002800800010000000001080002000000000108000300000000040c00048008000100fffff0000c000580"
    "08000100000000002c00018008000100636d700020000280080001000000000108000200000000010c00038008000100"
    "0af40000480001800e000100696d6d656469617465000000340002800800010000000000280002802400028008000100"
    "fffffffd180002006d61726b2d666f722d6d6173717565726164650014000000110001000d000000000000000000000a"
]))

NFT_1_0_6_FIREWALL = bytes.fromhex("".join([
    "140000001000010000000000000000000000000a2c000000030a01040100000000000000020000000f0001006b756265"
    "2d70726f78790000070003006677000004010000060a010c0200000000000000020000000f0001006b7562652d70726f"
    "787900000700020066770000d8000480340001800c0001007061796c6f61640024000280080001000000000108000200"
    "00000001080003000000000c0800040000000004440001800c0001006269747769736500340002800800010000000001"
    "080002000000000108000300000000040c00048008000100ffffff800c00058008000100000000002c00018008000100"
    "636d700020000280080001000000000108000200000000010c00038008000100cb007100300001800e000100696d6d65"
    "64696174650000001c0002800800010000000000100002800c000280080001000000000084000000090a010403000000"
    "00000000020000000f0001006b7562652d70726f787900000c0002005f5f736574256400080003000000000708000400"
    "00000007080005000000000408000a00000003f10c000980080001000000000726000d00000402000000020401000000"
    "0314000407000000010c00040c00000001040b0000000000cc0000000c0a01040400000000000000020000000f000100"
    "6b7562652d70726f787900000c0002005f5f73657425640008000400000003f194000380180001800800030000000001"
    "0c0001800800010000000000100002800c00018008000100010203001800038008000300000000010c00018008000100"
    "01020400100004800c00018008000100050607081800058008000300000000010c000180080001000506070910000680"
    "0c000180080001000a0000001800078008000300000000010c000180080001000b000000cc000000060a010c05000000"
    "00000000020000000f0001006b7562652d70726f787900000700020066770000a0000480340001800c0001007061796c"
    "6f6164002400028008000100000000010800020000000001080003000000000c0800040000000004380001800b000100"
    "6c6f6f6b757000002800028008000200000000010c0001005f5f73657425640008000400000003f10800050000000001"
    "300001800e000100696d6d6564696174650000001c0002800800010000000000100002800c0002800800010000000000"
    "140000001100010006000000000000000000000a"
]))
NFT_1_0_6_FIREWALL_2 = bytes.fromhex("".join([
    "140000001000010000000000000000000000000a2c000000030a010401000000000000000a0000000f0001006b756265"
    "2d70726f78790000070003006677000084000000090a010402000000000000000a0000000f0001006b7562652d70726f"
    "787900000c0002005f5f73657425640008000300000000070800040000000008080005000000001008000a00000003f2"
    "0c000980080001000000000526000d000004020000000204010000000314000407000000010c00040d00000001040800"
    "00000000e00000000c0a010403000000000000000a0000000f0001006b7562652d70726f787900000c0002005f5f7365"
    "7425640008000400000003f2a80003802400018008000300000000011800018014000100000000000000000000000000"
    "000000001c000280180001801400010020010db800000000000000000000000024000380080003000000000118000180"
    "1400010020010db80000000100000000000000001c0004801800018014000100fd000000000000000000000000000001"
    "2400058008000300000000011800018014000100fd000000000000000000000000000002cc000000060a010c04000000"
    "000000000a0000000f0001006b7562652d70726f787900000700020066770000a0000480340001800c0001007061796c"
    "6f616400240002800800010000000001080002000000000108000300000000080800040000000010380001800b000100"
    "6c6f6f6b757000002800028008000200000000010c0001005f5f73657425640008000400000003f20800050000000001"
    "300001800e000100696d6d6564696174650000001c0002800800010000000000100002800c0002800800010000000000"
    "2c000000030a01040500000000000000020000000f0001006b7562652d70726f787900000800030066773200c0000000"
    "060a010c0600000000000000020000000f0001006b7562652d70726f7879000008000200667732009400048034000180"
    "0c0001007061796c6f6164002400028008000100000000010800020000000001080003000000000c0800040000000003"
    "2c00018008000100636d700020000280080001000000000108000200000000010c000380070001000102030030000180"
    "0e000100696d6d6564696174650000001c0002800800010000000000100002800c0002800800010000000000c0000000"
    "060a010c0700000000000000020000000f0001006b7562652d70726f7879000008000200667732009400048034000180"
    "0c0001007061796c6f6164002400028008000100000000010800020000000001080003000000000c0800040000000004"
    "2c00018008000100636d700020000280080001000000000108000200000000010c000380080001000102030430000180"
    "0e000100696d6d6564696174650000001c0002800800010000000000100002800c000280080001000000000084000000"
    "090a01040800000000000000020000000f0001006b7562652d70726f787900000c0002005f5f73657425640008000300"
    "000000070800040000000007080005000000000408000a00000003f30c000980080001000000000526000d0000040200"
    "00000204010000000314000407000000010c00040c00000001040b0000000000980000000c0a01040900000000000000"
    "020000000f0001006b7562652d70726f787900000c0002005f5f73657425640008000400000003f36000038018000180"
    "08000300000000010c0001800800010000000000100002800c0001800800010001000000180003800800030000000001"
    "0c00018008000100020000001c0004800c00018008000100f00000000a0006000104010000000000cc000000060a010c"
    "0a00000000000000020000000f0001006b7562652d70726f787900000800020066773200a0000480340001800c000100"
    "7061796c6f6164002400028008000100000000010800020000000001080003000000000c080004000000000438000180"
    "0b0001006c6f6f6b757000002800028008000200000000010c0001005f5f73657425640008000400000003f308000500"
    "00000001300001800e000100696d6d6564696174650000001c0002800800010000000000100002800c00028008000100"
    "0000000014000000110001000b000000000000000000000a"
]))


def split(batch: bytes) -> list[tuple[int, int, bytes]]:
    """(type, flags, nfgenmsg + attributes) of each message of a batch."""
    out, offset = [], 0
    while offset < len(batch):
        length, kind, flags, _seq, _pid = struct.unpack_from("=IHHII", batch, offset)
        out.append((kind, flags, batch[offset + 16:offset + length]))
        offset += (length + 3) & ~3
    return out


def without_known_set_id(kind: int, body: bytes) -> bytes:
    """An element message less NFTA_SET_ELEM_LIST_SET_ID when it names an existing set (nft's cache ID)."""
    if kind & 0xFF not in (MSG_NEWSETELEM, MSG_DELSETELEM):
        return body
    out, offset = [body[:4]], 4
    named_set = b""
    while offset < len(body):
        length, attr_type = struct.unpack_from("=HH", body, offset)
        chunk = body[offset:offset + ((length + 3) & ~3)]
        if attr_type == 2:
            named_set = chunk[4:length]
        if not (attr_type == 4 and not named_set.startswith(b"__")):
            out.append(chunk)
        offset += len(chunk)
    return b"".join(out)


@pytest.mark.parametrize(("text", "captured", "first_set_id"), [
    (FORMS, NFT_1_0_6_BATCH, NFT_SET_ID), (FORMS_2, NFT_1_0_6_BATCH_2, 1),
    (FIREWALL, NFT_1_0_6_FIREWALL, 0x3F1), (FIREWALL_2, NFT_1_0_6_FIREWALL_2, 0x3F2)])
def test_the_batch_carries_the_messages_nft_sends_for_the_same_lines(text: str, captured: bytes,
                                                                     first_set_id: int) -> None:
    ours = split(encode(compile_transaction(text, first_set_id=first_set_id), 0))
    theirs = split(captured)
    assert len(ours) == len(theirs) > 2
    for (kind, flags, body), (nft_kind, nft_flags, nft_body) in zip(ours, theirs, strict=True):
        assert kind == nft_kind
        assert flags & ~NLM_F_ACK == nft_flags
        assert without_known_set_id(kind, body) == without_known_set_id(nft_kind, nft_body)
    assert [flags & NLM_F_ACK for _, flags, _ in ours] == [0] * (len(ours) - 2) + [NLM_F_ACK, 0]  # the last only


def test_each_line_maps_to_its_messages() -> None:
    messages = compile_transaction(FORMS)
    assert [(m.line, m.kind) for m in messages] == [
        (1, MSG_NEWCHAIN), (2, MSG_DELRULE), (3, MSG_NEWCHAIN), (4, MSG_DELRULE), (5, MSG_NEWRULE),
        (6, MSG_NEWSET), (6, MSG_NEWSETELEM), (6, MSG_NEWRULE), (7, MSG_NEWRULE), (8, MSG_NEWRULE),
        (9, MSG_NEWSETELEM), (10, MSG_NEWSETELEM), (11, MSG_NEWSETELEM), (12, MSG_DELSETELEM)]
    assert compile_transaction(f"delete chain {T} xx\n")[0].kind == MSG_DELCHAIN
    (delete_set,) = compile_transaction(f"delete set {T} affinity-Y\n")
    assert (delete_set.kind, delete_set.flags) == (MSG_DELSET, NLM_F_REQUEST)
    assert delete_set.attrs == bytes.fromhex(  # as nft 1.0.6 sends it
        "0f0001006b7562652d70726f78790000" "0f000200616666696e6974792d590000")


def test_each_anonymous_vmap_gets_its_own_set_id() -> None:
    text = (f"add rule {T} xx numgen random mod 1 vmap {{ 0 : goto a }}\n"
            f"add rule {T} yy numgen random mod 1 vmap {{ 0 : goto b }}\n")
    new_sets = [m for m in compile_transaction(text) if m.kind == MSG_NEWSET]
    assert len(new_sets) == 2 and new_sets[0].attrs != new_sets[1].attrs


def test_ipv6_lines_compile_with_ipv6_offsets_and_nat_family() -> None:
    text = ("add rule ip6 kube-proxy yy ip6 saddr fd00:10::5 jump mark-for-masquerade\n"
            "add rule ip6 kube-proxy yy meta l4proto udp dnat to [fd00:10::5]:53\n"
            "add element ip6 kube-proxy service-ips { fd00:96::a . udp . 53 : goto yy }\n")
    rule, dnat, element = compile_transaction(text)
    assert rule.family == dnat.family == element.family == 10
    assert bytes.fromhex("fd000010000000000000000000000005") in rule.attrs
    assert struct.pack(">I", 10) in dnat.attrs  # NFTA_NAT_FAMILY NFPROTO_IPV6
    key = bytes.fromhex("fd00009600000000000000000000000a") + bytes((17, 0, 0, 0)) + bytes((0, 53, 0, 0))
    assert key in element.attrs


@pytest.mark.parametrize("line", [
    f"add table {T} {{ comment \"rules for kube-proxy\" ; }}",
    f"add chain {T} nat-output {{ type nat hook output priority -100 ; }}",
    f"add map {T} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}",
    f"flush map {T} service-ips",
    f"add rule {T} services ip daddr . meta l4proto . th dport vmap @service-ips",
    f"add rule {T} fw ip saddr != {{ 1.2.3.0/24 , 1.2.3.128/25 }} drop",  # overlapping: nft merges
    f"add rule {T} fw ip saddr != {{ 1.2.3.0/24 , 1.2.4.0/24 }} drop",  # adjacent: nft merges
    f"add rule {T} fw ip saddr != {{ 0.0.0.0/8 , 1.2.4.0/24 }} drop",
    f"add rule {T} fw ip daddr != {{ 1.2.3.0/24 , 5.6.7.8 }} drop",
    f"add rule {T} fw ip saddr {{ 1.2.3.0/24 , 5.6.7.8 }} drop",
    f"add set {T} affinity-X {{ type ipv4_addr ; flags interval ; }}",
    f"add set {T} affinity-X {{ type ipv6_addr ; flags dynamic,timeout ; timeout 10800s ; }}",  # family
    f"add rule {T} svc ip saddr != @affinity-X goto ep",
    f"add rule {T} svc update @affinity-X {{ ip daddr }}",
    f"add rule {T} svc ip6 saddr != fd00::/60 jump mark-for-masquerade",
    "add rule ip6 kube-proxy svc ip6 saddr != fd00::/60 jump mark-for-masquerade",  # not whole bytes in IPv6
    f"add rule {T} svc iifname \"a*b\" goto ep",
    f"add rule {T} ep dnat to 10.0.0.1:80",  # nft wants a protocol match first
    f"add rule {T} ep meta l4proto tcp tcp dport 80 jump x",  # nft would not repeat the protocol match
    f"add rule {T} ep jump x jump y",
    f"add rule {T} ep drop accept",
    f"add rule {T} svc iifname \"much-too-long-interface\" goto ep",
    f"add rule {T} svc ip6 saddr fd00::1 jump mark-for-masquerade",  # ip6 in an ip table
    f"add element {T} service-ips {{ 10.0.0.1 . tcp . 80 : goto a , 10.0.0.2 . tcp . 80 : goto b }}",
    f"add element {T} some-other-map {{ 10.0.0.1 }}",
    f"add element {T} cluster-ips {{ fd00::1 }}",
    f"delete element {T} service-ips {{ 10.0.0.1 . tcp . 80 : goto a }}",
])
def test_lines_outside_the_vocabulary_are_not_compiled(line: str) -> None:
    with pytest.raises(Unsupported):
        compile_transaction(f"add chain {T} xx\n{line}\n")


def test_rule_and_element_comments_become_user_data() -> None:
    (rule,) = compile_transaction(f'add rule {T} c ip daddr 10.0.0.1 goto d comment "short-circuit \\"x\\""\n')
    assert b'\x00\x12short-circuit "x"\x00' in rule.attrs


def ack(seq: int, code: int = 0) -> bytes:
    return struct.pack("=IHHII", 20, 2, 0x100, seq, 0) + struct.pack("=i", -code)


def test_the_last_messages_acknowledgement_means_applied() -> None:
    messages = compile_transaction(FORMS)
    outcome(list(parse_replies(ack(100 + len(messages)))), messages, 100)


def test_an_error_names_the_line_of_the_refused_message() -> None:
    messages = compile_transaction(FORMS)
    replies = list(parse_replies(ack(100 + 7, errno.ENOENT) + ack(100 + len(messages))))
    with pytest.raises(BatchRefused) as caught:
        outcome(replies, messages, 100)
    assert caught.value.code == errno.ENOENT and caught.value.line_number == 6  # the vmap's elements


def test_no_acknowledgement_is_not_taken_for_success() -> None:
    with pytest.raises(BatchRefused):
        outcome([], compile_transaction(FORMS), 100)


# --- NetnsNft chooses the path -------------------------------------------------------------------------------

class FakeSender:
    def __init__(self, refuse: Exception | None = None) -> None:
        self.sent: list[Sequence[Message]] = []
        self.refuse = refuse
        self.closed = False

    def send(self, messages: Sequence[Message]) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.sent.append(messages)

    def close(self) -> None:
        self.closed = True


def test_a_partial_sync_goes_as_a_batch_and_nft_is_not_run() -> None:
    runner, sender = FakeRunner(), FakeSender()
    nft = NetnsNft("node-1", runner=runner, sender=sender)
    nft.run(FORMS)
    assert len(sender.sent) == 1 and runner.calls == [] and (nft.direct_runs, nft.nft_runs) == (1, 0)


def test_a_transaction_outside_the_vocabulary_runs_nft() -> None:
    runner, sender = FakeRunner(), FakeSender()
    nft = NetnsNft("node-1", runner=runner, sender=sender)
    nft.run(f"add table {T} {{ comment \"rules for kube-proxy\" ; }}\n{FORMS}")
    assert sender.sent == [] and [argv for argv, _ in runner.calls] == [("nft", "-f", "-")]
    assert (nft.direct_runs, nft.nft_runs) == (0, 1)


def test_a_refused_batch_is_run_by_nft_which_says_why() -> None:
    stderr = "/dev/stdin:1:1-10: Error: Could not process rule: No such file or directory\n"
    runner = FakeRunner(lambda argv, stdin: printed(argv, 1, stderr=stderr))
    nft = NetnsNft("node-1", runner=runner, sender=FakeSender(BatchRefused("No such file or directory", 2, 1)))
    with pytest.raises(NftTransactionFailed) as caught:
        nft.run(FORMS)
    assert caught.value.errno_name == "ENOENT" and caught.value.line_number == 1


def test_a_socket_failure_closes_the_socket_and_nft_applies_the_transaction() -> None:
    runner, sender = FakeRunner(), FakeSender(OSError(errno.EMSGSIZE, "Message too long"))
    nft = NetnsNft("node-1", runner=runner, sender=sender)
    nft.run(FORMS)
    assert sender.closed and nft.nft_runs == 1 and [argv for argv, _ in runner.calls] == [("nft", "-f", "-")]


def test_with_a_runner_and_no_sender_nft_runs_everything() -> None:
    runner = FakeRunner()
    NetnsNft("node-1", runner=runner).run(FORMS)
    assert [argv for argv, _ in runner.calls] == [("nft", "-f", "-")]


def test_an_empty_transaction_applies_nothing_and_runs_nothing() -> None:
    runner, sender = FakeRunner(), FakeSender()
    NetnsNft("node-1", runner=runner, sender=sender).run("\n# nothing\n")
    assert sender.sent == [] and runner.calls == []


# --- a cold start in steps -----------------------------------------------------------------------------------

COLD = f"""add table {T} {{ comment "rules for kube-proxy" ; }}
add chain {T} nat-output {{ type nat hook output priority -100 ; }}
flush chain {T} nat-output
add chain {T} mark-for-masquerade
flush chain {T} mark-for-masquerade
add rule {T} mark-for-masquerade mark set mark or 0x00004000
add map {T} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}
add rule {T} nat-output ip daddr . meta l4proto . th dport vmap @service-ips
add chain {T} ep-a
flush chain {T} ep-a
add chain {T} svc
flush chain {T} svc
add rule {T} svc numgen random mod 1 vmap {{ 0 : goto ep-a }}
add rule {T} ep-a ip saddr 10.244.0.2 jump mark-for-masquerade
add rule {T} ep-a meta l4proto tcp dnat to 10.244.0.2:80
add chain {T} svc2
flush chain {T} svc2
add rule {T} svc2 numgen random mod 1 vmap {{ 0 : goto ep-a }}
add element {T} service-ips {{ 10.96.0.1 . tcp . 80 : goto svc }}
"""


def test_a_cold_start_creates_every_object_first_fills_chains_in_batches_and_turns_on_last() -> None:
    steps = cold_start_split(COLD, min_vmaps=1, rules_per_batch=2)
    assert (steps.family, steps.table) == ("ip", "kube-proxy")
    assert steps.skeleton.splitlines() == [line for line in COLD.splitlines()
                                           if line.startswith(("add table", "add chain", "add map"))]
    batches = list(steps.fills())
    filled = [[m.kind for m in batch] for batch in batches]
    assert filled == [[MSG_NEWSET, MSG_NEWSETELEM, MSG_NEWRULE, MSG_NEWRULE, MSG_NEWRULE],  # svc, ep-a (whole)
                      [MSG_NEWSET, MSG_NEWSETELEM, MSG_NEWRULE]]  # svc2
    assert steps.rest().splitlines() == [
        f"flush chain {T} nat-output", f"flush chain {T} mark-for-masquerade",
        f"add rule {T} mark-for-masquerade mark set mark or 0x00004000",
        f"add rule {T} nat-output ip daddr . meta l4proto . th dport vmap @service-ips",
        f"add element {T} service-ips {{ 10.96.0.1 . tcp . 80 : goto svc }}"]
    set_ids = [m.attrs for batch in batches for m in batch if m.kind == MSG_NEWSET]
    assert len(set(set_ids)) == 2  # each anonymous vmap its own ID


def test_small_or_mixed_transactions_are_not_split() -> None:
    assert cold_start_split(COLD) is None  # two vmaps: one nft -f is cheap
    assert cold_start_split(COLD + "add chain ip6 kube-proxy x\n", min_vmaps=1) is None
    assert cold_start_split(COLD + "insert rule ip kube-proxy svc counter\n", min_vmaps=1) is None


def not_there(argv: tuple[str, ...], stdin: str | None) -> CommandResult:
    if argv[:3] == ("nft", "-j", "list"):
        return printed(argv, 1, stderr="Error: No such file or directory\n")
    return printed(argv)


def test_a_cold_start_runs_the_skeleton_the_fills_and_the_rest() -> None:
    runner, sender = FakeRunner(not_there), FakeSender()
    nft = NetnsNft("node-1", runner=runner, sender=sender, cold_start_min_vmaps=1)
    nft.run(COLD)
    steps = cold_start_split(COLD, min_vmaps=1)
    fills = list(steps.fills())
    assert runner.calls == [(("nft", "-j", "list", "table", "ip", "kube-proxy"), None),
                            (("nft", "-f", "-"), steps.skeleton), (("nft", "-f", "-"), steps.rest())]
    assert sender.sent == fills and len(fills) == 1 and nft.direct_runs == 1


def test_a_cold_start_is_not_used_when_the_table_exists() -> None:
    runner, sender = FakeRunner(), FakeSender()  # `nft -j list table` succeeds: the table is there
    nft = NetnsNft("node-1", runner=runner, sender=sender, cold_start_min_vmaps=1)
    nft.run(COLD)
    assert sender.sent == [] and runner.calls[-1] == (("nft", "-f", "-"), COLD)


def test_a_failed_step_deletes_the_new_table_and_nft_runs_the_whole_transaction() -> None:
    runner = FakeRunner(not_there)
    nft = NetnsNft("node-1", runner=runner, sender=FakeSender(BatchRefused("Invalid argument", 22, 1)),
                   cold_start_min_vmaps=1)
    nft.run(COLD)
    assert [argv for argv, _ in runner.calls][-3:] == [("nft", "-f", "-"), ("nft", "-f", "-"), ("nft", "-f", "-")]
    assert runner.calls[-2][1] == "delete table ip kube-proxy\n" and runner.calls[-1][1] == COLD
    assert nft.nft_runs == 1 and nft.direct_runs == 0


def test_nft_gets_more_time_for_a_bigger_transaction_and_a_timeout_is_an_nft_error() -> None:
    timeouts = []

    def slow(argv: Sequence[str], input: str | None = None, timeout: float = 120.0) -> CommandResult:
        timeouts.append(timeout)
        raise subprocess.TimeoutExpired(list(argv), timeout)

    nft = NetnsNft("node-1", runner=slow)
    for text in ("add table ip t\n", "add table ip t\n" + "# padding\n" * 1_000_000):
        with pytest.raises(NftError, match="took more than"):
            nft.run(text)
    assert timeouts[0] == pytest.approx(120, abs=1) and timeouts[1] > 200


# --- reading over netlink --------------------------------------------------------------------------------------

def answer(seq: int, kind: int, attrs: bytes) -> bytes:
    body = struct.pack("=BBH", 2, 0, 0) + attrs
    return struct.pack("=IHHII", 16 + len(body), 10 << 8 | kind, 0x2, seq, 0) + body


def test_dump_answers_are_collected_until_done_and_filtered_by_table() -> None:
    ours = answer(7, 3, attr(1, b"kube-proxy\0") + attr(3, b"services\0"))
    theirs = answer(7, 3, attr(1, b"other\0") + attr(3, b"theirs\0"))
    stale = answer(6, 3, attr(1, b"kube-proxy\0") + attr(3, b"old-answer\0"))
    done = struct.pack("=IHHII", 20, 3, 0x2, 7, 0) + bytes(4)
    bodies, finished, code = parse_answers(stale + ours + theirs, 7)
    assert (len(bodies), finished, code) == (2, False, 0)
    assert parse_answers(done, 7) == ([], True, 0)
    assert [cstring(a[3]) for a in named(bodies, "kube-proxy", 3)] == ["services"]


def test_an_error_answer_ends_the_request_with_its_code() -> None:
    assert parse_answers(ack(9, errno.ENOENT), 9) == ([], True, errno.ENOENT)


def test_sets_maps_and_anonymous_sets_are_told_apart_by_their_flags() -> None:
    assert set_kind({SET_FLAGS: struct.pack(">I", 0)}) == "set"
    assert set_kind({SET_FLAGS: struct.pack(">I", SET_MAP)}) == "map"
    assert set_kind({SET_FLAGS: struct.pack(">I", SET_ANONYMOUS | SET_CONSTANT | SET_MAP)}) is None
    data = attr(2, struct.pack(">Q", 5)) + attr(1, struct.pack(">Q", 300))
    assert counter_values({4: data}) == (5, 300)
