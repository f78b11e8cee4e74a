"""The page: sections of escaped HTML, Plotly figures embedded as data, one inline copy of
plotly.js, inline styles. Nothing is fetched when the file opens, so it works offline and
can be mailed as it is.

Escaping is in one place: ``text`` for anything put into HTML, ``figure_text`` for the
strings a figure shows (every figure passes through it, Optuna's too), and ``_script_json``
for figure data inside a ``<script>`` element, where a ``</script>`` in a class name would
otherwise end the script.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Figure = Any  # a plotly.graph_objects.Figure (plotly is an optional dependency)


def text(value: object) -> str:
    """Any value as HTML text (quotes escaped too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def figure_text(figure: Any) -> dict[str, Any]:
    """A figure (or its dict) with every label, name and category shown literally.

    Plotly reads a few tags in its text (``<b>``, ``<a href>``) and decodes entities, so
    user strings (class names, parameter values) are entity-escaped; ``<br>``, the one tag
    Optuna's hover texts and tunelab's own captions use, stays a line break.
    """
    data = figure if isinstance(figure, dict) else figure.to_plotly_json()
    return {key: _escape_labels(value, key) for key, value in data.items()}


# the keys whose strings Plotly shows as text; the others are enums, colours, templates
_TEXT_KEYS = frozenset(
    {"text", "hovertext", "name", "x", "y", "z", "ticktext", "label", "categoryarray"}
)


def _escape_labels(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        return {k: _escape_labels(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escape_labels(v, key) for v in value]
    if isinstance(value, np.ndarray) and value.dtype.kind in "OUS" and key in _TEXT_KEYS:
        return [_escape_labels(v, key) for v in value.tolist()]
    if isinstance(value, str) and key in _TEXT_KEYS:
        return html.escape(value, quote=False).replace("&lt;br&gt;", "<br>")
    return value


@dataclass
class Section:
    """One part of the report.

    Attributes:
        key: the section's id in the page (``summary``, ``ladder`` ...).
        title: its heading.
        parts: HTML fragments, already escaped (build them with ``text``, ``table``,
            ``note``, ``pre`` and ``Page.figure``).
    """

    key: str
    title: str
    parts: list[str] = field(default_factory=list)


def number(value: object, digits: int = 4) -> str:
    """A number for people: ``digits`` decimals, 3 significant digits below 0.01 (a
    learning rate), "-" for None or non-finite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-" if value is None else str(value)
    if value != value or value in (float("inf"), float("-inf")):
        return "-"
    if isinstance(value, int):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.1f}"
    if 0 < abs(value) < 0.01:
        return f"{value:.3g}"
    return f"{value:.{digits}f}"


def note(message: str) -> str:
    """A short remark where something could not be shown, saying why."""
    return f'<p class="note">{text(message)}</p>'


def no_charts() -> str:
    """What stands where a chart would be when plotly is not installed."""
    return note("charts need plotly: pip install -c constraints.txt 'tunelab[report]'")


def pre(content: str) -> str:
    return f"<pre>{text(content)}</pre>"


def paragraph(content: str) -> str:
    return f"<p>{text(content)}</p>"


def table(
    header: Sequence[object],
    rows: Iterable[Sequence[object]],
    *,
    numeric: Sequence[bool] | None = None,
    classes: Sequence[str] = (),
) -> str:
    """An HTML table of escaped cells; ``numeric`` columns are right-aligned.

    Args:
        classes: one CSS class per row ("" for none), e.g. a verdict.
    """
    aligned = list(numeric) if numeric is not None else [False] * len(header)
    head = "".join(
        f'<th class="num">{text(h)}</th>' if aligned[j] else f"<th>{text(h)}</th>"
        for j, h in enumerate(header)
    )
    body: list[str] = []
    for i, row in enumerate(rows):
        cells = "".join(
            f'<td class="num">{text(cell)}</td>' if aligned[j] else f"<td>{text(cell)}</td>"
            for j, cell in enumerate(row)
        )
        css = f' class="{text(classes[i])}"' if i < len(classes) and classes[i] else ""
        body.append(f"<tr{css}>{cells}</tr>")
    return (
        f'<div class="table"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def cards(items: Sequence[tuple[str, str, str]]) -> str:
    """Headline numbers: (label, value, detail) each."""
    parts = [
        f'<div class="card"><div class="label">{text(label)}</div>'
        f'<div class="value">{text(value)}</div><div class="detail">{text(detail)}</div></div>'
        for label, value, detail in items
    ]
    return f'<div class="cards">{"".join(parts)}</div>'


class Page:
    """Collects sections and figures, then renders one self-contained HTML document.

    Args:
        plotly_js: the plotly.js bundle to inline, or None when plotly is not installed
            (figures then become notes with the install hint).
    """

    def __init__(self, title: str, *, plotly_js: str | None) -> None:
        self.title = title
        self.plotly_js = plotly_js
        self.sections: list[Section] = []
        self._figures: list[str] = []

    @property
    def charts(self) -> bool:
        """Whether figures can be drawn (plotly is installed)."""
        return self.plotly_js is not None

    def figure(self, fig: Figure, *, caption: str = "") -> str:
        """A placeholder for ``fig``; its data goes into the page once, as JSON."""
        if self.plotly_js is None:
            return no_charts()
        import plotly.io

        number = len(self._figures)
        data = plotly.io.to_json(figure_text(fig), validate=False)
        self._figures.append(
            f'<script type="application/json" data-figure="figure-{number}">'
            f"{_script_json(data)}</script>"
        )
        under = f"<figcaption>{text(caption)}</figcaption>" if caption else ""
        return f'<figure><div class="plot" id="figure-{number}"></div>{under}</figure>'

    def add(self, section: Section) -> None:
        self.sections.append(section)

    def render(self, *, header: str) -> str:
        """The whole document. ``header`` is escaped HTML (the run's name and time)."""
        toc = "".join(f'<a href="#{text(s.key)}">{text(s.title)}</a>' for s in self.sections)
        body = "".join(
            f'<section id="{text(s.key)}" data-section="{text(s.key)}">'
            f"<h2>{text(s.title)}</h2>{''.join(s.parts)}</section>"
            for s in self.sections
        )
        scripts = ""
        if self.plotly_js is not None:
            figures = "".join(self._figures)
            scripts = f"<script>{self.plotly_js}</script>{figures}<script>{_RENDER}</script>"
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{text(self.title)}</title><style>{_STYLE}</style></head><body>"
            f"<header>{header}</header><nav>{toc}</nav><main>{body}</main>{scripts}"
            "</body></html>\n"
        )


def _script_json(data: str) -> str:
    """JSON that cannot end its ``<script>`` element or open a comment in it."""
    escaped = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return escaped.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


# Each figure's data sits in its own JSON script element and is drawn once the page (and
# plotly.js, inline above) has loaded.
_RENDER = """
document.querySelectorAll('script[data-figure]').forEach(function (el) {
  var fig = JSON.parse(el.textContent);
  var layout = Object.assign({autosize: true}, fig.layout || {});
  Plotly.newPlot(el.getAttribute('data-figure'), fig.data, layout,
                 {responsive: true, displaylogo: false});
});
"""

_STYLE = """
:root { --fg: #1d2433; --muted: #5b6475; --line: #dde1e8; --bg: #f6f7f9; --accent: #2f5bd3;
        --helps: #1a7f37; --hurts: #c62828; --none: #6b7280; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
header { padding: 20px 32px 12px; background: #fff; border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: var(--muted); }
nav { position: sticky; top: 0; z-index: 5; display: flex; flex-wrap: wrap; gap: 4px 14px;
      padding: 8px 32px; background: #fff; border-bottom: 1px solid var(--line); }
nav a { color: var(--accent); text-decoration: none; font-size: 14px; }
main { max-width: 1200px; margin: 0 auto; padding: 8px 24px 48px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px;
          margin: 16px 0; padding: 8px 20px 16px; }
h2 { font-size: 18px; margin: 10px 0; }
h3 { font-size: 15px; margin: 14px 0 6px; }
.note { color: var(--muted); font-style: italic; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { flex: 1 1 220px; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.card .label { color: var(--muted); font-size: 13px; }
.card .value { font-size: 24px; font-weight: 600; }
.card .detail { color: var(--muted); font-size: 13px; }
.table { overflow-x: auto; max-height: 480px; overflow-y: auto; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left;
         white-space: nowrap; }
th { position: sticky; top: 0; background: #fff; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.helps td:last-child { color: var(--helps); font-weight: 600; }
tr.hurts td:last-child { color: var(--hurts); font-weight: 600; }
pre { background: var(--bg); padding: 10px; border-radius: 6px; overflow: auto;
      max-height: 480px; font-size: 12px; }
figure { margin: 8px 0; }
figcaption { color: var(--muted); font-size: 13px; }
.plot { width: 100%; min-height: 360px; }
"""
