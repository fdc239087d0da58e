"""nft transactions sent straight to the kernel as one nf_tables netlink batch, without the `nft` tool.

Why: `nft -f` (1.0.6) first dumps every chain and set of every table before it
evaluates a transaction that adds a rule or an element, and the kernel serves
a chain dump by walking the table's chain list from the start for each 32 KB
reply, so the dump costs the square of the number of chains. With kube-proxy's
table at 10,000 Services x 10 endpoints (110,000 chains, 10,000 anonymous
vmaps) that is over a second for every sync, however small; the batch itself
is a few kilobytes. Building the same netlink messages here needs no cache: a
partial sync writes a fixed vocabulary (chains, their rules, elements of the
proxy's own maps), and every name it refers to is in the text.

`compile_transaction` turns the text into messages, or says the text holds a
line outside that vocabulary (the adapter then runs `nft -f` as before: the
full sync's base chains, typed sets and maps, affinity sets, firewall rules,
...). The messages are the ones nft 1.0.6 sends for the same lines (same
expressions, registers, flags and user data), so `nft list table` shows the
same table; tests/integration/test_kernel_nft_batch.py compares the two.

The socket side (`NftBatchSocket`) sends the batch with an acknowledgement
asked for its last message: the kernel answers only after the commit, and
answers with an error for any message it refused (then it applied nothing).

Wire format: linux/netfilter/nf_tables.h, linux/netfilter/nfnetlink.h,
libnftnl's user data (udata.h) for comments and the anonymous vmap's key byte
order.
"""
from __future__ import annotations

import errno as errno_module
import functools
import ipaddress
import itertools
import os
import re
import select
import socket
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

NETLINK_NETFILTER = 12
NETLINK_CAP_ACK = 10  # errors without a copy of the refused message
SOL_NETLINK = 270
SO_SNDBUFFORCE = 32
NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN = 0x10
NFNL_MSG_BATCH_END = 0x11
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800
NLMSG_ERROR = 2
NFPROTO = {"ip": 2, "ip6": 10}

MSG_NEWCHAIN, MSG_DELCHAIN, MSG_NEWRULE, MSG_DELRULE = 3, 5, 6, 8
MSG_NEWSET, MSG_DELSET, MSG_NEWSETELEM, MSG_DELSETELEM = 9, 11, 12, 14

# Attributes (nf_tables.h).
CHAIN_TABLE, CHAIN_NAME = 1, 3
RULE_TABLE, RULE_CHAIN, RULE_EXPRESSIONS, RULE_USERDATA = 1, 2, 4, 7
LIST_ELEM, EXPR_NAME, EXPR_DATA = 1, 1, 2
DATA_VALUE, DATA_VERDICT, VERDICT_CODE, VERDICT_CHAIN = 1, 2, 1, 2
SET_TABLE, SET_NAME, SET_FLAGS, SET_KEY_TYPE, SET_KEY_LEN = 1, 2, 3, 4, 5
SET_DATA_TYPE, SET_DATA_LEN, SET_DESC, SET_ID, SET_USERDATA, SET_DESC_SIZE = 6, 7, 9, 10, 13, 1
ELEM_LIST_TABLE, ELEM_LIST_SET, ELEM_LIST_ELEMENTS, ELEM_LIST_SET_ID = 1, 2, 3, 4
ELEM_KEY, ELEM_DATA, ELEM_USERDATA = 1, 2, 6
NLA_F_NESTED = 0x8000

SET_TIMEOUT_ATTR = 11
REG_VERDICT, REG_1, REG_2 = 0, 1, 2
PAYLOAD_NETWORK, PAYLOAD_TRANSPORT = 1, 2
META_L4PROTO, META_IIFNAME = 16, 6
IFNAMSIZ = 16
FIB_F_SADDR, FIB_RESULT_ADDRTYPE, RTN_LOCAL = 0x1, 3, 2
DYNSET_OP_UPDATE = 1
SET_TIMEOUT, SET_EVAL = 0x10, 0x20
ADDRESS_TYPES = {"ip": (7, 4), "ip6": (8, 16)}  # nft's ipv4_addr / ipv6_addr datatype and length
BYTEORDER_BIG_ENDIAN = 2
CMP_EQ, CMP_NEQ = 0, 1
NUMGEN_RANDOM = 1
NAT_DNAT = 1
NAT_RANGE_PROTO_SPECIFIED = 0x2
VERDICTS = {"jump": -3, "goto": -4}
PLAIN_VERDICTS = {"drop": 0, "accept": 1}
TYPE_INTEGER = 4
DATA_TYPE_VERDICT = 0xFFFFFF00
SET_ANONYMOUS, SET_CONSTANT, SET_MAP = 0x1, 0x2, 0x8
UDATA_COMMENT = 0  # rules and set elements alike
# The anonymous numgen vmap's user data as nft writes it: the key (numgen's integer) is in host byte
# order, the data is a verdict; `nft list` reads it back to print the keys as 0, 1, 2...
NUMGEN_VMAP_UDATA = bytes.fromhex("00040100000001040000000004080004010000000100060400000000")

