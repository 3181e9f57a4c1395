#!/usr/bin/env bash
# Installs what kproxy's demo and tests need on a fresh Debian machine (root).
# Idempotent: packages already present are not touched, so later runs cost nothing.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have iptables-restore || need+=(iptables)
have conntrack || need+=(conntrack)
have ipset || need+=(ipset)
have nft || need+=(nftables)
have ip || need+=(iproute2)
have curl || need+=(curl)
have make || need+=(make)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing ${need[*]} and not root: cannot apt-get install" >&2
    exit 1
  fi
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! have go; then
  if [ -x /usr/local/go/bin/go ]; then
    echo "setup: add /usr/local/go/bin to PATH" >&2
  else
    echo "setup: Go is required (https://go.dev/dl)" >&2
  fi
  exit 1
fi
