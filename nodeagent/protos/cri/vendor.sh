#!/usr/bin/env bash
# Copies the Container Runtime Interface (CRI) definition, `runtime.v1`,
# that the node agent speaks to containerd: the kubelet's own API to its
# runtime, from github.com/kubernetes/cri-api at the Kubernetes release
# kube-lite follows. Comments are kept: they are the CRI's reference.
#   nodeagent/protos/cri/vendor.sh CRI_API_CHECKOUT TAG      (TAG: v0.35.7)
set -euo pipefail
repo="$1" tag="$2"
here="$(cd "$(dirname "$0")" && pwd)"
git -C "$repo" show "$tag:pkg/apis/runtime/v1/api.proto" > "$here/api.proto"
echo "$tag" > "$here/VERSION"