# An anonymous interval set of source addresses (`ip saddr != { ... }`, the firewall chains): nft's user
# data says the key is big-endian and was typed as `ip saddr` / `ip6 saddr` (protocol and field).
SET_INTERVAL = 0x4
ELEM_FLAGS, ELEM_INTERVAL_END = 3, 0x1
LOOKUP_F_INV = 0x1
OPEN_INTERVAL_UDATA = bytes((1, 4)) + struct.pack("=I", 1)  # element flag: the range runs to the last address
SADDR_SET_UDATA = {
    "ip": bytes.fromhex("0004020000000204010000000314000407000000010c00040c00000001040b000000"),
    "ip6": bytes.fromhex("0004020000000204010000000314000407000000010c00040d000000010408000000"),
}
PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132}
ADDRESS_OFFSETS = {("ip", "saddr"): 12, ("ip", "daddr"): 16, ("ip6", "saddr"): 8, ("ip6", "daddr"): 24}
# The element containers a partial sync writes, by key: an address, a protocol, a port.
CONTAINER_KEYS = {
    "cluster-ips": ("addr",), "nodeport-ips": ("addr",),
    "service-ips": ("addr", "proto", "port"), "no-endpoint-services": ("addr", "proto", "port"),
    "firewall-ips": ("addr", "proto", "port"),
    "service-nodeports": ("proto", "port"), "no-endpoint-nodeports": ("proto", "port"),
}
MAX_NAME = 256  # NFT_NAME_MAXLEN, NUL included
QUERY_TIMEOUT = 30.0  # a dump of 110,000 chains takes about a second; this only bounds a wedged kernel


class Unsupported(Exception):
    """A line this module does not build; the caller runs `nft -f` instead."""


class BatchRefused(Exception):
    """The kernel refused the batch (nothing applied), or did not say it committed."""

    def __init__(self, message: str, code: int = 0, line_number: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.line_number = line_number


# --- encoding (pure) ---------------------------------------------------------------------------------------

_ATTR_HEADER = struct.Struct("=HH")
_PADDING = (b"", b"\0\0\0", b"\0\0", b"\0")


def attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return _ATTR_HEADER.pack(length, kind) + payload + _PADDING[length & 3]


def nested(kind: int, *parts: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(parts))


@functools.lru_cache(maxsize=1 << 16)  # a full sync repeats them thousands of times
def be32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack(">I", value & 0xFFFFFFFF))


@functools.lru_cache(maxsize=1 << 16)  # a full sync repeats them thousands of times
def string(kind: int, text: str) -> bytes:
    raw = text.encode() + b"\0"
    if len(raw) > MAX_NAME:
        raise Unsupported(f"name too long: {text[:40]}...")
    return attr(kind, raw)


def expr(name: str, *parts: bytes) -> bytes:
    return nested(LIST_ELEM, string(EXPR_NAME, name), nested(EXPR_DATA, *parts))


def value(kind: int, data: bytes) -> bytes:
    return nested(kind, attr(DATA_VALUE, data))


def verdict(kind: int, code: int, chain: str | None = None) -> bytes:
    parts = [be32(VERDICT_CODE, code)] + ([string(VERDICT_CHAIN, chain)] if chain is not None else [])
    return nested(kind, nested(DATA_VERDICT, *parts))


def udata_comment(text: str) -> bytes:
    raw = text.encode() + b"\0"
    if len(raw) > 255:
        raise Unsupported("comment too long")
    return bytes((UDATA_COMMENT, len(raw))) + raw


@functools.lru_cache(maxsize=1 << 16)  # a full sync repeats them thousands of times
def payload_load(base: int, offset: int, length: int) -> bytes:
    return expr("payload", be32(1, REG_1), be32(2, base), be32(3, offset), be32(4, length))


def cmp(op: int, data: bytes) -> bytes:
    return expr("cmp", be32(1, REG_1), be32(2, op), value(3, data))


@functools.lru_cache(maxsize=1 << 16)  # a full sync repeats them thousands of times
def meta_l4proto() -> bytes:
    return expr("meta", be32(2, META_L4PROTO), be32(1, REG_1))


@functools.lru_cache(maxsize=1 << 16)  # a full sync repeats them thousands of times
def immediate_verdict(code: int, chain: str | None) -> bytes:
    return expr("immediate", be32(1, REG_VERDICT), verdict(2, code, chain))


@dataclass(frozen=True)
class Message:
    """One nf_tables message of a batch, and the transaction line it came from (1-based)."""

    line: int
    kind: int
    flags: int
    family: int
    attrs: bytes


def encode(messages: Sequence[Message], first_seq: int) -> bytes:
    """The batch: BEGIN, the messages with consecutive sequence numbers (the last asking for an
    acknowledgement), END."""
    def header(kind: int, flags: int, seq: int, family: int, res_id: int, body: bytes) -> bytes:
        return struct.pack("=IHHII", 20 + len(body), kind, flags, seq, 0) + struct.pack("=BBH", family, 0,
                                                                                          res_id) + body

    subsystem = socket.htons(NFNL_SUBSYS_NFTABLES)
    out = [header(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, first_seq, 0, subsystem, b"")]
    for index, msg in enumerate(messages):
        flags = msg.flags | (NLM_F_ACK if index == len(messages) - 1 else 0)
        out.append(header(NFNL_SUBSYS_NFTABLES << 8 | msg.kind, flags, first_seq + 1 + index, msg.family, 0,
                          msg.attrs))
    out.append(header(NFNL_MSG_BATCH_END, NLM_F_REQUEST, first_seq + 1 + len(messages), 0, subsystem, b""))
    return b"".join(out)


