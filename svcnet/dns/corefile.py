"""CoreDNS's Corefile: the Caddyfile syntax, parsed into server blocks and directives (pure, no I/O).

The grammar is coredns/caddy's `caddyfile` package as CoreDNS uses it:

- tokens are separated by whitespace; `"..."` quotes a token (whitespace and newlines
  kept, `\\"` an escaped quote); `#` at the start of a token comments out the rest of
  the line; `{$VAR}` and `{%VAR%}` in a token are replaced by the environment
  variable (empty when unset);
- a server block is its keys (`.:53`, `example.com:53 cluster.local`, a trailing comma
  continues the list on the next line) and `{ directives }`; a file with one server
  block may leave the braces out;
- a directive is a name and its arguments on one line, optionally followed by `{`
  and a nested block of lines (nested blocks may nest again).

One difference, on purpose: `}` closes a block wherever it stands, so one-line
blocks such as `hosts { 10.1.2.3 printer.lan }` read as they look (caddy would take
the `}` for an argument there and then miss the block's end).

Errors are CorefileError and read as CoreDNS prints them:
`Corefile:5 - Error during parsing: Unknown directive 'foo'`.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class CorefileError(ValueError):
    """A Corefile CoreDNS would refuse; str() is the message CoreDNS logs."""


@dataclass(frozen=True)
class Token:
    text: str
    line: int
    quoted: bool = False


@dataclass(frozen=True)
class Directive:
    """One line of a block: name, arguments, the nested block (None when there is none)."""

    name: str
    args: tuple[str, ...]
    line: int
    block: tuple[Directive, ...] | None = None

    @property
    def lines(self) -> tuple[Directive, ...]:
        return self.block or ()


@dataclass(frozen=True)
class ServerBlock:
    keys: tuple[str, ...]
    directives: tuple[Directive, ...]
    line: int


def parse_error(filename: str, line: int, message: str) -> CorefileError:
    return CorefileError(f"{filename}:{line} - Error during parsing: {message}")


def syntax_error(filename: str, token: Token | None, expected: str, last_line: int) -> CorefileError:
    if token is None:
        return parse_error(filename, last_line, "Unexpected EOF")
    return CorefileError(f"{filename}:{token.line} - Syntax error: Unexpected token '{token.text}', "
                         f"expecting '{expected}'")


# ------------------------------------------------------------------ lexing

def tokenize(text: str) -> list[Token]:
    """The tokens of text with their line numbers, as caddy's lexer splits them."""
    tokens: list[Token] = []
    line = 1
    value: list[str] = []
    start = 1
    quoted = in_quotes = escaped = comment = False
    for ch in text:
        if in_quotes:
            if escaped:
                value.append(ch if ch == '"' else "\\" + ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_quotes = False
            else:
                value.append(ch)
            if ch == "\n":
                line += 1
            continue
        if ch == "\n" or ch.isspace():
            if value or quoted:
                tokens.append(Token("".join(value), start, quoted))
                value, quoted = [], False
            if ch == "\n":
                line += 1
                comment = False
            continue
        if comment:
            continue
        if ch == "#" and not value and not quoted:
            comment = True
            continue
        if ch == '"' and not value:
            in_quotes = quoted = True
            start = line
            continue
        if not value:
            start = line
        value.append(ch)
    if value or quoted:
        tokens.append(Token("".join(value), start, quoted))
    return tokens


def replace_env(text: str, env: Mapping[str, str]) -> str:
    """{$VAR} and {%VAR%} -> the variable's value, as caddy's replaceEnvVars."""
    for opening, closing in (("{%", "%}"), ("{$", "}")):
        at = text.find(opening)
        while at != -1:
            end = text.find(closing, at + len(opening))
            if end == -1 or end == at + len(opening):
                break
            name = text[at + len(opening):end]
            text = text.replace(text[at:end + len(closing)], env.get(name, ""))
            at = text.find(opening)
    return text


# ----------------------------------------------------------------- parsing

class _Parser:
    def __init__(self, tokens: list[Token], filename: str, valid: Iterable[str] | None,
                 env: Mapping[str, str]) -> None:
        self.tokens = tokens
        self.at = 0
        self.filename = filename
        self.valid = None if valid is None else frozenset(valid)
        self.env = env
        self.last_line = tokens[-1].line if tokens else 1

    def peek(self) -> Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def is_brace(self, token: Token | None, brace: str) -> bool:
        return token is not None and not token.quoted and token.text == brace

    def blocks(self) -> list[ServerBlock]:
        blocks = []
        while self.peek() is not None:
            blocks.append(self.server_block())
        return blocks

    def server_block(self) -> ServerBlock:
        first = self.peek()
        assert first is not None
        keys = self.keys()
        if not self.is_brace(self.peek(), "{"):
            # Braces may be left out around a file's only server block.
            directives = self.lines(closing=False)
            if self.peek() is not None:
                raise syntax_error(self.filename, self.peek(), "{", self.last_line)
            return ServerBlock(tuple(keys), tuple(directives), first.line)
        self.take()
        directives = self.lines(closing=True)
        return ServerBlock(tuple(keys), tuple(directives), first.line)

    def keys(self) -> list[str]:
        keys: list[str] = []
        line = self.tokens[self.at].line
        expecting_another = False
        while True:
            token = self.peek()
            if token is None:
                if expecting_another:
                    raise parse_error(self.filename, self.last_line, "Unexpected EOF")
                return keys
            if self.is_brace(token, "{"):
                if expecting_another:
                    raise parse_error(self.filename, token.line,
                                      "Expected another address but had '{' - check for extra comma")
                return keys
            if token.line != line and not expecting_another:
                return keys
            self.take()
            line = token.line
            text = replace_env(token.text, self.env)
            expecting_another = text.endswith(",")
            text = text.removesuffix(",")
            if text:
                keys.append(text)

    def lines(self, *, closing: bool) -> list[Directive]:
        """Directives up to the closing brace (consumed) or, without closing, the end of input."""
        out: list[Directive] = []
        while True:
            token = self.peek()
            if token is None:
                if closing:
                    raise parse_error(self.filename, self.last_line, "Unexpected EOF")
                return out
            if self.is_brace(token, "}"):
                if not closing:
                    raise parse_error(self.filename, token.line,
                                      "Unexpected '}' because no matching opening brace")
                self.take()
                return out
            out.append(self.directive(nested=False))

    def directive(self, *, nested: bool) -> Directive:
        head = self.take()
        name = replace_env(head.text, self.env)
        if not nested and self.valid is not None and name not in self.valid:
            raise parse_error(self.filename, head.line, f"Unknown directive '{name}'")
        args: list[str] = []
        while (token := self.peek()) is not None and token.line == head.line:
            if self.is_brace(token, "}"):
                break
            self.take()
            if self.is_brace(token, "{"):
                block = self.nested_block()
                return Directive(name, tuple(args), head.line, tuple(block))
            args.append(replace_env(token.text, self.env))
        return Directive(name, tuple(args), head.line)

    def nested_block(self) -> list[Directive]:
        out: list[Directive] = []
        while True:
            token = self.peek()
            if token is None:
                raise parse_error(self.filename, self.last_line, "Unexpected EOF")
            if self.is_brace(token, "}"):
                self.take()
                return out
            if self.is_brace(token, "{"):
                raise parse_error(self.filename, token.line, "Unexpected '{' at the start of a line")
            out.append(self.directive(nested=True))


def parse(text: str, *, filename: str = "Corefile", valid: Iterable[str] | None = None,
          env: Mapping[str, str] | None = None) -> list[ServerBlock]:
    """The server blocks of a Corefile; CorefileError for a directive not in valid or bad syntax."""
    parser = _Parser(tokenize(text), filename, valid, env or {})
    return parser.blocks()
