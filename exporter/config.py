"""The exporter's inputs: the business-queries YAML file and MySQL credentials.

The YAML format (one entry per metric)::

    queries:
      - name: elibrary_members          # metric name; counters end in _total
        help: Members by status.
        type: gauge                     # gauge or counter
        labels: [status]                # result columns that become labels
        value: value                    # result column holding the number (default "value")
        sql: SELECT status, COUNT(*) AS value FROM members GROUP BY status
        timeout: 2s                     # server-side statement limit, 100ms to 60s (default 5s)
        cache: 60s                      # reuse a result this long, 0 to 1d (default 0: no cache)
        max_series: 50                  # more rows than this is an error (default 100)

Unknown keys are refused, durations are parsed here once, and every problem in the file
is reported in one error whose lines read ``file: queries[2].name: problem``.
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sre.errors import SreError

__all__ = [
    "DEFAULT_QUERIES",
    "SSL_MODES",
    "ConfigError",
    "MySQLTarget",
    "QuerySpec",
    "TLSSettings",
    "database_advice",
    "load_mysql_target",
    "load_queries",
    "missing_database",
    "parse_duration",
]

DEFAULT_QUERIES = Path(__file__).with_name("queries.yaml")

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_RESERVED_SUFFIXES = ("_bucket", "_count", "_sum", "_created", "_info")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_KEYS = {"name", "help", "type", "labels", "value", "sql", "timeout", "cache", "max_series"}
_REQUIRED = ("name", "help", "type", "sql")


class ConfigError(SreError):
    """The queries file or the MySQL credentials are unusable."""


@dataclass(frozen=True)
class QuerySpec:
    """One business metric and the SQL that measures it."""

    name: str
    help: str
    type: str
    sql: str
    labels: tuple[str, ...] = ()
    value: str = "value"
    #: seconds the statement may run, enforced by the server
    timeout_s: float = 5.0
    #: seconds a result is reused; 0 runs the query on every scrape
    cache_s: float = 0.0
    #: most rows (label combinations) the query may return
    max_series: int = 100


#: the MySQL client's --ssl-mode values, weakest first
SSL_MODES = ("DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY")


@dataclass(frozen=True)
class TLSSettings:
    """How to encrypt the link to MySQL, as the MySQL client's ``ssl-*`` options say it."""

    #: one of SSL_MODES; PREFERRED encrypts when the server offers TLS, as the client does
    mode: str = "PREFERRED"
    #: CA bundle that signs the server's certificate (VERIFY_*; system CAs when unset)
    ca: str | None = None
    #: client certificate and key, for servers that require X509 authentication
    cert: str | None = None
    key: str | None = None

    @property
    def verifies(self) -> bool:
        return self.mode in ("VERIFY_CA", "VERIFY_IDENTITY")


@dataclass(frozen=True)
class MySQLTarget:
    """Where and as whom to connect. ``password`` never goes into logs or errors."""

    host: str = "127.0.0.1"
    port: int = 3306
    user: str = ""
    password: str = ""
    unix_socket: str | None = None
    #: schema the business queries read (``database`` in [client]); None for server metrics only
    database: str | None = None
    tls: TLSSettings = TLSSettings()
    #: the options file the credentials were read from; None when from SRE_MYSQL_* variables
    options_file: str | None = None

    @property
    def address(self) -> str:
        """host:port or the socket path, for logs."""
        return self.unix_socket or f"{self.host}:{self.port}"

    def redact(self, text: str) -> str:
        """``text`` with the password blanked out.

        For messages of exceptions nobody vetted (a collector's bug, a driver's surprise):
        what they hold is unknown, and a log line must never show the password.
        """
        return text.replace(self.password, "<password>") if self.password else text

    def __repr__(self) -> str:  # keeps the password out of tracebacks and debug logs
        return f"MySQLTarget(user={self.user!r}, address={self.address!r})"


