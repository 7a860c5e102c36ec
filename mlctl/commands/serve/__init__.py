"""mlctl serve: KServe InferenceServices from a trained model, predictions through the gateway, load tests."""

from __future__ import annotations

from mlctl.cli import lazy_group

VERBS = {
    "create": ("mlctl.commands.serve.create:command", "Serve a model from S3 or from a training job's final model."),
    "list": ("mlctl.commands.serve.list:command", "List your inference services."),
    "status": ("mlctl.commands.serve.status:command", "Show a service's readiness, replicas and endpoint."),
    "describe": ("mlctl.commands.serve.describe:command",
                 "Show a service in full: model, autoscaling, predictor pods, HPA and events."),
    "scale": ("mlctl.commands.serve.scale:command", "Change a service's replica bounds or CPU target."),
    "delete": ("mlctl.commands.serve.delete:command", "Delete inference services."),
    "logs": ("mlctl.commands.serve.logs:command", "Print (or follow) the model server's logs."),
    "predict": ("mlctl.commands.serve.predict:command", "Send one inference request through the gateway."),
    "load": ("mlctl.commands.serve.load:command",
             "Load-test a service: live requests/s, latency percentiles, errors and replicas."),
}

group = lazy_group("serve", VERBS, """Serve trained models with KServe: create, predict, load-test, autoscale.

    \b
    mlctl serve create gen3d --model gan3d --max-replicas 4 --target-utilization 50
    mlctl serve predict gen3d --data request.json
    mlctl serve load gen3d --data request.json --concurrency 32 --duration 90""")
