"""`python -m gan3d.train [--strategy S] [--epochs N] [--batch-size-per-gpu B]`: the command line of the
physicists' 3DGAN job (examples/3dgan.yaml), run by the sandbox's small numpy trainer (trainer.py beside
this package). --epochs and --batch-size-per-gpu set EPOCHS and BATCH unless the environment already does;
the strategy is accepted and named in the log (the trainer's replicas do not exchange gradients)."""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gan3d.train")
    parser.add_argument("--strategy", default="multi-worker-mirrored")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size-per-gpu", type=int)
    opts = parser.parse_args(argv)
    env = dict(os.environ)
    if opts.epochs is not None:
        env.setdefault("EPOCHS", str(opts.epochs))
    if opts.batch_size_per_gpu is not None:
        env.setdefault("BATCH", str(opts.batch_size_per_gpu))
    print(f"gan3d.train: strategy {opts.strategy} (the sandbox's trainer: replicas train their own shard)",
          flush=True)
    import trainer

    return trainer.run(env)


if __name__ == "__main__":
    sys.exit(main())
