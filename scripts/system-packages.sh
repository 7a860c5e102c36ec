#!/usr/bin/env bash
# Installs the Debian packages mlctl and its sandbox need: the MIT KDC and the Kerberos headers gssapi
# builds against, man for the man-page test, Java and Maven for Keycloak, Chromium for the browser tests
# (tests/integration/browser.py). Called by `make demo`, `make test` and .ci/run. Not root: prints the
# exact command to run and exits 2.
set -euo pipefail

need=()
for pkg in krb5-kdc krb5-admin-server krb5-user libkrb5-dev man-db groff-base chromium; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
command -v java >/dev/null || need+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || need+=(maven)
command -v go >/dev/null || { echo "error: Go is not installed; hint: install Go 1.24 or newer" >&2; exit 2; }

((${#need[@]})) || exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "error: missing system packages: ${need[*]}" >&2
  echo "hint: run: sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
  exit 2
fi
echo "installing system packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
