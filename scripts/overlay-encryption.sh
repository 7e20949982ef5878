#!/usr/bin/env bash
# Whether this machine's kernel can carry Docker's encrypted overlay networks: the overlay
# driver protects traffic between nodes with ESP in transport mode, AES-GCM (rfc4106).
# Without CONFIG_INET_ESP (or the GCM cipher) Docker still creates an "encrypted" network,
# and every packet between nodes is silently dropped. Probed by adding one such security
# association in a throwaway network namespace; nothing on the host changes.
#
# Exit 0: it can. 3: it cannot (why on stderr). Anything else: the probe could not run.
set -euo pipefail

command -v ip >/dev/null && command -v unshare >/dev/null || {
    echo "overlay-encryption: needs ip (iproute2) and unshare (util-linux)" >&2
    exit 1
}
# 16 bytes of key and 4 of salt, a 128-bit tag: the shape dockerd programs.
key=0x0102030405060708090a0b0c0d0e0f1011121314
if out="$(unshare -n ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 reqid 1 \
    mode transport aead 'rfc4106(gcm(aes))' "$key" 128 2>&1)"; then
    exit 0
fi
echo "overlay-encryption: this kernel cannot do ESP with AES-GCM ($out)" >&2
exit 3
