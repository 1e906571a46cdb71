"""`gossipgan eval` (sample quality of a checkpoint) and `gossipgan compare` (runs side by side).

    gossipgan eval runs/a [--checkpoint FILE] [--samples 10000] [--train-classifier]
    gossipgan compare runs/dpoadam runs/cpoadam --out runs/compare

cls_* metrics live in the feature space of the project's own classifiers (gossipgan.metrics):
comparable between runs, never to published Inception FID/IS.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from gossipgan.errors import ConfigError

MAX_SAMPLES = 1_000_000  # generated images are held in memory at once
PLOT_KEYS = ("grad_op_norm_sq", "cls_fid", "cls_is", "cls_classes_hit", "hq_rate",
             "modes_covered")


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="sample quality (cls_fid, cls_is, ...) of a run's checkpoint",
                       description="Recompute the quality metrics of a run's average model "
                       "x_bar from its checkpoint; print a table and write eval.json. cls_* "
                       "metrics use the project's own classifier features, not Inception.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory (from gossipgan train --out)")
    p.add_argument("--checkpoint", metavar="FILE", help="checkpoint file [RUN_DIR/checkpoint.pt; "
                   "a torchrun run: the ranks' newest common step]; a rank's file "
                   "checkpoints/rankR-STEP.pt picks that step of every rank")
    p.add_argument("--samples", type=int, default=None, metavar="N",
                   help="generated samples [10000 for images, 2500 for 2-D mixtures]; the "
                   "value logged during training used run.quality_samples")
    p.add_argument("--classifier", metavar="FILE", help="classifier file for the cls_* metrics "
                   "[run.classifier, else the shipped one, else RUN_DIR/classifier.pt]")
    p.add_argument("--train-classifier", action="store_true",
                   help="train a classifier on the run's dataset first (fixed seed), save it as "
                   "RUN_DIR/classifier.pt and use it")
    p.add_argument("--epochs", type=int, default=None, help="epochs for --train-classifier")
    p.add_argument("--device", default=None, help="override run.device, e.g. cpu")
    p.add_argument("--inception-weights", metavar="FILE", default=None,
                   help="OPTIONAL: also compute real Inception FID/IS (inception_fid, "
                   "inception_is); needs torch-fidelity and its pt_inception-2015-12-05 weights")
    p.add_argument("--out", metavar="FILE", help="where to write the JSON [RUN_DIR/eval.json]")
    p.set_defaults(func=run_eval)

    c = sub.add_parser("compare", help="quality and ||T||^2 of several runs on shared axes",
                       description="Plot quality metrics and ||T(x_bar)||^2 of several runs "
                       "against iterations and against training wall-clock seconds, and print "
                       "their final values side by side (e.g. DPOAdam against CPOAdam).")
    c.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    c.add_argument("--out", default="compare", help="folder for the plots and compare.json "
                   "[./compare]")
    c.add_argument("--keys", default=None, help="comma-separated metrics.csv columns to plot "
                   f"[those present of {', '.join(PLOT_KEYS)}]")
    c.set_defaults(func=run_compare)


# ------------------------------------------------------------------------------------ eval

def _load_checkpoint(run_dir: Path, checkpoint: str | None, device: str | None):
    """The run's config (as a simulator run, on `device`), its checkpoint state and path.
    A torch.distributed run's per-rank checkpoints of one step are joined into the
    simulator's (gossipgan.train.ranks), whose x_bar is the average over the ranks."""
    from gossipgan.train.checkpoint import load_checkpoint
    from gossipgan.train.config import Config
    from gossipgan.train.ranks import RANK_FILE, load_rank_checkpoints

    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a directory; give a run directory written by "
                          "`gossipgan train --out DIR`")
    ckpt = Path(checkpoint) if checkpoint else run_dir / "checkpoint.pt"
    rank_file = RANK_FILE.match(ckpt.name) if checkpoint else None
    if rank_file and ckpt.is_file():
        state, name = load_rank_checkpoints(ckpt.parent, int(rank_file.group(2)))
        ckpt = Path(name)
    elif not checkpoint and not ckpt.is_file() and any(run_dir.glob("checkpoints/rank*-*.pt")):
        state, name = load_rank_checkpoints(run_dir / "checkpoints")
        ckpt = Path(name)
    elif not ckpt.is_file():
        raise ConfigError(f"no run in {run_dir}: no checkpoint at {ckpt} (train one with "
                          f"`gossipgan train --out {run_dir}`)")
    else:
        state = load_checkpoint(ckpt)
    missing = [k for k in ("iteration", "config", "workers", "optimizer") if k not in state]
    if missing:
        raise ConfigError(f"{ckpt} is not a gossipgan training checkpoint (no "
                          f"{', '.join(missing)})")
    cfg = Config.from_dict(state["config"])
    if cfg.game.name != "gan":
        raise ConfigError(f"{run_dir} solved the analytic game {cfg.game.name!r}: it generates "
                          "no samples, so it has no sample quality")
    cfg = cfg.with_values({"run.backend": "sim", **({"run.device": device} if device else {})})
    return cfg, state, ckpt


