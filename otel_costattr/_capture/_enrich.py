"""Turn one finished span into the cost attributes it should carry (DESIGN D4, D5, D6, D16).

:class:`Enricher` decides a span's status and computes its ``gen_ai.cost.*`` attributes, for
:class:`~otel_costattr.CostSpanProcessor`, :class:`~otel_costattr.CostSpanExporter`, ``ingest`` and ``serve``; it is
pure apart from the bounded de-duplication and pairing indexes. Writing the attributes into a span (in place, or
into a copy) is :mod:`._spanattrs`' work.

Statuses:

* ``priced``: usage and a price were found; ``gen_ai.cost.total_cost`` is exact to the float boundary.
* ``partial``: only input or only output was reported (an early-closed stream); what is known is priced.
* ``unpriced``: the model (or its period or service tier) is not in the table; no total is written.
* ``no_usage``: an LLM call with no usage at all (an error, a stream without ``include_usage``).
* ``duplicate``: another span already carries this call (``gen_ai.cost.duplicate_of`` names it).
* ``provided``: the span already had a cost from upstream; it is carried through, not recomputed.

De-duplication in process (DESIGN D5, D16). Several instrumentations often trace one API call, and many emit no
response id. Two spans are paired on (provider, ``gen_ai.response.id``) where both have one, otherwise on what
they share (:class:`_PairIndex`: another instrumentation scope, the same trace as parent and child or overlapping
siblings, or a root span of its own trace overlapping in time; the same provider and model family; the same token
counts where both report them). ``provided`` spans pair like any other. The first span *with usage* (or an upstream
cost) to end carries the call; a span without usage never claims a call that a span with usage has: it becomes
the ``duplicate`` when it ends second, and when it ends first it stays ``no_usage`` (it has been exported) and the
span with usage that ends later is still priced and names it in ``gen_ai.cost.supersedes``, so that the ledger
(and any reader) counts the call once. If a less detailed span ends first, it keeps the cost and the later, more detailed one
is marked ``duplicate`` with the flag ``more_detailed``; the ledger re-prices such pairs from the more detailed
span, so stored totals use the better data either way. Both indexes are bounded and count their evictions.

Usage is normalised per emitter first (``attributes.EMITTER_CONVENTIONS``, by instrumentation scope: botocore's
Bedrock input count excludes cache reads and writes), and emitters' provider names are mapped to the pricing
tables' (``attributes.PROVIDER_NAMES``: OpenInference's ``aws`` is Bedrock).
"""

from __future__ import annotations

import json
import operator
import threading
from collections import OrderedDict, deque
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from .. import attributes as A
from ..attributes import EMITTER_CONVENTIONS
from ._layers import _LAYER_INPUTS, layer_costs, split_layers
from .._pricing._book import Cost, PriceBook, _units_to_decimal
from .._pricing._resolve import BEDROCK_NAMESPACES, candidates, vendor_of
from ._usage import Call, bad_counts, normalise, read_call, shape_reader

__all__ = ["UNRENDERED", "Enricher", "plain_attributes"]

_DEFAULT_DEDUP = 16_384
# Readers by a span's attribute names (Enricher._by_names): at most this many name sequences, each at most this long
_NAMES_MAX = 512
_NAMES_KEY_MAX = 64
# LLM spans remembered per trace, and per usage signature, in the pair index (twins end close together in time:
# the recent ones).
_PAIRS_PER_TRACE = 64
_PAIRS_PER_SIGNATURE = 16
_SCOPES_PER_SIGNATURE = 8
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
_MANY = object()  # _PairIndex._solo once spans of two scopes were seen

#: Returned by ``Enricher.compute_attributes(..., render=False)`` in place of the attribute dict for a call whose
#: attributes are the standard priced set: the caller renders them itself from the ``Cost`` (see
#: :meth:`Enricher.standard_figures`). Identity is the contract: test with ``is``. (An empty read-only mapping, so
#: that code which does not expect it adds nothing rather than failing.)
UNRENDERED: Mapping[str, Any] = MappingProxyType({})
# Any of these on a span means it arrived with cost attributes (which we replace when we price it).
_COST_KEYS = frozenset(v for k, v in vars(A).items() if k.startswith("COST_") and isinstance(v, str)) | {
    A.LANGFUSE_COST_DETAILS}
