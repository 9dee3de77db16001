#!/usr/bin/env python3
"""Regenerate tls-analyzer's sample captures from real TLS stacks over loopback.

Every capture in samples/ is recorded with tcpdump while real clients and
servers (OpenSSL s_client/s_server, curl, Python ssl, GnuTLS, Node.js, Java
JSSE, Go crypto/tls, OpenSSH, Python http.server/smtpd; for STARTTLS and tunnels
postfix, dovecot, PostgreSQL, MariaDB, slapd, tinyproxy, Dante) talk over 127.0.0.1
or ::1. Nothing is hand-assembled, except one ClientHello produced by Python's
ssl module whose extensions length is then corrupted (server_rejected_hello).

Requirements (Debian 12 "bookworm"), run as root:
    apt-get install tcpdump tshark wireshark-common gnutls-bin golang-go \
        openjdk-17-jdk-headless nodejs openssl curl nftables openssh-server \
        postfix dovecot-imapd dovecot-pop3d postgresql mariadb-server mariadb-client slapd ldap-utils \
        tinyproxy dante-server   # this line: only for the starttls-* captures
    the project venv (/work/main/.venv) for the `cryptography` package.
Root is needed for tcpdump on lo/any and for the nftables rule of the
tcp_timeout scenario (a private table `inet tls_samples`, removed afterwards).

Usage:
    .venv/bin/python samples/make_samples.py            # everything, from scratch
    .venv/bin/python samples/make_samples.py --only cert-expired tcp-refused
    .venv/bin/python samples/make_samples.py --list

The PKI (samples/gen/pki/) is regenerated on every full run with validity
periods relative to "now", so the expired leaf is expired and the
not-yet-valid leaf not yet valid whenever the captures are made. A partial
run (--only) reuses the existing PKI and only adds the certificates defined in
gen/pki.py since it was made (pki.extend: new files, nothing rewritten); it
rewrites manifest.json (other entries kept) and README.md. Build products (Go binary, Java
classes, PKCS#12 stores, logs) go to $TLS_SAMPLES_BUILD (default
/tmp/tls-samples-build). Outputs: the captures, keylogs/<capture>.keys (NSS
key logs written by the stacks that can), manifest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gzip
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent  # samples/
GEN = HERE / "gen"
PKI = GEN / "pki"
KEYLOGS = HERE / "keylogs"
BUILD = Path(os.environ.get("TLS_SAMPLES_BUILD", "/tmp/tls-samples-build"))
LOGS = BUILD / "logs"
PY = sys.executable
SYS_PY = shutil.which("python3") or PY  # any python3 >= 3.8 runs gen/pytls.py
HTTP_GET = b"GET / HTTP/1.0\r\nHost: server.test\r\n\r\n"
LO4, LO6 = "127.0.0.1", "::1"
PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), default=Path("/usr/lib/postgresql/15/bin"))


def log(msg: str) -> None:
    print(msg, flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def pretty(cmd) -> str:
    """A command line with machine-specific paths replaced by placeholders."""
    s = cmd if isinstance(cmd, str) else shlex.join(str(c) for c in cmd)
    for path, name in (
        (str(PKI), "samples/gen/pki"),
        (str(GEN), "samples/gen"),
        (str(KEYLOGS), "samples/keylogs"),
        (str(BUILD), "$BUILD"),
        (str(HERE), "samples"),
        (PY, "python3"),
        (SYS_PY, "python3"),
    ):
        s = s.replace(path, name)
    return s


# --------------------------------------------------------------------------
# Manifest records
# --------------------------------------------------------------------------
@dataclass
class Conn:
    client: str
    server: str
    server_port: int
    tls_version_intended: str | None
    intended_outcome: str  # established / failed / incomplete
    intended_cause: str | None
    note: str = ""
    client_command: str = ""
    client_exit: int | None = None
    client_said: str = ""  # last line(s) of the client's own output
    expect: dict = field(default_factory=dict)  # checks against the capture
    # filled from the capture
    server_ip: str = ""
    start_time: str = ""  # first packet of the connection (UTC)
    client_port: int | None = None
    tcp_stream: int | None = None
    what_client_did: str = ""
    what_server_did: str = ""
    timeline: list[str] = field(default_factory=list)
    check: str = ""
    client_reaction: str = ""  # short form of what the client did after the server's flight
    matrix_key: str = ""  # column of the README's certificate table ("openssl 1.3"), "" = not in it
    matrix_row: str = ""  # row variant within the capture's line(s) of that table ("SNI a.wild.test")


@dataclass
class Capture:
    file: str
    title: str
    link_type: str = ""
    format: str = ""
    how: dict = field(default_factory=dict)
    connections: list[Conn] = field(default_factory=list)
    keylog: str | None = None
    notes: str = ""
    size_bytes: int = 0
    packets: int = 0
    derived_from: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------
def listening(port: int) -> bool:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


class Proc:
    """A background process in its own process group (killed by that id)."""

    def __init__(
        self, cmd: list[str], logname: str, env: dict | None = None, stdin_pipe: bool = True, cwd: Path | None = None
    ):
        self.cmd = [str(c) for c in cmd]
        self.logf = open(LOGS / logname, "ab")  # noqa: SIM115 (lives as long as the process)
        self.logf.write(f"\n$ {shlex.join(self.cmd)}\n".encode())
        self.logf.flush()
        self.p = subprocess.Popen(
            self.cmd,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=self.logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, sig)
                self.p.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        if self.p.stdin:
            with contextlib.suppress(OSError):
                self.p.stdin.close()
        self.logf.close()


class Tcpdump:
    def __init__(self, out: Path, iface: str, bpf: str, nano: bool, linktype: str | None, snaplen: int | None):
        self.cmd = ["tcpdump", "-i", iface, "--immediate-mode", "-B", "131072", "-U", "-w", str(out)]
        if linktype:
            self.cmd += ["-y", linktype]
        if nano:
            self.cmd += ["--time-stamp-precision=nano"]
        if snaplen:
            self.cmd += ["-s", str(snaplen)]
        self.cmd.append(bpf)
        self.err = open(LOGS / f"tcpdump-{out.stem}.err", "w+b")  # noqa: SIM115 (closed in stop())
        self.p = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=self.err, start_new_session=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            self.err.seek(0)
            if b"listening on" in self.err.read():
                break
            if self.p.poll() is not None:
                self.err.seek(0)
                raise RuntimeError(f"tcpdump failed: {self.err.read().decode()}")
            time.sleep(0.05)
        else:
            raise RuntimeError("tcpdump did not start")
        time.sleep(0.3)

    def stop(self) -> str:
        time.sleep(0.5)
        self.p.send_signal(signal.SIGINT)
        self.p.wait(timeout=10)
        self.err.seek(0)
        msg = self.err.read().decode()
        self.err.close()
        return msg


# --------------------------------------------------------------------------
# A scenario run
# --------------------------------------------------------------------------
class Run:
    """Context for one capture: servers, clients, the connections to describe."""

    def __init__(self, name: str, cap: Capture, ports: list[int]):
        self.name = name
        self.cap = cap
        self.ports = ports
        self.procs: list[Proc] = []
        self.keylog = BUILD / "keys" / f"{name}.keys"
        self.keylog.parent.mkdir(parents=True, exist_ok=True)
        if self.keylog.exists():
            self.keylog.unlink()
        self.servers: list[str] = []
        self.clients: list[str] = []
        self.configs: dict[str, str] = {}  # configuration files written for the servers (path: text)

    def config(self, path: Path, text: str) -> Path:
        """Write a server's configuration file; the manifest keeps its text."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self.configs[pretty(str(path))] = pretty(text)
        return path

    # servers -------------------------------------------------------------
    def server(
        self,
        cmd: list,
        port: int | None,
        env: dict | None = None,
        wait: float = 10,
        stdin_pipe: bool = True,
        record: bool = True,
        cwd: Path | None = None,
    ) -> Proc:
        if port is not None and listening(port):
            raise RuntimeError(f"port {port} is already in use by another process")
        p = Proc(cmd, f"{self.name}.log", env=env, stdin_pipe=stdin_pipe, cwd=cwd)
        self.procs.append(p)
        if record:
            self.servers.append(pretty(cmd))
        if port is not None:
            deadline = time.time() + wait
            while not listening(port):
                if p.p.poll() is not None:
                    raise RuntimeError(f"server exited early: {shlex.join(p.cmd)} (see {LOGS / (self.name + '.log')})")
                if time.time() > deadline:
                    raise RuntimeError(f"server not listening on {port}: {shlex.join(p.cmd)}")
                time.sleep(0.05)
            time.sleep(0.1)
        return p

    def stop_servers(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.procs.clear()

    # clients -------------------------------------------------------------
    def client(
        self,
        conn: Conn,
        cmd: list,
        *,
        stdin: bytes | None = HTTP_GET,
        env: dict | None = None,
        timeout: float = 20,
        pause: float = 0.25,
        background: bool = False,
        hold_stdin: float = 0,
    ) -> Conn | Proc:
        cmd = [str(c) for c in cmd]
        conn.client_command = pretty(cmd)
        if env:
            conn.client_command = " ".join(f"{k}={pretty(v)}" for k, v in env.items()) + " " + conn.client_command
        self.clients.append(conn.client_command)
        self.cap.connections.append(conn)
        if background:
            p = Proc(cmd, f"{self.name}.log", env=env)
            self.procs.append(p)
            return p
        with open(LOGS / f"{self.name}.log", "ab") as lf:
            lf.write(f"\n$ {shlex.join(cmd)}\n".encode())
        try:
            if hold_stdin:
                # feed stdin, keep it open a while (the client keeps reading the answers), then EOF
                outf = open(LOGS / f"{self.name}.client.tmp", "w+b")  # noqa: SIM115
                p = subprocess.Popen(
                    cmd, stdin=subprocess.PIPE, stdout=outf, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
                )
                p.stdin.write(stdin or b"")
                p.stdin.flush()
                time.sleep(hold_stdin)
                p.stdin.close()
                try:
                    conn.client_exit = p.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                    conn.client_exit = None
                outf.seek(0)
                outp = outf.read().decode(errors="replace")
                outf.close()
            else:
                r = subprocess.run(
                    cmd,
                    input=stdin if stdin is not None else b"",
                    capture_output=True,
                    timeout=timeout,
                    env={**os.environ, **(env or {})},
                )
                conn.client_exit = r.returncode
                outp = (r.stdout + r.stderr).decode(errors="replace")
        except subprocess.TimeoutExpired as e:
            conn.client_exit = None
            outp = ((e.stdout or b"") + (e.stderr or b"")).decode(errors="replace") + "\n[timeout]"
        with open(LOGS / f"{self.name}.log", "ab") as lf:
            lf.write(outp.encode())
        conn.client_said = summarize_output(outp)
        time.sleep(pause)
        return conn


def summarize_output(text: str) -> str:
    """The lines of a client's output that say why it stopped."""
    keep = []
    pat = re.compile(
        r"error|alert|fail|verif|refused|timed? ?out|reset|denied|mismatch|\"ok\"|Handshake was"
        r"|certificate|closed|wrong version|unexpected|protocol|established|Empty reply",
        re.I,
    )
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("---", "-----", "depth=", "verify return:1")):
            continue
        if pat.search(line) and len(line) < 400:
            keep.append(line)
    seen, uniq = set(), []
    for k in keep:
        if k not in seen:
            seen.add(k)
            uniq.append(k)
    return " | ".join(uniq[-4:])


# --------------------------------------------------------------------------
# Client command builders (one per stack)
# --------------------------------------------------------------------------
def pki(name: str) -> Path:
    return PKI / name


def is_ip(name: str) -> bool:
    return bool(re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]*:[0-9a-fA-F:.]*", name))


def ossl_client(
    port: int,
    ver: str | None = "1.3",
    sni: str = "server.test",
    host: str = LO4,
    extra: list | None = None,
    verify: bool = True,
    keylog: Path | None = None,
    ign_eof: bool = True,
) -> list:
    hp = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    cmd = ["openssl", "s_client", "-connect", hp, "-servername", sni]
    if verify:
        cmd += ["-CAfile", pki("root.pem"), "-verify_return_error", "-verify_hostname", sni]
    if ver:
        cmd += [{"1.3": "-tls1_3", "1.2": "-tls1_2", "1.1": "-tls1_1", "1.0": "-tls1"}[ver]]
    if ign_eof:
        cmd += ["-ign_eof"]
    if keylog:
        cmd += ["-keylogfile", keylog]
    return cmd + (extra or [])


def curl_client(
    port: int, ver: str | None = "1.3", sni: str = "server.test", host: str = LO4, extra: list | None = None
) -> list:
    h = f"[{host}]" if ":" in host else host
    cmd = [
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}\\n",
        "--max-time",
        "8",
        "--cacert",
        pki("root.pem"),
    ]
    if is_ip(sni):  # https://IP:port/: curl sends no SNI and checks the IP against the IP SANs
        sni = f"[{sni}]" if ":" in sni else sni
    else:
        cmd += ["--resolve", f"{sni}:{port}:{h}"]
    if ver == "1.3":
        cmd += ["--tlsv1.3"]
    elif ver == "1.2":
        cmd += ["--tlsv1.2", "--tls-max", "1.2"]
    return cmd + (extra or []) + [f"https://{sni}:{port}/"]


def py_client(
    port: int, ver: str | None = "1.3", host: str = LO4, keylog: Path | None = None, extra: list | None = None
) -> list:
    cmd = [SYS_PY, GEN / "pytls.py", "client", "--host", host, "--port", port, "--cafile", pki("root.pem")]
    if ver:
        cmd += ["--tls-max", ver]
    if keylog:
        cmd += ["--keylog", keylog]
    return cmd + (extra or [])


def gnutls_client(
    port: int, ver: str | None = "1.3", sni: str = "server.test", host: str = LO4, extra: list | None = None
) -> list:
    cmd = ["gnutls-cli", "--x509cafile", pki("root.pem"), "--sni-hostname", sni, "--verify-hostname", sni, "-p", port]
    if is_ip(sni):  # no SNI for an address; --verify-hostname checks it against the IP SANs
        cmd.remove("--sni-hostname")
        cmd.remove(sni)
    if ver == "1.2":
        cmd += ["--priority", "NORMAL:-VERS-TLS1.3"]
    elif ver == "1.3":
        cmd += ["--priority", "NORMAL:-VERS-TLS1.2:-VERS-TLS1.1:-VERS-TLS1.0"]
    return cmd + (extra or []) + [host]


def node_client(
    port: int, ver: str | None = "1.3", host: str = LO4, keylog: Path | None = None, extra: list | None = None
) -> list:
    cmd = ["node", GEN / "node_tls.js", "client", "--host", host, "--port", port, "--ca", pki("root.pem")]
    if ver:
        v = {"1.3": "TLSv1.3", "1.2": "TLSv1.2"}[ver]
        cmd += ["--max", v]
    if keylog:
        cmd += ["--keylog", keylog]
    return cmd + (extra or [])


def java_client(
    port: int, ver: str = "1.3", host: str = LO4, keystore: str | None = None, sni: str = "server.test"
) -> list:
    cmd = [
        "java",
        "-cp",
        BUILD,
        "JavaTls",
        "client",
        host,
        port,
        sni,
        BUILD / "java-trust.p12",
        {"1.3": "TLSv1.3", "1.2": "TLSv1.2"}[ver],
    ]
    if keystore:
        cmd.append(BUILD / keystore)
    return cmd


def go_client(
    port: int, ver: str = "1.3", host: str = LO4, keylog: Path | None = None, extra: list | None = None
) -> list:
    hp = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    cmd = [BUILD / "gotls", "client", "-addr", hp, "-ca", pki("root.pem"), "-max", ver]
    if keylog:
        cmd += ["-keylog", keylog]
    return cmd + (extra or [])


def ossl_server(
    port: int,
    leaf: str | None = "server",
    chain: str | None = "intermediate.pem",
    host: str = LO4,
    extra: list | None = None,
    www: bool = True,
    keylog: Path | None = None,
) -> list:
    """openssl s_server sending certificate `leaf` (+ the certificates in `chain`)."""
    cmd = ["openssl", "s_server", "-accept", f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    if leaf:
        cmd += ["-cert", pki(f"{leaf}.pem"), "-key", pki(f"{leaf}.key")]
        if chain:
            cmd += ["-cert_chain", pki(chain)]
    if www:
        cmd += ["-www"]
    if keylog:
        cmd += ["-keylogfile", keylog]
    return cmd + (extra or [])


def py_server(port: int, chain: str, key: str, count: int, keylog: Path | None = None) -> list:
    """gen/pytls.py server: sends the certificates of `chain` in file order, answers a short HTTP reply
    (small captures: s_server -www sends a 5 KB status page to every client that gets through)."""
    cmd = [SYS_PY, GEN / "pytls.py", "server", "--port", port, "--cert", pki(chain), "--key", pki(key)]
    cmd += ["--count", count]
    if keylog:
        cmd += ["--keylog", keylog]
    return cmd


VERSIONS_OF = {
    "openssl": "OpenSSL",
    "curl": "curl",
    "python": "Python ssl",
    "gnutls": "GnuTLS",
    "node": "Node.js",
    "java": "Java",
    "go": "Go",
}


# --------------------------------------------------------------------------
# Tool versions (for the manifest and README)
# --------------------------------------------------------------------------
def tool_versions() -> dict[str, str]:
    def first(cmd, pat=None):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            text = (r.stdout + r.stderr).strip()
        except Exception as e:
            return f"unavailable ({e})"
        lines = text.splitlines()
        if pat:
            lines = [ln for ln in lines if re.search(pat, ln)] or lines
        return lines[0].strip() if lines else ""

    return {
        "openssl": first(["openssl", "version"]),
        "curl": first(["curl", "--version"]),
        "python": first(
            [SYS_PY, "-c", "import ssl,sys;print('Python',sys.version.split()[0],'/',ssl.OPENSSL_VERSION)"]
        ),
        "gnutls": first(["gnutls-cli", "--version"]),
        "node": "Node.js "
        + first(["node", "--version"])
        + " / OpenSSL "
        + first(["node", "-p", "process.versions.openssl"]),
        "java": first(["java", "-version"], "version"),
        "go": first(["go", "version"]),
        "openssh": first(["/usr/sbin/sshd", "-V"], "OpenSSH"),
        "postfix": "Postfix " + first(["postconf", "-dh", "mail_version"]),
        "dovecot": "Dovecot " + first(["dovecot", "--version"]),
        "postgresql": first([PG_BIN / "postgres", "--version"]),
        "mariadb": first(["mariadbd", "--version"]),
        "openldap": first(["slapd", "-VV"], "slapd"),
        "tinyproxy": first(["tinyproxy", "-v"]),
        "dante": first(["danted", "-v"], "Dante"),
        "tcpdump": first(["tcpdump", "--version"], "tcpdump"),
        "libpcap": first(["tcpdump", "--version"], "libpcap"),
        "tshark": first(["tshark", "--version"], "TShark"),
        "kernel": first(["uname", "-sr"]),
    }


# --------------------------------------------------------------------------
# Preparation: PKI, Java stores, Go binary, SSH host key
# --------------------------------------------------------------------------
def prepare(fresh_pki: bool) -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(GEN))
    import pki as pkimod

    if fresh_pki or not (PKI / "root.pem").exists():
        if PKI.exists():
            shutil.rmtree(PKI)
        pkimod.build(PKI)
        log(f"PKI regenerated in {PKI}")
    else:
        # a partial run keeps the PKI (existing captures carry its certificates); certificates added to
        # gen/pki.py since it was made are created next to it, nothing existing is rewritten
        added = pkimod.extend(PKI)
        if added:
            log(f"PKI kept; added {', '.join(added)}")
    # Java stores (PKCS#12, password changeit)
    trust = BUILD / "java-trust.p12"
    if trust.exists():
        trust.unlink()
    run(
        [
            "keytool",
            "-importcert",
            "-noprompt",
            "-alias",
            "root",
            "-file",
            str(pki("root.pem")),
            "-keystore",
            str(trust),
            "-storetype",
            "PKCS12",
            "-storepass",
            "changeit",
        ]
    )
    client_trust = BUILD / "java-client-trust.p12"
    if client_trust.exists():
        client_trust.unlink()
    run(
        [
            "keytool",
            "-importcert",
            "-noprompt",
            "-alias",
            "clientca",
            "-file",
            str(pki("client-ca.pem")),
            "-keystore",
            str(client_trust),
            "-storetype",
            "PKCS12",
            "-storepass",
            "changeit",
        ]
    )
    for store, chain, key in (
        ("java-server.p12", "server-chain.pem", "server.key"),
        ("java-client.p12", "client.pem", "client.key"),
        ("java-client-wrongca.p12", "client-wrongca-chain.pem", "client-wrongca.key"),
    ):
        run(
            [
                "openssl",
                "pkcs12",
                "-export",
                "-in",
                str(pki(chain)),
                "-inkey",
                str(pki(key)),
                "-name",
                "k",
                "-out",
                str(BUILD / store),
                "-passout",
                "pass:changeit",
            ]
        )
    run(["javac", "-d", str(BUILD), str(GEN / "JavaTls.java")])
    env = {
        **os.environ,
        "GOCACHE": str(BUILD / "gocache"),
        "GOPATH": str(BUILD / "gopath"),
        "GO111MODULE": "off",
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }
    run(["go", "build", "-o", str(BUILD / "gotls"), str(GEN / "gotls" / "main.go")], env=env)
    hk = BUILD / "ssh_host_ed25519_key"
    if not hk.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hk)])
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory


