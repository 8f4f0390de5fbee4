"""HTML building blocks of the report: escaped text, tables, data URIs, JSON islands, the page shell.

Every string that reaches the page goes through :func:`esc` (``html.escape`` with quotes), so
sentences, sample ids, file paths and notes (hostile input: a results file or a dataset can carry
anything) are shown as text and never parsed as markup.  Data for scripts is embedded as JSON in
``<script type="application/json">`` with ``<``, ``>``, ``&`` and the line separators escaped
(:func:`json_island`), so no string can close the script element.  The scripts put text into the
page with ``textContent`` only.  CSS and JS are inline; images are ``data:`` URIs; the page loads
nothing from anywhere.
"""
from __future__ import annotations

import base64
import html
import json

from refbench.tables.grid import Table


def esc(text: object) -> str:
    """``text`` as HTML text or attribute value (``& < > " '`` escaped)."""
    return html.escape(str(text), quote=True)


def data_uri(data: bytes, mime: str) -> str:
    """A ``data:`` URI (base64) for embedding an image."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def img(data: bytes, mime: str, alt: str, cls: str = "") -> str:
    return f'<img src="{data_uri(data, mime)}" alt="{esc(alt)}"' + (f' class="{esc(cls)}"' if cls else "") + ">"


def json_island(element_id: str, obj: object) -> str:
    """``obj`` as a JSON data block that no string inside it can break out of."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    for raw, safe in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"),
                      ("\u2029", "\\u2029")):
        text = text.replace(raw, safe)
    return f'<script type="application/json" id="{esc(element_id)}">{text}</script>'


def _cell(c) -> str:
    text = esc(c.text)
    if c.mark == "best":
        text = f"<strong>{text}</strong>"
    elif c.mark == "second":
        text = f"<u>{text}</u>"
    for extra in (c.delta, c.extra):
        if extra:
            text += f' <span class="extra">{esc(extra)}</span>'
    return text


def table_html(t: Table, cls: str = "grid", bars: tuple[str, list[str]] | None = None) -> str:
    """A :class:`refbench.tables.grid.Table` as an HTML table (title and caption above, notes below).

    ``bars``: (header, one trusted HTML snippet per row) for an extra last column (the report's slice bars;
    the snippets are built from numbers only)."""
    parts = [f'<div class="table-wrap"><table class="{esc(cls)}">',
             f"<caption><strong>{esc(t.title)}.</strong> {esc(t.caption)}</caption><thead>"]
    if t.groups:
        parts.append("<tr>" + "".join("<th></th>" for _ in t.label_headers)
                     + "".join(f'<th colspan="{span}">{esc(g)}</th>' for g, span in t.groups)
                     + ("<th></th>" if bars else "") + "</tr>")
    parts.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in t.label_headers)
                 + "".join(f'<th class="num">{esc(h)}</th>' for h in t.column_headers)
                 + (f"<th>{esc(bars[0])}</th>" if bars else "") + "</tr></thead><tbody>")
    for k, row in enumerate(t.rows):
        cls_row = ' class="rule"' if row.rule_above else ""
        parts.append(f"<tr{cls_row}>" + "".join(f"<td>{esc(x)}</td>" for x in row.labels)
                     + "".join(f'<td class="num">{_cell(c)}</td>' for c in row.cells)
                     + (f'<td class="barcell">{bars[1][k]}</td>' if bars else "") + "</tr>")
    parts.append("</tbody></table></div>")
    if t.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in t.notes) + "</ul>")
    return "".join(parts)


def definition_list(items: list[tuple[str, object]]) -> str:
    return '<dl class="prov">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items) + "</dl>"


