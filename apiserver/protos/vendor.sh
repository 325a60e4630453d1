#!/usr/bin/env bash
# Copies the Kubernetes API's protobuf definitions (the wire format of
# `application/vnd.kubernetes.protobuf`) for the groups kube-lite serves,
# comments stripped (their text is the API reference, `kubectl explain`'s
# business, not the wire format's), and lists in pointers.txt the fields
# that are pointers in the Go types: Go writes every other field even at
# its zero value ("", 0, false), which then means "not set".
# fields.txt keeps, per (message, JSON field), what server-side apply
# needs from the Go types' tags and markers: pointer, omitempty,
# +listType / +listMapKey, +mapType, +structType, +default, patchStrategy /
# patchMergeKey (the fallback when a list has no +listType); a line with
# the field "-" holds the markers of the type itself.
#   apiserver/protos/vendor.sh API_CHECKOUT APIMACHINERY_CHECKOUT TAG
# with git checkouts of github.com/kubernetes/api and
# github.com/kubernetes/apimachinery; TAG is their release, v0.35.7 for
# Kubernetes 1.35.7.
set -euo pipefail
api="$1" machinery="$2" tag="$3"
here="$(cd "$(dirname "$0")" && pwd)"
copy() { # REPO FILE DEST
    mkdir -p "$(dirname "$3")"
    git -C "$1" show "$tag:$2" | grep -v '^[ \t]*//' | cat -s > "$3"
}
pointers() { # REPO DIR PROTO_PACKAGE: "<message> <field>" per pointer field
    git -C "$1" show "$tag:$2/types.go" | awk -v package="$3" '
        /^type [A-Za-z0-9]+ struct/ { message = $2 }
        $2 ~ /^\*/ && match($0, /protobuf:"[^"]*name=[A-Za-z0-9]+/) {
            field = substr($0, RSTART, RLENGTH); sub(/.*name=/, "", field)
            print package "." message " " field
        }'
}
tags() { # REPO DIR PROTO_PACKAGE: "<message> <json field> <tag>..." per field with tags
    git -C "$1" show "$tag:$2/types.go" | awk -v package="$3" '
        /^[ \t]*\/\/ \+(listType|listMapKey|mapType|structType|default)=/ {
            marker = $0; sub(/^[ \t]*\/\/ \+/, "", marker)
            split(marker, kv, "=")
            if (kv[1] == "listMapKey") keys = keys (keys == "" ? "" : ",") kv[2]
            else markers = markers " " kv[1] "=" kv[2]
            next
        }
        /^[ \t]*\/\// { next }
        /^type [A-Za-z0-9]+ struct/ {
            message = $2
            if (markers != "") print package "." message " -" markers
            markers = ""; keys = ""; next
        }
        match($0, /json:"[^"]*"/) && message != "" {
            json = substr($0, RSTART + 6, RLENGTH - 7)
            name = json; sub(/,.*/, "", name)
            out = ""
            if ($2 ~ /^\*/) out = out " pointer"
            if (json ~ /,omitempty/) out = out " omitempty"
            if (keys != "") out = out " listMapKey=" keys
            if (match($0, /patchStrategy:"[^"]*"/)) out = out " patchStrategy=" substr($0, RSTART + 15, RLENGTH - 16)
            if (match($0, /patchMergeKey:"[^"]*"/)) out = out " patchMergeKey=" substr($0, RSTART + 15, RLENGTH - 16)
            if (name != "" && (markers != "" || out != "")) print package "." message " " name markers out
        }
        { markers = ""; keys = "" }'
}
: > "$here/pointers.txt.new"
: > "$here/fields.txt.new"
for group in core/v1 apps/v1 authentication/v1 authorization/v1 autoscaling/v1 \
    batch/v1 certificates/v1 coordination/v1 discovery/v1 policy/v1 rbac/v1; do
    copy "$api" "$group/generated.proto" "$here/k8s.io/api/$group/generated.proto"
    pointers "$api" "$group" "k8s.io.api.${group/\//.}" >> "$here/pointers.txt.new"
    tags "$api" "$group" "k8s.io.api.${group/\//.}" >> "$here/fields.txt.new"
done
for package in pkg/api/resource pkg/apis/meta/v1 pkg/runtime pkg/runtime/schema pkg/util/intstr; do
    copy "$machinery" "$package/generated.proto" "$here/k8s.io/apimachinery/$package/generated.proto"
done
pointers "$machinery" pkg/apis/meta/v1 k8s.io.apimachinery.pkg.apis.meta.v1 >> "$here/pointers.txt.new"
tags "$machinery" pkg/apis/meta/v1 k8s.io.apimachinery.pkg.apis.meta.v1 >> "$here/fields.txt.new"
sort -u "$here/pointers.txt.new" > "$here/pointers.txt" && rm "$here/pointers.txt.new"
sort -u "$here/fields.txt.new" > "$here/fields.txt" && rm "$here/fields.txt.new"
echo "$tag" > "$here/VERSION"
