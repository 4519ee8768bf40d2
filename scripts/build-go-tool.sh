#!/usr/bin/env bash
# Build one Go command from the Go module proxy into .cache/bin/NAME (git-ignored), once.
#
# usage: scripts/build-go-tool.sh NAME MODULE/PATH/TO/CMD@VERSION
# The outside judges (h2spec, the grpc-go interop client and server) are built this way:
# nothing of theirs is committed, and a rebuild happens only when the pinned version changes.
set -euo pipefail
name="$1"; pkg="$2"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/.cache/bin/$name"
stamp="$root/.cache/bin/.$name.version"
if [[ -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$pkg" ]]; then
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "build-go-tool: go not found on PATH" >&2; exit 1; }
work="$root/.cache/go-build/$name"
rm -rf "$work"; mkdir -p "$work" "$root/.cache/bin"
echo "build-go-tool: $pkg -> .cache/bin/$name ($(go version))"
GOBIN="$work" GOFLAGS=-buildvcs=false go install "$pkg"
mv "$work/$(basename "${pkg%@*}")" "$bin"
echo "$pkg" > "$stamp"
rm -rf "$work"
