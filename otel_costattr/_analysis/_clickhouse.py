"""A rollup :class:`~otel_costattr._analysis._rollup.Source` over ClickHouse: the collector exporter's ``otel_traces`` table.

The OpenTelemetry Collector's ``clickhouse`` exporter writes one row per span into ``otel_traces``, every span
attribute a *string* in ``SpanAttributes Map(LowCardinality(String), String)`` (doubles as Go writes them:
``0.00045``, ``1.5e-7``). :class:`ClickHouseSource` maps that table, in SQL, onto the ledger's columns (see
``_ledger.COLUMNS``) as two relations, so that ``_rollup.build_report`` runs unchanged:

* ``spans``: one row per span (LLM or not), with ``trace_id``/``span_id``/``parent_span_id``, times and status;
  what retry chains and the call tree will read (they are not built on ClickHouse yet; this is their input).
* ``calls``: one row per billed call, ``spans WHERE is_llm AND counted``.

Both are common table expressions put in front of every query; by default ``spans`` is first copied into a
session-scoped temporary table, so that one report reads one snapshot (see :class:`ClickHouseSource`). No view
or table is created in any database. The mapping follows the ledger rule for rule:

* usage, provider, model, response id: the first *valid* alias in ``attributes.READ`` order, validated like
  ``_usage.read_call`` (text trimmed and length-limited; counts whole numbers from 0 to 2**63 - 1, summed
  without overflow; a count above the model's limits stays, flagged ``implausible:`` by the processor);
* ``is_llm``: ``_usage.Call.is_llm_call``;
* money: ``DECIMAL(38, 18)`` parsed from the exporter's text (the shortest round-trip digits of the float, as the
  ledger's ``CAST(CAST(x AS VARCHAR) AS DECIMAL(38,18))`` uses) and rounded half away from zero at 18 places,
  as DuckDB rounds: totals equal the ledger's to the last decimal;
* ``counted``: the span that carries the call's cost. A span that another span supersedes (a twin without
  usage that ended first: ``gen_ai.cost.supersedes``, matched by span id as the ledger does) does not count. Spans the processor marked
  ``duplicate`` never count (on
  ClickHouse there is no price book to re-price them, so this equals the ledger written without one); any other
  spans that share ``(gen_ai.response.id, lower(provider))`` (the same call priced by two processes) collapse
  to one, ranked like the ledger's ``_RANK_SQL``: most detailed usage, then carrying a cost, then the earliest
  to end, then span id.

Known differences from the ledger, all from types the exporter does not keep: an attribute that was not a
string but is read as text (an int "model") is accepted here, a cost sent as a numeric *string* is used here, and attribution or ``--by`` values
that were not strings are the Go text (``true``, ``1e-7``) rather than Python's (``True``, ``1e-07``).

URL forms (:func:`parse_url`):

* ``clickhouse://[user[:password]@]host[:port][/database][?table=otel_traces]``: the HTTP interface through
  ``clickhouse-connect`` (port 8123 by default); ``clickhouses://`` is the same over TLS (port 8443).
* ``chdb:///absolute/dir[?database=default&table=otel_traces]`` or ``chdb://relative/dir``: a chDB (in-process
  ClickHouse) data directory; ``chdb://`` or ``chdb://:memory:`` is an in-memory session. A ready
  ``chdb.session.Session`` or ``clickhouse-connect`` client can be passed instead (``ClickHouseSource(session=...)``
  / ``client=...``).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .. import attributes as A
from .._errors import ConfigurationError
from .._ledger._store import _MAPPED, CONTENT_KEYS, _CONTENT_PREFIXES, ATTRIBUTION_COLUMNS, COLUMNS
from ..attributes import LLM_OPERATIONS, NON_LLM_OPERATIONS, READ

__all__ = ["ClickHouseSource", "ClickHouseTarget", "is_source_url", "open_source", "parse_url", "spans_sql"]

logger = logging.getLogger(__name__)

DEFAULT_TABLE = "otel_traces"  # the exporter's default traces_table_name
DEFAULT_DATABASE = "default"
_SCHEMES = ("clickhouse", "clickhouses", "chdb")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Same bounds as _usage: text lengths, and the largest believable token count.
_TEXT_LIMITS = {"operation": 256, "provider": 256, "request_model": 256, "response_model": 256, "response_id": 512}
# Counts up to the largest int64, as _usage reads them: a count above what the model can take is not dropped
# here (that would make it vanish from token totals and turn a priced call's usage into none); the processor
# priced it as reported and flagged it implausible:<count>, and the report counts such calls (implausible_calls).
_MAX_TOKENS = 2**63 - 1
_PRICED = ("priced", "partial", "provided")
# Characters Python's str.strip() removes (str.isspace()): Unicode separators plus the ASCII/C1 controls that
# count as whitespace. RE2 syntax, for replaceRegexpAll.
_WS = r"[\pZ\t\n\x0b\x0c\r\x1c-\x1f\x{85}]"
# Settings every query runs with. prefer_column_name_to_alias: the rollups write `coalesce(sum(x), 0) AS x`,
# which ClickHouse would otherwise read as an aggregate inside an aggregate.
_SETTINGS = {"prefer_column_name_to_alias": 1}
_REQUIRED_COLUMNS = ("Timestamp", "TraceId", "SpanId", "ParentSpanId", "SpanName", "SpanKind", "ServiceName",
                     "SpanAttributes", "Duration", "StatusCode")


# ------------------------------------------------------------------------------------------------- URLs


@dataclass(frozen=True)
class ClickHouseTarget:
    """A parsed ``clickhouse://`` / ``clickhouses://`` / ``chdb://`` URL. ``password`` never appears in repr."""

    scheme: str
    host: str | None = None
    port: int | None = None
    user: str = "default"
    password: str = field(default="", repr=False)
    database: str = DEFAULT_DATABASE
    table: str = DEFAULT_TABLE
    path: str | None = None  # chdb: the data directory; None = in memory

    @property
    def secure(self) -> bool:
        return self.scheme == "clickhouses"

    def display(self) -> str:
        """Where this points, for messages (no password)."""
        if self.scheme == "chdb":
            return f"chdb://{self.path or ''} (table {self.database}.{self.table})"
        proto = "https" if self.secure else "http"
        return f"{proto}://{self.host}:{self.port} as {self.user} (table {self.database}.{self.table})"