# --- the transaction text (pure) ---------------------------------------------------------------------------

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\S+')
_LINE = re.compile(r"^(add|flush|delete) (chain|rule|element|set) (ip|ip6) (\S+) (\S+)(?: (.*))?$")
# The affinity sets of services with ClientIP session affinity, the only sets a partial sync adds.
_AFFINITY_SET = re.compile(r"^\{ type (ipv4_addr|ipv6_addr) ; flags dynamic,timeout ; timeout (\d+)s ; \}$")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def unquote(token: str) -> str:
    if len(token) < 2 or token[0] != '"' or token[-1] != '"':
        raise Unsupported(f"expected a quoted string, not {token!r}")
    return re.sub(r"\\(.)", r"\1", token[1:-1])


class _Compiler:
    """Lines -> Messages; Unsupported for anything outside a partial sync's vocabulary."""

    def __init__(self, first_set_id: int = 1) -> None:
        self.messages: list[Message] = []
        self.set_ids = itertools.count(first_set_id)  # names the batch's anonymous sets until the kernel does
        self.new_sets: dict[str, int] = {}  # named sets this batch adds: name -> ID (as nft refers to them)
        self.number, self.head = 0, b""  # the rule being compiled: its line and table attribute

    def line(self, number: int, text: str) -> None:
        match = _LINE.match(text)
        if match is None:
            raise Unsupported(f"line {number}: {text[:60]}")
        verb, obj, fam, table, name, rest = match.groups()
        family = NFPROTO[fam]
        head = string(1, table)  # NFTA_*_TABLE is attribute 1 for chains, rules, sets and elements
        if obj == "chain":
            if rest is not None:
                raise Unsupported(f"line {number}: a chain with a spec")
            kind, flags, body = {
                "add": (MSG_NEWCHAIN, NLM_F_CREATE, string(CHAIN_NAME, name)),
                "flush": (MSG_DELRULE, 0, string(RULE_CHAIN, name)),
                "delete": (MSG_DELCHAIN, 0, string(CHAIN_NAME, name)),
            }[verb]
            self.emit(number, kind, flags, family, head + body)
        elif obj == "rule" and verb == "add" and rest:
            self.rule(number, fam, family, head, name, rest)
        elif obj == "element" and verb in ("add", "delete") and rest:
            self.elements(number, verb, fam, family, head, name, rest)
        elif obj == "set" and verb == "add" and rest:
            self.affinity_set(number, fam, family, head, name, rest)
        elif obj == "set" and verb == "delete" and rest is None:
            self.emit(number, MSG_DELSET, 0, family, head + string(SET_NAME, name))
        else:
            raise Unsupported(f"line {number}: {verb} {obj}")

    def emit(self, number: int, kind: int, flags: int, family: int, attrs: bytes) -> None:
        self.messages.append(Message(number, kind, NLM_F_REQUEST | flags, family, attrs))

    # rules

    def rule(self, number: int, fam: str, family: int, head: bytes, chain: str, body: str) -> None:
        self.number, self.head = number, head  # for the anonymous sets a rule may add before itself
        words = tokens(body)
        exprs: list[bytes] = []
        userdata = b""
        pos = 0
        # nft adds a `meta l4proto` match before a port match and needs one before `dnat to ADDR:PORT`;
        # a verdict ends a rule. Texts that would make nft do more than this module are left to nft.
        l4proto = ended = False
        while pos < len(words):
            word = words[pos]
            if word == "comment" and pos == len(words) - 2:
                userdata = udata_comment(unquote(words[pos + 1]))
                break
            if ended:
                raise Unsupported(f"line {number}: {word} after the verdict")
            if word in ("ip", "ip6") and pos + 2 < len(words) and (word, words[pos + 1]) in ADDRESS_OFFSETS:
                if word != fam:
                    raise Unsupported(f"line {number}: {word} in a {fam} table")
                pos = self.address_match(exprs, fam, words, pos)
            elif word in PROTOCOLS and words[pos + 1:pos + 2] == ["dport"] and pos + 2 < len(words) and not l4proto:
                exprs += [meta_l4proto(), cmp(CMP_EQ, bytes((PROTOCOLS[word],))),
                          payload_load(PAYLOAD_TRANSPORT, 2, 2), cmp(CMP_EQ, port_bytes(words[pos + 2]))]
                pos, l4proto = pos + 3, True
            elif words[pos:pos + 4] == ["fib", "saddr", "type", "local"]:
                exprs += [expr("fib", be32(3, FIB_F_SADDR), be32(2, FIB_RESULT_ADDRTYPE), be32(1, REG_1)),
                          cmp(CMP_EQ, struct.pack("=I", RTN_LOCAL))]
                pos += 4
            elif word == "iifname" and pos + 1 < len(words):
                pos = iifname_match(exprs, words, pos)
            elif word == "update" and words[pos + 1:pos + 2] and words[pos + 1].startswith("@"):
                pos = self.update_set(exprs, fam, words, pos)
            elif words[pos:pos + 2] == ["meta", "l4proto"] and pos + 2 < len(words) and not l4proto:
                exprs += [meta_l4proto(), cmp(CMP_EQ, bytes((protocol(words[pos + 2]),)))]
                pos, l4proto = pos + 3, True
            elif word in PLAIN_VERDICTS:
                exprs.append(immediate_verdict(PLAIN_VERDICTS[word], None))
                pos, ended = pos + 1, True
            elif word in VERDICTS and pos + 1 < len(words):
                exprs.append(immediate_verdict(VERDICTS[word], words[pos + 1]))
                pos, ended = pos + 2, True
            elif words[pos:pos + 2] == ["dnat", "to"] and pos + 2 < len(words) and l4proto:
                exprs += dnat(fam, words[pos + 2])
                pos, ended = pos + 3, True
            elif words[pos:pos + 3] == ["numgen", "random", "mod"] and pos + 3 < len(words):
                pos, ended = self.numgen_vmap(number, family, head, exprs, words, pos), True
            else:
                raise Unsupported(f"line {number}: {' '.join(words[pos:pos + 3])}")
        if not exprs:
            raise Unsupported(f"line {number}: an empty rule")
        attrs = head + string(RULE_CHAIN, chain) + nested(RULE_EXPRESSIONS, *exprs)
        if userdata:
            attrs += attr(RULE_USERDATA, userdata)
        self.emit(number, MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, family, attrs)

    def address_match(self, exprs: list[bytes], fam: str, words: list[str], pos: int) -> int:
        field = words[pos + 1]
        pos += 2
        op = CMP_EQ
        if words[pos] == "!=":
            op, pos = CMP_NEQ, pos + 1
        if pos >= len(words):
            raise Unsupported(f"{fam} {field} without a value")
        offset = ADDRESS_OFFSETS[(fam, field)]
        if words[pos] == "{":
            return self.address_set(exprs, fam, field, op, words, pos)
        if words[pos].startswith("@"):
            if op != CMP_EQ:
                raise Unsupported(f"{fam} {field} != @set")
            exprs += [payload_load(PAYLOAD_NETWORK, offset, ADDRESS_TYPES[fam][1]),
                      expr("lookup", be32(2, REG_1), string(1, words[pos][1:]), *self.set_id_of(words[pos][1:]))]
            return pos + 1
        data, mask = prefix_bytes(fam, words[pos])
        self.masked_match(exprs, fam, field, op, data, mask)
        return pos + 1

    def address_set(self, exprs: list[bytes], fam: str, field: str, op: int, words: list[str], pos: int) -> int:
        """`ip saddr != { CIDR , ADDRESS , ... }`: one member is a plain match (nft makes it one); more
        are an anonymous interval set, sorted, with an end element after each range."""
        if "}" not in words[pos:]:
            raise Unsupported("an unterminated set")
        end = words.index("}", pos)
        members = " ".join(words[pos + 1:end]).split(" , ")
        if len(members) == 1:
            data, mask = prefix_bytes(fam, members[0])
            self.masked_match(exprs, fam, field, op, data, mask)
            return end + 1
        if field != "saddr" or op != CMP_NEQ:
            raise Unsupported(f"{fam} {field} with a set of addresses")
        width = ADDRESS_TYPES[fam][1]
        ranges = sorted(address_range(fam, member) for member in members)
        if any(prev_end >= start for (_, prev_end), (start, _) in zip(ranges, ranges[1:], strict=False)):
            raise Unsupported("overlapping or adjacent ranges (nft would merge them)")
        if ranges[0][0] == 0:
            raise Unsupported("a range from the first address")
        # (key, end of a range?, open to the last address?): nft starts with an end at 0
        keys: list[tuple[int, bool, bool]] = [(0, True, False)]
        for start, stop in ranges:
            keys.append((start, False, stop == 1 << (8 * width)))
            if stop < 1 << (8 * width):
                keys.append((stop, True, False))
        elements = [nested(index, *([be32(ELEM_FLAGS, ELEM_INTERVAL_END)] if is_end else []),
                           value(ELEM_KEY, key.to_bytes(width, "big")),
                           *([attr(ELEM_USERDATA, OPEN_INTERVAL_UDATA)] if is_open else []))
                    for index, (key, is_end, is_open) in enumerate(keys, 1)]
        set_id = next(self.set_ids)
        key_type, key_len = ADDRESS_TYPES[fam]
        family, head = NFPROTO[fam], self.head
        self.emit(self.number, MSG_NEWSET, NLM_F_CREATE, family,
                  head + string(SET_NAME, "__set%d") + be32(SET_FLAGS, SET_ANONYMOUS | SET_CONSTANT | SET_INTERVAL)
                  + be32(SET_KEY_TYPE, key_type) + be32(SET_KEY_LEN, key_len) + be32(SET_ID, set_id)
                  + nested(SET_DESC, be32(SET_DESC_SIZE, 2 * len(ranges) + 1))
                  + attr(SET_USERDATA, SADDR_SET_UDATA[fam]))
        self.emit(self.number, MSG_NEWSETELEM, NLM_F_CREATE, family,
                  head + string(ELEM_LIST_SET, "__set%d") + be32(ELEM_LIST_SET_ID, set_id)
                  + nested(ELEM_LIST_ELEMENTS, *elements))
        exprs += [payload_load(PAYLOAD_NETWORK, ADDRESS_OFFSETS[(fam, field)], width),
                  expr("lookup", be32(2, REG_1), string(1, "__set%d"), be32(4, set_id), be32(5, LOOKUP_F_INV))]
        return end + 1

    def masked_match(self, exprs: list[bytes], fam: str, field: str, op: int, data: bytes,
                     mask: bytes | None) -> None:
        offset = ADDRESS_OFFSETS[(fam, field)]
        if mask is None:
            exprs += [payload_load(PAYLOAD_NETWORK, offset, len(data)), cmp(op, data)]
        else:  # a prefix that is not whole bytes: the whole address, masked
            exprs += [payload_load(PAYLOAD_NETWORK, offset, len(data)),
                      expr("bitwise", be32(1, REG_1), be32(2, REG_1), be32(3, len(mask)), value(4, mask),
                           value(5, bytes(len(mask)))),
                      cmp(op, data)]

    def set_id_of(self, name: str) -> list[bytes]:
        """NFTA_*_SET_ID for a set this batch adds (nft names those by ID too), nothing for others."""
        return [be32(4, self.new_sets[name])] if name in self.new_sets else []

    def update_set(self, exprs: list[bytes], fam: str, words: list[str], pos: int) -> int:
        """`update @SET { ip saddr }`: the affinity sets' dynset."""
        name = words[pos + 1][1:]
        if words[pos + 2:pos + 6] != ["{", fam, "saddr", "}"]:
            raise Unsupported(f"update @{name} with {' '.join(words[pos + 2:pos + 6])}")
        set_id = [be32(2, self.new_sets[name])] if name in self.new_sets else []
        exprs += [payload_load(PAYLOAD_NETWORK, ADDRESS_OFFSETS[(fam, "saddr")], ADDRESS_TYPES[fam][1]),
                  expr("dynset", be32(4, DYNSET_OP_UPDATE), be32(3, REG_1), string(1, name), *set_id)]
        return pos + 6

    def affinity_set(self, number: int, fam: str, family: int, head: bytes, name: str, spec: str) -> None:
        match = _AFFINITY_SET.match(spec)
        if match is None or match.group(1) != ("ipv4_addr" if fam == "ip" else "ipv6_addr"):
            raise Unsupported(f"line {number}: add set {name} {spec[:40]}")
        key_type, key_len = ADDRESS_TYPES[fam]
        set_id = next(self.set_ids)
        self.new_sets[name] = set_id
        self.emit(number, MSG_NEWSET, NLM_F_CREATE, family,
                  head + string(SET_NAME, name) + be32(SET_FLAGS, SET_TIMEOUT | SET_EVAL)
                  + be32(SET_KEY_TYPE, key_type) + be32(SET_KEY_LEN, key_len) + be32(SET_ID, set_id)
                  + attr(SET_TIMEOUT_ATTR, struct.pack(">Q", int(match.group(2)) * 1000))
                  + attr(SET_USERDATA, bytes((0, 4)) + struct.pack("=I", BYTEORDER_BIG_ENDIAN)))

    def numgen_vmap(self, number: int, family: int, head: bytes, exprs: list[bytes], words: list[str],
                    pos: int) -> int:
        modulus = int_token(words[pos + 3])
        if words[pos + 4:pos + 6] != ["vmap", "{"] or "}" not in words[pos + 6:]:
            raise Unsupported(f"line {number}: numgen without an anonymous vmap")
        end = words.index("}", pos + 6)
        entries = " ".join(words[pos + 6:end]).split(" , ")
        elements = []
        for index, entry in enumerate(entries, 1):
            match = re.fullmatch(r"(\d+) : (goto|jump) (\S+)", entry)
            if match is None:
                raise Unsupported(f"line {number}: vmap entry {entry!r}")
            key = struct.pack("=I", int(match.group(1)))  # numgen's integer, host byte order
            # libnftnl numbers the elements of a list (the kernel reads them in order, whatever the number)
            elements.append(nested(index, value(ELEM_KEY, key),
                                   verdict(ELEM_DATA, VERDICTS[match.group(2)], match.group(3))))
        set_id = next(self.set_ids)
        name = string(SET_NAME, "__map%d")
        self.emit(number, MSG_NEWSET, NLM_F_CREATE, family,
                  head + name + be32(SET_FLAGS, SET_ANONYMOUS | SET_CONSTANT | SET_MAP)
                  + be32(SET_KEY_TYPE, TYPE_INTEGER) + be32(SET_KEY_LEN, 4)
                  + be32(SET_DATA_TYPE, DATA_TYPE_VERDICT) + be32(SET_DATA_LEN, 0) + be32(SET_ID, set_id)
                  + nested(SET_DESC, be32(SET_DESC_SIZE, len(elements))) + attr(SET_USERDATA, NUMGEN_VMAP_UDATA))
        self.emit(number, MSG_NEWSETELEM, NLM_F_CREATE, family,
                  head + string(ELEM_LIST_SET, "__map%d") + be32(ELEM_LIST_SET_ID, set_id)
                  + nested(ELEM_LIST_ELEMENTS, *elements))
        exprs += [expr("numgen", be32(1, REG_1), be32(2, modulus), be32(3, NUMGEN_RANDOM), be32(4, 0)),
                  expr("lookup", be32(2, REG_1), be32(3, REG_VERDICT), string(1, "__map%d"), be32(4, set_id))]
        return end + 1

    # elements

    def elements(self, number: int, verb: str, fam: str, family: int, head: bytes, container: str,
                 rest: str) -> None:
        layout = CONTAINER_KEYS.get(container)
        words = tokens(rest)
        if layout is None or len(words) < 3 or words[0] != "{" or words[-1] != "}":
            raise Unsupported(f"line {number}: elements of {container}")
        key_words, comment, data = split_element(words[1:-1])
        if verb == "delete" and (comment or data):
            raise Unsupported(f"line {number}: delete element with a value")
        parts = [value(ELEM_KEY, element_key(fam, layout, key_words))]
        if data:
            parts.append(element_verdict(data))
        if comment is not None:
            parts.append(attr(ELEM_USERDATA, udata_comment(comment)))
        kind, flags = (MSG_NEWSETELEM, NLM_F_CREATE) if verb == "add" else (MSG_DELSETELEM, 0)
        self.emit(number, kind, flags, family,
                  head + string(ELEM_LIST_SET, container) + nested(ELEM_LIST_ELEMENTS, nested(LIST_ELEM, *parts)))


