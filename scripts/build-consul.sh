#!/usr/bin/env bash
# Build a HashiCorp Consul binary from its Go module source.
#
# Output: .cache/bin/consul (relative to the repo root), or $CONSUL_BIN if set
# (an absolute path, or a path relative to the repo root).
#
# Licence: only MPL-2.0 releases of Consul may be built. Releases from 1.17 on
# are under the BSL and must not be used. We pin the newest patch of the 1.14.x
# line, v1.14.11 (`go list -m -versions github.com/hashicorp/consul` lists no
# tagged versions through the proxy used here, so the pin was confirmed by
# asking the proxy for v1.14.11 and later patch numbers directly), and verify
# the LICENSE file of the downloaded module before building anything.
#
# Nothing from Consul is committed: the throwaway build module lives in
# .cache/consul-build/ and the binary in .cache/bin/, both git-ignored.
set -euo pipefail
# Note: with pipefail, a reader that stops early (head, grep -q, awk exit) can
# kill the writer with SIGPIPE and fail the script (exit 141) at random, so
# outputs are captured into variables and read back with here-strings.

CONSUL_MODULE=github.com/hashicorp/consul
# v1.14.11 (2023-10-31) is the last release of the 1.14.x line, which is MPL-2.0.
# Keep this on an MPL-2.0 line (<= 1.16.x); the checks below enforce 1.14.x.
CONSUL_VERSION=v1.14.11

# Sub-modules that must never be pulled in (they do not exist for 1.14).
FORBIDDEN_MODULES=(
  github.com/hashicorp/consul/envoyextensions
  github.com/hashicorp/consul/troubleshoot
)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

CONSUL_BIN="${CONSUL_BIN:-.cache/bin/consul}"
case "$CONSUL_BIN" in
  /*) ;;
  *) CONSUL_BIN="$REPO_ROOT/$CONSUL_BIN" ;;
esac
BUILD_DIR="$REPO_ROOT/.cache/consul-build"

die() { echo "build-consul: $*" >&2; exit 1; }

# --- Fast path: nothing to do if the binary is there and works. -------------
if [[ -x "$CONSUL_BIN" ]] && ver_out="$("$CONSUL_BIN" version 2>/dev/null)"; then
  ver_line="${ver_out%%$'\n'*}"
  echo "consul already built: $ver_line"
  case "$ver_line" in
    "Consul v1.14."*) ;;
    *) echo "build-consul: warning: $CONSUL_BIN is not a 1.14.x build; delete it to rebuild" >&2 ;;
  esac
  exit 0
fi

command -v go >/dev/null 2>&1 || die "go not found on PATH"
# The throwaway module is standalone: never let a go.work of this repo apply.
export GOWORK=off
[[ "$CONSUL_VERSION" =~ ^v1\.14\.[0-9]+$ ]] || die "refusing to build $CONSUL_VERSION: only the MPL-2.0 1.14.x line is allowed"

start_ts=$(date +%s)
echo "build-consul: building $CONSUL_MODULE@$CONSUL_VERSION -> $CONSUL_BIN ($(go version))"

# --- Download the module and check its licence. -----------------------------
# `go mod download -json` fetches the module through GOPROXY (checksums are
# verified against the Go checksum database) and tells where it was unpacked.
dl_json="$(go mod download -json "$CONSUL_MODULE@$CONSUL_VERSION")"
json_field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p" <<<"$dl_json"; }
mod_dir="$(json_field Dir)"
mod_gomod="$(json_field GoMod)"
[[ -n "$mod_dir" && -d "$mod_dir" ]] || die "could not locate module dir for $CONSUL_MODULE@$CONSUL_VERSION: $dl_json"
[[ -n "$mod_gomod" && -f "$mod_gomod" ]] || die "could not locate go.mod for $CONSUL_MODULE@$CONSUL_VERSION"

license="$mod_dir/LICENSE"
[[ -f "$license" ]] || die "no LICENSE file in $mod_dir"
grep -Eq 'Mozilla Public License,? [Vv]ersion 2\.0' "$license" \
  || die "$license is not the Mozilla Public License 2.0: refusing to build"
if grep -qi 'Business Source License' "$license"; then
  die "$license mentions the Business Source License: refusing to build"
fi
echo "build-consul: licence OK (MPL-2.0): $license"

# --- Read Consul's own go.mod. ----------------------------------------------
# Print the entries of one directive kind (require/exclude/replace) of a go.mod,
# in both the single-line and the block form, with comments stripped.
gomod_entries() {
  awk -v kind="$1" '
    { sub(/\/\/.*/, "") }
    inblock && /^[[:space:]]*\)/ { inblock = 0; next }
    inblock { if (NF) { sub(/^[[:space:]]+/, ""); sub(/[[:space:]]+$/, ""); print }; next }
    $1 == kind && $2 == "(" { inblock = 1; next }
    $1 == kind { $1 = ""; sub(/^[[:space:]]+/, ""); sub(/[[:space:]]+$/, ""); print }
  ' "$2"
}

consul_requires="$(gomod_entries require "$mod_gomod")"
consul_excludes="$(gomod_entries exclude "$mod_gomod")"
consul_replaces="$(gomod_entries replace "$mod_gomod")"
required_paths="$(awk '{print $1}' <<<"$consul_requires")"
for m in "${FORBIDDEN_MODULES[@]}"; do
  if grep -qxF "$m" <<<"$required_paths"; then
    die "$CONSUL_MODULE@$CONSUL_VERSION requires $m, which must not be used"
  fi