def _restore(run, state: dict, ckpt: Path) -> None:
    try:
        run.workers.load_state_dict(state["workers"])
        run.optimizer.load_state_dict(state["optimizer"])
        if run.ema is not None:
            run.ema.load_state_dict(state["ema"])
    except (KeyError, RuntimeError, TypeError, ValueError) as err:
        raise ConfigError(f"checkpoint {ckpt} does not fit its own config: {err}") from None


def _train_classifier(cfg, run_dir: Path, epochs: int | None) -> Path:
    from gossipgan.data import load_dataset
    from gossipgan.metrics import save_classifier, train_classifier
    from gossipgan.metrics.monitor import RUN_CLASSIFIER

    d = cfg.data
    train = load_dataset(d.dataset, d.root, split="train", image_size=d.image_size, seed=0)
    try:
        test = load_dataset(d.dataset, d.root, split="test", image_size=d.image_size, seed=0)
        test = test if test.y is not None and len(test) else None
    except ConfigError:
        test = None  # no test split: train_classifier holds out 10% of train
    model, record = train_classifier(train, test, epochs=epochs)
    path = run_dir / RUN_CLASSIFIER
    save_classifier(model, record, path)
    where = "the test split" if test is not None else "a 10% hold-out of train"
    print(f"classifier: test accuracy {record['test_accuracy']:.4f} on {record['test_samples']} "
          f"images ({where}), {record['epochs']} epochs -> {path}")
    return path


def run_eval(args: argparse.Namespace) -> int:
    from gossipgan.train.build import open_run
    from gossipgan.train.outputs import write_json

    run_dir = Path(args.run_dir)
    if args.samples is not None and not 1 <= args.samples <= MAX_SAMPLES:
        raise ConfigError(f"--samples must be in 1..{MAX_SAMPLES:,}, got {args.samples}")
    if args.epochs is not None and not 1 <= args.epochs <= 1000:
        raise ConfigError(f"--epochs must be in 1..1000, got {args.epochs}")
    if args.epochs is not None and not args.train_classifier:
        raise ConfigError("--epochs applies only with --train-classifier")
    cfg, state, ckpt = _load_checkpoint(run_dir, args.checkpoint, args.device)
    with open_run(cfg) as run:
        _restore(run, state, ckpt)
        values, monitor, n = _measure(args, run, run_dir)
    result = {"run_dir": str(run_dir), "checkpoint": str(ckpt), "iteration": state["iteration"],
              "wall_s": state.get("clock", {}).get("train_s"), "algo": cfg.optim.algo,
              "samples": n, **monitor.info, "metrics": values}
    out = Path(args.out) if args.out else run_dir / "eval.json"
    write_json(out, result)
    print(f"{run_dir}: iteration {state['iteration']}, {cfg.optim.algo}, "
          f"{cfg.topology.name} N={cfg.topology.workers}, {n} samples of x_bar"
          + (f" and of its generator's EMA (decay {cfg.run.ema:g}: *_ema)"
             if cfg.run.ema is not None else ""))
    print(_table(["metric", "value"], [[k, _fmt(v)] for k, v in values.items()]))
    if monitor.kind == "image":
        acc = monitor.info.get("classifier_test_accuracy")
        print(f"cls_* = features of the project's own {monitor.info.get('classifier_dataset')} "
              f"classifier (test accuracy {acc:.4f}); not comparable to Inception FID/IS")
    print(f"written to {out}")
    return 0


def _measure(args: argparse.Namespace, run, run_dir: Path):
    """The quality metrics of the run's x_bar: (values, the monitor, samples drawn)."""
    from gossipgan.metrics import build_monitor

    cfg = run.cfg
    classifier = args.classifier
    if args.train_classifier:
        if run.game.dataset.kind != "image":
            raise ConfigError(f"--train-classifier: {cfg.data.dataset!r} holds 2-D points, "
                              "measured by hq_rate / modes_covered without a classifier")
        classifier = _train_classifier(cfg, run_dir, args.epochs)
    monitor = build_monitor(run.game, cfg.run.seed, run_dir=run_dir,
                            classifiers=(classifier, cfg.run.classifier), required=True)
    n = args.samples or monitor.default_samples(training=False)
    monitor.check_samples(n, "--samples")
    x_bar = run.evaluator.x_bar()
    values = monitor.measure(x_bar, n)
    if run.ema is not None:  # the generator's EMA (run.ema), as training logs it
        ema = monitor.measure(run.evaluator.ema_x_bar(x_bar), n)
        values.update({f"{k}_ema": v for k, v in ema.items()})
    if args.inception_weights:
        from gossipgan.metrics import generate_samples, inception_metrics
        from gossipgan.metrics.monitor import reference_images

        if monitor.kind != "image":
            raise ConfigError("--inception-weights applies to image datasets only")
        fake = generate_samples(run.game, x_bar, n, monitor.seed)
        values.update(inception_metrics(reference_images(run.game.dataset), fake,
                                        args.inception_weights))
    return values, monitor, n


