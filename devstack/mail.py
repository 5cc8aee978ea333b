"""The local mail stand-in: an SMTP server that delivers nowhere and keeps each message it
receives as one `.eml` file in a folder (`make run`: `.data/mail/`), so the mail a booking
sent can be read with `cat`. Local only: no AUTH, no TLS; any recipient is accepted.

`python -m devstack.mail --host 127.0.0.1 --port 8025 --dir .data/mail`"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger("holdfast.mail")

SERVER_NAME = "mail.holdfast.localhost"  # (else aiosmtpd asks DNS for this host's name)
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


@dataclass(frozen=True)
class Received:
    """One message as it arrived: the envelope, the parsed message, and its file if kept."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    path: Path | None


def file_stem(hint: str | None = None) -> str:
    """`<UTC timestamp>-<hint or a uuid>`: sorts by arrival, safe as a file name."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    cleaned = _UNSAFE.sub("_", (hint or "").strip().strip("<>"))[:100].strip("._")
    return f"{stamp}-{cleaned or uuid.uuid4().hex}"


def store_new(directory: Path, stem: str, suffix: str, data: bytes) -> Path:
    """Writes `data` to a new file `<stem><suffix>` in `directory`, whole or not at all
    (written under a hidden name, then linked into place); never replaces a file, a
    clashing name gets `-2`, `-3`, ... Returns the file's path."""
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{stem}.{uuid.uuid4().hex}.partial"
    with partial.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    try:
        for n in range(1, 1000):
            target = directory / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
            try:
                os.link(partial, target)  # unlike rename, fails rather than replaces
            except FileExistsError:
                continue
            return target
        raise FileExistsError(f"no free name for {stem}{suffix} in {directory}")
    finally:
        partial.unlink()


class MailFolder:
    """An aiosmtpd handler that keeps each message as a file in `directory` (if given) and,
    with `keep=True`, in `received` too (for tests). The file is the message as it came,
    preceded by its envelope as `Return-Path` and `X-Envelope-To` headers."""

    def __init__(self, directory: Path | None = None, *, keep: bool = False) -> None:
        self.directory = directory
        self.keep = keep
        self.received: list[Received] = []
        self._lock = threading.Lock()

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return [r.message for r in self.received]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=policy.default)
        mail_from = envelope.mail_from or ""
        path = None
        if self.directory is not None:
            head = (
                f"Return-Path: <{mail_from}>\r\nX-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
            ).encode("utf-8", errors="surrogateescape")
            try:
                path = store_new(
                    self.directory, file_stem(message.get("Message-ID")), ".eml", head + content
                )
            except OSError:
                log.exception("could not keep a message in %s", self.directory)
                return "451 Requested action aborted: could not store the message"
        if self.keep:
            with self._lock:
                self.received.append(Received(mail_from, tuple(envelope.rcpt_tos), message, path))
        log.info("received mail for %d recipient(s)%s", len(envelope.rcpt_tos), _at(path))
        return "250 Message accepted for delivery"


def _at(path: Path | None) -> str:
    return f": {path}" if path is not None else ""


def start(handler: MailFolder, host: str = "127.0.0.1", port: int = 8025) -> Controller:
    """Serves `handler` on host:port in a thread of its own; returns once it answers.
    Port 0 does not work (the controller connects to the port to see it is up): give a
    free one; a taken one raises OSError. Stop it with `.stop()`."""
    with socket.create_server((host, port)):
        pass  # a taken port fails here at once, not after the controller's 5 s wait
    controller = Controller(handler, hostname=host, port=port, server_hostname=SERVER_NAME)
    try:
        controller.start()
    except BaseException:
        controller.stop(no_assert=True)
        controller.loop.close()
        raise
    return controller


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--dir", type=Path, default=Path(".data/mail"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s mail %(levelname)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's every command
    stop = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # before the server thread inherits it
    controller = start(MailFolder(args.dir), args.host, args.port)
    log.info("SMTP on %s:%d, keeping mail in %s", args.host, args.port, args.dir)
    try:
        signal.sigwait(stop)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
