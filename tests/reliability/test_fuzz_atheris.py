"""Coverage-guided fuzzing with atheris (libFuzzer), where it installs and runs on this Python.

Each target of ``_atheris_target.py`` runs in its own process for half the hypothesis budget (atheris gets
its speed from native instrumentation; half is enough to show coverage plateauing). A crash is an uncaught
exception: atheris prints it, writes the input under ``artifact_prefix`` and exits non-zero.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from _settings import FUZZ_SECONDS

HERE = Path(__file__).resolve().parent


def _atheris_unavailable() -> str | None:
    try:
        import atheris  # noqa: F401
    except ImportError as exc:
        return f"atheris is not installed on Python {sys.version.split()[0]} ({exc})"
    return None


def _seeds(target: str) -> list[bytes]:
    """Real inputs to start from (libFuzzer mutates them), so the search starts inside the formats."""
    data = HERE.parents[1] / "tests" / "data"
    if target == "pricing":
        return [b"\x00" + (data / n).read_bytes() for n in ("mini.toml", "rules.toml", "overlay.toml")] + [
            b"\x01" + json.dumps(tomllib.loads((data / "mini.toml").read_text())).encode()]
    if target in ("otlp_proto", "otlp_json"):
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        import otel_costattr as oc
        from otel_costattr.testing._otlp_receiver import encode_otlp_json
        from _helpers import emit_units

        exporter = InMemorySpanExporter()
        tp = TracerProvider()
        tp.add_span_processor(oc.CostSpanProcessor(SimpleSpanProcessor(exporter), book=oc.PriceBook.load(env=False)))
        emit_units(tp.get_tracer("seed"), range(1))
        tp.shutdown()
        req = encode_spans(exporter.get_finished_spans())
        return [req.SerializeToString()] if target == "otlp_proto" else [encode_otlp_json(req)]
    return [b"\x05\x01" + b"gen_ai.usage.input_tokens"]


@pytest.mark.figure("Bad input", "Coverage-guided fuzzing (atheris / libFuzzer)")
@pytest.mark.parametrize("target", ["read_call", "pricing", "otlp_proto", "otlp_json"])
def test_atheris(target: str, tmp_path: Path, figure) -> None:
    """Proves: libFuzzer-guided inputs find no uncaught exception in the attribute reader, the pricing loader
    or the OTLP decoders within the budget."""
    reason = _atheris_unavailable()
    if reason:
        pytest.skip(reason)
    budget = max(1, int(FUZZ_SECONDS / 2))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(_seeds(target)):
        (corpus / f"seed{i}").write_bytes(seed)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(HERE / "_atheris_target.py"), target, f"-max_total_time={budget}",
                           "-print_final_stats=1", f"-artifact_prefix={tmp_path}/", "-rss_limit_mb=2048",
                           "-max_len=65536", str(corpus)], capture_output=True, text=True, env=env, timeout=budget + 120)
    out = proc.stdout + proc.stderr
    if "import" in out and proc.returncode != 0 and "Uncaught Python exception" not in out and "#" not in out:
        pytest.skip(f"atheris does not run here: {out[-300:]}")
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", out)
    cov = re.findall(r"cov: (\d+)", out)
    crashed = proc.returncode != 0
    figure.what = f"Coverage-guided fuzzing (atheris / libFuzzer): {target}"
    figure.how_much = f"{int(runs.group(1)) if runs else 0:,} inputs in {budget} s (coverage {cov[-1] if cov else '?'} edges)"
    figure.lost = f"crashes: {int(crashed)}"
    figure.set(returncode=proc.returncode, executions=int(runs.group(1)) if runs else 0,
               crash=out[out.find("Uncaught Python exception"):][:2000] if crashed else None)
    assert not crashed, out[-4000:]
    assert runs and int(runs.group(1)) > 0, out[-2000:]
