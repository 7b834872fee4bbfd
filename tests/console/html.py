"""Reading the dashboard's markup the way a person reads it: figures by their data attributes, links by href."""

from __future__ import annotations

from html.parser import HTMLParser


class _Figures(HTMLParser):
    def __init__(self, attribute: str):
        super().__init__()
        self.attribute, self.figures, self.links, self._open = attribute, {}, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        self._open.append(attrs.get(self.attribute))

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        for name in self._open:
            if name and data.strip():
                self.figures.setdefault(name, data.strip())


def figures(html: str, attribute: str = "data-figure") -> dict[str, str]:
    parser = _Figures(attribute)
    parser.feed(html)
    return parser.figures


def links(html: str, start: str = "", end: str = "") -> list[str]:
    if start:
        html = html[html.index(start):]
    if end:
        html = html[:html.index(end)]
    parser = _Figures("data-figure")
    parser.feed(html)
    return parser.links
