"""Add attributes to an SDK span's own attribute store, under exactly the limits ``set_attributes`` applies.

Two callers need this (DESIGN D1, D9):

* the baggage processor, on a span that is *starting* (``Span.set_attributes`` re-validates every value through
  generic checks and costs more than the rest of that processor);
* ``CostSpanProcessor._on_ending``, on a span that is *ending*: the SDK sets the end time and marks the attributes
  immutable just before calling the OnEnding hook (opentelemetry-python issue #5614), so the public API drops
  every write there, although the spec says the span is still mutable.

The limits are the SDK's own, read off the span's ``BoundedAttributes``: the count limit (when full, the oldest
attribute makes room and ``dropped`` counts it; a key already present is replaced in place and moves to the end),
the value length limit (strings, and strings inside sequences, are cut), and values the SDK would reject are
dropped and counted. The store is replaced copy-on-write under its lock, so a thread iterating the span's
attributes at that moment keeps a consistent view (the SDK iterates an immutable store without its lock).

Feature-detected: when ``BoundedAttributes`` does not have the shape relied on, or the span is not the SDK's,
:func:`add_attributes` uses the public ``set_attributes`` where the span still accepts writes and otherwise
returns False (the caller falls back to a copy, :func:`copy_with_attributes`). When upstream keeps the span
mutable during OnEnding (PR #5613: ``is_recording()`` is then true on the ending thread), the public API is used.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["STORE", "WRITABLE", "add_attributes", "copy_with_attributes"]

_PLAIN = frozenset({str, bool, int, float})

_BA: type = BoundedAttributes
try:  # Feature-detect the SDK internals the in-place write relies on.
    _probe = _BA(maxlen=4, attributes={"k": "v"}, immutable=False, max_value_len=None)
    #: True when the SDK's attribute store has the shape the in-place write relies on.
    WRITABLE = (type(getattr(_probe, "_dict", None)) is dict and hasattr(_probe, "_lock")
                and getattr(_probe, "_immutable", None) is False and hasattr(_probe, "max_value_len")
                and type(getattr(_probe, "dropped", None)) is int and hasattr(_probe, "maxlen"))
    del _probe
except Exception:  # pragma: no cover - depends on the installed SDK
    WRITABLE = False

if not WRITABLE:  # pragma: no cover - depends on the installed SDK
    class _BA:  # type: ignore[no-redef]  # matches no real store: every span takes the public or copy path
        pass

#: The SDK's attribute store type, or a class no store is an instance of when its shape is unknown. Spans whose
#: store is exactly this type are written in place (a test may set it to another class to force the public path).
STORE: type = _BA


def _cleaned(add: Mapping[str, Any], limit: int | None) -> tuple[Mapping[str, Any], int]:
    """``add`` as the SDK would store it, and how many entries it would drop as invalid."""
    if _PLAIN.issuperset(map(type, add.values())):  # the common case, checked in C
        if limit is None:
            return add, 0
        return {k: v[:limit] if type(v) is str else v for k, v in add.items()}, 0
    # Anything else (sequences, unusual types): the SDK's own cleaning, through its public constructor.
    store = BoundedAttributes(maxlen=None, attributes=add, immutable=False, max_value_len=limit)
    return store._dict, len(add) - len(store._dict)  # noqa: SLF001


def _write(store: Any, add: Mapping[str, Any], replace: bool, cow: bool = True, plain: bool = False) -> None:
    """Put ``add`` into ``store`` (a ``BoundedAttributes``) as ``_set_items`` would. The caller holds no lock.

    ``cow``: replace the dict rather than change it. Needed once the store is immutable, because the SDK then
    iterates it without the lock; a mutable store copies its keys under the lock when iterated.
    ``plain``: the caller's promise that every value is a ``str``, ``bool``, ``int`` or ``float`` (which the SDK
    keeps as they are, but for the length cut), so the type check is skipped.
    """
    with store._lock:  # noqa: SLF001
        old = store._dict  # noqa: SLF001
        if cow and plain and store.max_value_len is None and (store.maxlen is None or
                                                              len(old) + len(add) <= store.maxlen):
            # The common case at OnEnding (the SDK's default limits, keys new to the span): one copy and one
            # update, in C. A key the span already had leaves the copy short, and the general path below redoes
            # the write from ``old`` (``new`` was never visible).
            new = old.copy()
            new.update(add)
            if len(new) == len(old) + len(add):
                store._dict = new  # noqa: SLF001
                return
        clash = not old.keys().isdisjoint(add)
        if clash and not replace:
            add = {k: v for k, v in add.items() if k not in old}
            clash = False
            if not add:
                return
        if plain and store.max_value_len is None:
            values: Mapping[str, Any] = add
            dropped = 0
        else:
            values, dropped = _cleaned(add, store.max_value_len)
        maxlen = store.maxlen
        if maxlen == 0:
            store.dropped += dropped + len(values)
            return
        new = old.copy() if cow else old  # copy-on-write: a reader iterating ``old`` is never disturbed
        if maxlen is None or len(new) + len(values) <= maxlen:
            if clash:
                for k in values:
                    new.pop(k, None)  # a replaced key moves to the end, as in the SDK
            new.update(values)
        else:
            for k, v in values.items():
                if k in new:
                    del new[k]
                elif len(new) >= maxlen:
                    del new[next(iter(new))]  # the SDK drops the oldest attribute to make room
                    dropped += 1
                new[k] = v
        store._dict = new  # noqa: SLF001
        if dropped:
            store.dropped += dropped


def add_attributes(span: Any, add: Mapping[str, Any], *, replace: bool = False, plain: bool = False) -> bool:
    """Add ``add`` to a starting, live or ending SDK span's attributes; True if they were written.

    Keys the span already has keep their value unless ``replace``. Never used on a span that has ended (its
    ``on_end`` has run): that span may already be in an export queue. ``plain``: every value of ``add`` is a
    ``str``, ``bool``, ``int`` or ``float`` (the caller built them so), which spares the SDK's type checks.

    Returns False, writing nothing, when the span is ending, cannot be written in place (not the SDK's span, or
    an SDK whose attribute store has another shape) and its public API refuses writes: the caller then hands
    downstream processors a copy.
    """
    store = getattr(span, "_attributes", None)
    if type(store) is STORE and getattr(span, "_end_time", None) is None:
        _write(store, add, replace, cow=store._immutable)  # noqa: SLF001 - starting or live: set_attributes' work
        return True
    # A live non-SDK span, or an SDK that keeps the span mutable during OnEnding (#5613): the public API.
    if getattr(span, "is_recording", bool)():
        if not replace:
            existing = span.attributes or {}
            add = {k: v for k, v in add.items() if k not in existing}
        if add:
            span.set_attributes(add)
        return True
    if type(store) is STORE:  # ending, frozen before the OnEnding hook (#5614): write the store itself
        _write(store, add, replace, plain=plain)
        return True
    return False


def copy_with_attributes(span: ReadableSpan, add: Mapping[str, Any], *, replace: bool = False) -> ReadableSpan:
    """A copy of a finished ``span`` with ``add`` added under the span's own limits (the fallback path).

    Events, links, resource, scope, status and every ``dropped_*`` count are kept; the attribute count limit,
    value length limit and dropped count behave as :func:`add_attributes` (the SDK's rules). A span whose
    attribute store is not the SDK's is copied through the public constructor, without limits to apply.
    """
    base = getattr(span, "_attributes", None)
    if type(base) is STORE and type(span) is ReadableSpan:
        attrs = _BA.__new__(_BA)
        attrs.__dict__.update(base.__dict__)
        attrs._lock = threading.Lock()  # noqa: SLF001 - its own lock: the copy is written below
        _write(attrs, add, replace)  # replaces attrs._dict with a new dict; the original is never touched
        attrs._immutable = True  # noqa: SLF001
        new = ReadableSpan.__new__(ReadableSpan)
        new.__dict__.update(span.__dict__)
        new._attributes = attrs  # noqa: SLF001
        return new
    if replace:
        merged = dict(span.attributes or {})
        merged.update(add)
    else:
        merged = dict(add)
        merged.update(span.attributes or {})
    limits = BoundedAttributes(maxlen=None, attributes=merged, immutable=True)
    limits.dropped = span.dropped_attributes
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=span.resource, attributes=limits,
        events=getattr(span, "_events", span.events), links=getattr(span, "_links", span.links), kind=span.kind,
        status=span.status, start_time=span.start_time, end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope)