# --------------------------------------------------------------------------------- compare

def _last(rows: list[dict], key: str):
    values = [r[key] for r in rows if r.get(key) is not None]
    return values[-1] if values else None


def _labels(dirs: list[Path]) -> list[str]:
    names = [d.resolve().name for d in dirs]
    return [n if names.count(n) == 1 else str(d) for n, d in zip(names, dirs, strict=True)]


def run_compare(args: argparse.Namespace) -> int:
    from gossipgan.metrics import QUALITY_METRICS
    from gossipgan.train.config_io import load_config
    from gossipgan.train.outputs import read_metrics, write_json
    from gossipgan.train.plots import plot_comparison

    dirs = [Path(d) for d in args.run_dirs]
    for d in dirs:
        if not (d / "metrics.csv").is_file():
            raise ConfigError(f"no run in {d}: no metrics.csv (train one with "
                              f"`gossipgan train --out {d}`)")
    labels = _labels(dirs)
    if len(set(labels)) != len(labels):
        raise ConfigError(f"the same run directory is given twice: {', '.join(map(str, dirs))}")
    named = dict(zip(labels, dirs, strict=True))
    metrics = {label: read_metrics(d / "metrics.csv") for label, d in named.items()}
    ema = [f"{k}_ema" for k in QUALITY_METRICS]  # the generator's EMA, with run.ema
    present = [k for k in ("grad_op_norm_sq", "consensus", *QUALITY_METRICS, *ema)
               if any(_last(rows, k) is not None for rows in metrics.values())]
    keys = args.keys.split(",") if args.keys else [k for k in PLOT_KEYS if k in present]
    unknown = [k for k in keys if not any(_last(rows, k) is not None for rows in metrics.values())]
    if unknown:
        raise ConfigError(f"--keys: no run logged {', '.join(unknown)}; logged: "
                          f"{', '.join(present)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plots = [plot_comparison(named, out / "compare_iter.png", keys=keys, x="iter"),
             plot_comparison(named, out / "compare_wall.png", keys=keys, x="wall_s")]

    table: dict[str, dict] = {}
    for label, d in named.items():
        rows = metrics[label]
        col = {}
        if (d / "config.yaml").is_file():
            cfg = load_config(d / "config.yaml")
            col.update({"algo": cfg.optim.algo, "topology": cfg.topology.name,
                        "workers": cfg.topology.workers, "rounds": cfg.optim.rounds,
                        "dataset": cfg.data.dataset})
        col.update({"iter": _last(rows, "iter"), "wall_s": _last(rows, "wall_s")})
        col.update({k: _last(rows, k) for k in present})
        if (d / "eval.json").is_file():
            ev = _read_eval(d / "eval.json")
            col.update({f"eval {k} (n={ev.get('samples')})": v
                        for k, v in ev.get("metrics", {}).items()})
        table[label] = col
    names = list(dict.fromkeys(k for col in table.values() for k in col))
    print(_table(["", *labels], [[k, *(_fmt(table[lb].get(k)) for lb in labels)] for k in names]))
    write_json(out / "compare.json", {"runs": {lb: str(d) for lb, d in named.items()},
                                      "final": table})
    print(f"plots: {', '.join(map(str, plots))}; table: {out / 'compare.json'}")
    return 0


def _read_eval(path: Path) -> dict:
    """An eval.json, checked: a mapping with a mapping of metrics."""
    try:
        ev = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not valid JSON ({err}); rerun `gossipgan eval` on the "
                          "run or move the file aside") from None
    if not isinstance(ev, dict) or not isinstance(ev.get("metrics", {}), dict):
        raise ConfigError(f"{path} is not an eval.json of `gossipgan eval` (no metrics "
                          "mapping); rerun it or move the file aside")
    return ev


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isfinite(v) and v == int(v) and abs(v) < 1e9:
            return str(int(v))
        return f"{v:.4g}"
    return str(v)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
