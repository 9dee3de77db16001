"""Python peers for the sample captures (stdlib only: ssl + socket).

Real TLS comes from Python's ``ssl`` module (OpenSSL underneath). The raw
socket modes misbehave on purpose at the TCP level (never answer, reset,
close) and never assemble TLS bytes by hand; the one exception, asked for by
the brief, is ``malformed-hello``, which takes a ClientHello produced by
``ssl`` and corrupts one length field before sending it.

Every mode prints one line of JSON describing what happened, so the
orchestrator can log it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import ssl
import struct
import sys
import time

VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


def out(**kw) -> None:
    print(json.dumps(kw), flush=True)


def family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def listen(host: str, port: int) -> socket.socket:
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(8)
    return s


def connect(host: str, port: int, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection((host, port), timeout=timeout)
    return s


def rst_close(s: socket.socket) -> None:
    """Close with an RST instead of a FIN (SO_LINGER on, timeout 0)."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def ctx_versions(ctx: ssl.SSLContext, a) -> None:
    if getattr(a, "tls_min", None):
        ctx.minimum_version = VERSIONS[a.tls_min]
    if getattr(a, "tls_max", None):
        ctx.maximum_version = VERSIONS[a.tls_max]


def recv_some(s: socket.socket, timeout: float) -> bytes:
    s.settimeout(timeout)
    try:
        return s.recv(65536)
    except (TimeoutError, ConnectionError):
        return b""


# ---------------------------------------------------------------- TLS server
def tls_server(a) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx_versions(ctx, a)
    ctx.load_cert_chain(a.cert, a.key)
    if a.alpn:
        ctx.set_alpn_protocols(a.alpn.split(","))
    if a.client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(a.client_ca)
    if a.keylog:
        ctx.keylog_filename = a.keylog
    ls = listen(a.host, a.port)
    for _ in range(a.count):
        raw, peer = ls.accept()
        try:
            with ctx.wrap_socket(raw, server_side=True) as t:
                req = t.recv(65536)
                while a.bulk and len(req) < a.bulk:
                    more = t.recv(65536)
                    if not more:
                        break
                    req += more
                if a.bulk:
                    t.sendall(b"S" * a.bulk)
                else:
                    body = b"hello from python ssl server\n"
                    t.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                version, alpn = t.version(), t.selected_alpn_protocol()
                with contextlib.suppress(ssl.SSLError, OSError):
                    t.unwrap()  # close_notify both ways, then a plain TCP close
                out(mode="server", peer=peer[1], ok=True, version=version, alpn=alpn, request_len=len(req))
        except (ssl.SSLError, OSError) as e:
            out(mode="server", peer=peer[1], ok=False, error=repr(e))


# ---------------------------------------------------------------- TLS client
def tls_client(a) -> None:
    ctx = ssl.create_default_context(cafile=a.cafile)
    ctx_versions(ctx, a)
    if a.alpn:
        ctx.set_alpn_protocols(a.alpn.split(","))
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    if a.keylog:
        ctx.keylog_filename = a.keylog
    raw = connect(a.host, a.port)
    try:
        with ctx.wrap_socket(raw, server_hostname=a.sni) as t:
            t.sendall(b"GET / HTTP/1.0\r\nHost: %s\r\n\r\n" % a.sni.encode() if not a.bulk else b"C" * a.bulk)
            got = 0
            t.settimeout(5)
            while True:
                d = t.recv(65536)
                if not d:
                    break
                got += len(d)
                if a.bulk and got >= a.bulk:
                    break
            version, alpn = t.version(), t.selected_alpn_protocol()
            with contextlib.suppress(ssl.SSLError, OSError):
                t.unwrap()  # answer the server's close_notify
            out(mode="client", ok=True, version=version, alpn=alpn, received=got)
    except (ssl.SSLError, OSError) as e:
        out(mode="client", ok=False, error=repr(e))
        sys.exit(1)


# ---------------------------------------------------------- misbehaving servers
def silent_server(a) -> None:
    """Accept, read the ClientHello, never answer; wait for the client to leave."""
    ls = listen(a.host, a.port)
    for _ in range(a.count):
        s, peer = ls.accept()
        first = recv_some(s, 5)
        rest = recv_some(s, 30)  # returns b"" when the client closes
        out(mode="silent-server", peer=peer[1], read=len(first), then=len(rest))
        s.close()


