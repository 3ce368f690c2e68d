"""The pricing engine: a :class:`PriceBook` built from pricing files, and :func:`price`.

Money is exact. Rates are per-token :class:`~decimal.Decimal`; every multiplication and sum runs in a private
decimal context that traps inexact results, so a cost can never be silently rounded (and a user's global
decimal context cannot change our numbers). Floats appear only at the span-attribute boundary, elsewhere.

Layers, highest precedence first: user overlays (``--pricing`` / ``OTEL_COSTATTR_PRICING``), the curated
vendor files in ``pricing/``, then the imported LiteLLM layer. At each resolution step (see
:mod:`otel_costattr._pricing._resolve`) a higher layer wins, so a curated exact match beats an imported one, but an
imported exact match (``gpt-4o-2024-05-13``) beats a curated date-stripped guess (``gpt-4o``).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Context, Decimal, Inexact, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .._errors import PricingError
from ._schema import (
    CACHE_CLASSES,
    FALLBACKS,
    TOKEN_CLASSES,
    Deployment,
    Discount,
    Document,
    ModelEntry,
    Period,
    ProviderTable,
    load_file,
    parse_document,
    read_file,
)
from ._resolve import BEDROCK_NAMESPACES, FIRST_PARTY, GEO_PREFIXES, ROUTING_PREFIXES, candidates, vendor_of

__all__ = ["Cost", "PriceBook", "SERVICE_TIERS", "default_book", "format_money", "price"]

logger = logging.getLogger(__name__)

ENV_PRICING = "OTEL_COSTATTR_PRICING"
SERVICE_TIERS = ("standard", "batch", "flex", "priority")
# Values vendors report that mean "standard pricing".
_STANDARD_ALIASES = frozenset({"", "standard", "default", "auto", "on_demand", "scale"})
_CORE_COMPONENTS = ("input", "cache_read", "cache_write", "output", "reasoning")
#: Curated providers searched, in this order, when a call names no provider.
PROVIDER_ORDER = ("openai", "anthropic", "gemini", "xai", "deepseek", "mistral", "vertex_ai", "bedrock", "azure")

_CTX = Context(prec=60, traps=[Inexact, InvalidOperation])
_mul = _CTX.multiply
_add = _CTX.add
_ZERO = Decimal(0)
_ONE = Decimal(1)
_HUNDRED = Decimal(100)

_COUNT_NAMES = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "output_tokens",
                "reasoning_tokens", "input_audio_tokens", "output_audio_tokens", "input_image_tokens",
                "output_image_tokens", "web_search_calls")
_OUTPUT_COUNTS = frozenset({"output_tokens", "reasoning_tokens", "output_audio_tokens", "output_image_tokens"})
_RESOLVE_CACHE_MAX = 4096
_RATES_CACHE_MAX = 4096


def format_money(d: Decimal | None) -> str | None:
    """Exact decimal string without exponent or trailing zeros (``Decimal('7.5E-8')`` -> ``'0.000000075'``)."""
    if d is None:
        return None
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("", "-0") else s


def _units_to_decimal(units: int, scale: int) -> Decimal:
    # The string constructor is exact whatever the current decimal context says.
    return Decimal(f"{units}E-{scale}") if scale else Decimal(units)


def _split(d: Decimal) -> tuple[int, int]:
    """``d`` as ``(m, e)`` with ``d == m * 10**-e`` and ``e >= 0``; exact."""
    sign, digits, exp = d.as_tuple()
    m = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    if exp >= 0:
        return m * 10 ** exp, 0
    return m, -exp


class Cost:
    """The price of one call.

    ``components`` are disjoint and sum exactly to ``total``. ``total`` is ``None`` when the call could not
    be priced (``status == "unpriced"``): unknown is never reported as zero. ``flags`` records every rule and
    assumption that shaped the number (``long_context:>200000``, ``service_tier:batch``,
    ``fallback:reasoning``, ``clamped:input`` ...).

    Money is held as exact integers of ``10**-scale`` USD and turned into :class:`~decimal.Decimal` on first
    access, because one ``Cost`` is built per span and most are only ever read as floats
    (:meth:`total_float`). Instances are immutable by contract.
    """

    # No __slots__: the rarely set fields (reason, discount, the exact-decimal cache) default on the class, so
    # the per-span constructor (:func:`_priced`) sets only what every priced call has.
    currency = "USD"
    reason: str | None = None
    discount_percent: Decimal | None = None
    _provider: str | None = None
    _list_units: int | None = None
    _dec: dict[str, Decimal] | None = None

    def __init__(self, status: str, requested_model: str, entry: ModelEntry | None = None,
                 period: Period | None = None, units: dict[str, int] | None = None, total_units: int | None = None,
                 scale: int = 0, flags: tuple[str, ...] = (), reason: str | None = None, provider: str | None = None,
                 list_units: int | None = None, discount_percent: Decimal | None = None) -> None:
        self.status = status
        self.requested_model = requested_model
        self._entry = entry
        self._period = period
        self._units = units
        self._total = total_units
        self._scale = scale
        self.flags = flags
        if reason is not None:
            self.reason = reason
        if provider is not None:
            self._provider = provider
        if list_units is not None:
            self._list_units = list_units
        if discount_percent is not None:
            self.discount_percent = discount_percent

    # identity and provenance
    @property
    def priced(self) -> bool:
        return self.status == "priced"

    @property
    def provider(self) -> str | None:
        return self._entry.provider if self._entry is not None else self._provider

    @property
    def model(self) -> str | None:
        return self._entry.id if self._entry is not None else None

    @property
    def pricing_version(self) -> str | None:
        return self._entry.version if self._entry is not None else None

    @property
    def origin(self) -> str | None:
        return self._entry.origin if self._entry is not None else None

    @property
    def source(self) -> str | None:
        return self._entry.source if self._entry is not None else None

    @property
    def effective_from(self) -> datetime | None:
        return self._period.effective_from if self._period is not None else None

    # money
    @property
    def total(self) -> Decimal | None:
        if self._total is None:
            return None
        return _units_to_decimal(self._total, self._scale)

    @property
    def components(self) -> dict[str, Decimal]:
        if self._units is None:
            return {}
        if self._dec is None:
            self._dec = {k: _units_to_decimal(v, self._scale) for k, v in self._units.items()}
        return dict(self._dec)

    @property
    def list_total(self) -> Decimal | None:
        return None if self._list_units is None else _units_to_decimal(self._list_units, self._scale)

    def total_float(self) -> float | None:
        """``total`` as the nearest float (for span attributes and metrics), without building a Decimal."""
        return None if self._total is None else self._total / 10 ** self._scale

    def sum_float(self, names: Any) -> float:
        """The exact sum of the named components, as the nearest float (0.0 for absent ones)."""
        if not self._units:
            return 0.0
        u = self._units
        return sum(u.get(n, 0) for n in names) / 10 ** self._scale

    def component_floats(self) -> dict[str, float]:
        """Each component as the nearest float."""
        if not self._units:
            return {}
        d = 10 ** self._scale
        return {k: v / d for k, v in self._units.items()}

    def __repr__(self) -> str:
        return (f"Cost(status={self.status!r}, provider={self.provider!r}, model={self.model!r}, "
                f"total={format_money(self.total)!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Cost):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``otel-costattr price --json`` (money as decimal strings)."""
        out: dict[str, Any] = {
            "status": self.status,
            "provider": self.provider,
            "model": self.model,
            "requested_model": self.requested_model,
            "currency": self.currency,
            "total": format_money(self.total),
            "components": {k: format_money(v) for k, v in self.components.items()},
            "effective_from": self.effective_from.isoformat() if self.effective_from else None,
            "pricing_version": self.pricing_version,
            "origin": self.origin,
            "source": self.source,
            "flags": list(self.flags),
        }
        if self.reason:
            out["reason"] = self.reason
        if self.discount_percent is not None:
            out["discount_percent"] = format_money(self.discount_percent)
            out["list_total"] = format_money(self.list_total)
        return out


