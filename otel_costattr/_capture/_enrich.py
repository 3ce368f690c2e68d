"""Turn one finished span into the cost attributes it should carry (DESIGN D4, D5, D6).

:class:`Enricher` decides a span's status and computes its ``gen_ai.cost.*`` attributes; :func:`clone_span`
returns a copy of a :class:`~opentelemetry.sdk.trace.ReadableSpan` with extra attributes, keeping every
``dropped_*`` count. Both are used by :class:`~otel_costattr.CostSpanProcessor` and
:class:`~otel_costattr.CostSpanExporter`, and are pure apart from the bounded de-duplication index.

Statuses:

* ``priced``: usage and a price were found; ``gen_ai.cost.total_cost`` is exact to the float boundary.
* ``partial``: only input or only output was reported (an early-closed stream); what is known is priced.
* ``unpriced``: the model (or its period or service tier) is not in the table; no total is written.
* ``no_usage``: an LLM call with no usage at all (an error, a stream without ``include_usage``).
* ``duplicate``: another span already carried this call (same provider and ``gen_ai.response.id``).
* ``provided``: the span already had a cost from upstream; it is carried through, not recomputed.

De-duplication in process: the first span of a pair to *end* carries the cost. In every set-up measured
(``research/semconv.md`` §7) the Anthropic SDK's own span, which has the 5m/1h cache-write split, ends before
the instrumentor's span (it is the inner call), so the more detailed span wins. If a less detailed span ends
first, it keeps the cost and the later, more detailed one is marked ``duplicate`` with
``gen_ai.cost.duplicate_of`` and the flag ``more_detailed``; the ledger re-prices such pairs from the more
detailed span, so stored totals use the better data either way.
"""

from __future__ import annotations

import json
import operator
import threading
from collections import OrderedDict
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from .. import attributes as A
from ._layers import _LAYER_INPUTS, layer_costs, split_layers
from .._pricing._book import Cost, PriceBook, _units_to_decimal
from ._usage import Call, bad_counts, read_call

__all__ = ["UNRENDERED", "Enricher", "clone_span", "plain_attributes"]

_DEFAULT_DEDUP = 16_384
# Siblings remembered per parent span in the unpaired index (pairs are siblings that overlap in time: the
# recent ones).
_UNPAIRED_PER_PARENT = 64
_INPUT_SIDE = ("input", "cache_read", "cache_write", "cache_write_1h", "input_audio", "input_image")
# The five components every priced call has, in the order Langfuse cost details list them.
_DETAIL_NAMES = ("input", "cache_read", "cache_write", "output", "reasoning")
_FIVE = frozenset(_DETAIL_NAMES)
# Langfuse cost-details templates by which of the five components are non-zero: (template, picker), where the
# picker takes (input, cache_read, cache_write, output, reasoning, total) floats to the template's arguments.
_DETAIL_SHAPES: dict[tuple[bool, ...], tuple[str, Any]] = {}


def _detail_shape(which: tuple[bool, ...]) -> tuple[str, Any]:
    idx = [i for i, on in enumerate(which) if on] + [5]
    names = [_DETAIL_NAMES[i] for i in idx[:-1]] + ["total"]
    template = "{" + ", ".join(f'"{n}": %r' for n in names) + "}"
    shape = (template, operator.itemgetter(*idx))  # one index: a lone float, which `%` takes as well
    _DETAIL_SHAPES[which] = shape  # at most 2**5 keys
    return shape


_INPUT_ONLY_OPS = frozenset({"embeddings", "embedding"})
_MISSING = object()

#: Returned by ``Enricher.compute_attributes(..., render=False)`` in place of the attribute dict for a call whose
#: attributes are the standard priced set: the caller renders them itself from the ``Cost`` (see
#: :meth:`Enricher.standard_figures`). Identity is the contract: test with ``is``. (An empty read-only mapping, so
#: that code which does not expect it adds nothing rather than failing.)
UNRENDERED: Mapping[str, Any] = MappingProxyType({})
# Any of these on a span means it arrived with cost attributes (which we replace when we price it).
_COST_KEYS = frozenset(v for k, v in vars(A).items() if k.startswith("COST_") and isinstance(v, str)) | {
    A.LANGFUSE_COST_DETAILS}


