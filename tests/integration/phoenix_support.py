"""Run a real Arize Phoenix server on loopback for integration tests.

:func:`start_phoenix` launches ``phoenix serve`` in a child process bound to
127.0.0.1 on free ports, with its database under a temporary directory and
every feature that reaches the internet switched off, waits until
``/healthz`` answers and returns a :class:`PhoenixServer` that knows where to
send OTLP/HTTP and how to read spans back through Phoenix's REST API.

Why a launcher instead of the plain ``phoenix`` script: Phoenix binds its
OTLP/gRPC server to ``[::]:<grpc port>`` with no host setting
(``PHOENIX_HOST`` only moves the HTTP server), so the plain script listens on
every interface.  Run as a script, this module wraps ``grpc.aio.server`` so
that port is added on 127.0.0.1, then hands over to Phoenix's own CLI entry
point ``phoenix.server.main:main`` (what the ``phoenix`` console script calls).

Phoenix runs from its own environment (:func:`phoenix_python`): ``.venv-phoenix``,
which ``scripts/test.sh`` makes from the lock's ``phoenix`` dependency group.
Phoenix's releases since 20.4 require ``anthropic<2``, so sharing the test
environment would hold the Anthropic SDK under test back a major version.
Nothing here imports Phoenix into the test process: importing it takes about
ten seconds, and the tests only need HTTP.  The child never outlives the
tests: :meth:`PhoenixServer.stop` kills its whole process group, an ``atexit``
hook stops any server a test forgot, and the child asks the kernel to send
it SIGTERM should the test process die without cleaning up.
"""

from __future__ import annotations

import atexit
import functools
import importlib.metadata
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

_logger = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 90.0
_STOP_TIMEOUT_S = 15.0
_PORT_RETRIES = 3

_LAUNCH_FLAG = "--serve-phoenix-on-loopback"
_PARENT_PID_ENV = "OTEL_COSTATTR_TEST_PARENT_PID"

# Phoenix reads its configuration from PHOENIX_* variables; OTEL_* ones would
# make it trace itself or export somewhere.  Neither may leak in from the
# developer's shell (a PHOENIX_SQL_DATABASE_URL pointing at a real Postgres
# would be migrated by the test server).
_SCRUBBED_PREFIXES = ("PHOENIX_", "OTEL_")

_live_servers: list[PhoenixServer] = []


_PYTHON_ENV = "OTEL_COSTATTR_PHOENIX_PYTHON"
_PHOENIX_VENV = Path(__file__).resolve().parents[2] / ".venv-phoenix"


def phoenix_python() -> str:
    """The interpreter that runs Phoenix: ``$OTEL_COSTATTR_PHOENIX_PYTHON`` if set, else ``.venv-phoenix``'s
    at the repository root if it exists, else this one (Phoenix installed beside the tests)."""
    explicit = os.environ.get(_PYTHON_ENV)
    if explicit:
        return explicit
    venv_python = _PHOENIX_VENV / "bin" / "python"
    return str(venv_python) if venv_python.exists() else sys.executable


@functools.cache
def phoenix_version() -> str | None:
    """``arize-phoenix``'s version in :func:`phoenix_python`'s environment, or ``None`` when it is not there.

    Read from package metadata: ``import phoenix`` would cost about ten seconds, and would succeed with only
    ``arize-phoenix-client`` installed, which has no server.
    """
    python = phoenix_python()
    if python == sys.executable:
        try:
            return importlib.metadata.version("arize-phoenix")
        except importlib.metadata.PackageNotFoundError:
            return None
    probe = ("import importlib.metadata as m\ntry: print(m.version('arize-phoenix'))\n"
             "except m.PackageNotFoundError: pass")
    try:
        out = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        if os.environ.get(_PYTHON_ENV):  # named explicitly: a broken interpreter is an error, not a skip
            raise PhoenixStartError(f"{_PYTHON_ENV}={python} cannot be run: {exc}") from exc
        return None
    return out.stdout.strip() or None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the caller retries on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PhoenixStartError(RuntimeError):
    """Phoenix did not become healthy; the message ends with its log tail."""