def database_advice(target: MySQLTarget) -> str:
    """How to name the schema the business queries read, where these credentials come from."""
    if target.options_file is None:
        return "set SRE_MYSQL_DATABASE=<schema>"
    return (
        f"add database=<schema> under [client] in {target.options_file}, "
        "or set SRE_MYSQL_DATABASE=<schema>"
    )


def missing_database(target: MySQLTarget) -> ConfigError:
    """The error of a command that must run the business queries but has no schema."""
    if target.options_file is None:
        return ConfigError(
            "environment", "SRE_MYSQL_DATABASE", "is not set: the business queries need a schema"
        )
    return ConfigError(
        target.options_file,
        "[client].database",
        "is missing: the business queries need a schema "
        "(add database=<schema> there, or set SRE_MYSQL_DATABASE=<schema>)",
    )


def parse_duration(raw: object) -> float:
    """Seconds from '250ms', '5s', '2m', '1h', '1d' or a bare number of seconds."""
    if isinstance(raw, bool):
        raise ValueError("must be a duration such as 5s")
    if isinstance(raw, int | float):
        return float(raw)
    match = _DURATION.match(str(raw).strip())
    if not match:
        raise ValueError(f"{raw!r} is not a duration such as 500ms, 5s or 2m")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _check_entry(entry: Any, where: str, problems: list[tuple[str, str]]) -> QuerySpec | None:
    def bad(key: str, problem: str) -> None:
        problems.append((f"{where}.{key}" if key else where, problem))

    if not isinstance(entry, Mapping):
        bad("", "must be a mapping with name, help, type and sql")
        return None
    before = len(problems)
    for key in sorted(set(entry) - _KEYS):
        bad(str(key), f"unknown key (allowed: {', '.join(sorted(_KEYS))})")
    for key in _REQUIRED:
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            bad(key, "is required and must be a non-empty string")
    name, kind = entry.get("name"), entry.get("type")
    if isinstance(name, str) and name:
        if not _METRIC_NAME.match(name):
            bad("name", f"{name!r} is not a valid Prometheus metric name")
        elif name.endswith(_RESERVED_SUFFIXES):
            bad("name", f"{name!r} ends in a suffix Prometheus reserves")
        elif kind == "counter" and not name.endswith("_total"):
            bad("name", f"counter {name!r} must end in _total")
        elif kind == "gauge" and name.endswith("_total"):
            bad("name", f"gauge {name!r} must not end in _total")
    if isinstance(kind, str) and kind not in ("gauge", "counter"):
        bad("type", f"{kind!r} is not gauge or counter")
    labels = entry.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        bad("labels", "must be a list of column names")
        labels = []
    for label in labels:
        if not _LABEL_NAME.match(label) or label.startswith("__"):
            bad("labels", f"{label!r} is not a valid label name")
    if len(set(labels)) != len(labels):
        bad("labels", "names a column twice")
    value = entry.get("value", "value")
    if not isinstance(value, str) or not value:
        bad("value", "must be a column name")
    elif value in labels:
        bad("value", f"column {value!r} cannot be both a label and the value")
    sql = entry.get("sql")
    if isinstance(sql, str) and sql.strip():
        statement = sql.strip().rstrip(";")
        if ";" in statement:
            bad("sql", "must be a single statement")
        if not re.match(r"(?is)^\s*(select|with)\b", statement):
            bad("sql", "must be a read-only SELECT (or WITH … SELECT)")
    timeout = _duration(entry, "timeout", 5.0, (0.1, 60.0), bad)
    cache = _duration(entry, "cache", 0.0, (0.0, 86400.0), bad)
    max_series = entry.get("max_series", 100)
    if (
        isinstance(max_series, bool)
        or not isinstance(max_series, int)
        or not (1 <= max_series <= 10_000)
    ):
        bad("max_series", "must be a whole number from 1 to 10000")
    if len(problems) > before:
        return None
    return QuerySpec(
        name=str(name),
        help=entry["help"].strip(),
        type=str(kind),
        sql=str(sql).strip().rstrip(";"),
        labels=tuple(labels),
        value=value,
        timeout_s=timeout,
        cache_s=cache,
        max_series=max_series,
    )


