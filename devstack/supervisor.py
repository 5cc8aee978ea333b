"""Keeps `make run`'s child processes running, and stops them in order.

A dev stack that stops whole when one part dies cuts every request in flight, and the
client learns its booking's fate only on the next start. So a child that exits is
started again, after a pause that doubles with each quick exit (1 s up to 30 s), and
starts again from 1 s once a run has lasted a while: a crash loop never spins the CPU,
and a child that crashes once an hour comes back at once. It is never given up on,
since it may be waiting for something outside (a port, a server) that comes back.

Each child runs in a session of its own, so a Ctrl-C at the terminal reaches only
`make run`, which then stops the children one at a time, in the order given (the API
before the worker it waits on, the servers both use last), each with SIGTERM and, when
it does not exit within its bound, SIGKILL. Whatever a child started itself (uvicorn's
process pool) is killed with it, and on Linux a child is told to stop if `make run`
itself dies, so nothing is left running after it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

log = logging.getLogger("holdfast.supervisor")

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_PR_SET_PDEATHSIG = 1  # prctl(2)


class ChildFailed(RuntimeError):
    """A child exited, or did not become ready, on its first start: a configuration
    problem (a port taken, a setting wrong) that restarting would only repeat."""


@dataclass(frozen=True)
class Backoff:
    """Pause before the n-th restart in a row: `initial` doubling up to `cap`. A run
    that lasted `reset_after` seconds or more ends the row: it counted as healthy."""

    initial: float = 1.0
    cap: float = 30.0
    reset_after: float = 60.0

    def delay(self, failures: int) -> float:
        """`failures` counts the quick exits in a row, this one included (1 or more)."""
        return float(min(self.cap, self.initial * 2 ** max(failures - 1, 0)))


@dataclass(frozen=True)
class Exit:
    """One exit of a supervised child: how, after how long, and the pause chosen."""

    code: int
    uptime: float
    delay: float


@dataclass
class Child:
    """A supervised process: how to start it, how to tell it is ready, what to do once
    it is (run again after every restart), and how long it may take to stop."""

    name: str
    args: list[str]
    env: Mapping[str, str] | None = None
    log_file: Path | None = None  # stdout and stderr appended there, else inherited
    ready: Callable[[], bool] | None = None
    on_ready: Callable[[], None] | None = None
    stop_within: float = 10.0
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None  # while waiting to restart
    awaiting_ready: bool = False
    supervised: bool = False  # restarted when it exits: from its first ready on
    exits: list[Exit] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def up(self) -> bool:
        """Running, ready and set up (not between an exit and its restart)."""
        return self.running and self.restart_at is None and not self.awaiting_ready


class Supervisor:
    """Starts children, restarts those that exit (`tend`, or `run` until interrupted),
    and stops them all (`stop`)."""

    def __init__(self, backoff: Backoff | None = None, poll_interval: float = 0.25) -> None:
        self.backoff = backoff or Backoff()
        self.poll_interval = poll_interval
        self.children: list[Child] = []
        self._stopping = False
        self._hurry = False

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    def start(
        self,
        name: str,
        args: list[str],
        *,
        env: Mapping[str, str] | None = None,
        log_file: Path | None = None,
        ready: Callable[[], bool] | None = None,
        ready_within: float = 60.0,
        on_ready: Callable[[], None] | None = None,
        stop_within: float = 10.0,
    ) -> Child:
        """Start `name` and wait (tending the others meanwhile) until `ready()` holds,
        then run `on_ready`; from then on it is restarted whenever it exits. Its first
        start failing raises ChildFailed instead: `make run` reports it and stops."""
        child = Child(name, args, env, log_file, ready, on_ready, stop_within)
        self.children.append(child)
        self._spawn(child)
        deadline = time.monotonic() + ready_within
        while ready is not None and not ready():
            process = child.process
            assert process is not None
            if process.poll() is not None:
                raise ChildFailed(f"{name} exited with code {process.returncode}")
            if time.monotonic() > deadline:
                raise ChildFailed(f"{name} did not come up within {ready_within:.0f}s")
            self.tend()
            time.sleep(self.poll_interval)
        child.awaiting_ready = False
        if on_ready is not None:
            on_ready()
        child.supervised = True
        return child

    def tend(self) -> None:
        """One look at every child: an exit is logged and its restart scheduled, a
        restart that is due is made, and a restarted child that has become ready gets
        its `on_ready` (one that fails is killed, to be restarted like a crash)."""
        if self._stopping:
            return
        now = time.monotonic()
        for child in self.children:
            if not child.supervised:
                continue
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restart_at = None
                    log.info("restarting %s (restart %d in a row)", child.name, child.failures)
                    try:
                        self._spawn(child)
                    except OSError as err:  # its program gone, say: try again later
                        child.failures += 1
                        child.restart_at = now + self.backoff.delay(child.failures)
                        log.warning("could not start %s: %s", child.name, err)
                continue
            process = child.process
            assert process is not None
            if process.poll() is not None:
                self._exited(child, process.returncode, now)
            elif child.awaiting_ready:
                self._check_ready(child)

    def run(self) -> NoReturn:
        """Tend the children until interrupted (KeyboardInterrupt, from run.py's signal
        handler), which propagates: the caller then stops them."""
        while True:
            self.tend()
            time.sleep(self.poll_interval)

    def hurry(self) -> None:
        """A second Ctrl-C while stopping: stop waiting for graceful exits; kill."""
        self._hurry = True

    def stop(self, first: Sequence[str] = ()) -> None:
        """Stop every child: those named in `first`, in that order, then the others in
        reverse start order (each may need the ones started before it). Each gets SIGTERM
        and `stop_within` seconds, then SIGKILL; what it started itself is killed too."""
        self._stopping = True
        named = [self.child(name) for name in first if any(c.name == name for c in self.children)]
        rest = [c for c in reversed(self.children) if c not in named]
        for child in (*named, *rest):
            self._stop_one(child)

    def _spawn(self, child: Child) -> None:
        # The stop signals are held back while the process is created and recorded, so a
        # Ctrl-C at that moment cannot leave a child that stop() does not know of.
        with _signals_blocked():
            out = child.log_file.open("ab") if child.log_file is not None else None
            try:
                child.process = subprocess.Popen(
                    child.args,
                    env=None if child.env is None else dict(child.env),
                    stdout=out,
                    stderr=subprocess.STDOUT if out is not None else None,
                    start_new_session=True,  # Ctrl-C at the terminal is for make run only
                    preexec_fn=_child_setup(os.getpid()),
                )
            finally:
                if out is not None:
                    out.close()
            child.started_at = time.monotonic()
            child.awaiting_ready = child.ready is not None

    def _exited(self, child: Child, code: int, now: float) -> None:
        uptime = now - child.started_at
        if uptime >= self.backoff.reset_after:
            child.failures = 0
        child.failures += 1
        delay = self.backoff.delay(child.failures)
        child.exits.append(Exit(code, uptime, delay))
        child.restart_at = now + delay
        _kill_group(child)  # anything it left behind
        at = time.strftime("%H:%M:%S", time.localtime(time.time() + delay))  # as the log
        log.warning(
            "%s exited with code %s after %.1fs; restarting it in %gs (at %s)",
            child.name,
            _describe(code),
            uptime,
            delay,
            at,
        )

    def _check_ready(self, child: Child) -> None:
        if child.ready is not None and not child.ready():
            return
        child.awaiting_ready = False
        try:
            if child.on_ready is not None:
                child.on_ready()
        except Exception as err:
            log.warning("%s came back but could not be set up (%s); killing it", child.name, err)
            _kill_group(child)
            return
        log.info("%s is back", child.name)

    def _stop_one(self, child: Child) -> None:
        process = child.process
        child.restart_at = None
        if process is None:
            return
        if process.poll() is None and not self._hurry:
            log.info("stopping %s", child.name)
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            deadline = time.monotonic() + child.stop_within
            while process.poll() is None and time.monotonic() < deadline and not self._hurry:
                time.sleep(0.05)
        if process.poll() is None:
            if self._hurry:
                log.warning("killing %s", child.name)
            else:
                log.warning("%s did not stop within %gs; killing it", child.name, child.stop_within)
        _kill_group(child)
        process.wait()


def _kill_group(child: Child) -> None:
    """SIGKILL the child's session (it leads its own group): the child if it still runs,
    and whatever it started that outlived it."""
    if child.process is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signal.SIGKILL)


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"{code} ({signal.Signals(-code).name})"
    return str(code)


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _child_setup(parent: int) -> Callable[[], None]:
    """Runs in the child between fork and exec: lets it receive the stop signals the
    parent held back, and (Linux) has the kernel send it SIGTERM should `make run` die
    without stopping it (killed with SIGKILL, say)."""
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None

    def setup() -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:  # it died before the line above
                os._exit(1)

    return setup