def is_source_url(text: str) -> bool:
    """True if ``text`` looks like a URL :func:`parse_url` accepts rather than a ledger file path."""
    return text.split(":", 1)[0].lower() in _SCHEMES and "://" in text


def parse_url(url: str) -> ClickHouseTarget:
    """Parse a source URL (forms in the module docstring).

    Raises:
        ConfigurationError: unknown scheme, missing host, bad port, or a database/table name that is not a plain
            identifier; the message shows the accepted forms.
    """
    forms = ("clickhouse://user:password@host:8123/database?table=otel_traces, clickhouses://... (TLS), "
             "chdb:///path/to/dir or chdb:// (in memory)")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ConfigurationError(f"unsupported source {_redact(url)!r}: use {forms}")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(query) - {"table", "database"})
    if unknown:
        raise ConfigurationError(f"unknown option(s) {', '.join(unknown)} in source URL; accepted: table, database")
    table = query.get("table") or DEFAULT_TABLE
    if scheme == "chdb":
        raw = (parts.netloc + parts.path) if parts.netloc else parts.path
        path = unquote(raw) or None
        if path in (":memory:", "/:memory:"):
            path = None
        database = query.get("database") or DEFAULT_DATABASE
        _check_ident(database, "database")
        _check_ident(table, "table")
        return ClickHouseTarget(scheme=scheme, database=database, table=table, path=path)
    if not parts.hostname:
        raise ConfigurationError(f"source {_redact(url)!r} names no host: use {forms}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"source {_redact(url)!r} has an invalid port") from None
    database = unquote(parts.path.lstrip("/")) or query.get("database") or DEFAULT_DATABASE
    _check_ident(database, "database")
    _check_ident(table, "table")
    default_port = 8443 if scheme == "clickhouses" else 8123
    return ClickHouseTarget(scheme=scheme, host=parts.hostname, port=port or default_port,
                            user=unquote(parts.username) if parts.username else "default",
                            password=unquote(parts.password) if parts.password else "", database=database,
                            table=table)


def _check_ident(name: str, what: str) -> None:
    # Names are spliced into SQL (as `quoted` identifiers); allow only what the exporter itself would create.
    if not _IDENT_RE.match(name):
        raise ConfigurationError(f"{what} name {name!r} is not a plain identifier (letters, digits, _)")


def _redact(url: str) -> str:
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


# ------------------------------------------------------------------------------------------------- SQL


def _lit(s: str) -> str:
    """A ClickHouse string literal."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _has(key: str) -> str:
    return f"mapContains(SpanAttributes, {_lit(key)})"


def _get(key: str) -> str:
    return f"SpanAttributes[{_lit(key)}]"


def _trimmed(key: str) -> str:
    """The attribute trimmed like Python's ``str.strip()``; ``''`` when absent (``_t`` holds only read keys)."""
    return f"_t[{_lit(key)}]"


def _text(key: str, limit: int) -> str:
    """A text attribute as ``_usage`` accepts it: at most ``limit`` characters as sent, trimmed, not blank."""
    return f"if(lengthUTF8({_get(key)}) <= {limit} AND {_trimmed(key)} != '', {_trimmed(key)}, NULL)"


def _count(key: str) -> str:
    """A token count as ``_usage`` accepts it: digits only (Go writes integral doubles without a point), at most
    2**63 - 1. Typed Int128, so that sums of huge (implausible) counts cannot wrap around as Int64 sums would
    (DuckDB sums the ledger's BIGINT counts as HUGEINT)."""
    t = _trimmed(key)
    return (f"if(match({t}, '^[0-9]{{1,19}}$') AND toUInt64OrNull({t}) <= {_MAX_TOKENS}, "
            f"toInt128(toUInt64OrNull({t})), NULL)")


def _pylist(col: Any) -> list[Any]:
    """An Arrow result column as Python values. chDB's Arrow output writes Int128 (token counts and their sums,
    see :func:`_count`) as 16-byte little-endian binary: read back as ints (no other column here has that type;
    clickhouse-connect returns ints itself)."""
    import pyarrow as pa

    t = col.type
    if pa.types.is_fixed_size_binary(t) and t.byte_width == 16:
        return [None if v is None else int.from_bytes(v, "little", signed=True) for v in col.to_pylist()]
    return col.to_pylist()


def _first(exprs: Sequence[str]) -> str:
    return exprs[0] if len(exprs) == 1 else f"coalesce({', '.join(exprs)})"


def money_sql(text: str) -> str:
    """SQL turning the exporter's text of a cost into ``Nullable(Decimal(38, 18))``, as the ledger does.

    The ledger writes ``CAST(CAST(float AS VARCHAR) AS DECIMAL(38,18))``: the shortest round-trip digits of the
    float, rounded half away from zero at 18 places. The exporter's text (Go's ``'f'``/``'e'`` shortest form)
    has the same digits, so parse them exactly at scale 40 (``toDecimal128OrNull`` would truncate past 18
    places) and round the same way. Negative, NaN, infinite, unparsable or missing text gives NULL, like
    ``_ledger._dec``; so does a value too large for the column (10**20 or more), which DuckDB would refuse.
    """
    wide = f"toDecimal256OrNull({text}, 40)"
    return f"if({wide} >= 0 AND {wide} < 100000000000000000000, toDecimal128(round({wide}, 18), 18), NULL)"


def _str_or_none(key: str, limit: int = 256) -> str:
    return f"if({_has(key)}, substringUTF8({_get(key)}, 1, {limit}), NULL)"


def _attribution_value(key: str) -> str:
    """An attribution column cut as :func:`otel_costattr.attributes.cut_value` cuts it (a long value keeps a
    short hash of itself), so the same ids group the same way here as in the ledger."""
    v, limit, digits = _get(key), A.MAX_VALUE_LENGTH, 8
    cut = f"concat(substringUTF8({v}, 1, {limit - digits - 1}), '~', substring(lower(hex(SHA256({v}))), 1, {digits}))"
    return f"if({_has(key)}, if(lengthUTF8({v}) <= {limit}, {v}, {cut}), NULL)"


def spans_sql(table_ref: str, *, has_scope_column: bool = True) -> str:
    """The ``spans`` relation (ledger columns, in ``_ledger.COLUMNS`` order) over an ``otel_traces`` table.

    Three nested SELECTs: the first trims the few attributes the usage rules read (once per value, into the
    map ``_t``), the second reads every quantity, the third derives what depends on several (``is_llm``,
    the cache-write split, ``usage_detail``); the outer one ranks spans of the same call and picks ``counted``.
    """
    rank = ("row_number() OVER (PARTITION BY is_llm, response_id, coalesce(lowerUTF8(provider), '') ORDER BY "
            "coalesce(cost_status, '') = 'duplicate', coalesce(usage_detail, 0) DESC, cost_total IS NULL, end_ns, "
            "span_id) AS _rn")
    # A span with usage that supersedes its twin without usage (which ended first, as no_usage) names it in
    # gen_ai.cost.supersedes. Matched by span id, as the ledger does. A scalar subquery, run once per query over
    # the rows that carry the key (the exporter's bloom filter on attribute keys skips the rest): a window over
    # all rows took the relation 1.13-1.25x as long over 300k spans.
    sup = _lit(A.COST_SUPERSEDES)
    superseded = (f"(SELECT groupUniqArray(SpanAttributes[{sup}]) FROM {table_ref} WHERE mapContains(SpanAttributes, "
                  f"{sup}) AND {_get(A.COST_STATUS)} != 'duplicate' AND {_get(A.COST_DUPLICATE_OF)} = '')")
    counted = ("is_llm AND coalesce(cost_status, '') != 'duplicate' AND (response_id IS NULL OR _rn = 1) "
               f"AND NOT has({superseded}, span_id) AS counted")
    final = ", ".join(counted if n == "counted" else n for n, _ in COLUMNS)
    return (f"SELECT {final}\nFROM (SELECT *, {rank}\n  FROM (SELECT {_derived_columns()}\n"
            f"    FROM (SELECT {_read_columns(has_scope_column)}\n      FROM ({_trimmed_reads(table_ref)}))))")


_TEXT_Q = ("operation", "provider", "request_model", "response_model", "response_id")
_COUNT_Q = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_5m_tokens",
            "cache_write_1h_tokens", "reasoning_tokens", "input_audio_tokens", "output_audio_tokens")


