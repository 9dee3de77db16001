"""Build large benchmark pcaps from real TLS traffic recorded on loopback, then replicated to size."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import heapq
import ipaddress
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

MASK32 = 0xFFFFFFFF
BULK_MIN_PAYLOAD = 256 * 1024  # a seed connection carrying more TCP payload than this is "bulk"
CLIENT_NET = int(ipaddress.IPv4Address("198.18.0.0"))  # RFC 2544 benchmarking range, written to files only
SERVER_NET = int(ipaddress.IPv4Address("198.19.0.0"))
PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
SNAPLEN = 262144
CLIENT_IP = "127.0.0.100"  # source address of every seed client (servers are 127.0.0.10-30)


def log(msg: str) -> None:
    print(f"[make_capture] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Seed recording: real openssl s_server / s_client connections in a private network namespace
# --------------------------------------------------------------------------------------------------

APT_PACKAGES = {"tcpdump": "tcpdump", "openssl": "openssl", "ip": "iproute2", "ethtool": "ethtool"}


def ensure_tools(names: Sequence[str]) -> None:
    """apt-get install whatever of `names` is missing (we run as root); fail clearly otherwise."""
    missing = [n for n in names if shutil.which(n) is None]
    if not missing:
        return
    pkgs = sorted({APT_PACKAGES[n] for n in missing})
    if os.geteuid() != 0:
        raise SystemExit(f"missing tools {missing}: install {pkgs} (needs root)")
    log(f"installing {pkgs} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-qq", *pkgs], check=False, env=env, stdout=subprocess.DEVNULL)
    still = [n for n in missing if shutil.which(n) is None]
    if still and still != ["ethtool"]:
        raise SystemExit(f"could not install {still}")


@dataclass(frozen=True)
class Certs:
    root: Path
    chain: Path  # intermediate CA certificate, sent by servers after the leaf
    client_cert: Path
    client_key: Path
    leaves: dict[str, tuple[Path, Path]]  # profile -> (cert, key)


def make_certs(d: Path) -> Certs:
    """Create a small PKI with `cryptography`: a trusted root, an intermediate, and leaves of each kind."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    day = dt.timedelta(days=1)

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tls-analyzer bench"),
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
            ]
        )

    def rsa_key() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def write(stem: str, cert: x509.Certificate, key: Key | None = None) -> tuple[Path, Path]:
        cp, kp = d / f"{stem}.pem", d / f"{stem}.key"
        cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            kp.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        return cp, kp

    def issue(
        cn: str,
        key: Key,
        issuer: tuple[x509.Certificate, Key] | None,
        before: dt.datetime,
        after: dt.datetime,
        *,
        is_ca: bool = False,
        sans: Sequence[str] = (),
        client: bool = False,
    ) -> x509.Certificate:
        pub = key.public_key()
        b = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .public_key(pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(before)
            .not_valid_after(after)
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        )
        if is_ca:
            ku = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
            b = b.add_extension(ku, critical=True)
        else:
            eku = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
            b = b.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
        if issuer is None:
            return b.issuer_name(name(cn)).sign(key, hashes.SHA256())
        icert, ikey = issuer
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ikey.public_key())
        return b.add_extension(aki, critical=False).issuer_name(icert.subject).sign(ikey, hashes.SHA256())

    ca_life = (now - 30 * day, now + 3650 * day)
    root_key = rsa_key()
    root = issue("Bench Root CA", root_key, None, *ca_life, is_ca=True)
    inter_key = rsa_key()
    inter = issue("Bench Issuing CA 1", inter_key, (root, root_key), *ca_life, is_ca=True)
    rogue_key = rsa_key()
    rogue = issue("Rogue Root CA", rogue_key, None, *ca_life, is_ca=True)
    root_p, _ = write("root", root)
    chain_p, _ = write("intermediate", inter)

    good = ["bench.example", "*.bench.example"]
    valid = (now - day, now + 365 * day)
    by_inter = (inter, inter_key)
    specs: list[tuple[str, str, Key, tuple[x509.Certificate, Key] | None, tuple[dt.datetime, dt.datetime], list[str]]]
    specs = [
        ("rsa", "www.bench.example", rsa_key(), by_inter, valid, good),
        ("ecdsa", "api.bench.example", ec.generate_private_key(ec.SECP256R1()), by_inter, valid, good),
        ("expired", "old.bench.example", rsa_key(), by_inter, (now - 400 * day, now - 35 * day), good),
        ("selfsigned", "self.bench.example", rsa_key(), None, valid, good),
        ("rogue", "www.bench.example", rsa_key(), (rogue, rogue_key), valid, good),
        ("otherhost", "shop.other.example", rsa_key(), by_inter, valid, ["shop.other.example"]),
    ]
    leaves = {
        prof: write(f"leaf_{prof}", issue(cn, key, iss, *life, sans=sans), key)
        for prof, cn, key, iss, life, sans in specs
    }
    ck = ec.generate_private_key(ec.SECP256R1())
    cc, ckp = write("client", issue("client-17", ck, by_inter, *valid, client=True), ck)
    return Certs(root=root_p, chain=chain_p, client_cert=cc, client_key=ckp, leaves=leaves)


@dataclass(frozen=True)
class ClientRun:
    """One client process: openssl s_client args, or a tiny python socket client."""

    args: tuple[str, ...]
    stdin: bytes = b""
    stdin_file: str = ""  # name of a file in the work directory to send as stdin
    python: str = ""  # when set, run this python snippet instead of s_client


@dataclass(frozen=True)
class Scenario:
    name: str
    ip: str  # server address inside the namespace, 127.0.0.x; port is always 443
    server: tuple[str, ...] | None  # s_server args; None: nothing listens (connection refused)
    clients: tuple[ClientRun, ...]
    expect_ok: bool
    server_python: str = ""  # a python snippet serving instead of s_server


