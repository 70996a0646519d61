"""The book's own helpers: the log filter of `make book` and the Sphinx extension (book/_ext)."""
import subprocess
import sys
from pathlib import Path

EXT = Path(__file__).parent.parent / "book" / "_ext"
sys.path.insert(0, str(EXT))

import conceptlab_book  # noqa: E402


def test_the_log_filter_drops_kernel_noise_and_keeps_real_errors():
    log = ("building\n[IPKernelApp] WARNING | Kernel is running over TCP without encryption. ...\n"
           "Traceback (most recent call last):\n  File \"zmq/sugar/socket.py\", line 1\n"
           "zmq.error.ZMQError: Socket operation on non-socket\nnext\n"
           "Traceback (most recent call last):\n  File \"nb.py\", line 2\nValueError: a real failure\ndone\n")
    out = subprocess.run([sys.executable, str(EXT / "quiet_log.py")], input=log, capture_output=True, text=True).stdout
    assert out == ("building\nnext\nTraceback (most recent call last):\n  File \"nb.py\", line 2\n"
                   "ValueError: a real failure\ndone\n")


def test_each_script_is_kept_once():
    from sphinx.builders.html._assets import _JavaScript

    scripts = [_JavaScript(None, body="const A = 1"), _JavaScript("x.js"), _JavaScript("", body="const A = 1"),
               _JavaScript("x.js"), _JavaScript("", body="const B = 2")]
    context = {"script_files": scripts}
    conceptlab_book.one_copy_of_each_script(None, "p", "t", context, None)
    assert [(s.filename, s.attributes.get("body")) for s in context["script_files"]] == [
        (None, "const A = 1"), ("x.js", None), ("", "const B = 2")]


def test_docstrings_are_shown_as_written():
    lines = ["Shape (B, C).", "", "    indented: not a quote"]
    conceptlab_book.as_literal(None, "function", "f", None, {}, lines)
    assert lines == ["::", "", "    Shape (B, C).", "", "        indented: not a quote", ""]
