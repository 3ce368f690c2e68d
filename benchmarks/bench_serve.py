"""``otel-costattr serve`` hot path: decode + enrich + encode, in spans/s per core, against the bare decode +
re-encode of the same bytes in the same run.

Cases, per batch of ``BATCH`` spans (one ``ExportTraceServiceRequest``, as an SDK or collector sends it):

* baseline:        ``FromString`` + ``SerializeToString`` (what any OTLP proxy pays)
* serve:           ``ProtoEnricher.decode`` (parse, validation, ids, attributes read) + cost enrichment in the
                   message + ``SerializeToString``: what serve does with each request
* serve_gzip:      serve + the gzip (level 1) of the forwarded body, i.e. the whole CPU path of a forward
* enricher_only:   ``Enricher.compute_attributes`` alone on the same spans' attributes, already read into dicts:
                   the library's pricing step, which serve calls once per LLM span (not serve's own code)
* serve_stubbed:   serve with the pricing step replaced by a stub returning a fixed priced result (same 14
                   attributes): serve's own work, i.e. reading attributes and appending them, exactly
* naive:           the floor of research/perf.md §4 rebuilt here: decode, read 5 gen_ai attributes, a rate-table
                   lookup and two multiplications, append 3 double attributes, re-serialize (17.4 us/span,
                   57.6k spans/s, when that was measured). It calibrates the machine: the shared VM's speed varies
                   by 2x with the other tenants' load, so compare serve / naive across runs, not raw us.

The process runs with serve's malloc settings (``otel_costattr._serve._allocator``, applied by the serve command at
start-up), as a serve process does; every case in it shares them. What they save depends on the process's heap
history (up to ~450 fresh pages per 512-span request of the llm workload, about 5% of serve's time here):
``bench_allocator`` measures it, same-run.

Times are the thread's CPU time (``time.thread_time_ns``), i.e. per core: wall time on a shared, loaded
machine counts other tenants' work.

Workloads: ``llm`` (every span a priced chat call, four models, unique response ids, token counts drawn at
random: the worst case) and ``mixed`` (one chat span in five, the rest HTTP/DB spans, closer to a real trace).
Each round covers 32 distinct requests (16,384 spans), so values that differ per call in real traffic do not
repeat inside serve's bounded caches (a benchmark that replays a few requests measures those caches instead).

Target: serve >= 30,000 spans/s per core on the llm workload (research/perf.md §4 measured the naive floor of
the same work at 17.4 us/span, 57.6k spans/s, so the target is serve / naive <= 1.92x). The VM's speed varies by
2x, so the verdict that counts is the calibrated line (serve / naive in the same rounds, times 17.4 us). The
``enricher_only`` line shows how much of each LLM span is the library's pricing step (called with
``render=False``, as serve does) rather than serve's own protobuf work.
"""

from __future__ import annotations

import gc
import gzip
import random
import sys
import time

from _harness import interleaved, line, median, ratio
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from otel_costattr._serve._allocator import tune_for_serving
from otel_costattr._capture._enrich import UNRENDERED, Enricher
from otel_costattr._pricing._book import PriceBook
from otel_costattr._serve._codec import ProtoEnricher

BATCH = 512
TARGET = 30_000
PERF_MD_NAIVE_US = 17.4  # research/perf.md §4: the naive floor when the target was set
MODELS = [("openai", "gpt-4o-mini"), ("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"),
          ("openai", "gpt-4.1-mini")]


def _kv(key: str, value: object) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, tuple):
        for v in value:
            kv.value.array_value.values.add().string_value = v
    else:
        kv.value.string_value = str(value)
    return kv


