#!/usr/bin/env python3
"""One mixed capture of many concurrent TLS connections, for an accuracy test the analyzer was never tuned on.

A seeded random mix (``--seed``, default 7) of successes and every failure kind that real stacks produce
reliably over loopback, from seven client stacks (OpenSSL s_client, curl, Python ssl, gnutls-cli, Go, Node.js,
Java) in TLS 1.2 and 1.3, against a pool of long-lived servers: one loopback port per scenario, and each
scenario's port is used by that scenario only. Clients run concurrently (``--jobs`` at a time), but never two
at once on the same server port, so the k-th TCP connection to a port in the capture is the k-th client
started for it. One tcpdump on lo records everything (full packets) into ``samples/workload-mixed.pcap``.

Ground truth: ``samples/workload-mixed.labels.csv``, one row per connection
(client_port, server_port, client, tls_version, scenario, intended_outcome, intended_cause). Client ports
come from the capture (tshark), matched to the scenario by server port and start order; every label is then
checked against what the peers did on the wire (SYN-ACK/RST/FIN, alerts, handshake messages and
application data, read with the key log that the servers and clients write), like make_samples.py does. A
label that the wire contradicts stops the script (exit status 1) and is printed; nothing is relabelled to
fit. The key log and a per-connection report (timeline, checks, what the client printed) stay in the build
directory ($TLS_SAMPLES_BUILD, default /tmp/tls-samples-build): workload.keys, workload-check.json.

TLS 1.3 hides the certificate; every certificate scenario's server therefore also serves TLS 1.2 clients in
the capture, so a correct analyzer can take the verdict from the same server (port) and every label is
decidable from the packets (see shared/spec/failure-causes.md, "inferred").

Requirements: as make_samples.py (root for tcpdump, one nftables rule, and net.ipv4.ip_local_reserved_ports,
which grows during the run so that no client port is handed out twice and is restored afterwards; the Go
binary, Java classes and PKCS#12 stores in the build directory are made by make_samples.prepare() when
missing).

    .venv/bin/python samples/workload.py                  # 800 connections, seed 7 (~1.5 min)
    .venv/bin/python samples/workload.py --seed 8 --connections 1200 --jobs 8
    .venv/bin/python samples/workload.py --only ok-python cert-expired --out /tmp/x.pcap   # a quick look
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent  # samples/
PCAP = HERE / "workload-mixed.pcap"
NFT_TABLE = "tls_workload"
REPLY_BODY = b"workload reply " + b"." * 150 + b"\n"  # a small answer: the capture stays small


# ======================================================================================================
# `workload.py serve`: a threaded Python ssl server (concurrent clients, short HTTP answer, close_notify)
# ======================================================================================================
def serve(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="workload.py serve")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--keylog")
    a = ap.parse_args(argv)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    if a.keylog:
        ctx.keylog_filename = a.keylog
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.host, a.port))
    ls.listen(64)

    def handle(raw: socket.socket, peer) -> None:
        raw.settimeout(6)
        try:
            with ctx.wrap_socket(raw, server_side=True) as t:
                req = t.recv(4096)
                t.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(REPLY_BODY), REPLY_BODY))
                with contextlib.suppress(ssl.SSLError, OSError):
                    t.unwrap()
                print(json.dumps({"peer": peer[1], "ok": True, "version": t.version(), "req": len(req)}), flush=True)
        except (ssl.SSLError, OSError) as e:
            print(json.dumps({"peer": peer[1], "ok": False, "error": repr(e)}), flush=True)
        finally:
            with contextlib.suppress(OSError):
                raw.close()

    while True:
        raw, peer = ls.accept()
        threading.Thread(target=handle, args=(raw, peer), daemon=True).start()


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "serve":
    serve(sys.argv[2:])
    sys.exit(0)

# ======================================================================================================
# The orchestrator reuses make_samples.py's helpers (process groups, tcpdump, client command builders,
# the tshark observation of each TCP stream).
# ======================================================================================================
sys.path.insert(0, str(HERE))
import make_samples as ms  # noqa: E402

BUILD, PKI, GEN, SYS_PY, LO4 = ms.BUILD, ms.PKI, ms.GEN, ms.SYS_PY, ms.LO4
KEYLOG = BUILD / "workload.keys"
HTTP_GET = ms.HTTP_GET
STACKS = ("openssl", "curl", "python", "gnutls", "node", "java", "go")


def pki(name: str) -> Path:
    return PKI / name


# ------------------------------------------------------------------------------------------------------
# Client commands: one builder for the seven stacks, exact TLS version (min = max)
# ------------------------------------------------------------------------------------------------------
CLIENT_CERTS = {  # name -> (PEM chain, key, Java PKCS#12 store)
    "good": ("client.pem", "client.key", "java-client.p12"),
    "wrongca": ("client-wrongca-chain.pem", "client-wrongca.key", "java-client-wrongca.p12"),
}


@dataclass
class Cmd:
    argv: list
    stdin: bytes | None = None
    env: dict = field(default_factory=dict)
    hold: float = 0.0  # keep stdin open this long (the client keeps reading the answer), then EOF
    kill_after: float = 12.0  # the client is killed after this long (expected for some scenarios)


def client(
    stack: str,
    ver: str,
    port: int,
    *,
    sni: str = "server.test",
    alpn: str | None = None,
    cert: str | None = None,
    extra: list | None = None,
) -> Cmd:
    env = {"SSLKEYLOGFILE": str(KEYLOG)}
    extra = list(extra or [])
    cc = CLIENT_CERTS.get(cert) if cert else None
    if stack == "openssl":
        if alpn:
            extra += ["-alpn", alpn]
        if cc:
            extra += ["-cert", pki(cc[0]), "-key", pki(cc[1])]
        return Cmd(ms.ossl_client(port, ver, sni=sni, keylog=KEYLOG, extra=extra), stdin=HTTP_GET)
    if stack == "curl":
        if alpn == "http/1.1":
            extra += ["--http1.1"]
        if cc:
            extra += ["--cert", pki(cc[0]), "--key", pki(cc[1])]
        return Cmd(ms.curl_client(port, ver, sni=sni, extra=extra), env=env)
    if stack == "python":
        extra += ["--tls-min", ver, "--sni", sni]
        if alpn:
            extra += ["--alpn", alpn]
        if cc:
            extra += ["--cert", pki(cc[0]), "--key", pki(cc[1])]
        return Cmd(ms.py_client(port, ver, keylog=KEYLOG, extra=extra))
    if stack == "gnutls":
        if alpn:
            extra += ["--alpn", alpn]
        if cc:
            extra += ["--x509certfile", pki(cc[0]), "--x509keyfile", pki(cc[1])]
        return Cmd(ms.gnutls_client(port, ver, sni=sni, extra=extra), stdin=HTTP_GET, env=env, hold=1.0)
    if stack == "node":
        extra += ["--min", {"1.3": "TLSv1.3", "1.2": "TLSv1.2"}[ver]]
        if sni != "server.test":
            extra += ["--sni", sni]
        if alpn:
            extra += ["--alpn", alpn]
        if cc:
            extra += ["--cert", pki(cc[0]), "--key", pki(cc[1])]
        return Cmd(ms.node_client(port, ver, keylog=KEYLOG, extra=extra))
    if stack == "go":
        extra += ["-min", ver]
        if sni != "server.test":
            extra += ["-sni", sni]
        if alpn:
            extra += ["-alpn", alpn]
        if cc:
            extra += ["-cert", pki(cc[0]), "-key", pki(cc[1])]
        return Cmd(ms.go_client(port, ver, keylog=KEYLOG, extra=extra))
    if stack == "java":
        if alpn:
            raise ValueError("JavaTls offers no ALPN")
        return Cmd(ms.java_client(port, ver, keystore=cc[2] if cc else None, sni=sni))
    raise ValueError(stack)


# ------------------------------------------------------------------------------------------------------
# Scenarios
# ------------------------------------------------------------------------------------------------------
@dataclass
class Variant:
    stack: str  # label of the client (one of STACKS, or e.g. "python-socket")
    ver: str  # intended TLS version ("" when no TLS is attempted)
    outcome: str
    cause: str | None
    cmd: Cmd
    note: str = ""


@dataclass
class Scenario:
    name: str
    port: int
    weight: float  # share of the random fill
    servers: list  # [(argv, env)] started before the run
    variants: list[Variant]
    what: str = ""
    server_desc: str = ""


def ossl_srv(port: int, leaf: str | None = "server", chain: str | None = "intermediate.pem", extra=None) -> list:
    # -WWW answers "GET / ..." with a short text (a few hundred bytes), unlike -www's multi-KB status page
    cmd = ms.ossl_server(port, leaf, chain, extra=extra, www=False, keylog=KEYLOG)
    return [*cmd, "-WWW"]


def py_srv(port: int, chain: str, key: str) -> list:
    return [
        SYS_PY,
        Path(__file__).resolve(),
        "serve",
        "--port",
        port,
        "--cert",
        pki(chain),
        "--key",
        pki(key),
        "--keylog",
        KEYLOG,
    ]


def every(port: int, outcome: str, cause: str | None, stacks=STACKS, vers=("1.3", "1.2"), **kw) -> list[Variant]:
    return [Variant(s, v, outcome, cause, client(s, v, port, **kw)) for s in stacks for v in vers]


PSK = ["-psk_identity", "client1", "-psk", "00112233445566778899aabbccddeeff"]
WRONG_PSK = ["-psk_identity", "client1", "-psk", "ffeeddccbbaa99887766554433221100"]


def scenarios() -> list[Scenario]:
    S: list[Scenario] = []

    def add(name, port, weight, servers, variants, what="", server_desc=""):
        S.append(Scenario(name, port, weight, servers, variants, what, server_desc))

    est = "established"
    # ---------------------------------------------------------------- successes (with application data)
    add(
        "ok-python",
        5101,
        7,
        [(py_srv(5101, "server-chain.pem", "server.key"), {})],
        every(5101, est, None),
        "success",
        "Python ssl (threaded)",
    )
    add("ok-openssl", 5102, 6, [(ossl_srv(5102), {})], every(5102, est, None), "success", "openssl s_server -WWW")
    add(
        "ok-node",
        5103,
        6,
        [
            (
                [
                    "node",
                    GEN / "node_tls.js",
                    "server",
                    "--port",
                    5103,
                    "--cert",
                    pki("server-chain.pem"),
                    "--key",
                    pki("server.key"),
                    "--count",
                    1000000,
                    "--keylog",
                    KEYLOG,
                ],
                {},
            )
        ],
        every(5103, est, None),
        "success",
        "Node.js tls",
    )
    add(
        "ok-gnutls",
        5104,
        5,
        [
            (
                [
                    "gnutls-serv",
                    "--http",
                    "-p",
                    5104,
                    "--x509certfile",
                    pki("server-chain.pem"),
                    "--x509keyfile",
                    pki("server.key"),
                ],
                {"SSLKEYLOGFILE": str(KEYLOG)},
            )
        ],
        every(5104, est, None),
        "success",
        "gnutls-serv --http",
    )
    add(
        "ok-go",
        5105,
        5,
        [
            (
                [
                    BUILD / "gotls",
                    "server",
                    "-addr",
                    f"{LO4}:5105",
                    "-cert",
                    pki("server-chain.pem"),
                    "-key",
                    pki("server.key"),
                    "-count",
                    1000000,
                    "-keylog",
                    KEYLOG,
                ],
                {},
            )
        ],
        every(5105, est, None),
        "success",
        "Go crypto/tls",
    )
    mtls = ["-Verify", "1", "-CAfile", pki("client-ca.pem"), "-verify_return_error"]
    add(
        "mtls-ok",
        5106,
        3,
        [(ossl_srv(5106, extra=mtls), {})],
        every(5106, est, None, cert="good"),
        "success, mutual TLS with a good client certificate",
        "openssl s_server -Verify 1",
    )

    # ---------------------------------------------------------------- transport
    add(
        "tcp-refused",
        8443,
        1.5,
        [],
        every(8443, "failed", "tcp_refused"),
        "nothing listens on 8443",
        "none (kernel RST)",
    )
    tv = []
    for s in STACKS:
        v = random.Random(s).choice(("1.3", "1.2"))
        cmd = client(s, v, 993, extra=["--connect-timeout", "3"] if s == "curl" else None)
        cmd.kill_after = 3.0 if s in ("openssl", "gnutls") else 7.0
        tv.append(Variant(s, v, "failed", "tcp_timeout", cmd, "SYN dropped by nftables"))
    add("tcp-timeout", 993, 0.6, [], tv, "SYNs to 993 dropped by nftables", "none (SYN dropped)")
    nch = [
        Variant(
            "python-socket",
            "",
            "failed",
            "no_client_hello",
            Cmd([SYS_PY, GEN / "pytls.py", "idle-client", "--port", 853, "--hold", 0.3]),
            "connect, 0.3 s, FIN",
        ),
        Variant(
            "bash-devtcp",
            "",
            "failed",
            "no_client_hello",
            Cmd(["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/853; sleep 0.2; exec 3>&-"]),
            "connect, 0.2 s, FIN",
        ),
        Variant(
            "python-socket",
            "",
            "failed",
            "no_client_hello",
            Cmd(
                [
                    SYS_PY,
                    "-c",
                    "import socket,struct,time;s=socket.create_connection(('127.0.0.1',853));"
                    "time.sleep(0.2);s.setsockopt(socket.SOL_SOCKET,socket.SO_LINGER,struct.pack('ii',1,0));"
                    "s.close()",
                ]
            ),
            "connect, 0.2 s, RST (SO_LINGER 0)",
        ),
    ]
    add("no-client-hello", 853, 1.5, [(ossl_srv(853), {})], nch, "TCP connect, no ClientHello", "openssl s_server")
    pt = [
        Variant(
            "curl-http",
            "",
            "failed",
            "client_sent_plaintext",
            Cmd(
                ["curl", "-sS", "--max-time", "5", "--resolve", "server.test:443:127.0.0.1", "http://server.test:443/"]
            ),
            "http:// to an https port",
        ),
        Variant(
            "python-socket",
            "",
            "failed",
            "client_sent_plaintext",
            Cmd(
                [
                    SYS_PY,
                    "-c",
                    "import socket;s=socket.create_connection(('127.0.0.1',443),timeout=3);"
                    "s.sendall(b'GET / HTTP/1.0\\r\\nHost: server.test\\r\\n\\r\\n');print(s.recv(100));s.close()",
                ]
            ),
            "HTTP request in clear",
        ),
    ]
    add("plaintext-to-tls", 443, 1.5, [(ossl_srv(443), {})], pt, "plaintext HTTP to an HTTPS port", "openssl s_server")

    # ---------------------------------------------------------------- the server misbehaves
    sil = []
    for s in STACKS:
        v = random.Random(s + "silent").choice(("1.3", "1.2"))
        cmd = client(s, v, 5111, extra=["--max-time", "2"] if s == "curl" else None)
        if s in ("openssl", "gnutls"):
            cmd.kill_after = 2.5  # no handshake timeout of their own: killed (the kernel closes with a FIN)
        sil.append(Variant(s, v, "failed", "server_no_response", cmd))
    add(
        "server-silent",
        5111,
        0.7,
        [([SYS_PY, GEN / "pytls.py", "silent-server", "--port", 5111, "--count", 100000], {})],
        sil,
        "reads the ClientHello, never answers",
        "Python socket",
    )
    add(
        "server-reset",
        5112,
        1.5,
        [([SYS_PY, GEN / "pytls.py", "reset-server", "--port", 5112, "--count", 100000], {})],
        every(5112, "failed", "server_reset"),
        "RST after the ClientHello",
        "Python socket (SO_LINGER 0)",
    )
    add(
        "server-closed",
        5113,
        1.5,
        [([SYS_PY, GEN / "pytls.py", "close-server", "--port", 5113, "--count", 100000], {})],
        every(5113, "failed", "server_closed"),
        "FIN after the ClientHello",
        "Python socket (shutdown)",
    )
    www = BUILD / "workload-www"
    www.mkdir(parents=True, exist_ok=True)
    add(
        "non-tls-http",
        5114,
        1,
        [([SYS_PY, "-m", "http.server", "--bind", LO4, 5114, "--directory", www], {})],
        every(5114, "failed", "non_tls_server"),
        "HTTP server answers the ClientHello",
        "Python http.server",
    )
    add(
        "non-tls-ssh",
        5115,
        1,
        [
            (
                [
                    "/usr/sbin/sshd",
                    "-D",
                    "-e",
                    "-f",
                    "/dev/null",
                    "-h",
                    BUILD / "ssh_host_ed25519_key",
                    "-o",
                    "ListenAddress=127.0.0.1:5115",
                    "-o",
                    "PidFile=none",
                ],
                {},
            )
        ],
        every(5115, "failed", "non_tls_server"),
        "SSH banner",
        "OpenSSH sshd",
    )
    add(
        "non-tls-smtp",
        5116,
        1,
        [([SYS_PY, "-W", "ignore", "-m", "smtpd", "-n", "-c", "DebuggingServer", f"{LO4}:5116"], {})],
        every(5116, "failed", "non_tls_server"),
        "SMTP greeting",
        "Python smtpd",
    )

    # ---------------------------------------------------------------- negotiation
    add(
        "protocol-version-server12",
        5121,
        1.2,
        [(ossl_srv(5121, extra=["-tls1_2"]), {})],
        every(5121, "failed", "protocol_version", vers=("1.3",)),
        "TLS 1.3-only clients, TLS 1.2-only server",
        "openssl s_server -tls1_2",
    )
    add(
        "protocol-version-server13",
        5122,
        1.2,
        [(ossl_srv(5122, extra=["-tls1_3"]), {})],
        every(5122, "failed", "protocol_version", vers=("1.2",)),
        "TLS 1.2-only clients, TLS 1.3-only server",
        "openssl s_server -tls1_3",
    )
    add(
        "no-shared-cipher-12",
        5123,
        1.2,
        [(ossl_srv(5123, extra=["-tls1_2", "-cipher", "ECDHE-ECDSA-CAMELLIA128-SHA256"]), {})],
        every(5123, "failed", "no_shared_cipher", vers=("1.2",)),
        "server: only a Camellia suite (no client's default)",
        "openssl s_server -tls1_2 -cipher ECDHE-ECDSA-CAMELLIA128-SHA256",
    )
    add(
        "no-shared-cipher-13",
        5124,
        1.2,
        [(ossl_srv(5124, extra=["-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_8_SHA256"]), {})],
        every(5124, "failed", "no_shared_cipher", vers=("1.3",)),
        "server: only TLS_AES_128_CCM_8_SHA256",
        "openssl s_server -tls1_3 -ciphersuites TLS_AES_128_CCM_8_SHA256",
    )
    add(
        "unrecognized-name",
        5125,
        1.2,
        [
            (
                ossl_srv(
                    5125,
                    extra=[
                        "-servername",
                        "server.test",
                        "-servername_fatal",
                        "-cert2",
                        pki("server-chain.pem"),
                        "-key2",
                        pki("server.key"),
                    ],
                ),
                {},
            )
        ],
        every(5125, "failed", "unrecognized_name", sni="wrong.test"),
        "SNI wrong.test",
        "openssl s_server -servername_fatal",
    )
    add(
        "alpn-mismatch",
        5126,
        1.2,
        [
            (
                [
                    "node",
                    GEN / "node_tls.js",
                    "server",
                    "--port",
                    5126,
                    "--cert",
                    pki("server-chain.pem"),
                    "--key",
                    pki("server.key"),
                    "--alpn",
                    "h2",
                    "--count",
                    1000000,
                    "--keylog",
                    KEYLOG,
                ],
                {},
            )
        ],
        every(5126, "failed", "no_application_protocol", stacks=[s for s in STACKS if s != "java"], alpn="http/1.1"),
        "clients offer only http/1.1, the server only h2",
        "Node.js tls ALPN h2",
    )
    add(
        "inappropriate-fallback",
        5127,
        1,
        [(ossl_srv(5127), {})],
        [
            Variant(
                "openssl",
                "1.2",
                "failed",
                "inappropriate_fallback",
                client("openssl", "1.2", 5127, extra=["-fallback_scsv"]),
            )
        ],
        "TLS 1.2 client with TLS_FALLBACK_SCSV, server supports 1.3",
        "openssl s_server",
    )
    add(
        "server-rejected-hello",
        5128,
        0.8,
        [(["openssl", "s_server", "-accept", f"{LO4}:5128", "-nocert", "-tls1_3", *PSK, "-keylogfile", KEYLOG], {})],
        [
            Variant(
                "openssl",
                "1.3",
                "failed",
                "server_rejected_hello",
                Cmd(["openssl", "s_client", "-connect", f"{LO4}:5128", "-tls1_3", *WRONG_PSK], stdin=HTTP_GET),
                "external PSK binder does not verify: illegal_parameter",
            )
        ],
        "TLS 1.3 external PSK with the wrong key",
        "openssl s_server -psk",
    )
    add(
        "server-aborted",
        5129,
        0.8,
        [
            (
                [
                    "openssl",
                    "s_server",
                    "-accept",
                    f"{LO4}:5129",
                    "-nocert",
                    "-tls1_2",
                    "-cipher",
                    "PSK-AES128-GCM-SHA256",
                    *PSK,
                    "-keylogfile",
                    KEYLOG,
                ],
                {},
            )
        ],
        [
            Variant(
                "openssl",
                "1.2",
                "failed",
                "server_aborted",
                Cmd(
                    [
                        "openssl",
                        "s_client",
                        "-connect",
                        f"{LO4}:5129",
                        "-tls1_2",
                        "-cipher",
                        "PSK-AES128-GCM-SHA256",
                        *WRONG_PSK,
                    ],
                    stdin=HTTP_GET,
                ),
                "TLS 1.2 PSK, wrong key: bad_record_mac on the client's Finished",
            )
        ],
        "TLS 1.2 PSK with the wrong key",
        "openssl s_server -psk",
    )

    # ---------------------------------------------------------------- server certificate rejected
    add(
        "cert-expired",
        5131,
        2,
        [(ossl_srv(5131, "expired"), {})],
        every(5131, "failed", "cert_expired"),
        "expired leaf",
        "openssl s_server",
    )
    add(
        "cert-notyetvalid",
        5132,
        2,
        [(py_srv(5132, "notyetvalid-chain.pem", "notyetvalid.key"), {})],
        every(5132, "failed", "cert_not_yet_valid"),
        "leaf valid from 49 days after the PKI was made",
        "Python ssl (threaded)",
    )
    add(
        "cert-wronghost",
        5133,
        2,
        [(ossl_srv(5133, "wronghost"), {})],
        every(5133, "failed", "cert_hostname_mismatch"),
        "leaf for other.test, clients ask for server.test",
        "openssl s_server",
    )
    add(
        "cert-selfsigned",
        5134,
        2,
        [(py_srv(5134, "selfsigned.pem", "selfsigned.key"), {})],
        every(5134, "failed", "cert_self_signed"),
        "self-signed leaf",
        "Python ssl (threaded)",
    )
    add(
        "cert-untrusted-root",
        5135,
        2,
        [(ossl_srv(5135, "untrusted", "unknown-root.pem"), {})],
        every(5135, "failed", "cert_untrusted_root"),
        "chain to an untrusted root (sent)",
        "openssl s_server",
    )
    add(
        "cert-missing-intermediate",
        5136,
        2,
        [(py_srv(5136, "server.pem", "server.key"), {})],
        every(5136, "failed", "cert_chain_incomplete"),
        "server sends the leaf only",
        "Python ssl (threaded)",
    )
    staple = BUILD / "workload-revoked-staple.der"
    rev = every(5137, "established", None, stacks=("openssl", "python", "node", "java", "go"))
    for var in rev:
        var.note = "does not check the stapled OCSP response: accepts the revoked leaf"
    rev += every(5137, "failed", "cert_revoked", stacks=("gnutls",))
    rev += [
        Variant(
            "curl",
            ver,
            "failed",
            "cert_revoked",
            client("curl", ver, 5137, extra=["--cert-status"]),
            "curl --cert-status: checks the staple after the handshake, hangs up",
        )
        for ver in ("1.3", "1.2")
    ]
    add(
        "cert-revoked",
        5137,
        1.2,
        [(ossl_srv(5137, "revoked", extra=["-status_file", staple]), {})],
        rev,
        "revoked leaf, stapled OCSP response 'revoked'",
        "openssl s_server -status_file",
    )
    weak = every(5138, "failed", "cert_weak", stacks=("openssl", "curl", "python"))
    weak += every(5138, "established", None, stacks=("gnutls", "node", "java", "go"))
    add(
        "cert-weak-rsa1024",
        5138,
        1.2,
        [(ossl_srv(5138, "weak-rsa1024", extra=["-cipher", "DEFAULT:@SECLEVEL=0"]), {})],
        weak,
        "RSA-1024 leaf: OpenSSL-based clients (SECLEVEL 2) refuse it, the others accept it",
        "openssl s_server",
    )

    # ---------------------------------------------------------------- client certificate (mutual TLS)
    add(
        "mtls-no-client-cert",
        5141,
        2,
        [(ossl_srv(5141, extra=mtls), {})],
        every(5141, "failed", "client_cert_missing"),
        "server requires a client certificate, the client has none",
        "openssl s_server -Verify 1 -verify_return_error",
    )
    wrong = every(
        5142, "failed", "client_cert_rejected", stacks=("openssl", "curl", "python", "gnutls", "node"), cert="wrongca"
    )
    for var in every(5142, "failed", "client_cert_missing", stacks=("go", "java"), cert="wrongca"):
        var.note = "its only certificate is not from a CA the server names: it sends an empty Certificate"
        wrong.append(var)
    add(
        "mtls-wrong-client-cert",
        5142,
        2,
        [
            (
                [
                    BUILD / "gotls",
                    "server",
                    "-addr",
                    f"{LO4}:5142",
                    "-cert",
                    pki("server-chain.pem"),
                    "-key",
                    pki("server.key"),
                    "-client-ca",
                    pki("client-ca.pem"),
                    "-count",
                    1000000,
                    "-keylog",
                    KEYLOG,
                ],
                {},
            )
        ],
        wrong,
        "client certificate from a CA the server does not trust",
        "Go RequireAndVerifyClientCert",
    )

    # ---------------------------------------------------------------- late
    ab = []
    for ver in ("1.3", "1.2"):
        for how in ("rst", "fin"):
            ab.append(
                Variant(
                    "python",
                    ver,
                    "failed",
                    "client_aborted",
                    Cmd(
                        [
                            SYS_PY,
                            GEN / "pytls.py",
                            "abort-client",
                            "--port",
                            5143,
                            "--cafile",
                            pki("root.pem"),
                            "--tls-max",
                            ver,
                            "--tls-min",
                            ver,
                            "--how",
                            how,
                            "--keylog",
                            KEYLOG,
                        ]
                    ),
                    f"valid certificate; the client drops the connection ({how}) instead of its second flight",
                )
            )
    add(
        "client-abort",
        5143,
        0.8,
        [(ossl_srv(5143), {})],
        ab,
        "client leaves after the server's flight",
        "openssl s_server",
    )
    return S


# ------------------------------------------------------------------------------------------------------
# Jobs and their execution
# ------------------------------------------------------------------------------------------------------
@dataclass
class Job:
    idx: int
    sc: Scenario
    v: Variant
    order: int = -1  # start order among the jobs of its port
    exit: int | None = None
    killed: bool = False
    output: str = ""
    t_start: float = 0.0
    t_end: float = 0.0


def make_jobs(scs: list[Scenario], total: int, seed: int) -> list[Job]:
    rng = random.Random(seed)
    chosen: list[tuple[Scenario, Variant]] = [(sc, v) for sc in scs for v in sc.variants]  # each variant once
    weights = [sc.weight for sc in scs]
    while len(chosen) < total:
        sc = rng.choices(scs, weights)[0]
        chosen.append((sc, rng.choice(sc.variants)))
    rng.shuffle(chosen)
    return [Job(i, sc, v) for i, (sc, v) in enumerate(chosen)]


def run_job(j: Job, logf, loglock: threading.Lock) -> None:
    c = j.v.cmd
    argv = [str(a) for a in c.argv]
    j.t_start = time.time()
    p = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if c.stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **c.env},
    )
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(p.stdout.read()), daemon=True)
    reader.start()
    deadline = j.t_start + c.kill_after
    if c.stdin is not None:
        with contextlib.suppress(OSError):
            p.stdin.write(c.stdin)
            p.stdin.flush()
        if c.hold:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=c.hold)
        with contextlib.suppress(OSError):
            p.stdin.close()
    try:
        j.exit = p.wait(timeout=max(0.1, deadline - time.time()))
    except subprocess.TimeoutExpired:
        j.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        j.exit = p.returncode
    reader.join(timeout=3)
    j.t_end = time.time()
    j.output = (out[0] if out else b"").decode(errors="replace")
    with loglock:
        logf.write(
            f"\n[{j.idx}] {j.sc.name} :{j.sc.port} #{j.order} {j.v.stack} {j.v.ver} exit={j.exit}"
            f"{' (killed)' if j.killed else ''}\n$ {ms.pretty(argv)}\n{j.output}"
        )
        logf.flush()


def run_all(jobs: list[Job], workers: int) -> None:
    pending = list(jobs)
    busy: set[int] = set()
    per_port: dict[int, int] = defaultdict(int)
    cond = threading.Condition()
    loglock = threading.Lock()
    done = [0]
    logf = open(ms.LOGS / "workload-clients.log", "w")  # noqa: SIM115

    def worker() -> None:
        while True:
            with cond:
                while True:
                    if not pending:
                        return
                    j = next((x for x in pending if x.sc.port not in busy), None)
                    if j is not None:
                        break
                    cond.wait()
                pending.remove(j)
                busy.add(j.sc.port)
                j.order = per_port[j.sc.port]
                per_port[j.sc.port] += 1
            try:
                run_job(j, logf, loglock)
            finally:
                time.sleep(0.05)
                with cond:
                    busy.discard(j.sc.port)
                    done[0] += 1
                    if done[0] % 50 == 0:
                        ms.log(f"   {done[0]}/{len(jobs)} clients done")
                    cond.notify_all()

    ts = [threading.Thread(target=worker) for _ in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    logf.close()


# ------------------------------------------------------------------------------------------------------
# Servers, nftables, the OCSP staple
# ------------------------------------------------------------------------------------------------------
def fresh_revoked_staple(path: Path) -> None:
    """A current OCSP response 'revoked' for the `revoked` leaf, signed by its issuer (as gen/pki.py does)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    now = dt.datetime.now(dt.UTC)
    leaf = x509.load_pem_x509_certificate(pki("revoked.pem").read_bytes())
    issuer = x509.load_pem_x509_certificate(pki("intermediate.pem").read_bytes())
    key = serialization.load_pem_private_key(pki("intermediate.key").read_bytes(), None)
    resp = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf,
            issuer=issuer,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.REVOKED,
            this_update=now - dt.timedelta(hours=1),
            next_update=now + dt.timedelta(days=7),
            revocation_time=now - dt.timedelta(days=10),
            revocation_reason=x509.ReasonFlags.key_compromise,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, issuer)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(resp.public_bytes(serialization.Encoding.DER))