def _span_ids(span: Any) -> tuple[str | None, str | None, str]:
    """(trace id, parent span id, scope name) of an SDK span, for pairing calls that have no response id."""
    ctx = span.context
    parent = span.parent
    scope = span.instrumentation_scope
    return (format(ctx.trace_id, "032x") if ctx else None,
            format(parent.span_id, "016x") if parent is not None else None,
            scope.name if scope is not None else "")


class _DedupIndex:
    """Bounded LRU of (provider, response id) -> (span id hex, detail). Counts evictions."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, str], tuple[str, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.evicted = 0

    def claim(self, key: tuple[str, str], span_id: str, detail: int) -> tuple[str, int] | None:
        """Record ``key`` for this span, or return the earlier claim if there is one."""
        with self._lock:
            prior = self._items.get(key)
            if prior is not None:
                self._items.move_to_end(key)
                return prior
            self._items[key] = (span_id, detail)
            if len(self._items) > self.capacity:
                self._items.popitem(last=False)
                self.evicted += 1
            return None

    def __len__(self) -> int:
        return len(self._items)


class _UnpairedIndex:
    """Bounded index of recent LLM spans that carry no response id (failed calls, streams without usage): at most
    ``capacity`` parents and :data:`_UNPAIRED_PER_PARENT` spans under each; ``evicted`` counts both kinds of drop.

    Two instrumentations tracing one failed call give two spans and no response id to pair them by. They are
    the same call when they come from *different* instrumentation scopes, name the same provider and model,
    and are siblings that overlap in time or parent and child. (Two real calls in parallel come from the same
    instrumentation, so they are never merged.)
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._by_parent: OrderedDict[tuple[str, str | None], list[tuple[str, str, str, str, int, int]]] = OrderedDict()
        self._lock = threading.Lock()
        self.evicted = 0

    def match(self, trace_id: str, span_id: str, parent_id: str | None, scope: str, provider: str, model: str,
              start: int, end: int) -> str | None:
        """The span id this span duplicates, if any; otherwise remember this span and return None."""
        with self._lock:
            for sid, sc, prov, mod, s0, e0 in self._by_parent.get((trace_id, parent_id), ()):
                if sc != scope and prov == provider and mod == model and s0 <= end and start <= e0:
                    return sid
            for sid, sc, prov, mod, _, _ in self._by_parent.get((trace_id, span_id), ()):
                if sc != scope and prov == provider and mod == model:
                    return sid  # an inner span of another instrumentation, already ended
            key = (trace_id, parent_id)
            siblings = self._by_parent.setdefault(key, [])
            siblings.append((span_id, scope, provider, model, start, end))
            if len(siblings) > _UNPAIRED_PER_PARENT:
                # One parent with thousands of LLM children (a fan-out, or a hostile trace) must not grow one
                # list without bound, or make every match scan it: the oldest sibling goes, counted.
                del siblings[0]
                self.evicted += 1
            self._by_parent.move_to_end(key)
            if len(self._by_parent) > self.capacity:
                self._by_parent.popitem(last=False)
                self.evicted += 1
            return None


