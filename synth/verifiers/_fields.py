"""Reading a value out of a record by a dotted path, as recipes name them."""

from __future__ import annotations

from typing import Any

from synth.records import Record


def get_path(record: Record, path: str) -> Any:
    """`meta.originals.body`, `data.answer` or a bare data field `answer`; None if absent.

    Lists are indexed by integer parts (`meta.parents.0`)."""
    parts = path.split(".")
    if parts[0] in ("data", "meta") and len(parts) > 1:
        node: Any = record.data if parts[0] == "data" else record.meta
        parts = parts[1:]
    else:
        node = record.data
    for part in parts:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node
