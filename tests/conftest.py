from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's own overlays or exporter settings."""
    for var in ("OTEL_COSTATTR_PRICING",):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(autouse=True)
def _restore_process_globals():
    """attribution() installs an outbound guard on the global propagator, and tests may add attribution keys:
    put both back so that no test depends on the order it runs in."""
    from opentelemetry import propagate

    import otel_costattr._capture._attribution as attribution_module

    textmap = propagate.get_global_textmap()
    keys = attribution_module._keys
    yield
    propagate.set_global_textmap(textmap)
    attribution_module._keys = keys


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def on_terminal():
    """``run(argv, env=None, timeout=300) -> (returncode, stdout bytes, what reached the terminal)``: a command
    whose standard error is a pseudo-terminal, as when a user runs it by hand (progress displays show only there)."""
    import os
    import pty
    import subprocess
    import threading

    def run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> tuple[int, bytes, bytes]:
        import fcntl
        import struct
        import termios

        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a terminal window's size
        chunks: list[bytes] = []

        def drain() -> None:  # read as it comes: a full terminal buffer would block the command
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO once the command has exited and the slave side is closed
                    return
                if not chunk:
                    return
                chunks.append(chunk)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=slave, env=env, timeout=timeout)
            os.close(slave)
            reader.join(10)
        finally:
            os.close(master)
        return r.returncode, r.stdout, b"".join(chunks)

    return run