done

# Consul's go.mod replaces its sibling modules with ./api, ./sdk and
# ./proto-public (which is why `go install consul@version` refuses it). Those
# directories are not in the module zip, so require the published sibling
# modules at the versions Consul's go.mod names instead.
consul_go="$(awk '$1 == "go" {print $2; exit}' "$mod_gomod")"   # 1.20 for v1.14.11
[[ -n "$consul_go" ]] || die "no go line in $mod_gomod"
edit_args=("-go=$consul_go" "-require=$CONSUL_MODULE@$CONSUL_VERSION")
for sib in api sdk proto-public; do
  v="$(awk -v p="$CONSUL_MODULE/$sib" '$1 == p && !seen {print $2; seen = 1}' <<<"$consul_requires")"
  [[ -n "$v" ]] || die "$CONSUL_MODULE/$sib not found in $mod_gomod"
  edit_args+=("-require=$CONSUL_MODULE/$sib@$v")
done
# Copy Consul's exclude lines (v1.14.11's go.mod has none; kept so that a
# changed pin carrying e.g. an exclude of github.com/hashicorp/go-msgpack v1.1.5
# is still honoured).
while read -r path ver; do
  [[ -n "${path:-}" ]] || continue
  edit_args+=("-exclude=$path@$ver")
done <<<"$consul_excludes"
# Copy the replace lines that point at other modules (e.g. launchpad.net/gocheck);
# skip the local-directory ones (./api etc.), handled above.
while read -r line; do
  [[ -n "$line" ]] || continue
  old="${line%%=>*}"; new="${line#*=>}"
  read -r old_path old_ver <<<"$old"
  read -r new_path new_ver <<<"$new"
  case "$new_path" in ./*|../*|/*) continue ;; esac
  edit_args+=("-replace=${old_path}${old_ver:+@$old_ver}=${new_path}${new_ver:+@$new_ver}")
done <<<"$consul_replaces"

# --- Throwaway main module. -------------------------------------------------
mkdir -p "$BUILD_DIR"
cd "$BUILD_DIR"
rm -f go.mod go.sum tools.go
go mod init consulbuild
# -go=$consul_go (1.20): the same go line as Consul's own go.mod. It keeps the
# build working on any Go >= 1.20 without a toolchain switch (go mod init would
# write the running Go's version), and the main module's go line
# sets the binary's default GODEBUG settings, so the binary keeps the Go 1.20
# runtime/net/http/TLS behaviour Consul 1.14 was written and released with
# (e.g. asynctimerchan=1, httpmuxgo121=1).
go mod edit "${edit_args[@]}"
# A main module needs a file importing the package it builds.
cat > tools.go <<EOF
//go:build tools

package tools

import _ "$CONSUL_MODULE"
EOF
go mod tidy

# --- Check the resolved module graph. ---------------------------------------
# -e: report per-module errors instead of failing. Some module in the pruned
# graph that provides no package to the build (inet.af/netaddr, named by
# coredns's go.mod) may not be served by the proxy; plain `go list -m all`
# then fails with "403 Forbidden" although the build does not need it.
all_mods="$(go list -m -e -f '{{.Path}} {{.Version}}' all)"
all_paths="$(awk '{print $1}' <<<"$all_mods")"
grep -qxF "$CONSUL_MODULE $CONSUL_VERSION" <<<"$all_mods" \
  || die "module graph does not resolve $CONSUL_MODULE to $CONSUL_VERSION"
for m in "${FORBIDDEN_MODULES[@]}"; do
  if grep -qxF "$m" <<<"$all_paths" || grep -qF "$m " go.sum; then
    die "$m was pulled into the build module; refusing to build"
  fi
done
echo "build-consul: module graph OK (no envoyextensions/troubleshoot)"

# --- Build. -----------------------------------------------------------------
# CGO_ENABLED=0: static binary that does not depend on the host's C compiler
#   or libc, as upstream's GNUmakefile builds it (dev-build and release).
# -buildvcs=false: the build module sits inside this project's git work tree;
#   without it Go would stamp this repo's VCS state into Consul's binary (and
#   fail where git cannot read the repo).
# -trimpath: keep local filesystem paths (module cache, build dir) out of the
#   binary, so the result does not depend on where it was built.
# -ldflags "-s -w": drop the symbol table and DWARF debug info to shrink the
#   binary; we never debug Consul itself.
# No GOTOOLCHAIN pin and no dependency bumps: Consul 1.14.11 with its own
# dependency versions compiles unmodified with the Go on PATH (tested: 1.26).
mkdir -p "$(dirname "$CONSUL_BIN")"
tmp_bin="$CONSUL_BIN.tmp.$$"
trap 'rm -f "$tmp_bin"' EXIT
CGO_ENABLED=0 go build -buildvcs=false -trimpath -ldflags "-s -w" -o "$tmp_bin" "$CONSUL_MODULE"

ver_out="$("$tmp_bin" version)"
ver_line="${ver_out%%$'\n'*}"
case "$ver_line" in
  "Consul ${CONSUL_VERSION}"|"Consul ${CONSUL_VERSION} "*) ;;
  *) die "built binary reports '$ver_line', expected Consul $CONSUL_VERSION" ;;
esac
mv -f "$tmp_bin" "$CONSUL_BIN"
trap - EXIT

echo "build-consul: built $ver_line -> $CONSUL_BIN in $(( $(date +%s) - start_ts ))s"