# --------------------------------------------------------------------------
# Observation with tshark
# --------------------------------------------------------------------------
HS = {
    0: "HelloRequest",
    1: "ClientHello",
    2: "ServerHello",
    4: "NewSessionTicket",
    5: "EndOfEarlyData",
    8: "EncryptedExtensions",
    11: "Certificate",
    12: "ServerKeyExchange",
    13: "CertificateRequest",
    14: "ServerHelloDone",
    15: "CertificateVerify",
    16: "ClientKeyExchange",
    20: "Finished",
    22: "CertificateStatus",
    24: "KeyUpdate",
}
ALERTS = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    21: "decryption_failed",
    22: "record_overflow",
    40: "handshake_failure",
    41: "no_certificate",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    100: "no_renegotiation",
    109: "missing_extension",
    110: "unsupported_extension",
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    115: "unknown_psk_identity",
    116: "certificate_required",
    120: "no_application_protocol",
}
HRR_RANDOM = "cf:21:ad:74:e5:9a:61:11:be:1d:8c:02:1e:65:b8:91:c2:a2:11:16:7a:bb:8c:5e:07:9e:09:e2:c8:a8:33:9c"


def _list(x):
    if x is None:
        return []
    return x if isinstance(x, list) else [x]


@dataclass
class Ev:
    t: float
    side: str  # "C" or "S"
    kind: str  # syn synack fin rst hs ccs alert encalert app enc data
    text: str
    size: int = 0
    encrypted: bool = False
    alert: int | None = None
    level: int | None = None


@dataclass
class Stream:
    idx: int
    client: tuple[str, int] | None = None
    server: tuple[str, int] | None = None
    t0: float = 0.0
    events: list[Ev] = field(default_factory=list)


def tshark_json(
    path: Path, tls_ports: list[int], keylog: Path | None, decode_as: dict[int, str] | None = None
) -> list[dict]:
    cmd = ["tshark", "-r", str(path), "-T", "json", "--no-duplicate-keys"]
    for p in sorted(set(tls_ports)):
        cmd += ["-d", f"tcp.port=={p},tls"]
    for p, proto in sorted((decode_as or {}).items()):  # STARTTLS: tshark's SMTP, IMAP... dissectors hand over to TLS
        cmd += ["-d", f"tcp.port=={p},{proto}"]
    if keylog and keylog.exists() and keylog.stat().st_size:
        cmd += ["-o", f"tls.keylog_file:{keylog}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"tshark failed on {path}: {r.stderr}")
    return json.loads(r.stdout or "[]")


def observe(
    path: Path,
    tls_ports: list[int],
    server_ports: list[int],
    keylog: Path | None,
    decode_as: dict[int, str] | None = None,
) -> list[Stream]:
    streams: dict[int, Stream] = {}
    seen_tls: dict[tuple[int, str], bool] = {}
    after_ccs: dict[tuple[int, str], bool] = {}
    packets = tshark_json(path, tls_ports, keylog, decode_as)
    # TLS 1.3 streams: their ChangeCipherSpec is a compatibility no-op, encryption shows as opaque_type 23
    tls13 = {
        int(p["_source"]["layers"]["tcp"]["tcp.stream"])
        for p in packets
        if "tcp" in p["_source"]["layers"]
        and '"tls.record.opaque_type"' in json.dumps(p["_source"]["layers"].get("tls", {}))
    }
    for pkt in packets:
        L = pkt["_source"]["layers"]
        tcp = L.get("tcp")
        if not tcp:
            continue
        ip = L.get("ip") or L.get("ipv6") or {}
        src = ip.get("ip.src") or ip.get("ipv6.src")
        dst = ip.get("ip.dst") or ip.get("ipv6.dst")
        sport, dport = int(tcp["tcp.srcport"]), int(tcp["tcp.dstport"])
        t = float(L["frame"]["frame.time_epoch"])
        sidx = int(tcp["tcp.stream"])
        flags = int(tcp["tcp.flags"], 16)
        st = streams.get(sidx)
        if st is None:
            st = streams[sidx] = Stream(sidx, t0=t)
            if flags & 0x02 and not flags & 0x10:
                st.client, st.server = (src, sport), (dst, dport)
            elif flags & 0x02:
                st.client, st.server = (dst, dport), (src, sport)
            elif dport in server_ports or (sport not in server_ports and dport < sport):
                st.client, st.server = (src, sport), (dst, dport)
            else:
                st.client, st.server = (dst, dport), (src, sport)
        side = "C" if (src, sport) == st.client else "S"
        if flags & 0x02:
            st.events.append(Ev(t, side, "syn" if side == "C" else "synack", "SYN" if side == "C" else "SYN-ACK"))
        tls_layers = _list(L.get("tls"))
        records = []
        for tl in tls_layers:
            if isinstance(tl, dict):
                records += _list(tl.get("tls.record"))
        got_tls = False
        for rec in records:
            if not isinstance(rec, dict):
                continue
            if "tls.record.content_type" in rec:
                ct = int(rec["tls.record.content_type"])
            elif "tls.record.opaque_type" in rec:  # TLS 1.3 record we hold no key for
                ct = int(rec["tls.record.opaque_type"])
            else:
                continue
            if ct not in (20, 21, 22, 23, 24):
                continue
            got_tls = True
            seen_tls[(sidx, side)] = True
            rlen = int(rec.get("tls.record.length", 0))
            enc13 = "tls.record.opaque_type" in rec
            enc = enc13 or (after_ccs.get((sidx, side), False) and sidx not in tls13)
            if ct == 20:
                st.events.append(Ev(t, side, "ccs", "ChangeCipherSpec", rlen))
                after_ccs[(sidx, side)] = True
            elif ct == 21:
                am = rec.get("tls.alert_message")
                if isinstance(am, dict) and "tls.alert_message.desc" in am:
                    d, lv = int(am["tls.alert_message.desc"]), int(am.get("tls.alert_message.level", 0))
                    st.events.append(
                        Ev(
                            t,
                            side,
                            "alert",
                            f"Alert({'fatal' if lv == 2 else 'warning'} {ALERTS.get(d, d)}({d}))",
                            rlen,
                            enc,
                            d,
                            lv,
                        )
                    )
                else:
                    st.events.append(Ev(t, side, "encalert", f"EncryptedAlert({rlen}B)", rlen, True))
            elif ct == 22:
                hss = _list(rec.get("tls.handshake"))
                names = []
                for h in hss:
                    if isinstance(h, dict) and "tls.handshake.type" in h:
                        ht = int(h["tls.handshake.type"])
                        name = HS.get(ht, f"Handshake{ht}")
                        if ht == 2 and h.get("tls.handshake.random") == HRR_RANDOM:
                            name = "HelloRetryRequest"
                        if (
                            ht == 11
                            and "tls.handshake.certificates_length" in h
                            and int(h["tls.handshake.certificates_length"]) == 0
                        ):
                            name = "Certificate(empty)"
                        names.append(name)
                if names:
                    for n in names:
                        st.events.append(Ev(t, side, "hs", n, rlen, enc))
                else:
                    st.events.append(Ev(t, side, "enc", f"EncryptedHandshake({rlen}B)", rlen, True))
            elif ct == 23:
                st.events.append(Ev(t, side, "app", "ApplicationData", rlen, True))
            elif ct == 24:
                st.events.append(Ev(t, side, "hs", "Heartbeat", rlen))
        tlen = int(tcp.get("tcp.len", 0))
        if tlen and not got_tls and not seen_tls.get((sidx, side)):
            payload = bytes.fromhex(tcp.get("tcp.payload", "").replace(":", ""))
            printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in payload)
            if len(payload) >= 5 and payload[0] in (20, 21, 22, 23) and payload[1] == 3:
                kind = {20: "ChangeCipherSpec", 21: "Alert", 22: "Handshake", 23: "ApplicationData"}[payload[0]]
                hs = f" {HS.get(payload[5], payload[5])}" if payload[0] == 22 and len(payload) > 5 else ""
                st.events.append(
                    Ev(
                        t,
                        side,
                        "bytes",
                        f"TLS record bytes ({kind}{hs}, {tlen}B, not dissected by tshark on this port)",
                        tlen,
                    )
                )
            elif payload and printable >= 0.9 * len(payload):
                preview = payload[:40].decode("ascii", "replace").replace("\r", "\\r").replace("\n", "\\n")
                st.events.append(Ev(t, side, "data", f"plaintext {tlen}B '{preview}'", tlen))
            else:
                st.events.append(Ev(t, side, "bytes", f"unparsed {tlen}B", tlen))
        if flags & 0x01:
            st.events.append(Ev(t, side, "fin", "FIN"))
        if flags & 0x04:
            st.events.append(Ev(t, side, "rst", "RST"))
    return [streams[k] for k in sorted(streams, key=lambda k: streams[k].t0)]


def _compress(evs: list[Ev]) -> list[tuple[str, str]]:
    """(side, text) with runs of application data and repeated SYNs merged."""
    outl: list[tuple[str, str]] = []
    i = 0
    while i < len(evs):
        e = evs[i]
        j = i
        if e.kind in ("app", "syn", "bytes"):
            while j + 1 < len(evs) and evs[j + 1].kind == e.kind and evs[j + 1].side == e.side:
                j += 1
        n = j - i + 1
        if e.kind == "app" and n > 1:
            size = sum(x.size for x in evs[i : j + 1])
            outl.append((e.side, f"ApplicationData x{n} ({size}B)"))
        elif e.kind == "app":
            outl.append((e.side, f"ApplicationData({e.size}B)"))
        elif e.kind == "syn" and n > 1:
            outl.append((e.side, f"SYN (+{n - 1} retransmissions)"))
        elif e.kind == "bytes" and n > 1:
            outl.append((e.side, f"unparsed bytes x{n} ({sum(x.size for x in evs[i : j + 1])}B)"))
        elif e.encrypted and e.kind in ("hs", "alert"):
            outl.append((e.side, "{" + e.text + "}"))
        else:
            outl.append((e.side, e.text))
        i = j + 1
    return outl


def timeline(st: Stream) -> list[str]:
    """One line per change of direction: '+12.345ms C: ClientHello'."""
    lines: list[str] = []
    evs = st.events
    i = 0
    while i < len(evs):
        j = i
        while j + 1 < len(evs) and evs[j + 1].side == evs[i].side and evs[j + 1].t - evs[j].t < 0.010:
            j += 1
        group = evs[i : j + 1]
        texts = [t for _, t in _compress(group)]
        lines.append(f"+{(group[0].t - st.t0) * 1000:.3f}ms {group[0].side}: " + ", ".join(texts))
        i = j + 1
    return lines


def describe(st: Stream, side: str) -> str:
    """Prose for what one side did, from the wire."""
    evs = [e for e in st.events if e.side == side]
    other = [e for e in st.events if e.side != side]
    if not evs:
        return "nothing captured from this side"
    parts: list[str] = []
    comp = _compress(evs)
    for (_, text), e in zip(comp, _first_of_runs(evs), strict=True):
        if e.kind == "alert":
            where = (
                f"encrypted (a {e.size}-byte application_data record on the wire; read with the key log)"
                if e.encrypted
                else "in clear"
            )
            parts.append(
                f"sent {'fatal' if e.level == 2 else 'warning'} alert {ALERTS.get(e.alert, e.alert)} "
                f"({e.alert}) {where}"
            )
        elif e.kind == "encalert":
            parts.append(f"sent an encrypted alert record ({e.size}B, description not visible)")
        elif e.kind == "syn":
            parts.append(text)
        elif e.kind == "synack":
            parts.append("answered SYN-ACK")
        elif e.kind == "fin":
            parts.append("closed (FIN)")
        elif e.kind == "rst":
            parts.append("reset (RST)")
        else:
            parts.append(text)
    # merge consecutive handshake/app tokens into "sent X, Y"
    prose: list[str] = []
    buf: list[str] = []
    for p in parts:
        if p.startswith(("sent ", "closed", "reset", "answered", "SYN")):
            if buf:
                prose.append("sent " + ", ".join(buf))
                buf = []
            prose.append(p)
        else:
            buf.append(p)
    if buf:
        prose.append("sent " + ", ".join(buf))
    text = "; ".join(prose)
    if side == "C" and not any(e.kind in ("hs", "data", "bytes", "app", "enc") for e in evs):
        if any(e.kind == "synack" for e in other):
            text += " (connected, sent no ClientHello)"
        elif any(e.kind == "rst" for e in other):
            text += " (answered by RST)"
        else:
            text += " (never answered)"
    return text


def _first_of_runs(evs: list[Ev]) -> list[Ev]:
    res, i = [], 0
    while i < len(evs):
        e = evs[i]
        j = i
        if e.kind in ("app", "syn", "bytes"):
            while j + 1 < len(evs) and evs[j + 1].kind == e.kind and evs[j + 1].side == e.side:
                j += 1
        res.append(e)
        i = j + 1
    return res


def reaction(st: Stream) -> str:
    """What the client did once the server had spoken, in a few words."""
    c = [e for e in st.events if e.side == "C"]
    fatal = [e for e in c if e.kind == "alert" and e.level == 2]
    if fatal:
        e = fatal[0]
        return f"alert {ALERTS.get(e.alert, e.alert)}({e.alert}) {'encrypted' if e.encrypted else 'in clear'}"
    if any(e.kind == "encalert" for e in c):
        return "encrypted alert (unreadable)"
    finished = any(e.text == "Finished" for e in c) or any(e.kind == "enc" for e in c)
    app = any(e.kind == "app" for e in c)
    notify = any(e.kind == "alert" and e.alert == 0 for e in c)
    closes = [e.kind.upper() for e in c if e.kind in ("fin", "rst")]
    end = closes[0] if closes else "nothing"
    if len(closes) > 1 and closes[0] == "FIN" and "RST" in closes:
        end = "FIN (later RST)"
    if finished and app:
        return "accepted: application data"
    if finished:
        return f"finished the handshake, then {'close_notify + ' if notify else ''}{end}, no data"
    return f"{end}, no alert"


def check_conn(c: Conn, st: Stream) -> str:
    """Compare the capture with the expectations declared for the connection."""
    problems = []
    ex = c.expect
    calerts = [ALERTS.get(e.alert, e.alert) for e in st.events if e.side == "C" and e.kind == "alert"]
    salerts = [ALERTS.get(e.alert, e.alert) for e in st.events if e.side == "S" and e.kind == "alert"]
    app_c = any(e.kind == "app" for e in st.events if e.side == "C")
    app_s = any(e.kind == "app" for e in st.events if e.side == "S")
    if "client_alert" in ex and ex["client_alert"] not in calerts:
        problems.append(f"expected client alert {ex['client_alert']}, saw {calerts or 'none'}")
    if "server_alert" in ex and ex["server_alert"] not in salerts:
        problems.append(f"expected server alert {ex['server_alert']}, saw {salerts or 'none'}")
    if c.intended_outcome == "established" and not (app_c and app_s) and not ex.get("no_app_ok"):
        problems.append("expected application data both ways")
    if ex.get("client_rst") and not any(e.kind == "rst" for e in st.events if e.side == "C"):
        problems.append("expected an RST from the client")
    if ex.get("server_rst") and not any(e.kind == "rst" for e in st.events if e.side == "S"):
        problems.append("expected an RST from the server")
    return "ok" if not problems else "MISMATCH: " + "; ".join(problems)


def link_info(path: Path) -> tuple[str, str, int]:
    """(file type, link type(s), packet count) according to capinfos."""
    r = subprocess.run(["capinfos", "-t", "-E", "-c", "-M", str(path)], capture_output=True, text=True)
    ftype, encaps, pk, in_list = "", [], 0, False
    for line in r.stdout.splitlines():
        if line.startswith("File type:"):
            ftype = line.split(":", 1)[1].strip()
        elif line.startswith("File encapsulation:"):
            v = line.split(":", 1)[1].strip()
            if v != "per-packet":
                encaps.append(v)
        elif line.startswith("Encapsulation in use by packets"):
            in_list = True
            continue
        elif line.startswith("Number of packets:"):
            pk = int(line.split(":", 1)[1].strip().split()[0])
        if in_list and line.startswith(" "):
            encaps.append(re.sub(r"\s*\(\d+\)$", "", line.strip()))
        elif not line.startswith(" "):
            in_list = False
    return ftype, " + ".join(LINKTYPE_NAMES.get(e, e) for e in dict.fromkeys(encaps)), pk


LINKTYPE_NAMES = {
    "ether": "LINKTYPE_ETHERNET (1)",
    "Ethernet": "LINKTYPE_ETHERNET (1)",
    "linux-sll": "LINKTYPE_LINUX_SLL (113)",
    "Linux cooked-mode capture v1": "LINKTYPE_LINUX_SLL (113)",
    "linux-sll2": "LINKTYPE_LINUX_SLL2 (276)",
    "Linux cooked-mode capture v2": "LINKTYPE_LINUX_SLL2 (276)",
}


# --------------------------------------------------------------------------
# Scenario registry
# --------------------------------------------------------------------------
@dataclass
class Scenario:
    name: str  # capture file stem
    title: str
    ports: list[int]
    body: Callable[[Run], None]
    iface: str = "lo"
    linktype: str | None = None
    nano: bool = False
    snaplen: int | None = None
    pcapng: bool = False  # convert with editcap -F pcapng
    tls_ports: list[int] | None = None  # ports tshark should decode as TLS (default: ports)
    decode_as: dict[int, str] | None = None  # other ports tshark should decode as a protocol ("smtp", "pgsql"...)
    hosts: tuple[str, ...] = (LO4,)
    notes: str = ""


SCENARIOS: list[Scenario] = []


def scenario(name, title, ports, **kw):
    def deco(fn):
        SCENARIOS.append(Scenario(name, title, ports, fn, **kw))
        return fn

    return deco


def C(client, server, port, ver, outcome, cause, note="", **expect) -> Conn:
    return Conn(
        client=client,
        server=server,
        server_port=port,
        tls_version_intended=ver,
        intended_outcome=outcome,
        intended_cause=cause,
        note=note,
        expect=expect,
    )


V: dict[str, str] = {}  # short stack labels with versions, filled in main()


def S(stack: str) -> str:
    return V.get(stack, stack)


# ============================== successes =================================
BULK = 100_000