def split_element(words: list[str]) -> tuple[list[str], str | None, list[str]]:
    """`KEY [comment "..."] [: VALUE]` -> key words, comment, value words (one element only)."""
    data: list[str] = []
    if ":" in words:
        at = words.index(":")
        words, data = words[:at], words[at + 1:]
    comment = None
    if len(words) >= 2 and words[-2] == "comment":
        comment = unquote(words[-1])
        words = words[:-2]
    if "," in words or "," in data:
        raise Unsupported("more than one element on a line")
    return words, comment, data


def element_key(fam: str, layout: tuple[str, ...], words: list[str]) -> bytes:
    fields = " ".join(words).split(" . ")
    if len(fields) != len(layout):
        raise Unsupported(f"key {' '.join(words)!r} does not fit the container")
    out = b""
    for kind, text in zip(layout, fields, strict=True):
        if kind == "addr":
            raw = address_bytes(fam, text)
        elif kind == "proto":
            raw = bytes((protocol(text),))
        else:
            raw = port_bytes(text)
        out += raw + bytes(-len(raw) % 4)  # each field of a concatenation takes whole 32-bit registers
    return out


def element_verdict(words: list[str]) -> bytes:
    if len(words) == 2 and words[0] in VERDICTS:
        return verdict(ELEM_DATA, VERDICTS[words[0]], words[1])
    if len(words) == 1 and words[0] in PLAIN_VERDICTS:
        return verdict(ELEM_DATA, PLAIN_VERDICTS[words[0]])
    raise Unsupported(f"element value {' '.join(words)!r}")