def _trimmed_reads(table_ref: str) -> str:
    """Level 0: every row, plus ``_t``, the attributes the usage rules read, trimmed once per value."""
    read = sorted({k for q in (*_TEXT_Q, *_COUNT_Q) for k in READ[q]} | {"http.request.resend_count"})
    trim_re = _lit(f"^{_WS}+|{_WS}+$")
    return (f"SELECT *, mapApply((k, v) -> (k, replaceRegexpAll(v, {trim_re}, '')), mapFilter((k, v) -> "
            f"has([{', '.join(map(_lit, read))}], k), SpanAttributes)) AS _t FROM {table_ref}")


def _read_columns(has_scope_column: bool) -> str:
    """Level 1: every quantity read from one attribute (or the first of its aliases) or one column."""
    excluded = sorted(_MAPPED | CONTENT_KEYS)
    keep = (f"mapFilter((k, v) -> NOT has([{', '.join(_lit(k) for k in excluded)}], k) AND NOT "
            f"({' OR '.join(f'startsWith(k, {_lit(p)})' for p in _CONTENT_PREFIXES)}), SpanAttributes)")
    flags = _get(A.COST_FLAGS)
    resend = _trimmed("http.request.resend_count")
    return ",\n    ".join([
        "TraceId AS trace_id", "SpanId AS span_id", "nullIf(ParentSpanId, '') AS parent_span_id",
        "toString(SpanName) AS name",
        # The exporter writes pdata's names (Client, Ok); older ones wrote the proto's (SPAN_KIND_CLIENT).
        "upper(replaceRegexpOne(toString(SpanKind), '^SPAN_KIND_', '')) AS kind",
        "nullIf(toString(ServiceName), '') AS service_name",
        ("nullIf(ScopeName, '')" if has_scope_column else "CAST(NULL AS Nullable(String))") + " AS scope_name",
        "toUnixTimestamp64Nano(Timestamp) AS start_ns",
        "toUnixTimestamp64Nano(Timestamp) + toInt64(Duration) AS end_ns",
        "upper(replaceRegexpOne(toString(StatusCode), '^STATUS_CODE_', '')) AS status_code",
        f"{_str_or_none('error.type')} AS error_type",
        *(f"{_first([_text(k, _TEXT_LIMITS[q]) for k in READ[q]])} AS _{q}" for q in _TEXT_Q),
        *(f"{_first([_count(k) for k in READ[q]])} AS _{q}" for q in _COUNT_Q),
        f"if({_has(A.COST_STATUS)}, {_get(A.COST_STATUS)}, NULL) AS _status",
        # the column keeps gen_ai.response.model as sent (the ledger's rule), whatever _usage made of it
        f"if({_has('gen_ai.response.model')}, {_get('gen_ai.response.model')}, NULL) AS response_model",
        f"if(_status IN ({', '.join(map(_lit, _PRICED))}), {money_sql(_get(A.COST_TOTAL))}, NULL) AS cost_total",
        f"{money_sql(_get(A.COST_INPUT))} AS cost_input", f"{money_sql(_get(A.COST_OUTPUT))} AS cost_output",
        f"{money_sql(_get(A.COST_CACHE_READ))} AS cost_cache_read",
        f"{money_sql(_get(A.COST_CACHE_WRITE))} AS _cw", f"{money_sql(_get(A.COST_CACHE_WRITE_1H))} AS _cw1h",
        f"{_has(A.COST_CACHE_WRITE)} AS _has_cw",
        f"{money_sql(_get(A.COST_REASONING))} AS cost_reasoning", f"{money_sql(_get(A.COST_TOOL_USAGE))} AS cost_tool",
        f"{_str_or_none(A.COST_MODEL)} AS pricing_model", f"{_str_or_none(A.COST_PRICING_VERSION)} AS pricing_version",
        f"{_str_or_none(A.COST_PROVIDER)} AS pricing_provider",
        *(f"if(match({_get(k)}, '^[0-9]{{1,13}}$'), toInt64OrNull({_get(k)}), NULL) AS {col}"
          for k, col in ((A.COST_LAYER_PROMPT_TOKENS, "layer_prompt_tokens"),
                         (A.COST_LAYER_TOOL_TOKENS, "layer_tool_tokens"),
                         (A.COST_LAYER_MEMORY_TOKENS, "layer_memory_tokens"))),
        f"{_str_or_none(A.COST_LAYER_SOURCE)} AS layer_source",
        f"{money_sql(_get(A.COST_LAYER_PROMPT))} AS cost_layer_prompt",
        f"{money_sql(_get(A.COST_LAYER_TOOL))} AS cost_layer_tool",
        f"{money_sql(_get(A.COST_LAYER_MEMORY))} AS cost_layer_memory",
        # the ledger's column: on a duplicate the span carrying the call, on another span the twin it supersedes
        f"if({_has(A.COST_DUPLICATE_OF)}, {_str_or_none(A.COST_DUPLICATE_OF)}, if({_get(A.COST_STATUS)} != "
        f"'duplicate', {_str_or_none(A.COST_SUPERSEDES)}, NULL)) AS duplicate_of",
        # A string array arrives as JSON text; the ledger joins it with commas.
        f"if({_has(A.COST_FLAGS)}, if(startsWith({flags}, '['), arrayStringConcat(JSONExtract({flags}, "
        f"'Array(String)'), ','), {flags}), NULL) AS cost_flags",
        f"if(match({resend}, '^-?[0-9]{{1,10}}$'), toInt32OrNull({resend}), NULL) AS resend_count",
        *(f"{_attribution_value(k)} AS {k}" for k in ATTRIBUTION_COLUMNS),
        f"{keep} AS attributes",
    ])