def _bulk_lines(n: int) -> bytes:
    line = b"the quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuvwxyz\n"
    data = (line * (n // len(line) + 1))[:n]
    return data


@scenario("tls12-openssl-bulk", "TLS 1.2 OpenSSL s_client <-> s_server -rev, ~100 KB each way", [4412])
def _(r: Run):
    r.server(ossl_server(4412, www=False, extra=["-rev", "-tls1_2"], keylog=r.keylog), 4412)
    payload = _bulk_lines(BULK)
    r.client(
        C(
            S("openssl"),
            S("openssl") + " s_server -rev",
            4412,
            "1.2",
            "established",
            None,
            "client sends ~100 KB of text lines, the server echoes every line reversed; "
            "1.5 s later the client's stdin ends and it sends close_notify",
        ),
        ossl_client(4412, "1.2", ign_eof=False),
        stdin=payload,
        hold_stdin=1.5,
        timeout=30,
    )


@scenario(
    "tls13-openssl-bulk", "TLS 1.3 OpenSSL s_client <-> s_server -rev, ~75 KB each way (pcapng)", [4413], pcapng=True
)
def _(r: Run):
    r.server(ossl_server(4413, www=False, extra=["-rev", "-tls1_3"], keylog=r.keylog), 4413)
    payload = _bulk_lines(BULK * 3 // 4)  # TLS 1.3 sends one segment per echoed line: keep the file small
    r.client(
        C(
            S("openssl"),
            S("openssl") + " s_server -rev",
            4413,
            "1.3",
            "established",
            None,
            "bulk text both ways; NewSessionTicket x2 after the handshake",
        ),
        ossl_client(4413, "1.3", ign_eof=False),
        stdin=payload,
        hold_stdin=1.5,
        timeout=30,
    )


@scenario("resumption-openssl", "Session resumption: TLS 1.2 full + abbreviated, TLS 1.3 full + PSK resumption", [4414])
def _(r: Run):
    r.server(ossl_server(4414, keylog=r.keylog), 4414)
    for ver in ("1.2", "1.3"):
        sess = BUILD / f"sess-{ver}.pem"
        if sess.exists():
            sess.unlink()
        r.client(
            C(
                S("openssl"),
                S("openssl"),
                4414,
                ver,
                "established",
                None,
                f"full TLS {ver} handshake; session saved with -sess_out",
            ),
            ossl_client(4414, ver, keylog=r.keylog, extra=["-sess_out", sess]),
        )
        r.client(
            C(
                S("openssl"),
                S("openssl"),
                4414,
                ver,
                "established",
                None,
                "resumed: "
                + (
                    "abbreviated handshake (ServerHello, CCS, Finished from the server first; no Certificate)"
                    if ver == "1.2"
                    else "PSK resumption (pre_shared_key extension, no Certificate)"
                ),
            ),
            ossl_client(4414, ver, keylog=r.keylog, extra=["-sess_in", sess]),
        )


@scenario(
    "tls13-hrr-openssl",
    "TLS 1.3 with HelloRetryRequest (client key share X25519, server wants P-256)",
    [4415],
    nano=True,
)
def _(r: Run):
    r.server(ossl_server(4415, keylog=r.keylog, extra=["-groups", "P-256"]), 4415)
    r.client(
        C(
            S("openssl"),
            S("openssl"),
            4415,
            "1.3",
            "established",
            None,
            "ClientHello, HelloRetryRequest, second ClientHello, then a normal TLS 1.3 handshake",
        ),
        ossl_client(4415, "1.3", keylog=r.keylog, extra=["-groups", "X25519:P-256"]),
    )


@scenario(
    "legacy-tls10-tls12rsa", "Legacy but successful: TLS 1.0 (SECLEVEL=0) and TLS 1.2 RSA key exchange", [4416, 4417]
)
def _(r: Run):
    r.server(ossl_server(4416, "server-rsa", keylog=r.keylog, extra=["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"]), 4416)
    r.server(ossl_server(4417, "server-rsa", keylog=r.keylog, extra=["-tls1_2", "-cipher", "AES128-GCM-SHA256"]), 4417)
    r.client(
        C(
            S("openssl"),
            S("openssl"),
            4416,
            "1.0",
            "established",
            None,
            "TLS 1.0 enabled on both sides with @SECLEVEL=0 (Debian's default forbids it)",
        ),
        ossl_client(4416, "1.0", keylog=r.keylog, extra=["-cipher", "DEFAULT:@SECLEVEL=0"]),
    )
    r.client(
        C(
            S("openssl"),
            S("openssl"),
            4417,
            "1.2",
            "established",
            None,
            "TLS_RSA_WITH_AES_128_GCM_SHA256: RSA key exchange, no ServerKeyExchange",
        ),
        ossl_client(4417, "1.2", keylog=r.keylog, extra=["-cipher", "AES128-GCM-SHA256"]),
    )


@scenario(
    "tls13-curl-alpn", "curl -> OpenSSL s_server -www, TLS 1.3 and 1.2, ALPN http/1.1 selected", [4430], nano=True
)
def _(r: Run):
    r.server(ossl_server(4430, keylog=r.keylog, extra=["-alpn", "http/1.1"]), 4430)
    env = {"SSLKEYLOGFILE": str(r.keylog)}
    r.client(
        C(
            S("curl"),
            S("openssl") + " s_server -www",
            4430,
            "1.3",
            "established",
            None,
            "curl offers ALPN h2,http/1.1; the server selects http/1.1",
        ),
        curl_client(4430, "1.3"),
        env=env,
    )
    r.client(
        C(S("curl"), S("openssl") + " s_server -www", 4430, "1.2", "established", None, "same over TLS 1.2"),
        curl_client(4430, "1.2"),
        env=env,
    )


@scenario(
    "python-ssl-ok",
    "Python ssl client <-> Python ssl server, TLS 1.3 and 1.2 (Linux cooked SLL)",
    [4431],
    iface="any",
    linktype="LINUX_SLL",
)
def _(r: Run):
    r.server(
        [
            SYS_PY,
            GEN / "pytls.py",
            "server",
            "--port",
            4431,
            "--cert",
            pki("server-chain.pem"),
            "--key",
            pki("server.key"),
            "--count",
            2,
            "--keylog",
            r.keylog,
        ],
        4431,
    )
    for ver in ("1.3", "1.2"):
        r.client(
            C(S("python"), S("python"), 4431, ver, "established", None),
            py_client(4431, ver, keylog=r.keylog),
            stdin=None,
        )


@scenario("gnutls-ok", "gnutls-cli <-> gnutls-serv --http, TLS 1.3 and 1.2, stapled OCSP (good)", [4440])
def _(r: Run):
    r.server(
        [
            "gnutls-serv",
            "--http",
            "-p",
            4440,
            "--x509certfile",
            pki("server-chain.pem"),
            "--x509keyfile",
            pki("server.key"),
            "--ocsp-response",
            pki("server-ocsp.der"),
        ],
        4440,
        env={"SSLKEYLOGFILE": str(r.keylog)},
    )
    for ver in ("1.3", "1.2"):
        r.client(
            C(
                S("gnutls"),
                S("gnutls") + " gnutls-serv",
                4440,
                ver,
                "established",
                None,
                "server staples a 'good' OCSP response (status_request)",
            ),
            gnutls_client(4440, ver),
            env={"SSLKEYLOGFILE": str(r.keylog)},
        )


@scenario("node-ok", "Node.js tls client <-> Node.js tls server, TLS 1.3 (ALPN h2) and TLS 1.2", [4450])
def _(r: Run):
    r.server(
        [
            "node",
            GEN / "node_tls.js",
            "server",
            "--port",
            4450,
            "--cert",
            pki("server-chain.pem"),
            "--key",
            pki("server.key"),
            "--alpn",
            "h2,http/1.1",
            "--count",
            2,
            "--keylog",
            r.keylog,
        ],
        4450,
    )
    r.client(
        C(S("node"), S("node"), 4450, "1.3", "established", None, "ALPN h2 negotiated"),
        node_client(4450, "1.3", keylog=r.keylog, extra=["--alpn", "h2,http/1.1"]),
        stdin=None,
    )
    r.client(
        C(S("node"), S("node"), 4450, "1.2", "established", None, "no ALPN offered"),
        node_client(4450, "1.2", keylog=r.keylog),
        stdin=None,
    )


@scenario(
    "java-ok",
    "Java (JSSE) client <-> Java server TLS 1.3, and Java client -> OpenSSL TLS 1.2 (pcapng)",
    [4460, 4461],
    pcapng=True,
)
def _(r: Run):
    r.server(
        ["java", "-cp", BUILD, "JavaTls", "server", LO4, 4460, BUILD / "java-server.p12", "TLSv1.3,TLSv1.2", 1], 4460
    )
    r.server(ossl_server(4461, keylog=r.keylog, extra=["-tls1_2"]), 4461)
    r.client(
        C(S("java"), S("java"), 4460, "1.3", "established", None, "no key log (JSSE cannot write one)"),
        java_client(4460, "1.3"),
        stdin=None,
    )
    r.client(
        C(S("java"), S("openssl") + " s_server -www", 4461, "1.2", "established", None),
        java_client(4461, "1.2"),
        stdin=None,
    )


@scenario(
    "go-ok",
    "Go crypto/tls client <-> Go server TLS 1.3, and Go client -> OpenSSL TLS 1.2 (SLL2)",
    [4470, 4471],
    iface="any",
    linktype="LINUX_SLL2",
)
def _(r: Run):
    r.server(
        [
            BUILD / "gotls",
            "server",
            "-addr",
            f"{LO4}:4470",
            "-cert",
            pki("server-chain.pem"),
            "-key",
            pki("server.key"),
            "-count",
            1,
        ],
        4470,
    )
    r.server(ossl_server(4471, keylog=r.keylog, extra=["-tls1_2"]), 4471)
    r.client(C(S("go"), S("go"), 4470, "1.3", "established", None), go_client(4470, "1.3", keylog=r.keylog), stdin=None)
    r.client(
        C(S("go"), S("openssl") + " s_server -www", 4471, "1.2", "established", None),
        go_client(4471, "1.2", keylog=r.keylog),
        stdin=None,
    )


@scenario(
    "ipv6-openssl",
    "IPv6 (::1): TLS 1.3 success, an expired certificate, and a refused port (636)",
    [4480, 4481, 636],
    hosts=(LO6,),
)
def _(r: Run):
    r.server(ossl_server(4480, host=LO6, keylog=r.keylog), 4480)
    r.server(ossl_server(4481, "expired", host=LO6, keylog=r.keylog), 4481)
    r.client(
        C(S("curl"), S("openssl") + " s_server -www", 4480, "1.3", "established", None, "over ::1"),
        curl_client(4480, "1.3", host=LO6),
        env={"SSLKEYLOGFILE": str(r.keylog)},
    )
    r.client(
        C(
            S("openssl"),
            S("openssl") + " s_server -www",
            4481,
            "1.3",
            "failed",
            "cert_expired",
            "over ::1",
            client_alert="certificate_expired",
        ),
        ossl_client(4481, "1.3", host=LO6, keylog=r.keylog),
    )
    if listening(636):
        raise RuntimeError("port 636 must be closed for this scenario")
    r.client(
        C(
            S("curl"),
            "nothing listening (kernel RST)",
            636,
            "1.3",
            "failed",
            "tcp_refused",
            "SYN to [::1]:636 (LDAPS, a well-known TLS port) answered by RST",
        ),
        curl_client(636, "1.3", host=LO6),
    )


@scenario(
    "snaplen96-tls13",
    "TLS 1.3 success captured with snap length 96 (payload truncated in the file)",
    [4490],
    snaplen=96,
)
def _(r: Run):
    r.server(ossl_server(4490), 4490)
    r.client(
        C(
            S("openssl"),
            S("openssl") + " s_server -www",
            4490,
            "1.3",
            "established",
            None,
            "tcpdump -s 96: every frame keeps at most 96 bytes (caplen < len); records cannot be read, "
            "so the honest result is incomplete evidence, whatever the peers achieved",
            no_app_ok=True,
        ),
        ossl_client(4490, "1.3"),
    )


# =========================== transport failures ===========================
@scenario("tcp-refused", "SYN answered by RST: nothing listens on 8443", [8443])
def _(r: Run):
    if listening(8443):
        raise RuntimeError("port 8443 must be closed for this scenario")
    r.client(
        C(S("curl"), "nothing listening (kernel RST)", 8443, "1.3", "failed", "tcp_refused"), curl_client(8443, "1.3")
    )
    r.client(
        C(S("openssl"), "nothing listening (kernel RST)", 8443, "1.3", "failed", "tcp_refused"),
        ossl_client(8443, "1.3"),
    )


NFT_TABLE = "tls_samples"


@scenario(
    "tcp-timeout",
    "SYN and retransmissions never answered (nftables drops SYNs to 993)",
    [993],
    iface="any",
    linktype="LINUX_SLL2",
)
def _(r: Run):
    subprocess.run(["nft", "delete", "table", "inet", NFT_TABLE], capture_output=True)
    nft = (
        f"add table inet {NFT_TABLE}\n"
        f"add chain inet {NFT_TABLE} input {{ type filter hook input priority -10; }}\n"
        f"add rule inet {NFT_TABLE} input ip daddr 127.0.0.1 tcp dport 993 tcp flags syn drop\n"
    )
    subprocess.run(["nft", "-f", "-"], input=nft, text=True, check=True)
    r.servers.append(f"nft rules: {nft.strip()!r} (removed afterwards)")
    try:
        r.client(
            C(
                S("curl"),
                "SYN dropped by nftables (no listener needed)",
                993,
                "1.3",
                "failed",
                "tcp_timeout",
                "curl --connect-timeout 4: SYN at 0 s, retransmitted at ~1 s and ~3 s, then curl gives up "
                "(no FIN/RST: the connection never existed)",
            ),
            curl_client(993, "1.3", extra=["--connect-timeout", "4"]),
            timeout=20,
        )
    finally:
        subprocess.run(["nft", "delete", "table", "inet", NFT_TABLE], check=True)


@scenario("no-client-hello", "TCP connects to a TLS port but the client never sends a ClientHello", [853])
def _(r: Run):
    r.server(ossl_server(853), 853)
    r.client(
        C(
            S("pyplain") + " socket",
            S("openssl") + " s_server",
            853,
            None,
            "failed",
            "no_client_hello",
            "connect, wait 0.3 s, close (FIN) without sending a byte (like a port probe / health check)",
        ),
        [SYS_PY, GEN / "pytls.py", "idle-client", "--port", 853, "--hold", 0.3],
        stdin=None,
    )
    r.client(
        C(
            S("pyplain") + " socket",
            S("openssl") + " s_server",
            853,
            None,
            "failed",
            "no_client_hello",
            "connect and stay silent until the capture ends (about 1.5 s; the client is killed after the "
            "capture stopped, so no FIN is in the file)",
        ),
        [SYS_PY, GEN / "pytls.py", "idle-client", "--port", 853, "--hold", 0],
        stdin=None,
        background=True,
    )
    time.sleep(1.5)


@scenario("client-sent-plaintext", "HTTP sent in clear to an HTTPS port (OpenSSL s_server on 443)", [443], nano=True)
def _(r: Run):
    r.server(ossl_server(443, keylog=r.keylog), 443)
    r.client(
        C(
            S("curl"),
            S("openssl") + " s_server -www",
            443,
            "1.3",
            "established",
            None,
            "a correct https:// request first, so the capture shows the server speaks TLS",
        ),
        curl_client(443, "1.3"),
        env={"SSLKEYLOGFILE": str(r.keylog)},
    )
    r.client(
        C(
            S("curl"),
            S("openssl") + " s_server -www",
            443,
            None,
            "failed",
            "client_sent_plaintext",
            "http:// instead of https://: curl sends 'GET / HTTP/1.1'; OpenSSL logs 'http request' and "
            "closes without an alert",
        ),
        ["curl", "-sS", "--max-time", "5", "--resolve", "server.test:443:127.0.0.1", "http://server.test:443/"],
    )


@scenario("starttls-smtp-refused", "SMTP STARTTLS refused by a server without TLS (Python smtpd)", [587], tls_ports=[])
def _(r: Run):
    r.server([SYS_PY, "-W", "ignore", "-m", "smtpd", "-n", "-c", "DebuggingServer", f"{LO4}:587"], 587)
    r.client(
        C(
            S("curl"),
            S("pyplain") + " smtpd",
            587,
            None,
            "failed",
            "starttls_refused",
            "curl --ssl-reqd: the EHLO answer does not advertise STARTTLS, so curl closes without ever "
            "sending STARTTLS (an analyzer keyed on the STARTTLS command sees only an SMTP exchange)",
        ),
        [
            "curl",
            "-sS",
            "--max-time",
            "5",
            "--ssl-reqd",
            "--mail-from",
            "a@client.test",
            "--mail-rcpt",
            "b@server.test",
            "-T",
            "/dev/null",
            "smtp://127.0.0.1:587",
        ],
        stdin=None,
    )
    r.client(
        C(
            S("openssl") + " s_client -starttls smtp",
            S("pyplain") + " smtpd",
            587,
            None,
            "failed",
            "starttls_refused",
            "OpenSSL sends STARTTLS even though it is not advertised; the server answers '500 ... not "
            "recognized'; s_client then sends its ClientHello anyway, gets no answer and is killed after 3 s",
        ),
        ["openssl", "s_client", "-connect", "127.0.0.1:587", "-starttls", "smtp", "-CAfile", pki("root.pem")],
        stdin=b"",
        timeout=3,
    )


# ========================= STARTTLS and tunnels (real servers) =============
# Debian's postfix, dovecot, PostgreSQL, MariaDB, slapd, tinyproxy and Dante, each with a private
# configuration written to $BUILD/srv/<scenario>/ when the scenario runs (the text of every file is kept in
# the manifest, how.server_configs), listening on loopback ports of their own. Packages:
#   apt-get install postfix dovecot-imapd dovecot-pop3d postgresql mariadb-server mariadb-client slapd \
#       ldap-utils tinyproxy dante-server
# (Debian's policy-rc.d should keep the packages' own services from starting; none is used here.)
MAIL = b"From: a@client.test\r\nTo: b@server.test\r\nSubject: sample\r\n\r\nhello\r\n"


def need(*tools: str) -> None:
    missing = [t for t in tools if not (shutil.which(t) or Path(t).exists())]
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)}: see the apt-get line above the STARTTLS scenarios")


def srvdir(r: Run) -> Path:
    d = BUILD / "srv" / r.name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def private_key(d: Path, leaf: str, owner: str) -> Path:
    """A copy of a leaf's key that only the server's user can read (PostgreSQL and MariaDB insist)."""
    k = d / f"{leaf}.key"
    shutil.copyfile(pki(f"{leaf}.key"), k)
    shutil.chown(k, owner)
    k.chmod(0o600)
    return k


def starttls_client(
    proto: str, port: int, keylog: Path | None = None, verify: bool = True, extra: list | None = None
) -> list:
    """openssl s_client -starttls PROTO, checking the chain against root.pem and the name server.test."""
    cmd = ["openssl", "s_client", "-connect", f"{LO4}:{port}", "-starttls", proto, "-servername", "server.test"]
    if verify:
        cmd += ["-CAfile", pki("root.pem"), "-verify_return_error", "-verify_hostname", "server.test"]
    if keylog:
        cmd += ["-keylogfile", keylog]
    return cmd + (extra or [])


def curl_mail(scheme: str, port: int, extra: list | None = None) -> list:
    """curl --ssl-reqd (STARTTLS or fail); for smtp:// the URL path is the EHLO name."""
    cmd = ["curl", "-sS", "--max-time", "8", "--ssl-reqd", "--cacert", pki("root.pem")]
    cmd += ["--resolve", f"server.test:{port}:{LO4}"]
    return cmd + (extra or []) + [f"{scheme}://server.test:{port}/{'client.test' if scheme == 'smtp' else ''}"]


POSTFIX_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


@scenario(
    "starttls-smtp",
    "SMTP STARTTLS to postfix: accepted, expired leaf after the upgrade, '454 TLS not available'",
    [5025, 5026, 5027],
    tls_ports=[],
    decode_as={5025: "smtp", 5026: "smtp", 5027: "smtp"},
)
def _(r: Run):
    need("/usr/lib/postfix/sbin/master", "postconf")
    d = srvdir(r)
    etc, data = d / "etc", d / "data"
    data.mkdir()
    (d / "spool").mkdir()
    shutil.chown(data, "postfix")
    r.config(
        etc / "main.cf",
        f"""compatibility_level = 3.6
queue_directory = {d / "spool"}
data_directory = {data}
maillog_file = {d / "maillog"}
maillog_file_prefixes = {d}
mail_owner = postfix
setgid_group = postdrop
myhostname = server.test
smtpd_banner = $myhostname ESMTP Postfix
mydestination =
alias_maps =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = server.test
smtpd_relay_restrictions = permit_mynetworks, reject
default_transport = discard:
relay_transport = discard:
local_transport = discard:
smtpd_tls_security_level = may
smtpd_tls_chain_files = {pki("server.key")}, {pki("server-chain.pem")}
smtpd_tls_loglevel = 1
""",
    )
    # 5026: the expired leaf; 5027: a key that does not match the certificate, so TLS cannot start and
    # postfix answers STARTTLS with "454 4.7.0 TLS not available due to local problem" (it still offers it)
    r.config(
        etc / "master.cf",
        f"""{LO4}:5025 inet n - n - - smtpd
{LO4}:5026 inet n - n - - smtpd -o smtpd_tls_chain_files={pki("expired.key")},{pki("expired-chain.pem")}
{LO4}:5027 inet n - n - - smtpd -o smtpd_tls_chain_files={pki("expired.key")},{pki("server-chain.pem")}
"""
        + POSTFIX_SERVICES,
    )
    subprocess.run(["postfix", "-c", etc, "check"], capture_output=True)  # creates the queue directories
    r.server(["/usr/lib/postfix/sbin/master", "-c", etc, "-d"], 5025)
    for port in (5026, 5027):
        deadline = time.time() + 5
        while not listening(port) and time.time() < deadline:
            time.sleep(0.05)
    mailf = d / "mail.txt"
    mailf.write_bytes(MAIL)
    curl_smtp = ["--mail-from", "a@client.test", "--mail-rcpt", "b@server.test", "-T", mailf]
    srv = S("postfix") + " smtpd"
    r.client(
        C(
            S("openssl") + " s_client -starttls smtp",
            srv,
            5025,
            None,
            "established",
            None,
            "EHLO, STARTTLS ('220 2.0.0 Ready to start TLS'), TLS 1.3, then EHLO and QUIT inside TLS",
        ),
        starttls_client("smtp", 5025, r.keylog, extra=["-crlf", "-ign_eof"]),
        stdin=b"QUIT\n",
    )
    r.client(
        C(
            S("curl") + " smtp:// --ssl-reqd",
            srv,
            5025,
            None,
            "established",
            None,
            "curl sends one message (MAIL FROM, RCPT TO, DATA) after STARTTLS; postfix discards it",
        ),
        curl_mail("smtp", 5025, curl_smtp),
        env={"SSLKEYLOGFILE": str(r.keylog)},
        stdin=None,
    )
    r.client(
        C(
            S("openssl") + " s_client -starttls smtp",
            srv + " (expired leaf)",
            5026,
            None,
            "failed",
            "cert_expired",
            "the upgrade succeeds, then the client rejects the expired leaf",
            client_alert="certificate_expired",
        ),
        starttls_client("smtp", 5026, r.keylog, extra=["-crlf", "-ign_eof"]),
        stdin=b"QUIT\n",
    )
    r.client(
        C(
            S("curl") + " smtp:// --ssl-reqd",
            srv + " (expired leaf)",
            5026,
            None,
            "failed",
            "cert_expired",
            "the upgrade succeeds, then curl rejects the expired leaf",
            client_alert="certificate_expired",
        ),
        curl_mail("smtp", 5026, curl_smtp),
        env={"SSLKEYLOGFILE": str(r.keylog)},
        stdin=None,
    )
    r.client(
        C(
            S("openssl") + " s_client -starttls smtp",
            srv + " (key does not match certificate)",
            5027,
            None,
            "failed",
            "starttls_refused",
            "postfix offers STARTTLS but answers it with '454 4.7.0 TLS not available due to local problem'; "
            "s_client sends its ClientHello anyway, postfix reads it as an SMTP command line",
        ),
        starttls_client("smtp", 5027, r.keylog, extra=["-crlf"]),
        stdin=b"",
        timeout=4,
    )
    r.client(
        C(
            S("curl") + " smtp:// --ssl-reqd",
            srv + " (key does not match certificate)",
            5027,
            None,
            "failed",
            "starttls_refused",
            "'454 4.7.0 TLS not available due to local problem'; curl closes (FIN, no QUIT)",
        ),
        curl_mail("smtp", 5027, curl_smtp),
        stdin=None,
    )


def dovecot_conf(r: Run, d: Path, tag: str, proto: str, port: int, leaf: str | None) -> Path:
    """A dovecot instance of its own (base_dir, one plaintext listener with STARTTLS/STLS; ssl=no if no leaf)."""
    (d / tag).mkdir()
    home = d / "home"
    home.mkdir(exist_ok=True)
    shutil.chown(home, "dovecot", "dovecot")
    svc = {"imap": ("imap-login", "imap", "imaps"), "pop3": ("pop3-login", "pop3", "pop3s")}[proto]
    tls = (
        f"ssl = yes\nssl_cert = <{pki(leaf + '-chain.pem')}\nssl_key = <{pki(leaf + '.key')}\n"
        if leaf
        else "ssl = no\n"
    )
    return r.config(
        d / tag / "dovecot.conf",
        f"""base_dir = {d / tag / "run"}
instance_name = tls-samples-{tag}
protocols = {proto}
listen = {LO4}
log_path = /dev/stderr
{tls}disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={home}/%u
}}
first_valid_uid = 1
mail_location = maildir:~/Maildir
service {svc[0]} {{
  inet_listener {svc[1]} {{
    port = {port}
  }}
  inet_listener {svc[2]} {{
    port = 0
  }}
}}
""",
    )


def _dovecot(r: Run, proto: str, ports: tuple[int, int, int]) -> None:
    need("dovecot")
    d = srvdir(r)
    for tag, port, leaf in (("ok", ports[0], "server"), ("expired", ports[1], "expired"), ("nossl", ports[2], None)):
        r.server(["dovecot", "-F", "-c", dovecot_conf(r, d, tag, proto, port, leaf)], port)
    verb = {"imap": "STARTTLS", "pop3": "STLS"}[proto]
    bye = {"imap": b"a LOGOUT\n", "pop3": b"QUIT\n"}[proto]
    srv = S("dovecot") + f" {proto}-login"
    login = ["-u", "user:secret"]  # any user and password: passdb static nopassword
    r.client(
        C(
            S("openssl") + f" s_client -starttls {proto}",
            srv,
            ports[0],
            None,
            "established",
            None,
            f"{verb}, TLS 1.3, then {bye.decode().strip()} inside TLS",
        ),
        starttls_client(proto, ports[0], r.keylog, extra=["-crlf", "-ign_eof"]),
        stdin=bye,
    )
    r.client(
        C(
            S("curl") + f" {proto}:// --ssl-reqd",
            srv,
            ports[0],
            None,
            "established",
            None,
            f"CAPA/CAPABILITY, {verb}, then login and a listing inside TLS",
        ),
        curl_mail(proto, ports[0], login),
        env={"SSLKEYLOGFILE": str(r.keylog)},
        stdin=None,
    )
    r.client(
        C(
            S("openssl") + f" s_client -starttls {proto}",
            srv + " (expired leaf)",
            ports[1],
            None,
            "failed",
            "cert_expired",
            "the upgrade succeeds, then the client rejects the expired leaf",
            client_alert="certificate_expired",
        ),
        starttls_client(proto, ports[1], r.keylog, extra=["-crlf", "-ign_eof"]),
        stdin=bye,
    )
    refusal = {"imap": "'BAD TLS support isn't enabled.'", "pop3": "'-ERR TLS support isn't enabled.'"}[proto]
    r.client(
        C(
            S("openssl") + f" s_client -starttls {proto}",
            srv + " (ssl = no)",
            ports[2],
            None,
            "failed",
            "starttls_refused",
            f"dovecot with ssl = no does not offer {verb} and answers it with {refusal}; s_client sends its "
            "ClientHello anyway and fails on the cleartext answer",
        ),
        starttls_client(proto, ports[2], r.keylog, extra=["-crlf"]),
        stdin=b"",
        timeout=8,
    )
    r.client(
        C(
            S("curl") + f" {proto}:// --ssl-reqd",
            srv + " (ssl = no)",
            ports[2],
            None,
            "failed",
            "starttls_refused",
            f"{verb} is not in the capabilities, so curl --ssl-reqd gives up without asking",
        ),
        curl_mail(proto, ports[2], login),
        stdin=None,
    )


@scenario(
    "starttls-imap",
    "IMAP STARTTLS to dovecot: accepted, expired leaf after the upgrade, refused (ssl = no)",
    [5143, 5144, 5145],
    tls_ports=[],
    decode_as={5143: "imap", 5144: "imap", 5145: "imap"},
)
def _(r: Run):
    _dovecot(r, "imap", (5143, 5144, 5145))


@scenario(
    "starttls-pop3",
    "POP3 STLS to dovecot: accepted, expired leaf after the upgrade, refused (ssl = no)",
    [5110, 5111, 5112],
    tls_ports=[],
    decode_as={5110: "pop", 5111: "pop", 5112: "pop"},
)
def _(r: Run):
    _dovecot(r, "pop3", (5110, 5111, 5112))


@scenario(
    "starttls-postgres",
    "PostgreSQL SSLRequest: accepted ('S'), expired leaf, refused ('N', ssl = off)",
    [5632, 5633, 5634],
    tls_ports=[],
    decode_as={5632: "pgsql", 5633: "pgsql", 5634: "pgsql"},
)
def _(r: Run):
    need(str(PG_BIN / "postgres"), str(PG_BIN / "initdb"), "psql", "runuser")
    d = srvdir(r)
    shutil.chown(d, "postgres")
    run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            PG_BIN / "initdb",
            "-D",
            d / "data",
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]
    )
    keys = {leaf: private_key(d, leaf, "postgres") for leaf in ("server", "expired")}

    def pg(port: int, leaf: str | None) -> Proc:
        cmd = [
            "runuser",
            "-u",
            "postgres",
            "--",
            PG_BIN / "postgres",
            "-D",
            d / "data",
            "-p",
            port,
            "-k",
            d,
            "-c",
            f"listen_addresses={LO4}",
        ]
        if leaf:
            cmd += [
                "-c",
                "ssl=on",
                "-c",
                f"ssl_cert_file={pki(leaf + '-chain.pem')}",
                "-c",
                f"ssl_key_file={keys[leaf]}",
            ]
        else:
            cmd += ["-c", "ssl=off"]
        return r.server(cmd, port)

    def psql(port: int, mode: str) -> list:
        return [
            "psql",
            f"host=server.test hostaddr={LO4} port={port} user=postgres dbname=postgres "
            f"sslmode={mode} sslrootcert={pki('root.pem')} gssencmode=disable",
            "-Atc",
            "select version, cipher from pg_stat_ssl where pid = pg_backend_pid()",
        ]

    srv = S("postgresql")
    env = {"PGCONNECT_TIMEOUT": "5", "PSQLRC": "/dev/null"}
    p = pg(5632, "server")
    r.client(
        C(
            S("psql") + " sslmode=verify-full",
            srv,
            5632,
            None,
            "established",
            None,
            "SSLRequest, 'S', TLS 1.3 (SNI server.test), then the startup message and a query inside TLS",
        ),
        psql(5632, "verify-full"),
        env=env,
        stdin=None,
    )
    r.client(
        C(
            S("openssl") + " s_client -starttls postgres",
            srv,
            5632,
            None,
            "established",
            None,
            "SSLRequest, 'S', TLS 1.3; s_client sends no startup message and closes (close_notify) after the "
            "handshake, so only the server's session tickets travel as application data",
            no_app_ok=True,
        ),
        starttls_client("postgres", 5632, r.keylog),
        stdin=b"",
    )
    p.stop()
    p = pg(5633, "expired")
    r.client(
        C(
            S("psql") + " sslmode=verify-full",
            srv + " (expired leaf)",
            5633,
            None,
            "failed",
            "cert_expired",
            "'S', then libpq rejects the expired leaf",
            client_alert="certificate_expired",
        ),
        psql(5633, "verify-full"),
        env=env,
        stdin=None,
    )
    p.stop()
    pg(5634, None)
    r.client(
        C(
            S("psql") + " sslmode=require",
            srv + " (ssl = off)",
            5634,
            None,
            "failed",
            "starttls_refused",
            "SSLRequest answered 'N'; libpq: 'server does not support SSL, but SSL was required', closes",
        ),
        psql(5634, "require"),
        env=env,
        stdin=None,
    )
    r.client(
        C(
            S("openssl") + " s_client -starttls postgres",
            srv + " (ssl = off)",
            5634,
            None,
            "failed",
            "starttls_refused",
            "SSLRequest answered 'N'; s_client gives up",
        ),
        starttls_client("postgres", 5634, r.keylog),
        stdin=b"",
        timeout=8,
    )