_LAYERS_OR_COST = _COST_KEYS | _LAYER_INPUTS


_BEDROCK_VENDORS = ("anthropic.", "meta.", "amazon.", "mistral.", "cohere.", "ai21.", "deepseek.", "qwen.",
                    "openai.", "writer.", "twelvelabs.", "stability.", "luma.", "moonshot.", "minimax.", "google.",
                    "nvidia.")
_FAMILIES: dict[str, str] = {}
_FAMILIES_MAX = 4096
family_cache_stats = {"clears": 0}


def model_family(model: str | None) -> str:
    """The model a name stands for, for pairing two spans of one call: ``gpt-4o-mini-2024-07-18``,
    ``openai/gpt-4o-mini`` and ``gpt-4o-mini`` are one family, as are ``us.anthropic.claude-haiku-4-5-20251001-v1:0``
    and ``claude-haiku-4-5-20251001`` (the last name pricing resolution would try, less a Bedrock vendor prefix).
    Memoised, bounded (cleared when full, counted)."""
    if not model:
        return ""
    found = _FAMILIES.get(model)
    if found is None:
        found = candidates(model)[-1].name
        if found.startswith(_BEDROCK_VENDORS):
            found = found.split(".", 1)[1]
        if len(_FAMILIES) >= _FAMILIES_MAX:
            _FAMILIES.clear()
            family_cache_stats["clears"] += 1
        _FAMILIES[model] = found
    return found


class _DedupIndex:
    """Bounded LRU of (provider, response id) -> (span id hex of the span that carries the call, detail).
    Counts evictions."""

    def __init__(self, capacity: int, lock: Any = None) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, str], tuple[str, int]] = OrderedDict()
        self._lock = lock if lock is not None else threading.Lock()
        self.evicted = 0

    def get(self, key: tuple[str, str]) -> tuple[str, int] | None:
        """The claim recorded for ``key``, if any."""
        with self._lock:
            return self._get(key)

    def claim(self, key: tuple[str, str], span_id: str, detail: int) -> tuple[str, int] | None:
        """Record ``key`` for this span, or return the earlier claim if there is one."""
        with self._lock:
            prior = self._get(key)
            if prior is None:
                self._put(key, span_id, detail)
            return prior

    def _get(self, key: tuple[str, str]) -> tuple[str, int] | None:  # caller holds the lock
        prior = self._items.get(key)
        if prior is not None:
            self._items.move_to_end(key)
        return prior

    def _put(self, key: tuple[str, str], span_id: str, detail: int) -> None:  # caller holds the lock
        self._items[key] = (span_id, detail)
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
            self.evicted += 1

    def __len__(self) -> int:
        return len(self._items)


# One LLM span remembered by :class:`_PairIndex`: a tuple of immutable values, which the garbage collector stops
# tracking (a slotted object per span kept ~65k live containers in view of every full collection: measured at
# several microseconds per span in bench_capture). Fields:
_SPAN, _SID, _PARENT, _TRACE, _SCOPE, _PROV, _FAM, _NIN, _NOUT, _START, _END, _COSTED, _RID, _DETAIL = range(14)
# _SPAN: span id in hex (what duplicate_of names); _SID/_PARENT/_TRACE: the ids compared for the relation, ints
# for SDK spans (never formatted) or hex strings for plain data, never mixed; _COSTED: has usage or an upstream
# cost, so it may carry the call.


