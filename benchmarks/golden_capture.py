"""Golden check for hot-path changes to capture: the same seeded, varied spans through two trees, compared byte for byte.

Usage (from the repository root; ``OLD`` is a checkout or ``git archive`` of the tree before the change)::

    PYTHONPATH=OLD .venv/bin/python benchmarks/golden_capture.py > /tmp/old.json
    .venv/bin/python benchmarks/golden_capture.py > /tmp/new.json && cmp /tmp/old.json /tmp/new.json

Optional arguments: the number of spans (default 8000) and the seed (default 7). What is dumped: every attribute
(in order, floats by repr) and dropped count of LLM-ish spans priced in place by ``CostSpanProcessor`` under three
span-limit settings (several instrumentation scopes, parents, shared response ids, bad and missing counts, upstream
costs, token-layer hints, service tiers), its stats, metrics and listener calls; the same spans priced on the
fallback copy and through ``compute_attributes`` (rendered and not); and spans started by ``baggage_processor()``
under random baggage and layer hints. Not a test: the expected output is whatever the old tree produces.
"""

from __future__ import annotations

import json
import logging
import random
import sys
from collections import Counter

from opentelemetry import baggage, context, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind

import otel_costattr as oc
from otel_costattr._capture._enrich import UNRENDERED
from otel_costattr._capture._layers import memory, token_layers

logging.disable(logging.CRITICAL)  # the varied spans log every kind of warning once

R = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 7)

class Ids(IdGenerator):
    def generate_span_id(self): return R.getrandbits(64) or 1
    def generate_trace_id(self): return R.getrandbits(128) or 1

SCOPES = ["bench", "openai.instr", "opentelemetry.instrumentation.botocore.bedrock-runtime", "openinference.x", ""]
PROVIDERS = ["openai", "openai", "openai", "anthropic", "anthropic", "aws", "bedrock", "gemini", "nosuchvendor", None, "azure_openai", "OpenAI "]
MODELS = ["gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-mini", "gpt-4o", "gpt-4o-mini", "claude-3-5-haiku-20241022", "claude-sonnet-4-20250514", "claude-sonnet-4-5", "claude-haiku-4-5-20251001",
          "anthropic.claude-3-5-sonnet-20240620-v1:0", "us.anthropic.claude-haiku-4-5-20251001-v1:0", "no-such-model-x",
          "o3", "text-embedding-3-small", "gemini-2.5-flash", "gpt-5", "gpt-4.1-nano", None, "x" * 300]
OPS = ["chat", "embeddings", "invoke_agent", None, None, "text_completion", "execute_tool"]
RIDS = [f"r{i}" for i in range(40)]

def count():
    x = R.random()
    if x < 0.8: return R.choice([0, 1, 7, 100, 1024, 1200, 5000, 123457, R.randrange(10**6), R.randrange(10**9)])
    if x < 0.86: return None
    return R.choice([-5, float("nan"), float("inf"), "1200", " 300 ", 12.0, 12.5, "abc", 2**70, True, [1, 2]])

def attrs_for():
    a = {}
    op = R.choice(OPS)
    if op: a["gen_ai.operation.name"] = op
    p = R.choice(PROVIDERS)
    if p: a[R.choice(["gen_ai.provider.name", "gen_ai.system", "llm.provider"])] = p
    m = R.choice(MODELS)
    if m: a[R.choice(["gen_ai.request.model", "llm.model_name"])] = m
    if R.random() < 0.7:
        m2 = R.choice(MODELS)
        if m2: a[R.choice(["gen_ai.response.model", "llm.response.model"])] = m2
    if R.random() < 0.6: a["gen_ai.response.id"] = R.choice(RIDS)
    for names, prob in ((oc.attributes.READ["input_tokens"], 0.8), (oc.attributes.READ["output_tokens"], 0.75),
                        (oc.attributes.READ["cache_read_tokens"], 0.3), (oc.attributes.READ["cache_write_tokens"], 0.15),
                        (oc.attributes.READ["cache_write_5m_tokens"], 0.05), (oc.attributes.READ["cache_write_1h_tokens"], 0.05),
                        (oc.attributes.READ["reasoning_tokens"], 0.2), (oc.attributes.READ["input_audio_tokens"], 0.05),
                        (oc.attributes.READ["output_audio_tokens"], 0.05), (oc.attributes.READ["web_search_calls"], 0.05)):
        if R.random() < prob:
            v = count()
            if v is not None:
                a[R.choice(names)] = v
    if R.random() < 0.05: a["gen_ai.cost.total_cost"] = R.choice([0.5, 1e-5, -1.0, "0.25", float("nan")])
    if R.random() < 0.05: a["gen_ai.cost.status"] = "priced"
    if R.random() < 0.08: a[R.choice(oc.attributes.READ["service_tier"])] = R.choice(["batch", "flex", "priority", "default", "auto"])
    if R.random() < 0.04: a["gen_ai.cost.region"] = R.choice(["us", "eu", "global"])
    if R.random() < 0.1: a["gen_ai.request.stream"] = True
    if R.random() < 0.06:
        a["otel_costattr.layer.prompt_tokens"] = R.randrange(0, 500)
        a["otel_costattr.layer.tool_tokens"] = R.randrange(0, 500)
    if R.random() < 0.04:
        a["gen_ai.input.messages"] = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hello " * R.randrange(1, 50)}]}])
    if R.random() < 0.1: a["customer_id"] = R.choice(["acme", "globex", "initech"])
    if R.random() < 0.1: a["workload_type"] = R.choice(["interactive", "batch"])
    for i in range(R.choice([0, 0, 2, 6])):
        a[f"http.extra.{i}"] = "v" * R.randrange(1, 40)
    return a

