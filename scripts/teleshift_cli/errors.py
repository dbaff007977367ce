"""How a subcommand fails: one line on standard error and an exit code, never a traceback.

Subcommands raise CliError for what they detect themselves; ``describe`` turns anything else that
escapes (a file that cannot be written, a broken inventory file Ansible refuses...) into one line.
"""
import errno
import os
import sys

EXIT_INPUT = 1  # bad roster, inventory or input file
EXIT_USAGE = 2  # bad argument, or a path that cannot be used
EXIT_INTERNAL = 70  # a bug: the message says so (TELESHIFT_DEBUG=1 shows the traceback)
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for SIGPIPE


class CliError(Exception):
    """A problem the command detected; its message is the whole explanation."""

    def __init__(self, message, code=EXIT_USAGE):
        super().__init__(message)
        self.code = code


def one_line(text, limit=400):
    """Collapse whitespace (Ansible messages span lines) and cut very long messages."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _chain(exc):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _ansible_origin(exc):
    """'file:line:column' of an Ansible parse error, from the exception or the ones it wraps."""
    for item in _chain(exc):
        origin = getattr(item, "obj", None)
        if origin is not None and type(origin).__name__ == "Origin":
            return str(origin)
    return None


def _ansible_message(exc):
    message = getattr(exc, "message", None) or str(exc)
    return str(message).split("\n\n")[0]  # the first paragraph: the rest is an excerpt and help text


def describe(exc, inventory=None):
    """(one-line message, exit code) for an exception that escaped a subcommand (``inventory``: the
    --inventory it was given, named when Ansible could not parse it)."""
    if isinstance(exc, CliError):
        return one_line(exc), exc.code
    if isinstance(exc, OSError):
        name = exc.filename if exc.filename is not None else ""
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, "") or str(exc)
        return one_line(f"{name}: {reason}" if name else reason), EXIT_USAGE
    from ansible.errors import AnsibleError

    if isinstance(exc, AnsibleError):
        origin = _ansible_origin(exc)
        message = _ansible_message(exc)
        if message.startswith("No inventory was parsed") and inventory:
            return f"{inventory}: not an inventory (Ansible could read no host or group from it)", EXIT_INPUT
        return one_line(f"{origin}: {message}" if origin and origin not in message else message), EXIT_INPUT
    if isinstance(exc, (UnicodeError, MemoryError, RecursionError)):
        return one_line(f"{type(exc).__name__}: {exc}"), EXIT_INPUT
    return (one_line(f"internal error ({type(exc).__name__}: {exc}); please report it with the command line "
                     "(TELESHIFT_DEBUG=1 shows the traceback)"), EXIT_INTERNAL)


def silence_stdout():
    """After a broken pipe: send what is left of standard output nowhere (no second error at exit)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # e.g. a captured stream without a file descriptor
        pass
