"""The ``OTEL_COSTATTR_*`` environment settings: every name the package reads, the values each takes, and the
start-up check that turns a typo into a clear message instead of a silent default.

* A known setting with a value it does not take (``OTEL_COSTATTR_FLUSH_ON_SIGNAL=flase``) is a configuration
  error: :func:`flag` and :func:`check_environment` raise, naming the values it takes.
* An ``OTEL_COSTATTR_*`` name the package does not read (``OTEL_COSTATTR_FLUSH_ON_SIGNALS``) is logged once as a
  warning naming the closest setting. It does not stop the application: a variable left over from another
  version or tool must not take a service down, but it must not go unnoticed either.
"""

from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Mapping

from ._errors import ConfigurationError

__all__ = ["SETTINGS", "check_environment", "choice", "flag"]

logger = logging.getLogger("otel_costattr")

#: name -> what it takes (shown in messages).
SETTINGS: dict[str, str] = {
    "OTEL_COSTATTR_PRICING": "pricing overlay files, separated like PATH",
    "OTEL_COSTATTR_FLUSH_ON_SIGNAL": "true or false (default true)",
    "OTEL_COSTATTR_OUTBOUND_ATTRIBUTION": "'allow' to send attribution baggage to LLM vendors, or 'guard' "
                                          "(the default)",
    "OTEL_COSTATTR_LEDGER": "the ledger path the CLI uses when --db is not given",
    "OTEL_COSTATTR_SERVE_TOKEN": "the bearer token `otel-costattr serve` requires",
}
_CHOICES: dict[str, frozenset[str]] = {
    "OTEL_COSTATTR_OUTBOUND_ATTRIBUTION": frozenset({"allow", "guard"}),
}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_FLAGS = ("OTEL_COSTATTR_FLUSH_ON_SIGNAL",)
#: Variables this project's own test suite and benchmarks read: not settings, never warned about.
_TOOLING = ("OTEL_COSTATTR_TEST_", "OTEL_COSTATTR_RELIABILITY_", "OTEL_COSTATTR_PHOENIX_", "OTEL_COSTATTR_LITELLM_")

_warned: set[str] = set()
_warned_lock = threading.Lock()


def flag(name: str, env: Mapping[str, str], default: bool) -> bool:
    """The boolean setting ``name`` from ``env``: ``default`` when unset or blank.

    Raises:
        ConfigurationError: the value is not one of 1/true/yes/on or 0/false/no/off (any case).
    """
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigurationError(f"{name}={env[name]!r} is not a boolean; set it to true or false (or 1/0, yes/no, "
                             "on/off), or unset it for the default")


def choice(name: str, env: Mapping[str, str]) -> str:
    """The setting ``name`` from ``env``, lower-cased; ``""`` when unset or blank.

    Raises:
        ConfigurationError: the value is not one the setting takes.
    """
    value = (env.get(name) or "").strip().lower()
    if value and value not in _CHOICES[name]:
        raise ConfigurationError(f"{name}={env[name]!r} is not a value it takes: {SETTINGS[name]}; fix it or unset "
                                 "it")
    return value


def check_environment(env: Mapping[str, str]) -> None:
    """Check every ``OTEL_COSTATTR_*`` variable in ``env`` (see the module docstring).

    Raises:
        ConfigurationError: a known setting has a value it does not take.
    """
    for name in sorted(k for k in env if k.startswith("OTEL_COSTATTR_")):
        if name in _FLAGS:
            flag(name, env, True)
        elif name in _CHOICES:
            choice(name, env)
        elif name not in SETTINGS and not name.startswith(_TOOLING):
            _warn_unknown(name)


def _warn_unknown(name: str) -> None:
    with _warned_lock:
        if name in _warned or len(_warned) >= 64:  # once per name, and a bounded set of names
            return
        _warned.add(name)
    close = difflib.get_close_matches(name, SETTINGS, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    logger.warning("otel-costattr: %s is set but is not a setting otel-costattr reads; %sthe settings are: %s",
                   name, hint, ", ".join(SETTINGS))
