"""3dgan: a small GAN trained on calorimeter-like 3D showers; the sandbox's `3dgan` trainer image.

It imitates the shape of the physicists' 3DGAN job, not its scale: showers are simulated with numpy (a
gamma-function longitudinal profile whose maximum moves deeper with the primary energy, a Gaussian
transverse spread that widens with depth, per-voxel fluctuations), and the GAN is two small dense networks
with hand-written backpropagation and Adam, so a run takes seconds on one CPU and needs numpy and boto3 only.

Distribution, honestly: TF_CONFIG is read the way TensorFlow reads it, and it decides which shard of the
data each replica trains on (chief = rank 0, worker i = rank i + 1). Replicas do NOT exchange gradients or
weights over the network: each trains its own copy on its own shard, workers write nothing and exit 0,
and only the chief's model is saved. A job therefore shows the real lifecycle (all replicas run, the chief's
outputs appear in S3, every replica's exit code is the pod's) without pretending to be data-parallel SGD.

Environment
  TF_CONFIG   {"cluster": {"chief": [...], "worker": [...]}, "task": {"type": "chief"|"worker", "index": N}}
              (absent: a single chief)
  OUTPUT_URL  s3://bucket/prefix/ where the chief writes (required on the chief)
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_CA_BUNDLE, AWS_DEFAULT_REGION (us-east-1)
  EPOCHS (5), BATCH (32), SAMPLES per replica (256), GRID cells per side (25), LATENT (16), HIDDEN (64),
  LR (0.0005), SEED (0)

Output under OUTPUT_URL, written by the chief (format: docs/storage.md)
  epoch-<N>/generator.npz, epoch-<N>/discriminator.npz   after every epoch
  metrics.jsonl   one {"epoch", "loss_g", "loss_d", "time"} line per epoch so far (S3 objects cannot be
                  appended to, so the object is rewritten with every line after each epoch; it is
                  written empty before the first epoch)
  model/generator.npz, model/model.json   at the end: the generator and what a model server needs to run it

Exit status: 0 done; 2 bad environment (one `3dgan: error: ...` line on stderr); 1 S3 write failed.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from dataclasses import dataclass

# One BLAS thread: a replica shares the machine with the others (and with the sandbox); OpenBLAS's spinning
# threads made an epoch five times slower on a busy two-core machine.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402 - after the thread settings, which numpy reads when it loads

FORMAT = "mlctl-3dgan-generator/v1"
ENERGY_RANGE = (10.0, 100.0)  # GeV, primary energy
ENERGY_SCALE = 100.0  # the generator's condition input is energy / ENERGY_SCALE
DATA_SCALE = 100.0  # a voxel's value = 100 x (its deposit / primary energy): percent of the energy
CRITICAL_ENERGY = 0.0074  # GeV (lead); one grid cell is one radiation length deep
READOUT_THRESHOLD = 1e-5  # GeV per cell
LEAK = 0.2  # leaky ReLU slope
DEFAULTS = {"EPOCHS": 5, "BATCH": 32, "SAMPLES": 256, "GRID": 25, "LATENT": 16, "HIDDEN": 64, "SEED": 0}


class BadEnvironment(Exception):
    """The environment does not describe a run this program can do."""


# ---- configuration -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Task:
    type: str  # chief | worker
    index: int
    replicas: int  # chief + workers

    @property
    def rank(self) -> int:
        return 0 if self.type == "chief" else self.index + 1

    @property
    def is_chief(self) -> bool:
        return self.type == "chief"


def parse_tf_config(text: str | None) -> Task:
    """The task TF_CONFIG describes; None or empty means a single chief."""
    if not text or not text.strip():
        return Task("chief", 0, 1)
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise BadEnvironment(f"TF_CONFIG is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise BadEnvironment("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    cluster, task = doc.get("cluster") or {}, doc.get("task")
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise BadEnvironment("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in ("chief", "worker"):
        raise BadEnvironment(f"TF_CONFIG task type must be 'chief' or 'worker', got {kind!r}")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise BadEnvironment(f"TF_CONFIG task index must be a non-negative integer, got {index!r}")
    for role in ("chief", "worker"):
        if not isinstance(cluster.get(role, []), list):
            raise BadEnvironment(f"TF_CONFIG cluster.{role} must be a list of addresses")
    chiefs, workers = cluster.get("chief", []), cluster.get("worker", [])
    if len(chiefs) > 1:
        raise BadEnvironment(f"TF_CONFIG cluster.chief must list at most one address, got {len(chiefs)}")
    members = chiefs if kind == "chief" else workers
    if index >= max(len(members), 1 if kind == "chief" else 0):
        raise BadEnvironment(f"TF_CONFIG task {kind}:{index} is not in cluster.{kind} ({len(members)} listed)")
    return Task(kind, index, 1 + len(workers))


@dataclass(frozen=True)
class Settings:
    epochs: int
    batch: int
    samples: int
    grid: int
    latent: int
    hidden: int
    lr: float
    seed: int
    output: tuple[str, str] | None  # (bucket, prefix ending in "/" or empty)


def parse_s3_url(url: str) -> tuple[str, str]:
    """s3://bucket/prefix/ -> (bucket, "prefix/"); the prefix may be empty."""
    if not url.startswith("s3://"):
        raise BadEnvironment(f"OUTPUT_URL must be an s3:// URL, got {url!r}")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not bucket:
        raise BadEnvironment(f"OUTPUT_URL names no bucket: {url!r}")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def _int(env: dict, name: str, minimum: int = 1) -> int:
    raw = env.get(name, "")
    if raw == "":
        return DEFAULTS[name]
    try:
        value = int(raw)
    except ValueError:
        raise BadEnvironment(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise BadEnvironment(f"{name} must be at least {minimum}, got {value}")
    return value


def parse_settings(env: dict, task: Task) -> Settings:
    raw_lr = env.get("LR", "") or "0.0005"
    try:
        lr = float(raw_lr)
    except ValueError:
        raise BadEnvironment(f"LR must be a number, got {raw_lr!r}") from None
    if not 0 < lr < 1:
        raise BadEnvironment(f"LR must be between 0 and 1, got {lr}")
    url = env.get("OUTPUT_URL", "")
    if task.is_chief and not url:
        raise BadEnvironment("OUTPUT_URL is not set: the chief writes its checkpoints to s3://bucket/prefix/")
    return Settings(
        epochs=_int(env, "EPOCHS"), batch=_int(env, "BATCH"), samples=_int(env, "SAMPLES"),
        grid=_int(env, "GRID", 4), latent=_int(env, "LATENT"), hidden=_int(env, "HIDDEN"), lr=lr,
        seed=_int(env, "SEED", 0), output=parse_s3_url(url) if url else None,
    )


# ---- data ----------------------------------------------------------------------------------------------

def showers(n: int, grid: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n simulated showers: (deposits in GeV, shape (n, grid, grid, grid) as x, y, depth; energies (n,))."""
    energy = rng.uniform(*ENERGY_RANGE, n)
    depth = np.arange(grid) + 0.5  # radiation lengths
    b = 0.5
    t_max = np.log(energy / CRITICAL_ENERGY) - 0.5
    a = b * t_max + 1.0
    profile = depth[None, :] ** (a[:, None] - 1.0) * np.exp(-b * depth[None, :])
    profile *= rng.gamma(25.0, 1 / 25.0, profile.shape)  # layer-to-layer fluctuations
    profile /= profile.sum(axis=1, keepdims=True)
    cells = np.arange(grid) + 0.5
    width = 0.8 + 0.06 * depth  # cells; the shower widens with depth
    entry = grid / 2 + rng.normal(0.0, 0.4, (n, 2))

    def spread(center: np.ndarray) -> np.ndarray:  # (n, cell, depth), each column sums to 1
        g = np.exp(-((cells[None, :, None] - center[:, None, None]) ** 2) / (2 * width[None, None, :] ** 2))
        return g / g.sum(axis=1, keepdims=True)

    gx, gy = spread(entry[:, 0]), spread(entry[:, 1])
    deposits = energy[:, None, None, None] * profile[:, None, None, :] * gx[:, :, None, :] * gy[:, None, :, :]
    deposits *= rng.gamma(10.0, 1 / 10.0, deposits.shape)  # sampling fluctuations per voxel
    # a readout threshold; it also keeps denormal floats (which make a CPU crawl) out of the data
    deposits[deposits < READOUT_THRESHOLD] = 0.0
    return deposits.astype(np.float32), energy.astype(np.float32)


def shard(task: Task, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """This replica's training data: (n, voxels) scaled to percent of the primary energy, and energy/100."""
    rng = np.random.default_rng([settings.seed, task.rank])
    deposits, energy = showers(settings.samples, settings.grid, rng)
    x = deposits.reshape(len(deposits), -1).astype(np.float64) / energy[:, None] * DATA_SCALE
    return x, (energy.astype(np.float64) / ENERGY_SCALE)[:, None]


# ---- the networks --------------------------------------------------------------------------------------

def _leaky(v):
    return np.where(v > 0, v, v.dtype.type(LEAK) * v)


def _leaky_grad(v):
    return np.where(v > 0, v.dtype.type(1.0), v.dtype.type(LEAK))


def _softplus(v):
    return np.logaddexp(0.0, v)


def _sigmoid(v):
    return 0.5 * (1 + np.tanh(0.5 * v))


def init_params(voxels: int, latent: int, hidden: int, rng: np.random.Generator,
                mean_voxel: np.ndarray | None = None, dtype=np.float64) -> tuple[dict, dict]:
    """Generator (z, e) -> voxels and discriminator (voxels, e) -> logit, both with one hidden layer.

    The generator's output bias starts at the data's mean voxel value (through softplus), so its first
    showers have the right overall scale and the discriminator has to learn the shape. Training runs in
    float64: in float32 the generator's vanishing outputs and gradients become denormal numbers, which
    slow a CPU's matrix products a hundredfold.
    """
    def dense(n_in, n_out):
        return rng.normal(0.0, 1.0 / np.sqrt(n_in), (n_in, n_out)).astype(dtype)

    b2 = np.zeros(voxels, dtype)
    if mean_voxel is not None:
        b2 = np.log(np.expm1(np.maximum(mean_voxel.astype(np.float64), 1e-6))).astype(dtype)
    gen = {"W1": dense(latent + 1, hidden), "b1": np.zeros(hidden, dtype), "W2": dense(hidden, voxels) * 0.1,
           "b2": b2}
    disc = {"W1": dense(voxels + 1, hidden), "b1": np.zeros(hidden, dtype), "W2": dense(hidden, 1),
            "b2": np.zeros(1, dtype)}
    return gen, disc


def generate(gen: dict, z: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, dict]:
    """Generated voxels for latent z (B, latent) and condition e (B, 1), and what backprop needs."""
    inp = np.concatenate([z, e], axis=1)
    pre1 = inp @ gen["W1"] + gen["b1"]
    h = _leaky(pre1)
    out = h @ gen["W2"] + gen["b2"]
    return _softplus(out), {"inp": inp, "pre1": pre1, "h": h, "out": out}


def discriminate(disc: dict, x: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, dict]:
    """Logits (B,) that x (B, voxels) with condition e is a real shower."""
    inp = np.concatenate([x, e], axis=1)
    pre1 = inp @ disc["W1"] + disc["b1"]
    a = _leaky(pre1)
    return (a @ disc["W2"] + disc["b2"])[:, 0], {"inp": inp, "pre1": pre1, "a": a}


def _gen_backward(gen: dict, cache: dict, dx: np.ndarray) -> dict:
    dout = dx * _sigmoid(cache["out"])
    grads = {"W2": cache["h"].T @ dout, "b2": dout.sum(axis=0)}
    dpre = (dout @ gen["W2"].T) * _leaky_grad(cache["pre1"])
    grads["W1"] = cache["inp"].T @ dpre
    grads["b1"] = dpre.sum(axis=0)
    return grads


def losses_and_grads(gen: dict, disc: dict, real: np.ndarray, e: np.ndarray, z: np.ndarray):
    """One GAN step's losses and gradients: binary cross-entropy for the discriminator, the non-saturating
    loss for the generator, both from one forward pass (simultaneous updates).

    Returns (loss_d, loss_g, discriminator grads, generator grads).
    """
    n = len(real)
    fake, gcache = generate(gen, z, e)
    # real and fake go through the discriminator as one batch of 2n
    logits, dcache = discriminate(disc, np.concatenate([real, fake]), np.concatenate([e, e]))
    s_real, s_fake = logits[:n], logits[n:]
    loss_d = float(np.mean(_softplus(-s_real)) + np.mean(_softplus(s_fake)))
    loss_g = float(np.mean(_softplus(-s_fake)))
    dlogit = np.concatenate([_sigmoid(s_real) - 1.0, _sigmoid(s_fake)])[:, None] / n
    d_grads = {"W2": dcache["a"].T @ dlogit, "b2": dlogit.sum(axis=0)}
    dpre = (dlogit @ disc["W2"].T) * _leaky_grad(dcache["pre1"])
    d_grads["W1"] = dcache["inp"].T @ dpre
    d_grads["b1"] = dpre.sum(axis=0)
    # the generator's loss through the same discriminator: only the fake rows, only the input gradient
    dlogit_g = (_sigmoid(s_fake) - 1.0)[:, None] / n
    dpre_g = (dlogit_g @ disc["W2"].T) * _leaky_grad(dcache["pre1"][n:])
    dx = dpre_g @ disc["W1"][:-1].T
    return loss_d, loss_g, d_grads, _gen_backward(gen, gcache, dx)


class Adam:
    def __init__(self, params: dict, lr: float, beta1: float = 0.5, beta2: float = 0.999):
        self.lr, self.beta1, self.beta2, self.t = lr, beta1, beta2, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: dict, grads: dict) -> None:
        self.t += 1
        for k, g in grads.items():
            self.m[k] = self.beta1 * self.m[k] + (1 - self.beta1) * g
            self.v[k] = self.beta2 * self.v[k] + (1 - self.beta2) * g * g
            m_hat = self.m[k] / (1 - self.beta1 ** self.t)
            v_hat = self.v[k] / (1 - self.beta2 ** self.t)
            params[k] -= self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)


