"""Capture pipeline: us per span against the bare SDK in the same run, and memory over 1M spans.

Spans: ``chat`` is a realistic gen_ai chat span (6 request attributes at start, 6 response/usage attributes at
end); ``http`` is a plain HTTP client span (6 attributes at start, 1 at end), what most spans of a service are.
Both run inside a context carrying 5 baggage entries.

* sdk_batch[_http]:    TracerProvider + BatchSpanProcessor + no-op exporter
* sdk_batch_baggage:   the same + stock BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS)
* cost[_http]:         sdk_batch + CostSpanProcessor() beside it, the one-line form (DESIGN D1: priced in place
                       at OnEnding)
* cost_wrapped:        CostSpanProcessor(BatchSpanProcessor(...)), the wrapper form (also in place)
* ours:                baggage_processor() + CostSpanProcessor() + the batch processor (attribution + cost)
* floor_naive:         sdk_batch beside the least any pricing processor must do per span at OnEnding: read model
                       and two token counts from the span, one rate lookup, two multiplications; writes nothing
                       (so it is below every real implementation, ours included)
* floor_price:         floor_naive with our exact-money price step (PriceBook, warm plan) in place of the two
                       multiplications; still writes nothing
* floor_write:         floor_price, then writes a fixed set of the attributes DESIGN D4 writes (computed once,
                       outside the loop) into the ending span in place: the cost of D4's attributes alone, without
                       any of the work that decides them
* floor_d4:            floor_price, then renders D4's attributes from the price as the enricher does (the 13 figures
                       and the Langfuse cost details, on by default), writes them in place, and remembers the
                       call's response id in a bounded dict (the least de-duplication there is: D16's pairing of
                       spans without one is left out) and counts it: a floor under any implementation of what
                       issue 18 keeps (statuses, Langfuse details, de-duplication, stats), ours included
* floor_noop_http:     sdk_batch_http beside a processor that does nothing: the SDK's own charge for one more
                       processor (three hook calls per span), under every processor's HTTP span
* floor_d4_baggage:    sdk_batch_baggage with floor_d4 beside it: the same floor for the whole pipeline (the stock
                       baggage processor standing in for ours)

Targets (issue 18): chat span cost / sdk_batch <= 1.25x; http span cost_http / sdk_batch_http <= 1.02x;
ours / sdk_batch_baggage <= 1.15x; memory bounded. The floors show what is left once a span is read and priced;
floor_d4 and floor_d4_baggage are above the chat-span and whole-pipeline targets on this machine (2026-12-05:
1.30-1.36x and 1.25-1.27x), so those targets are out of reach for any processor that keeps what issue 18 keeps.
Times are this process's CPU time per span (all threads), median of interleaved rounds.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import time
from collections import OrderedDict

from _harness import interleaved, line, median
from opentelemetry import baggage, context
from opentelemetry.processor.baggage import ALLOW_ALL_BAGGAGE_KEYS, BaggageSpanProcessor
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

import otel_costattr as oc
from otel_costattr._capture._enrich import Enricher
from otel_costattr._capture._spanattrs import add_attributes

N = 3000
START = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
         "gen_ai.request.max_tokens": 1024, "gen_ai.request.temperature": 0.2, "server.address": "api.openai.com"}
END = {"gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.response.id": "chatcmpl-x",
       "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300,
       "gen_ai.usage.cache_read.input_tokens": 1024, "gen_ai.response.finish_reasons": ("stop",)}
HTTP_START = {"http.request.method": "GET", "url.full": "https://shop.example/api/orders/42",
              "server.address": "shop.example", "server.port": 443, "url.scheme": "https",
              "user_agent.original": "python-httpx/0.27"}
HTTP_END = {"http.response.status_code": 200}
BAGGAGE = {"customer_id": "acme-retail", "task_id": "refund-42", "agent_id": "support-bot", "skill_id": "sql",
           "workload_type": "interactive"}


_NAIVE_RATES = {"gpt-4o-2024-08-06": (2.5e-6, 10e-6)}


class _Floor(SpanProcessor):
    """Reads and prices each ending span the cheapest way, beside the batch processor (see the module docstring)."""

    def __init__(self, book: oc.PriceBook | None, write: dict | None = None, render: bool = False) -> None:
        self.write = write
        self.render = Enricher(book)._priced_attributes if render else None  # noqa: SLF001 - D4's rendering
        self.seen: OrderedDict = OrderedDict()  # (a plain dict's front deletions leave slots next(iter()) walks)
        self.counts = {"priced": 0}
        self.book = book
        self.price = book._price_plain if book is not None else None  # noqa: SLF001 - the validated fast path
        self.total = 0.0

    def _on_ending(self, span) -> None:  # noqa: ANN001
        d = span._attributes._dict  # noqa: SLF001 - the cheapest read there is
        model = d.get("gen_ai.response.model")
        if model is None:
            return
        n_in, n_out = d.get("gen_ai.usage.input_tokens", 0), d.get("gen_ai.usage.output_tokens", 0)
        if self.price is None:
            rates = _NAIVE_RATES.get(model)
            if rates is not None:
                self.total += n_in * rates[0] + n_out * rates[1]
        else:
            provider = d.get("gen_ai.provider.name")
            cost = self.price(model, provider, n_in, n_out, 0, 0, 0, 0, span.start_time)
            if cost is None:  # the first call of a model builds its plan
                cost = self.book.price(model, provider=provider, input_tokens=n_in, output_tokens=n_out,
                                       at=span.start_time)
            self.total += cost._total  # noqa: SLF001
            if self.render is not None:
                seen = self.seen
                seen[(provider, d.get("gen_ai.response.id"))] = span.context.span_id
                if len(seen) > 16_384:
                    seen.popitem(last=False)
                self.counts["priced"] += 1
                add_attributes(span, self.render(cost, "priced"), replace=True, plain=True)
        if self.write is not None:
            add_attributes(span, self.write, replace=True, plain=True)


def _d4_attributes(book: oc.PriceBook) -> dict:
    """What the Enricher writes on the benchmark's span (D4), computed once."""
    attrs = {**START, **END}
    extra, status, _, _ = Enricher(book).compute_attributes(attrs, span_id="00f067aa0ba902b7", start_ns=time.time_ns(),
                                                           end_ns=time.time_ns())
    assert status == "priced", status
    return extra


