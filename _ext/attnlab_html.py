"""Sphinx tweaks for the HTML of the attnlab book.

sphinx-thebe (loaded by Jupyter Book even with thebe off) and sphinx-togglebutton register
their inline configuration scripts while the builder already exists, so each reaches the page
twice: once from the builder (file name ``None``) and once from the application's registry
(file name ``""``). Sphinx does not see the two as equal, and the second
``const THEBE_JS_URL = ...`` is a JavaScript SyntaxError on every page. This extension keeps
the first copy of every script (same source and attributes; no file name counts as one).
"""

from __future__ import annotations

from typing import Any

# The widget manager (@jupyter-widgets/html-manager 1.x) typesets widget labels with the
# MathJax 2 call ``MathJax.Hub.Queue(["Typeset", MathJax.Hub, element])``; the book loads
# MathJax 3, which has no ``Hub``. Every object assigned to ``window.MathJax`` (the
# configuration, then MathJax itself) gets a small ``Hub`` that forwards to MathJax 3.
MATHJAX2_SHIM = """(function () {
  var hub = {Queue: function () {
    var mj = window.MathJax;
    for (var i = 0; i < arguments.length; i++) {
      var job = arguments[i];
      if (Array.isArray(job) && job[0] === "Typeset" && job[2] && mj && mj.startup) {
        (function (el) {
          mj.startup.promise.then(function () { return mj.typesetPromise([el]); });
        })(job[2]);
      }
    }
  }};
  var current = window.MathJax;
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    get: function () { return current; },
    set: function (value) {
      current = value;
      if (value && typeof value === "object" && !value.Hub) { value.Hub = hub; }
    }
  });
  if (current) { window.MathJax = current; }
})();"""


def _key(js: Any) -> tuple:
    attributes = getattr(js, "attributes", {}) or {}
    items = tuple(sorted((k, str(v)) for k, v in attributes.items()))
    return (str(getattr(js, "filename", js) or ""), items)


def dedupe_scripts(app: Any, pagename: str, templatename: str, context: dict,
                   doctree: Any) -> None:
    """Drop repeated entries of ``context["script_files"]``, keeping the first of each."""
    files = context.get("script_files")
    if not isinstance(files, list):
        return
    seen: set[tuple] = set()
    unique = []
    for js in files:
        key = _key(js)
        if key not in seen:
            seen.add(key)
            unique.append(js)
    files[:] = unique


def setup(app: Any) -> dict:
    app.connect("html-page-context", dedupe_scripts, priority=999)
    app.add_js_file(None, body=MATHJAX2_SHIM, priority=100)  # before MathJax's configuration
    return {"parallel_read_safe": True, "parallel_write_safe": True}