_FALLBACK_FLAGS = {cls: f"fallback:{cls}" for cls in TOKEN_CLASSES}
_UNPRICED = "unpriced:"
_NO_LIMIT_ = 1 << 126
#: The bound on any token count of a call when the model's own limits are unknown (flag ``implausible:``).
DEFAULT_TOKEN_BOUND = 10**8


class _Plan:
    """Everything needed to price a (model, provider, service tier, region) below any long-context threshold
    in one period: the per-span fast path. Built by the general path, never by hand."""

    __slots__ = ("entry", "period", "start_ns", "end_ns", "max_prompt", "max_out", "scale", "flags",
                 "fb", "r0", "r1", "r2", "r3", "r4", "r5", "f1", "f2", "f5", "fb_other")

    def __init__(self, entry: ModelEntry, period: Period, max_prompt: int, rates: tuple[int, ...], scale: int,
                 notes: Mapping[str, str], flags: tuple[str, ...], max_out: int = _NO_LIMIT_) -> None:
        self.entry = entry
        self.period = period
        self.start_ns = period.start_ns
        self.end_ns = period.end_ns if period.end_ns is not None else 1 << 126
        self.max_prompt = max_prompt
        self.max_out = max_out
        self.scale = scale
        self.flags = flags
        # (position in the disjoint-count tuple, flag) for each of the six common classes that is priced by a
        # fallback or a vendor cache multiplier, or not priced at all ("unpriced:")
        self.fb = tuple((i, notes[c]) for i, c in enumerate(TOKEN_CLASSES[:6]) if c in notes)
        # The same, unrolled for price()'s inlined path (no 1h writes there): cache read, cache write and
        # reasoning are the classes that can borrow another class's rate; `fb_other` covers anything else,
        # including a class with no rate (the call is then "partial", built by _price_planned).
        by_index = dict(self.fb)
        self.f1, self.f2, self.f5 = ((by_index[i],) if i in by_index else None for i in (1, 2, 5))
        self.fb_other = any(i not in (1, 2, 3, 5) or f.startswith(_UNPRICED) for i, f in by_index.items())
        self.r0, self.r1, self.r2, self.r3, self.r4, self.r5 = rates[:6]


_time_ns = time.time_ns
_new = object.__new__
_NO_LIMIT = 1 << 126
_FLAG_ORDER = ("deployment:", "resolved:", "geo:", "provider_fallback:", "resold:", "clamped:", "implausible:",
               "long_context:", "service_tier:", "time_window:", "geo_unlisted:", "region:",
               ("fallback:", "cache_multiplier:", "unpriced:"))  # per-class notes: one rank, class order


def _merge_flags(base: tuple[str, ...], extra: list[str]) -> tuple[str, ...]:
    """Insert per-call flags where the general path would have put them, so both paths agree exactly."""
    def rank(f: str) -> int:
        for i, p in enumerate(_FLAG_ORDER):
            if f.startswith(p):
                return i
        return len(_FLAG_ORDER)
    return tuple(sorted(base + tuple(extra), key=rank))


@dataclass(frozen=True, slots=True)
class _Resolution:
    entry: ModelEntry
    geo: str | None
    region: str | None
    flags: tuple[str, ...]


def _builtin_dir() -> Path:
    """The shipped pricing folder: inside the wheel, or the repository's ``pricing/`` in a source checkout."""
    try:
        packaged = Path(str(resources.files("otel_costattr") / "pricing"))
        if packaged.is_dir():
            return packaged
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - zipped installs
        pass
    return Path(__file__).resolve().parents[2] / "pricing"  # otel_costattr/_pricing/_book.py -> the repo root