def nft_drop(port: int) -> None:
    subprocess.run(["nft", "delete", "table", "inet", NFT_TABLE], capture_output=True)
    rules = (
        f"add table inet {NFT_TABLE}\n"
        f"add chain inet {NFT_TABLE} input {{ type filter hook input priority -10; }}\n"
        f"add rule inet {NFT_TABLE} input ip daddr 127.0.0.1 tcp dport {port} tcp flags syn drop\n"
    )
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)


def nft_clear() -> None:
    subprocess.run(["nft", "delete", "table", "inet", NFT_TABLE], capture_output=True)


class PortReserver:
    """Keep the kernel from handing a client port out twice during the run.

    Linux may reuse a (client port, server port) pair within seconds on loopback (tcp_tw_reuse = 2, and no
    TIME_WAIT after an RST), which would make the labels ambiguous. A second tcpdump prints every SYN; each
    client port seen is added to net.ipv4.ip_local_reserved_ports (written through one open descriptor: the
    kernel ORs each further write into the set), so the port allocator never picks it again. The previous
    value is restored at the end."""

    PATH = "/proc/sys/net/ipv4/ip_local_reserved_ports"

    def __init__(self, ports: list[int]):
        self.orig = Path(self.PATH).read_text().strip()
        self.fd = os.open(self.PATH, os.O_WRONLY)
        os.write(self.fd, (self.orig + "\n").encode())
        self.seen: set[int] = set()
        bpf = (
            f"tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn and dst host {LO4} and "
            f"({' or '.join(f'dst port {p}' for p in ports)})"
        )
        self.p = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-nn", "-l", "-q", "--immediate-mode", bpf],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        ready = threading.Event()

        def err() -> None:
            for line in self.p.stderr:
                if "listening on" in line:
                    ready.set()

        def out() -> None:
            for line in self.p.stdout:
                m = re.search(r"127\.0\.0\.1\.(\d+) > 127\.0\.0\.1\.\d+:", line)
                if m and int(m[1]) not in self.seen:
                    self.seen.add(int(m[1]))
                    os.write(self.fd, f"{m[1]}\n".encode())

        threading.Thread(target=err, daemon=True).start()
        threading.Thread(target=out, daemon=True).start()
        if not ready.wait(10):
            self.stop()
            raise RuntimeError("the SYN watcher (tcpdump) did not start")

    def stop(self) -> None:
        if self.p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.p.pid, signal.SIGTERM)
            self.p.wait(timeout=5)
        os.close(self.fd)
        fd = os.open(self.PATH, os.O_WRONLY)  # a fresh write replaces the set: back to what it was
        os.write(fd, (self.orig + "\n").encode())
        os.close(fd)