@dataclass
class PhoenixServer:
    """A running Phoenix child process and how to talk to it."""

    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    working_dir: Path
    log_path: Path
    startup_seconds: float = 0.0
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def otlp_traces_url(self) -> str:
        """OTLP/HTTP traces endpoint (protobuf only; Phoenix answers JSON with 415)."""
        return f"{self.base_url}/v1/traces"

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    # ------------------------------------------------------------ REST

    def get_json(self, path: str, params: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
        """GET ``path`` (relative to :attr:`base_url`) and decode the JSON answer.

        Raises:
            urllib.error.HTTPError: Phoenix answered with an error status.
        """
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)

    def get_spans(self, project: str, limit: int = 1000) -> list[dict[str, Any]]:
        """All spans of ``project`` via ``GET /v1/projects/{project}/spans``, following cursors.

        Each span is Phoenix's JSON object (``name``, ``context``, ``span_kind``,
        ``attributes`` with dotted keys, ...).

        Raises:
            urllib.error.HTTPError: 404 while the project does not exist yet.
        """
        path = f"/v1/projects/{urllib.parse.quote(project, safe='')}/spans"
        spans: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": limit}
            if cursor:
                params["cursor"] = cursor
            page = self.get_json(path, params)
            spans.extend(page["data"])
            cursor = page.get("next_cursor")
            if not cursor:
                return spans

    def get_spans_otlp(self, project: str, limit: int = 1000) -> list[dict[str, Any]]:
        """Spans of ``project`` in Phoenix's OTLP-shaped form (``/spans/otlpv1``), one page.

        Attribute values come back as typed OTLP ``AnyValue`` objects
        (``{"double_value": 0.00045, "int_value": null, ...}``), which shows the
        value type Phoenix itself holds rather than what a JSON parser infers.
        """
        path = f"/v1/projects/{urllib.parse.quote(project, safe='')}/spans/otlpv1"
        return list(self.get_json(path, {"limit": limit})["data"])

    def wait_for_spans(self, project: str, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll :meth:`get_spans` until ``project`` holds at least ``n`` spans.

        Phoenix inserts spans in batches in the background, so an export that
        returned 200 is not readable at once.

        Raises:
            TimeoutError: fewer than ``n`` spans within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        spans: list[dict[str, Any]] = []
        while True:
            try:
                spans = self.get_spans(project)
            except urllib.error.HTTPError as exc:
                exc.close()
                if exc.code != 404:  # 404: the project is created with its first span
                    raise
            if len(spans) >= n:
                return spans
            if time.monotonic() > deadline:
                raise TimeoutError(f"project {project!r} has {len(spans)} spans, expected {n}")
            time.sleep(0.2)

    # ------------------------------------------------------------ process

    def pids(self) -> list[int]:
        """Pids of the server's process group (the launcher and anything it forked)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # Field 5 is the process group; split after the ")" that ends the command name.
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == self.process.pid:
                pids.append(int(entry.name))
        return pids

    def listening_addresses(self) -> list[tuple[str, int]]:
        """TCP (address, port) pairs the server's processes listen on, read from /proc.

        Lets a test prove that nothing is bound beyond loopback without
        depending on ``ss`` being installed.
        """
        inodes: set[str] = set()
        for pid in self.pids():
            fd_dir = Path(f"/proc/{pid}/fd")
            try:
                fds = list(fd_dir.iterdir())
            except OSError:
                continue
            for fd in fds:
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        found: list[tuple[str, int]] = []
        for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                cols = line.split()
                if cols[3] != "0A" or cols[9] not in inodes:  # 0A is TCP_LISTEN
                    continue
                hex_addr, hex_port = cols[1].split(":")
                found.append((_decode_proc_address(hex_addr, family), int(hex_port, 16)))
        return sorted(found)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = _STOP_TIMEOUT_S) -> int | None:
        """Terminate the process group, wait, and kill it if it lingers. Idempotent.

        Returns:
            The launcher's exit code (negative for a signal), or ``None`` if it
            had to be killed and still could not be reaped.
        """
        # Signal the group only while the launcher is unreaped: until then its
        # pid (the group id) cannot have been reused by anyone else.
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _logger.warning("Phoenix pid %s ignored SIGTERM; killing it", self.process.pid)
                _signal_group(self.process.pid, signal.SIGKILL)
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        # Anything the launcher forked that outlived it still carries our group id
        # (a group id is not reused while members remain), so these are ours.
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self in _live_servers:
            _live_servers.remove(self)
        return self.process.returncode


def _decode_proc_address(hex_addr: str, family: int) -> str:
    # /proc/net/tcp* prints addresses as host-order 32-bit words in hex.
    raw = bytes.fromhex(hex_addr)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(family, words)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_leftovers() -> None:
    for server in list(_live_servers):
        server.stop(timeout=5)


atexit.register(_stop_leftovers)


def phoenix_env(working_dir: Path, http_port: int, grpc_port: int) -> dict[str, str]:
    """Environment for an offline, loopback-only Phoenix with its state in ``working_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    env.update(
        {
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(http_port),
            "PHOENIX_GRPC_PORT": str(grpc_port),
            "PHOENIX_WORKING_DIR": str(working_dir),
            # No downloads (WASM sandbox), no docs-MCP connection, no usage telemetry.
            "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
            "PHOENIX_TELEMETRY_ENABLED": "false",
            # The agent's server-side bash tool is on by default; a test server needs none of it.
            "PHOENIX_AGENTS_DISABLE_BASH": "true",
            # Would open another port (9090) on all interfaces.
            "PHOENIX_ENABLE_PROMETHEUS": "false",
            # Migration SQL would bury the useful lines of the log.
            "PHOENIX_LOG_MIGRATIONS": "false",
            "PYTHONUNBUFFERED": "1",
            _PARENT_PID_ENV: str(os.getpid()),
        }
    )
    return env


def start_phoenix(tmp_path: Path, startup_timeout: float = STARTUP_TIMEOUT_S) -> PhoenixServer:
    """Start Phoenix on 127.0.0.1 with state and log under ``tmp_path``; wait for ``/healthz``.

    The caller must :meth:`PhoenixServer.stop` it (use a fixture with a
    finalizer); an ``atexit`` hook is only the last resort.

    Raises:
        PhoenixStartError: the server exited or was not healthy within
            ``startup_timeout`` seconds (the child is stopped first).
    """
    last_error: PhoenixStartError | None = None
    for attempt in range(1, _PORT_RETRIES + 1):
        server = _spawn(tmp_path / f"phoenix-{attempt}")
        try:
            _wait_healthy(server, startup_timeout)
        except PhoenixStartError as exc:
            server.stop()
            last_error = exc
            # Another process can grab a port between free_port() and Phoenix's bind.
            if "address already in use" in str(exc).lower():
                _logger.warning("Phoenix port race on attempt %d; retrying", attempt)
                continue
            raise
        _logger.info("Phoenix %s up on %s after %.1fs", phoenix_version(), server.base_url, server.startup_seconds)
        return server
    assert last_error is not None
    raise last_error


def _spawn(working_dir: Path) -> PhoenixServer:
    working_dir.mkdir(parents=True, exist_ok=True)
    http_port, grpc_port = free_port(), free_port()
    while grpc_port == http_port:
        grpc_port = free_port()
    log_path = working_dir / "phoenix.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed by PhoenixServer.stop
    try:
        process = subprocess.Popen(
            [phoenix_python(), str(Path(__file__).resolve()), _LAUNCH_FLAG],
            cwd=working_dir,
            env=phoenix_env(working_dir, http_port, grpc_port),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            # Own process group: stop() can kill everything it spawned, and a
            # Ctrl-C aimed at pytest does not hit Phoenix mid-teardown.
            start_new_session=True,
        )
    except BaseException:
        log_file.close()
        raise
    server = PhoenixServer(process, http_port, grpc_port, working_dir, log_path, _log_file=log_file)
    _live_servers.append(server)
    return server


def _wait_healthy(server: PhoenixServer, timeout: float) -> None:
    started = time.monotonic()
    url = server.base_url + "/healthz"
    while True:
        code = server.process.poll()
        if code is not None:
            raise PhoenixStartError(f"Phoenix exited with {code} during start-up:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    server.startup_seconds = time.monotonic() - started
                    return
        except urllib.error.HTTPError as exc:
            exc.close()
        except (urllib.error.URLError, OSError):
            pass  # not listening yet
        if time.monotonic() - started > timeout:
            raise PhoenixStartError(f"Phoenix not healthy after {timeout:.0f}s:\n{server.log_tail()}")
        time.sleep(0.25)


# ---------------------------------------------------------------- child side


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when the test process dies, however it dies."""
    parent = int(os.environ.get(_PARENT_PID_ENV, "0"))
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            _logger.warning("prctl(PR_SET_PDEATHSIG) unavailable; relying on the parent's cleanup")
    # The parent may have died before prctl took effect.
    if parent and os.getppid() != parent:
        sys.exit("parent test process is gone")


def _bind_grpc_to_loopback() -> None:
    """Make every grpc.aio server add its ports on 127.0.0.1 instead of ``[::]``/``0.0.0.0``.

    Phoenix calls ``grpc.aio.server(...)`` through the module attribute at
    start-up, so replacing that factory is enough; the returned server gets
    instance-level ``add_*_port`` wrappers that keep the port and swap the host.
    """
    import grpc.aio

    make_server = grpc.aio.server

    def to_loopback(address: str) -> str:
        _, _, port = address.rpartition(":")
        return f"127.0.0.1:{port}"

    def loopback_server(*args: Any, **kwargs: Any) -> Any:
        server = make_server(*args, **kwargs)
        add_insecure, add_secure = server.add_insecure_port, server.add_secure_port
        server.add_insecure_port = lambda address: add_insecure(to_loopback(address))
        server.add_secure_port = lambda address, credentials: add_secure(to_loopback(address), credentials)
        return server

    grpc.aio.server = loopback_server


def _launch() -> None:
    _die_with_parent()
    _bind_grpc_to_loopback()
    from phoenix.server.main import main  # the `phoenix` console script's target

    sys.argv = ["phoenix", "serve"]
    main()


if __name__ == "__main__" and sys.argv[1:] == [_LAUNCH_FLAG]:
    _launch()