def train_epoch(gen, disc, opt_g, opt_d, x, e, batch: int, latent: int, rng) -> tuple[float, float]:
    """One pass over (x, e) in shuffled batches; returns the mean (loss_g, loss_d)."""
    order = rng.permutation(len(x))
    sums, steps = np.zeros(2), 0
    for start in range(0, len(x), batch):
        idx = order[start:start + batch]
        z = rng.standard_normal((len(idx), latent), dtype=x.dtype)
        loss_d, loss_g, d_grads, g_grads = losses_and_grads(gen, disc, x[idx], e[idx], z)
        opt_d.step(disc, d_grads)
        opt_g.step(gen, g_grads)
        sums += (loss_g, loss_d)
        steps += 1
    return float(sums[0] / steps), float(sums[1] / steps)


def model_metadata(settings: Settings, epochs_done: int) -> dict:
    """model/model.json: how to turn the arrays of generator.npz into showers."""
    g = settings.grid
    return {
        "format": FORMAT,
        "framework": "numpy",
        "arrays": {"W1": [settings.latent + 1, settings.hidden], "b1": [settings.hidden],
                   "W2": [settings.hidden, g ** 3], "b2": [g ** 3]},
        "input": {"latent": settings.latent, "latentDistribution": "standard normal",
                  "condition": "energy", "conditionUnit": "GeV", "conditionScale": ENERGY_SCALE,
                  "energyRange": list(ENERGY_RANGE)},
        "layers": ["concat(z, energy / conditionScale)", "dense W1 b1", "leaky_relu(0.2)", "dense W2 b2",
                   "softplus"],
        "output": {"shape": [g, g, g], "axes": ["x", "y", "depth"], "order": "C",
                   "unit": "percent of the primary energy", "dataScale": DATA_SCALE,
                   "toGeV": "voxel * energy / dataScale"},
        "dtype": "float32",
        "epochs": epochs_done,
    }


