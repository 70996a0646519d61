"""The book's own Sphinx extension: two fixes, each small.

1. conceptlab's docstrings are plain text written for `help()` and the editor, not reStructuredText: the API
   reference shows each one as it is written, in a literal block, so a shape comment or an indented list is
   never read as markup.
2. Jupyter Book 1.0.4 fires sphinx-thebe's set-up twice, so every page declared `const THEBE_JS_URL` twice: a
   console error on every page ("Identifier 'THEBE_JS_URL' has already been declared"). Each page keeps one
   copy of each script.
"""


def as_literal(app, what, name, obj, options, lines):
    if any(line.strip() for line in lines):
        lines[:] = ["::", ""] + [("    " + line) if line.strip() else "" for line in lines] + [""]


def one_copy_of_each_script(app, pagename, templatename, context, doctree):
    seen, kept = set(), []
    for script in context.get("script_files", []):
        key = (str(getattr(script, "filename", script) or ""), getattr(script, "attributes", {}).get("body"))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app):
    app.connect("autodoc-process-docstring", as_literal)
    app.connect("html-page-context", one_copy_of_each_script, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