def start_servers(scs: list[Scenario]) -> list:
    procs = []
    for sc in scs:
        if ms.listening(sc.port):
            raise RuntimeError(f"port {sc.port} ({sc.name}) is already in use")
    for sc in scs:
        for argv, env in sc.servers:
            p = ms.Proc(argv, "workload-servers.log", env=env)
            procs.append(p)
        if sc.servers:
            deadline = time.time() + 15
            while not ms.listening(sc.port):
                if any(p.p.poll() is not None for p in procs[-len(sc.servers) :]):
                    raise RuntimeError(f"{sc.name}: server exited early (see {ms.LOGS / 'workload-servers.log'})")
                if time.time() > deadline:
                    raise RuntimeError(f"{sc.name}: nothing listens on {sc.port}")
                time.sleep(0.05)
    time.sleep(0.3)
    return procs


# ------------------------------------------------------------------------------------------------------
# Checking each label against the wire
# ------------------------------------------------------------------------------------------------------
PAYLOAD = {"hs", "ccs", "alert", "encalert", "app", "enc", "data", "bytes"}
NEGOTIATION_ALERTS = {
    "protocol_version": {"protocol_version", "internal_error"},
    "no_shared_cipher": {"handshake_failure", "insufficient_security"},
    "unrecognized_name": {"unrecognized_name"},
    "no_application_protocol": {"no_application_protocol"},
    "inappropriate_fallback": {"inappropriate_fallback"},
    "server_rejected_hello": {"illegal_parameter", "decode_error"},
}
CERT_CAUSES = {
    "cert_expired",
    "cert_not_yet_valid",
    "cert_hostname_mismatch",
    "cert_self_signed",
    "cert_untrusted_root",
    "cert_chain_incomplete",
    "cert_revoked",
    "cert_weak",
}


