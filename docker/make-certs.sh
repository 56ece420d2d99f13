#!/usr/bin/env bash
# A private CA and the certificates docker-compose.tls.yml mounts, written to
# DIR (default: certs/):
#
#   ca.pem                          the CA: what --ca, --barista-ca and
#                                   --tls-client-ca trust
#   cafe.pem, cafe-key.pem          the café's server certificate, which
#                                   Envoy presents too (cafe, envoy,
#                                   localhost, 127.0.0.1)
#   barista.pem, barista-key.pem    the baristas' (barista, localhost, 127.0.0.1)
#   cafe-client.pem, -key.pem       what the café presents to the baristas
#
# For trying TLS out, not for production: the CA's key sits beside the rest.
# Running it again makes new certificates with the same names (a renewal:
# send the servers SIGHUP and new connections get them).
set -euo pipefail
dir=${1:-certs}
mkdir -p "$dir"
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

if [ ! -f ca.pem ]; then
    key ca-key.pem
    openssl req -x509 -new -key ca-key.pem -days 365 -subj "/CN=cafe private CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem
fi

# issue NAME SUBJECT_ALT_NAMES
issue() {
    key "$1-key.pem"
    openssl req -new -key "$1-key.pem" -subj "/CN=$1" -out "$1.csr"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
        -days 90 -out "$1.pem" 2>/dev/null -extfile <(printf '%s\n' \
            "subjectAltName=$2" \
            "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature" \
            "extendedKeyUsage=serverAuth,clientAuth")
    rm "$1.csr"
}
issue cafe "DNS:cafe,DNS:envoy,DNS:localhost,IP:127.0.0.1"
issue barista "DNS:barista,DNS:localhost,IP:127.0.0.1"
issue cafe-client "DNS:cafe"
# The servers run as an unprivileged user in their containers: it must be
# able to read the keys through the read-only mount.
chmod 644 ./*.pem
echo "certificates in $dir: $(ls ./*.pem | tr '\n' ' ')"