# ---- storage -------------------------------------------------------------------------------------------

class Store:
    """The chief's S3 output: s3://bucket/prefix/ through boto3 with the AWS_* environment."""

    def __init__(self, bucket: str, prefix: str, env: dict):
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix
        session = boto3.session.Session(region_name=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION")
                                        or "us-east-1")
        if session.get_credentials() is None:
            raise BadEnvironment("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        # Checksums only where S3 requires them: a streamed (aws-chunked) upload that the server refuses
        # ends as a dropped connection instead of an AccessDenied with versitygw (docs/storage.md).
        self.s3 = session.client(
            "s3", endpoint_url=env.get("AWS_ENDPOINT_URL") or None, verify=env.get("AWS_CA_BUNDLE") or None,
            config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                          retries={"max_attempts": 3}),
        )

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=body, ContentType=content_type)


def npz(params: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: v.astype(np.float32) for k, v in params.items()})
    return buf.getvalue()


# ---- main ----------------------------------------------------------------------------------------------

def run(env: dict, out=sys.stdout) -> int:
    task = parse_tf_config(env.get("TF_CONFIG"))
    settings = parse_settings(env, task)
    store = Store(*settings.output, env) if task.is_chief else None
    if store:
        # An empty metrics file first: a new run starts with no old lines, and a prefix the credentials
        # may not write fails now, with AccessDenied, before any training (a refused large upload ends as
        # a dropped connection instead, see docs/storage.md).
        store.put("metrics.jsonl", b"", "application/x-ndjson")
    x, e = shard(task, settings)
    rng = np.random.default_rng([settings.seed, task.rank, 1])
    gen, disc = init_params(x.shape[1], settings.latent, settings.hidden, rng, mean_voxel=x.mean(axis=0))
    opt_g, opt_d = Adam(gen, settings.lr), Adam(disc, settings.lr)
    print(f"3dgan {task.type}:{task.index} of {task.replicas} replica(s): {len(x)} showers of "
          f"{settings.grid}^3 cells", file=out, flush=True)
    metrics = []
    for epoch in range(1, settings.epochs + 1):
        began = time.monotonic()
        loss_g, loss_d = train_epoch(gen, disc, opt_g, opt_d, x, e, settings.batch, settings.latent, rng)
        took = time.monotonic() - began
        print(f"epoch {epoch}/{settings.epochs} loss_g={loss_g:.3f} loss_d={loss_d:.3f} time={took:.1f}s",
              file=out, flush=True)
        if store:
            store.put(f"epoch-{epoch}/generator.npz", npz(gen))
            store.put(f"epoch-{epoch}/discriminator.npz", npz(disc))
            metrics.append({"epoch": epoch, "loss_g": round(loss_g, 6), "loss_d": round(loss_d, 6),
                            "time": round(took, 3)})
            store.put("metrics.jsonl", "".join(json.dumps(m) + "\n" for m in metrics).encode(),
                      "application/x-ndjson")
    if store:
        store.put("model/generator.npz", npz(gen))
        store.put("model/model.json", json.dumps(model_metadata(settings, settings.epochs), indent=2).encode(),
                  "application/json")
        print(f"model written to {store.url('model/')}", file=out, flush=True)
    print("training finished", file=out, flush=True)
    return 0


def main() -> int:
    try:
        return run(dict(os.environ))
    except BadEnvironment as e:
        print(f"3dgan: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - S3 and network failures: one line, no traceback, no secrets
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(e, ClientError):
            err = e.response.get("Error", {})
            print(f"3dgan: error: S3 {e.operation_name} failed: {err.get('Code')} {err.get('Message', '')}".rstrip(),
                  file=sys.stderr)
            return 1
        if isinstance(e, BotoCoreError):
            print(f"3dgan: error: S3 unreachable: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