@scenario(
    "starttls-mysql",
    "MySQL protocol SSL request to MariaDB: accepted, expired leaf, server without SSL",
    [5306, 5307, 5308],
    tls_ports=[],
    decode_as={5306: "mysql", 5307: "mysql", 5308: "mysql"},
)
def _(r: Run):
    need("mariadbd", "mariadb-install-db", "mariadb")
    d = srvdir(r)
    shutil.chown(d, "mysql")
    run(
        [
            "mariadb-install-db",
            "--no-defaults",
            f"--datadir={d / 'data'}",
            "--user=mysql",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]
    )
    keys = {leaf: private_key(d, leaf, "mysql") for leaf in ("server", "expired")}

    def my(port: int, leaf: str | None) -> Proc:
        cmd = [
            "mariadbd",
            "--no-defaults",
            f"--datadir={d / 'data'}",
            "--user=mysql",
            f"--port={port}",
            f"--bind-address={LO4}",
            f"--socket={d / 'sock'}",
            f"--pid-file={d / 'pid'}",
            "--skip-name-resolve",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=16M",
        ]
        if leaf:
            cmd += [f"--ssl-cert={pki(leaf + '-chain.pem')}", f"--ssl-key={keys[leaf]}"]
        else:
            cmd += ["--skip-ssl"]
        return r.server(cmd, port, wait=30)

    def client(port: int) -> list:
        return [
            "mariadb",
            "--no-defaults",
            "-h",
            LO4,
            "-P",
            port,
            "-u",
            "root",
            "--connect-timeout=5",
            "--ssl",
            f"--ssl-ca={pki('root.pem')}",
            "--ssl-verify-server-cert",
            "-e",
            "show status like 'Ssl_version'",
        ]

    srv = S("mariadb")
    p = my(5306, "server")
    r.client(
        C(
            S("mariadb-client") + " --ssl-verify-server-cert",
            srv,
            5306,
            None,
            "established",
            None,
            "server greeting, SSL request (capability CLIENT_SSL), TLS 1.3, then login and a query inside TLS; "
            "the name checked is 127.0.0.1 (IP SAN)",
        ),
        client(5306),
        stdin=None,
    )
    r.client(
        C(
            S("openssl") + " s_client -starttls mysql",
            srv,
            5306,
            None,
            "established",
            None,
            "greeting, SSL request, TLS 1.3; s_client sends no login and closes (close_notify)",
            no_app_ok=True,
        ),
        starttls_client("mysql", 5306, r.keylog),
        stdin=b"",
    )
    p.stop()
    p = my(5307, "expired")
    r.client(
        C(
            S("mariadb-client") + " --ssl-verify-server-cert",
            srv + " (expired leaf)",
            5307,
            None,
            "failed",
            "cert_expired",
            "the client rejects the expired leaf",
            client_alert="certificate_expired",
        ),
        client(5307),
        stdin=None,
    )
    p.stop()
    my(5308, None)
    r.client(
        C(
            S("mariadb-client") + " --ssl-verify-server-cert",
            srv + " (--skip-ssl)",
            5308,
            None,
            "failed",
            "starttls_refused",
            "the greeting does not offer CLIENT_SSL; the client ('SSL is required, but the server does not "
            "support it') closes without sending an SSL request (with --ssl alone it would go on in clear)",
        ),
        client(5308),
        stdin=None,
    )


@scenario(
    "starttls-ldap",
    "LDAP StartTLS to slapd: accepted, refused (no TLS configured), expired leaf",
    [5389, 5390, 5391],
    tls_ports=[],
    decode_as={5389: "ldap", 5390: "ldap", 5391: "ldap"},
)
def _(r: Run):
    need("slapd", "ldapsearch")
    d = srvdir(r)
    for tag, port, leaf in (("ok", 5389, "server"), ("notls", 5390, None), ("expired", 5391, "expired")):
        tls = (
            f"TLSCertificateFile {pki(leaf + '-chain.pem')}\nTLSCertificateKeyFile {pki(leaf + '.key')}\n"
            if leaf
            else ""
        )
        conf = r.config(
            d / tag / "slapd.conf",
            f"include /etc/ldap/schema/core.schema\npidfile {d / tag / 'slapd.pid'}\n"
            f"argsfile {d / tag / 'slapd.args'}\n{tls}",
        )
        r.server(["slapd", "-d", "0", "-f", conf, "-h", f"ldap://{LO4}:{port}/"], port)

    def ldapsearch(port: int) -> list:
        return [
            "ldapsearch",
            "-ZZ",
            "-x",
            "-o",
            "nettimeout=5",
            "-H",
            f"ldap://{LO4}:{port}",
            "-b",
            "",
            "-s",
            "base",
            "supportedExtension",
        ]

    # GnuTLS (libldap's TLS library in Debian) writes SSLKEYLOGFILE too
    env = {"LDAPTLS_CACERT": str(pki("root.pem")), "LDAPTLS_REQCERT": "demand", "SSLKEYLOGFILE": str(r.keylog)}
    srv = S("slapd")
    r.client(
        C(
            S("ldapsearch") + " -ZZ",
            srv,
            5389,
            None,
            "established",
            None,
            "StartTLS extended request, success, TLS 1.3, then a bind and a root DSE search inside TLS; the name "
            "checked is 127.0.0.1 (IP SAN)",
        ),
        ldapsearch(5389),
        env=env,
        stdin=None,
    )
    r.client(
        C(
            S("openssl") + " s_client -starttls ldap",
            srv,
            5389,
            None,
            "established",
            None,
            "StartTLS, TLS 1.3; s_client sends nothing and closes (close_notify)",
            no_app_ok=True,
        ),
        starttls_client("ldap", 5389, r.keylog),
        stdin=b"",
    )
    r.client(
        C(
            S("ldapsearch") + " -ZZ",
            srv + " (no TLS configured)",
            5390,
            None,
            "failed",
            "starttls_refused",
            "StartTLS answered with an error result (protocolError, 'unsupported extended operation'); -ZZ "
            "makes ldapsearch stop",
        ),
        ldapsearch(5390),
        env=env,
        stdin=None,
    )
    r.client(
        C(
            S("ldapsearch") + " -ZZ",
            srv + " (expired leaf)",
            5391,
            None,
            "failed",
            "cert_expired",
            "StartTLS accepted; libldap (GnuTLS) completes the TLS 1.3 handshake (its Finished is sent), checks "
            "the certificate afterwards ('Connect error (-11)') and closes without an alert: only the chain "
            "tells why",
        ),
        ldapsearch(5391),
        env=env,
        stdin=None,
    )


def _tunnel_leg(r: Run, relay: str, port: int, note: str) -> None:
    """The proxy's own TCP connection to the TLS server, carrying the client's TLS bytes."""
    r.cap.connections.append(C(relay, S("openssl") + " s_server -www", port, "1.3", "established", None, note))


@scenario(
    "starttls-http-connect",
    "HTTP CONNECT tunnel through tinyproxy to an OpenSSL server; a CONNECT refused with 403",
    [5888, 5443, 5444],
    tls_ports=[5443, 5444],
    decode_as={5888: "http"},
)
def _(r: Run):
    need("tinyproxy")
    d = srvdir(r)
    conf = r.config(
        d / "tinyproxy.conf",
        f"User nobody\nGroup nogroup\nPort 5888\nListen {LO4}\nTimeout 30\nAllow {LO4}\nConnectPort 5443\n"
        "LogLevel Info\nMaxClients 10\nDisableViaHeader Yes\n",
    )
    r.server(ossl_server(5443, keylog=r.keylog), 5443)
    r.server(["tinyproxy", "-d", "-c", conf], 5888)
    proxy = ["-x", f"http://{LO4}:5888"]
    relay = S("tinyproxy") + " (relaying the tunnel)"
    r.client(
        C(
            S("curl") + " -x (CONNECT)",
            S("tinyproxy") + " -> " + S("openssl") + " s_server -www",
            5888,
            "1.3",
            "established",
            None,
            "'CONNECT localhost:5443', '200 Connection established', then TLS with the server through the "
            "tunnel (SNI localhost); the next TCP stream is tinyproxy's own connection to the server",
        ),
        curl_client(5443, "1.3", sni="localhost", extra=proxy),
        env={"SSLKEYLOGFILE": str(r.keylog)},
    )
    _tunnel_leg(r, relay, 5443, "tinyproxy's connection to localhost:5443 for the CONNECT of the previous stream")
    r.client(
        C(
            S("openssl") + " s_client -proxy (CONNECT)",
            S("tinyproxy") + " -> " + S("openssl") + " s_server -www",
            5888,
            "1.3",
            "established",
            None,
            "s_client -proxy 127.0.0.1:5888 -connect localhost:5443: CONNECT, 200, TLS through the tunnel",
        ),
        ossl_client(5443, "1.3", host="localhost", keylog=r.keylog, extra=["-proxy", f"{LO4}:5888"]),
    )
    _tunnel_leg(r, relay, 5443, "tinyproxy's connection to localhost:5443 for the CONNECT of the previous stream")
    r.client(
        C(
            S("curl") + " -x (CONNECT)",
            S("tinyproxy"),
            5888,
            None,
            "failed",
            "starttls_refused",
            "'CONNECT localhost:5444' to a port not in ConnectPort: '403 Access violation', no tunnel",
        ),
        curl_client(5444, "1.3", sni="localhost", extra=proxy),
    )


