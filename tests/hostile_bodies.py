"""Hostile request bodies from issue 12, shared by the unit and the integration tests."""
from __future__ import annotations

_ANCHORS = "abcdefghijklmnop"


def alias_bomb(levels: int, fanout: int = 9) -> str:
    """Nested anchors: `a: &a ["lol", ...]`, `b: &b [*a, *a, ...]`, ... (fanout ** levels leaves)."""
    lines = [f"{_ANCHORS[0]}: &{_ANCHORS[0]} [" + ",".join(['"lol"'] * fanout) + "]"]
    for i in range(1, levels):
        aliases = ",".join([f"*{_ANCHORS[i - 1]}"] * fanout)
        lines.append(f"{_ANCHORS[i]}: &{_ANCHORS[i]} [{aliases}]")
    return "\n".join(lines) + "\n"


def service_alias_bomb(levels: int, size: int, name: str = "bomb") -> bytes:
    """A Service manifest carrying an alias bomb as unknown fields, its name padded to `size` bytes:
    the issue's shapes are 7 levels in 354 bytes (a 39 MB Service) and 9 in 442 (3.8 GB RSS)."""
    def render(padded: str) -> bytes:
        return (f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {padded}\n"
                f"spec:\n  ports:\n  - port: 80\n{alias_bomb(levels)}").encode()

    short = len(render(name))
    assert short <= size, f"a {levels}-level bomb needs {short} bytes"
    body = render(name + "x" * (size - short))
    assert len(body) == size
    return body


def deep_json(levels: int) -> bytes:
    """A JSON array nested `levels` deep."""
    return b"[" * levels + b"]" * levels
