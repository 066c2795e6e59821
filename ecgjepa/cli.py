"""How every command reports a user's mistake: one line naming the file or key and what was expected,
exit status 2, no traceback (``ECGJEPA_DEBUG=1`` or ``HYDRA_FULL_ERROR=1`` shows it)."""

from __future__ import annotations

import functools
import os
import pickle
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from hydra.errors import InstantiationException
from omegaconf.errors import OmegaConfBaseException

from ecgjepa.core.errors import UserError

USAGE_STATUS = 2

# Errors a user's input causes (files, formats, values, keys); anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    KeyError,
    EOFError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    OmegaConfBaseException,
    UserError,
)


class UsageError(Exception):
    """A command line that the command cannot run (a missing or unknown argument)."""


def parse_key_values(
    argv: Sequence[str], options: set[str], required: set[str], usage: str, flags: set[str] = frozenset()
) -> dict[str, str]:
    """``key=value`` arguments of a command with the given ``options``; each of ``flags`` alone means
    ``flag=true``. An unknown key or a missing required one raises :class:`UsageError`."""
    args: dict[str, str] = {}
    for item in argv:
        key, sep, value = item.lstrip("-").partition("=")
        if key in flags and not sep:
            value, sep = "true", "="
        if not sep or key not in options:
            raise UsageError(f"expected key=value with key in {sorted(options)}, got {item!r}")
        args[key] = value
    missing = required - set(args)
    if missing:
        raise UsageError(f"missing {sorted(missing)}\n{usage}")
    return args


def debug_requested() -> bool:
    return any(os.environ.get(name, "") not in ("", "0") for name in ("ECGJEPA_DEBUG", "HYDRA_FULL_ERROR"))


def fail(command: str, message: object) -> NoReturn:
    print(f"{command}: error: {message}", file=sys.stderr)
    raise SystemExit(USAGE_STATUS)


def user_error(err: BaseException) -> BaseException | None:
    """The user error behind ``err``: itself, or what a constructor raised inside Hydra's ``instantiate``."""
    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    return err if isinstance(err, (UsageError, *USER_ERRORS)) else None


@contextmanager
def reporting_user_errors(command: str) -> Iterator[None]:
    """Turn a user error raised inside into :func:`fail`'s one-line message and exit status 2."""
    try:
        yield
    except Exception as raised:
        err = user_error(raised)
        if err is None or debug_requested():
            raise
        fail(command, err.args[0] if isinstance(err, KeyError) and err.args else err)


def command(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command's ``main``: user errors end as one message and exit status 2."""

    def decorate(main: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(main)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with reporting_user_errors(name):
                return main(*args, **kwargs)

        return wrapper

    return decorate


class HydraCommand:
    """A ``@hydra.main`` command whose user errors end as one message and exit status 2.

    Decorate the task function with :meth:`task` (under ``@hydra.main``) and point the console script at
    :meth:`entry`. Hydra reports a configuration it cannot compose (an unknown key or option) in one message
    and exits with status 1 before the task starts; that becomes status 2 too. A failure inside the task that
    is not a user error keeps Hydra's traceback and status 1.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.task_started = False

    def task(self, body: Callable[[Any], None]) -> Callable[[Any], None]:
        @functools.wraps(body)
        def wrapper(cfg: Any) -> None:
            self.task_started = True
            with reporting_user_errors(self.name):
                body(cfg)

        return wrapper

    def entry(self, main: Callable[[], None]) -> Callable[[], None]:
        @functools.wraps(main)
        def run() -> None:
            try:
                main()
            except SystemExit as exit_:
                if exit_.code == 1 and not self.task_started:
                    raise SystemExit(USAGE_STATUS) from None
                raise

        return run