def int_token(text: str) -> int:
    if not text.isdigit():
        raise Unsupported(f"expected a number, not {text!r}")
    return int(text)


def protocol(text: str) -> int:
    if text not in PROTOCOLS:
        raise Unsupported(f"protocol {text!r}")
    return PROTOCOLS[text]


def port_bytes(text: str) -> bytes:
    port = int_token(text)
    if not 0 < port < 65536:
        raise Unsupported(f"port {text!r}")
    return struct.pack(">H", port)


def address_bytes(fam: str, text: str) -> bytes:
    try:  # inet_pton: strict (dotted quad / RFC 4291 text) and much faster than ipaddress
        return socket.inet_pton(socket.AF_INET if fam == "ip" else socket.AF_INET6, text)
    except OSError:
        raise Unsupported(f"address {text!r} in family {fam}") from None


def address_range(fam: str, text: str) -> tuple[int, int]:
    """[first, last + 1) of an address or a prefix, as integers."""
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        raise Unsupported(f"set member {text!r}") from None
    if network.version != (4 if fam == "ip" else 6):
        raise Unsupported(f"set member {text!r} in family {fam}")
    return int(network.network_address), int(network.network_address) + network.num_addresses


def prefix_bytes(fam: str, text: str) -> tuple[bytes, bytes | None]:
    """What to compare an address field with, and the mask to apply first (None: no mask). As nft: a
    prefix of whole bytes compares only those bytes; an IPv4 prefix of another length masks the whole
    address (IPv6 ones are left to nft)."""
    if "/" not in text:
        return address_bytes(fam, text), None
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        raise Unsupported(f"prefix {text!r}") from None
    if network.version != (4 if fam == "ip" else 6) or network.prefixlen == 0:
        raise Unsupported(f"prefix {text!r}")
    if network.prefixlen % 8 == 0:
        return network.network_address.packed[:network.prefixlen // 8], None
    if fam != "ip":
        raise Unsupported(f"prefix {text!r}")
    return network.network_address.packed, network.netmask.packed


def iifname_match(exprs: list[bytes], words: list[str], pos: int) -> int:
    """`iifname [!=] "name"` (the whole name, NUL-padded) or `"prefix*"` (only the prefix's bytes)."""
    op, pos = (CMP_NEQ, pos + 2) if words[pos + 1] == "!=" else (CMP_EQ, pos + 1)
    if pos >= len(words):
        raise Unsupported("iifname without a name")
    name = unquote(words[pos]) if words[pos].startswith('"') else words[pos]
    if name.endswith("*"):
        data = name[:-1].encode()
    else:
        data = name.encode().ljust(IFNAMSIZ, b"\0")
    if not data or len(data) > IFNAMSIZ or "*" in name[:-1] or "\\" in name:
        raise Unsupported(f"iifname {name!r}")
    exprs += [expr("meta", be32(2, META_IIFNAME), be32(1, REG_1)), cmp(op, data)]
    return pos + 1


def dnat(fam: str, target: str) -> list[bytes]:
    match = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)" if fam == "ip6" else r"([0-9.]+):(\d+)", target)
    if match is None:
        raise Unsupported(f"dnat to {target!r}")
    return [expr("immediate", be32(1, REG_1), value(2, address_bytes(fam, match.group(1)))),
            expr("immediate", be32(1, REG_2), value(2, port_bytes(match.group(2)))),
            expr("nat", be32(1, NAT_DNAT), be32(2, NFPROTO[fam]), be32(3, REG_1), be32(5, REG_2),
                 be32(7, NAT_RANGE_PROTO_SPECIFIED))]


