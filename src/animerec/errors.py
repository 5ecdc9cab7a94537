"""The exceptions animerec raises on purpose.

Every message names the value that failed, the file and line where there is one, and what
to do next. The CLI and the HTTP server turn these into one-line errors; anything else that
escapes is a bug.
"""

from __future__ import annotations


class AnimerecError(Exception):
    """Base class of every error animerec raises on purpose."""


class DataError(AnimerecError):
    """Invalid or unusable input data: a file, a row, a column or a value."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        value: object = None,
    ) -> None:
        location = ""
        if path is not None:
            location = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(location + message)
        self.path = path
        self.line = line
        self.value = value


class UnknownIdError(AnimerecError, KeyError):
    """An external id (user or anime) that the data or the model does not contain."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class NotFittedError(AnimerecError):
    """A model was used before `fit` or `load`."""


class ConfigError(AnimerecError, ValueError):
    """An invalid parameter, option or configuration value."""


class NotFoundError(AnimerecError):
    """A named thing (dataset, model bundle, title) that does not exist."""


def install_hint(extra: str) -> str:
    """Return the commands that install an optional extra, from PyPI and from a clone."""
    return f"`pip install 'animerec[{extra}]'` (in a clone of the repository: `pip install -e '.[{extra}]'`)"
