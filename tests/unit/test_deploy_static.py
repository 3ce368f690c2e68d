"""Static checks of the collector route: collector configs, compose file, .env.example.

Nothing here starts a container or a collector. The checks are the mistakes that otherwise only show up
at ``docker compose up`` (or worse, as silently wrong cost totals): a component the pinned release does
not have, a component defined but wired nowhere, a connector on the wrong signal, memory_limiter not
first, sampling before the cost metrics, a loop through ``otel-costattr serve``, a secret written into a
file, a port open beyond loopback, an image that floats.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SINGLE = REPO / "collector-config.yaml"
TWO_TIER = REPO / "collector-config.tier2.yaml"
COMPOSE = REPO / "docker-compose.otel.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"
WALKTHROUGH = REPO / "deploy" / "README.md"
DATA = REPO / "tests" / "data"

KINDS = ("receiver", "processor", "exporter", "connector", "extension")
SECTIONS = {f"{kind}s": kind for kind in KINDS}
SAMPLERS = {"tail_sampling", "probabilistic_sampler", "dynamic_sampling"}
# Which signal a connector may read (as an exporter) and emit (as a receiver). From each connector's
# metadata in the pinned release (traces_to_metrics etc.); only the connectors used here are listed,
# and using any other one fails the test until it is added.
CONNECTOR_SIGNALS = {
    "signal_to_metrics": ({"traces", "logs", "metrics", "profiles"}, {"metrics"}),
    "forward": ({"traces", "logs", "metrics", "profiles"}, None),  # None: same signal out as in
}
ENV_REF = re.compile(r"\$\{([^}]*)\}")
ENV_PLACEHOLDER = re.compile(r"env:([A-Z_][A-Z0-9_]*)(:-[^}]*)?")
SECRET_KEY = re.compile(r"(password|secret|token|api_?key|auth)$", re.IGNORECASE)


# ------------------------------------------------------------------------------------------- loading


def _collector_version() -> str:
    first = SINGLE.read_text().splitlines()[0]
    match = re.fullmatch(r"# otelcol-contrib v(\d+\.\d+\.\d+)", first)
    assert match, f"collector-config.yaml must start with '# otelcol-contrib vX.Y.Z', got {first!r}"
    return match.group(1)


def _components() -> dict[str, dict[str, str]]:
    """kind -> {type: deprecated alias or ''} from the pinned release's component list."""
    path = DATA / f"otelcol-contrib-{_collector_version()}-components.txt"
    out: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        kind, ctype, alias, _module, *_ = line.split("\t")
        out[kind][ctype] = "" if alias == "-" else alias
    return out


def _configs() -> dict[str, dict[str, Any]]:
    front, sampler = [doc for doc in yaml.safe_load_all(TWO_TIER.read_text()) if doc is not None]
    return {"single-node": yaml.safe_load(SINGLE.read_text()), "tier2-front": front, "tier2-sampler": sampler}