def _duration(
    entry: Mapping[str, Any], key: str, default: float, bounds: tuple[float, float], bad: Any
) -> float:
    if key not in entry:
        return default
    try:
        seconds = parse_duration(entry[key])
    except ValueError as exc:
        bad(key, str(exc))
        return default
    if not bounds[0] <= seconds <= bounds[1]:
        bad(key, f"must be between {bounds[0]:g}s and {bounds[1]:g}s")
    return seconds


def load_queries(path: str | Path) -> tuple[QuerySpec, ...]:
    """Read and check a queries file; ConfigError lists every problem found."""
    label = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(label, None, f"cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        raise ConfigError(label, where, "is not valid YAML") from None
    if not isinstance(data, Mapping) or set(data) != {"queries"}:
        raise ConfigError(label, None, "must be a mapping with one key, queries")
    entries = data["queries"]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(label, "queries", "must be a non-empty list")
    problems: list[tuple[str, str]] = []
    specs: list[QuerySpec] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        spec = _check_entry(entry, f"queries[{index}]", problems)
        if spec is None:
            continue
        if spec.name in seen:
            problems.append(
                (f"queries[{index}].name", f"{spec.name!r} is used by queries[{seen[spec.name]}]")
            )
            continue
        seen[spec.name] = index
        specs.append(spec)
    if problems:
        errors = [ConfigError(label, entry, problem) for entry, problem in problems]
        first = errors[0]
        raise ConfigError(first.file, first.entry, first.problem, errors[1:])
    return tuple(specs)


def load_mysql_target(my_cnf: str | None, env: Mapping[str, str] | None = None) -> MySQLTarget:
    """Credentials from an explicit --my-cnf, else SRE_MYSQL_* variables, else ~/.my.cnf.

    Environment: SRE_MYSQL_USER, SRE_MYSQL_PASSWORD or SRE_MYSQL_PASSWORD_FILE,
    SRE_MYSQL_HOST (default 127.0.0.1), SRE_MYSQL_PORT (default 3306), SRE_MYSQL_DATABASE,
    and for TLS SRE_MYSQL_SSL_MODE, SRE_MYSQL_SSL_CA, SRE_MYSQL_SSL_CERT, SRE_MYSQL_SSL_KEY.
    SRE_MYSQL_DATABASE also names the schema when the options file has no ``database``.
    """
    env = os.environ if env is None else env
    if my_cnf is None and env.get("SRE_MYSQL_USER"):
        return _from_env(env)
    path = Path(my_cnf) if my_cnf else Path.home() / ".my.cnf"
    label = str(path)
    parser = _OptionFile(allow_no_value=True, interpolation=None, strict=False)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigError(label, None, f"cannot read: {exc.strerror}") from None
    except configparser.Error:
        raise ConfigError(label, None, "is not an INI file with a [client] section") from None
    if not parser.has_section("client"):
        raise ConfigError(label, "[client]", "section is missing")
    client = parser["client"]

    def field(key: str, default: str = "") -> str:
        value = client.get(key) or default
        return value.strip().strip("'\"")

    user = field("user")
    if not user:
        raise ConfigError(label, "[client].user", "is required")
    port = field("port", "3306")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(label, "[client].port", "must be a port number")
    return MySQLTarget(
        host=field("host", "127.0.0.1"),
        port=int(port),
        user=user,
        password=field("password"),
        unix_socket=field("socket") or None,
        # A file written for mysqld_exporter has no database; its owner keeps the file as it
        # is and names the schema in the environment instead. The file wins when both do.
        database=field("database") or env.get("SRE_MYSQL_DATABASE") or None,
        tls=_tls_from_cnf(label, client, field),
        options_file=label,
    )


class _OptionFile(configparser.ConfigParser):
    def optionxform(self, optionstr: str) -> str:
        # The MySQL client takes ssl_ca and ssl-ca for one option; so do we.
        return optionstr.strip().lower().replace("_", "-")


def _tls_from_cnf(
    label: str, client: configparser.SectionProxy, field: Callable[[str], str]
) -> TLSSettings:
    # MariaDB's client spells "no TLS" skip-ssl or ssl=0, and "verify the server"
    # ssl-verify-server-cert; mysqld_exporter reads ssl-skip-verfication (sic).
    def flag(key: str) -> bool:
        return key in client and (client[key] is None or field(key).lower() in _TRUE)

    mode = field("ssl-mode").upper() or None
    if flag("skip-ssl") or ("ssl" in client and not flag("ssl")):
        mode = mode or "DISABLED"
    if flag("ssl-verify-server-cert"):
        mode = mode or "VERIFY_IDENTITY"
    skip_verify = flag("ssl-skip-verification") or flag("ssl-skip-verfication")
    return _tls_settings(
        label,
        lambda option: f"[client].{option}",
        mode,
        skip_verify,
        {key: field(key) or None for key in ("ssl-ca", "ssl-cert", "ssl-key")},
    )


_TRUE = ("", "1", "true", "on", "yes")


def _tls_settings(
    where: str,
    entry_of: Callable[[str], str],
    mode: str | None,
    skip_verify: bool,
    files: dict[str, str | None],
) -> TLSSettings:
    """Check the TLS options together; ``files`` maps ssl-ca, ssl-cert, ssl-key to paths
    and ``entry_of`` names an option where it was written, for errors."""
    ca, cert, key = files["ssl-ca"], files["ssl-cert"], files["ssl-key"]
    entry = entry_of("ssl-mode")
    if mode is not None and mode not in SSL_MODES:
        raise ConfigError(where, entry, f"must be one of {', '.join(SSL_MODES)}, not {mode!r}")
    if skip_verify:
        if mode in ("VERIFY_CA", "VERIFY_IDENTITY"):
            raise ConfigError(where, entry, f"{mode} contradicts ssl-skip-verification")
        mode = mode or "REQUIRED"
    if mode is None:
        mode = "VERIFY_CA" if ca else "PREFERRED"
    if mode == "DISABLED" and (ca or cert or key):
        raise ConfigError(where, entry, "DISABLED contradicts the ssl-ca/ssl-cert/ssl-key given")
    if bool(cert) != bool(key):
        given, missing = ("ssl-cert", "ssl-key") if cert else ("ssl-key", "ssl-cert")
        raise ConfigError(where, entry_of(missing), f"is required with {given}")
    for option, path in files.items():
        if path and not os.access(path, os.R_OK):
            raise ConfigError(where, entry_of(option), f"cannot read {path}")
    return TLSSettings(mode=mode, ca=ca, cert=cert, key=key)


def _env_name(option: str) -> str:
    return "SRE_MYSQL_" + option.upper().replace("-", "_")


def _from_env(env: Mapping[str, str]) -> MySQLTarget:
    password = env.get("SRE_MYSQL_PASSWORD", "")
    password_file = env.get("SRE_MYSQL_PASSWORD_FILE")
    if password_file:
        try:
            password = Path(password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(password_file, None, f"cannot read: {exc.strerror}") from None
    port = env.get("SRE_MYSQL_PORT", "3306")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("environment", "SRE_MYSQL_PORT", "must be a port number")
    tls = _tls_settings(
        "environment",
        _env_name,
        env.get("SRE_MYSQL_SSL_MODE", "").strip().upper() or None,
        False,
        {key: env.get(_env_name(key)) or None for key in ("ssl-ca", "ssl-cert", "ssl-key")},
    )
    return MySQLTarget(
        host=env.get("SRE_MYSQL_HOST", "127.0.0.1"),
        port=int(port),
        user=env["SRE_MYSQL_USER"],
        password=password,
        database=env.get("SRE_MYSQL_DATABASE") or None,
        tls=tls,
    )
