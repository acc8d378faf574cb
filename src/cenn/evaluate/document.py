"""A minimal report document: headings, paragraphs, tables and figures, rendered to Markdown and to
a self-contained HTML page (figures linked by relative path)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
figure{margin:1.5em 0}img{max-width:100%}figcaption{font-size:0.9em;color:#555}
code{background:#f4f4f4;padding:0 0.2em}"""


def _md_row(cells: Sequence[str]) -> str:
    """A Markdown table row; pipes inside cells (e.g. "|b| < 5°") are escaped."""
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table of ``header`` and ``rows`` (cells as text; pipes in them escaped)."""
    return "\n".join([_md_row(header), "|" + "|".join("---" for _ in header) + "|", *map(_md_row, rows)])


@dataclass
class Document:
    """An ordered list of blocks; build with the methods below, render with :meth:`markdown` or
    :meth:`html`."""

    title: str
    blocks: list[tuple[str, tuple]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", (level, text)))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", (text,)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]], caption: str = "") -> None:
        if any(len(r) != len(header) for r in rows):
            raise ValueError("every table row needs one cell per header column")
        self.blocks.append(("table", (list(header), [list(r) for r in rows], caption)))

    def figure(self, path: str, caption: str) -> None:
        """A figure by path relative to the document."""
        self.blocks.append(("figure", (path, caption)))

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, args in self.blocks:
            if kind == "heading":
                level, text = args
                out += ["#" * level + " " + text, ""]
            elif kind == "paragraph":
                out += [args[0], ""]
            elif kind == "table":
                header, rows, caption = args
                if caption:
                    out += [f"*{caption}*", ""]
                out += [markdown_table(header, rows), ""]
            else:
                path, caption = args
                out += [f"![{caption}]({path})", "", f"*{caption}*", ""]
        return "\n".join(out)

    def html(self) -> str:
        esc = html.escape
        body = [f"<h1>{esc(self.title)}</h1>"]
        for kind, args in self.blocks:
            if kind == "heading":
                level, text = args
                body.append(f"<h{level}>{esc(text)}</h{level}>")
            elif kind == "paragraph":
                body.append(f"<p>{esc(args[0])}</p>")
            elif kind == "table":
                header, rows, caption = args
                cap = f"<caption>{esc(caption)}</caption>" if caption else ""
                head = "".join(f"<th>{esc(h)}</th>" for h in header)
                cells = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
                body.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
            else:
                path, caption = args
                body.append(f'<figure><img src="{esc(path)}" alt="{esc(caption)}">'
                            f"<figcaption>{esc(caption)}</figcaption></figure>")
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{esc(self.title)}</title><style>{_CSS}</style></head>\n<body>\n"
                + "\n".join(body) + "\n</body></html>\n")