def is_tls_bytes(e) -> bool:
    return e.kind == "bytes" and e.text.startswith("TLS record bytes")


def check(j: Job, st) -> list[str]:
    """What contradicts the label in this stream (empty: the label holds)."""
    C = [e for e in st.events if e.side == "C"]
    S = [e for e in st.events if e.side == "S"]
    cpay = [e for e in C if e.kind in PAYLOAD]
    spay = [e for e in S if e.kind in PAYLOAD]
    c_hello = any(
        (e.kind == "hs" and e.text == "ClientHello") or (is_tls_bytes(e) and "ClientHello" in e.text) for e in C
    )
    s_fatal = [ms.ALERTS.get(e.alert, e.alert) for e in S if e.kind == "alert" and e.level == 2]
    c_fatal = [ms.ALERTS.get(e.alert, e.alert) for e in C if e.kind == "alert" and e.level == 2]
    s_alert_any = bool(s_fatal) or any(e.kind == "encalert" for e in S)
    c_app = any(e.kind == "app" for e in C)
    s_app = any(e.kind == "app" for e in S)
    s_rst = any(e.kind == "rst" for e in S)
    c_end = any(e.kind in ("rst", "fin") for e in C)
    synack = any(e.kind == "synack" for e in S)
    s_cert = any(e.kind == "hs" and e.text.startswith("Certificate") and e.text != "CertificateRequest" for e in S)
    s_certreq = any(e.kind == "hs" and e.text == "CertificateRequest" for e in S)
    c_cert = [
        e.text for e in C if e.kind == "hs" and e.text.startswith("Certificate") and e.text != "CertificateVerify"
    ]
    c_finished = any(e.kind == "hs" and e.text == "Finished" for e in C) or any(e.kind == "enc" for e in C)
    cause, p = j.v.cause, []
    if j.v.outcome == "established":
        if not (c_app and s_app):
            p.append("expected application data both ways")
        if s_fatal or c_fatal:
            p.append(f"fatal alert(s) client {c_fatal} server {s_fatal}")
        return p
    if cause == "tcp_refused":
        if synack or not s_rst or cpay:
            p.append("expected SYN answered by RST only")
    elif cause == "tcp_timeout":
        if S:
            p.append("expected no packet from the server side")
    elif cause == "no_client_hello":
        if not synack or cpay:
            p.append("expected a connection without client bytes")
    elif cause == "client_sent_plaintext":
        if not cpay or cpay[0].kind != "data":
            p.append(f"expected cleartext first from the client, saw {cpay[0].text if cpay else 'nothing'}")
    elif cause in ("server_no_response", "server_reset", "server_closed"):
        if not c_hello:
            p.append("no ClientHello")
        if spay:
            p.append(f"server sent {spay[0].text}")
        if cause == "server_reset" and not s_rst:
            p.append("no RST from the server")
        if cause == "server_closed":
            first_end = next((e.kind for e in S if e.kind in ("fin", "rst")), None)
            if first_end != "fin":
                p.append(f"server's first close is {first_end}, expected FIN")
        # the client gives up first (an alert such as Java's user_canceled, a FIN or an RST); the server's
        # close, if any, comes after that
        first_end = next(
            (e for e in st.events if e.kind in ("fin", "rst") or (e.side == "C" and e.kind in ("alert", "encalert"))),
            None,
        )
        if cause == "server_no_response" and (first_end is None or first_end.side != "C"):
            p.append("the server closed first (or nobody closed)")
    elif cause == "non_tls_server":
        if not c_hello:
            p.append("no ClientHello")
        if not spay or spay[0].kind not in ("data", "bytes") or is_tls_bytes(spay[0]):
            p.append(f"expected non-TLS bytes from the server, saw {spay[0].text if spay else 'nothing'}")
    elif cause in NEGOTIATION_ALERTS:
        if not set(s_fatal) & NEGOTIATION_ALERTS[cause]:
            p.append(f"expected server alert {sorted(NEGOTIATION_ALERTS[cause])}, saw {s_fatal}")
        if s_cert or c_app:
            p.append("the handshake went on past the hello")
    elif cause in CERT_CAUSES:
        if not s_cert:
            p.append("no server Certificate seen (even with the key log)")
        if c_app:
            p.append("the client sent application data")
        if not (c_fatal or c_end or any(e.kind == "encalert" for e in C)):
            p.append("the client neither alerted nor closed")
        c_react = next((e.t for e in C if e.kind in ("alert", "encalert", "fin", "rst")), float("inf"))
        early = [ms.ALERTS.get(e.alert, e.alert) for e in S if e.kind == "alert" and e.level == 2 and e.t <= c_react]
        if early:
            p.append(f"the server sent fatal alert {early} before the client reacted")
    elif cause in ("client_cert_missing", "client_cert_rejected"):
        if not s_certreq:
            p.append("no CertificateRequest seen (even with the key log)")
        if not s_alert_any:
            p.append("no alert from the server")
        if c_fatal:
            p.append(f"client alert {c_fatal}")
        empty = not c_cert or c_cert == ["Certificate(empty)"]
        if cause == "client_cert_missing" and not empty:
            p.append(f"the client sent a certificate: {c_cert}")
        if cause == "client_cert_rejected" and empty:
            p.append(f"the client sent no certificate: {c_cert}")
    elif cause == "client_aborted":
        if not s_cert:
            p.append("no server Certificate")
        if c_fatal or c_finished or c_app:
            p.append("the client alerted or finished its handshake")
        if not c_end:
            p.append("the client did not close")
    elif cause == "server_aborted":
        if not c_finished:
            p.append("the client did not send its Finished")
        if not set(s_fatal) & {"bad_record_mac", "decrypt_error"}:
            p.append(f"expected server alert bad_record_mac/decrypt_error, saw {s_fatal}")
    else:
        p.append(f"no check for {cause}")
    return p