def _derived_columns() -> str:
    """Level 2: what depends on several reads (``is_llm``, the cache-write split, ``usage_detail``)."""
    ops_llm = ", ".join(map(_lit, sorted(LLM_OPERATIONS)))
    ops_not = ", ".join(map(_lit, sorted(NON_LLM_OPERATIONS)))
    split = "(_cache_write_5m_tokens IS NOT NULL OR _cache_write_1h_tokens IS NOT NULL)"
    return ",\n    ".join([
        "*",
        "_operation AS operation", "_provider AS provider", "_request_model AS request_model",
        "_response_id AS response_id",
        f"multiIf(_operation IN ({ops_llm}), true, _operation IN ({ops_not}), false, "
        "coalesce(_response_model, _request_model) IS NOT NULL AND (_input_tokens IS NOT NULL OR _output_tokens IS "
        "NOT NULL OR _response_id IS NOT NULL OR _provider IS NOT NULL)) AS is_llm",
        "_input_tokens AS input_tokens", "_output_tokens AS output_tokens", "_cache_read_tokens AS cache_read_tokens",
        # The TTL split wins over the total; the total only fills a missing 5m half (_usage.read_call).
        f"if({split}, coalesce(_cache_write_5m_tokens, greatest(coalesce(_cache_write_tokens, 0) - "
        "coalesce(_cache_write_1h_tokens, 0), 0)), _cache_write_tokens) AS cache_write_tokens",
        f"if({split}, coalesce(_cache_write_1h_tokens, 0), NULL) AS cache_write_1h_tokens",
        "_reasoning_tokens AS reasoning_tokens",
        f"if(is_llm, toInt32((_input_tokens IS NOT NULL) + (_output_tokens IS NOT NULL) + if({split}, 2, 0) + "
        "(_cache_read_tokens IS NOT NULL) + (_cache_write_tokens IS NOT NULL) + (_reasoning_tokens IS NOT NULL) + "
        "(_input_audio_tokens IS NOT NULL) + (_output_audio_tokens IS NOT NULL)), NULL) AS usage_detail",
        "if(is_llm, _status, NULL) AS cost_status",
        # _ledger._sum_dec: the short-TTL and 1h halves added (either alone if the other is missing)
        "if(_has_cw, if(_cw IS NULL OR _cw1h IS NULL, coalesce(_cw, _cw1h), _cw + _cw1h), NULL) AS cost_cache_write",
    ])


