"""kserve: KServe's Python model server with the 3dgan generator; the sandbox's `kserve` model-server image.

It loads what the 3dgan trainer wrote (docs/storage.md: model/generator.npz and model/model.json) from an S3
URI with boto3 and the pod's AWS_* environment, and serves it on the pod's own address with both of KServe's
REST protocols:

  v1  POST /v1/models/<name>:predict   {"instances": [{"noise": [16 floats], "energy": 50.0}, ...]}
      -> {"predictions": [<25x25x25 nested lists, GeV>, ...]}
  v2  POST /v2/models/<name>/infer     inputs "noise" FP32 [n, 16] and "energy" FP32 [n]
      -> output "showers" FP32 [n, 25, 25, 25] (GeV)

The generator's output for noise z and energy E (GeV) is softplus(leaky_relu([z, E/100] W1 + b1) W2 + b2),
reshaped to the grid, in percent of E, times E/100. The same noise gives the same showers.

Arguments (KServe's own, plus): --model_name (default $MODEL_NAME or 3dgan), --model_dir (default
$STORAGE_URI; s3://bucket/prefix/ holding generator.npz and model.json), --http_port (8080). The address
to bind is $POD_IP (default 127.0.0.1). gRPC is off. Exit status 2: bad arguments or an unusable model.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import uuid

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import kserve  # noqa: E402
import numpy as np  # noqa: E402
from kserve import model_server  # noqa: E402
from kserve.errors import InvalidInput  # noqa: E402
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse  # noqa: E402

FORMAT = "mlctl-3dgan-generator/v1"
log = logging.getLogger("3dgan-server")


class BadModel(Exception):
    """The model directory does not hold a generator this server can run."""


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise BadModel(f"model_dir must be s3://bucket/prefix/, got {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix if not prefix or prefix.endswith("/") else prefix + "/"


def fetch(uri: str) -> tuple[dict, dict]:
    """model.json and the generator's arrays from s3://bucket/prefix/."""
    import boto3
    from botocore.config import Config

    bucket, prefix = parse_s3_uri(uri)
    client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
                          region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                          config=Config(request_checksum_calculation="when_required"))
    meta = json.loads(client.get_object(Bucket=bucket, Key=prefix + "model.json")["Body"].read())
    raw = client.get_object(Bucket=bucket, Key=prefix + "generator.npz")["Body"].read()
    with np.load(io.BytesIO(raw)) as npz:
        arrays = {k: npz[k].astype(np.float32) for k in npz.files}
    return meta, arrays


class Generator(kserve.Model):
    """The trained 3dgan generator as a KServe model."""

    def __init__(self, name: str, model_dir: str):
        super().__init__(name)
        self.model_dir = model_dir
        self.meta: dict = {}
        self.arrays: dict = {}

    def load(self) -> bool:
        meta, arrays = fetch(self.model_dir)
        if meta.get("format") != FORMAT:
            raise BadModel(f"{self.model_dir}model.json is not {FORMAT} (format: {meta.get('format')!r})")
        for key, shape in meta["arrays"].items():
            if key not in arrays or list(arrays[key].shape) != list(shape):
                raise BadModel(f"generator.npz: {key} is not of shape {shape}")
        self.meta, self.arrays = meta, arrays
        self.ready = True
        log.info("loaded %s (%d epochs) from %s", FORMAT, meta.get("epochs", 0), self.model_dir)
        return self.ready

    @property
    def latent(self) -> int:
        return int(self.meta["input"]["latent"])

    def generate(self, noise: np.ndarray, energy: np.ndarray) -> np.ndarray:
        """Showers in GeV, shape (n, *grid)."""
        scale = float(self.meta["input"].get("conditionScale", 100.0))
        a = self.arrays
        inp = np.concatenate([noise, energy[:, None] / scale], axis=1)
        pre = inp @ a["W1"] + a["b1"]
        h = np.where(pre > 0, pre, 0.2 * pre)
        out = np.logaddexp(0.0, h @ a["W2"] + a["b2"])
        grid = self.meta["output"]["shape"]
        return (out.reshape(len(noise), *grid) * energy[:, None, None, None] / 100.0).astype(np.float32)

    def _check(self, noise: np.ndarray, energy: np.ndarray) -> None:
        if noise.ndim != 2 or noise.shape[1] != self.latent:
            raise InvalidInput(f"noise must be of shape [n, {self.latent}], got {list(noise.shape)}")
        if energy.shape != (noise.shape[0],):
            raise InvalidInput(f"energy must be of shape [{noise.shape[0]}], got {list(energy.shape)}")
        if not np.all(np.isfinite(noise)) or not np.all(energy > 0):
            raise InvalidInput("noise must be finite and energy (GeV) positive")

    async def predict(self, payload, headers=None, response_headers=None):
        if isinstance(payload, InferRequest):
            by_name = {i.name: i for i in payload.inputs}
            if "noise" not in by_name or "energy" not in by_name:
                raise InvalidInput('inputs "noise" [n, latent] and "energy" [n] are required')
            noise = np.asarray(by_name["noise"].as_numpy(), dtype=np.float32)
            energy = np.asarray(by_name["energy"].as_numpy(), dtype=np.float32).reshape(-1)
            self._check(noise, energy)
            showers = self.generate(noise, energy)
            out = InferOutput("showers", list(showers.shape), "FP32")
            out.set_data_from_numpy(showers, binary_data=False)
            # a request may leave its id out; the response needs one
            return InferResponse(payload.id or str(uuid.uuid4()), self.name, [out])
        instances = (payload or {}).get("instances")
        if not isinstance(instances, list) or not instances:
            raise InvalidInput('"instances" must be a non-empty list of {"noise": [...], "energy": GeV}')
        try:
            noise = np.asarray([i["noise"] for i in instances], dtype=np.float32)
            energy = np.asarray([i["energy"] for i in instances], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInput(f'each instance needs "noise" (a list of {self.latent} numbers) and "energy": {e}') from e
        self._check(noise, energy)
        return {"predictions": self.generate(noise, energy).tolist()}


class PodServer(kserve.ModelServer):
    """KServe's server bound to the pod's address (upstream always binds 0.0.0.0, which two pods on one
    machine cannot share)."""

    def __init__(self, host: str, **kwargs):
        super().__init__(**kwargs)
        self.host = host

    def setup_event_loop(self):
        if getattr(self, "_rest_server", None) is not None:
            self._rest_server.config.host = self.host
        super().setup_event_loop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(parents=[model_server.parser], conflict_handler="resolve")
    parser.add_argument("--model_name", default=os.environ.get("MODEL_NAME", "3dgan"))
    parser.add_argument("--model_dir", default=os.environ.get("STORAGE_URI"))
    args, _ = parser.parse_known_args(argv)
    if not args.model_dir:
        print("kserve: error: no model: pass --model_dir or set STORAGE_URI", file=sys.stderr)
        return 2
    model = Generator(args.model_name, args.model_dir)
    try:
        model.load()
    except BadModel as e:
        print(f"kserve: error: {e}", file=sys.stderr)
        return 2
    server = PodServer(os.environ.get("POD_IP", "127.0.0.1"), http_port=args.http_port, enable_grpc=False,
                       workers=1)
    server.start([model])
    return 0


if __name__ == "__main__":
    sys.exit(main())