def _same_call(c: tuple, e: tuple, taken: tuple[str, ...]) -> bool:
    """Whether ``e``, from another instrumentation, can be the same API call as the remembered ``c`` (not their
    relation in the trace, see :meth:`_PairIndex.match`); ``taken`` are the scopes already paired with ``c``."""
    if c[_SCOPE] == e[_SCOPE] or e[_SCOPE] in taken or c[_PROV] != e[_PROV] or c[_FAM] != e[_FAM]:
        return False
    if c[_RID] is not None and e[_RID] is not None and c[_RID] != e[_RID]:
        return False
    if c[_NIN] is not None and e[_NIN] is not None and c[_NIN] != e[_NIN]:
        return False
    if c[_NOUT] is not None and e[_NOUT] is not None and c[_NOUT] != e[_NOUT]:
        return False
    # overlapping in time (a missing time, 0, is not evidence against)
    return not (c[_START] and e[_END] and c[_START] > e[_END]) and not (e[_START] and c[_END] and e[_START] > c[_END])


class _PairIndex:
    """Bounded index of recent LLM spans, to recognise two spans of one API call that share no response id
    (DESIGN D16): at most ``capacity`` spans by trace (at most :data:`_PAIRS_PER_TRACE` in one trace), and at most
    ``capacity`` spans by usage signature (at most :data:`_SCOPES_PER_SIGNATURE` scopes of
    :data:`_PAIRS_PER_SIGNATURE` spans each); ``evicted`` counts every drop.

    Two spans are one call when they come from *different* instrumentation scopes (two real calls in parallel come
    from the same instrumentation, so they are never merged), name the same provider and model family, report the
    same token counts where both report them, overlap in time, and either sit in one trace as parent and child or
    as siblings, or (both with usage) one of them is the root of a trace of its own (an emitter that starts its
    span on another thread, or outside the current context). Pairing is one-to-one per scope, so identical calls in
    parallel pair off one to one and each is still charged once.

    Entries are tuples (see ``_SPAN`` ...); what pairing changes (the span that carries the call, the scopes
    already paired) is kept in ``_paired``, for the few spans that were paired, and dropped with their trace.

    Two spans pair only across scopes, and most processes run one LLM instrumentation. So while every span has come
    from one scope, a span is only appended to ``_pending`` (its last ``capacity`` spans, in order; drops counted),
    which costs a fraction of indexing it (:meth:`solo`); the first span of a second scope replays them into the
    indexes (:meth:`_replay`), which then hold what they would have held had each span been indexed as it came
    (matching one scope's spans among themselves pairs nothing; only a span seen again is told apart, as ever).
    """

    def __init__(self, capacity: int, lock: Any = None) -> None:
        self.capacity = capacity
        # oldest first sight evicted first (twins end close together); OrderedDict, because evicting from the front
        # of a plain dict leaves dummy slots that every later next(iter(d)) walks over
        self._by_trace: OrderedDict[Any, tuple[tuple, ...]] = OrderedDict()
        # usage signature -> instrumentation scope -> spans: a span looks only at other scopes' spans, so an app
        # traced by one instrumentation scans nothing here
        self._by_usage: OrderedDict[tuple[str, str, int | None, int | None], dict[str, tuple[tuple, ...]]] = \
            OrderedDict()
        # (trace, sid) -> (carrier span id or None, scopes paired with it), for spans that were paired
        self._paired: dict[tuple[Any, Any], tuple[str | None, tuple[str, ...]]] = {}
        self._lock = lock if lock is not None else threading.Lock()
        self._trace_entries = 0  # spans held in _by_trace, and in _by_usage: each at most ``capacity``
        self._usage_entries = 0
        self.evicted = 0
        # the one scope every span so far came from (None: no span yet; _MANY: a second scope was seen), and
        # those spans, oldest first, while it is one
        self._solo: Any = None
        self._pending: deque[tuple] = deque(maxlen=capacity)

    def solo(self, e: tuple) -> bool:
        """Remember ``e`` without indexing it, and return True, when every span so far (``e`` too) came from
        ``e``'s scope: no twin can exist. Otherwise, on the first span of a second scope, index the spans kept
        so far; return False (the caller matches ``e``). Caller holds the lock."""
        solo = self._solo
        if solo != e[_SCOPE]:
            if solo is not None:
                if solo is not _MANY:
                    self._replay()
                return False
            self._solo = e[_SCOPE]
        pending = self._pending
        if len(pending) == self.capacity:
            self.evicted += 1  # the oldest goes, as the indexes would drop it
        pending.append(e)
        return True

    def _replay(self) -> None:  # caller holds the lock
        if self._solo is not _MANY:
            self._solo = _MANY
            pending, self._pending = self._pending, deque()
            for e in pending:
                self._match(e)  # pairs nothing (one scope); indexes e, or sees it is a span seen again

    def carrier(self, c: tuple) -> str | None:
        """The span id of the span that carries ``c``'s call (``None``: no span with usage yet)."""
        state = self._paired.get((c[_TRACE], c[_SID]))
        if state is not None:
            return state[0]
        return c[_SPAN] if c[_COSTED] else None

    def match(self, e: tuple) -> tuple | None:
        """The remembered span ``e`` is a twin of, if any (a span that may carry cost is preferred, and a span
        that may carry cost is only ever paired with another one), then remember ``e``. Marks both paired."""
        with self._lock:
            self._replay()
            twin = self._match(e)
        return None if twin is not None and e[_COSTED] and not twin[_COSTED] else twin

    def _match(self, e: tuple) -> tuple | None:  # caller holds the lock
        # As match(), except that a twin without cost for an ``e`` with cost is returned too: ``e`` carries the
        # call, and the twin (ended earlier, already recorded as no_usage) is the span it supersedes.
        paired = self._paired
        best = None
        best_taken: tuple[str, ...] = ()
        trace = e[_TRACE]
        again = False
        for c in self._by_trace.get(trace, ()):
            if c[_SID] == e[_PARENT] or c[_PARENT] == e[_SID] or c[_PARENT] == e[_PARENT]:
                if c[_SID] == e[_SID]:
                    # the same span again (an exporter's retry to serve, a file loaded twice): remembered once,
                    # or each copy would lengthen its trace's list, which every later span of the trace scans
                    again = True
                    continue
                state = paired.get((trace, c[_SID]))
                taken = state[1] if state is not None else ()
                if _same_call(c, e, taken):
                    if c[_COSTED]:
                        best, best_taken = c, taken
                        break
                    if best is None:
                        best, best_taken = c, taken
        usage_key = (e[_PROV], e[_FAM], e[_NIN], e[_NOUT])
        by_scope = self._by_usage.get(usage_key) if e[_COSTED] and e[_NIN] is not None else None
        if by_scope and (best is None or not best[_COSTED]):
            for scope, seen in by_scope.items():
                if scope == e[_SCOPE]:
                    continue
                for c in seen:
                    if c[_TRACE] != trace and (e[_PARENT] is None or c[_PARENT] is None):
                        state = paired.get((c[_TRACE], c[_SID]))
                        taken = state[1] if state is not None else ()
                        if _same_call(c, e, taken):
                            best, best_taken = c, taken
                            break
                if best is not None and best[_COSTED]:
                    break
        if best is not None:
            key = (best[_TRACE], best[_SID])
            best_carrier = self.carrier(best)
            paired[key] = (best_carrier, best_taken + (e[_SCOPE],))
            if not e[_COSTED] or best[_COSTED]:
                # (a span with usage never defers to one without: it carries the call, and the other is used up)
                paired[(trace, e[_SID])] = (best_carrier, (best[_SCOPE], *best_taken))
        if not again:
            self._remember(e, usage_key)
        return best

    def _remember(self, e: tuple, usage_key: tuple[str, str, int | None, int | None]) -> None:
        # Both maps are bounded by their total number of entries (``capacity`` each), not only by their number of
        # keys: 16,384 traces of 64 spans, or signatures of 8 scopes x 16 spans, would be a million entries
        # (~100 MB in serve under a client sending distinct names); oldest first sight goes first, counted.
        by_trace = self._by_trace
        trace = e[_TRACE]
        seen = by_trace.get(trace)
        if seen is None:
            by_trace[trace] = (e,)
            self._trace_entries += 1
        elif len(seen) >= _PAIRS_PER_TRACE:
            # One trace with thousands of LLM calls (a fan-out, or a hostile trace) must not grow one list without
            # bound, or make every match scan it: the oldest goes, counted.
            by_trace[trace] = seen[1:] + (e,)
            self.evicted += 1
            self._forget(trace, seen[:1])
        else:
            by_trace[trace] = seen + (e,)
            self._trace_entries += 1
        while self._trace_entries > self.capacity and len(by_trace) > 1:
            old_trace, old = by_trace.popitem(last=False)
            self._trace_entries -= len(old)
            self.evicted += len(old)
            self._forget(old_trace, old)
        if e[_COSTED] and e[_NIN] is not None:
            by_usage = self._by_usage
            scopes = by_usage.get(usage_key)
            if scopes is None:
                by_usage[usage_key] = scopes = {}
            seen = scopes.get(e[_SCOPE])
            if seen is None:
                if len(scopes) >= _SCOPES_PER_SIGNATURE:  # many instrumentations of one call is not real: cap it
                    dropped = len(scopes.pop(next(iter(scopes))))
                    self.evicted += dropped
                    self._usage_entries -= dropped
                scopes[e[_SCOPE]] = (e,)
                self._usage_entries += 1
            elif len(seen) >= _PAIRS_PER_SIGNATURE:
                scopes[e[_SCOPE]] = seen[1:] + (e,)
                self.evicted += 1
            else:
                scopes[e[_SCOPE]] = seen + (e,)
                self._usage_entries += 1
            while self._usage_entries > self.capacity and len(by_usage) > 1:
                _, old_scopes = by_usage.popitem(last=False)
                dropped = sum(map(len, old_scopes.values()))
                self._usage_entries -= dropped
                self.evicted += dropped

    def _forget(self, trace: Any, entries: tuple[tuple, ...]) -> None:
        if self._paired:
            for c in entries:
                self._paired.pop((trace, c[_SID]), None)

    def __len__(self) -> int:
        """Spans remembered (while one scope is seen, a span seen again counts again: see :meth:`solo`)."""
        with self._lock:
            return sum(len(v) for v in self._by_trace.values()) + len(self._pending)


