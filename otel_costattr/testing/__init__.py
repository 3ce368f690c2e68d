"""Test seams for otel-costattr: a local fake LLM vendor for the real OpenAI and Anthropic SDKs, and a
local OTLP/HTTP trace receiver (``OTLPReceiver``) that decodes what exporters send.

Like ``httpx.MockTransport``, this ships with the library so that tests (yours and ours) and the
``otel-costattr demo`` command can drive the real SDKs, under their real OpenTelemetry
instrumentations, without network access or API keys::

    from otel_costattr.testing import FakeVendorServer, fake_headers

    with FakeVendorServer() as vendor:
        client = openai.OpenAI(base_url=vendor.openai_base_url, api_key="test")
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers=fake_headers(usage={"input": 1200, "cache_read": 1024, "output": 300}),
        )
        assert vendor.requests[-1].path == "/v1/chat/completions"

The server itself uses the standard library only.
"""

from __future__ import annotations

from ._common import FakeReply
from ._usage import (
    MODEL_HEADER,
    REQUEST_KEY_HEADER,
    SCENARIO_HEADER,
    SERVICE_TIER_HEADER,
    USAGE_HEADER,
    ResolvedUsage,
    Usage,
    fake_headers,
)
from ._otlp_receiver import OTLPReceiver, ReceivedSpan
from ._vendor import DEFAULT_USAGE, FakeRequest, FakeVendorServer, RecordedRequest, RequestHook

__all__ = [
    "DEFAULT_USAGE",
    "FakeReply",
    "FakeRequest",
    "FakeVendorServer",
    "MODEL_HEADER",
    "OTLPReceiver",
    "ReceivedSpan",
    "RecordedRequest",
    "REQUEST_KEY_HEADER",
    "RequestHook",
    "ResolvedUsage",
    "SCENARIO_HEADER",
    "SERVICE_TIER_HEADER",
    "USAGE_HEADER",
    "Usage",
    "fake_headers",
]

# Present the public names as members of this package, so reprs and docs name the stable path.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj
