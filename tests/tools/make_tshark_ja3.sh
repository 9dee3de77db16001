#!/usr/bin/env bash
# Regenerate tests/data/tshark_ja3.tsv: tshark's JA3 for every ClientHello of the Zeek TLS traces
# and of samples/ (an oracle we did not write). Needs tshark (Debian: apt-get install tshark).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
out="$here/tests/data/tshark_ja3.tsv"
tshark --version | head -1 >&2
{
  printf 'capture\tclient_ip\tclient_port\tja3\n'
  for f in "$here"/../shared/conformance/zeek/traces/tls/*.pcap "$here"/samples/*.pcap "$here"/samples/*.pcapng; do
    [ -e "$f" ] || continue
    case "$f" in *dtls*|*starttls*) continue;; esac
    rel=${f#"$here"/}
    tshark -r "$f" -Y 'tls.handshake.type == 1 && tcp' -T fields -E separator=/t \
      -e ip.src -e ipv6.src -e tcp.srcport -e tls.handshake.ja3 2>/dev/null |
      awk -F'\t' -v c="$rel" '$4 != "" { ip = ($1 != "") ? $1 : $2; print c "\t" ip "\t" $3 "\t" $4 }'
  done
} > "$out"
echo "wrote $out ($(($(wc -l < "$out") - 1)) hellos)" >&2
