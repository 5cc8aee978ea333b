"""The local mail stand-in: what `make run` and the tests read sent mail from."""

from __future__ import annotations

import socket
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import aiosmtplib
import pytest

from devstack.mail import MailFolder, start
from tests.support.mail import mail_server


def _message(subject: str, message_id: str | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "bookings@holdfast.localhost"
    message["To"] = "grace@example.com"
    message["Subject"] = subject
    if message_id is not None:
        message["Message-ID"] = message_id
    message["X-Holdfast-Kind"] = "confirmed"
    message.set_content("See you on Monday.")
    return message


def _listing(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


async def test_each_message_is_one_eml_file_and_kept_in_memory(tmp_path: Path) -> None:
    async with mail_server(tmp_path) as mail:
        for n in (1, 2):
            await aiosmtplib.send(
                _message(f"Booking {n}", make_msgid(domain="holdfast.localhost")),
                hostname=mail.host,
                port=mail.port,
                recipients=["grace@example.com", "desk@example.com"],
                start_tls=False,
            )
        first, second = await mail.wait_for(2)

    files = _listing(tmp_path)
    assert len(files) == 2 and all(p.suffix == ".eml" for p in files)
    assert [r.path for r in mail.received] == files  # the names sort in arrival order
    assert (first["Subject"], second["Subject"]) == ("Booking 1", "Booking 2")
    assert mail.received[0].rcpt_tos == ("grace@example.com", "desk@example.com")
    kept = files[0].read_bytes()
    assert kept.startswith(b"Return-Path: <bookings@holdfast.localhost>\r\n")
    assert b"X-Envelope-To: grace@example.com, desk@example.com" in kept
    assert b"X-Holdfast-Kind: confirmed" in kept and b"See you on Monday." in kept


async def test_a_file_is_named_by_time_and_message_id(tmp_path: Path) -> None:
    async with mail_server(tmp_path) as mail:
        for message_id in ("<booking-1.confirmed/x@holdfast.localhost>", None):
            await aiosmtplib.send(_message("Hello", message_id), hostname=mail.host, port=mail.port)
        await mail.wait_for(2)

    named, unnamed = (r.path.name for r in mail.received if r.path is not None)
    assert named.endswith("Z-booking-1.confirmed_x@holdfast.localhost.eml")
    assert len(unnamed.removesuffix(".eml").rpartition("-")[2]) == 32  # a uuid instead


async def test_without_a_folder_messages_are_only_kept_in_memory(tmp_path: Path) -> None:
    async with mail_server() as mail:
        await aiosmtplib.send(_message("Hello"), hostname=mail.host, port=mail.port)
        [message] = await mail.wait_for(1)
    assert message["Subject"] == "Hello" and mail.received[0].path is None


def test_a_taken_port_is_refused_at_once() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            start(MailFolder(), "127.0.0.1", port)