class _Noop(SpanProcessor):
    """A processor that does nothing in any hook: what the SDK charges for one more processor on the provider."""

    def _on_ending(self, span) -> None:  # noqa: ANN001
        pass


class NoopExporter(SpanExporter):
    def export(self, spans):  # noqa: ANN001, ANN201
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _provider(case: str, book: oc.PriceBook) -> TracerProvider:
    tp = TracerProvider()
    bsp = BatchSpanProcessor(NoopExporter(), max_queue_size=N * 2, max_export_batch_size=512)
    base = case.removesuffix("_http")
    if base == "sdk_batch_baggage":
        tp.add_span_processor(BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS))
    elif base == "cost":
        tp.add_span_processor(oc.CostSpanProcessor(book=book, dedup_size=1 << 16))
    elif base == "cost_wrapped":
        tp.add_span_processor(oc.CostSpanProcessor(bsp, book=book, dedup_size=1 << 16))
        return tp
    elif base == "ours":
        tp.add_span_processor(oc.baggage_processor())
        tp.add_span_processor(oc.CostSpanProcessor(book=book, dedup_size=1 << 16))
    elif base == "floor_naive":
        tp.add_span_processor(_Floor(None))
    elif base == "floor_price":
        tp.add_span_processor(_Floor(book))
    elif base == "floor_write":
        tp.add_span_processor(_Floor(book, _d4_attributes(book)))
    elif base == "floor_noop":
        tp.add_span_processor(_Noop())
    elif base == "floor_d4":
        tp.add_span_processor(_Floor(book, render=True))
    elif base == "floor_d4_baggage":
        tp.add_span_processor(BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS))
        tp.add_span_processor(_Floor(book, render=True))
    tp.add_span_processor(bsp)
    return tp


def _run(tp: TracerProvider, n: int, offset: int, http: bool = False) -> float:
    """CPU µs per span of this process (all threads, so the batch processor's export thread is counted).

    CPU time rather than wall time: this VM is shared, and wall time counts other tenants' work."""
    tracer = tp.get_tracer("bench")
    t = time.process_time_ns()
    if http:
        for _ in range(n):
            with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes=HTTP_START) as span:
                span.set_attributes(HTTP_END)
    else:
        end = dict(END)
        for i in range(n):
            end["gen_ai.response.id"] = f"chatcmpl-{offset + i}"
            with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=START) as span:
                span.set_attributes(end)
    tp.force_flush()
    return (time.process_time_ns() - t) / n / 1000


PAIR_ROUNDS = 41
PAIR_N = 600


def _paired(tp_a: TracerProvider, tp_b: TracerProvider, http: bool, counter) -> tuple[float, float, float]:  # noqa: ANN001
    """Median and quartiles of a/b, each round running both for ``PAIR_N`` spans back to back (alternating which
    goes first): on this shared VM other tenants' load drifts within seconds, so cases run far apart in time
    (as in one shuffled round of every case) differ by more than the few percent being measured."""
    ratios = []
    for r in range(PAIR_ROUNDS + 2):
        order = (tp_a, tp_b) if r % 2 else (tp_b, tp_a)
        t = {id(tp): _run(tp, PAIR_N, next(counter) * PAIR_N, http=http) for tp in order}
        if r >= 2:
            ratios.append(t[id(tp_a)] / t[id(tp_b)])
    q = statistics.quantiles(ratios, n=4)
    return statistics.median(ratios), q[0], q[2]