class Enricher:
    """Computes cost attributes for spans. Thread-safe. Its methods never raise on span data."""

    def __init__(self, book: PriceBook, *, dedup_size: int = _DEFAULT_DEDUP, langfuse: bool = True) -> None:
        if dedup_size < 1:
            raise ValueError("dedup_size must be >= 1")
        self.book = book
        self._lock = threading.Lock()  # one lock for both indexes: a span's pairing is one step
        self.dedup = _DedupIndex(dedup_size, self._lock)
        self.pairs = _PairIndex(dedup_size, self._lock)
        self.langfuse = langfuse
        self._providers: dict[str, tuple[str, str]] = {}
        # an SDK span's attribute names, in order -> the compiled reader of its shape (see _compute); bounded
        # (threads racing at the cap may each add one more), and ``names_full`` counts the spans read without it
        # once full
        self._by_names: dict[tuple[str, ...], Any] = {}
        self.names_full = 0
        # price()'s validated-input fast path, when the book is ours (tests and wrappers may pass a look-alike)
        self._price_plain = (book._price_plain  # noqa: SLF001
                             if isinstance(book, PriceBook) and type(book).price is PriceBook.price else None)

    def compute(self, span: ReadableSpan, attrs: Mapping[str, Any] | None = None,
                ) -> tuple[dict[str, Any] | None, str | None, Call | None, Cost | None]:
        """Return ``(attributes to add, status, call, cost)``; ``(None, None, None, None)`` for non-LLM spans.

        ``attrs``: the span's attributes when the caller already holds them (``plain_attributes(span)``).
        Raises only on bugs (the caller counts and survives them); bad span data never raises.
        """
        if isinstance(span, ReadableSpan):  # the SDK's span: its fields (each property is a Python call)
            ctx, start, end = span._context, span._start_time, span._end_time  # noqa: SLF001
        else:
            ctx, start, end = span.context, span.start_time, span.end_time
        return self._compute(plain_attributes(span) if attrs is None else attrs,
                             _hex_span_id(ctx.span_id) if ctx else None, start, end, span)

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
        # ``ids`` is the span (its trace and parent are only formatted when it is paired) or a
        # (trace_id, parent_span_id, scope) tuple.
        # Kept as one function (about 110 lines): it runs once per LLM span on the user's thread, where every call counts
        # (PriceBook.price's warm path measured 17% slower when it called one helper); not re-measured here.
        if type(ids) is tuple:
            scope = ids[2]
            call = read_call(attrs, scope)  # normalised per emitter (D16)
        else:
            inst = ids._instrumentation_scope if isinstance(ids, ReadableSpan) else \
                getattr(ids, "instrumentation_scope", None)  # noqa: SLF001 - as above
            scope = inst.name if inst is not None else ""
            # An SDK span (it carries an LLM hint): its reader found by its attribute names in order, which spans
            # of one instrumentation repeat (half the cost of read_call's intersection with the known names).
            names = tuple(attrs) if len(attrs) <= _NAMES_KEY_MAX else None
            reader = self._by_names.get(names) if names is not None else None
            if reader is not None:
                call = reader(attrs)
                if scope and scope in EMITTER_CONVENTIONS:
                    normalise(call, EMITTER_CONVENTIONS[scope])
            else:
                call = read_call(attrs, scope)
                if names is not None:
                    if len(self._by_names) < _NAMES_MAX:
                        reader = shape_reader(attrs)
                        if reader is not None:
                            self._by_names[names] = reader
                    else:
                        self.names_full += 1
        if not call.is_llm_call:
            return None, None, None, None
        call_flags = call.flags
        pricing_provider, provider = self._provider(call.provider)
        n_in = call.input_tokens
        n_out = call.output_tokens
        # Counts reported with impossible values (NaN, inf, negative): flagged bad_value:<count>, and the call
        # is priced on what else it reports rather than called "partial" (issue 20).
        bad = bad_counts(call) if call.bad else ()
        supersedes = None
        if span_id is not None:
            twin = self._pair(call, provider, span_id, start_ns, end_ns, ids, bool(call_flags), scope)
            if type(twin) is str:
                # this span carries the call; its twin without usage ended first and was recorded as no_usage
                # (already exported): say which, so the ledger counts the call once (a span with usage or an
                # upstream cost gets this far: every return below carries it)
                supersedes = twin
            elif twin is not None:
                out: dict[str, Any] = {A.COST_STATUS: "duplicate", A.COST_DUPLICATE_OF: twin[0]}
                if twin[1]:
                    out[A.COST_FLAGS] = ("more_detailed",)
                if self.langfuse:
                    # Langfuse prices any generation that has usage but no cost; this call is already paid for.
                    out[A.LANGFUSE_COST_DETAILS] = '{"total": 0}'
                return out, "duplicate", call, None
        if call.provided_cost is not None:
            out = {A.COST_STATUS: "provided", A.COST_CURRENCY: "USD"}
            if A.COST_TOTAL not in attrs:
                out[A.COST_TOTAL] = call.provided_cost
            if self.langfuse and A.LANGFUSE_COST_DETAILS not in attrs:
                out[A.LANGFUSE_COST_DETAILS] = json.dumps({"total": call.provided_cost})
            if supersedes is not None:
                out[A.COST_SUPERSEDES] = supersedes
            return out, "provided", call, None
        if n_in is None and n_out is None:
            if bad:
                return ({A.COST_STATUS: "no_usage", A.COST_FLAGS: tuple(f"bad_value:{q}" for q in bad)}, "no_usage",
                        call, None)
            return {A.COST_STATUS: "no_usage"}, "no_usage", call, None

        # Embeddings have no output side; anything else missing one side is an incomplete report.
        partial = (n_in is None and "input_tokens" not in bad) or (
            n_out is None and "output_tokens" not in bad and call.operation not in _INPUT_ONLY_OPS)
        model = call.model or call.request_model
        if model is None:
            out = {A.COST_STATUS: "unpriced", A.COST_REASON: "the span names no model (gen_ai.response.model or "
                   "gen_ai.request.model)"}
            if supersedes is not None:
                out[A.COST_SUPERSEDES] = supersedes
            return out, "unpriced", call, None
        if provider == "bedrock" and "." not in model:
            # OpenInference's Bedrock InvokeModel spans name the model as the vendor's reply does (claude-haiku-4-5-
            # 20251001); on Bedrock that model is the vendor's namespace plus the name (anthropic.claude-...).
            ns = vendor_of(model.lower())
            if ns in BEDROCK_NAMESPACES:
                model = f"{ns}.{model}"
        n_in = n_in or 0
        n_out = n_out or 0
        cost = None
        tier = _tier(call.service_tier)
        if tier is None and call.region is None and type(start_ns) is int and self._price_plain is not None \
                and not (call.input_audio_tokens or call.output_audio_tokens or call.web_search_calls):
            cost = self._price_plain(
                model, pricing_provider, n_in, n_out, call.cache_read_tokens or 0, call.cache_write_tokens or 0,
                call.cache_write_1h_tokens or 0, call.reasoning_tokens or 0, start_ns)
        if cost is None:
            cost = self.book.price(
                model, provider=pricing_provider, input_tokens=n_in, output_tokens=n_out,
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
            if supersedes is not None:
                out[A.COST_SUPERSEDES] = supersedes
            return out, "unpriced", call, cost
        status = "partial" if partial or cost.status == "partial" else "priced"
        if not render and len(cost._units) == 5 and not cost.flags and not bad and not call_flags \
                and supersedes is None \
                and (_LAYERS_OR_COST.isdisjoint(attrs) or (not n_in and _COST_KEYS.isdisjoint(attrs))):
            return UNRENDERED, status, call, cost
        out = self._priced_attributes(cost, status)
        if supersedes is not None:
            out[A.COST_SUPERSEDES] = supersedes
        if bad or call_flags:
            out[A.COST_FLAGS] = tuple(out.get(A.COST_FLAGS, ())) + tuple(f"bad_value:{q}" for q in bad) + call_flags
        if not _LAYERS_OR_COST.isdisjoint(attrs):  # one scan of the span's keys for the two rare cases below
            if n_in and not _LAYER_INPUTS.isdisjoint(attrs):
                self._add_layers(out, attrs, n_in, cost)
            if not _COST_KEYS.isdisjoint(attrs) and any(k in attrs for k in out):
                # The span carried cost attributes we could not use (see Call.bad); ours replace them.
                out[A.COST_FLAGS] = tuple(out.get(A.COST_FLAGS, ())) + ("replaced_upstream_cost",)
        return out, status, call, cost

    def _provider(self, name: str | None) -> tuple[str | None, str]:
        """(the name to price with, the book's provider id or that name) for a span's provider name: an emitter's
        own name mapped through :data:`~otel_costattr.attributes.PROVIDER_NAMES` (``aws`` -> ``bedrock``).
        Memoised: a handful of names recur."""
        if name is None:
            return None, ""
        found = self._providers.get(name)
        if found is None:
            mapped = A.PROVIDER_NAMES.get(name.strip().lower(), name)
            found = (mapped, self.book.canonical_provider(mapped) or mapped)
            if len(self._providers) < 256:
                self._providers[name] = found
        return found

    def _pair(self, call: Call, provider: str, span_id: str, start_ns: int | None, end_ns: int | None,
              ids: Any, input_uncertain: bool = False, scope: str = "") -> tuple[str, bool] | str | None:
        """(span id of the span that carries this call, whether this span is more detailed) when another span
        already stands for the same API call (DESIGN D5, D16); otherwise ``None``, and this span is remembered;
        or, when this span carries the call and a twin without usage ended before it (and was recorded as
        ``no_usage``), that twin's span id (a ``str``): this span supersedes it.

        Pairs on the response id where both spans have one, else on what they share (:class:`_PairIndex`). A span
        with usage or an upstream cost ("costed") never defers to one without: it carries the call. With
        ``input_uncertain`` (the emitter's input count may leave out cache tokens it did not report) the input
        count is not compared. ``scope``: the span's instrumentation scope name (an SDK span's; a tuple ``ids``
        carries its own).
        """
        rid = call.response_id
        n_in = call.input_tokens
        n_out = call.output_tokens
        costed = n_in is not None or n_out is not None or call.provided_cost is not None
        key = (provider, rid) if rid is not None else None
        if type(ids) is tuple:
            trace_id, parent_id, scope = ids
            sid: Any = span_id
        else:  # an SDK span: its ids are compared as the ints they are
            if isinstance(ids, ReadableSpan):  # its fields: the properties cost a Python call each
                ctx, parent = ids._context, ids._parent  # noqa: SLF001
            else:
                ctx, parent = ids.context, ids.parent
            trace_id, sid = (ctx.trace_id, ctx.span_id) if ctx is not None else (None, None)
            parent_id = parent.span_id if parent is not None else None
        seen = None
        if trace_id is not None:
            model = call.model or call.request_model
            seen = (span_id, sid, parent_id, trace_id, scope, provider,
                    (_FAMILIES.get(model) or model_family(model)) if model else "",
                    None if input_uncertain else n_in, n_out, start_ns or 0, end_ns or 0, costed, rid, call.detail)
        pairs = self.pairs
        with self._lock:
            if key is not None:
                dedup = self.dedup._items  # noqa: SLF001 - one lock for both indexes; _DedupIndex._get inlined
                prior = dedup.get(key)
                if prior is not None:
                    dedup.move_to_end(key)
                    if prior[0] != span_id:
                        return prior[0], costed and call.detail > prior[1]
            if seen is None or pairs.solo(seen):
                twin = None
            elif trace_id in pairs._by_trace:  # noqa: SLF001
                twin = pairs._match(seen)  # noqa: SLF001
            else:
                usage_key = (provider, seen[_FAM], seen[_NIN], n_out)
                scopes = pairs._by_usage.get(usage_key) if costed and seen[_NIN] is not None else None  # noqa: SLF001
                if scopes and (len(scopes) > 1 or scope not in scopes):
                    twin = pairs._match(seen)  # noqa: SLF001
                else:
                    # No other span of this trace, and no span of another scope with this usage: no twin can
                    # exist (_PairIndex._match would look at nothing); remember the span.
                    twin = None
                    pairs._remember(seen, usage_key)  # noqa: SLF001
            if twin is None or (costed and not twin[_COSTED]):
                if key is not None and costed:
                    self.dedup._put(key, span_id, call.detail)  # noqa: SLF001
                return None if twin is None else twin[_SPAN]
            twin_carrier = pairs.carrier(twin)
            carrier = twin_carrier or twin[_SPAN]
            if key is not None and costed and twin_carrier is not None:
                self.dedup._put(key, twin_carrier, twin[_DETAIL])  # noqa: SLF001
        return carrier, costed and call.detail > twin[_DETAIL]

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
            # standard_figures(cost), inlined (once per priced span; test_serve_wire holds the two equal)
            d = 10 ** cost._scale  # noqa: SLF001
            ui, ucr, ucw, uo, ur = u["input"], u["cache_read"], u["cache_write"], u["output"], u["reasoning"]
            fi, fcr, fcw, fo, fr = ui / d, ucr / d, ucw / d, uo / d, ur / d
            total = cost._total / d  # noqa: SLF001
            f_in, f_out = (ui + ucr + ucw) / d, (uo + ur) / d
            details = None
            if self.langfuse:
                which = (ui != 0, ucr != 0, ucw != 0, uo != 0, ur != 0)
                shape = _DETAIL_SHAPES.get(which) or _detail_shape(which)
                details = shape[0] % shape[1]((fi, fcr, fcw, fo, fr, total))
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


def _hex_span_id(span_id: int) -> str:
    """``format(span_id, "016x")``, in half the time for the 64-bit ids spans have."""
    try:
        return span_id.to_bytes(8, "big").hex()
    except (OverflowError, AttributeError):  # not a 64-bit unsigned int: what format() makes of it
        return format(span_id, "016x")


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
