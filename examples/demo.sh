#!/bin/sh
# The demo: start the sandbox platform and show it (extended as capabilities land).
set -eu
mlctl sandbox up
mlctl clusters list
eval "$(mlctl sandbox env)"
kubectl --context sandbox-local get nodes -l mlctl.io/pool=gpu