def make_batch(workload: str, seed: int = 0) -> bytes:
    """One request of ``BATCH`` spans. Values that differ per call in real traffic (response ids, token counts)
    differ here too, and across seeds: serve caches attribute entries that repeat, and a benchmark whose
    every value repeats would measure only that cache."""
    rng = random.Random(seed)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([_kv("service.name", "checkout"), _kv("telemetry.sdk.language", "go")])
    ss = rs.scope_spans.add()
    ss.scope.name = "genai-instrumentation"
    for j in range(BATCH):
        sp = ss.spans.add()
        sp.trace_id = (seed * BATCH + j // 8 + 1).to_bytes(16, "big")
        sp.span_id = (seed * BATCH + j + 1).to_bytes(8, "big")
        sp.parent_span_id = (seed * BATCH + j + 10_000_000).to_bytes(8, "big")
        sp.kind = 3
        sp.start_time_unix_nano = 1_760_000_000_000_000_000 + j * 1000
        sp.end_time_unix_nano = sp.start_time_unix_nano + 900_000_000
        if workload == "llm" or j % 5 == 0:
            provider, model = MODELS[j % len(MODELS)]
            sp.name = f"chat {model}"
            n_in = rng.randint(200, 60_000)
            attrs: dict[str, object] = {
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
                "gen_ai.request.model": model, "gen_ai.request.max_tokens": 1024,
                "gen_ai.response.model": model, "gen_ai.response.id": f"resp-{seed}-{j}",
                "gen_ai.response.finish_reasons": ("stop",),
                "gen_ai.usage.input_tokens": n_in, "gen_ai.usage.output_tokens": rng.randint(10, 4000),
                "gen_ai.usage.cache_read.input_tokens": (n_in // 1024) * 1024 if rng.random() < 0.5 else 0,
                "server.address": "api.example.com",
                "customer_id": f"cust-{j % 13}", "task_id": "triage"}
        else:
            sp.name = "GET /orders/{id}" if j % 2 else "SELECT orders"
            attrs = {"http.request.method": "GET", "http.route": "/orders/{id}", "http.response.status_code": 200,
                     "server.address": "orders.internal", "url.path": f"/orders/{j}", "network.peer.port": 8080,
                     "customer_id": f"cust-{j % 13}"}
        sp.attributes.extend(_kv(k, v) for k, v in attrs.items())
    return req.SerializeToString()


_NAIVE_RATES = {"gpt-4o-mini": (0.15e-6, 0.6e-6), "gpt-4o": (2.5e-6, 10e-6), "claude-sonnet-4-5": (3e-6, 15e-6),
                "gpt-4.1-mini": (0.4e-6, 1.6e-6)}
_NAIVE_READ = {"gen_ai.provider.name", "gen_ai.request.model", "gen_ai.response.model", "gen_ai.usage.input_tokens",
               "gen_ai.usage.output_tokens"}


def naive(body: bytes) -> bytes:
    """research/perf.md §4's floor: no status logic, no aliases, no cache or tier rules, no Langfuse JSON."""
    req = ExportTraceServiceRequest.FromString(body)
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for sp in ss.spans:
                got = {}
                for kv in sp.attributes:
                    if kv.key in _NAIVE_READ:
                        v = kv.value
                        got[kv.key] = v.int_value if v.WhichOneof("value") == "int_value" else v.string_value
                rates = _NAIVE_RATES.get(got.get("gen_ai.response.model", ""))
                if rates is None:
                    continue
                inp = got.get("gen_ai.usage.input_tokens", 0) * rates[0]
                out = got.get("gen_ai.usage.output_tokens", 0) * rates[1]
                for key, value in (("gen_ai.cost.input_cost", inp), ("gen_ai.cost.output_cost", out),
                                   ("gen_ai.cost.total_cost", inp + out)):
                    kv = sp.attributes.add()
                    kv.key = key
                    kv.value.double_value = value
    return req.SerializeToString()


def main(rounds: int = 15) -> list[str]:
    tuned = tune_for_serving()  # as `otel-costattr serve` does at start-up
    book = PriceBook.load()
    enricher = ProtoEnricher(Enricher(book, dedup_size=1 << 16))
    out = [f"serve: decode + enrich + encode, batches of {BATCH} spans (us/span, median of {rounds} interleaved "
           f"rounds; serve's malloc settings {'applied' if tuned else 'NOT applied (not glibc, or MALLOC_* set)'})"]
    for workload in ("llm", "mixed"):
        # 32 distinct requests (16,384 spans) per round: more distinct values than serve's entry cache holds
        bodies = [make_batch(workload, seed) for seed in range(32)]
        reps = 1

        def baseline(_: int) -> float:
            t = time.thread_time_ns()
            for _ in range(reps):
                for b in bodies:
                    ExportTraceServiceRequest.FromString(b).SerializeToString()
            return (time.thread_time_ns() - t) / (reps * len(bodies) * BATCH) / 1000

        def serve(_: int, gz: bool = False) -> float:
            t = time.thread_time_ns()
            for _ in range(reps):
                for b in bodies:
                    decoded = enricher.decode(b, "application/x-protobuf")
                    enricher.enrich(decoded)
                    data = decoded.request.SerializeToString()
                    if gz:
                        gzip.compress(data, compresslevel=1, mtime=0)
            return (time.thread_time_ns() - t) / (reps * len(bodies) * BATCH) / 1000

        priced = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                  "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1200,
                  "gen_ai.usage.output_tokens": 300, "gen_ai.usage.cache_read.input_tokens": 1024}
        fixed = enricher.enricher.compute_attributes(priced, span_id=None, start_ns=1_760_000_000_000_000_000,
                                                     end_ns=1_760_000_001_000_000_000, render=False)
        assert fixed[0] is UNRENDERED, fixed  # the stub must take the path real priced spans take

        class _StubEnricher:
            def compute_attributes(self, attrs: object, **_: object) -> object:
                return fixed

            standard_figures = enricher.enricher.standard_figures

        stubbed = ProtoEnricher(_StubEnricher())  # type: ignore[arg-type]

        def serve_stubbed(_: int) -> float:
            t = time.thread_time_ns()
            for _ in range(reps):
                for b in bodies:
                    decoded = stubbed.decode(b, "application/x-protobuf")
                    stubbed.enrich(decoded)
                    decoded.request.SerializeToString()
            return (time.thread_time_ns() - t) / (reps * len(bodies) * BATCH) / 1000

        def naive_case(_: int) -> float:
            t = time.thread_time_ns()
            for _ in range(reps):
                for b in bodies:
                    naive(b)
            return (time.thread_time_ns() - t) / (reps * len(bodies) * BATCH) / 1000

        from otel_costattr._serve._codec import _WANTED, _value

        span_data = []
        for b in bodies:
            for sp in ExportTraceServiceRequest.FromString(b).resource_spans[0].scope_spans[0].spans:
                attrs = {kv.key: _value(kv.value) for kv in sp.attributes if kv.key in _WANTED}
                span_data.append((attrs, sp.span_id.hex(), sp.start_time_unix_nano, sp.end_time_unix_nano))
        compute = enricher.enricher.compute_attributes

        def enricher_only(_: int) -> float:
            t = time.thread_time_ns()
            for _ in range(reps):
                for attrs, sid, start, end in span_data:
                    if "gen_ai.operation.name" in attrs:
                        compute(attrs, span_id=sid, start_ns=start, end_ns=end, render=False)  # as serve does
            return (time.thread_time_ns() - t) / (reps * len(span_data)) / 1000

        # Sanity: the enriched message carries the cost (a benchmark of a no-op would be meaningless).
        counts = enricher.enrich(enricher.decode(bodies[0], "application/x-protobuf"))
        llm_spans = BATCH if workload == "llm" else (BATCH + 4) // 5
        assert counts.statuses.get("priced") == llm_spans, counts.statuses

        gc.collect()
        samples = interleaved({"baseline": baseline, "serve": serve, "naive": naive_case, "enricher": enricher_only,
                               "stubbed": serve_stubbed,
                               "serve_gzip": lambda r: serve(r, gz=True)}, rounds=rounds)
        b, s, g = median(samples["baseline"]), median(samples["serve"]), median(samples["serve_gzip"])
        n, e, st = median(samples["naive"]), median(samples["enricher"]), median(samples["stubbed"])
        per_core = 1e6 / s
        out.append(f" workload {workload!r}:")
        out.append(line("baseline decode + re-encode", f"{b:.2f} us/span", f"({1e6 / b:,.0f} spans/s)"))
        out.append(line("decode + enrich + encode", f"{s:.2f} us/span", f"{per_core:,.0f} spans/s per core",
                        ok=per_core >= TARGET if workload == "llm" else None))
        out.append(line("  ... + gzip (level 1) of the forward body", f"{g:.2f} us/span",
                        f"{1e6 / g:,.0f} spans/s per core"))
        out.append(line("  of which Enricher.compute_attributes (library)", f"{e:.2f} us/span",
                        f"{100 * e / s:.0f}% of serve"))
        out.append(line("  serve's own work (pricing stubbed - baseline)", f"{st - b:.2f} us/span"))
        out.append(line("naive floor (perf.md §4 shape)", f"{n:.2f} us/span", f"({1e6 / n:,.0f} spans/s)"))
        out.append(line("ratio serve / baseline (same rounds)", f"{ratio(samples, 'serve', 'baseline'):.1f}x"))
        rn = ratio(samples, "serve", "naive")
        out.append(line("ratio serve / naive floor", f"{rn:.2f}x"))
        if workload == "llm":
            # The VM's speed varies by 2x; the naive floor calibrates it. At the speed research/perf.md measured
            # (naive floor 17.4 us/span), serve would run at:
            calibrated = 1e6 / (rn * PERF_MD_NAIVE_US)
            out.append(line(f"  at perf.md's machine speed (naive {PERF_MD_NAIVE_US} us/span)",
                            f"{calibrated:,.0f} spans/s", "per core", ok=calibrated >= TARGET))
        out.append(line("ratio serve_gzip / baseline", f"{ratio(samples, 'serve_gzip', 'baseline'):.1f}x"))
    out.append(f"  target: >= {TARGET:,} spans/s per core for decode + enrich + encode on the 'llm' workload")
    return out


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    print("\n".join(main(rounds=5 if quick else 15)))
