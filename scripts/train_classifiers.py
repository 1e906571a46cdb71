"""Train the classifiers gossipgan ships for its quality metrics (cls_fid, cls_is, cls_kid, ...).

    .venv/bin/python scripts/train_classifiers.py                  # all three
    .venv/bin/python scripts/train_classifiers.py digits mnist5k   # some

For each dataset: train a SmallCNN on the train split with seed 0 (gossipgan.metrics.
train_classifier, the same code `gossipgan eval --train-classifier` uses), measure accuracy on
the test split, write gossipgan/assets/<dataset>.pt and record accuracy and SHA-256 in
gossipgan/assets/classifiers.json. Aims: >= 97% digits and mnist5k, >= 88% fashion-mnist.
Runs on the CPU in about a minute (digits, mnist5k) and a few minutes (fashion-mnist).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

from gossipgan.data import load_dataset
from gossipgan.metrics.classifier import accuracy, save_classifier, train_classifier

ASSETS = Path(__file__).resolve().parent.parent / "gossipgan" / "assets"
AIMS = {"digits": 0.97, "mnist5k": 0.97, "fashion-mnist": 0.88}
SEED = 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", default=list(AIMS), choices=list(AIMS))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    index_path = ASSETS / "classifiers.json"
    failed = []
    for name in args.datasets:
        start = time.perf_counter()
        train, test = load_dataset(name, split="train"), load_dataset(name, split="test")
        model, record = train_classifier(train, test, seed=SEED)
        assert record["test_accuracy"] == accuracy(model, test)
        file = f"{name}.pt"
        sha = save_classifier(model, record, ASSETS / file)
        seconds = time.perf_counter() - start
        # Re-read just before writing: several datasets may train in parallel processes.
        index = json.loads(index_path.read_text()) if index_path.is_file() else {}
        index[name] = {
            "file": file, "sha256": sha, "test_accuracy": record["test_accuracy"],
            "test_samples": record["test_samples"], "train_samples": len(train),
            "epochs": record["epochs"], "seed": SEED, "in_shape": record["in_shape"],
            "feat_dim": record["feat_dim"], "aim": AIMS[name], "torch": torch.__version__,
        }
        print(f"{name}: test accuracy {record['test_accuracy']:.4f} on {record['test_samples']} "
              f"held-out images (aim {AIMS[name]}), {seconds:.0f} s -> {ASSETS / file}")
        if record["test_accuracy"] < AIMS[name]:
            failed.append(name)
        index_path.write_text(json.dumps(dict(sorted(index.items())), indent=2) + "\n")
    if failed:
        print(f"below the accuracy aim: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