def _raw_text(name: str) -> str:
    return SINGLE.read_text() if name == "single-node" else TWO_TIER.read_text()


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _env_example() -> tuple[dict[str, str], set[str], list[str]]:
    """(active NAME=value lines, names only mentioned commented out as '# NAME=', raw lines)."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    active: dict[str, str] = {}
    commented: set[str] = set()
    for line in lines:
        if match := re.fullmatch(r"([A-Z_][A-Z0-9_]*)=(.*)", line):
            assert match.group(1) not in active, f"{match.group(1)} is set twice in .env.example"
            active[match.group(1)] = match.group(2)
        elif match := re.fullmatch(r"#\s*([A-Z_][A-Z0-9_]*)=.*", line):
            commented.add(match.group(1))
    return active, commented, lines


CONFIG_NAMES = ["single-node", "tier2-front", "tier2-sampler"]


@pytest.fixture(scope="module")
def configs() -> dict[str, dict[str, Any]]:
    return _configs()


@pytest.fixture(scope="module")
def components() -> dict[str, dict[str, str]]:
    return _components()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _compose()


def _pipelines(cfg: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    return cfg["service"]["pipelines"]


def _signal(pipeline_id: str) -> str:
    return pipeline_id.split("/")[0]


def _ctype(component_id: str) -> str:
    return component_id.split("/")[0]


def _walk(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, (*path, str(i)))
    else:
        yield path, node


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _server_endpoints(cfg: dict[str, Any]) -> dict[str, str]:
    """Every address the collector listens on, by a readable name."""
    out: dict[str, str] = {}
    for rid, rcfg in (cfg.get("receivers") or {}).items():
        for proto, pcfg in ((rcfg or {}).get("protocols") or {}).items():
            out[f"receivers.{rid}.{proto}"] = (pcfg or {}).get("endpoint", "")
    for eid, ecfg in (cfg.get("extensions") or {}).items():
        if _ctype(eid) == "health_check":
            out[f"extensions.{eid}"] = (ecfg or {}).get("endpoint", "")
    for eid, ecfg in (cfg.get("exporters") or {}).items():
        if _ctype(eid) == "prometheus":
            out[f"exporters.{eid}"] = ecfg["endpoint"]
    return out


# ---------------------------------------------------------------------------------- the release list


def test_component_list_names_its_source_and_is_complete(components: dict[str, dict[str, str]]) -> None:
    version = _collector_version()
    text = (DATA / f"otelcol-contrib-{version}-components.txt").read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "open-telemetry/opentelemetry-collector-releases" in header
    assert "distributions/otelcol-contrib/manifest.yaml" in header
    assert f"tag v{version}" in header
    rows = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(rows) == 242, "the v0.159.0 manifest builds 242 pipeline components"
    for line in rows:
        kind, ctype, alias, module, *rest = line.split("\t")
        assert kind in KINDS and re.fullmatch(r"[a-z0-9_]+", ctype), line
        assert alias == "-" or re.fullmatch(r"[a-z0-9_]+", alias), line
        assert module.startswith(("go.opentelemetry.io/", "github.com/open-telemetry/")), line
        assert rest in ([], ["(index)"]), line
    # Spot checks against facts read at the tag (core repo metadata.yaml at v0.159.0).
    assert components["exporter"]["otlp_grpc"] == "otlp"
    assert components["exporter"]["otlp_http"] == "otlphttp"
    assert components["receiver"]["otlp"] == ""
    assert components["connector"]["signal_to_metrics"] == "signaltometrics"
    assert components["exporter"]["load_balancing"] == "loadbalancing"


# -------------------------------------------------------------------------------- collector configs


def test_two_tier_file_holds_exactly_two_configs() -> None:
    docs = [doc for doc in yaml.safe_load_all(TWO_TIER.read_text()) if doc is not None]
    assert len(docs) == 2
    assert TWO_TIER.read_text().splitlines()[0] == f"# otelcol-contrib v{_collector_version()}"


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_only_collector_top_level_sections(configs: dict[str, dict[str, Any]], name: str) -> None:
    # The collector refuses unknown top-level keys, so documentation must stay in comments.
    assert set(configs[name]) <= {*SECTIONS, "service"}
    assert set(configs[name]["service"]) <= {"extensions", "pipelines", "telemetry"}


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_every_reference_is_defined_and_every_definition_used(
    configs: dict[str, dict[str, Any]], name: str
) -> None:
    cfg = configs[name]
    defined = {kind: set(cfg.get(f"{kind}s") or {}) for kind in KINDS}
    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    used["extension"] = set(cfg["service"].get("extensions") or [])
    for pid, pipe in _pipelines(cfg).items():
        assert _signal(pid) in {"traces", "metrics", "logs", "profiles"}, pid
        assert pipe.get("receivers") and pipe.get("exporters"), f"{pid} needs receivers and exporters"
        for rid in pipe["receivers"]:
            used["connector" if rid in defined["connector"] else "receiver"].add(rid)
        for eid in pipe["exporters"]:
            used["connector" if eid in defined["connector"] else "exporter"].add(eid)
        used["processor"].update(pipe.get("processors") or [])
    # Extensions can also be used by reference, e.g. `auth: {authenticator: basicauth/langfuse}`.
    for path, value in _walk({k: cfg.get(k) for k in ("receivers", "exporters")}):
        if path and path[-1] == "authenticator":
            assert value in defined["extension"], f"authenticator {value} is not defined"
            assert value in used["extension"], f"authenticator {value} is not enabled in service.extensions"
    for kind in KINDS:
        assert used[kind] <= defined[kind], f"{name}: undefined {kind}s {used[kind] - defined[kind]}"
        assert defined[kind] <= used[kind], f"{name}: unused {kind}s {defined[kind] - used[kind]}"


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_every_component_type_is_in_the_pinned_release(
    configs: dict[str, dict[str, Any]], components: dict[str, dict[str, str]], name: str
) -> None:
    for section, kind in SECTIONS.items():
        for cid in configs[name].get(section) or {}:
            ctype = _ctype(cid)
            aliases = {alias: canonical for canonical, alias in components[kind].items() if alias}
            assert ctype not in aliases, f"{cid}: '{ctype}' is the deprecated alias of '{aliases.get(ctype)}'"
            assert ctype in components[kind], f"{cid}: no {kind} of type '{ctype}' in otelcol-contrib"


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_connectors_join_pipelines_of_the_right_signals(configs: dict[str, dict[str, Any]], name: str) -> None:
    cfg = configs[name]
    for cid in cfg.get("connectors") or {}:
        ctype = _ctype(cid)
        assert ctype in CONNECTOR_SIGNALS, f"add the signals of connector '{ctype}' to CONNECTOR_SIGNALS"
        reads, emits = CONNECTOR_SIGNALS[ctype]
        into = {_signal(pid) for pid, p in _pipelines(cfg).items() if cid in p["exporters"]}
        out = {_signal(pid) for pid, p in _pipelines(cfg).items() if cid in p["receivers"]}
        assert into and out, f"{cid} must be an exporter in one pipeline and a receiver in another"
        assert into <= reads, f"{cid} cannot read {into - reads}"
        assert out <= (emits if emits is not None else into), f"{cid} cannot emit {out}"


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_memory_limiter_first_and_batch_last(configs: dict[str, dict[str, Any]], name: str) -> None:
    for pid, pipe in _pipelines(configs[name]).items():
        procs = pipe.get("processors") or []
        assert procs and _ctype(procs[0]) == "memory_limiter", f"{pid}: memory_limiter must come first"
        assert [p for p in procs if _ctype(p) == "memory_limiter"] == procs[:1], pid
        if any(_ctype(p) == "batch" for p in procs):
            assert _ctype(procs[-1]) == "batch", f"{pid}: batch belongs after everything that drops data"


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_backend_exporters_batch_in_their_sending_queue(configs: dict[str, dict[str, Any]], name: str) -> None:
    # No batch processor in these configs: each backend exporter batches in its own queue instead.
    cfg = configs[name]
    assert not any(_ctype(p) == "batch" for p in cfg.get("processors") or {})
    for eid, ecfg in (cfg.get("exporters") or {}).items():
        if _ctype(eid) == "prometheus":
            continue  # a pull endpoint; nothing is sent
        queue = ecfg["protocol"]["otlp"] if _ctype(eid) == "load_balancing" else ecfg
        assert "batch" in (queue.get("sending_queue") or {}), f"{eid} sends unbatched"


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_env_placeholders_use_env_syntax_and_are_documented(name: str) -> None:
    active, commented, _ = _env_example()
    text = _raw_text(name)
    refs = ENV_REF.findall(text)
    assert refs, "expected environment placeholders"
    for ref in refs:
        match = ENV_PLACEHOLDER.fullmatch(ref)
        assert match, f"'${{{ref}}}' is not the ${{env:NAME}} syntax"
        var, default = match.group(1), match.group(2)
        if default:
            assert var in active or var in commented, f"{var} is missing from .env.example"
        else:
            assert var in active, f"{var} has no default and must be set in .env.example"
    # A bare $NAME is the old syntax, and easy to type by accident.
    assert not re.search(r"\$(?!\{)[A-Za-z_]", text)


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_no_secret_literals(configs: dict[str, dict[str, Any]], name: str) -> None:
    for path, value in _walk(configs[name]):
        if path and SECRET_KEY.search(path[-1]) and isinstance(value, str):
            assert value.startswith("${env:"), f"{'.'.join(path)} holds a literal; read it from the environment"
        if path and path[-1] == "username" and path[0] == "exporters":
            assert str(value).startswith("${env:"), ".".join(path)


EXPECTED_LISTENERS = {
    "single-node": {
        "receivers.otlp.grpc": 4317, "receivers.otlp.http": 4318, "receivers.otlp/enriched.http": 4320,
        "extensions.health_check": 13133, "exporters.prometheus": 8889,
    },
    "tier2-front": {
        "receivers.otlp.grpc": 4317, "receivers.otlp.http": 4318, "receivers.otlp/enriched.http": 4320,
        "extensions.health_check": 13133, "exporters.prometheus": 8889,
    },
    "tier2-sampler": {"receivers.otlp.grpc": 4317, "extensions.health_check": 13133},
}


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_listeners_are_the_intended_ones(configs: dict[str, dict[str, Any]], name: str) -> None:
    # Inside a container the collector must listen on 0.0.0.0 (the default, localhost, is unreachable from
    # other containers); exposure to the host is decided by the compose file, on 127.0.0.1 only.
    endpoints = _server_endpoints(configs[name])
    assert {key: _port(ep) for key, ep in endpoints.items()} == EXPECTED_LISTENERS[name]
    for key, endpoint in endpoints.items():
        assert endpoint.rsplit(":", 1)[0] == "0.0.0.0", f"{key} listens on {endpoint}"


def _langfuse_checks(cfg: dict[str, Any]) -> None:
    exporter = cfg["exporters"]["otlp_http/langfuse"]
    assert exporter["endpoint"] == "${env:LANGFUSE_HOST}/api/public/otel"  # + /v1/traces by the exporter
    assert exporter["auth"] == {"authenticator": "basicauth/langfuse"}
    assert exporter["compression"] == "gzip"  # the only encoding Langfuse unpacks
    assert cfg["extensions"]["basicauth/langfuse"] == {
        "client_auth": {"username": "${env:LANGFUSE_PUBLIC_KEY}", "password": "${env:LANGFUSE_SECRET_KEY}"}
    }
    clickhouse = cfg["exporters"]["clickhouse"]
    assert clickhouse["database"] == "otel" and clickhouse["traces_table_name"] == "otel_traces"
    assert clickhouse["create_schema"] is True
    assert urlsplit(clickhouse["endpoint"].split(":-", 1)[1]).scheme == "tcp"


def test_single_node_backends(configs: dict[str, dict[str, Any]]) -> None:
    cfg = configs["single-node"]
    _langfuse_checks(cfg)
    assert cfg["exporters"]["otlp_grpc/jaeger"]["tls"] == {"insecure": True}
    priced = _pipelines(cfg)["traces/priced"]["exporters"]
    assert set(priced) == {"otlp_http/langfuse", "otlp_grpc/jaeger", "clickhouse", "signal_to_metrics"}
    # Jaeger takes traces only: the cost metrics must not go there.
    for pid, pipe in _pipelines(cfg).items():
        if _signal(pid) == "metrics":
            assert not any(_ctype(e) in {"otlp_grpc", "otlp_http"} for e in pipe["exporters"]), pid


@pytest.mark.parametrize("name", ["single-node", "tier2-front"])
def test_cost_metrics_before_any_sampling(configs: dict[str, dict[str, Any]], name: str) -> None:
    cfg = configs[name]
    pipes = _pipelines(cfg)
    assert not any(_ctype(p) in SAMPLERS for p in cfg.get("processors") or {}), "tier 1 must not sample"
    feeding = [pid for pid, p in pipes.items() if "signal_to_metrics" in p["exporters"]]
    assert feeding == ["traces/priced"]
    spans = cfg["connectors"]["signal_to_metrics"]["spans"]
    by_name = {m["name"]: m for m in spans}
    cost = by_name["otel_costattr.traces.cost"]
    assert cost["sum"] == {"value": 'Double(attributes["gen_ai.cost.total_cost"])'}
    keys = {a["key"]: a.get("default_value") for a in cost["attributes"]}
    assert set(keys) == {"gen_ai.provider.name", "gen_ai.request.model", "customer_id"}
    assert all(v is not None for v in keys.values()), "every cost dimension needs a default value"
    statuses = {s for c in cost["conditions"] for s in re.findall(r'"gen_ai\.cost\.status"\] == "(\w+)"', c)}
    assert statuses == {"priced", "partial", "provided"}, "only spans that carry the call's cost"
    for condition in cost["conditions"]:
        assert 'attributes["gen_ai.cost.total_cost"] != nil' in condition
        assert not re.search(r"\b(AND|OR|NOT)\b", condition), "OTTL keywords are lower case"
    calls = by_name["otel_costattr.traces.calls"]
    assert "gen_ai.cost.status" in {a["key"] for a in calls["attributes"]}
    assert calls["sum"] == {"value": "1"}
    # The sum connector adds a value once per attribute key: it must not price anything here.
    assert not any(_ctype(c) == "sum" for c in cfg["connectors"])


@pytest.mark.parametrize("name", ["single-node", "tier2-front"])
def test_serve_route_has_no_loop(configs: dict[str, dict[str, Any]], compose: dict[str, Any], name: str) -> None:
    cfg = configs[name]
    pipes = _pipelines(cfg)
    to_serve = cfg["exporters"]["otlp_http/costattr"]["traces_endpoint"]
    serve_url = urlsplit(to_serve.split(":-", 1)[1].rstrip("}"))
    command = compose["services"]["costattr"]["command"]
    assert command[0] == "serve"
    flags = dict(zip(command[1::2], command[2::2]))
    assert serve_url.hostname == "costattr" and serve_url.port == int(flags["--port"])
    assert serve_url.path == "/v1/traces"
    forward = urlsplit(flags["--forward"])
    assert forward.hostname == "collector"
    # Follow the spans: serve -> the receiver on the forward port -> its pipelines -> (connectors) -> ...
    back_in = [rid for rid, r in cfg["receivers"].items()
               if any(_port(p.get("endpoint", ":0")) == forward.port for p in r["protocols"].values())]
    assert len(back_in) == 1 and back_in[0] != "otlp", "serve must come back on its own receiver"
    seen: set[str] = set()
    frontier = set(back_in)
    while frontier:
        node = frontier.pop()
        seen.add(node)
        for pipe in pipes.values():
            if node in pipe["receivers"]:
                assert "otlp_http/costattr" not in pipe["exporters"], "priced spans would go back to serve"
                frontier |= {e for e in pipe["exporters"] if e in (cfg.get("connectors") or {})} - seen
    # The spans from apps do go to serve, and only there.
    assert pipes["traces/in"] == {
        "receivers": ["otlp"], "processors": ["memory_limiter"], "exporters": ["otlp_http/costattr"],
    }


def test_two_tier_front_is_the_single_node_config_with_load_balancing(configs: dict[str, dict[str, Any]]) -> None:
    single, front = configs["single-node"], configs["tier2-front"]
    for section in ("receivers", "processors", "connectors"):
        assert front[section] == single[section], f"{section} drifted between the two tier-1 configs"
    assert front["extensions"]["health_check"] == single["extensions"]["health_check"]
    for eid in ("otlp_http/costattr", "prometheus"):
        assert front["exporters"][eid] == single["exporters"][eid]
    fp, sp = _pipelines(front), _pipelines(single)
    assert fp["traces/in"] == sp["traces/in"] and fp["metrics/cost"] == sp["metrics/cost"]
    assert fp["traces/priced"]["exporters"] == ["load_balancing", "signal_to_metrics"]
    lb = front["exporters"]["load_balancing"]
    assert lb["routing_key"] == "traceID"
    assert "endpoint" not in lb["protocol"]["otlp"], "the resolver supplies the endpoints"
    resolver = lb["resolver"]["dns"]
    assert str(resolver["port"]) == str(EXPECTED_LISTENERS["tier2-sampler"]["receivers.otlp.grpc"])


def test_tier2_samples_the_browsers_but_not_clickhouse(configs: dict[str, dict[str, Any]]) -> None:
    cfg = configs["tier2-sampler"]
    _langfuse_checks(cfg)
    pipes = _pipelines(cfg)
    with_ch = [pid for pid, p in pipes.items() if "clickhouse" in p["exporters"]]
    assert len(with_ch) == 1
    assert not any(_ctype(p) in SAMPLERS for p in pipes[with_ch[0]]["processors"]), "ClickHouse must be unsampled"
    assert pipes[with_ch[0]]["exporters"] == ["clickhouse"]
    sampled = [pid for pid, p in pipes.items() if "tail_sampling" in p["processors"]]
    assert len(sampled) == 1, "one tail_sampling instance, so both browsers keep the same traces"
    assert set(pipes[sampled[0]]["exporters"]) == {"otlp_http/langfuse", "otlp_grpc/jaeger"}
    # Every span must reach the sampler's pipeline too: both read the same receiver.
    assert pipes[sampled[0]]["receivers"] == pipes[with_ch[0]]["receivers"]
    policies = {p["name"]: p for p in cfg["processors"]["tail_sampling"]["policies"]}
    types = {p["type"] for p in policies.values()}
    assert {"status_code", "ottl_condition", "probabilistic"} <= types
    assert "numeric_attribute" not in types, "numeric_attribute reads Int() only; cost is a double"
    assert policies["errors"]["status_code"]["status_codes"] == ["ERROR"]
    costly = [c for p in policies.values() if p["type"] == "ottl_condition" for c in p["ottl_condition"]["span"]]
    assert any('Double(attributes["gen_ai.cost.total_cost"]) >=' in c for c in costly)
    assert not any(_ctype(c) == "signal_to_metrics" for c in cfg.get("connectors") or {}), (
        "cost metrics belong on tier 1, where every span passes"
    )


# ---------------------------------------------------------------------------------------- compose


REQUIRED_SERVICES = {
    "collector", "jaeger", "langfuse-web", "langfuse-worker", "postgres", "clickhouse", "redis", "minio",
    "clickhouse-otel", "costattr",
}


def _pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and bool(tag) and tag != "latest" and "${" not in tag


def test_compose_has_the_services(compose: dict[str, Any]) -> None:
    assert REQUIRED_SERVICES <= set(compose["services"])


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if "build" in svc:
            dockerfile = REPO / svc["build"].get("context", ".") / svc["build"].get("dockerfile", "Dockerfile")
            bases = re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), re.MULTILINE)
            assert bases and all(_pinned(b) for b in bases), f"{name}: unpinned base image {bases}"
            assert "image" not in svc or _pinned(svc["image"]), name
        else:
            assert _pinned(svc["image"]), f"{name}: image {svc['image']!r} is not pinned to a version"
    assert compose["services"]["collector"]["image"] == f"otel/opentelemetry-collector-contrib:{_collector_version()}"
    assert compose["services"]["jaeger"]["image"].startswith("jaegertracing/jaeger:2.")


def test_published_ports_are_loopback_only(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is published on every interface"
    published = {int(str(p).split(":")[2].split("/")[0]) for p in compose["services"]["collector"]["ports"]}
    assert published == {4317, 4318, 13133, 8889}, "4320 (serve's way back) must stay internal"
    assert not compose["services"]["costattr"].get("ports"), "only the collector talks to serve"


def test_every_service_has_a_healthcheck_or_a_reason(compose: dict[str, Any]) -> None:
    services = compose["services"]
    exempt = {name for name, svc in services.items() if "healthcheck" not in svc}
    for name, svc in services.items():
        if name not in exempt:
            test = svc["healthcheck"].get("test")
            assert test and test != ["NONE"] and not svc["healthcheck"].get("disable"), f"{name}: empty healthcheck"
    for name in exempt:
        assert len(services[name].get("x-healthcheck-exempt", "")) > 20, f"{name}: no healthcheck and no reason"
    assert exempt == {"collector"}
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {dep: {"condition": "service_started"} for dep in deps}
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            wanted = "service_started" if dep in exempt else "service_healthy"
            assert spec.get("condition") == wanted, f"{name} -> {dep} should wait for {wanted}"


def test_depends_on_has_no_cycle(compose: dict[str, Any]) -> None:
    graph = {name: set(svc.get("depends_on") or {}) for name, svc in compose["services"].items()}
    done: set[str] = set()

    def visit(node: str, stack: tuple[str, ...]) -> None:
        assert node not in stack, f"depends_on cycle: {' -> '.join((*stack, node))}"
        if node not in done:
            for dep in graph[node]:
                visit(dep, (*stack, node))
            done.add(node)

    for node in graph:
        visit(node, ())


def test_compose_variables_are_in_env_example(compose: dict[str, Any]) -> None:
    active, _, _ = _env_example()
    refs = [ref for _, value in _walk(compose) if isinstance(value, str) for ref in ENV_REF.findall(value)]
    assert refs
    for ref in refs:
        var = re.match(r"[A-Za-z_][A-Za-z0-9_]*", ref)
        assert var, f"odd interpolation ${{{ref}}}"
        assert var.group(0) in active, f"${{{ref}}}: {var.group(0)} is not set in .env.example"


def test_named_volumes_are_declared_and_used(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for svc in compose["services"].values():
        for volume in svc.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else str(volume).split(":", 1)[0]
            if not source.startswith((".", "/", "~")):
                used.add(source)
            else:
                assert (REPO / source).exists(), f"bind mount source {source} does not exist"
    assert used == declared


def test_langfuse_is_initialised_with_the_collectors_keys(compose: dict[str, Any]) -> None:
    web = compose["services"]["langfuse-web"]["environment"]
    collector = compose["services"]["collector"]["environment"]
    for var in ("ORG_ID", "PROJECT_ID", "PROJECT_PUBLIC_KEY", "PROJECT_SECRET_KEY", "USER_EMAIL", "USER_PASSWORD"):
        assert web.get(f"LANGFUSE_INIT_{var}"), f"LANGFUSE_INIT_{var} is not set"

    def source(value: str) -> str:
        match = re.fullmatch(r"\$\{([A-Z_][A-Z0-9_]*)(?::?[-?][^}]*)?\}", value)
        assert match, value
        return match.group(1)

    assert source(web["LANGFUSE_INIT_PROJECT_PUBLIC_KEY"]) == source(collector["LANGFUSE_PUBLIC_KEY"])
    assert source(web["LANGFUSE_INIT_PROJECT_SECRET_KEY"]) == source(collector["LANGFUSE_SECRET_KEY"])
    # Both servers bind to $HOSTNAME, which Docker sets to the container id; the healthchecks probe 127.0.0.1.
    assert web["HOSTNAME"] == compose["services"]["langfuse-worker"]["environment"]["HOSTNAME"] == "0.0.0.0"
    # The worker must decrypt what the web service encrypted.
    worker = compose["services"]["langfuse-worker"]["environment"]
    for var in ("ENCRYPTION_KEY", "SALT", "DATABASE_URL", "CLICKHOUSE_PASSWORD", "REDIS_AUTH",
                "LANGFUSE_S3_EVENT_UPLOAD_BUCKET", "LANGFUSE_S3_EVENT_UPLOAD_ENDPOINT"):
        assert web[var] == worker[var], var


def test_collector_container_gets_its_config_and_environment(compose: dict[str, Any]) -> None:
    svc = compose["services"]["collector"]
    assert "./collector-config.yaml:/etc/otelcol-contrib/config.yaml:ro" in svc["volumes"]
    assert svc["command"] == ["--config=/etc/otelcol-contrib/config.yaml"]
    needed = {m.group(1) for ref in ENV_REF.findall(SINGLE.read_text())
              if (m := ENV_PLACEHOLDER.fullmatch(ref)) and not m.group(2)}
    assert needed <= set(svc["environment"]), f"collector lacks {needed - set(svc['environment'])}"
    assert svc["environment"]["LANGFUSE_HOST"] == "http://langfuse-web:3000"
    clickhouse = compose["services"]["clickhouse-otel"]["environment"]
    assert clickhouse["CLICKHOUSE_USER"] == svc["environment"]["OTEL_CLICKHOUSE_USER"]
    assert clickhouse["CLICKHOUSE_PASSWORD"] == svc["environment"]["OTEL_CLICKHOUSE_PASSWORD"]


def test_no_secret_literals_in_compose(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        env = svc.get("environment") or {}
        for key, value in env.items():
            if re.search(r"(PASSWORD|SECRET|SALT|ENCRYPTION_KEY|_AUTH|PUBLIC_KEY)$", key):
                assert "${" in str(value), f"{name}.{key} is a literal"
        if "DATABASE_URL" in env:
            assert "${POSTGRES_PASSWORD" in env["DATABASE_URL"]
        command = svc.get("command")
        if isinstance(command, list) and "--requirepass" in command:
            assert command[command.index("--requirepass") + 1].startswith("${")


def test_serve_container(compose: dict[str, Any]) -> None:
    svc = compose["services"]["costattr"]
    command = svc["command"]
    flags = dict(zip(command[1::2], command[2::2]))
    assert flags["--host"] == "0.0.0.0" and flags["--port"] == "4319"
    assert "/healthz" in " ".join(svc["healthcheck"]["test"])
    assert flags["--ledger"].startswith("/data/")
    assert any(str(v).endswith(":/data") for v in svc["volumes"])
    dockerfile = DOCKERFILE.read_text()
    assert re.search(r'^ENTRYPOINT \["otel-costattr"\]', dockerfile, re.MULTILINE)
    assert re.search(r"^USER (?!root)", dockerfile, re.MULTILINE), "serve should not run as root"


# ------------------------------------------------------------------------------------ .env.example


def test_env_example_secrets_say_how_to_change_them() -> None:
    active, _, lines = _env_example()
    secrets = [v for v in active if re.search(r"(PASSWORD|SECRET|SALT|ENCRYPTION_KEY|_AUTH|_KEY)$", v)]
    assert {"LANGFUSE_SECRET_KEY", "ENCRYPTION_KEY", "POSTGRES_PASSWORD", "OTEL_CLICKHOUSE_PASSWORD"} <= set(secrets)
    for var in secrets:
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{var}="))
        comments = []
        for line in reversed(lines[:index]):
            if not line.startswith("#") or re.match(r"#\s*[A-Z_]+=", line):
                break
            comments.append(line.lower())
        text = " ".join(comments)
        assert "change" in text and "openssl rand" in text, f"{var}: say that and how to change it"
    assert re.fullmatch(r"[0-9a-f]{64}", active["ENCRYPTION_KEY"]), "Langfuse wants 64 hex characters"
    assert active["LANGFUSE_PUBLIC_KEY"].startswith("pk-lf-")
    assert active["LANGFUSE_SECRET_KEY"].startswith("sk-lf-")


def test_walkthrough_covers_the_route() -> None:
    text = WALKTHROUGH.read_text()
    for needle in (
        "docker compose -f docker-compose.otel.yml up", "http://localhost:3000", "http://localhost:16686",
        "otel-costattr serve", "otel-costattr report --source clickhouse://", "otel_traces",
        "LANGFUSE_PUBLIC_KEY", "OTEL_EXPORTER_OTLP_ENDPOINT", "collector-config.tier2.yaml",
    ):
        assert needle in text, needle
