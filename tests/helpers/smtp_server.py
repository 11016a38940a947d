"""A real SMTP server in the test process (aiosmtpd), plain, STARTTLS or implicit TLS, with login.

``SmtpServer`` wraps an aiosmtpd ``Controller`` whose handler keeps every accepted envelope;
``messages()`` parses them with the stdlib ``email`` package, so tests assert on what a mail
client would see. ``TlsFiles`` makes a throwaway CA and a server certificate for 127.0.0.1 and
localhost with ``trustme``; the CA file is what the transport's ``ca_file`` points at, so
certificate verification in the tests is the real thing.
"""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port nothing listens on right now (bound and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    tls: bool  # whether the session was encrypted when DATA arrived
    authenticated_as: str | None

    def parsed(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class CollectingHandler:
    """aiosmtpd handler: accept everything, remember it."""

    received: list[ReceivedMail] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (login, accepted)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else (str(auth) if auth else None)
        mail = ReceivedMail(
            mail_from=envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=bytes(envelope.original_content or envelope.content),
            tls=session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
            authenticated_as=login,
        )
        with self.lock:
            self.received.append(mail)
        return "250 Message accepted for delivery"


class PasswordAuthenticator:
    """aiosmtpd ``authenticator``: one login/password pair (LOGIN and PLAIN mechanisms)."""

    def __init__(self, handler: CollectingHandler, username: str, password: str) -> None:
        self.handler = handler
        self.username = username
        self.password = password

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        # handled=False: let aiosmtpd answer (535 on failure); handled=True would send nothing
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode()
        ok = login == self.username and auth_data.password.decode() == self.password
        with self.handler.lock:
            self.handler.logins.append((login, ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


class TlsFiles:
    """A throwaway CA plus a server certificate valid for 127.0.0.1 and localhost."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        self.server_cert = self.ca.issue_cert(HOST, "localhost")
        self.ca_file = directory / "test-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(context)
        return context


class SmtpServer:
    """``with SmtpServer(...) as server:`` — a listening aiosmtpd on 127.0.0.1:<free port>.

    mode ``none``: plain SMTP; ``starttls``: advertises and requires STARTTLS;
    ``ssl``: implicit TLS from the first byte. With ``username``/``password`` the server
    offers AUTH (only over TLS, ``auth_require_tls``) and requires it before MAIL.
    """

    def __init__(
        self,
        mode: str = "none",
        *,
        tls: TlsFiles | None = None,
        username: str | None = None,
        password: str | None = None,
        port: int | None = None,
    ) -> None:
        if mode != "none" and tls is None:
            raise ValueError(f"mode {mode!r} needs TlsFiles")
        self.mode = mode
        self.handler = CollectingHandler()
        self.port = port or free_port()
        kwargs: dict[str, Any] = {}
        if mode == "starttls":
            assert tls is not None
            kwargs.update(tls_context=tls.server_context(), require_starttls=True)
        elif mode == "ssl":
            assert tls is not None
            kwargs.update(ssl_context=tls.server_context())
        if username is not None:
            assert password is not None
            kwargs.update(
                authenticator=PasswordAuthenticator(self.handler, username, password),
                auth_require_tls=True,
                auth_required=True,
            )
        self.controller = Controller(self.handler, hostname=HOST, port=self.port, ready_timeout=10, **kwargs)

    @property
    def host(self) -> str:
        return HOST

    @property
    def received(self) -> list[ReceivedMail]:
        with self.handler.lock:
            return list(self.handler.received)

    def messages(self) -> list[EmailMessage]:
        return [mail.parsed() for mail in self.received]

    def __enter__(self) -> "SmtpServer":
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
