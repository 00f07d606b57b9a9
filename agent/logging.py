"""Logging with loguru: the level, an optional rotating file, optional JSON lines, no secrets.

:func:`setup_logging` configures the process-wide loguru logger from the command line and the
config. The level comes from ``--log-level``, else ``Butler.licenseAgent.logging.level``, else
Butler's own ``Butler.logLevel`` (its winston names ``verbose`` and ``silly`` included), else
INFO. ``logging.file`` adds a file with loguru's ``rotation`` and ``retention``;
``logging.json: true`` writes JSON lines (loguru's ``serialize``) to that file, or to stderr
when there is no file.

Secrets never reach a sink: a loguru patcher masks every value registered with
:func:`register_secret` (setup registers the config's InfluxDB password and token, every QRS
header value but ``X-Qlik-User`` of every site, and the secret-looking plugin settings; the QRS
client and the InfluxDB destination register theirs too) and any credential-looking text
(``Authorization:``, ``Bearer``, ``Cookie:``, ``X-Api-Key``-style header lines and JSON entries,
``password=`` / ``token=`` query parameters), in the message, in ``extra`` values and in the
text of a logged exception. It also escapes control characters in the message
(:func:`agent.text.printable`): QRS data there cannot forge a log line or reach a terminal.
Handlers run with ``diagnose=False`` so tracebacks never print local variables (which may hold
a password).
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

from loguru import logger

from agent.text import printable

if TYPE_CHECKING:
    from agent.config import AgentConfig

MASK = "***"
DEFAULT_LEVEL = "INFO"
LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")

#: Butler (winston) level names -> loguru level names.
_BUTLER_LEVELS = {
    "silly": "TRACE",
    "debug": "DEBUG",
    "verbose": "DEBUG",
    "info": "INFO",
    "warn": "WARNING",
    "warning": "WARNING",
    "error": "ERROR",
}

HUMAN_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | {message}"
)
FILE_FORMAT = (
    "{time:YYYY-MM-DD HH:mm:ss.SSSZZ} | {level: <8} | {thread.name} | {name}:{line} | {message}"
)

#: Header and field names whose values are credentials: Authorization, Cookie, X-Api-Key,
#: X-Auth-Token, session ids, passwords...
_CREDENTIAL_NAME = (
    # Bounded runs: on a long run of word characters (a 10 MB user name) an unbounded one
    # would make every search quadratic.
    r"[\w-]{0,40}(?:authorization|cookie|api[_-]?key|token|secret|password|passwd|session)"
    r"[\w-]{0,40}"
)

# Credentials that can appear in any text (a server that echoes the request in its error body,
# a logged URL): header lines, JSON or Python dict entries, and URL query parameters.
_CREDENTIAL_PATTERNS = (
    re.compile(r"(?i)(authorization\s*[:=]\s*['\"]?)(?:(?:bearer|token|basic)\s+)?[^\s'\",;}]+"),
    re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)([?&](?:p|password|token|access_token|apikey|api_key)=)[^&\s'\"]+"),
    # "X-Api-Key": "value" and 'Cookie': 'a=1; b=2' (JSON and Python reprs of headers).
    re.compile(rf"(?i)(\"{_CREDENTIAL_NAME}\"\s*:\s*\")[^\"]+"),
    re.compile(rf"(?i)('{_CREDENTIAL_NAME}'\s*:\s*')[^']+"),
    # A header line: "Cookie: a=1; b=2" up to the end of the line.
    re.compile(rf"(?im)(^[ \t]*{_CREDENTIAL_NAME}[ \t]*:[ \t]*)\S[^\r\n]*"),
)

#: Setting names whose values are treated as secrets (plugin settings, headers).
_SECRET_NAME = re.compile(r"(?i)(password|passwd|token|secret|api[_-]?key|authorization)")

#: Shorter values are not masked: masking "abc" would garble every log line containing it.
MIN_SECRET_LENGTH = 4


class _SecretMasker:
    """The registered secret values and the patcher that removes them from records."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def register(self, value: str | None) -> None:
        if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            # The URL-encoded forms too: a password may appear inside a logged URL.
            self._values.update({value, quote(value, safe=""), quote_plus(value)})
            ordered = sorted(self._values, key=len, reverse=True)  # longest first
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None

    def mask(self, text: str) -> str:
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        for credential in _CREDENTIAL_PATTERNS:
            text = credential.sub(lambda m: m.group(1) + MASK, text)
        return text

    def _mask_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, Mapping):
            return {k: self._mask_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._mask_value(v) for v in value)
        return value

    def patch(self, record: Any) -> None:
        """The loguru patcher: runs on every record before any sink sees it.

        Besides masking, it escapes control characters: a message holds QRS data (user ids,
        names, error bodies), and a newline there must not start a forged log line nor an
        escape sequence reach a terminal.
        """
        record["message"] = printable(self.mask(record["message"]))
        if record["extra"]:
            record["extra"].update({k: self._mask_value(v) for k, v in record["extra"].items()})
        exception = record["exception"]
        if exception is not None and exception.value is not None:
            masked = self.mask_exception(exception.value, set())
            if masked is not exception.value:
                record["exception"] = exception._replace(type=type(masked), value=masked)

    def mask_exception(self, exc: BaseException, seen: set[int]) -> BaseException:
        """``exc``, or a stand-in with masked text when it or its chain mentions a secret."""
        seen.add(id(exc))
        cause, context = exc.__cause__, exc.__context__
        new_cause = self.mask_exception(cause, seen) if cause and id(cause) not in seen else cause
        new_context = (
            self.mask_exception(context, seen) if context and id(context) not in seen else context
        )
        text = str(exc)
        masked = printable(self.mask(text))
        if masked == text and new_cause is cause and new_context is context:
            return exc
        stand_in = _masked_type(type(exc))(masked)
        stand_in.__cause__ = new_cause
        stand_in.__context__ = new_context
        stand_in.__suppress_context__ = exc.__suppress_context__
        return stand_in.with_traceback(exc.__traceback__)