CSS = """
:root { --fg:#1b1f24; --muted:#5b6470; --line:#d6dbe1; --bg:#ffffff; --soft:#f4f6f8; --accent:#0b63c5; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg);
       margin: 0; }
header.top { background: #13294b; color: #fff; padding: 18px 28px; }
header.top h1 { margin: 0 0 4px 0; font-size: 22px; }
header.top p { margin: 0; color: #cfd8e6; }
nav.toc { padding: 10px 28px; background: var(--soft); border-bottom: 1px solid var(--line); }
nav.toc a { margin-right: 14px; color: var(--accent); text-decoration: none; }
main { padding: 8px 28px 40px 28px; max-width: 1500px; }
h2 { border-bottom: 2px solid var(--line); padding-bottom: 4px; margin-top: 32px; }
h3 { margin-top: 22px; }
.table-wrap { overflow-x: auto; }
table.grid, table.samples { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
table.grid caption, table.samples caption { caption-side: top; text-align: left; padding: 4px 0 6px 0; color: var(--muted);
       max-width: 1100px; }
table.grid th, table.grid td, table.samples th, table.samples td { border-bottom: 1px solid var(--line); padding: 3px 8px;
       text-align: left; vertical-align: top; }
table.grid th, table.samples th { background: var(--soft); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.rule td { border-top: 2px solid #9aa4b1; }
.extra { color: var(--muted); }
ul.notes { color: var(--muted); font-size: 12px; margin: 4px 0 12px 0; max-width: 1100px; }
dl.prov { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; font-size: 13px; }
dl.prov dt { color: var(--muted); }
dl.prov dd { margin: 0; word-break: break-all; }
details.run { border: 1px solid var(--line); border-radius: 6px; padding: 6px 14px; margin: 12px 0; }
details.run > summary { cursor: pointer; font-weight: 600; font-size: 15px; padding: 4px 0; }
.badge { display: inline-block; border-radius: 4px; padding: 0 6px; font-size: 12px; margin-left: 6px; }
.badge.partial { background: #fde2c4; color: #7a3e00; }
.badge.proto { background: #e3ecf9; color: #123b73; }
.gallery { display: flex; flex-wrap: wrap; gap: 12px; }
figure.tile { margin: 0; width: 420px; border: 1px solid var(--line); border-radius: 6px; padding: 6px; background: #fff; }
figure.tile img { width: 100%; height: auto; display: block; }
figure.tile figcaption { font-size: 12px; margin-top: 4px; }
figure.tile .sentence { font-size: 13px; color: var(--fg); }
figure.tile .meta { color: var(--muted); }
.legend span { display: inline-block; margin-right: 16px; font-size: 12px; }
.swatch { display: inline-block; width: 22px; height: 12px; vertical-align: middle; margin-right: 4px; border: 2px solid; }
.figs img { max-width: 640px; width: 100%; border: 1px solid var(--line); margin: 4px 8px 4px 0; }
td.barcell { min-width: 220px; }
div.bar { position: relative; height: 12px; background: var(--soft); border: 1px solid var(--line); margin-top: 3px; }
div.bar .fill { position: absolute; left: 0; top: 0; bottom: 0; background: #4f86c6; }
div.bar .ci { position: absolute; top: 4px; height: 2px; background: #13294b; }
.controls { margin: 6px 0; display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
.controls input[type=search] { width: 320px; padding: 3px 6px; }
table.samples th.sortable { cursor: pointer; user-select: none; }
table.samples th.sortable::after { content: " \\2195"; color: #9aa4b1; }
table.samples th.asc::after { content: " \\2191"; color: var(--fg); }
table.samples th.desc::after { content: " \\2193"; color: var(--fg); }
.hint { color: var(--muted); font-style: italic; }
footer { color: var(--muted); font-size: 12px; padding: 12px 28px 30px 28px; border-top: 1px solid var(--line); }
"""

