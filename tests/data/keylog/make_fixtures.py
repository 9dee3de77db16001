"""Regenerate the key-log decryption fixtures: OpenSSL s_client <-> s_server through a recording TCP relay.

Each fixture (``<name>.json``) holds the NSS key log s_server wrote and the TCP payload bytes
(hex) of one connection in the order the relay passed them on (``chunks``: [direction, hex]), for a cipher suite or feature the sample captures lack.
The client sends "hello", then (optionally) a command letter (K: KeyUpdate, R: renegotiate),
then "world"; s_server -rev answers each line reversed. Run: ``.venv/bin/python tests/data/keylog/make_fixtures.py``
(needs the ``openssl`` command; the PKI of samples/gen/pki).
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]
PKI = ROOT / "samples" / "gen" / "pki"

# name: (s_server options, extra s_client options (-cipher/-ciphersuites are copied), command letter sent between the two lines, note)
FIXTURES: dict[str, tuple[list[str], list[str], str, str]] = {
    "tls13-aes128gcm-keyupdate": (
        ["-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"],
        [],
        "K",
        "TLS 1.3 AES-128-GCM; the client sends KeyUpdate(update_requested), the server answers with its own",
    ),
    "tls13-chacha20": (
        ["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"],
        [],
        "",
        "TLS 1.3 ChaCha20-Poly1305",
    ),
    "tls13-aes128ccm": (
        ["-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_SHA256"],
        [],
        "",
        "TLS 1.3 AES-128-CCM",
    ),
    "tls13-aes128ccm8": (
        ["-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_8_SHA256"],
        [],
        "",
        "TLS 1.3 AES-128-CCM-8",
    ),
    "tls12-chacha20": (["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"], [], "", "TLS 1.2 ChaCha20 (RFC 7905)"),
    "tls12-aes128ccm": (["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-CCM"], [], "", "TLS 1.2 AES-128-CCM"),
    "tls12-aes256ccm8": (["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-CCM8"], [], "", "TLS 1.2 AES-256-CCM-8"),
    "tls12-cbc-sha1-etm": (
        ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"],
        [],
        "",
        "TLS 1.2 AES-128-CBC HMAC-SHA1, encrypt_then_mac",
    ),
    "tls12-cbc-sha1-mte": (
        ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA", "-no_etm"],
        [],
        "",
        "TLS 1.2 AES-128-CBC HMAC-SHA1, MAC-then-encrypt",
    ),
    "tls12-cbc-sha256-mte": (
        ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256", "-no_etm"],
        [],
        "",
        "TLS 1.2 AES-128-CBC HMAC-SHA256, MAC-then-encrypt",
    ),
    "tls12-cbc-sha384-etm": (
        ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA384"],
        [],
        "",
        "TLS 1.2 AES-256-CBC HMAC-SHA384 (SHA-384 PRF), encrypt_then_mac",
    ),
    "tls12-cbc-sha384-mte": (
        ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA384", "-no_etm"],
        [],
        "",
        "TLS 1.2 AES-256-CBC HMAC-SHA384 (SHA-384 PRF), MAC-then-encrypt",
    ),
    "tls11-cbc-mte": (
        ["-tls1_1", "-cipher", "ECDHE-ECDSA-AES256-SHA:@SECLEVEL=0", "-no_etm"],
        [],
        "",
        "TLS 1.1 AES-256-CBC HMAC-SHA1 (explicit IV, MD5+SHA1 PRF), MAC-then-encrypt",
    ),
    "tls10-cbc-mte": (
        ["-tls1", "-cipher", "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0", "-no_etm"],
        [],
        "",
        "TLS 1.0 AES-128-CBC HMAC-SHA1 (implicit chained IV), MAC-then-encrypt",
    ),
    "tls13-early-data": (
        ["-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384", "-early_data"],
        [],
        "0-RTT",
        "TLS 1.3 resumption with 0-RTT: a first connection (not recorded) saves the session, the second sends"
        " 'early' as early data, then EndOfEarlyData",
    ),
    "tls12-renegotiation": (
        ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256", "-client_renegotiation"],
        [],
        "R",
        "TLS 1.2 AES-128-GCM; the client renegotiates between the two lines",
    ),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Relay(threading.Thread):
    """Accepts one connection, forwards it to ``target``, records each direction's bytes."""

    def __init__(self, listen_port: int, target_port: int) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", listen_port))
        self.sock.listen(1)
        self.target_port = target_port
        self.chunks: list[tuple[int, bytes]] = []  # (0 client->server / 1 server->client, bytes) as relayed
        self.lock = threading.Lock()

    def _pump(self, src: socket.socket, dst: socket.socket, direction: int) -> None:
        while True:
            try:
                chunk = src.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
                return
            with self.lock:
                self.chunks.append((direction, chunk))
            dst.sendall(chunk)

    def run(self) -> None:
        client, _ = self.sock.accept()
        server = socket.create_connection(("127.0.0.1", self.target_port))
        t = threading.Thread(target=self._pump, args=(server, client, 1), daemon=True)
        t.start()
        self._pump(client, server, 0)
        t.join(5)
        client.close()
        server.close()
        self.sock.close()