class Enricher:
    """Computes cost attributes for spans. Thread-safe. Its methods never raise on span data."""

    def __init__(self, book: PriceBook, *, dedup_size: int = _DEFAULT_DEDUP, langfuse: bool = True) -> None:
        if dedup_size < 1:
            raise ValueError("dedup_size must be >= 1")
        self.book = book
        self.dedup = _DedupIndex(dedup_size)
        self.unpaired = _UnpairedIndex(dedup_size)
        self.langfuse = langfuse
        self._providers: dict[str, str] = {}
        # price()'s validated-input fast path, when the book is ours (tests and wrappers may pass a look-alike)
        self._price_plain = (book._price_plain  # noqa: SLF001
                             if isinstance(book, PriceBook) and type(book).price is PriceBook.price else None)

    def compute(self, span: ReadableSpan) -> tuple[dict[str, Any] | None, str | None, Call | None, Cost | None]:
        """Return ``(attributes to add, status, call, cost)``; ``(None, None, None, None)`` for non-LLM spans.

        Raises only on bugs (the caller counts and survives them); bad span data never raises.
        """
        ctx = span.context
        return self._compute(plain_attributes(span), format(ctx.span_id, "016x") if ctx else None,
                             span.start_time, span.end_time, span)

    def compute_attributes(self, attrs: Mapping[str, Any], *, span_id: str | None, start_ns: int | None,
                           end_ns: int | None, trace_id: str | None = None, parent_span_id: str | None = None,
                           scope: str = "", render: bool = True,
                           ) -> tuple[Mapping[str, Any] | None, str | None, Call | None, Cost | None]:
        """:meth:`compute` for a span given as plain data (OTLP ingest, ``serve``).

        ``trace_id``, ``parent_span_id`` and ``scope`` (instrumentation scope name) let two spans of one failed
        call, which have no response id, be recognised as one call.

        With ``render=False``, a priced or partial call whose attributes are the standard set (the five standard
        components, no flags, no token layers, no cost attributes already on the span) returns :data:`UNRENDERED`
        in place of the dict, for a caller that encodes attributes itself: it must write what
        :meth:`standard_figures` gives, in the order of ``_priced_attributes``. Everything else is as with
        ``render=True``.
        """
        return self._compute(attrs, span_id, start_ns, end_ns, (trace_id, parent_span_id, scope), render)

    def _compute(self, attrs: Mapping[str, Any], span_id: str | None, start_ns: int | None, end_ns: int | None,
                 ids: Any, render: bool = True,
                 ) -> tuple[Mapping[str, Any] | None, str | None, Call | None, Cost | None]:
        # ``ids`` is the span (its trace, parent and scope are only formatted when a call has no response id)
        # or a (trace_id, parent_span_id, scope) tuple.
        call = read_call(attrs)
        if not call.is_llm_call:
            return None, None, None, None
        if call.provided_cost is not None:
            out: dict[str, Any] = {A.COST_STATUS: "provided", A.COST_CURRENCY: "USD"}
            if A.COST_TOTAL not in attrs:
                out[A.COST_TOTAL] = call.provided_cost
            if self.langfuse and A.LANGFUSE_COST_DETAILS not in attrs:
                out[A.LANGFUSE_COST_DETAILS] = json.dumps({"total": call.provided_cost})
            return out, "provided", call, None
        provider = self._canonical(call.provider)
        if call.response_id is None and span_id is not None:
            trace_id, parent_span_id, scope = ids if type(ids) is tuple else _span_ids(ids)
            if trace_id is not None:
                twin = self.unpaired.match(trace_id, span_id, parent_span_id, scope, provider or "",
                                           call.request_model or call.model or "", start_ns or 0, end_ns or 0)
                if twin is not None:
                    out = {A.COST_STATUS: "duplicate", A.COST_DUPLICATE_OF: twin}
                    if self.langfuse:
                        out[A.LANGFUSE_COST_DETAILS] = '{"total": 0}'
                    return out, "duplicate", call, None
        n_in = call.input_tokens
        n_out = call.output_tokens
        # Counts reported with impossible values (NaN, inf, negative): flagged bad_value:<count>, and the call
        # is priced on what else it reports rather than called "partial" (issue 20).
        bad = bad_counts(call) if call.bad else ()
        if n_in is None and n_out is None:
            if bad:
                return ({A.COST_STATUS: "no_usage", A.COST_FLAGS: tuple(f"bad_value:{q}" for q in bad)}, "no_usage",
                        call, None)
            return {A.COST_STATUS: "no_usage"}, "no_usage", call, None

        if call.response_id is not None and span_id is not None:
            prior = self.dedup.claim((provider or "", call.response_id), span_id, call.detail)
            if prior is not None and prior[0] != span_id:
                out = {A.COST_STATUS: "duplicate", A.COST_DUPLICATE_OF: prior[0]}
                if call.detail > prior[1]:
                    out[A.COST_FLAGS] = ("more_detailed",)
                if self.langfuse:
                    # Langfuse prices any generation that has usage but no cost; this call is already paid for.
                    out[A.LANGFUSE_COST_DETAILS] = '{"total": 0}'
                return out, "duplicate", call, None

        # Embeddings have no output side; anything else missing one side is an incomplete report.
        partial = (n_in is None and "input_tokens" not in bad) or (
            n_out is None and "output_tokens" not in bad and call.operation not in _INPUT_ONLY_OPS)
        model = call.model or call.request_model
        if model is None:
            return ({A.COST_STATUS: "unpriced", A.COST_REASON: "the span names no model (gen_ai.response.model or "
                     "gen_ai.request.model)"}, "unpriced", call, None)
        n_in = n_in or 0
        n_out = n_out or 0
        cost = None
        tier = _tier(call.service_tier)
        if tier is None and call.region is None and type(start_ns) is int and self._price_plain is not None \
                and not (call.input_audio_tokens or call.output_audio_tokens or call.web_search_calls):
            cost = self._price_plain(
                model, call.provider, n_in, n_out, call.cache_read_tokens or 0, call.cache_write_tokens or 0,
                call.cache_write_1h_tokens or 0, call.reasoning_tokens or 0, start_ns)
        if cost is None:
            cost = self.book.price(
                model, provider=call.provider, input_tokens=n_in, output_tokens=n_out,
                cache_read_tokens=call.cache_read_tokens or 0, cache_write_tokens=call.cache_write_tokens or 0,
                cache_write_1h_tokens=call.cache_write_1h_tokens or 0, reasoning_tokens=call.reasoning_tokens or 0,
                input_audio_tokens=call.input_audio_tokens or 0, output_audio_tokens=call.output_audio_tokens or 0,
                web_search_calls=call.web_search_calls or 0, service_tier=tier, region=call.region,
                at=start_ns or None, duration_s=((end_ns - start_ns) / 1e9) if end_ns and start_ns else None)
        if cost.status not in ("priced", "partial"):  # "partial": a token class with no rate was left out
            out = {A.COST_STATUS: "unpriced", A.COST_REASON: cost.reason or "unpriced"}
            if bad:
                out[A.COST_FLAGS] = tuple(f"bad_value:{q}" for q in bad)
            if cost.model:
                out[A.COST_MODEL] = cost.model
            return out, "unpriced", call, cost
        status = "partial" if partial or cost.status == "partial" else "priced"
        if not render and len(cost._units) == 5 and not cost.flags and not bad and _COST_KEYS.isdisjoint(attrs) \
                and (not n_in or _LAYER_INPUTS.isdisjoint(attrs)):
            return UNRENDERED, status, call, cost
        out = self._priced_attributes(cost, status)
        if bad:
            out[A.COST_FLAGS] = tuple(out.get(A.COST_FLAGS, ())) + tuple(f"bad_value:{q}" for q in bad)
        if n_in and not _LAYER_INPUTS.isdisjoint(attrs):
            self._add_layers(out, attrs, n_in, cost)
        if not _COST_KEYS.isdisjoint(attrs) and any(k in attrs for k in out):
            # The span carried cost attributes we could not use (see Call.bad); ours replace them.
            out[A.COST_FLAGS] = tuple(out.get(A.COST_FLAGS, ())) + ("replaced_upstream_cost",)
        return out, status, call, cost

    def _canonical(self, name: str | None) -> str | None:
        """The book's provider id for a span's provider name (memoised: a handful of names recur)."""
        if name is None:
            return None
        found = self._providers.get(name, _MISSING)
        if found is _MISSING:
            found = self.book.canonical_provider(name) or name
            if len(self._providers) < 256:
                self._providers[name] = found
        return found

    def standard_figures(self, cost: Cost) -> tuple[float, float, float, float, float, float, float, float,
                                                      str | None]:
        """For a priced ``cost`` with exactly the five standard components: the values of
        ``total_cost, input_cost, output_cost, uncached_input_cost, cache_read_cost, cache_write_cost,
        text_output_cost, reasoning_cost`` and the Langfuse cost details (``None`` when ``langfuse`` is off).

        Exactly what :meth:`compute` writes for such a call; a caller that encodes attributes itself (``serve``)
        uses this so that both renderings agree to the bit.
        """
        u = cost._units  # noqa: SLF001
        d = 10 ** cost._scale  # noqa: SLF001
        ui, ucr, ucw, uo, ur = u["input"], u["cache_read"], u["cache_write"], u["output"], u["reasoning"]
        fi, fcr, fcw, fo, fr = ui / d, ucr / d, ucw / d, uo / d, ur / d
        total = cost._total / d  # noqa: SLF001
        details = None
        if self.langfuse:
            # Each float is the nearest double to the exact component; repr (what %r writes, as json would) is its
            # shortest decimal. One %-template per set of non-zero components (at most 32), the floats picked in
            # C: half the cost of joining per-component f-strings, the same text.
            which = (ui != 0, ucr != 0, ucw != 0, uo != 0, ur != 0)
            shape = _DETAIL_SHAPES.get(which) or _detail_shape(which)
            details = shape[0] % shape[1]((fi, fcr, fcw, fo, fr, total))
        return total, (ui + ucr + ucw) / d, (uo + ur) / d, fi, fcr, fcw, fo, fr, details

    def _priced_attributes(self, cost: Cost, status: str) -> dict[str, Any]:
        # Side totals are summed exactly as integers, then rounded to a float once: adding floats would drift
        # in the last digit.
        u = cost._units  # noqa: SLF001 - same package; the public accessors each rebuild a dict
        entry = cost._entry  # noqa: SLF001
        extra = len(u) > 5  # classes beyond the five every priced call has (1h writes, audio, tools)
        if not extra:
            total, f_in, f_out, fi, fcr, fcw, fo, fr, details = self.standard_figures(cost)
        else:
            d = 10 ** cost._scale  # noqa: SLF001
            ui, ucr, ucw, uo, ur = u["input"], u["cache_read"], u["cache_write"], u["output"], u["reasoning"]
            fi, fcr, fcw, fo, fr = ui / d, ucr / d, ucw / d, uo / d, ur / d
            total = cost._total / d  # noqa: SLF001
            f_in = (ui + ucr + ucw + u.get("cache_write_1h", 0) + u.get("input_audio", 0)
                    + u.get("input_image", 0)) / d
            f_out = (uo + ur + u.get("output_audio", 0) + u.get("output_image", 0)) / d
            details = None
            if self.langfuse:
                # Each float is the nearest double to the exact component; repr (what json writes) is its
                # shortest decimal, i.e. the exact figure for every realistic cost.
                parts = [f'"{k}": {v!r}' for k, v, n in zip(_DETAIL_NAMES, (fi, fcr, fcw, fo, fr),
                                                              (ui, ucr, ucw, uo, ur)) if n]
                parts += [f'"{k}": {v / d!r}' for k, v in u.items() if v and k not in _FIVE]
                parts.append(f'"total": {total!r}')
                details = "{" + ", ".join(parts) + "}"
        out: dict[str, Any] = {
            A.COST_STATUS: status, A.COST_TOTAL: total, A.COST_INPUT: f_in, A.COST_OUTPUT: f_out,
            A.COST_UNCACHED_INPUT: fi, A.COST_CACHE_READ: fcr, A.COST_CACHE_WRITE: fcw, A.COST_TEXT_OUTPUT: fo,
            A.COST_REASONING: fr, A.COST_CURRENCY: "USD", A.COST_PROVIDER: entry.provider, A.COST_MODEL: entry.id,
            A.COST_PRICING_VERSION: entry.version,
        }
        if extra:
            d = 10 ** cost._scale  # noqa: SLF001
            if "cache_write_1h" in u:
                out[A.COST_CACHE_WRITE_1H] = u["cache_write_1h"] / d
            tool = u.get("web_search", 0) + u.get("compute", 0)
            if tool:
                out[A.COST_TOOL_USAGE] = tool / d
        if cost.flags:
            out[A.COST_FLAGS] = cost.flags
        if details is not None:
            out[A.LANGFUSE_COST_DETAILS] = details
        return out

    @staticmethod
    def _add_layers(out: dict[str, Any], attrs: Mapping[str, Any], input_tokens: int, cost: Cost) -> None:
        """The four token layers (D15), when the app set explicit counts or content is on the span."""
        split = split_layers(attrs, input_tokens)
        if split is None:
            return
        u = cost._units or {}  # noqa: SLF001
        exact_input = _units_to_decimal(sum(u.get(k, 0) for k in _INPUT_SIDE), cost._scale)  # noqa: SLF001
        prompt_c, tool_c, memory_c = layer_costs(exact_input, split)
        out.update({A.COST_LAYER_PROMPT_TOKENS: split.prompt_tokens, A.COST_LAYER_TOOL_TOKENS: split.tool_tokens,
                    A.COST_LAYER_MEMORY_TOKENS: split.memory_tokens, A.COST_LAYER_SOURCE: split.source,
                    A.COST_LAYER_PROMPT: float(prompt_c), A.COST_LAYER_TOOL: float(tool_c),
                    A.COST_LAYER_MEMORY: float(memory_c)})