@scenario(
    "starttls-socks",
    "SOCKS5 tunnel through Dante to an OpenSSL server; a SOCKS5 CONNECT refused by the ruleset",
    [5080, 5445, 5446],
    tls_ports=[5445, 5446],
    decode_as={5080: "socks"},
)
def _(r: Run):
    need("danted")
    d = srvdir(r)
    conf = r.config(
        d / "danted.conf",
        f"""logoutput: stderr
internal: {LO4} port = 5080
external: {LO4}
socksmethod: none
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {{
  from: {LO4}/32 to: 0.0.0.0/0
}}
socks pass {{
  from: {LO4}/32 to: {LO4}/32 port = 5445
  command: connect
}}
socks block {{
  from: 0.0.0.0/0 to: 0.0.0.0/0
}}
""",
    )
    r.server(ossl_server(5445, keylog=r.keylog), 5445)
    r.server(["danted", "-f", conf, "-N", "1", "-p", d / "danted.pid"], 5080)
    relay = S("dante") + " sockd (relaying the tunnel)"
    r.client(
        C(
            S("curl") + " --socks5-hostname",
            S("dante") + " -> " + S("openssl") + " s_server -www",
            5080,
            "1.3",
            "established",
            None,
            "SOCKS5 no-auth, CONNECT to the name localhost:5445 (ATYP domain), success, then TLS through the "
            "tunnel; the next TCP stream is Dante's own connection to the server",
        ),
        curl_client(5445, "1.3", sni="localhost", extra=["--socks5-hostname", f"{LO4}:5080"]),
        env={"SSLKEYLOGFILE": str(r.keylog)},
    )
    _tunnel_leg(r, relay, 5445, "Dante's connection to 127.0.0.1:5445 for the SOCKS request of the previous stream")
    r.client(
        C(
            S("curl") + " --socks5",
            S("dante") + " -> " + S("openssl") + " s_server -www",
            5080,
            "1.3",
            "established",
            None,
            "SOCKS5 CONNECT to the address 127.0.0.1:5445 (curl resolves), then TLS",
        ),
        curl_client(5445, "1.3", sni="localhost", extra=["--socks5", f"{LO4}:5080"]),
        env={"SSLKEYLOGFILE": str(r.keylog)},
    )
    _tunnel_leg(r, relay, 5445, "Dante's connection to 127.0.0.1:5445 for the SOCKS request of the previous stream")
    r.client(
        C(
            S("curl") + " --socks5-hostname",
            S("dante"),
            5080,
            None,
            "failed",
            "starttls_refused",
            "SOCKS5 CONNECT to localhost:5446, which the ruleset blocks: reply 0x02 (not allowed by ruleset)",
        ),
        curl_client(5446, "1.3", sni="localhost", extra=["--socks5-hostname", f"{LO4}:5080"]),
    )


# =========================== negotiation failures =========================
@scenario("server-no-response", "ClientHello sent, the server never answers; the client gives up after 2 s", [4501])
def _(r: Run):
    r.server([SYS_PY, GEN / "pytls.py", "silent-server", "--port", 4501, "--count", 2], 4501)
    r.client(
        C(
            S("curl"),
            S("pyplain") + " socket (reads, never answers)",
            4501,
            "1.3",
            "failed",
            "server_no_response",
            "curl --max-time 2, then closes",
        ),
        curl_client(4501, "1.3", extra=["--max-time", "2"]),
    )
    r.client(
        C(
            S("python"),
            S("pyplain") + " socket (reads, never answers)",
            4501,
            "1.3",
            "failed",
            "server_no_response",
            "python socket timeout 2 s, then closes",
        ),
        [
            SYS_PY,
            "-c",
            "import socket,ssl;c=ssl.create_default_context();s=socket.create_connection"
            "(('127.0.0.1',4501));s.settimeout(2)\ntry:\n c.wrap_socket(s,server_hostname='server.test')\n"
            "except Exception as e: print(repr(e))",
        ],
        stdin=None,
    )


@scenario("server-reset", "The server resets the connection after reading the ClientHello", [4502], nano=True)
def _(r: Run):
    r.server([SYS_PY, GEN / "pytls.py", "reset-server", "--port", 4502, "--count", 2], 4502)
    r.client(
        C(S("openssl"), S("pyplain") + " socket (SO_LINGER 0)", 4502, "1.3", "failed", "server_reset", server_rst=True),
        ossl_client(4502, "1.3"),
    )
    r.client(
        C(S("curl"), S("pyplain") + " socket (SO_LINGER 0)", 4502, "1.2", "failed", "server_reset", server_rst=True),
        curl_client(4502, "1.2"),
    )


@scenario("server-closed", "The server closes (FIN) after reading the ClientHello, without an alert", [4503])
def _(r: Run):
    r.server([SYS_PY, GEN / "pytls.py", "close-server", "--port", 4503, "--count", 2], 4503)
    r.client(
        C(S("openssl"), S("pyplain") + " socket (shutdown)", 4503, "1.3", "failed", "server_closed"),
        ossl_client(4503, "1.3"),
    )
    r.client(
        C(S("node"), S("pyplain") + " socket (shutdown)", 4503, "1.3", "failed", "server_closed"),
        node_client(4503, "1.3"),
        stdin=None,
    )


@scenario(
    "non-tls-server",
    "ClientHello answered by HTTP 400 (http.server), an SSH banner (sshd), an SMTP greeting",
    [4504, 4505, 4506],
    iface="any",
    linktype="LINUX_SLL",
)
def _(r: Run):
    r.server([SYS_PY, "-m", "http.server", "--bind", LO4, 4504], 4504, cwd=BUILD)
    r.server(
        [
            "/usr/sbin/sshd",
            "-D",
            "-e",
            "-f",
            "/dev/null",
            "-h",
            BUILD / "ssh_host_ed25519_key",
            "-o",
            "ListenAddress=127.0.0.1:4505",
            "-o",
            "PidFile=none",
        ],
        4505,
    )
    r.server([SYS_PY, "-W", "ignore", "-m", "smtpd", "-n", "-c", "DebuggingServer", f"{LO4}:4506"], 4506)
    r.client(
        C(
            S("curl"),
            S("pyplain") + " http.server",
            4504,
            "1.3",
            "failed",
            "non_tls_server",
            "the plain HTTP server cannot parse the ClientHello as a request line, treats it as HTTP/0.9 and "
            "answers with the bare HTML 'Error response ... 400 Bad request version' page (no status line)",
        ),
        curl_client(4504, "1.3"),
    )
    r.client(
        C(S("openssl"), S("openssh") + " sshd", 4505, "1.3", "failed", "non_tls_server", "sshd sends its banner first"),
        ossl_client(4505, "1.3"),
    )
    r.client(
        C(S("python"), S("pyplain") + " smtpd", 4506, "1.2", "failed", "non_tls_server", "SMTP greeting '220 ...'"),
        py_client(4506, "1.2"),
        stdin=None,
    )


@scenario(
    "protocol-version",
    "No common TLS version (both directions, and a TLS 1.0 client)",
    [4510, 4511, 4512],
    iface="any",
    linktype="LINUX_SLL2",
)
def _(r: Run):
    r.server(ossl_server(4511, extra=["-tls1_2"]), 4511)
    r.server(ossl_server(4512, extra=["-tls1_3"]), 4512)
    r.server(ossl_server(4510), 4510)
    r.client(
        C(
            S("openssl"),
            S("openssl") + " (max TLS 1.2)",
            4511,
            "1.3",
            "failed",
            "protocol_version",
            "client TLS 1.3 only, server TLS 1.2 only",
            server_alert="protocol_version",
        ),
        ossl_client(4511, "1.3"),
    )
    r.client(
        C(
            S("openssl"),
            S("openssl") + " (TLS 1.3 only)",
            4512,
            "1.2",
            "failed",
            "protocol_version",
            "client TLS 1.2 max, server TLS 1.3 only",
            server_alert="protocol_version",
        ),
        ossl_client(4512, "1.2"),
    )
    r.client(
        C(
            S("node"),
            S("openssl") + " (TLS 1.3 only)",
            4512,
            "1.2",
            "failed",
            "protocol_version",
            "node maxVersion TLSv1.2 against a TLS 1.3-only server",
            server_alert="protocol_version",
        ),
        node_client(4512, "1.2"),
        stdin=None,
    )
    r.client(
        C(
            S("openssl") + " -tls1 @SECLEVEL=0",
            S("openssl") + " (default: TLS 1.2-1.3)",
            4510,
            "1.0",
            "failed",
            "protocol_version",
            "an old TLS 1.0 client against a modern server (minimum TLS 1.2): OpenSSL "
            "answers internal_error (80), not protocol_version; the offered versions are disjoint",
            server_alert="internal_error",
        ),
        ossl_client(4510, "1.0", extra=["-cipher", "DEFAULT:@SECLEVEL=0"]),
    )