class _MaskedError(Exception):
    """Stands in for a logged exception whose text held a secret."""

    def __str__(self) -> str:
        return str(self.args[0])


_masked_types: dict[type, type] = {}


def _masked_type(original: type) -> type:
    # Same name and module as the original, so the traceback still says e.g. "ValueError".
    if original not in _masked_types:
        _masked_types[original] = type(
            original.__name__,
            (_MaskedError,),
            {"__module__": original.__module__, "__qualname__": original.__qualname__},
        )
    return _masked_types[original]


_masker = _SecretMasker()
_patcher_installed = threading.Event()


def register_secret(value: str | None) -> None:
    """Never log ``value`` (nor its URL-encoded forms); values under 4 characters are ignored."""
    _masker.register(value)
    _install_patcher()


def mask_secrets(text: str) -> str:
    """``text`` with every registered secret and credential-looking token replaced by ``***``."""
    return _masker.mask(text)


def _install_patcher() -> None:
    if not _patcher_installed.is_set():
        logger.configure(patcher=_masker.patch)
        _patcher_installed.set()


#: The one configured header that is not a credential: it names the account QRS acts as (the
#: client certificate is the credential), and `config check` shows it.
_QLIK_USER_HEADER = "x-qlik-user"


def header_secrets(headers: Iterable[Any]) -> list[str]:
    """The values of configured QRS headers (``name``/``value`` items) that are secrets: all of
    them (``Authorization``, ``Cookie``, ``X-Api-Key``, any custom one) but ``X-Qlik-User``."""
    return [h.value for h in headers if str(h.name).strip().lower() != _QLIK_USER_HEADER]


def config_secrets(config: AgentConfig) -> list[str]:
    """The secret values in a config: every secret-looking key of every section (the InfluxDB
    password and token, any plugin's) and every QRS header value but ``X-Qlik-User``, of
    every site."""
    butler = config.butler
    values = list(_secret_settings(butler.model_dump(by_alias=True, mode="json")))
    connections = [butler.config_qrs] + [site.config_qrs for site in config.agent.sites]
    for qrs in connections:
        if qrs is not None:
            values += header_secrets(qrs.headers.static)
    return [v for v in values if v]


def _secret_settings(node: Any, name: str = "") -> Iterable[str]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _secret_settings(value, str(key))
    elif isinstance(node, list):
        for value in node:
            yield from _secret_settings(value, name)
    elif isinstance(node, str) and _SECRET_NAME.search(name):
        yield node


def resolve_level(config: AgentConfig | None, override: str | None = None) -> str:
    """``--log-level``, else ``licenseAgent.logging.level``, else ``Butler.logLevel``, else INFO."""
    if override:
        return _normalise(override) or DEFAULT_LEVEL
    if config is not None:
        if config.agent.logging.level:
            return config.agent.logging.level
        if config.butler.log_level:
            level = _normalise(config.butler.log_level)
            if level:
                return level
    return DEFAULT_LEVEL


def _normalise(level: str) -> str | None:
    text = level.strip()
    if text.lower() in _BUTLER_LEVELS:
        return _BUTLER_LEVELS[text.lower()]
    return text.upper() if text.upper() in LEVELS else None


def _stderr(message: Any) -> None:
    # Looked up at each write: tests (and embedding) swap sys.stderr after setup.
    sys.stderr.write(message)


def setup_logging(
    config: AgentConfig | None, level: str | None = None, *, console_only: bool = False
) -> None:
    """Configure loguru for a command: stderr, plus the config's file; secrets masked.

    :param config: the loaded config, or ``None`` for commands that run without one.
    :param level: ``--log-level`` from the command line; wins over the config.
    :param console_only: human-readable stderr only, no file and no JSON (``config check``
        must not create the agent's log file).
    """
    chosen = resolve_level(config, level)
    settings = config.agent.logging if config is not None else None
    if config is not None:
        for secret in config_secrets(config):
            register_secret(secret)
    # Installed again on every setup: another logger.configure() may have replaced it.
    logger.configure(patcher=_masker.patch)
    _patcher_installed.set()
    logger.remove()
    to_file = settings is not None and settings.file is not None and not console_only
    json_lines = settings is not None and settings.json_lines and not console_only
    logger.add(
        _stderr,
        level=chosen,
        format=HUMAN_FORMAT,
        colorize=sys.stderr.isatty() if hasattr(sys.stderr, "isatty") else False,
        serialize=json_lines and not to_file,
        backtrace=False,
        diagnose=False,
    )
    if to_file:
        assert settings is not None and settings.file is not None
        logger.add(
            settings.file,
            level=chosen,
            format=FILE_FORMAT,
            rotation=settings.rotation,
            retention=settings.retention,
            serialize=json_lines,
            encoding="utf-8",
            backtrace=False,
            diagnose=False,
        )
    if config is not None and _unknown_butler_level(config, level):
        logger.warning(
            "Butler.logLevel {!r} is not a level the agent knows; using {}",
            config.butler.log_level,
            chosen,
        )


def _unknown_butler_level(config: AgentConfig, override: str | None) -> bool:
    if override is not None or config.agent.logging.level or not config.butler.log_level:
        return False
    return _normalise(config.butler.log_level) is None


__all__ = [
    "MASK",
    "config_secrets",
    "header_secrets",
    "mask_secrets",
    "register_secret",
    "resolve_level",
    "setup_logging",
]
