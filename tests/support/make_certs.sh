#!/usr/bin/env bash
# make_certs.sh DIR -- a throwaway PKI for the TLS tests, made with openssl(1) in DIR.
#
#   ca.crt/ca.key             the test CA every good certificate chains to
#   other-ca.crt              a CA nothing here is signed by (the "wrong CA" case)
#   server.crt/server.key     CN localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1
#   wronghost.crt/.key        signed by ca, SAN DNS:wrong.example only (name mismatch)
#   expired.crt/.key          signed by ca, SAN localhost/127.0.0.1, expired a day ago
#   client.crt/client.key     a client certificate signed by ca (mutual TLS)
#   server2.crt/server2.key   like server.crt with another serial (rotation tests)
#   rotated.crt/rotated.key   like server.crt, signed by other-ca (a server CA rotation)
# Keys are EC P-256 (fast to make). Idempotent: an existing ca.crt means done.
set -euo pipefail
dir=${1:?usage: make_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
[ -s ca.crt ] && [ -s expired.crt ] && [ -s rotated.crt ] && exit 0
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { # name subject
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 30 -sha256 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -out "$1.crt" 2>/dev/null
}
leaf() { # name cn san usage [extra x509 args...]
  local name=$1 cn=$2 san=$3 usage=$4
  shift 4
  key "$name.key"
  openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$name.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n' "$san" "$usage" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA "${SIGNER:-ca}.crt" -CAkey "${SIGNER:-ca}.key" -CAcreateserial -sha256 \
    -extfile "$name.ext" -out "$name.crt" "$@" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}
ca ca "planb test CA"
ca other-ca "planb other CA"
leaf server localhost "DNS:localhost,IP:127.0.0.1,IP:::1" serverAuth -days 30
leaf server2 localhost "DNS:localhost,IP:127.0.0.1,IP:::1" serverAuth -days 30
leaf wronghost wrong.example "DNS:wrong.example" serverAuth -days 30
SIGNER=other-ca leaf rotated localhost "DNS:localhost,IP:127.0.0.1,IP:::1" serverAuth -days 30
leaf client planb-client "DNS:planb-client" clientAuth -days 30
# expired: valid from 3 days ago to 1 day ago. OpenSSL 3.0's x509 cannot back-date, its ca can.
key expired.key
openssl req -new -key expired.key -subj "/CN=localhost" -out expired.csr 2>/dev/null
mkdir -p ca.db && : >ca.db/index && printf '1000\n' >ca.db/serial
cat >ca.db/conf <<CONF
[ca]
default_ca = test
[test]
database = ca.db/index
serial = ca.db/serial
new_certs_dir = ca.db
certificate = ca.crt
private_key = ca.key
default_md = sha256
policy = any
copy_extensions = none
x509_extensions = leaf
[any]
commonName = supplied
[leaf]
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
extendedKeyUsage = serverAuth
basicConstraints = CA:FALSE
CONF
openssl ca -batch -config ca.db/conf -in expired.csr -out expired.crt -notext \
  -startdate "$(date -u -d '3 days ago' +%Y%m%d%H%M%SZ)" \
  -enddate "$(date -u -d '1 day ago' +%Y%m%d%H%M%SZ)" 2>/dev/null
rm -rf expired.csr ca.db
chmod 600 ./*.key
