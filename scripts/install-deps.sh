#!/usr/bin/env bash
# Installs everything wsgate needs to build, run and test on Debian 12:
# Debian packages with apt-get, npm packages from the committed lockfile.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

pkgs=(build-essential cmake pkg-config
      libwebsockets-dev libwebsockets-evlib-ev libev-dev libssl-dev liblmdb-dev libmsgpack-dev
      libjansson-dev libhttp-parser-dev lmdb-utils openssl chromium
      clang libclang-rt-14-dev
      faketime util-linux
      libnats-dev nats-server
      prometheus
      libyaml-dev
      liburing-dev
      curl
      nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node may come from elsewhere than Debian (e.g. nodesource); keep it.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
want=(); norec=()
for p in "${missing[@]}"; do
  case "$p" in
    "") ;;
    # For promtool only: its Recommends would add prometheus-node-exporter,
    # a service on port 9100, the dashboard example's backend port.
    prometheus) norec+=("$p") ;;
    *) want+=("$p") ;;
  esac
done
if [ $(( ${#want[@]} + ${#norec[@]} )) -gt 0 ]; then
  echo "install-deps: apt-get install ${want[*]} ${norec[*]}"
  $SUDO apt-get update -qq
  [ ${#want[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${want[@]}"
  [ ${#norec[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${norec[@]}"
fi

# The AWS SDK packages the tests and examples use want Node.js 20 or later;
# Debian 12's own nodejs is 18 (NodeSource's, say, is newer).
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "install-deps: warning: Node.js $(node --version 2>/dev/null) is older than 20, which the AWS SDK for JavaScript v3 requires (package.json's devDependencies)" >&2
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
