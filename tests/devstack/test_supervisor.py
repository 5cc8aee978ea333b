"""`make run` keeps its children running and stops them cleanly (devstack/supervisor.py):
real child processes (small `python -c` scripts), restarted with a backoff, stopped in
order; the worker drains and exits on SIGTERM; a restarted Stripe stand-in still sends
the API's webhook."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from devstack.run import _start_local_stripe
from devstack.simulate_payment import LOCAL_STRIPE_KEY
from devstack.supervisor import Backoff, ChildFailed, Supervisor
from settings import Settings
from tests.support.live import worker_env

FAST = Backoff(initial=0.05, cap=0.2, reset_after=30)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def tend_until(supervisor: Supervisor, done: Callable[[], bool], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "timed out"
        supervisor.tend()
        time.sleep(0.01)


def wait_for(done: Callable[[], bool], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """Running (a zombie, killed but not yet reaped by init, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> Callable[[], bool]:
    def check() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    return check


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    supervising = Supervisor(FAST, poll_interval=0.01)
    yield supervising
    supervising.stop()


def test_a_crashed_child_is_restarted_and_the_log_names_it(
    supervisor: Supervisor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "holdfast.supervisor")
    marker = tmp_path / "ran"
    child = supervisor.start(
        "flaky",
        python(
            "import pathlib, sys, time\n"
            f"m = pathlib.Path({str(marker)!r})\n"
            "if not m.exists():\n"
            "    m.touch(); sys.exit(3)\n"
            "time.sleep(60)\n"
        ),
    )
    first = child.process
    tend_until(supervisor, lambda: child.process is not first and child.running)

    assert [e.code for e in child.exits] == [3]
    assert "flaky exited with code 3" in caplog.text
    assert "restarting flaky" in caplog.text


def test_the_pause_before_a_restart_doubles_up_to_the_cap(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    starts = tmp_path / "starts"
    child = supervisor.start(
        "crashing",
        python(
            "import sys, time\n"
            f"open({str(starts)!r}, 'a').write(f'{{time.time()}}\\n')\n"
            "sys.exit(3)\n"
        ),
    )
    tend_until(supervisor, lambda: len(child.exits) >= 5)

    delays = [e.delay for e in child.exits[:5]]
    assert delays == [0.05, 0.1, 0.2, 0.2, 0.2]
    times = [float(line) for line in starts.read_text().split()]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap >= delay for gap, delay in zip(gaps, delays, strict=False))


def test_a_child_that_stayed_up_starts_its_backoff_afresh(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    supervisor = Supervisor(Backoff(initial=0.05, cap=1, reset_after=0.5), poll_interval=0.01)
    try:
        child = supervisor.start(
            "sometimes",
            python(
                "import sys, time\n"
                f"f = open({str(runs)!r}, 'a+'); f.seek(0); n = len(f.read()) + 1\n"
                "f.write('x'); f.close()\n"
                "if n == 3:\n"
                "    time.sleep(0.8)\n"  # longer than reset_after: a healthy run
                "sys.exit(3)\n"
            ),
        )
        tend_until(supervisor, lambda: len(child.exits) >= 4)
    finally:
        supervisor.stop()

    assert [e.delay for e in child.exits[:4]] == [0.05, 0.1, 0.05, 0.1]


def test_a_restarted_child_is_set_up_again_once_ready(
    supervisor: Supervisor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "holdfast.supervisor")
    port = free_port()
    setups: list[float] = []
    child = supervisor.start(
        "server",
        python(
            "import socket, time\n"
            "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)\n"
        ),
        ready=listening(port),
        on_ready=lambda: setups.append(time.monotonic()),
    )
    assert len(setups) == 1
    assert child.process is not None
    os.kill(child.process.pid, signal.SIGKILL)

    tend_until(supervisor, lambda: len(setups) == 2)
    assert "server exited with code -9 (SIGKILL)" in caplog.text
    assert "server is back" in caplog.text


def test_a_child_that_exits_on_its_first_start_stops_the_start(
    supervisor: Supervisor,
) -> None:
    with pytest.raises(ChildFailed, match="broken exited with code 2"):
        supervisor.start("broken", python("raise SystemExit(2)"), ready=lambda: False)


def _stops_and_records(name: str, record: Path, ready: Path) -> list[str]:
    return python(
        "import signal, sys, time, pathlib\n"
        "def bye(*_):\n"
        f"    open({str(record)!r}, 'a').write({name!r} + '\\n'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "time.sleep(60)\n"
    )


def test_stop_terminates_the_named_children_first_then_the_rest_newest_first(
    tmp_path: Path,
) -> None:
    supervisor = Supervisor(FAST, poll_interval=0.01)
    record = tmp_path / "stopped"
    names = ["a", "b", "c", "d"]
    for name in names:
        supervisor.start(name, _stops_and_records(name, record, tmp_path / f"{name}.ready"))
    wait_for(lambda: all((tmp_path / f"{n}.ready").exists() for n in names))

    supervisor.stop(first=["c", "a"])

    assert record.read_text().split() == ["c", "a", "d", "b"]
    assert [c.process.returncode if c.process else None for c in supervisor.children] == [0] * 4


def test_stop_kills_a_child_that_ignores_sigterm_after_its_bound(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "holdfast.supervisor")
    supervisor = Supervisor(FAST, poll_interval=0.01)
    ready = tmp_path / "ready"
    child = supervisor.start(
        "stubborn",
        python(
            "import signal, time, pathlib\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            f"pathlib.Path({str(ready)!r}).touch()\n"
            "time.sleep(60)\n"
        ),
        stop_within=0.5,
    )
    wait_for(ready.exists)

    began = time.monotonic()
    supervisor.stop()
    took = time.monotonic() - began

    assert child.process is not None and child.process.returncode == -signal.SIGKILL
    assert 0.5 <= took < 5
    assert "stubborn did not stop within" in caplog.text


def test_stop_leaves_nothing_a_child_started_running(tmp_path: Path) -> None:
    supervisor = Supervisor(FAST, poll_interval=0.01)
    pid_file = tmp_path / "grandchild"
    supervisor.start(
        "parent",
        python(
            "import subprocess, sys, time, pathlib\n"
            "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            f"pathlib.Path({str(pid_file)!r}).write_text(str(g.pid))\n"
            "time.sleep(60)\n"
        ),
    )
    wait_for(lambda: pid_file.exists() and pid_file.read_text() != "")
    grandchild = int(pid_file.read_text())
    assert alive(grandchild)

    supervisor.stop()

    wait_for(lambda: not alive(grandchild), seconds=5)


class _Receiver(BaseHTTPRequestHandler):
    """Records what localstripe posts to "the API's" webhook."""

    received: list[tuple[str, str]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.received.append((self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_restarted_stripe_stand_in_still_sends_the_api_its_webhook(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    received: list[tuple[str, str]] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    api = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    address = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "STRIPE_WEBHOOK_SECRET": "whsec_test"}
    try:
        base = f"http://127.0.0.1:{api.server_address[1]}"
        _start_local_stripe(supervisor, env, tmp_path, base, address)
        stand_in = supervisor.child("localstripe")
        assert stand_in.process is not None
        os.kill(stand_in.process.pid, signal.SIGKILL)
        tend_until(supervisor, lambda: len(stand_in.exits) == 1 and stand_in.up)

        httpx.post(
            f"{address}/v1/customers",
            auth=(LOCAL_STRIPE_KEY, ""),
            data={"email": "a@example.test"},
        ).raise_for_status()

        wait_for(lambda: any("customer.created" in body for _, body in received), seconds=10)
        assert {path for path, _ in received} == {"/v1/webhooks/stripe"}
    finally:
        api.shutdown()
        api.server_close()


def _worker_env(settings: Settings, temporal_address: str) -> dict[str, str]:
    return worker_env(settings, temporal_address, "sigterm")


def _exit_after_signal(
    env: dict[str, str], log_file: Path, up: str, sig: signal.Signals
) -> tuple[int, float]:
    """Start `python -m worker`, wait for the line `up` in its log, send `sig`: its exit
    code and how long the exit took."""
    with log_file.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "worker"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for(lambda: up in log_file.read_text() or worker.poll() is not None, seconds=60)
        assert worker.poll() is None, log_file.read_text()
        began = time.monotonic()
        worker.send_signal(sig)
        code = worker.wait(timeout=30)
        return code, time.monotonic() - began
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_worker_exits_promptly_and_cleanly_on_a_stop_signal(
    settings: Settings,
    temporal_dev_server: WorkflowEnvironment,
    tmp_path: Path,
    sig: signal.Signals,
) -> None:
    env = _worker_env(settings, temporal_dev_server.client.service_client.config.target_host)
    log_file = tmp_path / "worker.log"

    code, took = _exit_after_signal(env, log_file, "worker polling task queue", sig)

    assert code == 0, log_file.read_text()
    assert took < 5, log_file.read_text()
    assert "worker stopped" in log_file.read_text()


def test_the_worker_still_waiting_for_temporal_exits_promptly_on_sigterm(
    settings: Settings, tmp_path: Path
) -> None:
    """A restarted worker may be retrying a Temporal that is down: a stop must not wait
    out the minute of retries."""
    env = _worker_env(settings, f"127.0.0.1:{free_port()}")  # nothing listens there
    log_file = tmp_path / "worker.log"

    code, took = _exit_after_signal(env, log_file, "connecting to Temporal", signal.SIGTERM)

    assert code == 0, log_file.read_text()
    assert took < 5, log_file.read_text()
