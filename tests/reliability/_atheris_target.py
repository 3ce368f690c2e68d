"""Coverage-guided fuzz targets for atheris (run by ``test_fuzz_atheris.py``, one target per process).

    python tests/reliability/_atheris_target.py TARGET -max_total_time=20 -print_final_stats=1

Targets and what each accepts as a non-crash (anything else propagates and atheris reports a crash):

* ``read_call``: an attribute map decoded from the input; ``read_call`` must not raise at all.
* ``pricing``: the input as the bytes of a TOML or JSON pricing file (``decode_document`` then
  ``parse_document``, as ``load_file`` does); only ``PricingError`` may be raised.
* ``otlp_proto``: the input as a protobuf export request; only ``OTLPDecodeError`` may be raised.
* ``otlp_json``: the input as one OTLP/JSON line; ``records_from_json`` may raise only ``OTLPDecodeError``.
"""

from __future__ import annotations

import json
import sys

import atheris

with atheris.instrument_imports(include=["otel_costattr"]):
    from otel_costattr._errors import PricingError
    from otel_costattr._ledger._otlp import OTLPDecodeError, records_from_json, records_from_proto
    from otel_costattr._pricing._schema import decode_document, parse_document
    from otel_costattr._capture._usage import read_call
    from otel_costattr.attributes import READ

KEYS = sorted({n for names in READ.values() for n in names})


def t_read_call(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    attrs: dict = {}
    for _ in range(fdp.ConsumeIntInRange(0, 12)):
        key = fdp.PickValueInList(KEYS) if fdp.ConsumeBool() else fdp.ConsumeUnicode(16)
        kind = fdp.ConsumeIntInRange(0, 6)
        if kind == 0:
            value: object = fdp.ConsumeInt(9)
        elif kind == 1:
            value = fdp.ConsumeFloat()
        elif kind == 2:
            value = fdp.ConsumeUnicode(24)
        elif kind == 3:
            value = fdp.ConsumeBool()
        elif kind == 4:
            value = [fdp.ConsumeInt(4) for _ in range(fdp.ConsumeIntInRange(0, 3))]
        elif kind == 5:
            value = fdp.ConsumeBytes(8)
        else:
            value = str(fdp.ConsumeInt(8))
        attrs[key] = value
    read_call(attrs)


def t_pricing(data: bytes) -> None:
    if not data:
        return
    # The first byte picks the format; the rest is the file's bytes, decoded as read_file does.
    try:
        doc = decode_document(data[1:], file="fuzz", json_format=bool(data[0] & 1))
        parse_document(doc, file="fuzz", origin="user:fuzz")
    except PricingError:
        pass


def t_otlp_proto(data: bytes) -> None:
    try:
        records_from_proto(data)
    except OTLPDecodeError:
        pass


def t_otlp_json(data: bytes) -> None:
    # What iter_file does with one line: text that is not JSON is a reported bad line before decoding starts.
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return
    try:
        records_from_json(obj)
    except OTLPDecodeError:
        pass


TARGETS = {"read_call": t_read_call, "pricing": t_pricing, "otlp_proto": t_otlp_proto, "otlp_json": t_otlp_json}

if __name__ == "__main__":
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()