def dump_attrs(d):
    out = []
    for k, v in d.items():
        if isinstance(v, float):
            v = repr(v)
        elif isinstance(v, tuple):
            v = [repr(x) for x in v]
        out.append([k, v if isinstance(v, (str, int, list, bool)) or v is None else repr(v)])
    return out  # insertion order matters (eviction)

def metric_dump(reader):
    data = reader.get_metrics_data()
    out = []
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for dp in m.data.data_points:
                    out.append([m.name, sorted(dp.attributes.items()), repr(dp.value)])
    return sorted(out, key=repr)

def main(n):
    res = {}
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    listened = []
    exp = InMemorySpanExporter()
    limits = [SpanLimits(), SpanLimits(max_span_attributes=14), SpanLimits(max_span_attributes=20, max_attribute_length=12)]
    procs = []
    tps = []
    for lim in limits:
        tp = TracerProvider(id_generator=Ids(), span_limits=lim)
        p = oc.CostSpanProcessor(book=oc.default_book(), meter_provider=mp, metric_keys=("workload_type", "customer_id"),
                                 strict=True, dedup_size=64,
                                 cost_listeners=[lambda a, c: listened.append([a.get("customer_id"), repr(c)])])
        tp.add_span_processor(p)
        tp.add_span_processor(SimpleSpanProcessor(exp))
        procs.append(p); tps.append(tp)
    t0 = 1_750_000_000_000_000_000
    for g in range(n // 4):
        k = R.randrange(len(tps))
        tracers = [tps[k].get_tracer(s) for s in SCOPES]
        root_ctx = None
        stack = []
        for j in range(R.choice([1, 1, 2, 3, 4])):
            tr = R.choice(tracers)
            ctx = context.get_current() if not stack or R.random() < 0.2 else trace.set_span_in_context(R.choice(stack))
            st = t0 + R.randrange(0, 10**10)
            sp = tr.start_span("chat", kind=SpanKind.CLIENT, context=ctx, attributes=attrs_for(), start_time=st)
            stack.append(sp)
        R.shuffle(stack)
        for sp in stack:
            sp.end(end_time=sp.start_time + R.randrange(0, 10**10))
        t0 += R.randrange(0, 10**9)
    spans = exp.get_finished_spans()
    res["spans"] = [[s.name, format(s.context.span_id, "016x"), dump_attrs(s.attributes), s.dropped_attributes] for s in spans]
    res["stats"] = [p.stats.snapshot() for p in procs]
    res["metrics"] = metric_dump(reader)
    res["listened"] = listened
    # fallback copy path and plain-data path on the same spans (fresh enrichers)
    fb = oc.CostSpanProcessor(book=oc.default_book(), dedup_size=64)
    plain = oc.CostSpanProcessor(book=oc.default_book(), dedup_size=64).enricher
    fbo, plo = [], []
    for s in spans:
        orig = {k: v for k, v in s.attributes.items() if not (k.startswith("gen_ai.cost.") or k.startswith("langfuse."))}
        r = ReadableSpan(name=s.name, context=s.context, parent=s.parent, attributes=orig, start_time=s.start_time,
                         end_time=s.end_time, instrumentation_scope=s.instrumentation_scope, kind=s.kind)
        c = fb.enrich(r)
        fbo.append(dump_attrs(c.attributes))
        for render in (True, False):
            out, status, call, cost = plain.compute_attributes(orig, span_id=format(s.context.span_id, "016x"),
                start_ns=s.start_time, end_ns=s.end_time, trace_id=format(s.context.trace_id, "032x"),
                parent_span_id=format(s.parent.span_id, "016x") if s.parent else None,
                scope=s.instrumentation_scope.name if s.instrumentation_scope else "", render=render)
            if out is UNRENDERED:
                out = {"UNRENDERED": [repr(x) for x in plain.standard_figures(cost)]}
            plo.append([status, dump_attrs(out) if out is not None else None])
    res["fallback"] = fbo
    res["plain"] = plo
    res["fallback_stats"] = fb.stats.snapshot()
    return res

def baggage_spans():
    R = random.Random(5)
    out = []
    keys = ["customer_id", "task_id", "agent_id", "skill_id", "workload_type", "feature", "not_allowed", "user"]
    for lim in (SpanLimits(), SpanLimits(max_span_attributes=4), SpanLimits(max_attribute_length=5)):
        tp = TracerProvider(span_limits=lim)
        tp.add_span_processor(oc.baggage_processor())
        tr = tp.get_tracer("g")
        for i in range(3000):
            ctx = context.Context()
            for k in R.sample(keys, R.randrange(0, len(keys))):
                ctx = baggage.set_baggage(k, R.choice(["acme", "x" * R.randrange(0, 300), 42, 1.5, True, None, ""]), ctx)
            tok = context.attach(ctx)
            cms = []
            if R.random() < 0.2: cms.append(token_layers(prompt=R.choice([None, 5]), tool=R.choice([None, 7])))
            if R.random() < 0.2: cms.append(memory(R.choice(["abc", 12])))
            for cm in cms: cm.__enter__()
            pre = {k: "pre" for k in R.sample(keys, R.randrange(0, 3))}
            s = tr.start_span("x", attributes=pre)
            s.end()
            for cm in reversed(cms): cm.__exit__(None, None, None)
            context.detach(tok)
            out.append([list(map(list, s.attributes.items())), s.dropped_attributes])
    return out


if __name__ == "__main__":
    out = main(int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
    out["baggage"] = baggage_spans()
    json.dump(out, sys.stdout, sort_keys=False, default=repr)
    print(Counter(a[1] for s in out["spans"] for a in s[2] if a[0] == "gen_ai.cost.status"), file=sys.stderr)
