#!/usr/bin/env bash
# Regenerate tests/data/keylog/tshark_leaf.tsv: for every Certificate message tshark reads with the
# key log (TLS 1.3 ones are encrypted) in the captures below, the SHA-256 of the first certificate:
# an oracle we did not write. capture_sha256 lets the test notice a regenerated capture.
# Needs tshark, xxd, sha256sum.
set -euo pipefail
here=$(cd "$(dirname "$0")/../../.." && pwd)
out="$here/tests/data/keylog/tshark_leaf.tsv"
captures="cert-expired.pcap tls13-openssl-bulk.pcapng tls13-hrr-openssl.pcap resumption-openssl.pcap go-ok.pcap
gnutls-ok.pcap java-ok.pcapng node-ok.pcap python-ssl-ok.pcap mtls-client-cert-rejected.pcapng ipv6-openssl.pcap
tls13-curl-alpn.pcap client-aborted.pcap cert-weak-rsa1024.pcapng"
tshark --version | head -1 >&2
{
  printf 'capture\tcapture_sha256\tsrc_port\tdst_port\tleaf_sha256\n'
  for c in $captures; do
    f="$here/samples/$c"
    keys="$here/samples/keylogs/${c%.*}.keys"
    digest=$(sha256sum "$f" | cut -d' ' -f1)
    tshark -r "$f" -o "tls.keylog_file:$keys" -Y 'tls.handshake.type == 11' -T fields -E separator=/t \
      -e tcp.srcport -e tcp.dstport -e tls.handshake.certificate 2>/dev/null |
      while IFS=$'\t' read -r sp dp certs; do
        [ -n "$certs" ] || continue
        leaf=${certs%%,*}
        printf '%s\t%s\t%s\t%s\t%s\n' "samples/$c" "$digest" "$sp" "$dp" "$(printf '%s' "$leaf" | xxd -r -p | sha256sum | cut -d' ' -f1)"
      done
  done
} > "$out"
echo "wrote $out ($(($(wc -l < "$out") - 1)) certificates)" >&2
