"""Make a chapter's Markdown cells read in Colab (plain Jupyter Markdown) like the book.

- ``{glue:text}`name``` becomes the value the book shows. Values are read from the executed
  notebooks of a full build of the book (``make book`` writes ``_build/jupyter_execute``), so
  they match what a reader computes in Colab (full mode). Without a build, the Markdown shows a
  readable marker ``⟨name⟩`` instead (the cell that computes it is right above); either form is
  wrapped in ``<span title="glue:name">…</span>``, and the notebook-sync check compares
  notebooks with those spans normalized, so a local build never makes them stale.
- Theorem-like ``prf:`` boxes, exercises and admonitions become block quotes with a bold title;
  solutions become collapsed ``<details>`` blocks.
- Roles: ``{prf:ref}`` names the box (its title), ``{eq}`` shows the equation label,
  ``{cite}`` the keys in brackets, ``{term}``/``{ref}`` their text, ``{doc}`` and relative
  ``.md`` links point at the published book.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

GLUE_SPAN = re.compile(r'<span title=\\?"glue:([\w.-]+)\\?">.*?</span>')
_FENCE = re.compile(r"^(`{3,}|:{3,})\{([\w:-]+)\}\s*(.*)$")
_ROLE = re.compile(r"\{([\w:-]+)\}`([^`]*)`")
_MD_LINK = re.compile(r"\]\((?!https?://|#|mailto:)([^)\s]+?)\.md(#[^)]*)?\)")
_TITLED = re.compile(r"^(.*?)\s*<([^<>]+)>$")
BOX_NAMES = {
    "prf:theorem": "Theorem", "prf:lemma": "Lemma", "prf:proposition": "Proposition",
    "prf:corollary": "Corollary", "prf:definition": "Definition", "prf:proof": "Proof",
    "prf:remark": "Remark", "prf:example": "Example", "prf:conjecture": "Conjecture",
    "prf:algorithm": "Algorithm", "prf:assumption": "Assumption", "prf:axiom": "Axiom",
    "prf:criterion": "Criterion", "prf:observation": "Observation",
    "prf:property": "Property", "exercise": "Exercise", "important": "Important",
    "note": "Note", "tip": "Tip", "warning": "Warning", "caution": "Caution",
}


def normalize(text: str) -> str:
    """``text`` with every rendered glue value replaced by its name (for the sync check)."""
    return GLUE_SPAN.sub(lambda m: f"<glue {m.group(1)}>", text)


def glue_values(executed: Path) -> dict[str, str]:
    """``{name: text}`` of the values glued in an executed notebook ({} if there is none)."""
    if not executed.exists():
        return {}
    values: dict[str, str] = {}
    for cell in json.loads(executed.read_text()).get("cells", []):
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            data = out.get("data", {})
            text = data.get("application/papermill.record/text/plain", data.get("text/plain"))
            if name and text is not None:
                text = "".join(text) if isinstance(text, list) else text
                if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
                    text = text[1:-1]
                values[name] = text
    return values


def glue_span(name: str, values: dict[str, str]) -> str:
    shown = values.get(name, f"⟨{name}⟩")
    return f'<span title="glue:{name}">{shown}</span>'


def _options(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split a directive body into its ``:key: value`` options and the rest."""
    opts: dict[str, str] = {}
    i = 0
    while i < len(lines) and (m := re.match(r"^:([\w-]+):\s*(.*)$", lines[i])):
        opts[m.group(1)] = m.group(2)
        i += 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    return opts, lines[i:]


def _quote(lines: list[str]) -> list[str]:
    return [f"> {line}" if line.strip() else ">" for line in lines]


def _directive(name: str, arg: str, body: list[str], page: str, site: str) -> list[str]:
    opts, body = _options(body)
    body = _blocks(body, page, site)
    if name == "solution":
        return ["<details>", "<summary><b>Solution</b> (click to show)</summary>", "",
                *body, "", "</details>"]
    if name == "tableofcontents":
        return [f"The chapters are listed in the [online book]({site})."]
    if name in ("bibliography", "glossary"):
        return body
    kind = BOX_NAMES.get(name, arg or name.split(":")[-1].title())
    title = f"**{kind}**" + (f" ({arg})" if arg and name in BOX_NAMES else "")
    if name == "admonition":
        title = f"**{arg}**"
    return [*_quote([title, "", *body])]


def _blocks(lines: list[str], page: str, site: str) -> list[str]:
    """Rewrite the directives in ``lines`` (nested ones too); other lines pass through."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None or m.group(2) in ("code-cell", "math"):
            out.append(lines[i])
            i += 1
            continue
        fence, name, arg = m.groups()
        close = re.compile(rf"^{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        out += _directive(name, arg.strip(), lines[i + 1 : j], page, site)
        i = j + 1
    return out


def _labels(text: str) -> dict[str, str]:
    """``{label: "Theorem (Title)"}`` of the boxes of a chapter, for ``{prf:ref}``."""
    found = {}
    for m in re.finditer(r"^`{3,}\{([\w:-]+)\}[ \t]*(.*)\n:label:[ \t]*(\S+)", text, re.M):
        name, arg, label = m.groups()
        kind = BOX_NAMES.get(name, name)
        found[label] = f"{kind} ({arg.strip()})" if arg.strip() else kind
    return found


def _page_url(target: str, page: str, site: str) -> str:
    base = Path(page).parent
    parts: list[str] = []
    for part in (base / target).as_posix().split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return site + "/".join(parts) + ".html"


def _roles(text: str, page: str, site: str, values: dict[str, str],
           labels: dict[str, str]) -> str:
    def role(m: re.Match) -> str:
        name, content = m.groups()
        titled = _TITLED.match(content)
        shown, target = (titled.group(1), titled.group(2)) if titled else (None, content)
        if name.startswith("glue"):
            return glue_span(target.split(":")[0], values)
        if name == "prf:ref":
            return shown or labels.get(target, target)
        if name == "eq":
            return f"({target})"
        if name.startswith("cite"):
            return "[" + ", ".join(k.strip() for k in target.split(",")) + "]"
        if name == "doc":
            return f"[{shown or target.split('/')[-1]}]({_page_url(target, page, site)})"
        if name in ("term", "ref", "numref", "abbr"):
            return shown or target
        return m.group(0)

    text = _ROLE.sub(role, text)
    return _MD_LINK.sub(lambda m: f"]({_page_url(m.group(1), page, site)}{m.group(2) or ''})",
                        text)


def convert(nb, *, page: str, site: str, values: dict[str, str]) -> None:
    """Rewrite the Markdown cells of ``nb`` in place (``page``: ``book/x`` path of the chapter,
    ``site``: the published book's address, ``values``: glue values by name)."""
    labels: dict[str, str] = {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            labels.update(_labels(cell.source))
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = _blocks(cell.source.split("\n"), page, site)
        cell.source = _roles("\n".join(lines), page, site, values, labels)
