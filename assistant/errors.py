"""Domain errors. Each carries a French message meant for the user, shown once at the CLI/HTTP edge."""

from __future__ import annotations


class AssistantError(Exception):
    """Base class: ``str(error)`` is a complete French sentence that names the problem and the fix."""


class SettingsError(AssistantError):
    """A setting has a bad value."""


class LoadError(AssistantError):
    """A corpus file could not be read. ``path`` is relative to the corpus root."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path} : {reason}")
        self.path = path
        self.reason = reason


class IndexStateError(AssistantError):
    """The index is missing, unreadable or was built by something else."""