def observe_and_label(pcap: Path, jobs: list[Job], scs: list[Scenario]) -> tuple[list[dict], list[str]]:
    ports = [sc.port for sc in scs]
    streams = ms.observe(pcap, ports, ports, KEYLOG if KEYLOG.exists() else None)
    by_port: dict[int, list] = defaultdict(list)
    errors: list[str] = []
    for st in streams:
        if not st.server or st.server[1] not in ports:
            errors.append(f"stream {st.idx}: not to a scenario port ({st.client} -> {st.server})")
            continue
        by_port[st.server[1]].append(st)
    jobs_by_port: dict[int, list[Job]] = defaultdict(list)
    for j in sorted(jobs, key=lambda x: (x.sc.port, x.order)):
        jobs_by_port[j.sc.port].append(j)
    rows: list[dict] = []
    for port, js in jobs_by_port.items():
        sts = by_port.get(port, [])
        if len(sts) != len(js):
            errors.append(f"port {port}: {len(sts)} TCP connections in the capture, {len(js)} clients started")
            continue
        for j, st in zip(js, sts, strict=True):
            probs = check(j, st)
            rows.append(
                {
                    "client_port": st.client[1],
                    "server_port": port,
                    "client": j.v.stack,
                    "tls_version": j.v.ver,
                    "scenario": j.sc.name,
                    "intended_outcome": j.v.outcome,
                    "intended_cause": j.v.cause or "",
                    # report only (not in the labels file)
                    "_t0": st.t0,
                    "_tcp_stream": st.idx,
                    "_note": j.v.note,
                    "_command": ms.pretty([str(a) for a in j.v.cmd.argv]),
                    "_exit": j.exit,
                    "_killed": j.killed,
                    "_client_said": ms.summarize_output(j.output),
                    "_timeline": ms.timeline(st),
                    "_check": "ok" if not probs else "MISMATCH: " + "; ".join(probs),
                }
            )
    rows.sort(key=lambda r: r["_t0"])
    seen = Counter((r["client_port"], r["server_port"]) for r in rows)
    errors += [f"(client_port, server_port) {k} occurs {n} times" for k, n in seen.items() if n > 1]
    return rows, errors


