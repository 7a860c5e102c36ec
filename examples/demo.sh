#!/bin/sh
# The demo: the whole platform on this machine, then the 3D GAN training job end to end.
set -eu
mlctl sandbox up                      # etcd, clusters local + gcp, Keycloak, KDC, training-operator
mlctl clusters list

# What the platform admins' cron does: namespaces and quotas from Keycloak users and groups.
mlctl sandbox login --admin
mlctl admin sync
mlctl sandbox s3-secrets              # each user's S3 credentials (Secret mlctl-s3) into their namespaces

# A physicist (bob, in gpu-power-users: 9 GPUs on top of the default) trains the 3D GAN.
mlctl sandbox login bob
mlctl quota show --cluster local
mlctl train delete gan3d --cluster local --yes 2>/dev/null || true   # a re-run starts afresh
mlctl train examples/3dgan.yaml --cluster local --set workers=2 --set resources.cpu=4 \
  --set resources.memory=32Gi --follow
mlctl train list --cluster local
kubectl --context mlctl-local get tfjobs     # plain kubectl works too, through mlctl's exec plugin

# What the job wrote, and its losses per epoch (the sandbox's 3dgan trainer writes them; a kwok-simulated
# job writes nothing, so these say so and the demo goes on).
mlctl artifacts ls || true
mlctl artifacts metrics gan3d --cluster local 2>/dev/null || true
