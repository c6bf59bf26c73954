"""A real HTTPS server on loopback with a self-signed cert, standing in for the endpoint API."""

from __future__ import annotations

import datetime
import gzip
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_self_signed(directory: Path, name: str = "vigil-test") -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{name}.crt"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@dataclass
class LogSink:
    """What the fake endpoint API received, and how it should answer."""

    batches: list[list[bytes]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    fail_with: int = 0  # answer POST /logs with this status instead of 200
    server_key: str = "srv-key"
    routes: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # GET path -> (status, body)
    posts: list[tuple[str, bytes]] = field(default_factory=list)  # every other POST, gunzipped

    @property
    def lines(self) -> list[bytes]:
        return [line for batch in self.batches for line in batch]


@dataclass
class TLSServer:
    url: str
    cert: Path
    sink: LogSink
    server: ThreadingHTTPServer

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_tls_server(tmp_path: Path, sink: LogSink, port: int = 0) -> TLSServer:
    cert, key = make_self_signed(tmp_path)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/key":
                self._reply(200, sink.server_key.encode())
            elif self.path in sink.routes:
                self._reply(*sink.routes[self.path])
            else:
                self._reply(404)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/logs":
                sink.posts.append((self.path, body))
                self._reply(200)
                return
            if sink.fail_with:
                self._reply(sink.fail_with)
                return
            sink.headers.append(dict(self.headers))
            sink.batches.append([line for line in body.split(b"\n") if line])
            self._reply(200)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return TLSServer(f"https://127.0.0.1:{server.server_address[1]}", cert, sink, server)