@scenario("no-shared-cipher", "No common cipher suite (TLS 1.2, TLS 1.3) or group", [4513, 4514, 4519], pcapng=True)
def _(r: Run):
    r.server(ossl_server(4513, extra=["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]), 4513)
    r.server(ossl_server(4514, extra=["-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"]), 4514)
    r.server(ossl_server(4519, extra=["-tls1_3", "-groups", "P-384"]), 4519)
    r.client(
        C(
            S("openssl"),
            S("openssl"),
            4513,
            "1.2",
            "failed",
            "no_shared_cipher",
            "client offers only ECDHE-ECDSA-CHACHA20-POLY1305",
            server_alert="handshake_failure",
        ),
        ossl_client(4513, "1.2", extra=["-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"]),
    )
    r.client(
        C(
            S("openssl"),
            S("openssl"),
            4514,
            "1.3",
            "failed",
            "no_shared_cipher",
            "client offers only TLS_CHACHA20_POLY1305_SHA256",
            server_alert="handshake_failure",
        ),
        ossl_client(4514, "1.3", extra=["-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"]),
    )
    r.client(
        C(
            S("openssl"),
            S("openssl"),
            4519,
            "1.3",
            "failed",
            "no_shared_cipher",
            "no common group: client X25519 only, server P-384 only",
            server_alert="handshake_failure",
        ),
        ossl_client(4519, "1.3", extra=["-groups", "X25519"]),
    )
    r.client(
        C(
            S("python"),
            S("openssl"),
            4513,
            "1.2",
            "failed",
            "no_shared_cipher",
            "python client restricted to AES256-GCM-SHA384 (RSA kx)",
            server_alert="handshake_failure",
        ),
        [
            SYS_PY,
            "-c",
            "import socket,ssl;c=ssl.create_default_context();c.maximum_version=ssl.TLSVersion.TLSv1_2;"
            "c.set_ciphers('AES256-GCM-SHA384');s=socket.create_connection(('127.0.0.1',4513))\ntry:\n"
            " c.wrap_socket(s,server_hostname='server.test')\nexcept Exception as e: print(repr(e))",
        ],
        stdin=None,
    )


@scenario("unrecognized-name", "SNI for a name the server does not serve (s_server -servername_fatal)", [4515])
def _(r: Run):
    r.server(
        ossl_server(
            4515,
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
        4515,
    )
    r.client(
        C(
            S("openssl"),
            S("openssl"),
            4515,
            "1.3",
            "failed",
            "unrecognized_name",
            "SNI wrong.test",
            server_alert="unrecognized_name",
        ),
        ossl_client(4515, "1.3", sni="wrong.test"),
    )
    r.client(
        C(
            S("curl"),
            S("openssl"),
            4515,
            "1.2",
            "failed",
            "unrecognized_name",
            "SNI wrong.test",
            server_alert="unrecognized_name",
        ),
        curl_client(4515, "1.2", sni="wrong.test"),
    )


@scenario("no-application-protocol", "ALPN mismatch: Node.js and GnuTLS servers only speak h2", [4516, 4517])
def _(r: Run):
    r.server(
        [
            "node",
            GEN / "node_tls.js",
            "server",
            "--port",
            4516,
            "--cert",
            pki("server-chain.pem"),
            "--key",
            pki("server.key"),
            "--alpn",
            "h2",
            "--count",
            2,
        ],
        4516,
    )
    r.server(
        [
            "gnutls-serv",
            "--http",
            "-p",
            4517,
            "--x509certfile",
            pki("server-chain.pem"),
            "--x509keyfile",
            pki("server.key"),
            "--alpn",
            "h2",
            "--alpn-fatal",
        ],
        4517,
    )
    r.client(
        C(
            S("curl"),
            S("node"),
            4516,
            "1.3",
            "failed",
            "no_application_protocol",
            "curl --http1.1 offers only http/1.1",
            server_alert="no_application_protocol",
        ),
        curl_client(4516, "1.3", extra=["--http1.1"]),
    )
    r.client(
        C(
            S("openssl"),
            S("node"),
            4516,
            "1.2",
            "failed",
            "no_application_protocol",
            "s_client -alpn http/1.1",
            server_alert="no_application_protocol",
        ),
        ossl_client(4516, "1.2", extra=["-alpn", "http/1.1"]),
    )
    r.client(
        C(
            S("openssl"),
            S("gnutls") + " gnutls-serv --alpn-fatal",
            4517,
            "1.3",
            "failed",
            "no_application_protocol",
            "s_client -alpn http/1.1",
            server_alert="no_application_protocol",
        ),
        ossl_client(4517, "1.3", extra=["-alpn", "http/1.1"]),
    )


@scenario("inappropriate-fallback", "TLS_FALLBACK_SCSV from a TLS 1.2 client to a TLS 1.3 server", [4518])
def _(r: Run):
    r.server(ossl_server(4518), 4518)
    r.client(
        C(
            S("openssl"),
            S("openssl"),
            4518,
            "1.2",
            "failed",
            "inappropriate_fallback",
            "s_client -tls1_2 -fallback_scsv",
            server_alert="inappropriate_fallback",
        ),
        ossl_client(4518, "1.2", extra=["-fallback_scsv"]),
    )


@scenario(
    "server-rejected-hello",
    "Server alerts to the ClientHello: decode_error (corrupted hello), "
    "illegal_parameter (TLS 1.3 external PSK with the wrong key)",
    [4520, 4521],
)
def _(r: Run):
    r.server(ossl_server(4520), 4520)
    r.server(
        [
            "openssl",
            "s_server",
            "-accept",
            f"{LO4}:4521",
            "-nocert",
            "-tls1_3",
            "-psk_identity",
            "client1",
            "-psk",
            "00112233445566778899aabbccddeeff",
        ],
        4521,
    )
    r.client(
        C(
            S("python") + " (its ClientHello, extensions length corrupted)",
            S("openssl"),
            4520,
            "1.3",
            "failed",
            "server_rejected_hello",
            "a real ClientHello from Python's ssl module with its extensions length +1 (the only edited bytes "
            "in these samples)",
            server_alert="decode_error",
        ),
        [SYS_PY, GEN / "pytls.py", "malformed-hello", "--port", 4520, "--cafile", pki("root.pem")],
        stdin=None,
    )
    r.client(
        C(
            S("openssl") + " -psk (wrong key)",
            S("openssl") + " -psk",
            4521,
            "1.3",
            "failed",
            "server_rejected_hello",
            "external PSK, same identity, different key: the binder does not verify",
            server_alert="illegal_parameter",
        ),
        [
            "openssl",
            "s_client",
            "-connect",
            "127.0.0.1:4521",
            "-tls1_3",
            "-psk_identity",
            "client1",
            "-psk",
            "ffeeddccbbaa99887766554433221100",
        ],
    )


# ========================= certificate failures ===========================
def stack_client(r: Run, stack: str, ver: str, port: int, sni: str = "server.test") -> tuple[list, dict]:
    """The command (and r.client keyword arguments) of one client stack asking for `sni` on `port`.
    An IP literal as `sni` means: connect by address, send no SNI, check the address against the IP SANs."""
    env = {"SSLKEYLOGFILE": str(r.keylog)}
    default = sni == "server.test"
    if stack == "openssl":
        if is_ip(sni):
            cmd = ossl_client(port, ver, keylog=r.keylog, verify=False)
            i = cmd.index("-servername")
            cmd[i : i + 2] = ["-noservername", "-CAfile", pki("root.pem"), "-verify_return_error", "-verify_ip", sni]
            return cmd, {}
        return ossl_client(port, ver, sni=sni, keylog=r.keylog), {}
    if stack == "curl":
        return curl_client(port, ver, sni=sni), {"env": env}
    if stack == "python":
        return py_client(port, ver, keylog=r.keylog, extra=None if default else ["--sni", sni]), {"stdin": None}
    if stack == "gnutls":
        return gnutls_client(port, ver, sni=sni), {"env": env}
    if stack == "node":
        extra = None if default else ["--sni", "-" if is_ip(sni) else sni]
        return node_client(port, ver, keylog=r.keylog, extra=extra), {"stdin": None}
    if stack == "java":
        return java_client(port, ver, sni=sni), {"stdin": None}
    if stack == "go":
        return go_client(port, ver, keylog=r.keylog, extra=None if default else ["-sni", sni]), {"stdin": None}
    raise ValueError(stack)


ALL_CLIENTS = (
    "openssl13",
    "openssl12",
    "curl13",
    "curl12",
    "python13",
    "python12",
    "gnutls13",
    "gnutls12",
    "node13",
    "node12",
    "java13",
    "java12",
    "go13",
    "go12",
)


def cert_matrix(
    r: Run,
    port: int,
    cause: str,
    ossl_alert: str | None,
    note: str = "",
    clients: tuple = ALL_CLIENTS,
    server: str = "",
    accepted_by: tuple = (),
    sni: str = "server.test",
    row: str = "",
    notes: dict[str, str] | None = None,
) -> None:
    """One connection per client stack and TLS version against the server already started on `port`.
    Stacks in `accepted_by` are known to accept the certificate: their rows are intended established.
    `sni`: the name the clients ask for (an IP literal: connect by IP without SNI); `row`: the row label
    of these connections in the README's certificate table; `notes`: per-stack notes."""
    srv = server or S("openssl") + " s_server -www"
    for c in clients:
        stack, ver = c[:-2], c[-2] + "." + c[-1]
        ex = {}
        if stack == "openssl" and ossl_alert:
            ex["client_alert"] = ossl_alert
        key = f"{stack} {ver}"
        if stack in accepted_by:
            conn = C(
                S(stack),
                srv,
                port,
                ver,
                "established",
                None,
                (notes or {}).get(stack)
                or f"{VERSIONS_OF[stack]} accepts this certificate (the defect is '{cause}' only for stricter clients)",
            )
        elif cause is None:
            conn = C(S(stack), srv, port, ver, "established", None, (notes or {}).get(stack, note))
        else:
            conn = C(S(stack), srv, port, ver, "failed", cause, (notes or {}).get(stack, note), **ex)
        conn.matrix_key = key
        conn.matrix_row = row
        cmd, kw = stack_client(r, stack, ver, port, sni)
        r.client(conn, cmd, **kw)


@scenario("cert-expired", "Expired server certificate, 7 client stacks x TLS 1.3/1.2", [4601])
def _(r: Run):
    r.server(ossl_server(4601, "expired", keylog=r.keylog), 4601)
    cert_matrix(r, 4601, "cert_expired", "certificate_expired")


@scenario("cert-notyetvalid", "Not-yet-valid server certificate, 7 client stacks x TLS 1.3/1.2", [4602], nano=True)
def _(r: Run):
    r.server(ossl_server(4602, "notyetvalid", keylog=r.keylog), 4602)
    cert_matrix(r, 4602, "cert_not_yet_valid", "bad_certificate")


@scenario(
    "cert-wronghost",
    "Certificate for other.test, clients ask for server.test (SLL)",
    [4603],
    iface="any",
    linktype="LINUX_SLL",
)
def _(r: Run):
    r.server(ossl_server(4603, "wronghost", keylog=r.keylog), 4603)
    cert_matrix(r, 4603, "cert_hostname_mismatch", None)


@scenario("cert-selfsigned", "Self-signed server certificate (pcapng)", [4604], pcapng=True)
def _(r: Run):
    r.server(ossl_server(4604, "selfsigned", None, keylog=r.keylog), 4604)
    cert_matrix(r, 4604, "cert_self_signed", "unknown_ca")


@scenario(
    "cert-untrusted-root",
    "Chain to a root that is not trusted (server sends leaf + that root) (SLL2)",
    [4605],
    iface="any",
    linktype="LINUX_SLL2",
)
def _(r: Run):
    r.server(ossl_server(4605, "untrusted", "unknown-root.pem", keylog=r.keylog), 4605)
    cert_matrix(r, 4605, "cert_untrusted_root", "unknown_ca")


@scenario("cert-missing-intermediate", "Server sends only the leaf; the intermediate is missing", [4606])
def _(r: Run):
    r.server(ossl_server(4606, "server", None, keylog=r.keylog), 4606)
    cert_matrix(
        r,
        4606,
        "cert_chain_incomplete",
        "unknown_ca",
        "the leaf is the same good certificate other samples serve with its intermediate",
    )


@scenario(
    "cert-weak-rsa1024",
    "RSA-1024 leaf: rejected by OpenSSL-based clients at SECLEVEL 2, accepted by others",
    [4607],
    pcapng=True,
)
def _(r: Run):
    r.server(ossl_server(4607, "weak-rsa1024", keylog=r.keylog, extra=["-cipher", "DEFAULT:@SECLEVEL=0"]), 4607)
    cert_matrix(
        r,
        4607,
        "cert_weak",
        "bad_certificate",
        "Debian's OpenSSL (SECLEVEL 2: RSA >= 2048) rejects the 1024-bit key: s_client, curl and Python",
        accepted_by=("gnutls", "node", "java", "go"),
    )


@scenario("cert-revoked", "Stapled OCSP response says revoked: GnuTLS and curl --cert-status reject it", [4608])
def _(r: Run):
    r.server(ossl_server(4608, "revoked", keylog=r.keylog, extra=["-status_file", pki("revoked-ocsp.der")]), 4608)
    env = {"SSLKEYLOGFILE": str(r.keylog)}
    for ver in ("1.3", "1.2"):
        r.client(
            C(
                S("gnutls"),
                S("openssl") + " s_server -status_file",
                4608,
                ver,
                "failed",
                "cert_revoked",
                "GnuTLS checks the stapled OCSP response",
            ),
            gnutls_client(4608, ver),
            env=env,
        )
    for ver in ("1.3", "1.2"):
        r.client(
            C(
                S("curl") + " --cert-status",
                S("openssl") + " s_server -status_file",
                4608,
                ver,
                "failed",
                "cert_revoked",
                "curl checks the staple after the handshake",
            ),
            curl_client(4608, ver, extra=["--cert-status"]),
            env=env,
        )


@scenario(
    "cert-expired-intermediate",
    "Valid leaf whose intermediate (sent by the server) has expired, 7 client stacks x TLS 1.3/1.2",
    [4609],
)
def _(r: Run):
    r.server(ossl_server(4609, "expired-intermediate-leaf", "intermediate-expired.pem", keylog=r.keylog), 4609)
    cert_matrix(
        r,
        4609,
        "cert_expired",
        "certificate_expired",
        "the leaf is inside its validity period; the intermediate CA E1 the server sends (and the leaf needs) "
        "expired 20 days before the PKI was made",
    )


SHA1_NOTE = "the leaf's signature is ecdsa-with-SHA1 (weak); its key is a good EC P-256"


@scenario(
    "cert-sha1-leaf",
    "Leaf signed with SHA-1 by the intermediate: rejected by OpenSSL (any SECLEVEL > 0), GnuTLS, Go; Java accepts",
    [4610],
)
def _(r: Run):
    # the server needs SECLEVEL 0 to load a certificate with a SHA-1 signature ("ca md too weak")
    r.server(ossl_server(4610, "sha1-leaf", keylog=r.keylog, extra=["-cipher", "DEFAULT:@SECLEVEL=0"]), 4610)
    cert_matrix(
        r,
        4610,
        "cert_weak",
        "bad_certificate",
        SHA1_NOTE,
        accepted_by=("java",),
        notes={
            "openssl": SHA1_NOTE + "; OpenSSL 3.0 refuses it at security level 1 and 2 "
            "(X509_V_ERR_CA_MD_TOO_WEAK, 'CA signature digest algorithm too weak')",
            "node": SHA1_NOTE + "; Node.js (OpenSSL 3.0) refuses it and sends no alert",
            "go": SHA1_NOTE + "; Go refuses SHA-1 signatures since 1.18 (GODEBUG=x509sha1=1 overrides)",
            "java": SHA1_NOTE + "; Java 17 accepts it: jdk.certpath.disabledAlgorithms only bans SHA-1 in chains "
            "to the JDK's own roots (jdkCA), and this root is a private one",
        },
    )
    srv = S("openssl") + " s_server -www"
    r.client(
        C(
            S("openssl") + " -auth_level 0",
            srv,
            4610,
            "1.3",
            "established",
            None,
            SHA1_NOTE + "; s_client with -auth_level 0 lets the SHA-1 signature through",
        ),
        ossl_client(4610, "1.3", keylog=r.keylog, extra=["-auth_level", "0"]),
    )
    r.client(
        C(
            S("go") + " GODEBUG=x509sha1=1",
            srv,
            4610,
            "1.3",
            "established",
            None,
            SHA1_NOTE + "; GODEBUG=x509sha1=1 re-enables SHA-1 signatures in Go",
        ),
        go_client(4610, "1.3", keylog=r.keylog),
        env={"GODEBUG": "x509sha1=1"},
        stdin=None,
    )


NOSAN_ACCEPT = (
    "accepts: the certificate has no subjectAltName, so the host name check falls back to the subject CN "
    "(server.test), which matches"
)


@scenario(
    "cert-no-san",
    "Leaf with CN=server.test and no subjectAltName: only Go rejects it, the others fall back to the CN",
    [4611],
)
def _(r: Run):
    r.server(py_server(4611, "nosan-chain.pem", "nosan.key", len(ALL_CLIENTS), r.keylog), 4611)
    cert_matrix(
        r,
        4611,
        "cert_hostname_mismatch",
        None,
        "Go ignores the subject CN since 1.15: 'x509: certificate relies on legacy Common Name field, use SANs "
        "instead'; SNI server.test matches no subjectAltName (there is none)",
        accepted_by=("openssl", "curl", "python", "gnutls", "node", "java"),
        server=S("python") + " server (gen/pytls.py)",
        notes={
            "openssl": "OpenSSL (X509_check_host) " + NOSAN_ACCEPT,
            "curl": "curl (OpenSSL backend) " + NOSAN_ACCEPT,
            "python": "Python ssl (hostname_checks_common_name defaults to True) " + NOSAN_ACCEPT,
            "gnutls": "GnuTLS " + NOSAN_ACCEPT,
            "node": "Node.js tls.checkServerIdentity " + NOSAN_ACCEPT,
            "java": "Java (HostnameChecker) " + NOSAN_ACCEPT,
        },
    )


WILD_CLIENTS = ("openssl13", "openssl12", "curl13", "python13", "gnutls13", "node13", "node12", "java13", "go13")


@scenario(
    "cert-wildcard",
    "Leaf for *.wild.test: SNI a.wild.test matches; a.b.wild.test and wild.test do not",
    [4612],
)
def _(r: Run):
    r.server(py_server(4612, "wildcard-chain.pem", "wildcard.key", 3 * len(WILD_CLIENTS), r.keylog), 4612)
    cert_matrix(
        r,
        4612,
        None,
        None,
        "SNI a.wild.test: the wildcard *.wild.test covers exactly one label",
        clients=WILD_CLIENTS,
        server=S("python") + " server (gen/pytls.py)",
        sni="a.wild.test",
        row="SNI a.wild.test",
    )
    for name, why in (
        ("a.b.wild.test", "a wildcard covers one label only: *.wild.test does not match a.b.wild.test"),
        ("wild.test", "*.wild.test does not match the bare parent name wild.test"),
    ):
        cert_matrix(
            r,
            4612,
            "cert_hostname_mismatch",
            "bad_certificate",
            f"SNI {name}: {why}",
            clients=WILD_CLIENTS,
            server=S("python") + " server (gen/pytls.py)",
            sni=name,
            row=f"SNI {name}",
        )


@scenario(
    "cert-ip-san",
    "Clients connect to 127.0.0.1 without SNI: leaf with IP SAN 127.0.0.1 accepted, leaf without IP SAN rejected",
    [4613, 4614],
)
def _(r: Run):
    r.server(py_server(4613, "ip-only-chain.pem", "ip-only.key", len(ALL_CLIENTS), r.keylog), 4613)
    r.server(py_server(4614, "dns-only-chain.pem", "dns-only.key", len(ALL_CLIENTS), r.keylog), 4614)
    cert_matrix(
        r,
        4613,
        None,
        None,
        "connects to 127.0.0.1 without SNI and checks the address: the leaf's only SAN is IP:127.0.0.1",
        server=S("python") + " server (gen/pytls.py)",
        sni=LO4,
        row="IP SAN 127.0.0.1 (port 4613)",
    )
    cert_matrix(
        r,
        4614,
        "cert_hostname_mismatch",
        "bad_certificate",
        "connects to 127.0.0.1 without SNI and checks the address: the leaf has DNS:server.test and no IP SAN",
        server=S("python") + " server (gen/pytls.py)",
        sni=LO4,
        row="no IP SAN (port 4614)",
    )


@scenario(
    "cert-chain-order",
    "Server sends leaf, root, intermediate (out of order) and an unrelated certificate: every client accepts",
    [4615],
)
def _(r: Run):
    r.server(py_server(4615, "disordered-chain.pem", "server.key", len(ALL_CLIENTS), r.keylog), 4615)
    cert_matrix(
        r,
        4615,
        None,
        None,
        "Certificate message: leaf server.test, the root, the intermediate, then unrelated.test (issued by the "
        "untrusted Unknown Root CA); the client builds leaf -> intermediate -> root and ignores the rest",
        server=S("python") + " server (gen/pytls.py)",
    )


PURPOSE_EKU = "the leaf (server.test, valid dates, signed by the intermediate) has extendedKeyUsage clientAuth only"
PURPOSE_KU = (
    "the leaf (server.test, valid dates, EKU serverAuth, signed by the intermediate) has basicConstraints CA:TRUE "
    "and keyUsage keyCertSign only: no digitalSignature/keyEncipherment, so its key may not sign or decrypt a handshake"
)


PURPOSE_EKU_ACCEPT: tuple = ()  # every stack checks the EKU
PURPOSE_EKU_NOTES = {
    "openssl": "OpenSSL: X509_V_ERR_INVALID_PURPOSE (26, 'unsuitable certificate purpose'), alert unsupported_certificate",
    "curl": "curl (OpenSSL backend): '(60) SSL certificate problem: unsuitable certificate purpose'",
    "python": "Python ssl (OpenSSL): 'certificate verify failed: unsuitable certificate purpose'",
    "gnutls": "GnuTLS: 'The certificate chain does not match the intended purpose', alert bad_certificate",
    "node": "Node.js: INVALID_PURPOSE 'unsuitable certificate purpose', closes without an alert",
    "java": "Java: 'Extended key usage does not permit use for TLS server authentication', alert certificate_unknown",
    "go": "Go: 'x509: certificate specifies an incompatible key usage', alert bad_certificate",
}
PURPOSE_KU_ACCEPT: tuple = ("go",)  # Go's x509 checks the EKU only, crypto/tls never looks at keyUsage
PURPOSE_KU_NOTES = {
    "openssl": "OpenSSL: X509_V_ERR_INVALID_PURPOSE (26, 'unsuitable certificate purpose': the sslserver purpose "
    "needs digitalSignature, keyEncipherment or keyAgreement when keyUsage is present), alert unsupported_certificate",
    "curl": "curl (OpenSSL backend): '(60) SSL certificate problem: unsuitable certificate purpose'",
    "python": "Python ssl (OpenSSL): 'certificate verify failed: unsuitable certificate purpose'",
    "gnutls": "GnuTLS: the chain itself verifies ('The certificate is trusted'), then the handshake stops on "
    "'Peer's certificate does not allow digital signatures. Key usage violation', alert internal_error",
    "node": "Node.js: INVALID_PURPOSE 'unsuitable certificate purpose', closes without an alert",
    "java": "Java: 'KeyUsage does not allow digital signatures', alert certificate_unknown",
    "go": "Go accepts: its x509 verification checks extendedKeyUsage only, and neither it nor crypto/tls looks at "
    "keyUsage or at CA:TRUE on the leaf",
}


@scenario(
    "cert-invalid-purpose",
    "Leaf unusable by a TLS server: EKU clientAuth only (port 4618); CA:TRUE + keyUsage keyCertSign only (port 4619)",
    [4618, 4619],
)
def _(r: Run):
    n = len(ALL_CLIENTS)
    r.server(py_server(4618, "eku-clientauth-chain.pem", "eku-clientauth.key", n, r.keylog), 4618)
    # RSA key: an OpenSSL server will not pick an EC key without digitalSignature for TLS 1.2 (no shared cipher)
    r.server(py_server(4619, "ca-certsign-leaf-chain.pem", "ca-certsign-leaf.key", n, r.keylog), 4619)
    srv = S("python") + " server (gen/pytls.py)"
    cert_matrix(
        r,
        4618,
        "cert_invalid",
        "unsupported_certificate",
        PURPOSE_EKU,
        server=srv,
        row="EKU clientAuth only (port 4618)",
        accepted_by=PURPOSE_EKU_ACCEPT,
        notes={k: PURPOSE_EKU + "; " + v for k, v in PURPOSE_EKU_NOTES.items()},
    )
    cert_matrix(
        r,
        4619,
        "cert_invalid",
        "unsupported_certificate",
        PURPOSE_KU,
        server=srv,
        row="CA:TRUE, keyUsage keyCertSign only (port 4619)",
        accepted_by=PURPOSE_KU_ACCEPT,
        notes={k: PURPOSE_KU + "; " + v for k, v in PURPOSE_KU_NOTES.items()},
    )


@scenario(
    "ocsp-stapled-good-revoked",
    "Stapled OCSP: good response (port 4616) and revoked response (port 4617); who checks the staple",
    [4616, 4617],
)
def _(r: Run):
    import pki as pkimod  # gen/ is on sys.path (prepare)

    pkimod.staples(PKI)  # fresh responses: thisUpdate an hour ago, nextUpdate in 7 days
    # one cipher suite per version: the -www status page lists them, and shrinks from 5 to 2 KB
    one = ["-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256", "-ciphersuites", "TLS_AES_128_GCM_SHA256"]
    for port, leaf, staple in ((4616, "server", "ocsp-good-staple.der"), (4617, "revoked", "ocsp-revoked-staple.der")):
        r.server(ossl_server(port, leaf, keylog=r.keylog, extra=["-status_file", pki(staple), *one]), port)
    env = {"SSLKEYLOGFILE": str(r.keylog)}
    srv = S("openssl") + " s_server -www -status_file"
    good, revoked = "good staple (port 4616)", "revoked staple (port 4617)"

    def conn(client, port, ver, outcome, cause, note, key, row, **ex):
        c = C(client, srv, port, ver, outcome, cause, note, **ex)
        c.matrix_key, c.matrix_row = key, row
        return c

    # good staple: every checking client in TLS 1.3, GnuTLS also in TLS 1.2 (CertificateStatus in clear);
    # revoked staple: the checking clients in both versions, and clients that ignore or never ask for it
    for port, row, st in ((4616, good, "good"), (4617, revoked, "revoked")):
        bad = st == "revoked"
        for ver in ("1.3", "1.2") if bad else ("1.3",):
            r.client(
                conn(
                    S("openssl") + " -status",
                    port,
                    ver,
                    "established",
                    None,
                    f"s_client -status asks for the staple and prints it (Cert Status: {st}) but does not act on it"
                    + (": it goes on and exchanges data" if bad else ""),
                    f"openssl {ver}",
                    row,
                ),
                ossl_client(port, ver, keylog=r.keylog, extra=["-status"]),
            )
        for ver in ("1.3", "1.2") if bad else ("1.3",):
            r.client(
                conn(
                    S("curl") + " --cert-status",
                    port,
                    ver,
                    "failed" if bad else "established",
                    "cert_revoked" if bad else None,
                    "curl --cert-status checks the staple after the handshake"
                    + (" and hangs up: 'SSL certificate revocation reason: keyCompromise'" if bad else ": good"),
                    f"curl {ver}",
                    row,
                ),
                curl_client(port, ver, extra=["--cert-status"]),
                env=env,
            )
        for ver in ("1.3", "1.2"):
            r.client(
                conn(
                    S("gnutls") + " --ocsp",
                    port,
                    ver,
                    "failed" if bad else "established",
                    "cert_revoked" if bad else None,
                    "GnuTLS checks the stapled response during the handshake"
                    + (": 'The certificate was revoked via OCSP'" if bad else ": good"),
                    f"gnutls {ver}",
                    row,
                ),
                gnutls_client(port, ver, extra=["--ocsp"]),
                env=env,
            )
        for ver in ("1.3", "1.2") if bad else ("1.3",):
            r.client(
                conn(
                    S("go"),
                    port,
                    ver,
                    "established",
                    None,
                    "Go asks for the staple (status_request) and keeps it in ConnectionState but does not check it"
                    + (": the revoked response does not stop it" if bad else ""),
                    f"go {ver}",
                    row,
                ),
                go_client(port, ver, keylog=r.keylog),
                stdin=None,
            )
    for stack, cmd, why in (
        ("python", py_client(4617, "1.3", keylog=r.keylog), "Python's ssl does not ask for a staple"),
        ("node", node_client(4617, "1.3", keylog=r.keylog), "Node.js does not ask for a staple unless requestOCSP"),
        (
            "java",
            java_client(4617, "1.3"),
            "Java asks for the staple (status_request) but checks no revocation by default; with "
            "-Dcom.sun.net.ssl.checkRevocation=true it refuses even the good chain here ('Certificate does not "
            "specify OCSP responder', for the unstapled intermediate)",
        ),
    ):
        r.client(
            conn(
                S(stack),
                4617,
                "1.3",
                "established",
                None,
                why + ": the revoked leaf is accepted",
                f"{stack} 1.3",
                revoked,
            ),
            cmd,
            stdin=None,
        )


# ================================ mTLS ====================================
@scenario(
    "mtls-client-cert-missing",
    "Server requires a client certificate; clients send none or an empty one (SLL)",
    [4701, 4702],
    iface="any",
    linktype="LINUX_SLL",
)
def _(r: Run):
    req = ["-Verify", "1", "-CAfile", pki("client-ca.pem"), "-verify_return_error"]
    r.server(ossl_server(4701, keylog=r.keylog, extra=req), 4701)
    r.server(
        [
            BUILD / "gotls",
            "server",
            "-addr",
            f"{LO4}:4702",
            "-cert",
            pki("server-chain.pem"),
            "-key",
            pki("server.key"),
            "-client-ca",
            pki("client-ca.pem"),
            "-count",
            2,
            "-keylog",
            r.keylog,
        ],
        4702,
    )
    r.client(
        C(
            S("openssl"),
            S("openssl") + " s_server -Verify 1 -verify_return_error",
            4701,
            "1.2",
            "failed",
            "client_cert_missing",
            "no client certificate configured",
            server_alert="handshake_failure",
        ),
        ossl_client(4701, "1.2", keylog=r.keylog),
    )
    r.client(
        C(
            S("openssl"),
            S("openssl") + " s_server -Verify 1 -verify_return_error",
            4701,
            "1.3",
            "failed",
            "client_cert_missing",
            "no client certificate configured",
            server_alert="certificate_required",
        ),
        ossl_client(4701, "1.3", keylog=r.keylog),
    )
    r.client(
        C(
            S("java") + " (keystore: cert from the wrong CA)",
            S("openssl") + " s_server -Verify 1 -verify_return_error",
            4701,
            "1.2",
            "failed",
            "client_cert_missing",
            "JSSE sends an empty Certificate because its only key does not match the server's CA names",
            server_alert="handshake_failure",
        ),
        java_client(4701, "1.2", keystore="java-client-wrongca.p12"),
        stdin=None,
    )
    r.client(
        C(
            S("java") + " (keystore: cert from the wrong CA)",
            S("openssl") + " s_server -Verify 1 -verify_return_error",
            4701,
            "1.3",
            "failed",
            "client_cert_missing",
            "empty Certificate in TLS 1.3",
        ),
        java_client(4701, "1.3", keystore="java-client-wrongca.p12"),
        stdin=None,
    )
    r.client(
        C(
            S("go") + " (cert from the wrong CA)",
            S("go") + " RequireAndVerifyClientCert",
            4702,
            "1.3",
            "failed",
            "client_cert_missing",
            "Go sends an empty Certificate when none matches the CA names",
        ),
        go_client(
            4702,
            "1.3",
            keylog=r.keylog,
            extra=["-cert", pki("client-wrongca-chain.pem"), "-key", pki("client-wrongca.key")],
        ),
        stdin=None,
    )
    r.client(
        C(
            S("go"),
            S("go") + " RequireAndVerifyClientCert",
            4702,
            "1.2",
            "failed",
            "client_cert_missing",
            "no client certificate configured",
        ),
        go_client(4702, "1.2", keylog=r.keylog),
        stdin=None,
    )


@scenario(
    "mtls-client-cert-rejected",
    "Client certificate from the wrong CA rejected by the server; one good mTLS connection for contrast (pcapng)",
    [4703],
    pcapng=True,
)
def _(r: Run):
    r.server(
        ossl_server(
            4703, keylog=r.keylog, extra=["-Verify", "1", "-CAfile", pki("client-ca.pem"), "-verify_return_error"]
        ),
        4703,
    )
    good = ["-cert", pki("client.pem"), "-key", pki("client.key")]
    bad = ["-cert", pki("client-wrongca-chain.pem"), "-key", pki("client-wrongca.key")]
    r.client(
        C(
            S("openssl"),
            S("openssl") + " s_server -Verify 1 -verify_return_error",
            4703,
            "1.3",
            "established",
            None,
            "good client certificate (alice, issued by the client CA)",
        ),
        ossl_client(4703, "1.3", keylog=r.keylog, extra=good),
    )
    for ver in ("1.2", "1.3"):
        r.client(
            C(
                S("openssl"),
                S("openssl") + " s_server -Verify 1 -verify_return_error",
                4703,
                ver,
                "failed",
                "client_cert_rejected",
                "client certificate mallory from the Unknown Root CA",
                server_alert="unknown_ca",
            ),
            ossl_client(4703, ver, keylog=r.keylog, extra=bad),
        )
    r.client(
        C(
            S("python"),
            S("openssl") + " s_server -Verify 1 -verify_return_error",
            4703,
            "1.3",
            "failed",
            "client_cert_rejected",
            "client certificate mallory",
            server_alert="unknown_ca",
        ),
        py_client(
            4703,
            "1.3",
            keylog=r.keylog,
            extra=["--cert", pki("client-wrongca-chain.pem"), "--key", pki("client-wrongca.key")],
        ),
        stdin=None,
    )
    r.client(
        C(
            S("curl"),
            S("openssl") + " s_server -Verify 1 -verify_return_error",
            4703,
            "1.2",
            "failed",
            "client_cert_rejected",
            "client certificate mallory",
            server_alert="unknown_ca",
        ),
        curl_client(4703, "1.2", extra=["--cert", pki("client-wrongca-chain.pem"), "--key", pki("client-wrongca.key")]),
        env={"SSLKEYLOGFILE": str(r.keylog)},
    )


# ================================ late ====================================
@scenario("server-aborted", "TLS 1.2 PSK with mismatched keys: the server rejects the client's Finished", [4801])
def _(r: Run):
    r.server(
        [
            "openssl",
            "s_server",
            "-accept",
            f"{LO4}:4801",
            "-nocert",
            "-tls1_2",
            "-cipher",
            "PSK-AES128-GCM-SHA256",
            "-psk_identity",
            "client1",
            "-psk",
            "00112233445566778899aabbccddeeff",
            "-keylogfile",
            r.keylog,
        ],
        4801,
    )
    r.client(
        C(
            S("openssl") + " -psk (wrong key)",
            S("openssl") + " -psk",
            4801,
            "1.2",
            "failed",
            "server_aborted",
            "the ClientKeyExchange carries the identity, the keys differ, so the server cannot decrypt the "
            "client's Finished",
            server_alert="bad_record_mac",
        ),
        [
            "openssl",
            "s_client",
            "-connect",
            "127.0.0.1:4801",
            "-tls1_2",
            "-cipher",
            "PSK-AES128-GCM-SHA256",
            "-psk_identity",
            "client1",
            "-psk",
            "ffeeddccbbaa99887766554433221100",
        ],
    )


@scenario("client-aborted", "Clients that reset after the server's flight (valid certificate, no alert)", [4802])
def _(r: Run):
    r.server(ossl_server(4802, keylog=r.keylog), 4802)
    for ver in ("1.2", "1.3"):
        r.client(
            C(
                S("python") + " (ssl MemoryBIO)",
                S("openssl") + " s_server -www",
                4802,
                ver,
                "failed",
                "client_aborted",
                "reads and validates the server flight, then resets instead of sending its second flight "
                "(like a pinning failure)",
                client_rst=True,
            ),
            [
                SYS_PY,
                GEN / "pytls.py",
                "abort-client",
                "--port",
                4802,
                "--cafile",
                pki("root.pem"),
                "--tls-max",
                ver,
                "--keylog",
                r.keylog,
            ],
            stdin=None,
        )
    r.client(
        C(
            S("python") + " (ssl MemoryBIO)",
            S("openssl") + " s_server -www",
            4802,
            "1.3",
            "failed",
            "client_aborted",
            "same, closing with a FIN instead of an RST",
        ),
        [
            SYS_PY,
            GEN / "pytls.py",
            "abort-client",
            "--port",
            4802,
            "--cafile",
            pki("root.pem"),
            "--tls-max",
            "1.3",
            "--how",
            "fin",
            "--keylog",
            r.keylog,
        ],
        stdin=None,
    )


# --------------------------------------------------------------------------
# Running one scenario
# --------------------------------------------------------------------------
def run_scenario(sc: Scenario) -> Capture:
    """Run a scenario; run it again (up to twice) if the kernel dropped packets."""
    for _attempt in range(3):
        cap = _run_scenario(sc)
        m = re.search(r"(\d+) packets dropped by kernel", cap.how.get("tcpdump_stats", ""))
        if not m or int(m.group(1)) == 0:
            return cap
        log(f"  !! {cap.how['tcpdump_stats']}: running {sc.name} again")
        time.sleep(1)
    raise RuntimeError(f"{sc.name}: tcpdump keeps dropping packets")


def _run_scenario(sc: Scenario) -> Capture:
    out = HERE / f"{sc.name}{'.pcapng' if sc.pcapng else '.pcap'}"
    raw = BUILD / f"{sc.name}.raw.pcap"
    for p in (out, raw):
        if p.exists():
            p.unlink()
    cap = Capture(file=out.name, title=sc.title, notes=sc.notes)
    r = Run(sc.name, cap, sc.ports)
    hostf = " or ".join(f"host {h}" for h in sc.hosts)
    bpf = f"({hostf}) and ({' or '.join(f'tcp port {p}' for p in sc.ports)})"
    td = Tcpdump(raw, sc.iface, bpf, sc.nano, sc.linktype, sc.snaplen)
    try:
        sc.body(r)
    finally:
        msg = td.stop()
        r.stop_servers()
    post = []
    if sc.pcapng:
        run(["editcap", "-F", "pcapng", str(raw), str(out)])
        post.append(f"editcap -F pcapng {raw.name} {out.name}")
    else:
        shutil.copyfile(raw, out)
    cap.how = {
        "tcpdump": pretty(shlex.join(td.cmd).replace(str(raw), raw.name if sc.pcapng else out.name)),
        "servers": r.servers,
        "clients": "one command per connection: see connections[].client_command",
        "post_processing": post,
        "tcpdump_stats": " / ".join(ln for ln in msg.splitlines() if "packets" in ln),
    }
    if r.configs:
        cap.how["server_configs"] = r.configs
    if r.keylog.exists() and r.keylog.stat().st_size:
        KEYLOGS.mkdir(exist_ok=True)
        lines = list(dict.fromkeys(r.keylog.read_text().splitlines()))
        (KEYLOGS / f"{sc.name}.keys").write_text("\n".join(lines) + "\n")
        cap.keylog = f"keylogs/{sc.name}.keys"
    if sc.decode_as:
        cap.how["tshark_decode_as"] = [f"tcp.port=={p},{proto}" for p, proto in sorted(sc.decode_as.items())]
    annotate(cap, out, sc.tls_ports if sc.tls_ports is not None else sc.ports, sc.ports, sc.decode_as)
    return cap


def plain_stream_index(path: Path) -> dict[tuple[int, int], int]:
    """(client port, server port) -> tcp.stream as a plain `tshark -r` numbers it (first SYN of each stream)."""
    r = subprocess.run(
        [
            "tshark",
            "-r",
            str(path),
            "-Y",
            "tcp.flags.syn == 1 && tcp.flags.ack == 0",
            "-T",
            "fields",
            "-e",
            "tcp.stream",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
        ],
        capture_output=True,
        text=True,
    )
    res: dict[tuple[int, int], int] = {}
    for line in r.stdout.splitlines():
        f = line.split("\t")
        if len(f) == 3 and all(x.isdigit() for x in f):
            res.setdefault((int(f[1]), int(f[2])), int(f[0]))
    return res


def annotate(
    cap: Capture, path: Path, tls_ports: list[int], server_ports: list[int], decode_as: dict[int, str] | None = None
) -> None:
    """Fill link type, sizes and per-connection observations from the capture."""
    ftype, encap, npk = link_info(path)
    cap.format = ftype
    cap.link_type = encap
    cap.size_bytes = path.stat().st_size
    cap.packets = npk
    keylog = HERE / cap.keylog if cap.keylog else None
    streams = observe(path, tls_ports, server_ports, keylog, decode_as)
    if len(streams) != len(cap.connections):
        log(f"  !! {cap.file}: {len(streams)} TCP streams in the capture, {len(cap.connections)} connections declared")
    plain = plain_stream_index(path) if decode_as else {}
    for conn, st in zip(cap.connections, streams):  # noqa: B905 (a count mismatch is reported above)
        conn.tcp_stream = st.idx
        if st.client and st.server and (st.client[1], st.server[1]) in plain:
            # a protocol decoded with -d (SOCKS) can open conversations of its own and shift tshark's numbers:
            # keep the index that a plain `tshark -r` shows
            conn.tcp_stream = plain[(st.client[1], st.server[1])]
        conn.start_time = datetime.datetime.fromtimestamp(st.t0, datetime.UTC).isoformat(timespec="microseconds")
        conn.client_port = st.client[1] if st.client else None
        conn.server_ip = st.server[0] if st.server else ""
        if st.server and st.server[1] != conn.server_port:
            log(f"  !! {cap.file}: stream {st.idx} goes to port {st.server[1]}, expected {conn.server_port}")
        conn.timeline = timeline(st)
        conn.what_client_did = describe(st, "C")
        conn.what_server_did = describe(st, "S")
        conn.check = check_conn(conn, st)
        conn.client_reaction = reaction(st)


# --------------------------------------------------------------------------
# Derived captures
# --------------------------------------------------------------------------
def derive(caps: dict[str, Capture]) -> list[Capture]:
    res: list[Capture] = []

    def clone_conns(src: Capture) -> list[Conn]:
        return [Conn(**{k: v for k, v in asdict(c).items()}) for c in src.connections]

    def ports_of(*names: str) -> list[int]:
        return sorted({c.server_port for n in names for c in caps[n].connections})

    # 1. gzip copy
    if "cert-expired" in caps:
        src = HERE / caps["cert-expired"].file
        dst = HERE / "cert-expired.pcap.gz"
        with open(src, "rb") as f, gzip.GzipFile(dst, "wb", mtime=0) as g:
            shutil.copyfileobj(f, g)
        c = Capture(
            file=dst.name,
            title="gzip-compressed copy of cert-expired.pcap (same packets)",
            derived_from=[src.name],
            keylog=caps["cert-expired"].keylog,
        )
        c.connections = clone_conns(caps["cert-expired"])
        c.how = {"post_processing": [f"gzip -c {src.name} > {dst.name} (python gzip, mtime 0)"]}
        annotate(c, dst, ports_of("cert-expired"), ports_of("cert-expired"))
        res.append(c)

    # 2. capture starting mid-connection: drop the SYN, handshake and first data packets
    if "tls12-openssl-bulk" in caps:
        src = HERE / caps["tls12-openssl-bulk"].file
        dst = HERE / "mid-connection-tls12.pcap"
        total = caps["tls12-openssl-bulk"].packets
        first = 20
        run(["editcap", "-F", "pcap", "-r", str(src), str(dst), f"{first}-{total}"])
        c = Capture(
            file=dst.name,
            title=f"tls12-openssl-bulk.pcap from packet {first} on: no SYN, no handshake, "
            "only application data both ways and the close",
            derived_from=[src.name],
        )
        c.how = {"post_processing": [f"editcap -F pcap -r {src.name} {dst.name} {first}-{total}"]}
        conn = clone_conns(caps["tls12-openssl-bulk"])[0]
        conn.intended_outcome = "established"
        conn.note = (
            "the peers did establish TLS 1.2, but the capture starts mid-connection: the analyzer sees "
            "application data both ways without a handshake (report it as established-by-data or as "
            "incomplete evidence; never as a failure)"
        )
        c.connections = [conn]
        annotate(c, dst, [4412], [4412])
        res.append(c)

    # 3. capture that ends right after the ClientHello
    if "tls13-curl-alpn" in caps:
        src = HERE / caps["tls13-curl-alpn"].file
        dst = HERE / "truncated-after-clienthello.pcap"
        run(["editcap", "-F", "nsecpcap", "-r", str(src), str(dst), "1-4"])
        c = Capture(
            file=dst.name,
            title="tls13-curl-alpn.pcap cut after packet 4 (SYN, SYN-ACK, ACK, ClientHello): "
            "the capture ends before the server answered",
            derived_from=[src.name],
        )
        c.how = {"post_processing": [f"editcap -F nsecpcap -r {src.name} {dst.name} 1-4"]}
        conn = clone_conns(caps["tls13-curl-alpn"])[0]
        conn.intended_outcome = "incomplete"
        conn.intended_cause = None
        conn.note = "the real connection succeeded; the file ends before the ServerHello (nanosecond pcap)"
        c.connections = [conn]
        annotate(c, dst, [4430], [4430])
        res.append(c)

    # 4. two interfaces with different link types in one pcapng
    if "node-ok" in caps and "go-ok" in caps:
        a, b = HERE / caps["node-ok"].file, HERE / caps["go-ok"].file
        dst = HERE / "multi-linktype.pcapng"
        run(["mergecap", "-F", "pcapng", "-w", str(dst), str(a), str(b)])
        c = Capture(
            file=dst.name,
            title="pcapng with two interfaces of different link types: node-ok.pcap "
            "(lo, Ethernet) + go-ok.pcap (any, Linux cooked v2), merged in time order",
            derived_from=[a.name, b.name],
        )
        c.how = {"post_processing": [f"mergecap -F pcapng -w {dst.name} {a.name} {b.name}"]}
        c.connections = sorted(clone_conns(caps["node-ok"]) + clone_conns(caps["go-ok"]), key=lambda cc: cc.start_time)
        keys = merge_keylogs("multi-linktype", [caps["node-ok"], caps["go-ok"]])
        c.keylog = keys
        annotate(c, dst, ports_of("node-ok", "go-ok"), ports_of("node-ok", "go-ok"))
        res.append(c)

    # 5. pcapng with the TLS secrets embedded (Decryption Secrets Block)
    if "python-ssl-ok" in caps and caps["python-ssl-ok"].keylog:
        src = HERE / caps["python-ssl-ok"].file
        dst = HERE / "python-ssl-ok-dsb.pcapng"
        keys = HERE / caps["python-ssl-ok"].keylog
        run(["editcap", "-F", "pcapng", "--inject-secrets", f"tls,{keys}", str(src), str(dst)])
        c = Capture(
            file=dst.name,
            title="python-ssl-ok.pcap as pcapng with its TLS key log embedded in a "
            "Decryption Secrets Block (readers must skip or use the DSB)",
            derived_from=[src.name],
        )
        c.how = {
            "post_processing": [
                f"editcap -F pcapng --inject-secrets tls,keylogs/python-ssl-ok.keys {src.name} {dst.name}"
            ]
        }
        c.connections = clone_conns(caps["python-ssl-ok"])
        c.keylog = caps["python-ssl-ok"].keylog
        annotate(c, dst, [4431], [4431])
        res.append(c)

    # 6. the incident demo: several scenarios merged in time order
    mix = [
        n
        for n in (
            "tls13-curl-alpn",
            "tcp-refused",
            "tcp-timeout",
            "client-sent-plaintext",
            "cert-expired",
            "cert-missing-intermediate",
            "protocol-version",
            "unrecognized-name",
            "mtls-client-cert-missing",
            "server-reset",
            "no-application-protocol",
            "client-aborted",
            "go-ok",
        )
        if n in caps
    ]
    if len(mix) >= 5:
        dst = HERE / "incident-mixed.pcapng"
        files = [HERE / caps[n].file for n in mix]
        run(["mergecap", "-F", "pcapng", "-w", str(dst)] + [str(f) for f in files])
        c = Capture(
            file=dst.name,
            title=f"incident demo: {len(mix)} scenarios merged in time order "
            "(Ethernet, Linux cooked v1 and v2 interfaces)",
            derived_from=[f.name for f in files],
        )
        c.how = {"post_processing": ["mergecap -F pcapng -w incident-mixed.pcapng " + " ".join(f.name for f in files)]}
        conns = []
        for n in mix:
            for cc in clone_conns(caps[n]):
                cc.note = (f"[from {caps[n].file}] " + cc.note).strip()
                conns.append(cc)
        c.connections = sorted(conns, key=lambda cc: cc.start_time)
        c.keylog = merge_keylogs("incident-mixed", [caps[n] for n in mix])
        annotate(c, dst, ports_of(*mix), ports_of(*mix))
        res.append(c)
    return res


README_HEAD = """# Sample captures

Real TLS stacks talking over loopback (127.0.0.1 and ::1), recorded with
tcpdump. Every handshake, alert, reset and close in these files was produced
by the named client and server; no packet was written by hand. The one
deliberate exception is `server-rejected-hello.pcap` stream 0: a ClientHello
made by Python's `ssl` module whose extensions length was then increased by
one byte (the brief allowed a malformed ClientHello there).

This file, `manifest.json` and every capture are written by
`make_samples.py`; edit the script, not the outputs.

## Regenerate

Debian 12 (bookworm), as root (tcpdump on lo/any, one nftables rule):

```sh
apt-get install tcpdump tshark wireshark-common gnutls-bin golang-go \\
    openjdk-17-jdk-headless nodejs openssl curl nftables openssh-server \\
    postfix dovecot-imapd dovecot-pop3d postgresql mariadb-server mariadb-client slapd ldap-utils \\
    tinyproxy dante-server   # this line: only for the starttls-* captures
.venv/bin/python samples/make_samples.py                 # all, from scratch (~2.5 min)
.venv/bin/python samples/make_samples.py --only cert-expired tcp-refused   # a few, PKI kept (new certs added)
.venv/bin/python samples/make_samples.py --list
```

A full run regenerates the PKI with validity periods relative to the run
time (the expired leaf expired 57 days earlier, the not-yet-valid one starts
49 days later), so certificate verdicts hold for captures made on any date.
The captures of the current set were made on {date}. Build products (Go
binary, Java classes and PKCS#12 stores, per-scenario logs of every client's
own output) go to `$TLS_SAMPLES_BUILD` (default `/tmp/tls-samples-build`).
The script checks tcpdump's "dropped by kernel" count and reruns a scenario
that lost packets. Each scenario uses its own server port(s), so
connections stay distinguishable when captures are merged.

## Layout

| path | what |
|---|---|
| `*.pcap`, `*.pcapng`, `*.pcap.gz` | the captures (list below) |
| `manifest.json` | one object per capture: `file`, `title`, `format`, `link_type`, `how` (tcpdump options, server command lines, post-processing; each connection has its client command), `keylog`, `connections` |
| `keylogs/<capture>.keys` | NSS key logs written by the stacks that can (OpenSSL s_server/s_client, curl, Python, GnuTLS, Node.js, Go; not Java): `tshark -o tls.keylog_file:keylogs/X.keys -r X.pcap` decrypts TLS 1.3 handshakes and encrypted alerts |
| `gen/pki/` | the test PKI (PEM certificates, unencrypted keys, DER OCSP responses) and `pki.json` describing each certificate, bundle and OCSP response; `gen/pki/root.pem` is the trust anchor to pass as `ca_bundle` |
| `gen/pki.py` | PKI generator (`cryptography`) |
| `gen/pytls.py`, `gen/node_tls.js`, `gen/JavaTls.java`, `gen/gotls/main.go` | small clients and servers for Python, Node.js, Java and Go |
| `gen/tool-versions.json` | exact versions of every tool of the last full run |

Each entry of `connections` (in the order of the TCP streams in the file):
`client`, `server` (stack and version), `server_port`, `client_port`,
`server_ip`, `tcp_stream` (tshark's stream index), `start_time`,
`tls_version_intended`, `intended_outcome` (established / failed /
incomplete), `intended_cause` (a code of `shared/spec/failure-causes.md` or
null), `note`, `client_command`, `client_exit`, `client_said` (the client's
own error message), and, derived from `tshark -T json` on the finished file
(with the key log when there is one): `timeline` (one line per burst,
`+ms C|S: records`; `{X}` = a record that is encrypted on the wire and was
read with the key log), `what_client_did`, `what_server_did`,
`client_reaction` and `check` (the script's comparison of the capture with
the alert or reset the scenario expects; all are `ok`), and `matrix_key` /
`matrix_row` (column and row variant of the connection in the certificate
table below; empty when it is not there; absent from entries written before
these fields existed).

Certificate facts: `root` (RSA 2048) signs `intermediate` (EC P-256), which
signs the server leaves (EC P-256 unless stated; SAN server.test, localhost,
127.0.0.1, ::1, with an AIA caIssuers URL). Clients trust `root.pem` only
and ask for `server.test` (SNI and host name check) unless a capture says
otherwise. Certificates added later (`intermediate-expired` and its leaf,
`sha1-leaf`, `nosan`, `wildcard`, `ip-only`, `dns-only`, `unrelated`,
`eku-clientauth`, `ca-certsign-leaf` (RSA 2048)) are
described in `gen/pki/pki.json` (`extended_at` when a partial run added them
to an existing PKI); the stapling scenario signs fresh OCSP responses
(`ocsp-good-staple.der`, `ocsp-revoked-staple.der`) each time it runs.
"""


def _summary(cap: Capture) -> str:
    counts: dict[str, int] = {}
    for c in cap.connections:
        k = c.intended_outcome if c.intended_outcome != "failed" else f"failed/{c.intended_cause}"
        counts[k] = counts.get(k, 0) + 1
    return ", ".join(f"{k} x{v}" if v > 1 else k for k, v in counts.items())


def write_readme(caps: list[Capture], tv: dict[str, str]) -> None:
    date = min(
        (c.connections[0].start_time for c in caps if c.connections and c.connections[0].start_time), default=""
    )[:10]
    lines = [README_HEAD.replace("{date}", date)]
    lines += [
        "## The captures",
        "",
        "| file | format, link type | size | connections: intended outcome | what it shows |",
        "|---|---|---|---|---|",
    ]
    for c in caps:
        lt = c.link_type.replace("LINKTYPE_", "")
        lines.append(f"| `{c.file}` | {c.format}, {lt} | {c.size_bytes / 1000:.1f} kB | {_summary(c)} | {c.title} |")
    # the certificate matrix: one line per capture (and row variant), one column per client stack + version
    keys: list[str] = []
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for c in caps:
        for x in c.connections:
            if not x.matrix_key:
                continue
            if x.matrix_key not in keys:
                keys.append(x.matrix_key)
            rows.setdefault((c.file, x.matrix_row), {})[x.matrix_key] = x.client_reaction
    if rows:
        lines += [
            "",
            "## What each client did with each certificate",
            "",
            "Read from the captures of this run (`client_reaction`). `encrypted` alerts were read "
            "with the server's key log; without it they are a lone short application_data record. "
            "Client options per capture are in the manifest (`client_command`): in "
            "`ocsp-stapled-good-revoked.pcap` s_client runs with `-status`, curl with `--cert-status` and "
            "gnutls-cli with `--ocsp`.",
            "",
            "| capture | " + " | ".join(keys) + " |",
            "|---" * (len(keys) + 1) + "|",
        ]
        for (file, row), cells in rows.items():
            label = f"`{file}`" + (f" {row}" if row else "")
            lines.append(f"| {label} | " + " | ".join(cells.get(k, "") for k in keys) + " |")
    lines += [
        "",
        "## Observations worth knowing (from these captures)",
        "",
        OBSERVATIONS.strip(),
        "",
        "## Tool versions",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in tv.items()]
    lines += ["", "## Not produced, and limits", "", LIMITS.strip(), ""]
    text = "\n".join(lines) + "\n"
    # sections added to README.md by hand (captures not made by this script) are kept, at the end
    ours = set(re.findall(r"^## (.+)$", text, re.M))
    readme = HERE / "README.md"
    if readme.exists():
        for sec in re.split(r"(?m)^(?=## )", readme.read_text()):
            m = re.match(r"## (.+)", sec)
            if m and m.group(1) not in ours:
                text = text.rstrip("\n") + "\n\n" + sec.rstrip("\n") + "\n"
    readme.write_text(text)


OBSERVATIONS = """
- OpenSSL-based clients (s_client, curl, Python, and Java in TLS 1.2) send their certificate alert in clear,
  even in TLS 1.3; GnuTLS and Go encrypt theirs in TLS 1.3 (one 19-byte application_data record after a
  ChangeCipherSpec) and say bad_certificate; Java says certificate_unknown (encrypted) in TLS 1.3.
- OpenSSL says unknown_ca for self-signed, untrusted root and missing intermediate alike, and
  bad_certificate for not-yet-valid, hostname mismatch and the RSA-1024 key; only the chain tells them apart.
- Node.js sends no alert at all: in TLS 1.3 it closes (FIN) right after the server's flight, in TLS 1.2 it
  completes the handshake (ClientKeyExchange, CCS, Finished) and then closes without data. OpenSSL servers
  answer such an unexpected EOF with a fatal decode_error alert (also seen when a client connects and closes
  without a ClientHello, and from s_client when a server closes after the ClientHello).
- curl checks the host name after the handshake: it completes the handshake, sends close_notify and resets.
  `curl --cert-status` does the same for a revoked stapled OCSP response; in TLS 1.3 that response travels
  inside the encrypted Certificate message.
- Only Debian's OpenSSL (SECLEVEL 2) rejects the RSA-1024 leaf; GnuTLS, Node.js (bundled OpenSSL), Java and
  Go accept it and exchange data.
- mTLS: OpenSSL servers say handshake_failure (TLS 1.2) or encrypted certificate_required (TLS 1.3) when no
  certificate comes, unknown_ca for a certificate from another CA; Go servers say bad_certificate. Java and
  Go clients send an empty Certificate when their only certificate does not match the server's CA names.
  TLS 1.3 clients (Go, Java, Python) think the handshake succeeded and send data before the server's alert.
- An OpenSSL server answers a TLS 1.0-only ClientHello with internal_error, not protocol_version.
- An OpenSSL server closes silently (FIN, no alert) on a plain HTTP request.
- An expired intermediate draws exactly the alerts of an expired leaf (OpenSSL certificate_expired, Java
  certificate_expired in TLS 1.2 and encrypted certificate_unknown in 1.3, GnuTLS and Go bad_certificate,
  Node.js nothing): only the chain says which certificate expired.
- A SHA-1 signed leaf: OpenSSL 3.0 refuses it at security level 1 and 2 alike ("CA signature digest
  algorithm too weak", alert bad_certificate), so s_client, curl, Python and Node.js reject it in TLS 1.2 and
  1.3; `s_client -auth_level 0` accepts it, and s_server only loads it at SECLEVEL 0. GnuTLS ("insecure
  algorithm") and Go (since 1.18; `GODEBUG=x509sha1=1` accepts) reject it; Java 17 accepts it (its SHA-1 ban
  only covers chains to the JDK's own roots).
- A leaf with a CN and no subjectAltName: OpenSSL-based clients, GnuTLS and Java fall back to the CN and
  accept it; only Go refuses ("relies on legacy Common Name field", bad_certificate).
- `*.wild.test` matches `a.wild.test` only, in every stack; `a.b.wild.test` and `wild.test` get the
  hostname-mismatch reactions of `cert-wronghost.pcap` (curl again after the handshake).
- Connecting to 127.0.0.1, no client sends SNI (s_client with `-noservername -verify_ip`, curl
  `https://127.0.0.1`, Python and Go with the address as server name, GnuTLS `--verify-hostname 127.0.0.1`,
  Node.js without `servername`, Java without SNI) and every one checks the address against the IP SANs:
  all accept the IP:127.0.0.1 leaf and refuse the DNS:server.test-only leaf.
- Chain order: leaf, root, intermediate plus an unrelated certificate is accepted by all 7 stacks in TLS 1.2
  and 1.3.
- STARTTLS: s_client `-starttls smtp|imap|pop3` sends its ClientHello even after the server refused the
  upgrade (454, BAD, -ERR), and the server answers it in clear; curl `--ssl-reqd` closes without asking when
  STARTTLS/STLS is not advertised (dovecot ssl = no), and after a 454 without QUIT. libldap (GnuTLS) checks
  the certificate only after the handshake: with the expired leaf it sends its Finished, then closes without
  an alert. PostgreSQL 15 answers psql's and s_client's ClientHello with a HelloRetryRequest. MariaDB asks
  s_client for a client certificate (empty Certificate). The mariadb client with `--ssl` alone goes on in
  clear when the server offers no SSL; only `--ssl-verify-server-cert` makes it stop.
- Tunnels: each CONNECT or SOCKS connection that succeeds is followed in the capture by the proxy's own TCP
  connection to the server, carrying the same TLS bytes (declared as a connection of its own).
- Stapling: s_client `-status`, curl `--cert-status`, GnuTLS, Go and Java send status_request; Python and
  Node.js do not, so they get no staple. Only GnuTLS (alert during the handshake) and curl `--cert-status`
  (close_notify after it) act on a revoked staple: s_client prints "Cert Status: revoked" and goes on, Go and
  Java ignore it. A revoked staple in a capture does not by itself mean the connection failed.
"""

LIMITS = """
- tcp_timeout uses an nftables rule (table `inet tls_samples`, created and deleted by the script) dropping
  SYNs to 127.0.0.1:993; it worked in this sandbox.
- cert_revoked is only rejected by clients that check a stapled OCSP response (GnuTLS by default, curl with
  `--cert-status`); s_client, Python, Node.js, Java and Go ignore the staple here, so they are not in that
  capture.
- server_rejected_hello from a real stack without editing bytes: the TLS 1.3 external-PSK mismatch
  (illegal_parameter). The decode_error case uses the edited ClientHello described above.
- server_aborted: a TLS 1.2 PSK key mismatch (the server cannot decrypt the client's Finished, bad_record_mac).
  A TLS 1.3 ticket or PSK mismatch is caught at the ClientHello (binder) instead, see server-rejected-hello.
- starttls_refused: `starttls-smtp-refused.pcap` uses Python's smtpd, which does not know STARTTLS (500 ...
  not recognized) and does not advertise it (curl then never asks); `starttls-smtp.pcap` has postfix's real
  "454 4.7.0 TLS not available due to local problem" (its listener on 5027 is given a key that does not match
  its certificate). For CONNECT (403) and SOCKS5 (reply 2) refusals the manifest also says starttls_refused.
- STARTTLS captures: psql and the mariadb client cannot write a key log, so their TLS 1.3 handshakes stay
  unreadable; slapd runs from an old-style slapd.conf (`slapd -f`) without any database (StartTLS and a root
  DSE search need none).
- client_aborted clients are Python `ssl` objects driven over a socket (MemoryBIO): the handshake bytes are
  Python's, only the reset instead of the second flight is scripted.
- Loopback has a 64 KB MTU, so bulk transfers travel in few, large segments.
- The SHA-1 leaf: `cryptography` no longer signs certificates with SHA-1, so gen/pki.py builds it with
  SHA-256 and re-signs its TBSCertificate with ecdsa-with-SHA1 (the intermediate's key, raw signature).
- The no-SAN, wildcard, IP-SAN and chain-order servers are Python `ssl` (gen/pytls.py server, a 68-byte
  reply) rather than s_server -www, whose 5 KB status page per accepted connection would push those captures
  past 100 KB; the stapling servers are s_server -www -status_file with one cipher suite per version, which
  shortens that page, and the good-staple port only gets TLS 1.2 from GnuTLS.
- Java with revocation checking on (`-Dcom.sun.net.ssl.checkRevocation=true`) refuses even the good stapled
  chain ("Certificate does not specify OCSP responder", for the intermediate, which has no staple and no
  OCSP URL), so the stapling capture has Java only with its default (no check). s_client has no option that
  fails on a revoked staple.
"""


def merge_keylogs(name: str, caps: list[Capture]) -> str | None:
    lines: list[str] = []
    for c in caps:
        if c.keylog:
            lines += (HERE / c.keylog).read_text().splitlines()
    if not lines:
        return None
    (KEYLOGS / f"{name}.keys").write_text("\n".join(dict.fromkeys(lines)) + "\n")
    return f"keylogs/{name}.keys"


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def short_versions(tv: dict[str, str]) -> dict[str, str]:
    def grab(s, pat, default=""):
        m = re.search(pat, s)
        return m.group(1) if m else default

    return {
        "openssl": "OpenSSL " + grab(tv["openssl"], r"OpenSSL (\S+)"),
        "curl": "curl " + grab(tv["curl"], r"curl (\S+)") + " (OpenSSL backend)",
        "python": "Python " + grab(tv["python"], r"Python (\S+)") + " ssl",
        "pyplain": "Python " + grab(tv["python"], r"Python (\S+)"),
        "gnutls": "GnuTLS " + grab(tv["gnutls"], r"gnutls-cli (\S+)"),
        "node": "Node.js " + grab(tv["node"], r"Node.js (v\S+)"),
        "java": "Java " + grab(tv["java"], r'version "([^"]+)"') + " JSSE",
        "go": "Go " + grab(tv["go"], r"go(\d+\.\d+\S*)") + " crypto/tls",
        "openssh": "OpenSSH " + grab(tv["openssh"], r"OpenSSH_(\S+?),"),
        "postfix": "Postfix " + grab(tv.get("postfix", ""), r"Postfix (\S+)"),
        "dovecot": "Dovecot " + grab(tv.get("dovecot", ""), r"Dovecot (\S+)"),
        "postgresql": "PostgreSQL " + grab(tv.get("postgresql", ""), r"\) (\S+)"),
        "psql": "psql " + grab(tv.get("postgresql", ""), r"\) (\S+)") + " (libpq, OpenSSL)",
        "mariadb": "MariaDB " + grab(tv.get("mariadb", ""), r"Ver (\S+?)-"),
        "mariadb-client": "mariadb client " + grab(tv.get("mariadb", ""), r"Ver (\S+?)-") + " (OpenSSL)",
        "slapd": "OpenLDAP slapd " + grab(tv.get("openldap", ""), r"slapd (\S+?)\+"),
        "ldapsearch": "ldapsearch " + grab(tv.get("openldap", ""), r"slapd (\S+?)\+") + " (libldap, GnuTLS)",
        "tinyproxy": "tinyproxy " + grab(tv.get("tinyproxy", ""), r"tinyproxy (\S+)"),
        "dante": "Dante " + grab(tv.get("dante", ""), r"Dante v(\S+?)\.?\s"),
    }


def manifest_order(entries: list[dict]) -> list[dict]:
    """Scenario captures in SCENARIOS order, then the others (derived captures) in their current order:
    a partial run files its new captures where a full run would."""
    rank = {f"{sc.name}{'.pcapng' if sc.pcapng else '.pcap'}": i for i, sc in enumerate(SCENARIOS)}
    pos = {e["file"]: i for i, e in enumerate(entries)}
    return sorted(entries, key=lambda e: (0, rank[e["file"]]) if e["file"] in rank else (1, pos[e["file"]]))


def capture_from_entry(e: dict) -> Capture:
    """A manifest entry as a Capture (for the README)."""
    cap_fields = set(Capture.__dataclass_fields__)
    conn_fields = set(Conn.__dataclass_fields__)
    cap = Capture(**{k: v for k, v in e.items() if k in cap_fields and k != "connections"})
    cap.connections = [Conn(**{k: v for k, v in c.items() if k in conn_fields}) for c in e["connections"]]
    # Entries written before the manifest kept `matrix_key`: a cert-* capture whose clients are all plain
    # stack labels (cert_matrix) made the table, one column per stack and TLS version.
    labels = {v: k for k, v in V.items()}
    legacy = [c for c in e["connections"] if "matrix_key" not in c]
    if (
        legacy
        and e["file"].startswith("cert-")
        and not e["file"].endswith(".gz")
        and all(c["client"] in labels for c in e["connections"])
    ):
        for conn in cap.connections:
            conn.matrix_key = f"{labels[conn.client]} {conn.tls_version_intended}"
    return cap


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="scenario names to (re)run; the manifest keeps the others")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        for sc in SCENARIOS:
            print(f"{sc.name:28} {sc.title}")
        return
    if os.geteuid() != 0:
        sys.exit("run as root (tcpdump, nft)")
    for tool in (
        "tcpdump",
        "tshark",
        "editcap",
        "mergecap",
        "capinfos",
        "openssl",
        "curl",
        "gnutls-cli",
        "node",
        "java",
        "javac",
        "keytool",
        "go",
        "nft",
        "ssh-keygen",
    ):
        if not shutil.which(tool):
            sys.exit(f"missing tool: {tool} (see the package list at the top of this file)")
    full = not a.only
    BUILD.mkdir(parents=True, exist_ok=True)
    if full:
        shutil.rmtree(LOGS, ignore_errors=True)
        for f in list(HERE.glob("*.pcap")) + list(HERE.glob("*.pcapng")) + list(HERE.glob("*.pcap.gz")):
            f.unlink()
        shutil.rmtree(KEYLOGS, ignore_errors=True)
    KEYLOGS.mkdir(exist_ok=True)
    prepare(fresh_pki=full)
    tv = tool_versions()
    V.update(short_versions(tv))

    manifest_path = HERE / "manifest.json"
    old: dict[str, dict] = {}
    if not full and manifest_path.exists():
        for entry in json.loads(manifest_path.read_text()):
            old[entry["file"]] = entry
    caps: dict[str, Capture] = {}
    selected = [sc for sc in SCENARIOS if full or sc.name in a.only]
    for sc in selected:
        log(f"== {sc.name}")
        t = time.time()
        cap = run_scenario(sc)
        caps[sc.name] = cap
        for c in cap.connections:
            flag = "" if c.check == "ok" else f"   <-- {c.check}"
            log(
                f"   :{c.client_port} -> {c.server_port} {c.client[:28]:28} {c.intended_cause or c.intended_outcome:24}"
                f" C: {c.what_client_did[:110]}{flag}"
            )
        log(f"   {cap.file}: {cap.size_bytes} bytes, {cap.packets} packets, {time.time() - t:.1f} s")
    derived = derive(caps) if full else []
    all_caps = list(caps.values()) + derived
    entries = [asdict(c) for c in all_caps]
    for e in entries:
        for conn in e["connections"]:
            conn.pop("expect", None)
    if not full:
        for e in entries:
            old[e["file"]] = e
        entries = list(old.values())
    entries = manifest_order(entries)
    manifest_path.write_text(json.dumps(entries, indent=1) + "\n")
    (HERE / "gen" / "tool-versions.json").write_text(json.dumps(tv, indent=1) + "\n")
    # README from the whole manifest, so a partial run lists every capture too
    write_readme([capture_from_entry(e) for e in entries], tv)
    total = sum(p.stat().st_size for p in HERE.iterdir() if p.suffix in (".pcap", ".pcapng", ".gz"))
    log(f"done: {len(entries)} captures, {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