#: the per-sample tables: sort (click a header), filter (text, type), 100 rows a page; text via textContent only
JS = """
(function () {
  'use strict';
  var PAGE = 100;
  function init(box) {
    var data = JSON.parse(document.getElementById(box.getAttribute('data-source')).textContent);
    var cols = data.columns, rows = data.rows;
    var table = box.querySelector('table.samples'), tbody = table.querySelector('tbody');
    var search = box.querySelector('input[type=search]'), typeSel = box.querySelector('select.type-filter');
    var info = box.querySelector('.count'), prev = box.querySelector('button.prev'), next = box.querySelector('button.next');
    var state = { key: data.sort || 0, dir: data.dir || 1, page: 0, view: rows.slice() };
    var typeCol = cols.indexOf('type');
    var ths = table.querySelectorAll('thead th');
    function compare(a, b) {
      var x = a[state.key], y = b[state.key];
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      if (typeof x === 'number' && typeof y === 'number') return (x - y) * state.dir;
      return String(x).localeCompare(String(y)) * state.dir;
    }
    function apply() {
      var q = search.value.trim().toLowerCase(), t = typeSel ? typeSel.value : '';
      state.view = rows.filter(function (r) {
        if (t && typeCol >= 0 && r[typeCol] !== t) return false;
        if (!q) return true;
        for (var i = 0; i < r.length; i++) {
          if (r[i] !== null && String(r[i]).toLowerCase().indexOf(q) >= 0) return true;
        }
        return false;
      });
      state.view.sort(compare);
      state.page = 0;
      draw();
    }
    function fmt(v, c) {
      if (v === null || v === undefined) return '-';
      if (typeof v === 'number' && data.decimals && data.decimals[c] !== undefined) return v.toFixed(data.decimals[c]);
      return String(v);
    }
    function draw() {
      var start = state.page * PAGE, end = Math.min(state.view.length, start + PAGE);
      var frag = document.createDocumentFragment();
      for (var i = start; i < end; i++) {
        var tr = document.createElement('tr');
        tr.className = 'sample-row';
        for (var c = 0; c < cols.length; c++) {
          var td = document.createElement('td');
          var v = state.view[i][c];
          td.textContent = fmt(v, c);
          if (typeof v === 'number') td.className = 'num';
          tr.appendChild(td);
        }
        frag.appendChild(tr);
      }
      while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
      tbody.appendChild(frag);
      info.textContent = state.view.length ? ('rows ' + (start + 1) + '-' + end + ' of ' + state.view.length +
        (state.view.length !== rows.length ? ' (filtered from ' + rows.length + ')' : '')) : 'no row matches';
      prev.disabled = state.page === 0;
      next.disabled = end >= state.view.length;
      for (var k = 0; k < ths.length; k++) {
        ths[k].classList.remove('asc', 'desc');
        if (k === state.key) ths[k].classList.add(state.dir > 0 ? 'asc' : 'desc');
      }
    }
    for (var k = 0; k < ths.length; k++) {
      (function (k) {
        ths[k].classList.add('sortable');
        ths[k].addEventListener('click', function () {
          state.dir = state.key === k ? -state.dir : 1;
          state.key = k;
          state.view.sort(compare);
          state.page = 0;
          draw();
        });
      })(k);
    }
    search.addEventListener('input', apply);
    if (typeSel) typeSel.addEventListener('change', apply);
    prev.addEventListener('click', function () { if (state.page > 0) { state.page--; draw(); } });
    next.addEventListener('click', function () {
      if ((state.page + 1) * PAGE < state.view.length) { state.page++; draw(); } });
    apply();
    box.setAttribute('data-ready', 'yes');
  }
  var boxes = document.querySelectorAll('div.sample-table');
  for (var i = 0; i < boxes.length; i++) init(boxes[i]);
  document.body.setAttribute('data-scripts', 'ran');
})();
"""


def sample_table(element_id: str, columns: list[str], rows: list[list], decimals: dict[int, int],
                 caption: str, sort: int = 0, direction: int = 1, types: list[str] = ()) -> str:
    """A sortable, filterable per-sample table; its rows travel as a JSON island and are drawn by :data:`JS`."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    type_filter = ""
    if types:
        type_filter = ('<label>type <select class="type-filter"><option value="">all</option>'
                       + "".join(f'<option value="{esc(t)}">{esc(t)}</option>' for t in types) + "</select></label>")
    return (f'<div class="sample-table" data-source="{esc(element_id)}">'
            f'<div class="controls"><input type="search" placeholder="filter: id, sentence, category ..." '
            f'aria-label="filter rows">{type_filter}<button type="button" class="prev">previous</button>'
            f'<button type="button" class="next">next</button><span class="count"></span></div>'
            f'<div class="table-wrap"><table class="samples"><caption>{esc(caption)}</caption><thead><tr>{head}</tr>'
            f"</thead><tbody></tbody></table></div>"
            + json_island(element_id, {"columns": columns, "rows": rows, "decimals": {str(k): v for k, v in
                                                                                      decimals.items()},
                                       "sort": sort, "dir": direction})
            + "</div>")


def page(title: str, subtitle: str, toc: list[tuple[str, str]], body: str, footer: str) -> str:
    """The whole document: head with inline CSS, header, table of contents, body, footer, inline JS."""
    nav = "".join(f'<a href="#{esc(anchor)}">{esc(text)}</a>' for anchor, text in toc)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f'<header class="top"><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>'
            f'<nav class="toc">{nav}</nav><main>{body}</main><footer>{footer}</footer>'
            f"<script>{JS}</script></body></html>\n")


__all__ = ["esc", "data_uri", "img", "json_island", "table_html", "definition_list", "sample_table", "page"]