PY_ABORT = """
import socket, struct, sys
s = socket.create_connection((sys.argv[1], 443), timeout=5, source_address=(sys.argv[2], 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
s.close()
"""
PY_PLAINTEXT = """
import socket, sys
s = socket.create_connection((sys.argv[1], 443), timeout=5, source_address=(sys.argv[2], 0))
s.sendall(b'GET / HTTP/1.1\\r\\nHost: www.bench.example\\r\\n\\r\\n')
try:
    while s.recv(65536):
        pass
except OSError:
    pass
s.close()
"""
PY_HTTP_SERVER = """
import socket, sys
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[1], 443)); ls.listen(4)
c, _ = ls.accept(); c.settimeout(5)
try:
    c.recv(65536)
except OSError:
    pass
c.sendall(b'HTTP/1.1 400 Bad Request\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n')
c.close(); ls.close()
"""


def get(path: str) -> bytes:
    return f"GET /{path} HTTP/1.0\r\nHost: www.bench.example\r\n\r\n".encode()


def build_scenarios(c: Certs, bulk_mb: Sequence[int], upload_mb: Sequence[int]) -> list[Scenario]:
    """The seed's connections: bulk downloads/uploads, handshake-only and small ones, and failures."""
    ca = ("-CAfile", str(c.root), "-verify_return_error")

    def srv(profile: str, *extra: str, chain: bool = True, www: bool = True) -> tuple[str, ...]:
        cert, key = c.leaves[profile]
        a = ["-cert", str(cert), "-key", str(key)]
        if chain:
            a += ["-cert_chain", str(c.chain)]
        if www:
            a.append("-WWW")
        return (*a, *extra)

    def cli(sni: str, *extra: str, verify: bool = True) -> tuple[str, ...]:
        v = (*ca, "-verify_hostname", sni) if verify else ()
        return ("-servername", sni, *v, *extra)

    sc: list[Scenario] = []
    # bulk downloads, alternating versions and cipher suites
    variants: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
        ("rsa", ("-tls1_3",), ("-ciphersuites", "TLS_AES_128_GCM_SHA256")),
        ("rsa", ("-tls1_2",), ("-cipher", "ECDHE-RSA-AES128-GCM-SHA256")),
        ("ecdsa", ("-tls1_3",), ("-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256")),
        ("ecdsa", ("-tls1_2",), ("-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384")),
        ("rsa", ("-tls1_3",), ("-ciphersuites", "TLS_AES_256_GCM_SHA384")),
        ("rsa", ("-tls1_2",), ("-cipher", "ECDHE-RSA-CHACHA20-POLY1305")),
        ("rsa", ("-tls1_2",), ("-cipher", "ECDHE-RSA-AES128-SHA256")),  # CBC
        ("rsa", ("-tls1_2",), ("-cipher", "AES128-GCM-SHA256")),  # RSA key exchange
    ]
    hosts = ["www", "api", "cdn", "static", "img", "video", "dl", "backup"]
    for i, mb in enumerate(bulk_mb):
        prof, ver, ciph = variants[i % len(variants)]
        ip = "127.0.0.10" if prof == "rsa" else "127.0.0.11"
        sni = f"{hosts[i % len(hosts)]}.bench.example"
        sc.append(
            Scenario(
                f"bulk-download-{mb}MB-{ver[0][1:]}",
                ip,
                srv(prof, "-naccept", "1"),
                (ClientRun((*cli(sni), *ver, *ciph, "-ign_eof"), get(f"bulk_{i}.bin")),),
                True,
            )
        )
    for i, mb in enumerate(upload_mb):
        ver = ("-tls1_3",) if i % 2 == 0 else ("-tls1_2",)
        sc.append(
            Scenario(
                f"bulk-upload-{mb}MB-{ver[0][1:]}",
                "127.0.0.12",
                srv("rsa", "-naccept", "1", www=False),
                (ClientRun((*cli("upload.bench.example"), *ver), stdin_file=f"upload_{i}.bin"),),
                True,
            )
        )
    # handshake-only and small successful connections
    hs: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]] = [
        ("rsa", "www.bench.example", ("-tls1_3",), ()),
        ("rsa", "mail.bench.example", ("-tls1_3", "-groups", "P-256"), ()),
        ("rsa", "auth.bench.example", ("-tls1_3", "-groups", "P-384"), ()),
        ("ecdsa", "api.bench.example", ("-tls1_3",), ()),
        ("ecdsa", "push.bench.example", ("-tls1_3", "-alpn", "h2,http/1.1"), ("-alpn", "h2")),
        ("rsa", "www.bench.example", ("-tls1_2",), ()),
        ("rsa", "login.bench.example", ("-tls1_2", "-cipher", "ECDHE-RSA-AES256-SHA384"), ()),
        ("rsa", "legacy.bench.example", ("-tls1_2", "-cipher", "AES256-SHA"), ()),
        ("ecdsa", "m.bench.example", ("-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"), ()),
        ("ecdsa", "ws.bench.example", ("-tls1_2", "-alpn", "http/1.1"), ("-alpn", "http/1.1")),
    ]
    for i, (prof, sni, cargs, sargs) in enumerate(hs):
        ip = "127.0.0.10" if prof == "rsa" else "127.0.0.11"
        sc.append(
            Scenario(
                f"handshake-only-{i}-{cargs[0][1:]}",
                ip,
                srv(prof, "-naccept", "1", *sargs),
                (ClientRun(cli(sni, *cargs)),),
                True,
            )
        )
    sc.append(
        Scenario(
            "handshake-no-sni-tls1_3",
            "127.0.0.10",
            srv("rsa", "-naccept", "1"),
            (ClientRun((*ca, "-noservername", "-tls1_3")),),
            True,
        )
    )
    sc.append(
        Scenario(
            "hello-retry-request-tls1_3",
            "127.0.0.13",
            srv("rsa", "-naccept", "1", "-groups", "P-256"),
            (ClientRun(cli("hrr.bench.example", "-tls1_3", "-groups", "X25519:P-256")),),
            True,
        )
    )
    for i, kb in enumerate([1, 4, 16, 48, 120]):
        ver = ("-tls1_3",) if i % 2 == 0 else ("-tls1_2",)
        sc.append(
            Scenario(
                f"small-get-{kb}KB-{ver[0][1:]}",
                "127.0.0.10",
                srv("rsa", "-naccept", "1"),
                (ClientRun((*cli("www.bench.example"), *ver, "-ign_eof"), get(f"small_{i}.bin")),),
                True,
            )
        )
    sc.append(
        Scenario(
            "resume-session-id-tls1_2",
            "127.0.0.14",
            srv("rsa", "-naccept", "6", "-no_ticket"),
            (ClientRun(cli("shop.bench.example", "-tls1_2", "-reconnect")),),
            True,
        )
    )
    sc.append(
        Scenario(
            "mtls-ok-tls1_3",
            "127.0.0.15",
            srv("ecdsa", "-naccept", "1", "-Verify", "2", "-CAfile", str(c.root)),
            (
                ClientRun(
                    cli(
                        "mtls.bench.example",
                        "-tls1_3",
                        "-cert",
                        str(c.client_cert),
                        "-key",
                        str(c.client_key),
                        "-cert_chain",
                        str(c.chain),
                    )
                ),
            ),
            True,
        )
    )
    sc.append(
        Scenario(
            "mtls-ok-tls1_2",
            "127.0.0.15",
            srv("ecdsa", "-naccept", "1", "-Verify", "2", "-CAfile", str(c.root)),
            (
                ClientRun(
                    cli(
                        "mtls.bench.example",
                        "-tls1_2",
                        "-cert",
                        str(c.client_cert),
                        "-key",
                        str(c.client_key),
                        "-cert_chain",
                        str(c.chain),
                    )
                ),
            ),
            True,
        )
    )
    # failures
    sc += [
        Scenario(
            "fail-untrusted-selfsigned",
            "127.0.0.20",
            srv("selfsigned", "-naccept", "1", chain=False),
            (ClientRun(cli("self.bench.example", "-tls1_3")),),
            False,
        ),
        Scenario(
            "fail-untrusted-rogue-ca-tls1_2",
            "127.0.0.21",
            srv("rogue", "-naccept", "1", chain=False),
            (ClientRun(cli("www.bench.example", "-tls1_2")),),
            False,
        ),
        Scenario(
            "fail-expired-cert",
            "127.0.0.22",
            srv("expired", "-naccept", "1"),
            (ClientRun(cli("old.bench.example", "-tls1_3")),),
            False,
        ),
        Scenario(
            "fail-hostname-mismatch",
            "127.0.0.23",
            srv("otherhost", "-naccept", "1"),
            (ClientRun(cli("pay.bench.example", "-tls1_2")),),
            False,
        ),
        Scenario(
            "fail-missing-intermediate",
            "127.0.0.24",
            srv("rsa", "-naccept", "1", chain=False),
            (ClientRun(cli("www.bench.example", "-tls1_3")),),
            False,
        ),
        Scenario(
            "fail-protocol-version",
            "127.0.0.25",
            srv("rsa", "-naccept", "1", "-tls1_3"),
            (ClientRun(cli("www.bench.example", "-tls1_2")),),
            False,
        ),
        Scenario(
            "fail-legacy-tls1_0-client",
            "127.0.0.25",
            srv("rsa", "-naccept", "1"),
            (ClientRun(cli("www.bench.example", "-tls1", "-cipher", "DEFAULT@SECLEVEL=0", verify=False)),),
            False,
        ),
        Scenario(
            "fail-no-shared-cipher",
            "127.0.0.26",
            srv("rsa", "-naccept", "1", "-tls1_2", "-cipher", "AES256-SHA"),
            (ClientRun(cli("www.bench.example", "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")),),
            False,
        ),
        Scenario(
            "fail-client-cert-required-tls1_3",
            "127.0.0.27",
            srv("rsa", "-naccept", "1", "-Verify", "2", "-CAfile", str(c.root)),
            (ClientRun(cli("mtls.bench.example", "-tls1_3", "-ign_eof"), get("small_0.bin")),),
            False,
        ),
        Scenario(
            "fail-client-cert-required-tls1_2",
            "127.0.0.27",
            srv("rsa", "-naccept", "1", "-Verify", "2", "-CAfile", str(c.root)),
            (ClientRun(cli("mtls.bench.example", "-tls1_2")),),
            False,
        ),
        Scenario(
            "fail-connection-refused",
            "127.0.0.28",
            None,
            (ClientRun(cli("down.bench.example", "-tls1_3")),),
            False,
        ),
        Scenario(
            "fail-connection-refused-2",
            "127.0.0.29",
            None,
            (ClientRun(cli("gone.bench.example", "-tls1_2")),),
            False,
        ),
        Scenario(
            "tcp-abort-rst",
            "127.0.0.10",
            srv("rsa", "-naccept", "1"),
            (ClientRun((), python=PY_ABORT),),
            False,
        ),
        Scenario(
            "fail-plaintext-http-to-tls-port",
            "127.0.0.10",
            srv("rsa", "-naccept", "1"),
            (ClientRun((), python=PY_PLAINTEXT),),
            False,
        ),
        Scenario(
            "fail-tls-to-plain-http-server",
            "127.0.0.30",
            None,
            (ClientRun(cli("plain.bench.example", "-tls1_3")),),
            False,
            server_python=PY_HTTP_SERVER,
        ),
    ]
    return sc


