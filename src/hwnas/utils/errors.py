"""Errors meant for people: each names the offending key, the valid choices and the fix."""

from __future__ import annotations

from collections.abc import Iterable


class HwnasError(Exception):
    """A user-facing error. Entry points print it as one clear message and exit with code 2.

    Args:
        message: What is wrong, in one sentence.
        key: The config key (dotted path) that caused it, if any.
        choices: The valid values, if the set is small enough to list.
        fix: What the user should do, e.g. ``"set dataset.root=/path/to/FaceSynthetics"``.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        choices: Iterable[object] | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.key = key
        self.choices = list(choices) if choices is not None else None
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = []
        if self.key:
            parts.append(f"[{self.key}] {self.message}")
        else:
            parts.append(self.message)
        if self.choices is not None:
            shown = ", ".join(str(c) for c in self.choices[:40])
            more = f" (+{len(self.choices) - 40} more)" if len(self.choices) > 40 else ""
            parts.append(f"Valid choices: {shown}{more}.")
        if self.fix:
            parts.append(f"Fix: {self.fix}")
        return " ".join(parts)


class ConfigError(HwnasError):
    """A config value is missing, mistyped or out of range."""


class InvalidArchError(HwnasError):
    """An architecture violates its search space (parameter range, input divisibility, ...)."""


class DataError(HwnasError):
    """A dataset root, file or column is missing or unreadable."""


class ProfilerUnavailable(HwnasError):
    """A profiler's preconditions are not met (no token, no SDK, no device attached)."""


class CandidateFailed(Exception):
    """A candidate failed during evaluation; the search records a FAIL trial with ``reason``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