# ------------------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--connections", type=int, default=800, help="at least this many (every variant runs once)")
    ap.add_argument("--jobs", type=int, default=6, help="clients running at the same time")
    ap.add_argument("--only", nargs="*", help="scenario names (a quick look; with --out)")
    ap.add_argument("--out", type=Path, default=PCAP)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (tcpdump, nft)")
    t_begin = time.time()
    BUILD.mkdir(parents=True, exist_ok=True)
    ms.LOGS.mkdir(parents=True, exist_ok=True)
    for old in (ms.LOGS / "workload-servers.log", KEYLOG):
        old.unlink(missing_ok=True)
    if not all(
        (BUILD / f).exists()
        for f in (
            "gotls",
            "JavaTls.class",
            "java-trust.p12",
            "java-client.p12",
            "java-client-wrongca.p12",
            "ssh_host_ed25519_key",
        )
    ):
        ms.prepare(fresh_pki=False)
    Path("/run/sshd").mkdir(exist_ok=True)
    fresh_revoked_staple(BUILD / "workload-revoked-staple.der")
    scs = scenarios()
    if a.only:
        scs = [sc for sc in scs if sc.name in a.only]
    jobs = make_jobs(scs, a.connections if not a.only else 0, a.seed)
    ms.log(f"{len(jobs)} clients over {len(scs)} scenarios (seed {a.seed}, {a.jobs} at a time)")
    raw = BUILD / "workload-mixed.raw.pcap"
    raw.unlink(missing_ok=True)
    bpf = f"host {LO4} and ({' or '.join(f'tcp port {sc.port}' for sc in scs)})"
    procs: list = []
    reserver = None
    if any(sc.name == "tcp-timeout" for sc in scs):
        nft_drop(993)
    try:
        procs = start_servers(scs)
        reserver = PortReserver([sc.port for sc in scs])
        td = ms.Tcpdump(raw, "lo", bpf, False, None, None)
        try:
            t_run = time.time()
            run_all(jobs, a.jobs)
            ms.log(f"   clients done in {time.time() - t_run:.0f} s")
            time.sleep(1.0)
        finally:
            stats = td.stop()
    finally:
        if reserver is not None:
            reserver.stop()
        for p in reversed(procs):
            p.stop()
        nft_clear()
    stats = " / ".join(ln for ln in stats.splitlines() if "packets" in ln)
    ms.log(f"   tcpdump: {stats}")
    if "0 packets dropped by kernel" not in stats:
        sys.exit(f"tcpdump dropped packets: {stats}; run again")
    rows, errors = observe_and_label(raw, jobs, scs)
    bad = [r for r in rows if r["_check"] != "ok"]
    # a run whose labels the wire contradicts leaves its outputs in the build directory only
    out = a.out if not (bad or errors) else BUILD / a.out.name
    if out != raw:
        out.write_bytes(raw.read_bytes())
    labels = out.with_name(out.name.replace(".pcap", "") + ".labels.csv")
    cols = ["client_port", "server_port", "client", "tls_version", "scenario", "intended_outcome", "intended_cause"]
    with open(labels, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    report = BUILD / "workload-check.json"
    report.write_text(
        json.dumps(
            {
                "seed": a.seed,
                "capture": str(out),
                "tcpdump": stats,
                "errors": errors,
                "connections": [{k.lstrip("_"): v for k, v in r.items()} for r in rows],
            },
            indent=1,
        )
        + "\n"
    )
    by_sc = Counter(r["scenario"] for r in rows)
    by_stack = Counter(r["client"] for r in rows)
    by_cause = Counter(r["intended_cause"] or "established" for r in rows)
    ms.log(f"{len(rows)} connections, {out.stat().st_size / 1e6:.2f} MB -> {out.name}, {labels.name}")
    ms.log("   by scenario: " + ", ".join(f"{k} {v}" for k, v in sorted(by_sc.items())))
    ms.log("   by client: " + ", ".join(f"{k} {v}" for k, v in by_stack.most_common()))
    ms.log("   by intended cause: " + ", ".join(f"{k} {v}" for k, v in by_cause.most_common()))
    ms.log("   by version: " + ", ".join(f"{k or '-'} {v}" for k, v in Counter(r["tls_version"] for r in rows).items()))
    for r in bad:
        ms.log(
            f"   !! :{r['client_port']} -> {r['server_port']} {r['scenario']} {r['client']} {r['tls_version']}: "
            f"{r['_check']}\n      {' | '.join(r['_timeline'])}\n      client said: {r['_client_said']}"
        )
    for e in errors:
        ms.log(f"   !! {e}")
    ms.log(f"generation took {time.time() - t_begin:.0f} s; report: {report}")
    if bad or errors:
        sys.exit(
            f"{len(bad)} labels contradicted by the capture, {len(errors)} other problems: {out} not copied to {a.out}"
        )


if __name__ == "__main__":
    main()