class Netns:
    """A throw-away network namespace whose loopback has MTU 1500 and no segmentation offload."""

    def __init__(self) -> None:
        self.name = f"tlsbench-{os.getpid()}"

    def __enter__(self) -> Netns:
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.run(["ip", "link", "set", "lo", "mtu", "1500", "up"])
        if shutil.which("ethtool"):
            r = subprocess.run(
                self.cmd(["ethtool", "-K", "lo", "tso", "off", "gso", "off", "gro", "off"]),
                check=False,
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                log(f"ethtool failed, packets may exceed MTU: {r.stderr.strip()}")
        else:
            log("ethtool missing: GSO stays on, bulk packets will be ~64 KB super-frames")
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)

    def cmd(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: Sequence[str]) -> None:
        subprocess.run(self.cmd(argv), check=True)


def listening(pid: int, ip: str, port: int) -> bool:
    """True when process `pid` (inside the namespace) sees a LISTEN socket on ip:port."""
    want = f"{struct.unpack('<I', ipaddress.IPv4Address(ip).packed)[0]:08X}:{port:04X}"
    try:
        with open(f"/proc/{pid}/net/tcp") as f:
            return any(ln.split()[1] == want and ln.split()[3] == "0A" for ln in list(f)[1:])
    except OSError:
        return False