def compile_transaction(text: str, *, first_set_id: int = 1) -> list[Message]:
    """The messages for a transaction ([] for one with no commands); Unsupported when a line is outside
    the vocabulary."""
    compiler = _Compiler(first_set_id)
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            compiler.line(number, line)
    return compiler.messages


# --- the kernel's answer (pure) -----------------------------------------------------------------------------

def parse_replies(data: bytes) -> Iterator[tuple[int, int]]:
    """(sequence number, error code) of each NLMSG_ERROR in `data`; code 0 is an acknowledgement."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind, _flags, seq, _pid = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            break
        if kind == NLMSG_ERROR and length >= 20:
            (code,) = struct.unpack_from("=i", data, offset + 16)
            yield seq, -code
        offset += (length + 3) & ~3


def outcome(replies: Sequence[tuple[int, int]], messages: Sequence[Message], first_seq: int) -> None:
    """None when the last message was acknowledged and nothing failed; BatchRefused otherwise."""
    last_seq = first_seq + len(messages)
    for seq, code in replies:
        if code:
            index = seq - first_seq - 1
            line = messages[index].line if 0 <= index < len(messages) else None
            raise BatchRefused(os.strerror(code), code, line)
    if (last_seq, 0) not in replies:
        raise BatchRefused("the kernel did not acknowledge the batch")


# --- the socket ---------------------------------------------------------------------------------------------

class NftBatchSocket:
    """A NETLINK_NETFILTER socket made inside a namespace (it stays that namespace's), for batches."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        self.sock.bind((0, 0))
        self.seq = itertools.count(int.from_bytes(os.urandom(2), "big") << 8, 1 << 20)

    def send(self, messages: Sequence[Message]) -> None:
        """Apply the batch; BatchRefused (nothing applied) or OSError (not sent, nothing applied)."""
        first_seq = next(self.seq) & 0x7FFFFFFF
        data = encode(messages, first_seq)
        if len(data) > 200_000:  # a netlink message must fit the send buffer (default ~208 KB)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 2 * len(data))
        self._drain()  # nothing stale from an earlier batch may be read as this one's answer
        self.sock.sendto(data, (0, 0))
        # The kernel processes the whole batch, commit included, inside sendto: every answer is queued now.
        replies = []
        while True:
            try:
                chunk = self.sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            replies += parse_replies(chunk)
        outcome(replies, messages, first_seq)

    def query(self, kind: int, family: int, attrs: bytes, *, dump: bool) -> list[bytes]:
        """One GET request (a dump when `dump`): the answers' attribute blocks. OSError on trouble;
        FileNotFoundError (ENOENT) when what was asked for does not exist."""
        seq = next(self.seq) & 0x7FFFFFFF
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else NLM_F_ACK)
        request = struct.pack("=IHHII", 20 + len(attrs), NFNL_SUBSYS_NFTABLES << 8 | kind, flags, seq, 0)
        self._drain()
        self.sock.sendto(request + struct.pack("=BBH", family, 0, 0) + attrs, (0, 0))
        bodies: list[bytes] = []
        while True:
            ready, _, _ = select.select([self.sock], [], [], QUERY_TIMEOUT)
            if not ready:
                raise TimeoutError(f"no answer from nf_tables in {QUERY_TIMEOUT:.0f} s")
            answers, done, code = parse_answers(self.sock.recv(1 << 16), seq)
            bodies += answers
            if code:
                raise OSError(code, os.strerror(code))
            if done or (not dump and answers):
                return bodies

    def _drain(self) -> None:
        while True:
            try:
                self.sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return

    def close(self) -> None:
        self.sock.close()