# ------------------------------------------------------------------------------------------------ source


class ClickHouseSource:
    """The rollup source over a ClickHouse ``otel_traces`` table (``dialect = "clickhouse"``).

    Give a URL (see :func:`parse_url`), or a ready ``session`` (``chdb.session.Session``) or ``client``
    (``clickhouse_connect`` client) with ``database``/``table``. Nothing is written to the server's databases.

    With ``snapshot=True`` (the default) the first query copies the ``spans`` relation into a session-scoped
    ``TEMPORARY`` table, and every later query reads that copy: a report's sections then come from one
    consistent snapshot while the exporter keeps inserting, and the attribute mapping and de-duplication
    window run once per report instead of once per query (a report is about 15 queries). Where temporary
    tables are not allowed (``readonly=1`` users, no HTTP session), or with ``snapshot=False``, each query
    maps ``otel_traces`` live. :meth:`refresh` takes a new snapshot; :meth:`close` drops it.

    Raises:
        ConfigurationError: clickhouse-connect or chdb is not installed, the server cannot be reached, or the
            table is missing or not in the exporter's map layout; each message names the fix.
    """

    dialect = "clickhouse"

    def __init__(self, url: str | None = None, *, session: Any = None, client: Any = None,
                 database: str = DEFAULT_DATABASE, table: str = DEFAULT_TABLE, snapshot: bool = True) -> None:
        if sum(x is not None for x in (url, session, client)) != 1:
            raise ValueError("pass exactly one of url, session or client")
        self._owned = False
        self._session = session
        self._client = client
        if url is not None:
            self.target = parse_url(url)
            if self.target.scheme == "chdb":
                self._session = _open_chdb(self.target)
            else:
                self._client = _open_client(self.target)
            self._owned = True
        else:
            _check_ident(database, "database")
            _check_ident(table, "table")
            self.target = ClickHouseTarget(scheme="chdb" if session is not None else "clickhouse",
                                           database=database, table=table)
        self.table_ref = f"`{self.target.database}`.`{self.target.table}`"
        try:
            columns = self._columns()
        except BaseException:
            self.close()
            raise
        self._spans_sql = spans_sql(self.table_ref, has_scope_column="ScopeName" in columns)
        self._live_prelude = (f"WITH spans AS ({self._spans_sql}),\n"
                              "calls AS (SELECT * FROM spans WHERE is_llm AND counted)\n")
        self._want_snapshot = snapshot
        self._snapshot: str | None = None
        self._prelude: str | None = None

    def _columns(self) -> dict[str, str]:
        rows = self._run("SELECT name, type FROM system.columns WHERE database = {db} AND table = {t}".format(
            db=_lit(self.target.database), t=_lit(self.target.table)))
        cols = {str(n): str(t) for n, t in rows}
        if not cols:
            raise ConfigurationError(
                f"no table {self.target.database}.{self.target.table} at {self.target.display()}: point the source "
                "at the clickhouse exporter's traces table (URL path = database, ?table=NAME = its "
                "traces_table_name; defaults: default / otel_traces)")
        missing = [c for c in _REQUIRED_COLUMNS if c not in cols]
        if missing:
            raise ConfigurationError(f"{self.target.database}.{self.target.table} is not an otel_traces table (no "
                                     f"{', '.join(missing)} column)")
        if not cols["SpanAttributes"].startswith("Map("):
            raise ConfigurationError(
                f"{self.target.database}.{self.target.table} stores SpanAttributes as {cols['SpanAttributes']}: only "
                "the exporter's default map layout is supported (not `json: true`)")
        return cols

    # ------------------------------------------------------------------------------------------ querying

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a rollup query (``?`` placeholders, the ledger's style) over the ``spans``/``calls`` relations."""
        body = bind_params(sql, params or ())
        prelude = self._prelude if self._prelude is not None else self._prepare()
        stripped = body.lstrip()
        if stripped[:5].upper() == "WITH ":  # one WITH clause per query: merge ours in front of the caller's
            text = prelude.rstrip() + ",\n" + stripped[5:]
        else:
            text = prelude + body
        return self._run(text)

    @property
    def snapshot_table(self) -> str | None:
        """The temporary table holding the snapshot, or None when queries map ``otel_traces`` live."""
        if self._prelude is None:
            self._prepare()
        return self._snapshot

    def refresh(self) -> None:
        """Take a new snapshot (spans exported since the last one become visible)."""
        self._drop_snapshot()
        self._prepare()

    def _prepare(self) -> str:
        self._prelude = self._live_prelude
        if self._want_snapshot:
            name = f"otel_costattr_spans_{uuid.uuid4().hex[:16]}"
            try:
                self._run(f"CREATE TEMPORARY TABLE {name} ENGINE = Memory AS {self._spans_sql}")
            except ConfigurationError as exc:  # not allowed here: fall back to live queries
                logger.debug("no snapshot table on %s (%s); querying otel_traces live", self.target.display(), exc)
            else:
                self._snapshot = name
                self._prelude = (f"WITH spans AS (SELECT * FROM {name}),\n"
                                 f"calls AS (SELECT * FROM {name} WHERE is_llm AND counted)\n")
        return self._prelude

    def _drop_snapshot(self) -> None:
        if self._snapshot is not None:
            name, self._snapshot = self._snapshot, None
            try:
                self._run(f"DROP TEMPORARY TABLE IF EXISTS {name}")
            except ConfigurationError:  # the session that held it is gone, and the table with it
                pass
        self._prelude = None

    def _run(self, sql: str) -> list[tuple[Any, ...]]:
        settings = ", ".join(f"{k} = {v}" for k, v in _SETTINGS.items())
        if self._session is not None:
            from chdb import ChdbError  # a session was given or opened, so chdb is importable

            try:
                table = self._session.query(f"{sql}\nSETTINGS {settings}", "ArrowTable")
            except ChdbError as exc:
                raise ConfigurationError(f"ClickHouse query failed at {self.target.display()}: {_short(exc)}") from None
            return list(zip(*map(_pylist, table.columns))) if table.num_columns else []
        from clickhouse_connect.driver.exceptions import ClickHouseError

        try:
            return [tuple(r) for r in self._client.query(sql, settings=dict(_SETTINGS)).result_rows]
        except ClickHouseError as exc:
            raise ConfigurationError(f"ClickHouse query failed at {self.target.display()}: {_short(exc)}") from None

    def close(self) -> None:
        """Drop the snapshot, and close the connection if this source opened it (one passed in stays open)."""
        if getattr(self, "_snapshot", None) is not None:
            self._drop_snapshot()
        if not self._owned:
            return
        try:
            if self._client is not None:
                self._client.close()
            elif self._session is not None:
                self._session.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass

    def __enter__(self) -> ClickHouseSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _short(exc: BaseException, limit: int = 600) -> str:
    """The server's message without the (very long) query text it quotes back."""
    text = re.split(r"\. In scope | In scope |\nQuery:|, query: ", str(exc), maxsplit=1)[0].strip()
    return text if len(text) <= limit else text[:limit] + " ..."


def bind_params(sql: str, params: Sequence[Any]) -> str:
    """Replace each ``?`` outside quotes with the next parameter as a ClickHouse literal.

    The rollups pass only numbers (time bounds), so client-side literals are safe and work the same on chDB
    (no parameter binding) and over HTTP.

    Raises:
        ValueError: the number of ``?`` and of parameters differ, or a parameter has an unsupported type.
    """
    out: list[str] = []
    it = iter(params)
    used = 0
    quote: str | None = None
    i = 0
    while i < len(sql):
        ch = sql[i]
        if quote:
            out.append(ch)
            if ch == "\\" and i + 1 < len(sql):
                out.append(sql[i + 1])
                i += 1
            elif ch == quote:
                quote = None
        elif ch in ("'", '"', "`"):
            quote = ch
            out.append(ch)
        elif ch == "?":
            try:
                value = next(it)
            except StopIteration:
                raise ValueError("more ? placeholders than parameters") from None
            out.append(_param(value))
            used += 1
        else:
            out.append(ch)
        i += 1
    if used != len(params):
        raise ValueError(f"{len(params)} parameters for {used} ? placeholders")
    return "".join(out)


def _param(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return f"toDecimal128({_lit(format(value, 'f'))}, 18)"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _lit(value)
    raise ValueError(f"unsupported query parameter type {type(value).__name__}")


def _open_chdb(target: ClickHouseTarget) -> Any:
    try:
        from chdb.session import Session
    except ImportError:
        raise ConfigurationError("chdb:// sources need chDB: pip install chdb") from None
    if target.path is not None:
        from pathlib import Path

        if not Path(target.path).is_dir():
            raise ConfigurationError(f"chDB directory {target.path} does not exist; pass the directory your "
                                     "chdb.session.Session(path) wrote, e.g. chdb:///var/lib/otel-chdb")
    return Session(target.path) if target.path is not None else Session()


def _open_client(target: ClickHouseTarget) -> Any:
    try:
        import clickhouse_connect
    except ImportError:
        raise ConfigurationError("clickhouse:// sources need clickhouse-connect: pip install "
                                 "'otel-costattr[clickhouse]' (or pip install clickhouse-connect)") from None
    # The driver logs a warning of its own before raising; our error says it better, once.
    driver_log = logging.getLogger("clickhouse_connect")
    level = driver_log.level
    driver_log.setLevel(logging.ERROR)
    try:
        return clickhouse_connect.get_client(host=target.host, port=target.port, username=target.user,
                                             password=target.password, database=target.database,
                                             secure=target.secure, connect_timeout=10,
                                             send_receive_timeout=300)
    except Exception as exc:  # noqa: BLE001 - connection errors come in several driver and socket types
        raise ConfigurationError(
            f"cannot reach ClickHouse at {target.display()}: {_reason(exc, target.password)}. Check that the server "
            "is running, that host and port are its HTTP interface (8123, or 8443 with clickhouses://), and the "
            "user and password") from None
    finally:
        driver_log.setLevel(level)


def _reason(exc: BaseException, password: str) -> str:
    """The useful part of a driver error: the socket error if there is one (urllib3 nests it deep)."""
    text = str(exc)
    if password:
        text = text.replace(password, "***")
    sock = re.search(r"\[Errno -?\d+\] [^\"')\]]+", text)
    if sock:
        return sock.group(0).strip()
    text = _short(Exception(text))
    return text.splitlines()[0][:300] if text else type(exc).__name__


def open_source(url: str) -> ClickHouseSource:
    """A :class:`ClickHouseSource` for a ``clickhouse://``, ``clickhouses://`` or ``chdb://`` URL."""
    return ClickHouseSource(url)
