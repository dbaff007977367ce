"""Files the subcommands write: checked before any work starts, and errors as one line (CliError)."""
import contextlib
import os
import sys
from pathlib import Path

from ansible_collections.teleshift.toolkit.plugins.module_utils.csvsafe import BOM

from teleshift_cli.errors import CliError


def check_output(path, what, protected=()):
    """The Path to write ``what`` to, or CliError saying why it cannot be used. ``-`` is stdout (None);
    ``protected``: input files (the roster...) an output must never overwrite."""
    if path is None or str(path) == "-":
        return None
    text = str(path)
    p = Path(text)
    if not text.strip():
        raise CliError(f"{what}: empty file name")
    if text.endswith(("/", os.sep)) or p.is_dir():
        raise CliError(f"{what} {text}: is a directory; give a file name")
    for other in protected:
        if other and p.resolve() == Path(other).resolve():
            raise CliError(f"{what} {text}: is an input file of this command; give another file name")
    ancestor = p.parent
    for _ in range(len(p.parts) + 1):  # the nearest existing ancestor must be a writable directory
        if ancestor.exists() or ancestor == ancestor.parent:
            break
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise CliError(f"{what} {text}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK):
        raise CliError(f"{what} {text}: cannot write in {ancestor}")
    _probe(p, what)
    return p


def _probe(p, what):
    """Open the file for appending (made with its directories, removed again if new): what the
    command writes last is known to be writable before the work starts."""
    existed = p.exists()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise CliError(f"cannot write {what} {p}: {exc.strerror or exc}") from None
    if not existed:
        p.unlink()


@contextlib.contextmanager
def open_output(path, what, excel=False, protected=()):
    """A text stream for ``path`` (``-``: standard output); parent directories are made.
    ``excel``: UTF-8 with a byte order mark."""
    p = check_output(path, what, protected)
    if p is None:
        if excel:
            sys.stdout.write(BOM)
        yield sys.stdout
        return
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        stream = open(p, "w", encoding="utf-8-sig" if excel else "utf-8", newline="")
    except OSError as exc:
        raise CliError(f"cannot write {what} {path}: {exc.strerror or exc}") from None
    with stream:
        yield stream


def write_text(path, text, what, protected=()):
    with open_output(path, what, protected=protected) as stream:
        stream.write(text)