def _tier(value: str | None) -> str | None:
    """Map a vendor-reported service tier to ours; anything unknown is treated as standard pricing."""
    if value is None:
        return None
    v = value.lower()
    if v in ("batch", "flex", "priority"):
        return v
    return None


def plain_attributes(span: ReadableSpan) -> Mapping[str, Any]:
    """The span's attributes as a plain dict, read-only by contract.

    ``ReadableSpan.attributes`` is a ``MappingProxyType`` over ``BoundedAttributes``, whose every lookup runs
    Python code under a lock: reading usage through it costs several times the whole pricing step. The
    underlying dict is used when the SDK has the expected shape (checked, not assumed); otherwise a copy.
    """
    inner = getattr(span, "_attributes", None)
    d = getattr(inner, "_dict", None)
    if type(d) is dict:
        return d
    attrs = span.attributes
    return attrs if type(attrs) is dict else dict(attrs or {})


# ---------------------------------------------------------------------------------------------- cloning

try:  # Feature-detect the SDK internals the fast clone relies on; fall back to the public constructor.
    from opentelemetry.attributes import BoundedAttributes as _BA

    _probe = _BA(maxlen=None, attributes={"k": 1}, immutable=True)
    _FAST_CLONE = isinstance(getattr(_probe, "_dict", None), dict) and hasattr(_probe, "dropped") \
        and hasattr(_probe, "_immutable")
    del _probe
