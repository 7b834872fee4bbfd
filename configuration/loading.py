"""The one bounded loader of YAML and JSON text from outside the code (files, imports, variables).

Every text a person or a deployment hands us goes through load_text: bounded in
size, nesting and YAML alias expansion, so a "billion laughs" file is refused at
once instead of hanging a process.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from django.conf import settings

# Bounds of any YAML or JSON text from outside the code (config files, config_import, COURTSIDE_* values).
# YAML aliases are references: nine nested levels of nine aliases fit in 359 bytes and stand for 9**9
# strings, which hung config_import for minutes. Nodes reached through aliases are counted as they are
# composed (before anything is built) and refused past a bound no hand-written file comes near.
MAX_ALIAS_NODES = 1000
MAX_DEPTH = 50
DEFAULT_MAX_BYTES = 1024 * 1024


class YAMLRefused(yaml.YAMLError):
    """A YAML text the bounded loader will not expand: too many alias nodes, a recursive alias, too deep."""


class BoundedSafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader that counts the nodes each alias stands for and refuses past MAX_ALIAS_NODES.

    Each composed node's expanded size (itself and everything under it, aliases
    counted in full) is known when it completes, so an alias adds its target's
    size to a running total at once; an alias to a node still being composed is
    recursive and refused. Nesting is bounded too, so a deep text is a clear
    error instead of a RecursionError.
    """

    max_alias_nodes = MAX_ALIAS_NODES
    max_depth = MAX_DEPTH

    def __init__(self, stream):
        super().__init__(stream)
        self._sizes: dict[int, int] = {}
        self._alias_nodes = 0
        self._depth = 0

    def compose_document(self):
        try:
            return super().compose_document()
        finally:
            self._sizes = {}

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:
                raise YAMLRefused(f"recursive alias refused ({_where(mark)})")
            self._alias_nodes += size
            if self._alias_nodes > self.max_alias_nodes:
                raise YAMLRefused(
                    f"aliases refused: they expand to more than {self.max_alias_nodes} nodes ({_where(mark)})"
                )
            return node
        self._depth += 1
        if self._depth > self.max_depth:
            raise YAMLRefused(f"nested deeper than {self.max_depth} levels ({_where(self.peek_event().start_mark)})")
        node = super().compose_node(parent, index)
        self._depth -= 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = ()
        self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in children)
        return node


def _where(mark) -> str:
    return f"line {mark.line + 1}" if mark is not None else "unknown position"


def _max_bytes() -> int:
    return getattr(settings, "CONFIGURATION_MAX_FILE_BYTES", DEFAULT_MAX_BYTES)


def check_depth(data, name: str) -> None:
    """Refuse JSON nested past MAX_DEPTH (walked without recursion)."""
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"{name}: refused: nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)


def load_text(text: str, *, name: str):
    """The one loader of YAML or JSON from outside the code (JSON by a .json name, YAML otherwise).

    Bounded in size (settings.CONFIGURATION_MAX_FILE_BYTES, 1 MiB by default),
    nesting and alias expansion; raises ValueError naming the file and the reason.
    """
    limit = _max_bytes()
    if len(text.encode("utf-8", errors="replace")) > limit:
        raise ValueError(f"{name}: refused: larger than {limit} bytes")
    if name.endswith(".json"):
        try:
            data = json.loads(text)
        except RecursionError:
            raise ValueError(f"{name}: refused: nested deeper than {MAX_DEPTH} levels") from None
        except ValueError as exc:
            raise ValueError(f"{name}: cannot parse: {exc}") from exc
        check_depth(data, name)
        return data
    try:
        return yaml.load(text, Loader=BoundedSafeLoader)  # noqa: S506 (a SafeLoader subclass)
    except YAMLRefused as exc:
        raise ValueError(f"{name}: refused: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"{name}: cannot parse: {exc}") from exc


def read_text(path: Path) -> str:
    """A file's text, refused before reading when it is larger than the bound."""
    limit = _max_bytes()
    if path.stat().st_size > limit:
        raise ValueError(f"{path}: refused: larger than {limit} bytes")
    return path.read_text()


def parse_text(text: str, *, name: str):
    """A mapping from YAML or JSON by file name; raises ValueError with the file name on bad or refused text."""
    data = load_text(text, name=name)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{name}: the top level must be a mapping, not {type(data).__name__}")
    return data