def errno_name(code: int) -> str | None:
    return errno_module.errorcode.get(code)


# --- a cold start in steps (pure) ---------------------------------------------------------------------------

# Below this many anonymous vmaps one `nft -f` is as fast as the steps (measured, 10 endpoints per
# Service: 1,000 Services 1.0-1.2 s in one against 1.1 s in steps; 2,000: 5.6 s against 2.6 s).
COLD_START_MIN_VMAPS = 1000
# Rules per filling batch: each anonymous vmap the kernel binds walks the batch's transaction list so far,
# so a batch's cost grows with the square of its size; small batches keep it linear overall.
FILL_RULES_PER_BATCH = 2000
_OBJECT_LINE = re.compile(r"^(add|flush|delete) (table|chain|rule|set|map|element) (ip|ip6) (\S+)(?: (\S+))?(?: (.*))?$")


@dataclass
class ColdStart:
    """A full transaction for a table that does not exist yet, in three steps that end in the same table.

    `skeleton` (for `nft -f`): every line creating or deleting the table, a chain, a set or a map, in
    their order, so objects are created (and listed) in the same order; then `fills()` (batches): the
    rules of every chain that is not hooked and whose rules this module builds, chunked; then `rest()`
    (for `nft -f`): everything else in order (hooked and fixed chains' rules, flushes, elements). Until
    `rest` is applied no packet reaches a filled chain: base chains are empty and the maps have no
    elements, so the table acts as an empty one; `rest` then turns everything on in one transaction.
    The batches are built lazily, so building one can overlap sending the one before.
    """

    family: str
    table: str
    skeleton: str
    lines: list[tuple[str, str, str, str]]  # every other line: (line, verb, object, name)
    candidates: dict[str, list[str]]  # rule lines of each chain that is not hooked, in order
    rules_per_batch: int = FILL_RULES_PER_BATCH
    filled: set[str] = field(default_factory=set)

    def fills(self) -> Iterator[tuple[Message, ...]]:
        """Batches of about `rules_per_batch` rules; an anonymous set's messages stay with its rule."""
        compiler = _Compiler()  # one for all: anonymous sets need IDs unique within each batch
        current: list[Message] = []
        rules = 0
        for chain, lines in self.candidates.items():
            messages = _compiled_or_none(compiler, lines)
            del compiler.messages[:]
            if messages is None:
                continue
            self.filled.add(chain)
            current += messages
            rules += len(lines)
            if rules >= self.rules_per_batch:
                yield tuple(current)
                current, rules = [], 0
        if current:
            yield tuple(current)

    def rest(self) -> str:
        """What `fills()` left (call after it is exhausted)."""
        rest = [line for line, verb, obj, name in self.lines
                if not (name in self.filled and (obj == "rule" or (obj == "chain" and verb == "flush")))]
        return "\n".join(rest) + "\n" if rest else ""