def reset_server(a) -> None:
    """Accept, read the ClientHello, reset the connection (SO_LINGER 0)."""
    ls = listen(a.host, a.port)
    for _ in range(a.count):
        s, peer = ls.accept()
        first = recv_some(s, 5)
        time.sleep(0.05)
        rst_close(s)
        out(mode="reset-server", peer=peer[1], read=len(first))


def close_server(a) -> None:
    """Accept, read the ClientHello, close politely (FIN) without a word."""
    ls = listen(a.host, a.port)
    for _ in range(a.count):
        s, peer = ls.accept()
        first = recv_some(s, 5)
        time.sleep(0.05)
        s.shutdown(socket.SHUT_WR)
        recv_some(s, 5)
        s.close()
        out(mode="close-server", peer=peer[1], read=len(first))


# ---------------------------------------------------------- misbehaving clients
def idle_client(a) -> None:
    """Connect to a TLS port and send nothing: close after --hold seconds,
    or (with --hold 0) stay connected until killed."""
    s = connect(a.host, a.port)
    out(mode="idle-client", local_port=s.getsockname()[1], hold=a.hold)
    if a.hold > 0:
        time.sleep(a.hold)
        s.close()
    else:
        while True:
            time.sleep(3600)


def _memory_handshake_until_server_flight(a, ctx: ssl.SSLContext):
    """Drive an SSLObject over a socket until the client's second flight (or
    the server's first application data) is ready to go out; return
    (socket, sslobject, pending_client_bytes)."""
    inc, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, outb, server_side=False, server_hostname=a.sni)
    s = connect(a.host, a.port)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    s.sendall(outb.read())  # the ClientHello
    pending = b""
    s.settimeout(5)
    while not pending:
        data = s.recv(65536)
        if not data:
            break
        inc.write(data)
        with contextlib.suppress(ssl.SSLWantReadError):
            obj.do_handshake()
        pending = outb.read()
    return s, obj, pending


def abort_client(a) -> None:
    """Complete reading the server's flight (certificate is valid), then reset
    instead of sending the client's second flight: no alert, no FIN."""
    ctx = ssl.create_default_context(cafile=a.cafile)
    ctx_versions(ctx, a)
    if a.keylog:
        ctx.keylog_filename = a.keylog
    s, obj, pending = _memory_handshake_until_server_flight(a, ctx)
    time.sleep(0.02)
    if a.how == "rst":
        rst_close(s)
    else:
        s.close()
    out(mode="abort-client", how=a.how, withheld_bytes=len(pending), version=obj.version())


def malformed_hello(a) -> None:
    """Send a real ClientHello from the ssl module with its extensions length
    field off by one byte (as a buggy middlebox or client would), then read
    what the server answers."""
    ctx = ssl.create_default_context(cafile=a.cafile)
    ctx_versions(ctx, a)
    inc, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, outb, server_side=False, server_hostname=a.sni)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = bytearray(outb.read())
    # record(5) + handshake header(4) + version(2) + random(32)
    p = 5 + 4 + 2 + 32
    p += 1 + hello[p]  # session id
    p += 2 + int.from_bytes(hello[p : p + 2], "big")  # cipher suites
    p += 1 + hello[p]  # compression methods
    ext_len = int.from_bytes(hello[p : p + 2], "big")
    hello[p : p + 2] = (ext_len + 1).to_bytes(2, "big")  # the defect
    s = connect(a.host, a.port)
    s.sendall(bytes(hello))
    reply = recv_some(s, 3)
    s.close()
    out(mode="malformed-hello", sent=len(hello), reply=reply[:16].hex())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "mode",
        choices=[
            "server",
            "client",
            "silent-server",
            "reset-server",
            "close-server",
            "idle-client",
            "abort-client",
            "malformed-hello",
        ],
    )
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--sni", default="server.test")
    ap.add_argument("--cafile")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--client-ca")
    ap.add_argument("--alpn")
    ap.add_argument("--tls-min")
    ap.add_argument("--tls-max")
    ap.add_argument("--bulk", type=int, default=0)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--hold", type=float, default=0.3)
    ap.add_argument("--how", choices=["rst", "fin"], default="rst")
    ap.add_argument("--keylog")
    a = ap.parse_args()
    {
        "server": tls_server,
        "client": tls_client,
        "silent-server": silent_server,
        "reset-server": reset_server,
        "close-server": close_server,
        "idle-client": idle_client,
        "abort-client": abort_client,
        "malformed-hello": malformed_hello,
    }[a.mode](a)


if __name__ == "__main__":
    main()