def _to_ns(at: Any) -> int:
    if at is None:
        return time.time_ns()
    if isinstance(at, bool):
        raise PricingError("`at` must be a datetime, ISO-8601 string or epoch nanoseconds, not a bool")
    if isinstance(at, int):
        return at
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at.strip().replace("Z", "+00:00"))
        except ValueError:
            raise PricingError(f"`at` {at!r} is not ISO-8601 (e.g. 2025-06-10T12:00:00Z)") from None
    if isinstance(at, datetime):
        if at.tzinfo is None:
            at = at.replace(tzinfo=timezone.utc)
        delta = at - datetime(1970, 1, 1, tzinfo=timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    raise PricingError(f"`at` must be a datetime, ISO-8601 string or epoch nanoseconds, not {type(at).__name__}")


def _count(name: str, value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise PricingError(f"`{name}` must be a non-negative integer token count, not {value!r}")
    if value < 0:
        raise PricingError(f"`{name}` must be >= 0, got {value}")
    return value



_NAME_TOKENS = re.compile(r"[-._:@/]+")


def _tokens(name: str) -> frozenset[str]:
    return frozenset(t for t in _NAME_TOKENS.split(name) if t)


class _NameIndex:
    """One vendor's model names by token, to name the nearest entries in an unpriced reason (:meth:`near`)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.tokens: dict[str, frozenset[str]] = {n: _tokens(n) for n in names}
        self.by_token: dict[str, list[str]] = {}
        for n, toks in self.tokens.items():
            for t in toks:
                self.by_token.setdefault(t, []).append(n)

    def near(self, name: str, n: int = 3, cutoff: float = 0.5) -> list[str]:
        """Up to ``n`` names nearest ``name`` by their tokens (split on ``- . _ : @ /``): the share of tokens in
        common (Jaccard), at least ``cutoff``; ties go to the name closer in length, then alphabetical order.

        Tokens, not characters: ``claude-4-opus`` is nearest ``claude-opus-4``. And cheap, because every distinct
        unknown model name comes here once (a client sending random names included): only names sharing a token
        are scored, where difflib's character ratios over a vendor's table cost about 2 ms a name.
        """
        want = _tokens(name)
        common: dict[str, int] = {}
        for t in want:
            for other in self.by_token.get(t, ()):
                common[other] = common.get(other, 0) + 1
        scored = []
        for other, k in common.items():
            score = k / len(want | self.tokens[other])
            if score >= cutoff:
                scored.append((-score, abs(len(other) - len(name)), other))
        return [other for _, _, other in sorted(scored)[:n]]


class PriceBook:
    """Price tables from the built-in files plus user overlays; thread-safe; prices calls.

    Build with :meth:`load`. Resolution results and compiled rate vectors are cached, each cache bounded
    (``cache_stats()`` reports sizes and evictions).
    """

    def __init__(self, documents: Sequence[Document], imported: Document | None = None,
                 imported_loader: Any = None) -> None:
        self._lock = threading.Lock()
        self._name_index: dict[str | None, _NameIndex] = {}  # per vendor, for unpriced reasons
        self._user: list[ProviderTable] = []
        self._curated: list[ProviderTable] = []
        # Imported-format files given by the user rank below curated entries, like the shipped layer.
        self._user_imported: list[ProviderTable] = []
        self._imported_doc = imported
        self._imported_loader = imported_loader
        self._discounts: dict[tuple[str, str], Discount] = {}
        self._deployments: dict[str, list[Deployment]] = {}
        self._names: dict[str, str] = {}  # provider name (gen_ai.provider.name) -> canonical id
        self.versions: dict[str, str] = {}
        # [[resale]] overlays: gateway -> the vendor it resells ("*": the vendor the model's name belongs to)
        self._resale: dict[str, str] = {}
        self._resale_canonical: dict[str, str] | None = None
        for doc in documents:
            for t in doc.tables:
                if doc.kind == "imported":
                    self._user_imported.append(t)
                else:
                    (self._curated if t.origin == "curated" else self._user).append(t)
            for d in doc.discounts:
                self._discounts[(d.provider, d.model)] = d
            for dep in doc.deployments:
                self._deployments.setdefault(dep.name, []).append(dep)
            for gateway, vendor in doc.resales:
                self._resale[gateway] = vendor
        # Users' files are searched before curated ones; later user files win over earlier ones.
        self._user.reverse()
        order = {p: i for i, p in enumerate(PROVIDER_ORDER)}
        self._curated.sort(key=lambda t: (order.get(t.provider, len(order)), t.provider))
        for t in self._curated + self._user + self._user_imported:
            self._register_names(t)
            self.versions.setdefault(t.provider, t.version)
        self._resolve_cache: dict[tuple[str | None, str], _Resolution | str] = {}
        self._bedrock_ns: frozenset[str] | None = None
        self._prefixes: dict[str, str] | None = None
        self._rates_cache: dict[tuple[int, int, str], tuple[tuple[int, ...], int, frozenset[str]]] = {}
        self._plans: dict[tuple[Any, ...], _Plan] = {}
        # The same plans for standard tier and no region, as model -> provider -> plan: two lookups with cached
        # string hashes are cheaper than building and hashing a 4-tuple on every call.
        self._std_plans: dict[str, dict[str | None, _Plan]] = {}
        self.evictions = {"resolve": 0, "rates": 0, "plans": 0}
        #: Calls priced with a token count above the model's limits (each flagged ``implausible:<count>``).
        self.implausible_calls = 0

    # ------------------------------------------------------------------------------------------ loading

    @classmethod
    def load(cls, files: Iterable[str | os.PathLike[str]] = (), *, builtin: bool = True, imported: bool = True,
             env: bool = True) -> "PriceBook":
        """Load the shipped tables and user overlay ``files`` (then ``$OTEL_COSTATTR_PRICING``).

        Raises:
            PricingError: a file is missing or invalid; the message names file, model and field.
        """
        docs: list[Document] = []
        base = _builtin_dir()
        if builtin:
            for path in sorted(base.glob("*.toml")):
                docs.append(load_file(path, origin="curated"))
        overlay = [str(f) for f in files]
        if env and os.environ.get(ENV_PRICING):
            overlay.extend(p for p in os.environ[ENV_PRICING].split(os.pathsep) if p.strip())
        for f in overlay:
            docs.append(load_file(f))
        loader = None
        imported_path = base / "imported" / "litellm.json"
        if imported and imported_path.is_file():
            def loader(path: Path = imported_path) -> Document:
                return parse_document(read_file(path), file=str(path), origin="imported", lazy=True)
        return cls(docs, imported_loader=loader)

    def _register_names(self, t: ProviderTable) -> None:
        self._names.setdefault(t.provider, t.provider)
        for n in t.provider_names:
            self._names.setdefault(n, t.provider)

    def _imported_tables(self) -> list[ProviderTable]:
        if self._imported_doc is None and self._imported_loader is not None:
            with self._lock:
                if self._imported_doc is None:
                    doc = self._imported_loader()
                    order = {p: i for i, p in enumerate(PROVIDER_ORDER)}
                    doc.tables.sort(key=lambda t: (order.get(t.provider, len(order)), t.provider))
                    for t in doc.tables:
                        self._register_names(t)
                        self.versions.setdefault(t.provider, t.version)
                    self._imported_doc = doc
        shipped = self._imported_doc.tables if self._imported_doc is not None else []
        return self._user_imported + shipped if self._user_imported else shipped

    # --------------------------------------------------------------------------------------- introspection

    def tables(self, *, include_imported: bool = True) -> list[ProviderTable]:
        """Every table, highest precedence first."""
        out = self._user + self._curated
        if include_imported:
            out = out + self._imported_tables()
        return out

    def canonical_provider(self, name: str | None) -> str | None:
        """Our provider id for a ``gen_ai.provider.name`` / ``gen_ai.system`` value, or ``None`` if unknown."""
        if not name:
            return None
        key = name.strip().lower()
        found = self._names.get(key)
        if found is None and self._imported_doc is None and self._imported_loader is not None:
            self._imported_tables()
            found = self._names.get(key)
        return found

    def cache_stats(self) -> dict[str, int]:
        return {"resolve_size": len(self._resolve_cache), "resolve_evictions": self.evictions["resolve"],
                "rates_size": len(self._rates_cache), "rates_evictions": self.evictions["rates"],
                "plans_size": len(self._plans), "plans_evictions": self.evictions["plans"]}

    # ------------------------------------------------------------------------------------------ resolving

    def _find(self, tables: Iterable[ProviderTable], provider: str | None, name: str) -> ModelEntry | None:
        for t in tables:
            if provider is not None and t.provider != provider:
                continue
            mid = t.index.get(name)
            if mid is not None:
                return t.entry(mid)
        return None

    def _bedrock_namespaces(self) -> frozenset[str]:
        """Bedrock model namespaces: the fixed list plus those of Bedrock ids in curated and user files (never the
        imported layer's, so that resolving a curated name does not load it)."""
        found = self._bedrock_ns
        if found is None:
            names = set(BEDROCK_NAMESPACES)
            for t in self._user + self._curated:
                if t.provider == "bedrock":
                    for n in t.index:
                        head, dot, _ = n.partition(".")
                        if dot and head not in GEO_PREFIXES and "/" not in head:
                            names.add(head)
            found = self._bedrock_ns = frozenset(names)
        return found

    def _lookup(self, providers: Sequence[str | None], model: str, region: str | None,
                flags: list[str]) -> _Resolution | None:
        """The first candidate of ``model`` found in the tables of ``providers`` (``None``: the user's own
        tables of any provider). At each candidate a higher layer wins: user, curated, then imported."""
        head = model.strip().lower().partition("/")[0] if "/" in model else None
        # Every provider id is a routing prefix ("groq/..."); knowing them all loads the imported layer, so only
        # a name with an unknown prefix asks.
        cands = candidates(model, self._all_prefixes() if head is not None and head not in ROUTING_PREFIXES else None)
        for cand in cands:
            for prov in providers:
                if prov is None:
                    entry = self._find(self._user, None, cand.name)
                else:
                    entry = self._find(self._user, prov, cand.name) or self._find(self._curated, prov, cand.name)
                    if entry is None:
                        entry = self._find(self._imported_tables(), prov, cand.name)
                        if entry is not None:
                            # an imported alias ("claude-sonnet-latest") of a model we curate: curated wins
                            entry = self._find(self._curated, entry.provider, entry.id) or entry
                if entry is not None:
                    return _Resolution(entry, cand.geo, region, tuple(flags + self._step_flags(cand)))
        return None

    def _all_prefixes(self) -> dict[str, str]:
        """Every provider id as a routing prefix (``groq/llama-3.3-70b``), for :func:`candidates`."""
        found = self._prefixes
        if found is None:
            self._imported_tables()
            found = self._prefixes = {n: p for n, p in self._names.items() if "/" not in n}
        return found

    def _route(self, model: str) -> tuple[str | None, str | None, str]:
        """``(prefix_provider, vendor, rest)`` for a model name: the known provider a routing prefix names
        (``openrouter/...``, ``xai/...``), the vendor that sells a model of this name (the prefix's provider, else
        :func:`vendor_of`), and the name without that prefix."""
        name = model.strip().lower()
        head, slash, tail = name.partition("/")
        if slash and tail:
            known = ROUTING_PREFIXES[head] if head in ROUTING_PREFIXES else self.canonical_provider(head)
            if known is not None:
                return known, known, tail
        return None, vendor_of(name, self._bedrock_namespaces()), name

    def _resold_vendor(self, gateway: str, model: str) -> str | None:
        """The vendor a ``[[resale]]`` overlay says ``gateway`` resells for ``model``, or ``None``."""
        if self._resale and self._resale_canonical is None:
            self._resale_canonical = {(self.canonical_provider(g) or g): (self.canonical_provider(v) or v)
                                      for g, v in self._resale.items()}
        declared = (self._resale_canonical or {}).get(gateway)
        if declared is None:
            return None
        if declared != "*":
            return declared
        _, vendor, _ = self._route(model)
        return vendor if vendor != gateway else None

    def _search(self, provider: str | None, model: str) -> _Resolution | str:
        """Resolve within one vendor (DESIGN D8). Returns the resolution, or why the call is unpriced.

        * The call names a known provider (``gen_ai.provider.name``): only that provider's table. If it lacks
          the model: a routing prefix in the name naming another provider is followed; a first-party vendor's
          client calling another first-party vendor's model (provider ``openai``, model ``deepseek-chat``) is
          priced from the model's vendor; a gateway with a ``[[resale]]`` overlay is priced at the resold
          vendor's list price. Each is flagged.
        * Otherwise a routing prefix naming a provider decides (``xai/grok-4`` is xAI, ``openrouter/...`` is
          OpenRouter), else the name's vendor (``claude-*`` is Anthropic), else the first-party and cloud
          tables in a fixed order. A gateway's entry is never used for a call that does not name the gateway.
        """
        flags: list[str] = []
        region = None
        deps = self._deployments.get(model.strip().lower())
        if deps:
            canon = self.canonical_provider(provider) if provider else None
            dep = next((d for d in deps if provider is None or d.provider in (provider, canon)), None)
            if dep is not None:
                flags.append(f"deployment:{model.strip().lower()}")
                provider, model, region = dep.provider, dep.model, dep.region
        named = self.canonical_provider(provider) if provider else None
        prefix, vendor, rest = self._route(model)
        if named is not None:
            res = self._lookup((named,), model, region, flags)
            if res is not None:
                return res
            fallback = [f"provider_fallback:{provider}"]
            if prefix is not None and prefix != named and named in FIRST_PARTY:
                # an OpenAI-compatible client of a first-party vendor sent a name routed elsewhere
                # ("openrouter/..."): the prefix names where the call went. From a gateway, a vendor prefix is
                # the gateway's spelling of a model it resells: only a [[resale]] overlay maps that to the vendor.
                res = self._lookup((prefix,), model, region, flags + fallback)
            elif named in FIRST_PARTY and vendor in FIRST_PARTY and vendor != named:
                res = self._lookup((vendor,), model, region, flags + fallback)
            else:
                resold = self._resold_vendor(named, model)
                if resold is not None:
                    res = self._lookup((resold,), model, region, flags + [f"resold:{named}"])
            if res is not None:
                return res
            return self._unpriced_reason(model, named)
        if provider:
            flags.append(f"provider_fallback:{provider}")  # a provider name we do not know: say we guessed
        if prefix is not None:
            res = self._lookup((None, prefix), model, region, flags)
            if res is None:
                resold = self._resold_vendor(prefix, rest)
                if resold is not None:
                    res = self._lookup((resold,), rest, region, flags + [f"resold:{prefix}"])
            return res if res is not None else self._unpriced_reason(model, prefix)
        if vendor is not None:
            res = self._lookup((None, vendor), model, region, flags)
            return res if res is not None else self._unpriced_reason(model, vendor)
        res = self._lookup((None, *PROVIDER_ORDER), model, region, flags)
        return res if res is not None else self._unpriced_reason(model, None)

    def _unpriced_reason(self, model: str, searched: str | None) -> str:
        """Why ``model`` is unpriced, naming the closest entries: near names in the table that was searched,
        and other providers that list the same name (whose prices we do not borrow)."""
        name = model.strip().lower()
        cands = list(dict.fromkeys(c.name for c in candidates(model, self._all_prefixes())))  # ordered, unique
        elsewhere: list[str] = []
        near: list[str] = []
        pool: set[str] = set()
        for t in self.tables():
            if searched is not None and t.provider == searched:
                pool.update(t.index)
                continue
            if any(c in t.index for c in cands):
                label = f"{t.provider}/{next(c for c in cands if c in t.index)}"
                if label not in elsewhere:
                    elsewhere.append(label)
        if pool:
            index = self._name_index.get(searched)
            if index is None:  # one per vendor, built on its first unpriced name
                index = self._name_index[searched] = _NameIndex(pool)
            near = [f"{searched}/{n}" for n in index.near(name.rpartition("/")[2])]
        where = f"{searched}'s pricing table" if searched else "the pricing tables of the first-party and cloud vendors"
        parts = [f"model {model!r} is not in {where}"]
        if near:
            parts.append(f"closest there: {', '.join(near)}")
        if elsewhere:
            shown = elsewhere[:5] + ([f"{len(elsewhere) - 5} more"] if len(elsewhere) > 5 else [])
            parts.append(f"listed by other providers, whose prices are not borrowed: {', '.join(shown)} (set "
                         "gen_ai.provider.name or --provider to the provider the call went through, or map a "
                         "gateway to the vendor it resells with a [[resale]] overlay)")
        parts.append(f"add it to a pricing overlay file (see pricing/README.md) and pass it with --pricing or "
                     f"${ENV_PRICING}")
        return "; ".join(parts)

    @staticmethod
    def _step_flags(cand: Any) -> list[str]:
        out = [] if cand.step == "exact" else [f"resolved:{cand.step}"]
        if cand.geo:
            out.append(f"geo:{cand.geo}")
        return out

    def resolve(self, model: str, provider: str | None = None) -> tuple[ModelEntry, str | None, str | None,
                                                                         tuple[str, ...]] | None:
        """Find the entry for ``model`` (and ``provider``, a canonical id or a semconv provider name).

        Returns ``(entry, geo, region, flags)`` or ``None`` when unpriced (:meth:`unpriced_reason` says
        why). Cached (bounded).
        """
        res = self._resolved(model, provider)
        if type(res) is str:
            return None
        return res.entry, res.geo, res.region, res.flags  # type: ignore[union-attr]

    def unpriced_reason(self, model: str, provider: str | None = None) -> str | None:
        """Why :meth:`resolve` finds no entry for ``model`` (naming the closest entries), or ``None``."""
        res = self._resolved(model, provider)
        return res if type(res) is str else None  # type: ignore[return-value]

    def _resolved(self, model: str, provider: str | None) -> _Resolution | str:
        key = (provider, model)
        cache = self._resolve_cache
        try:
            return cache[key]
        except KeyError:
            pass
        if not isinstance(model, str) or not model.strip():
            res: _Resolution | str = "the call names no model"
        else:
            res = self._search(provider, model)
        # Inserts and evictions under the lock (a miss costs far more than the lock): a thread inserting between
        # another's iter() and next() made next() raise "dictionary changed size during iteration" (seen with
        # serve's two workers). Lookups stay lock-free.
        with self._lock:
            if len(cache) >= _RESOLVE_CACHE_MAX:
                cache.pop(next(iter(cache)), None)
                self.evictions["resolve"] += 1
            cache[key] = res
        return res

    # ------------------------------------------------------------------------------------------- pricing

    def _rates(self, period: Period, tier: int, service: str, entry: ModelEntry | None = None,
               ) -> tuple[tuple[int, ...], int, Mapping[str, str]]:
        """Integer rate vector (TOKEN_CLASSES order, units of ``10**-scale`` USD per token), its scale, and a
        note per class not priced by its own rate: ``fallback:<cls>`` (another class's rate, e.g. reasoning at
        the output rate), ``cache_multiplier:<cls>`` (the vendor's documented multiple of the input rate) or
        ``unpriced:<cls>`` (no rate: tokens of that class make the call ``partial``). For a period, long-context
        tier and service tier. Cached (bounded).

        Raises ``LookupError`` when the service tier is not priced for this period.
        """
        key = (id(period), tier, service)
        hit = self._rates_cache.get(key)
        if hit is not None:
            return hit
        if tier < 0:
            base: dict[str, Decimal] = dict(period.rates)
            tiers = period.service_tiers
        else:
            lc = period.long_context[tier]
            base = dict(lc.rates)
            tiers = lc.service_tiers or {
                k: v for k, v in period.service_tiers.items() if v.multiplier is not None and not v.rates}
            if service != "standard" and service not in tiers and service in period.service_tiers:
                adj = period.service_tiers[service]
                if adj.multiplier is None:
                    raise LookupError(f"service tier {service!r} has explicit rates only below the long-context "
                                      "threshold; add service_tiers to the long_context tier")
                tiers = {service: type(adj)(rates={}, multiplier=adj.multiplier)}
        if service != "standard":
            adj = tiers.get(service)
            if adj is None:
                raise LookupError(f"no {service!r} service-tier rates for this model")
            base = adj.apply(base)
        cache_mults = self._cache_multipliers(entry) if entry is not None else {}
        notes: dict[str, str] = {}
        vec: list[Decimal] = []
        for cls in TOKEN_CLASSES:
            rate = base.get(cls)
            if rate is None and cls in CACHE_CLASSES:
                # Never bill cache tokens at the input rate by default: a documented vendor multiplier, else
                # (for a 1h write) the model's own short-TTL write rate, else unpriced.
                m = cache_mults.get(cls)
                if m is not None and "input" in base:
                    rate = _mul(base["input"], m)
                    notes[cls] = f"cache_multiplier:{cls}"
                elif cls == "cache_write_1h" and "cache_write" in base:
                    rate = base["cache_write"]
                    notes[cls] = _FALLBACK_FLAGS[cls]
                elif cls == "cache_write_1h" and "cache_write" in cache_mults and "input" in base:
                    rate = _mul(base["input"], cache_mults["cache_write"])
                    notes[cls] = f"cache_multiplier:{cls}"
                else:
                    notes[cls] = _UNPRICED + cls
            elif rate is None:
                for fb in FALLBACKS.get(cls, ()):
                    if fb in base:
                        rate = base[fb]
                        notes[cls] = _FALLBACK_FLAGS[cls]
                        break
            # A class with no rate at all (an embeddings model has no output price) bills nothing.
            vec.append(rate if rate is not None else _ZERO)
        # Integer rates at the smallest scale (>= 18, i.e. atto-USD per token) that holds every rate exactly.
        scale = 18
        for r in vec:
            exp = r.as_tuple().exponent
            if isinstance(exp, int) and -exp > scale:
                scale = -exp
        ints = tuple(int(r.scaleb(scale, _CTX)) for r in vec)
        out = (ints, scale, notes)
        with self._lock:  # as in resolve(): evicting while another thread inserts must not raise
            if len(self._rates_cache) >= _RATES_CACHE_MAX:
                self._rates_cache.pop(next(iter(self._rates_cache)), None)
                self.evictions["rates"] += 1
            self._rates_cache[key] = out
        return out

    def _cache_multipliers(self, entry: ModelEntry) -> Mapping[str, Decimal]:
        """The documented cache multipliers of ``entry``'s vendor (from the curated files' meta)."""
        for t in self._curated + self._user:
            if t.provider == entry.provider and t.cache_multipliers:
                if t.cache_match is None or t.cache_match in entry.id:
                    return t.cache_multipliers
        return {}

    def _discount(self, entry: ModelEntry) -> Discount | None:
        if not self._discounts:
            return None
        return self._discounts.get((entry.provider, entry.id)) or self._discounts.get((entry.provider, "*"))

    def price(self, model: str, *, provider: str | None = None, input_tokens: int = 0, output_tokens: int = 0,
              cache_read_tokens: int = 0, cache_write_tokens: int = 0, cache_write_1h_tokens: int = 0,
              reasoning_tokens: int = 0, input_audio_tokens: int = 0, output_audio_tokens: int = 0,
              input_image_tokens: int = 0, output_image_tokens: int = 0, web_search_calls: int = 0,
              duration_s: float | None = None, service_tier: str | None = None, region: str | None = None,
              at: Any = None) -> Cost:
        """Price one call. Token counts follow the OpenTelemetry GenAI convention (DESIGN D2).

        ``input_tokens`` includes cache reads and both kinds of cache writes (and audio/image input);
        ``output_tokens`` includes reasoning (and audio/image output). ``cache_write_tokens`` are short-TTL
        writes (Anthropic 5 minutes), ``cache_write_1h_tokens`` long-TTL writes. ``at`` is the call's start
        (datetime, ISO string or epoch ns; default now): the call is priced with the rates in force then.

        Returns a :class:`Cost`; ``status`` is ``"unpriced"`` (``total`` None, ``reason`` set) when the model,
        period or service tier is not in the table.

        Raises:
            PricingError: an argument is invalid (negative or non-integer count, unknown service tier, bad
                ``at``). Never raised for an unknown model.
        """
        # Fast path: a (model, provider, tier, region) priced before, inside the cached plan's period and below
        # any long-context threshold, with integer counts. A bitwise OR only works on ints and is negative iff
        # one of them is; anything else (floats, strings, None, negatives) takes the general path below, which
        # checks each argument and names the bad one.
        if service_tier is None and region is None:
            by_provider = self._std_plans.get(model)
            plan = by_provider.get(provider) if by_provider is not None else None
        else:
            plan = self._plans.get((model, provider, service_tier, region))
        if plan is not None:
            try:
                # the per-call classes the plan does not cover must be the integer 0 (not 0.0, not [])
                ok = (input_tokens | cache_read_tokens | cache_write_tokens | cache_write_1h_tokens | output_tokens
                      | reasoning_tokens) >= 0 and not (web_search_calls | input_audio_tokens | output_audio_tokens
                                                        | input_image_tokens | output_image_tokens)
            except TypeError:
                ok = False
            if ok:
                at_ns = _time_ns() if at is None else at if type(at) is int else _to_ns(at)  # noqa: E721
                if plan.start_ns <= at_ns < plan.end_ns and input_tokens <= plan.max_prompt \
                        and output_tokens <= plan.max_out and reasoning_tokens <= plan.max_out \
                        and cache_read_tokens <= plan.max_prompt \
                        and cache_write_tokens + cache_write_1h_tokens <= plan.max_prompt:
                    uncached = input_tokens - cache_read_tokens - cache_write_tokens - cache_write_1h_tokens
                    text_out = output_tokens - reasoning_tokens
                    if uncached < 0 or text_out < 0 or cache_write_1h_tokens or plan.fb_other:
                        return _price_planned(plan, model, input_tokens, output_tokens, cache_read_tokens,
                                              cache_write_tokens, cache_write_1h_tokens, reasoning_tokens)
                    # _price_planned inlined for the commonest shape (no clamping, no 1h writes): this is the
                    # per-span hot path, and calling it here instead measured 17% slower per call (issue 24,
                    # bench_pricing.py's call). "fallback:" flags sort last, in class order, as on the general path.
                    flags = plan.flags
                    if cache_read_tokens and plan.f1:
                        flags += plan.f1
                    if cache_write_tokens and plan.f2:
                        flags += plan.f2
                    if reasoning_tokens and plan.f5:
                        flags += plan.f5
                    a = uncached * plan.r0
                    b = cache_read_tokens * plan.r1
                    c = cache_write_tokens * plan.r2
                    d = text_out * plan.r4
                    e = reasoning_tokens * plan.r5
                    cost = _new(Cost)
                    cost.status = "priced"
                    cost.requested_model = model
                    cost._entry = plan.entry
                    cost._period = plan.period
                    cost._units = {"input": a, "cache_read": b, "cache_write": c, "output": d, "reasoning": e}
                    cost._total = a + b + c + d + e
                    cost._scale = plan.scale
                    cost.flags = flags
                    return cost
        # Everything else takes the general path. It lives in its own method: besides reading in steps, a
        # smaller frame here measured about 5% faster on the fast path above.
        return self._price_general(model, provider, (
            input_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens,
            reasoning_tokens, input_audio_tokens, output_audio_tokens, input_image_tokens, output_image_tokens,
            web_search_calls), duration_s, service_tier, region, at)

    def _price_general(self, model: Any, provider: str | None, raw: tuple[Any, ...], duration_s: Any,
                       service_tier: Any, region: Any, at: Any) -> Cost:
        """:meth:`price` for every call the fast path does not take: check each argument (naming the bad one),
        resolve the model and its period, then apply the rules in a fixed order, which is also the order of the
        flags: clamping, plausibility, long-context tier, service tier, whole-request multipliers, the token
        classes (fallbacks, vendor cache multipliers, unpriced classes), per-call fees, discount. Stores a plan
        for the fast path when the call's shape allows one."""
        raw, tier_name, at_ns = _checked(model, raw, service_tier, at)
        resolved = self._resolved(model, provider)
        if type(resolved) is str:
            return Cost("unpriced", model, provider=self.canonical_provider(provider) or provider,
                        reason=resolved)  # type: ignore[arg-type]
        entry, geo, dep_region, rflags = resolved.entry, resolved.geo, resolved.region, resolved.flags  # type: ignore[union-attr]
        period = entry.period_at(at_ns)
        if period is None:
            when = datetime.fromtimestamp(at_ns / 1e9, tz=timezone.utc).isoformat()
            return Cost("unpriced", model, entry, None, flags=rflags,
                        reason=f"no price period of {entry.provider}/{entry.id} is in force at {when}; add a "
                        "[[model.period]] that covers it")
        flags = list(rflags)
        counts = _disjoint(raw, flags)
        implausible = self._implausible(entry, raw, flags)
        tier = _long_context_tier(period, raw[0], flags) if period.long_context else -1
        try:
            rates, scale, notes = self._rates(period, tier, tier_name, entry)
        except LookupError as exc:
            return Cost("unpriced", model, entry, period, flags=tuple(flags), reason=str(exc))
        if tier_name != "standard":
            flags.append(f"service_tier:{tier_name}")
        # Each step below runs only when the call or its period has something for it to do: this is the path of
        # every call the fast path cannot take (long-context, audio, time windows), so it skips the calls it can.
        mults: list[Decimal] = []
        reg = region or dep_region
        if period.time_windows or geo is not None or reg:
            rates, scale, mults = self._whole_request(period, at_ns, geo, reg, rates, scale, flags)
        units, status = _token_units(counts, rates, notes, flags)
        if mults:
            units, scale = _scaled(units, scale, mults)
        n_ws = raw[10]
        if n_ws or period.per_second is not None:
            scale, reason = self._per_call(units, scale, period, n_ws, duration_s, flags)
            if reason is not None:
                return Cost("unpriced", model, entry, period, flags=tuple(flags), reason=reason)
        list_units = pct = None
        if self._discounts:
            units, scale, list_units, pct = self._discounted(entry, units, scale, flags)
        if not period.time_windows and period.per_second is None and tier < 0 and not n_ws and not implausible:
            self._store_plan(model, provider, service_tier, region, entry, period, flags, notes, tier_name,
                             mults, pct)
        return Cost(status, model, entry, period, units, sum(units.values()), scale, tuple(flags),
                    list_units=list_units, discount_percent=pct)

    def _whole_request(self, period: Period, at_ns: int, geo: str | None, region: Any, rates: tuple[int, ...],
                       scale: int, flags: list[str]) -> tuple[tuple[int, ...], int, list[Decimal]]:
        """The whole-request adjustments in force: a time window (its own rates replace ``rates``; a multiplier
        is collected), the geo multiplier of a geo-prefixed name, the region's multiplier. Returns the rates,
        their scale and the multipliers, collected as exact decimals to be applied once at the end."""
        mults: list[Decimal] = []
        if period.time_windows:
            when_dt = datetime.fromtimestamp(at_ns // 1_000_000_000, tz=timezone.utc)
            for w in period.time_windows:
                if w.matches(when_dt):
                    flags.append(f"time_window:{w.name}")
                    adj = w.adjustment
                    if adj.rates:
                        rates, scale = self._window_rates(rates, scale, adj)
                    elif adj.multiplier is not None and adj.multiplier != _ONE:
                        mults.append(adj.multiplier)
                    break
        if geo is not None:
            g = period.geo_multipliers.get(geo)
            if g is None:
                flags.append(f"geo_unlisted:{geo}")
            elif g != _ONE:
                mults.append(g)
        if region:
            region = region.strip().lower()
            r = period.region_multipliers.get(region)
            if r is not None:
                flags.append(f"region:{region}")
                if r != _ONE:
                    mults.append(r)
        return rates, scale, mults

    @staticmethod
    def _per_call(units: dict[str, int], scale: int, period: Period, n_ws: int, duration_s: Any,
                  flags: list[str]) -> tuple[int, str | None]:
        """Add the per-call fees (web search) and per-second compute to ``units`` in place. Returns the new
        scale and ``None``, or the reason the call is unpriced (a fee or the duration it needs is unknown)."""
        if n_ws:
            fee = period.per_call.get("web_search")
            if fee is None:
                return scale, f"{n_ws} web-search call(s) but no per_1k_calls.web_search fee for this model"
            scale = PriceBook._add_units(units, scale, "web_search", _mul(fee, n_ws))
            flags.append("web_search")
        if period.per_second is not None:
            if duration_s is None:
                return scale, "priced per second of compute but the call's duration is unknown"
            scale = PriceBook._add_units(units, scale, "compute",
                                         _mul(period.per_second, Decimal(repr(float(duration_s)))))
        return scale, None

    def _discounted(self, entry: ModelEntry, units: dict[str, int], scale: int, flags: list[str],
                    ) -> tuple[dict[str, int], int, int | None, Decimal | None]:
        """Apply the negotiated ``[[discount]]`` of ``entry``, if any. Returns ``(units, scale, list units,
        percent)``; the last two are ``None`` without a discount."""
        discount = self._discount(entry)
        if discount is None or not discount.percent:
            return units, scale, None, None
        pct = discount.percent
        list_units = sum(units.values())
        km, ke = _split(_CTX.subtract(_ONE, _CTX.divide(pct, _HUNDRED)))
        units = {k: v * km for k, v in units.items()}
        list_units *= 10 ** ke
        flags.append(f"discount:{format_money(pct)}%")
        return units, scale + ke, list_units, pct

    def _implausible(self, entry: ModelEntry, counts: tuple[int, ...], flags: list[str]) -> bool:
        """Flag (``implausible:<count name>``) and count every token count above what one request of this
        model can hold: its context window (input-side counts) or output limit (output-side counts), where
        the table knows them, else :data:`DEFAULT_TOKEN_BOUND`. The call is still priced as reported."""
        in_bound, out_bound = self._limits(entry)
        found = False
        for name, n in zip(_COUNT_NAMES[:10], counts):
            if n > (out_bound if name in _OUTPUT_COUNTS else in_bound):
                flags.append(f"implausible:{name}")
                found = True
        if found:
            with self._lock:
                self.implausible_calls += 1
        return found

    def _limits(self, entry: ModelEntry) -> tuple[int, int]:
        """``(input bound, output bound)`` for the plausibility check: the entry's context window and output
        limit, else :data:`DEFAULT_TOKEN_BOUND`. A context window at or below one of the entry's long-context
        thresholds contradicts the table (the tier exists because longer prompts are served), so it is not used."""
        cw = entry.context_window
        if cw is not None and any(lc.threshold >= cw for p in entry.periods for lc in p.long_context):
            cw = None
        return cw or DEFAULT_TOKEN_BOUND, entry.max_output or DEFAULT_TOKEN_BOUND

    def _price_plain(self, model: str, provider: str | None, n_in: int, n_out: int, n_cr: int, n_cw: int,
                     n_cw1: int, n_rs: int, at_ns: int) -> Cost | None:
        """The plan fast path for a call already known to have valid integer counts, the standard tier, no
        region and no per-call or audio/image classes (the enricher's common case). ``None`` means "use
        :meth:`price`": no plan yet, or a period or long-context boundary to check."""
        by_provider = self._std_plans.get(model)
        plan = by_provider.get(provider) if by_provider is not None else None
        if plan is None or not plan.start_ns <= at_ns < plan.end_ns or n_in > plan.max_prompt \
                or n_out > plan.max_out or n_rs > plan.max_out or n_cr > plan.max_prompt \
                or n_cw + n_cw1 > plan.max_prompt:
            return None
        return _price_planned(plan, model, n_in, n_out, n_cr, n_cw, n_cw1, n_rs)

    def _store_plan(self, model: str, provider: str | None, service_tier: Any, region: Any, entry: ModelEntry,
                    period: Period, flags: list[str], notes: Mapping[str, str], tier_name: str,
                    mults: list[Decimal], pct: Decimal | None) -> None:
        if pct is not None:
            return  # discounted calls stay on the general path, which also reports the list price
        rates, scale, _ = self._rates(period, -1, tier_name, entry)
        m = 1
        for d in mults:
            dm, de = _split(d)
            m *= dm
            scale += de
        if m != 1:
            rates = tuple(r * m for r in rates)
        # The fewest decimal places that hold every rate exactly: small integers multiply and add on CPython's
        # single-digit fast path, which is most of the per-span pricing time.
        while scale > 0 and not any(r % 10 for r in rates):
            rates = tuple(r // 10 for r in rates)
            scale -= 1
        max_prompt = _NO_LIMIT
        for lc in period.long_context:
            max_prompt = min(max_prompt, lc.threshold if lc.comparator == ">" else lc.threshold - 1)
        base_flags = tuple(f for f in flags if not f.startswith(("fallback:", "clamped:", "cache_multiplier:",
                                                                 _UNPRICED)))
        in_bound, max_out = self._limits(entry)
        max_prompt = min(max_prompt, in_bound)
        with self._lock:
            if len(self._plans) >= _RESOLVE_CACHE_MAX:
                old = next(iter(self._plans))
                del self._plans[old]
                by_provider = self._std_plans.get(old[0]) if old[2] is None and old[3] is None else None
                if by_provider is not None:  # keep the model -> provider view in step with _plans
                    by_provider.pop(old[1], None)
                    if not by_provider:
                        del self._std_plans[old[0]]
                self.evictions["plans"] += 1
            plan = _Plan(entry, period, max_prompt, rates, scale, notes, base_flags, max_out)
            self._plans[(model, provider, service_tier, region)] = plan
            if service_tier is None and region is None and isinstance(model, str):
                self._std_plans.setdefault(model, {})[provider] = plan

    @staticmethod
    def _add_units(units: dict[str, int], scale: int, name: str, value: Decimal) -> int:
        """Add ``value`` as component ``name``, raising the common scale if ``value`` needs more digits."""
        m, e = _split(value)
        if e > scale:
            bump = 10 ** (e - scale)
            for k in units:
                units[k] *= bump
            scale = e
        units[name] = units.get(name, 0) + m * 10 ** (scale - e)
        return scale

    @staticmethod
    def _window_rates(rates: tuple[int, ...], scale: int, adj: Any) -> tuple[tuple[int, ...], int]:
        """Apply a time window's explicit rates (and multiplier for the rest) to an integer rate vector."""
        decs = [_units_to_decimal(r, scale) for r in rates]
        out = []
        for cls, d in zip(TOKEN_CLASSES, decs):
            if cls in adj.rates:
                out.append(adj.rates[cls])
            elif adj.multiplier is not None:
                out.append(_mul(d, adj.multiplier))
            else:
                out.append(d)
        new_scale = max([scale] + [-x.as_tuple().exponent for x in out if isinstance(x.as_tuple().exponent, int)])
        return tuple(int(x.scaleb(new_scale, _CTX)) for x in out), new_scale


# The general path's steps, in the order PriceBook._price_general runs them --------------------------------


def _checked(model: Any, raw: tuple[Any, ...], service_tier: Any, at: Any) -> tuple[tuple[int, ...], str, int]:
    """Check a call's arguments in a fixed order (the counts, the service tier, ``at``, the model) and raise
    :class:`PricingError` naming the first bad one. Returns the counts (``None`` read as 0), the canonical
    service tier and ``at`` in epoch nanoseconds."""
    (input_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens, reasoning_tokens,
     input_audio_tokens, output_audio_tokens, input_image_tokens, output_image_tokens, web_search_calls) = raw
    try:
        ok = (input_tokens | cache_read_tokens | cache_write_tokens | cache_write_1h_tokens | output_tokens
              | reasoning_tokens | input_audio_tokens | output_audio_tokens | input_image_tokens
              | output_image_tokens | web_search_calls) >= 0
    except TypeError:
        ok = False
    if not ok:
        raw = tuple(_count(name, v) for name, v in zip(_COUNT_NAMES, raw))
    tier_name = "standard" if service_tier is None else str(service_tier).strip().lower()
    if tier_name in _STANDARD_ALIASES:
        tier_name = "standard"
    elif tier_name not in SERVICE_TIERS:
        raise PricingError(f"unknown service tier {service_tier!r}; use one of {', '.join(SERVICE_TIERS)}")
    at_ns = at if type(at) is int else _to_ns(at)  # noqa: E721
    if not isinstance(model, str) or not model.strip():
        raise PricingError("`model` must be a non-empty model name")
    return raw, tier_name, at_ns


def _disjoint(raw: tuple[int, ...], flags: list[str]) -> tuple[int, ...]:
    """The disjoint billing buckets (DESIGN D2) of a call's counts, in :data:`TOKEN_CLASSES` order. A negative
    remainder means the emitter's counts are inconsistent: clamp to zero and flag rather than bill a negative
    amount."""
    n_in, n_cr, n_cw, n_cw1, n_out, n_rs, n_ia, n_oa, n_ii, n_oi, _ = raw
    uncached = n_in - n_cr - n_cw - n_cw1 - n_ia - n_ii
    if uncached < 0:
        flags.append("clamped:input")
        uncached = 0
    text_out = n_out - n_rs - n_oa - n_oi
    if text_out < 0:
        flags.append("clamped:output")
        text_out = 0
    return uncached, n_cr, n_cw, n_cw1, text_out, n_rs, n_ia, n_oa, n_ii, n_oi


def _long_context_tier(period: Period, n_in: int, flags: list[str]) -> int:
    """The index of the long-context tier the prompt crosses (tiers sorted highest threshold first), else -1."""
    for i, lc in enumerate(period.long_context):
        if lc.crossed(n_in):
            flags.append(f"long_context:{lc.comparator}{lc.threshold}")
            return i
    return -1


def _token_units(counts: tuple[int, ...], rates: tuple[int, ...], notes: Mapping[str, str],
                 flags: list[str]) -> tuple[dict[str, int], str]:
    """Each token class's charge in units of the rates' scale, and the status: ``"partial"`` when tokens of a
    class with no rate were used (that class then bills 0: its share is unknown, never billed as input).
    Flags each class priced by another class's rate or a vendor cache multiplier, or not priced."""
    uncached, n_cr, n_cw, n_cw1, text_out, n_rs, n_ia, n_oa, n_ii, n_oi = counts
    # Unrolled for the common classes, which every call has; the rest only when used.
    units: dict[str, int] = {"input": uncached * rates[0], "cache_read": n_cr * rates[1],
                             "cache_write": n_cw * rates[2], "output": text_out * rates[4],
                             "reasoning": n_rs * rates[5]}
    if n_cw1:
        units["cache_write_1h"] = n_cw1 * rates[3]
    if n_ia or n_oa or n_ii or n_oi:
        for i, n in ((6, n_ia), (7, n_oa), (8, n_ii), (9, n_oi)):
            if n:
                units[TOKEN_CLASSES[i]] = n * rates[i]
    status = "priced"
    if notes:
        for cls, n in zip(TOKEN_CLASSES, counts):
            if n and cls in notes:
                flags.append(notes[cls])
                if notes[cls].startswith(_UNPRICED):
                    status = "partial"
                    if cls in units:
                        units[cls] = 0
    return units, status


def _scaled(units: dict[str, int], scale: int, mults: list[Decimal]) -> tuple[dict[str, int], int]:
    """``units`` times the product of the exact decimal ``mults``, and the scale that keeps them exact."""
    m, e = 1, 0
    for d in mults:
        dm, de = _split(d)
        m *= dm
        e += de
    return {k: v * m for k, v in units.items()}, scale + e


def _price_planned(plan: _Plan, model: str, n_in: int, n_out: int, n_cr: int, n_cw: int, n_cw1: int,
                   n_rs: int) -> Cost:
    """The general path's result for the common case, with a handful of integer multiplications."""
    uncached = n_in - n_cr - n_cw - n_cw1
    text_out = n_out - n_rs
    flags = plan.flags
    if uncached < 0 or text_out < 0:
        extra = []
        if uncached < 0:
            extra.append("clamped:input")
            uncached = 0
        if text_out < 0:
            extra.append("clamped:output")
            text_out = 0
        counts = (uncached, n_cr, n_cw, n_cw1, text_out, n_rs)
        extra += [f for i, f in plan.fb if counts[i]]
        # "clamped:" flags sort before "long_context:"/"service_tier:" ones, so they must be merged in place.
        flags = _merge_flags(flags, extra)
    elif plan.fb:
        counts = (uncached, n_cr, n_cw, n_cw1, text_out, n_rs)
        for i, f in plan.fb:
            if counts[i]:
                flags += (f,)  # "fallback:" flags sort last: appending is the general path's order
    a = uncached * plan.r0
    b = n_cr * plan.r1
    c = n_cw * plan.r2
    d = text_out * plan.r4
    e = n_rs * plan.r5
    cost = _new(Cost)
    cost.status = "priced"
    cost.requested_model = model
    cost._entry = plan.entry
    cost._period = plan.period
    if n_cw1:
        f = n_cw1 * plan.r3
        cost._units = {"input": a, "cache_read": b, "cache_write": c, "output": d, "reasoning": e,
                       "cache_write_1h": f}
        cost._total = a + b + c + d + e + f
    else:
        cost._units = {"input": a, "cache_read": b, "cache_write": c, "output": d, "reasoning": e}
        cost._total = a + b + c + d + e
    cost._scale = plan.scale
    cost.flags = flags
    if plan.fb_other:
        counts = (uncached, n_cr, n_cw, n_cw1, text_out, n_rs)
        missing = [TOKEN_CLASSES[i] for i, f in plan.fb if counts[i] and f.startswith(_UNPRICED)]
        if missing:
            # Tokens of a class with no rate: the rest is priced, the call is "partial" (as on the general path).
            units = dict(cost._units)
            for cls in missing:
                if cls in units:
                    units[cls] = 0
            cost._units = units
            cost._total = sum(units.values())
            cost.status = "partial"
    return cost


_default: PriceBook | None = None
_default_lock = threading.Lock()


def default_book() -> PriceBook:
    """The process-wide book: shipped tables plus ``$OTEL_COSTATTR_PRICING`` overlays. Loaded once."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = PriceBook.load()
    return _default


def price(model: str, *, book: PriceBook | None = None, **usage: Any) -> Cost:
    """Price one call with the default :class:`PriceBook` (or ``book``). See :meth:`PriceBook.price`."""
    return (book or default_book()).price(model, **usage)
