"""A summary written once as items — text lines, tables, commands — and rendered twice: as terminal text
(fixed-width tables) and as Markdown for the Prefect UI (tables and paragraphs that wrap to its width)."""
from __future__ import annotations

from typing import NamedTuple, Union

from selfimprove.warehouse.views import format_table


class Table(NamedTuple):
    columns: list[str]
    rows: list[tuple]
    max_width: int = 60  # terminal text only: longer cells are cut with an ellipsis


class Command(NamedTuple):
    text: str
    comment: str = ""


Item = Union[str, Table, Command]


def as_text(items: list[Item]) -> str:
    out = []
    for item in items:
        if isinstance(item, Table):
            out.append(format_table(item.columns, item.rows, item.max_width))
        elif isinstance(item, Command):
            out.append(item.text + (f"  # {item.comment}" if item.comment else ""))
        else:
            out.append(item)
    return "\n".join(out)


def as_markdown(items: list[Item], page: bool = False) -> str:
    """Markdown for the Prefect UI: headings one level down (the artifact's own title is the page's), wide tables
    as lists (the UI does not wrap table cells). `page`: a document of its own (a card): headings as written,
    every table a table."""
    out: list[str] = []
    for item in items:
        if isinstance(item, Table):
            out += ["", _md_table(item, None if page else MARKDOWN_TABLE_CHARS), ""]
        elif isinstance(item, Command):
            out.append(f"- {item.comment + ': ' if item.comment else ''}`{item.text}`")
        elif item.startswith("#"):
            out += ["", item if page else "#" + item, ""]
        elif item.startswith(("WARNING", "note:")):
            out += ["", f"> {item}", ""]
        elif item:
            out += ["", item, ""]
    text = "\n".join(out)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip() + "\n"


MARKDOWN_TABLE_CHARS = 110  # wider tables become lists: the UI does not wrap table cells, a list wraps


def _md_table(table: Table, max_chars: int | None) -> str:
    def cell(v) -> str:
        return _plain(v).replace("|", "\\|").replace("\n", " ")

    width = sum(max([len(str(c))] + [len(cell(r[i])) for r in table.rows]) + 3 for i, c in enumerate(table.columns))
    if max_chars is not None and width > max_chars:
        return "\n".join(f"- **{cell(row[0])}**: " + "; ".join(f"{c}: {cell(v)}" for c, v in zip(table.columns[1:], row[1:]))
                         for row in table.rows)
    lines = ["| " + " | ".join(cell(c) for c in table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.rows]
    return "\n".join(lines)


def as_html(items: list[Item]) -> str:
    """The items as an HTML fragment (cells escaped): headings one level below the page's sections."""
    import html

    out = []
    for item in items:
        if isinstance(item, Table):
            out.append(html_table(item.columns, [tuple(html.escape(_plain(v)) for v in r) for r in item.rows]))
        elif isinstance(item, Command):
            out.append(f"<p>{html.escape(item.comment)}: <code>{html.escape(item.text)}</code></p>")
        elif item.startswith("#"):
            out.append(f"<h3>{html.escape(item.lstrip('#').strip())}</h3>")
        elif item.startswith(("WARNING", "note:")):
            kind = "warning" if item.startswith("WARNING") else "note"
            out.append(f'<p class="{kind}">{html.escape(item)}</p>')
        elif item:
            out.append(f"<p>{html.escape(item)}</p>")
    return "".join(out)


def _plain(v) -> str:
    return "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))


def html_table(headers: list[str], rows: list[tuple]) -> str:
    """A table of already-escaped cells."""
    import html

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