def _hook_us(book: oc.PriceBook, http: bool, baggage_too: bool = False, n: int = 3000) -> float:
    """CPU µs per span spent in our hooks alone (``on_start``, ``_on_ending``, ``on_end``, called as the SDK calls
    them) on ``n`` fresh spans, ended beforehand on a provider without processors. A tight loop with no SDK work
    in it, so it is far less exposed to this VM's noise than the end-to-end ratio; 1 + this / sdk_batch is the
    ratio the end-to-end runs estimate."""
    bare = TracerProvider().get_tracer("bench")
    spans = []
    for i in range(n):
        attrs = HTTP_START if http else START
        span = bare.start_span("GET" if http else "chat gpt-4o", kind=SpanKind.CLIENT, attributes=attrs)
        span.set_attributes(HTTP_END if http else {**END, "gen_ai.response.id": f"hook-{i}"})
        span.end()
        spans.append(span)
    readable = [s._readable_span() for s in spans]  # noqa: SLF001
    proc = oc.CostSpanProcessor(book=book, dedup_size=1 << 16)
    start = oc.baggage_processor().on_start if baggage_too else None
    ctx = context.get_current()
    t = time.process_time_ns()
    for span, done in zip(spans, readable):
        if start is not None:
            span._end_time = None  # noqa: SLF001 - the baggage processor writes only into a live span
            start(span, ctx)
            span._end_time = done.end_time  # noqa: SLF001
        proc.on_start(span, ctx)
        proc._on_ending(span)  # noqa: SLF001
        proc.on_end(done)
    return (time.process_time_ns() - t) / n / 1000


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        for row in f:
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1024
    return float("nan")


def main(long: bool = True) -> list[str]:
    book = oc.default_book()
    ctx = context.get_current()
    for k, v in BAGGAGE.items():
        ctx = baggage.set_baggage(k, v, ctx)
    token = context.attach(ctx)
    try:
        names = ("sdk_batch", "cost", "cost_wrapped", "sdk_batch_http", "cost_http", "sdk_batch_baggage", "ours",
                 "floor_naive", "floor_price", "floor_write", "floor_d4", "floor_d4_baggage", "floor_noop_http")
        providers = {c: _provider(c, book) for c in names}
        counter = iter(range(10**9))
        cases = {c: (lambda r, tp=tp, c=c: _run(tp, N, next(counter) * N, http=c.endswith("_http")))
                 for c, tp in providers.items()}
        s = interleaved(cases, rounds=15)
        out = ["capture (issue 18): us per span, median of 15 interleaved rounds"]
        for c in providers:
            out.append(line(f"{c}", f"{median(s[c]):.1f} us/span"))
        out.append(f"  ratios: median (p25-p75) over {PAIR_ROUNDS} rounds of {PAIR_N} spans each, the two cases run "
                   "back to back in alternating order")
        for a, b, target in (("cost", "sdk_batch", 1.25), ("cost_wrapped", "sdk_batch", 1.25),
                             ("cost_http", "sdk_batch_http", 1.02), ("ours", "sdk_batch_baggage", 1.15),
                             ("floor_naive", "sdk_batch", None), ("floor_price", "sdk_batch", None),
                             ("floor_write", "sdk_batch", None), ("floor_d4", "sdk_batch", None),
                             ("floor_d4_baggage", "sdk_batch_baggage", None),
                             ("floor_noop_http", "sdk_batch_http", None)):
            r, lo, hi = _paired(providers[a], providers[b], a.endswith("_http"), counter)
            out.append(line(f"{a} / {b}", f"{r:.3f}x ({lo:.3f}-{hi:.3f})",
                            f"target <= {target:.2f}x" if target else "", (r <= target) if target else None))
        out.append("  our hooks alone, CPU us per span (median of 9 runs of 3000 fresh spans); 1 + hooks / bare SDK span:")
        for label, http, base in (("LLM chat span", False, "sdk_batch"), ("HTTP span", True, "sdk_batch_http")):
            us = median([_hook_us(book, http) for _ in range(9)])
            r = 1 + us / median(s[base])
            target = 1.02 if http else 1.25
            out.append(line(f"hooks, {label} / {base}", f"{us:.2f} us -> {r:.3f}x", f"target <= {target:.2f}x",
                            r <= target))
        for tp in providers.values():
            tp.shutdown()
        if long:
            tp = _provider("ours", book)
            samples = []
            total = 1_000_000
            step = 250_000
            gc.collect()
            base = _rss_mb()
            for i in range(0, total, step):
                _run(tp, step, i)
                gc.collect()
                samples.append(_rss_mb())
            tp.shutdown()
            growth = samples[-1] - samples[0]
            out.append(line("RSS after 250k / 500k / 750k / 1M spans (ours)",
                            " / ".join(f"{x:.0f}" for x in samples) + " MB"))
            out.append(line("growth from 250k to 1M spans", f"{growth:+.1f} MB", f"start {base:.0f} MB; bounded",
                            growth < 20))
    finally:
        context.detach(token)
    return out


if __name__ == "__main__":
    print("\n".join(main(long="--quick" not in sys.argv)))