except Exception:  # pragma: no cover - depends on the installed SDK
    _FAST_CLONE = False


def clone_span(span: ReadableSpan, extra: Mapping[str, Any], *, override: bool = False) -> ReadableSpan:
    """A copy of ``span`` with ``extra`` attributes added.

    Existing keys are kept unless ``override`` (used when we priced a call whose span carried an unusable
    upstream cost: our consistent set of ``gen_ai.cost.*`` values must then replace it).

    Events, links, resource, scope, status and every ``dropped_*`` count are preserved. The SDK freezes spans
    before ``on_end`` (opentelemetry-python#5614), so a copy is the only supported way to add attributes.
    """
    base = span._attributes if hasattr(span, "_attributes") else span.attributes  # noqa: SLF001
    if _FAST_CLONE and type(span) is ReadableSpan and isinstance(base, _BA):
        if override:
            merged = dict(base._dict)  # noqa: SLF001
            merged.update(extra)
        else:
            merged = dict(extra)
            merged.update(base._dict)  # noqa: SLF001 - the span's own values win over ours
        attrs = _BA.__new__(_BA)
        attrs.__dict__.update(base.__dict__)  # shares the original's lock: both are immutable, never nested
        attrs._dict = merged  # noqa: SLF001
        new = ReadableSpan.__new__(ReadableSpan)
        new.__dict__.update(span.__dict__)
        new._attributes = attrs  # noqa: SLF001
        return new
    if override:
        merged = dict(span.attributes or {})
        merged.update(extra)
    else:
        merged = dict(extra)
        merged.update(span.attributes or {})
    bounded = _BA(maxlen=None, attributes=merged, immutable=True)
    bounded.dropped = span.dropped_attributes
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=span.resource, attributes=bounded,
        events=getattr(span, "_events", span.events), links=getattr(span, "_links", span.links), kind=span.kind,
        status=span.status, start_time=span.start_time, end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope)