def cold_start_split(text: str, *, min_vmaps: int = COLD_START_MIN_VMAPS,
                     rules_per_batch: int = FILL_RULES_PER_BATCH) -> ColdStart | None:
    """The steps for `text` applied to a table that does not exist, or None (small, or not one table's).
    Cheap: the rules are compiled when `fills()` is iterated."""
    if text.count("vmap {") < min_vmaps:
        return None
    parsed = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _OBJECT_LINE.match(line)
        if match is None:
            return None
        parsed.append((line, *match.groups()))
    targets = {(fam, table) for _, _, _, fam, table, _, _ in parsed}
    if len(targets) != 1:
        return None
    ((family, table),) = targets
    hooked = {name for _, verb, obj, _, _, name, rest in parsed
              if obj == "chain" and verb == "add" and rest and " hook " in rest}
    candidates: dict[str, list[str]] = {}
    skeleton, lines = [], []
    for line, verb, obj, _, _, name, _ in parsed:
        if obj in ("table", "chain", "set", "map") and verb in ("add", "delete"):
            skeleton.append(line)
            continue
        lines.append((line, verb, obj, name))
        if obj == "rule" and name not in hooked:
            candidates.setdefault(name, []).append(line)
    return ColdStart(family, table, "\n".join(skeleton) + "\n", lines, candidates, rules_per_batch)


def transaction_target(text: str) -> tuple[str, str] | None:
    """(family, table) that the first command of `text` names, or None."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            match = _OBJECT_LINE.match(line)
            return (match.group(3), match.group(4)) if match else None
    return None


def _compiled_or_none(compiler: _Compiler, lines: list[str]) -> list[Message] | None:
    """The messages of these lines, or None (and nothing kept) when one is outside the vocabulary."""
    start = len(compiler.messages)
    try:
        for number, line in enumerate(lines, 1):
            compiler.line(number, line)
    except Unsupported:
        del compiler.messages[start:]
        return None
    return compiler.messages[start:]


# --- reading the table over netlink ------------------------------------------------------------------------
#
# `nft list ...` (1.0.6) fetches the whole ruleset, every set element and rule included, before printing
# even `nft list tables`: 26 s at 10,000 Services. The proxy asks only whether its table exists (the
# canary, every few seconds) and the names of its chains, sets and counters (after a restart); one
# netlink request answers each.

MSG_GETTABLE, MSG_GETCHAIN, MSG_GETSET, MSG_GETOBJ = 1, 4, 10, 19
NLM_F_DUMP = 0x300
NLMSG_DONE = 3
TABLE_NAME = 1
OBJ_TABLE, OBJ_NAME, OBJ_TYPE, OBJ_DATA = 1, 2, 3, 4
OBJECT_COUNTER = 1
COUNTER_BYTES, COUNTER_PACKETS = 1, 2


def attributes(data: bytes) -> dict[int, bytes]:
    """Top-level attributes of a message body (after nfgenmsg): type -> payload."""
    out, offset = {}, 0
    while offset + 4 <= len(data):
        length, kind = _ATTR_HEADER.unpack_from(data, offset)
        if length < 4:
            break
        out[kind & 0x3FFF] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


def cstring(payload: bytes) -> str:
    return payload.split(b"\0", 1)[0].decode()


def parse_answers(data: bytes, seq: int) -> tuple[list[bytes], bool, int]:
    """The attribute blocks of the answers to request `seq` in `data`, whether the answer is complete
    (NLMSG_DONE, or the acknowledgement / error), and the error code (0: none)."""
    bodies, done, code, offset = [], False, 0, 0
    while offset + 16 <= len(data):
        length, kind, _flags, msg_seq, _pid = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            break
        if msg_seq == seq:
            if kind == NLMSG_DONE:
                done = True
            elif kind == NLMSG_ERROR:
                (code,) = struct.unpack_from("=i", data, offset + 16)
                code, done = -code, True
            else:
                bodies.append(data[offset + 20:offset + length])
        offset += (length + 3) & ~3
    return bodies, done, code


def named(bodies: list[bytes], table: str, name_attr: int, table_attr: int = 1) -> list[dict[int, bytes]]:
    """The attribute maps of the answers that belong to `table` (dumps may hold other tables' too)."""
    out = []
    for body in bodies:
        attrs = attributes(body)
        if table_attr in attrs and cstring(attrs[table_attr]) == table and name_attr in attrs:
            out.append(attrs)
    return out


def set_kind(attrs: dict[int, bytes]) -> str | None:
    """"set" or "map" for a named set as `nft list` shows it; None for an anonymous one (never listed)."""
    flags = struct.unpack(">I", attrs.get(SET_FLAGS, bytes(4)))[0]
    if flags & SET_ANONYMOUS:
        return None
    return "map" if flags & SET_MAP else "set"


def counter_values(attrs: dict[int, bytes]) -> tuple[int, int]:
    data = attributes(attrs.get(OBJ_DATA, b""))
    packets = struct.unpack(">Q", data[COUNTER_PACKETS])[0] if COUNTER_PACKETS in data else 0
    count_bytes = struct.unpack(">Q", data[COUNTER_BYTES])[0] if COUNTER_BYTES in data else 0
    return packets, count_bytes
