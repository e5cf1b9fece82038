"""The book's local Sphinx extension (_ext/attnlab_html.py) and its vendored assets."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml
from sphinx.builders.html._assets import _JavaScript

ROOT = Path(__file__).resolve().parents[1]


def _ext():
    spec = importlib.util.spec_from_file_location("attnlab_html", ROOT / "_ext" / "attnlab_html.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_repeated_inline_scripts_are_dropped_keeping_the_first():
    body = 'const THEBE_JS_URL = "x"'
    files = [_JavaScript(None, body=body), _JavaScript("a.js"),
             _JavaScript("", body=body), _JavaScript("a.js", priority=200),
             _JavaScript(None, body="var other = 1")]
    ctx = {"script_files": files}
    _ext().dedupe_scripts(None, "page", "page.html", ctx, None)
    assert ctx["script_files"] is files  # edited in place, as Sphinx renders this list
    assert [(js.filename, js.priority) for js in files] == [(None, 500), ("a.js", 500),
                                                           (None, 500)]
    assert [js.attributes.get("body") for js in files] == [body, None, "var other = 1"]


def test_book_uses_the_vendored_mathjax_and_widget_manager():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    static = ROOT / "_static"
    for path in [config["mathjax_path"], *config["nb_ipywidgets_js"]]:
        # relative to the built _static/, whose parent receives _extra/ (html_extra_path)
        assert "://" not in path and path.startswith("../vendor/"), path
        assert (ROOT / "_extra" / path.removeprefix("../")).is_file(), path
    fonts = ROOT / "_extra" / "vendor" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2"
    assert len(list(fonts.glob("*.woff"))) > 20
    # Jupyter Book adds every .js under _static to every page: vendored scripts stay out
    assert not list(static.rglob("*.js"))
