"""A report document built once and written twice: self-contained HTML and Markdown.

Images are embedded in the HTML as base64 (it opens offline, alone) and written as PNG
files beside the Markdown, which GitHub and editors render from relative links.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from .. import atomic

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #ddd;padding-bottom:.2em} h2{margin-top:1.8em;border-bottom:1px solid #eee}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em} th,td{border:1px solid #ccc;padding:.25em .6em}
th{background:#f3f3f3;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f7f7f7;padding:.7em;overflow-x:auto;font-size:.82em;border:1px solid #e3e3e3}
pre.wrap{white-space:pre-wrap;overflow-wrap:break-word}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.4em 0;vertical-align:top}
img.half{width:49.5%}
.gallery{display:flex;flex-wrap:wrap;gap:8px;margin:.5em 0}
.gallery figure{margin:0;min-width:148px;max-width:100%;font-size:.72em;line-height:1.25}
.gallery img{max-width:100%;image-rendering:pixelated;border:1px solid #ddd;margin:0}
.gallery figcaption span{display:block;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.gallery .id{color:#666} .gallery .ok{color:#1a7f37;font-weight:600} .gallery .bad{color:#cf222e;font-weight:600}
.wide{overflow-x:auto} .fit table{width:100%} .fit td,.fit th{overflow-wrap:break-word;font-size:.95em}
.fit td{max-width:22em} .note{color:#555;font-size:.9em} details{margin:.6em 0} summary{cursor:pointer;font-weight:600}
"""

_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?%?$|^[-+]?[\d,]+$")


class Doc:
    def __init__(self, title: str):
        self.title = title
        self.html: list[str] = []
        self.md: list[str] = []
        self.images: dict[str, bytes] = {}

    def heading(self, text: str, level: int = 2, anchor: str | None = None) -> None:
        ident = f' id="{anchor}"' if anchor else ""
        self.html.append(f"<h{level}{ident}>{html.escape(text)}</h{level}>")
        self.md.append(f"\n{'#' * level} {text}\n")

    def para(self, text: str, note: bool = False) -> None:
        cls = ' class="note"' if note else ""
        self.html.append(f"<p{cls}>{html.escape(text)}</p>")
        self.md.append(f"{'_' + text + '_' if note else text}\n")

    def pre(self, text: str, wrap: bool = False) -> None:
        """``wrap``: long lines wrap (prose, generated text) instead of scrolling (tables, code)."""
        cls = ' class="wrap"' if wrap else ""
        self.html.append(f"<pre{cls}>{html.escape(text)}</pre>")
        self.md.append(f"```\n{text}\n```\n")

    def table(self, headers: list[str], rows: list[list], fit: bool = False) -> None:
        """``fit``: the table takes the page's width and its cells wrap (no horizontal scrolling)."""
        cells = [[_cell(v) for v in row] for row in rows]
        # long dotted config keys may break after a dot instead of widening the table
        head = "".join(f"<th>{html.escape(h).replace('.', '.<wbr>')}</th>" for h in headers)
        body = "".join("<tr>" + "".join(
            f'<td class="num">{html.escape(c)}</td>' if _NUMBER.match(c) else f"<td>{html.escape(c)}</td>"
            for c in row) + "</tr>" for row in cells)
        self.html.append(f'<div class="{"fit" if fit else "wide"}"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')
        esc = lambda c: c.replace("|", "\\|")  # noqa: E731
        self.md.append("| " + " | ".join(map(esc, headers)) + " |\n|" + "---|" * len(headers) + "\n" +
                       "".join("| " + " | ".join(map(esc, row)) + " |\n" for row in cells))

    def image(self, name: str, png: bytes, alt: str, half: bool = False) -> None:
        """``half``: two such images side by side in the HTML (curves)."""
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        while name in self.images:
            name = "_" + name
        self.images[name] = png
        data = base64.b64encode(png).decode("ascii")
        cls = ' class="half"' if half else ""
        self.html.append(f'<img{cls} src="data:image/png;base64,{data}" alt="{html.escape(alt)}">')
        self.md.append(f"![{alt}](FILES/{name})\n")

    def gallery(self, items: list) -> None:
        """Thumbnails with captions: ``items`` of (file name, PNG bytes, [(line, style)], title); style is
        '', 'id' (grey), 'ok' (green) or 'bad' (red)."""
        figs, md = [], []
        for name, png, lines, title in items:
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
            while name in self.images:
                name = "_" + name
            self.images[name] = png
            data = base64.b64encode(png).decode("ascii")
            cap = "".join(f'<span class="{s}">{html.escape(t)}</span>' for t, s in lines)
            figs.append(f'<figure title="{html.escape(title)}"><img class="thumb" src="data:image/png;base64,{data}" '
                        f'alt="{html.escape(title)}"><figcaption>{cap}</figcaption></figure>')
            md.append(f"![{' / '.join(t for t, _ in lines)}](FILES/{name})")
        self.html.append('<div class="gallery">' + "".join(figs) + "</div>")
        self.md.append("\n".join(md) + "\n")

    def tokens(self, pieces: list[tuple[str, float]]) -> None:
        """Text shaded token by token (a language model's surprisal in bits; the darkest is the largest)."""
        top = max([b for _, b in pieces] + [1.0])
        spans = "".join(f'<span title="{b:.2f} bits" style="background:rgba(207,34,46,{0.85 * b / top:.2f})">'
                        f'{"<br>" if t == "<eos>" else html.escape(t)}</span> ' for t, b in pieces)
        self.html.append(f'<p style="line-height:1.9">{spans}</p>')
        self.md.append(" ".join(f"{t}[{b:.1f}]" for t, b in pieces) + "\n")

    def open_details(self, summary: str) -> None:
        self.html.append(f"<details><summary>{html.escape(summary)}</summary>")
        self.md.append(f"\n**{summary}**\n")

    def close_details(self) -> None:
        self.html.append("</details>")

    def write(self, html_path: Path) -> tuple[Path, Path]:
        html_path = Path(html_path)
        html_path.parent.mkdir(parents=True, exist_ok=True)
        page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head><body>\n"
                f"<h1>{html.escape(self.title)}</h1>\n" + "\n".join(self.html) + "\n</body></html>\n")
        atomic.write_text(html_path, page)
        md_path = html_path.with_suffix(".md")
        files = html_path.with_name(html_path.stem + "_files")
        if self.images:
            files.mkdir(exist_ok=True)
            for name, png in self.images.items():
                atomic.write_bytes(files / name, png)
        body = "\n".join(self.md).replace("](FILES/", f"]({files.name}/")
        atomic.write_text(md_path, f"# {self.title}\n{body}")
        return html_path, md_path


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != v:
            return "-"
        if v and abs(v) < 1e-3:
            return f"{v:.3g}"
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:,.2f}" if abs(v) >= 1 else f"{v:.4f}"
    return str(v)
