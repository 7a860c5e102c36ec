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
# The same spec the physicists wrote, with the sandbox's own 3dgan image: its chief and 2 workers run as
# real processes, and the chief writes every epoch's weights, the metrics and the model to bob's S3 prefix.
mlctl train examples/3dgan.yaml --cluster local --set image=mlctl.sandbox/3dgan:1 --set workers=3 \
  --set resources.gpus=1 --set resources.cpu=1 --set resources.memory=2Gi --set env.SAMPLES=64 \
  --set 'args=[--epochs, 5]' --set output=s3://mlctl-outputs/bob/gan3d/ --follow
mlctl train list --cluster local
kubectl --context mlctl-local get tfjobs     # plain kubectl works too, through mlctl's exec plugin

# Jobs that write under the platform's layout (s3://<outputs>/<user>/<job>/<run>/) are listed here.
mlctl artifacts ls || true
mlctl artifacts ls gan3d --cluster local

# The trained generator, served with KServe: its model server runs as a real process behind the gateway,
# and a prediction travels with bob's token for cluster local.
mlctl serve delete gen3d --cluster local --yes 2>/dev/null || true
mlctl serve create gen3d --model gan3d --cluster local --min-replicas 1 --max-replicas 2 --wait
python3 -c 'import json; print(json.dumps({"instances": [{"noise": [0.1] * 16, "energy": 50.0}]}))' \
  > "${TMPDIR:-/tmp}/gen3d-request.json"
mlctl serve predict gen3d --cluster local --data "${TMPDIR:-/tmp}/gen3d-request.json" -v | python3 -c '
import json, sys
shower = json.load(sys.stdin)["predictions"][0]
print(f"one shower of {len(shower)}x{len(shower[0])}x{len(shower[0][0])} cells, "
      f"{sum(sum(sum(row) for row in plane) for plane in shower):.1f} GeV deposited")'
mlctl serve list --cluster local
