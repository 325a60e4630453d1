#!/usr/bin/env bash
# Installs what kube-lite's tests and lab need on a fresh Debian machine:
# nftables, conntrack (stale UDP entries of Services) and iproute2 for the
# datapath,
# curl, ping (iputils-ping: the pod network tests ping between Pods), dig
# and nslookup (bind9-dnsutils: docs/dns.md's commands, run in Pods),
# python3-pip for fetching the real kubectl used by the compatibility tests,
# python3-kubernetes (the official Python client, tested over HTTPS),
# systemd (systemd-analyze checks the units kubeadm-lite writes),
# containerd and runc (Pods are containers: the node agent is a CRI
# client), containernetworking-plugins (containerd's `loopback` plugin
# next to kube-lite's own), and what the lab builds and serves its images
# with: mmdebstrap, umoci, skopeo, docker-registry, gcc and libc6-dev
# (the static pause program), binutils (strip), apache2-utils (htpasswd:
# the private registry's password).
# Safe to run again.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: run as root (it uses apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
  nftables conntrack iproute2 curl ca-certificates python3 python3-pip procps iputils-ping \
  bind9-dnsutils python3-kubernetes openssl systemd containerd runc \
  containernetworking-plugins mmdebstrap umoci skopeo docker-registry gcc libc6-dev binutils apache2-utils
# The real kubectl 1.35, for checking that kube-lite speaks its protocol.
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/get-kubectl.sh" "$here/.tools"