def make(name: str, server_opts: list[str], client_opts: list[str], command: str, note: str) -> None:
    for opt in ("-cipher", "-ciphersuites"):  # the client offers exactly what the server is to pick
        if opt in server_opts:
            client_opts = [*client_opts, opt, server_opts[server_opts.index(opt) + 1]]
    early = command == "0-RTT"
    with tempfile.TemporaryDirectory() as tmp:
        keys = pathlib.Path(tmp) / "keys"
        session, early_file = pathlib.Path(tmp) / "session.pem", pathlib.Path(tmp) / "early.txt"
        sport, rport = free_port(), free_port()
        server = subprocess.Popen(
            [
                "openssl",
                "s_server",
                "-accept",
                f"127.0.0.1:{sport}",
                "-naccept",
                "2" if early else "1",
                *([] if early else ["-rev"]),  # s_server refuses -rev with -early_data
                "-keylogfile",
                str(keys),
                "-cert",
                str(PKI / "server.pem"),
                "-key",
                str(PKI / "server.key"),
                *server_opts,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        if early:  # a first connection, straight to the server, to get a session that allows early data
            first = subprocess.Popen(
                ["openssl", "s_client", "-connect", f"127.0.0.1:{sport}", "-sess_out", str(session), *client_opts],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            assert first.stdin is not None
            time.sleep(0.5)  # long enough for the NewSessionTickets
            first.stdin.write(b"first\n")
            first.stdin.close()
            first.wait(10)
            early_file.write_bytes(b"early\n")
            client_opts = [*client_opts, "-sess_in", str(session), "-early_data", str(early_file)]
            command = ""
        relay = Relay(rport, sport)
        relay.start()
        client = subprocess.Popen(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{rport}", "-servername", "server.test", *client_opts],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert client.stdin is not None
        time.sleep(0.5)
        lines = ["hello\n"] + ([command + "\n"] if command else []) + ["world\n"]
        try:
            for line in lines:
                client.stdin.write(line.encode())
                client.stdin.flush()
                time.sleep(0.4)
            client.stdin.close()
        except BrokenPipeError:
            server.kill()
            raise SystemExit(f"{name}: the client ended early (no common suite?)") from None
        client.wait(10)
        relay.join(10)
        server.wait(10)
        keylog = keys.read_text()
    out = {
        "name": name,
        "note": note,
        "server_command": "openssl s_server " + ("" if early else "-rev ") + " ".join(server_opts),
        "client_command": "openssl s_client " + " ".join(client_opts),
        "client_lines": lines,
        "openssl": subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip(),
        "keylog": keylog,
        "chunks": [[d, chunk.hex()] for d, chunk in relay.chunks],
    }
    (HERE / f"{name}.json").write_text(json.dumps(out, indent=1) + "\n")
    sizes = [sum(len(c) for d, c in relay.chunks if d == x) for x in (0, 1)]
    print(f"{name}: {sizes[0]} + {sizes[1]} bytes", file=sys.stderr)


if __name__ == "__main__":
    wanted = set(sys.argv[1:])
    for fixture_name, (s_opts, c_opts, cmd, text) in FIXTURES.items():
        if not wanted or fixture_name in wanted:
            make(fixture_name, s_opts, c_opts, cmd, text)
