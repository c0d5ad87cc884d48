"""How detection behaves: `configure_n1_detection` and its environment variables."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

MODES = ("span", "log", "warn", "raise")


@dataclass(frozen=True)
class N1Settings:
    enabled: bool = True
    threshold: int = 5  # Sentry's and Scout's default
    log_level: int = logging.WARNING
    mode: str = "span"
    allowlist: frozenset[str] = frozenset()


def _env_settings() -> N1Settings:
    enabled = True
    raw = os.environ.get("DATA_BRIDGE_N1_ENABLED")
    if raw is not None:
        enabled = raw.strip().lower() not in ("false", "0", "no", "off")
    threshold = 5
    value = os.environ.get("DATA_BRIDGE_N1_THRESHOLD", "").strip()
    if value.isdigit() and int(value) > 0:
        threshold = int(value)
    mode = os.environ.get("DATA_BRIDGE_N1_MODE", "").strip().lower()
    if mode not in MODES:
        mode = "span"
    allow = os.environ.get("DATA_BRIDGE_N1_ALLOWLIST", "")
    allowlist = frozenset(a.strip() for a in allow.split(",") if a.strip())
    return N1Settings(enabled, threshold, logging.WARNING, mode, allowlist)


_settings = _env_settings()


def configure_n1_detection(
    enabled: bool = True,
    threshold: int = 5,
    log_level: str | int = "WARNING",
    mode: str = "span",
    allowlist: list[str] | tuple[str, ...] = (),
) -> None:
    """Configure detection.

    ``mode`` is ``span`` (default: a ``db.n1_warning`` span and an event),
    ``log`` (also a log record at ``log_level``), ``warn`` (also
    ``warnings.warn(NPlusOneWarning)``) or ``raise`` (``NPlusOneError``, for
    tests). ``allowlist`` holds relationships (``"Post.author"``) never reported.
    """
    global _settings
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
        raise ValueError(f"threshold must be a positive int, got {threshold!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    level = logging.getLevelName(log_level.upper()) if isinstance(log_level, str) else log_level
    if not isinstance(level, int):
        raise ValueError(f"unknown log level {log_level!r}")
    _settings = N1Settings(bool(enabled), threshold, level, mode, frozenset(allowlist))


def n1_settings() -> N1Settings:
    return _settings
