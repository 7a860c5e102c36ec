#!/usr/bin/env bash
# Builds the sandbox's Go binaries from the Go module proxy, once per version.
# Binaries are cached outside the work tree: ${MLCTL_CACHE_DIR:-~/.cache/mlctl}/bin/<name>-<version>/.
# Usage: sandbox/build.sh [component ...]   (default: all)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${MLCTL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlctl}/bin"
mkdir -p "$cache"
export GOFLAGS="${GOFLAGS:--buildvcs=false}" CGO_ENABLED=0

# version of a module required by a wrapper's go.mod
modver() { awk -v m="$2" '$1==m || $2==m {for(i=1;i<=NF;i++) if ($i ~ /^v[0-9]/) {print $i; exit}}' "$here/go/$1/go.mod"; }

build() { # build <wrapper> <version> <output-name> <package> [ldflags]
  local wrapper="$1" version="$2" name="$3" pkg="$4" ldflags="${5:-}"
  local out="$cache/$wrapper-$version/$name"
  if [[ -x "$out" ]]; then echo "cached  $name $version"; return; fi
  local start=$SECONDS
  mkdir -p "$(dirname "$out")"
  (cd "$here/go/$wrapper" && go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg")
  mv "$out.tmp" "$out"
  echo "built   $name $version in $((SECONDS - start)) s"
}

kubernetes() {
  local v; v="$(modver kubernetes k8s.io/kubernetes)"
  local minor; minor="$(echo "$v" | cut -d. -f2)"
  local ld=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    ld+=" -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    build kubernetes "$v" "$c" "k8s.io/kubernetes/cmd/$c" "$ld"
  done
}
etcd() { build etcd "$(modver etcd go.etcd.io/etcd/server/v3)" etcd . ; }
kwok() { build kwok "$(modver kwok sigs.k8s.io/kwok)" kwok sigs.k8s.io/kwok/cmd/kwok ; }
training_operator() {
  build training-operator "$(modver training-operator github.com/kubeflow/training-operator)" training-operator \
    github.com/kubeflow/training-operator/cmd/training-operator.v1
}
opa() { build opa "$(modver opa github.com/open-policy-agent/opa)" opa github.com/open-policy-agent/opa ; }

components=("$@")
[[ ${#components[@]} -eq 0 ]] && components=(etcd kubernetes kwok training_operator opa)
for c in "${components[@]}"; do "$c"; done
