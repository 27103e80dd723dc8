#!/usr/bin/env bash
# Build (or find cached) kube-apiserver, etcd and kustomize from the pinned Go modules in
# tests/kube/go, and fetch the pinned Gateway API CRDs; prints JSON with paths and timings.
# Usage: tests/kube/build_binaries.sh [kube-apiserver|etcd|kustomize ...]
# Env: GATEWAY_XDS_KUBE_CACHE (cache dir), KUBE_BUILD_JOBS (go build -p).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-../.venv/bin/python}"
exec "$PYTHON" -m support.kube_binaries "$@"