def stop(p: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    if p.stdin is not None:
        p.stdin.close()
    if p.poll() is None:
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def record_seed(seed_path: Path, bulk_mb: Sequence[int], upload_mb: Sequence[int]) -> dict[str, object]:
    """Record the seed capture; returns a manifest of the scenarios run, in order."""
    ensure_tools(["tcpdump", "openssl", "ip", "ethtool"])
    if os.geteuid() != 0:
        raise SystemExit("recording the seed needs root (network namespace, tcpdump)")
    seed_path.parent.mkdir(parents=True, exist_ok=True)
    keylog = seed_path.with_suffix(".keys")
    keylog.unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tls-bench-seed-"))
    manifest: list[dict[str, object]] = []
    try:
        certs = make_certs(work)
        rng = random.Random(20240501)
        for i, mb in enumerate(bulk_mb):
            (work / f"bulk_{i}.bin").write_bytes(rng.randbytes(mb << 20))
        for i, mb in enumerate(upload_mb):
            (work / f"upload_{i}.bin").write_bytes(rng.randbytes(mb << 20))
        for i, kb in enumerate([1, 4, 16, 48, 120]):
            (work / f"small_{i}.bin").write_bytes(rng.randbytes(kb << 10))
        scenarios = build_scenarios(certs, bulk_mb, upload_mb)
        with Netns() as ns:
            for ip in sorted(({s.ip for s in scenarios} | {CLIENT_IP}) - {"127.0.0.1"}):
                ns.run(["ip", "addr", "add", f"{ip}/32", "dev", "lo"])
            tmp_cap = work / "seed.pcap"
            td_err = work / "tcpdump.err"
            with open(td_err, "w") as err:
                td = subprocess.Popen(
                    ns.cmd(
                        [
                            "tcpdump",
                            "-i",
                            "lo",
                            "-s",
                            "0",
                            "-B",
                            "262144",
                            "-Z",
                            "root",
                            "-U",
                            "-w",
                            str(tmp_cap),
                            "tcp",
                        ]
                    ),
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            deadline = time.monotonic() + 10
            while "listening on" not in td_err.read_text():
                if td.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"tcpdump did not start: {td_err.read_text()}")
                time.sleep(0.05)
            time.sleep(0.3)
            try:
                for s in scenarios:
                    manifest += run_scenario(ns, s, work, keylog)
                    time.sleep(0.05)
            finally:
                # tcpdump hands packets over in ring-buffer blocks retired after up to 1 s, and does
                # not drain the open block when interrupted: wait so the last connections are kept
                time.sleep(2.5)
                td.send_signal(signal.SIGINT)
                stop(td, 10)
            tail = td_err.read_text()
            log("tcpdump: " + " / ".join(ln for ln in tail.splitlines() if "packets" in ln))
            dropped = [ln for ln in tail.splitlines() if "dropped by kernel" in ln]
            if dropped and not dropped[0].startswith("0 "):
                log(f"WARNING: tcpdump dropped packets ({dropped[0]}); the seed has gaps")
        shutil.move(str(tmp_cap), seed_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    info: dict[str, object] = {"seed": str(seed_path), "keylog": str(keylog), "connections": manifest}
    seed_path.with_suffix(".manifest.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def run_scenario(ns: Netns, s: Scenario, work: Path, keylog: Path) -> list[dict[str, object]]:
    server: subprocess.Popen[bytes] | None = None
    out: list[dict[str, object]] = []
    try:
        if s.server is not None or s.server_python:
            if s.server_python:
                argv = [sys.executable, "-c", s.server_python, s.ip]
            else:
                argv = ["openssl", "s_server", "-accept", f"{s.ip}:443", "-quiet", *(s.server or ())]
            # stdin stays open: s_server shuts down at EOF on its stdin, even with -quiet
            server = subprocess.Popen(
                ns.cmd(argv),
                cwd=work,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while not listening(server.pid, s.ip, 443):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{s.name}: server did not start")
                time.sleep(0.02)
        for c in s.clients:
            if c.python:
                argv = [sys.executable, "-c", c.python, s.ip, CLIENT_IP]
            else:
                # -quiet implies -ign_eof: undo it so that stdin EOF ends handshake-only clients
                argv = [
                    "openssl",
                    "s_client",
                    "-connect",
                    f"{s.ip}:443",
                    "-quiet",
                    "-no_ign_eof",
                    "-nocommands",  # else random upload data starting with Q/R/k ends or renegotiates
                    "-bind",
                    f"{CLIENT_IP}:0",
                    "-keylogfile",
                    str(keylog),
                    *c.args,
                ]
            stdin = (work / c.stdin_file).read_bytes() if c.stdin_file else c.stdin
            t0, t0_ns = time.monotonic(), time.time_ns()
            r = subprocess.run(
                ns.cmd(argv),
                cwd=work,
                input=stdin,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=120,
                check=False,
            )
            err = r.stderr.decode(errors="replace").strip().splitlines()
            err = [ln for ln in err if "verify error" in ln][:1] + err[-1:]
            out.append(
                {
                    "scenario": s.name,
                    "server": f"{s.ip}:443",
                    "expect_ok": s.expect_ok,
                    "client_rc": r.returncode,
                    "seconds": round(time.monotonic() - t0, 3),
                    "t_start_ns": t0_ns,  # wall clock, as tcpdump's timestamps: labels seed connections
                    "t_end_ns": time.time_ns(),
                    "client_stderr_tail": " | ".join(ln[:200] for ln in err),
                }
            )
            log(f"{s.name}: rc={r.returncode} {out[-1]['client_stderr_tail']}")
    finally:
        if server is not None:
            stop(server)
    return out


# --------------------------------------------------------------------------------------------------
# Reading the seed
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class SeedPacket:
    rel_ns: int  # time since the connection's first packet
    frame: bytes
    orig_len: int
    ip_off: int
    tcp_off: int
    c2s: bool
    sack_offs: tuple[int, ...]  # offsets of SACK edge values (peer sequence space) in `frame`


@dataclass(slots=True)
class SeedConn:
    client: tuple[bytes, int]
    server: tuple[bytes, int]
    start_ns: int
    packets: list[SeedPacket] = field(default_factory=list)
    payload: int = 0
    closed: bool = False
    kind: str = ""  # bulk | tls | tcp-only
    record_bytes: int = 0  # size of its pcap records
    scenario: str = ""  # from the seed's manifest, when there is one
    expect_ok: bool | None = None


@dataclass(frozen=True)
class PcapFormat:
    nano: bool
    linktype: int


def ip_offset(linktype: int, frame: bytes) -> int | None:
    """Offset of an IPv4 header in `frame` for the common link types, or None."""
    if linktype == 1:  # Ethernet, optionally 802.1Q tagged
        off, etype = 14, int.from_bytes(frame[12:14], "big")
        while etype in (0x8100, 0x88A8) and len(frame) >= off + 4:
            etype, off = int.from_bytes(frame[off + 2 : off + 4], "big"), off + 4
        return off if etype == 0x0800 else None
    if linktype == 113:  # Linux cooked v1
        return 16 if frame[14:16] == b"\x08\x00" else None
    if linktype == 276:  # Linux cooked v2
        return 20 if frame[0:2] == b"\x08\x00" else None
    if linktype == 0:  # BSD loopback
        return 4 if int.from_bytes(frame[0:4], "little") == 2 else None
    if linktype in (12, 101, 228):  # raw IP
        return 0 if frame and frame[0] >> 4 == 4 else None
    return None


def iter_pcap(path: Path) -> tuple[PcapFormat, Iterator[tuple[int, bytes, int]]]:
    """(format, iterator of (ts_ns, frame, orig_len)) for a classic pcap file."""
    f = open(path, "rb")  # noqa: SIM115 - closed by the generator
    hdr = f.read(24)
    if len(hdr) < 24:
        raise SystemExit(f"{path}: not a pcap file")
    for endian in "<>":
        magic = struct.unpack(endian + "I", hdr[:4])[0]
        if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            break
    else:
        raise SystemExit(f"{path}: not a classic pcap (pcapng? convert with `editcap -F pcap`)")
    nano = magic == PCAP_MAGIC_NS
    linktype = struct.unpack(endian + "I", hdr[20:24])[0] & 0x0FFFFFFF
    rec = struct.Struct(endian + "IIII")
    mult = 1 if nano else 1000

    def gen() -> Iterator[tuple[int, bytes, int]]:
        with f:
            while True:
                rh = f.read(16)
                if len(rh) < 16:
                    return
                sec, frac, incl, orig = rec.unpack(rh)
                data = f.read(incl)
                if len(data) < incl:
                    return
                yield sec * 1_000_000_000 + frac * mult, data, orig

    return PcapFormat(nano, linktype), gen()


def sack_offsets(frame: bytes, tcp_off: int, doff: int) -> tuple[int, ...]:
    offs: list[int] = []
    i, end = tcp_off + 20, tcp_off + doff
    while i < end:
        kind = frame[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= end:
            break
        ln = frame[i + 1]
        if ln < 2:
            break
        if kind == 5:
            offs.extend(range(i + 2, min(i + ln, end) - 3, 4))
        i += ln
    return tuple(offs)


def load_seed(path: Path) -> tuple[PcapFormat, list[SeedConn]]:
    """Split a seed capture into TCP/IPv4 connections (packets in time order, times relative)."""
    fmt, records = iter_pcap(path)
    conns: list[SeedConn] = []
    table: dict[tuple[bytes, int, bytes, int], SeedConn] = {}
    skipped = 0
    for ts, frame, orig in sorted(records, key=lambda r: r[0]):
        io = ip_offset(fmt.linktype, frame)
        if io is None or len(frame) < io + 20 or frame[io + 9] != 6 or frame[io] >> 4 != 4:
            skipped += 1
            continue
        to = io + (frame[io] & 0x0F) * 4
        if len(frame) < to + 20:
            skipped += 1
            continue
        src, dst = frame[io + 12 : io + 16], frame[io + 16 : io + 20]
        sp, dp = struct.unpack_from("!HH", frame, to)
        flags = frame[to + 13]
        doff = (frame[to + 12] >> 4) * 4
        key = (src, sp, dst, dp) if (src, sp) < (dst, dp) else (dst, dp, src, sp)
        conn = table.get(key)
        syn_only = flags & 0x12 == 0x02
        if conn is None or (syn_only and conn.closed):
            if syn_only:
                client, server = (src, sp), (dst, dp)
            elif flags & 0x12 == 0x12:
                client, server = (dst, dp), (src, sp)
            else:  # no handshake seen: the lower port is the server
                client, server = ((src, sp), (dst, dp)) if sp > dp else ((dst, dp), (src, sp))
            conn = table[key] = SeedConn(client, server, ts)
            conns.append(conn)
        c2s = (src, sp) == conn.client
        ip_len = int.from_bytes(frame[io + 2 : io + 4], "big")
        conn.payload += max(0, ip_len - (to - io) - doff)
        if flags & 0x05:
            conn.closed = True
        sacks = sack_offsets(frame, to, doff) if doff > 20 else ()
        conn.packets.append(SeedPacket(ts - conn.start_ns, frame, orig, io, to, c2s, sacks))
    for c in conns:
        c.kind = "bulk" if c.payload > BULK_MIN_PAYLOAD else ("tls" if c.payload else "tcp-only")
        c.record_bytes = sum(16 + len(p.frame) for p in c.packets)
    missing = label_from_manifest(path.with_suffix(".manifest.json"), conns)
    if missing:
        log(f"WARNING: no connection in the seed for client runs {missing}")
    if skipped:
        log(f"seed: skipped {skipped} non TCP/IPv4 records")
    return fmt, conns


def label_from_manifest(manifest: Path, conns: list[SeedConn]) -> list[str]:
    """Name each seed connection after the client run whose time window holds its first packet.

    Returns the scenarios of client runs that have no connection in the seed.
    """
    if not manifest.is_file():
        return []
    runs = json.loads(manifest.read_text()).get("connections", [])
    seen: set[int] = set()
    slack = 20_000_000  # 20 ms of clock skew between us and tcpdump's timestamps
    for c in conns:
        for i, r in enumerate(runs):
            if "t_start_ns" in r and r["t_start_ns"] - slack <= c.start_ns <= r["t_end_ns"] + slack:
                c.scenario, c.expect_ok = r["scenario"], r["expect_ok"]
                seen.add(i)
                break
    return [r["scenario"] for i, r in enumerate(runs) if i not in seen]


# --------------------------------------------------------------------------------------------------
# Replication
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Instance:
    conn: SeedConn
    start_ns: int
    cip: bytes
    sip: bytes
    cport: int
    sport: int
    dc: int  # shift of the client's sequence space
    ds: int  # shift of the server's sequence space


def make_instance(j: int, conn: SeedConn, start_ns: int, client_hosts: int) -> Instance:
    """Instance `j` of a seed connection: a unique client (address, port), shifted sequence numbers."""
    host, k = j % client_hosts, j // client_hosts
    cip = (CLIENT_NET + 1 + host).to_bytes(4, "big")
    srv_last = conn.server[0][3]  # 127.0.0.x -> 198.19.<j % 16>.x: 16 "sites" of each server
    sip = (SERVER_NET + ((j % 16) << 8) + srv_last).to_bytes(4, "big")
    cport = 32768 + k % 28232
    dc = (j * 2654435761 + 0x1234567) & MASK32
    ds = (j * 2246822519 + 0x7654321) & MASK32
    return Instance(conn, start_ns, cip, sip, cport, conn.server[1], dc, ds)


def ones_complement_checksum(data: bytes | bytearray) -> int:
    """Internet checksum (RFC 1071); 2**16 == 1 (mod 0xFFFF) turns the word sum into one big modulo."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    s = int.from_bytes(data, "big") % 0xFFFF
    return ~(s or 0xFFFF) & 0xFFFF


def rewrite(inst: Instance, p: SeedPacket, fix_tcp_checksum: bool) -> bytes:
    """The seed packet `p` as instance `inst` sends it: new addresses, ports, sequence numbers."""
    buf = bytearray(p.frame)
    io, to = p.ip_off, p.tcp_off
    if p.c2s:
        src, dst, sp, dp, dseq, dack = inst.cip, inst.sip, inst.cport, inst.sport, inst.dc, inst.ds
    else:
        src, dst, sp, dp, dseq, dack = inst.sip, inst.cip, inst.sport, inst.cport, inst.ds, inst.dc
    buf[io + 12 : io + 16] = src
    buf[io + 16 : io + 20] = dst
    buf[io + 10] = buf[io + 11] = 0
    struct.pack_into("!H", buf, io + 10, ones_complement_checksum(buf[io:to]))
    seq, ack = struct.unpack_from("!II", buf, to + 4)
    ack = (ack + dack) & MASK32 if buf[to + 13] & 0x10 else ack
    struct.pack_into("!HHII", buf, to, sp, dp, (seq + dseq) & MASK32, ack)
    for o in p.sack_offs:
        struct.pack_into("!I", buf, o, (struct.unpack_from("!I", buf, o)[0] + dack) & MASK32)
    end = io + int.from_bytes(buf[io + 2 : io + 4], "big")
    if fix_tcp_checksum and end <= len(buf):  # not for a frame cut short by the snap length
        buf[to + 16] = buf[to + 17] = 0
        pseudo = src + dst + b"\0\x06" + (end - to).to_bytes(2, "big")
        struct.pack_into("!H", buf, to + 16, ones_complement_checksum(pseudo + buf[to:end]))
    return bytes(buf)


def merge(instances: Iterator[Instance]) -> Iterator[tuple[int, Instance, SeedPacket]]:
    """Packets of all instances in time order; instances must come in order of start time."""
    heap: list[tuple[int, int, Instance, int]] = []
    n = 0
    pending = next(instances, None)
    while heap or pending is not None:
        while pending is not None and (not heap or pending.start_ns <= heap[0][0]):
            heapq.heappush(heap, (pending.start_ns + pending.conn.packets[0].rel_ns, n, pending, 0))
            n += 1
            pending = next(instances, None)
        ts, _, inst, i = heapq.heappop(heap)
        pkts = inst.conn.packets
        yield ts, inst, pkts[i]
        if i + 1 < len(pkts):
            heapq.heappush(heap, (inst.start_ns + pkts[i + 1].rel_ns, n, inst, i + 1))
            n += 1


def ip_text(b: bytes) -> str:
    return str(ipaddress.IPv4Address(b))


def logged(instances: Iterator[Instance], f: TextIO) -> Iterator[Instance]:
    """Pass instances through, writing one CSV line of ground truth for each."""
    w = csv.writer(f, lineterminator="\n")
    head = "flow start client_ip client_port server_ip server_port kind scenario expect_ok packets"
    w.writerow(head.split())
    for j, inst in enumerate(instances):
        c = inst.conn
        start = dt.datetime.fromtimestamp(inst.start_ns / 1e9, dt.UTC).isoformat().replace("+00:00", "Z")
        ok = "" if c.expect_ok is None else str(c.expect_ok).lower()
        cip, sip = ip_text(inst.cip), ip_text(inst.sip)
        w.writerow([j, start, cip, inst.cport, sip, inst.sport, c.kind, c.scenario, ok, len(c.packets)])
        yield inst


def write_pcap(
    out: Path, fmt: PcapFormat, instances: Iterator[Instance], fix_tcp_checksum: bool = True
) -> tuple[int, int]:
    """Write all packets of `instances` to `out`, and `<out>.flows.csv`; returns (packets, bytes)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    packets = 0
    div = 1 if fmt.nano else 1000
    rec = struct.Struct("<IIII")
    flows = out.with_suffix(".flows.csv")
    with open(tmp, "wb", buffering=1 << 22) as f, open(flows, "w", newline="") as fl:
        instances = logged(instances, fl)
        f.write(
            struct.pack("<IHHiIII", PCAP_MAGIC_NS if fmt.nano else PCAP_MAGIC_US, 2, 4, 0, 0, SNAPLEN, fmt.linktype)
        )
        for ts, inst, p in merge(instances):
            data = rewrite(inst, p, fix_tcp_checksum)
            f.write(rec.pack(ts // 1_000_000_000, (ts % 1_000_000_000) // div, len(data), p.orig_len))
            f.write(data)
            packets += 1
    os.replace(tmp, out)
    return packets, out.stat().st_size


def bulk_instances(
    conns: list[SeedConn],
    target_bytes: int,
    n_conns: int,
    duration_s: float,
    rng: random.Random,
    base_ns: int,
    client_hosts: int,
    stats: dict[str, int],
) -> Iterator[Instance]:
    """Instances mixing bulk and small seed connections until `target_bytes` of records are chosen."""
    bulk = [c for c in conns if c.kind == "bulk"]
    small = [c for c in conns if c.kind != "bulk"]
    if not bulk or not small:
        raise SystemExit("the seed needs both bulk and small connections")
    avg_b = sum(c.record_bytes for c in bulk) / len(bulk)
    avg_s = sum(c.record_bytes for c in small) / len(small)
    # solve n_bulk*avg_b + n_small*avg_s = target, n_bulk + n_small = n_conns
    n_bulk = (target_bytes - n_conns * avg_s) / max(1.0, avg_b - avg_s)
    p_bulk = min(1.0, max(0.002, n_bulk / max(1, n_conns)))
    mean = p_bulk * avg_b + (1 - p_bulk) * avg_s
    rate = (target_bytes / mean) / duration_s  # connections per second
    log(
        f"seed: {len(bulk)} bulk (avg {avg_b / 1e6:.1f} MB), {len(small)} small (avg {avg_s / 1e3:.1f} kB); "
        f"bulk share {p_bulk:.3f}, ~{target_bytes / mean:.0f} connections at {rate:.2f}/s"
    )
    total, t, j = 24, 0.0, 0
    bulk_order: list[SeedConn] = []
    while total < target_bytes:
        if rng.random() < p_bulk:
            if not bulk_order:  # each bulk connection once per shuffled round
                bulk_order = bulk[:]
                rng.shuffle(bulk_order)
            conn = bulk_order.pop()
        else:
            conn = rng.choice(small)
        t += rng.expovariate(rate)
        yield make_instance(j, conn, base_ns + int(t * 1e9), client_hosts)
        total += conn.record_bytes
        stats[conn.kind] = stats.get(conn.kind, 0) + 1
        j += 1


def many_flow_instances(
    conns: list[SeedConn],
    n: int,
    handshake_share: float,
    rate: float,
    rng: random.Random,
    base_ns: int,
    client_hosts: int,
    stats: dict[str, int],
) -> Iterator[Instance]:
    """`n` short flows: TCP-only ones (SYN/RST, SYN/SYN-ACK/ACK/RST) and small real TLS handshakes."""
    tcp_only = [c for c in conns if c.kind == "tcp-only"]
    tls = [c for c in conns if c.kind == "tls" and len(c.packets) <= 40]
    if not tcp_only or not tls:
        raise SystemExit("the seed needs TCP-only (refused/aborted) and small TLS connections")
    t = 0.0
    for j in range(n):
        conn = rng.choice(tls) if rng.random() < handshake_share else rng.choice(tcp_only)
        t += rng.expovariate(rate)
        stats[conn.kind] = stats.get(conn.kind, 0) + 1
        yield make_instance(j, conn, base_ns + int(t * 1e9), client_hosts)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--out",
        type=Path,
        default=Path("/tmp/tls-bench/big.pcap"),
        help="capture to write (default /tmp/tls-bench/big.pcap)",
    )
    ap.add_argument(
        "--seed",
        type=Path,
        default=None,
        help="replicate this seed capture (default: <out dir>/seed.pcap, recorded with seed.keys and "
        "seed.manifest.json beside it when missing)",
    )
    ap.add_argument("--new-seed", action="store_true", help="record the seed even if it exists")
    ap.add_argument("--size-mb", type=float, default=200.0, help="target size in MB (10^6 bytes), default 200")
    ap.add_argument(
        "--connections",
        type=int,
        default=0,
        help="approximate connection count (default 15 per MB of target)",
    )
    ap.add_argument("--duration", type=float, default=600.0, help="capture time span in seconds (default 600)")
    ap.add_argument(
        "--many-flows",
        type=int,
        default=0,
        metavar="N",
        help="instead: write N short flows (TCP-only and small handshakes) for memory work",
    )
    ap.add_argument(
        "--handshake-share",
        type=float,
        default=0.1,
        help="--many-flows: share of flows that are real TLS handshakes (default 0.1)",
    )
    ap.add_argument(
        "--flow-rate",
        type=float,
        default=2000.0,
        help="--many-flows: new flows per second of capture time (default 2000)",
    )
    ap.add_argument(
        "--client-hosts",
        type=int,
        default=0,
        help="distinct client addresses (default 4000, or 60000 with --many-flows)",
    )
    ap.add_argument("--rng-seed", type=int, default=1, help="replication is deterministic given seed + this")
    ap.add_argument(
        "--bulk-mb",
        default="1,1,1,1,2,2,2,3,3,4,5,8,20",
        help="sizes of the recorded bulk downloads, MiB (comma separated)",
    )
    ap.add_argument("--upload-mb", default="1,2", help="sizes of the recorded bulk uploads, MiB")
    ap.add_argument(
        "--raw-tcp-checksum",
        action="store_true",
        help="keep TCP checksums as captured (loopback offload leaves them wrong) instead of fixing them",
    )
    ap.add_argument(
        "--site",
        type=int,
        default=0,
        help="shift every sequence number by this site number, so that captures built with different sites "
        "are different connections even where addresses repeat (multi-file benchmarks for --jobs)",
    )
    ap.add_argument("--record-only", action="store_true", help="only record the seed")
    a = ap.parse_args(argv)

    t0 = time.monotonic()
    seed = a.seed or a.out.parent / "seed.pcap"
    if a.seed is not None and not seed.is_file():
        raise SystemExit(f"{seed}: no such seed capture")
    if a.new_seed or a.record_only or not seed.is_file():
        bulk = [int(x) for x in a.bulk_mb.split(",") if x]
        up = [int(x) for x in a.upload_mb.split(",") if x]
        log(f"recording seed {seed} ({len(bulk)} downloads, {len(up)} uploads, handshakes and failures)")
        info = record_seed(seed, bulk, up)
        conns_run = info["connections"]
        assert isinstance(conns_run, list)
        log(
            f"seed recorded in {time.monotonic() - t0:.1f} s: {seed.stat().st_size / 1e6:.1f} MB, "
            f"{len(conns_run)} client runs"
        )
    else:
        log(f"reusing seed {seed} (--new-seed records a new one)")
    if a.record_only:
        return 0
    t1 = time.monotonic()
    fmt, conns = load_seed(seed)
    kinds = {k: sum(1 for c in conns if c.kind == k) for k in ("bulk", "tls", "tcp-only")}
    log(f"seed {seed}: {sum(len(c.packets) for c in conns)} packets, {len(conns)} connections {kinds}")
    rng = random.Random(a.rng_seed)
    base_ns = min(c.start_ns for c in conns)
    stats: dict[str, int] = {}
    if a.many_flows:
        hosts = a.client_hosts or 60000
        insts = many_flow_instances(conns, a.many_flows, a.handshake_share, a.flow_rate, rng, base_ns, hosts, stats)
    else:
        hosts = a.client_hosts or 4000
        target = int(a.size_mb * 1e6)
        n_conns = a.connections or int(15 * a.size_mb)
        insts = bulk_instances(conns, target, n_conns, a.duration, rng, base_ns, hosts, stats)
    if a.site:
        shift = (a.site * 0x9E3779B9) & MASK32
        insts = (dataclasses.replace(i, dc=(i.dc + shift) & MASK32, ds=(i.ds + shift) & MASK32) for i in insts)
    packets, size = write_pcap(a.out, fmt, insts, not a.raw_tcp_checksum)
    t2 = time.monotonic()
    summary = {
        "out": str(a.out),
        "bytes": size,
        "packets": packets,
        "connections": sum(stats.values()),
        "connections_by_kind": stats,
        "seed": str(seed),
        "replicate_seconds": round(t2 - t1, 1),
        "total_seconds": round(t2 - t0, 1),
    }
    a.out.with_suffix(".summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    log(
        f"wrote {a.out}: {size / 1e6:.1f} MB, {packets} packets, {summary['connections']} connections "
        f"{stats}; replication {t2 - t1:.1f} s, total {t2 - t0:.1f} s"
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
