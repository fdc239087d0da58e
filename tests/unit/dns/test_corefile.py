"""The Corefile parser: CoreDNS's Caddyfile grammar, and its error messages naming the line."""
from __future__ import annotations

import pytest

from svcnet.dns.corefile import CorefileError, Directive, parse, tokenize
from svcnet.dns.plugins import PLUGIN_ORDER

KUBEADM = """\
.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
"""


def test_kubeadm_corefile_parses_into_its_directives_with_nested_blocks() -> None:
    [block] = parse(KUBEADM, valid=PLUGIN_ORDER)
    assert block.keys == (".:53",)
    assert [d.name for d in block.directives] == [
        "errors", "health", "ready", "kubernetes", "prometheus", "forward", "cache", "loop", "reload", "loadbalance"]
    kubernetes = block.directives[3]
    assert kubernetes.args == ("cluster.local", "in-addr.arpa", "ip6.arpa") and kubernetes.line == 7
    assert kubernetes.block == (Directive("pods", ("insecure",), 8), Directive("fallthrough", ("in-addr.arpa", "ip6.arpa"), 9),
                                Directive("ttl", ("30",), 10))
    assert block.directives[2].block is None


def test_several_server_blocks_keys_comments_and_one_line_blocks() -> None:
    text = """# stub domains
example.com:53 { forward . 10.0.0.10 }   # a one-line block
.:53 cluster.local, # a trailing comma continues the keys
  other.org {
    hosts { 10.1.2.3 printer.lan }
    log  # query log
}
"""
    first, second = parse(text, valid=PLUGIN_ORDER)
    assert first.keys == ("example.com:53",) and first.directives == (Directive("forward", (".", "10.0.0.10"), 2),)
    assert second.keys == (".:53", "cluster.local", "other.org") and second.line == 3
    assert second.directives[0] == Directive("hosts", (), 5, (Directive("10.1.2.3", ("printer.lan",), 5),))
    assert second.directives[1] == Directive("log", (), 6)


def test_quotes_keep_spaces_and_escaped_quotes_and_hash_inside_a_token_is_not_a_comment() -> None:
    tokens = tokenize('a "b c" "say \\"hi\\"" d#e # gone\nf')
    assert [(t.text, t.line) for t in tokens] == [("a", 1), ("b c", 1), ('say "hi"', 1), ("d#e", 1), ("f", 2)]


def test_environment_variables_are_substituted_in_keys_and_arguments() -> None:
    [block] = parse(".:{$PORT} {\n forward . {$UP} {%UP2%}\n}", valid=PLUGIN_ORDER,
                    env={"PORT": "1053", "UP": "10.0.0.1", "UP2": "10.0.0.2"})
    assert block.keys == (".:1053",)
    assert block.directives[0].args == (".", "10.0.0.1", "10.0.0.2")


def test_a_single_block_may_leave_out_its_braces() -> None:
    [block] = parse(".:53\nforward . 10.0.0.1\nlog\n", valid=PLUGIN_ORDER)
    assert [d.name for d in block.directives] == ["forward", "log"]


@pytest.mark.parametrize("text,message", [
    (".:53 {\n    errors\n    foo bar\n}\n", "Corefile:3 - Error during parsing: Unknown directive 'foo'"),
    (".:53 {\n    forward . 10.0.0.1\n", "Corefile:2 - Error during parsing: Unexpected EOF"),
    (".:53 {\n    cache 30 {\n      success 100\n}\n", "Corefile:4 - Error during parsing: Unexpected EOF"),
    (".:53,\n{\n log\n}\n", "Corefile:2 - Error during parsing: Expected another address but had '{' - "
                             "check for extra comma"),
    (".:53\nlog\n}\n", "Corefile:3 - Error during parsing: Unexpected '}' because no matching opening brace"),
], ids=["unknown-directive", "unclosed-block", "unclosed-nested-block", "extra-comma", "stray-brace"])
def test_bad_corefiles_fail_with_coredns_messages(text: str, message: str) -> None:
    with pytest.raises(CorefileError) as error:
        parse(text, valid=PLUGIN_ORDER)
    assert str(error.value) == message


def test_the_file_name_in_messages_is_the_callers() -> None:
    with pytest.raises(CorefileError, match=r"^/etc/coredns/Corefile:1 - Error during parsing: Unknown directive 'x'$"):
        parse(".:53 { x }", filename="/etc/coredns/Corefile", valid=PLUGIN_ORDER)
