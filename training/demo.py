"""``python -m training.demo [--out runs/demo] [--quick] [--seed 0]``: the whole AF2 curriculum, small.

One command that shows a tiny AF2 learning, on the CPU (or a GPU when there is one):

1. **data**: synthetic AudioSkills (7 skills, multiple choice and open-ended) + long scenes
   for training (``--seed``), and a held-out set from another seed (``--seed + 1``);
2. **untrained**: the initial model (the same seeded weights the first stage starts from) is
   evaluated on the held-out multiple-choice questions;
3. **train**: AF-CLAP contrastive (``clap``) -> ``pretrain`` (30 s) -> ``sft`` (AF-CLAP audio
   encoder trainable too) -> ``long`` (long scenes), each a DeepSpeed stage of
   :func:`training.train.run_stage`, each starting from the previous stage's export; step counts
   and learning rates suit the tiny preset (:data:`STAGE_SETTINGS`); BatchNorm frozen, the frozen
   HTSAT's features cached and the audio transformation's input norm set from the data in
   ``pretrain`` (``train.*`` options, README "Training");
4. **eval**: the trained model on the same questions, and again with each question's audio
   swapped for another held-out clip of the same question type (a control: what the model gets
   right without the right audio);
5. **report** under ``OUT/report/``: ``report.json`` (per-skill accuracy untrained / trained /
   shuffled-audio / chance, per question type, losses per stage, timings, configs),
   ``report.md`` (tables) and ``loss_<stage>.png`` + ``loss_all.png`` (needs matplotlib).

Evaluation is rank classification (:mod:`af2.eval.choice_scoring`): each option scored by the
model's log-likelihood of it as the answer; only multiple-choice questions are evaluated and
chance is the mean of 1/len(choices). ``--quick`` is a seconds-long smoke run (tests): it
checks the plumbing and the report, not learning.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np

from af2.data.skills import SKILLS as SKILL_ORDER
from af2.stages import STAGES

#: Sizes of the default run (about 13.5 min on 2 CPU cores) and of ``--quick``. ``weights``: the
#: share of clips per skill (af2.data.synth.generate.skill_cycle): the skills the report must show
#: learned (counting, temporal order, attributes) get more training clips and more held-out questions.
TRAIN_WEIGHTS = {
    "counting": 2,
    "temporal_reasoning": 4,
    "attribute_identification": 4,
    "contextual_sound_event_reasoning": 2,
}
HELDOUT_WEIGHTS = {"counting": 3, "temporal_reasoning": 4, "attribute_identification": 4}
SIZES = {
    "full": {
        "n_train": 6000,
        "n_long": 24,
        "n_test": 1500,
        "n_long_test": 12,
        "long_seconds": (30.0, 60.0),
        "steps": {"clap": 24, "pretrain": 3000, "sft": 200, "long": 6},
    },
    "quick": {
        "n_train": 28,
        "n_long": 1,
        "n_test": 21,
        "n_long_test": 1,
        "long_seconds": (30.0, 32.0),
        "steps": {"clap": 2, "pretrain": 2, "sft": 2, "long": 1},
    },
}


#: Per-stage settings of the default run (sizes and learning rates suit the tiny preset).
STAGE_SETTINGS = {
    "clap": {
        "data": {"max_windows": 2, "max_windows_per_batch": 32},
        "clap": {"positives": 2, "negatives": 2, "batch_size": 8, "max_text_length": 128},
        "optim": {"lr": 2e-4, "warmup_steps": 2, "schedule": "cosine"},
    },
    # the HTSAT is frozen in pretrain and long: its features are computed once per clip. The
    # random tiny HTSAT's dense tokens share a large common component; the audio transformation's
    # input LayerNorm starts out standardising them per feature (training.norm_init)
    "pretrain": {
        "data": {"max_windows": 3, "max_windows_per_batch": 32},
        "train": {"feature_cache_mb": 512, "init_audio_norm_from_data": True},
        "optim": {"lr": 3e-3, "warmup_steps": 10, "schedule": "cosine", "weight_decay": 0.01},
    },
    # AF2's fine-tune lr is a fifth of pre-train's; with the HTSAT trainable, a higher lr memorises clips
    "sft": {
        "data": {"max_windows": 3, "max_windows_per_batch": 32},
        "optim": {"lr": 6e-4, "warmup_steps": 10, "schedule": "cosine", "weight_decay": 0.01},
    },
    # long scenes (30-60 s here, up to 6 windows) with a replay of the short data
    "long": {
        "data": {"max_windows": 6, "max_windows_per_batch": 24},
        "train": {"feature_cache_mb": 512},
        "optim": {"lr": 5e-4, "warmup_steps": 0, "schedule": "cosine", "weight_decay": 0.01},
    },
}
LONG_REPLAY_WEIGHT = 0.1
#: train.* keys of every stage: the HTSAT's mel BatchNorm keeps its initial statistics (fitted on
#: these clips, zero-padded to 10 s, they are dominated by the -100 dB padding and the LM stages
#: learn much less event identity)
TRAIN_COMMON: dict = {"freeze_batchnorm": True}


def say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def stage_configs(data: Path, runs: Path, *, steps: dict, seed: int, workers: int) -> list[dict]:
    """The four validated stage configs, ``init_from`` chained (the previous stage's output)."""
    from training.config import load_config

    short = {"manifest": str(data / "manifest.jsonl"), "long_audio": "exclude"}
    longs = {"manifest": str(data / "manifest.jsonl"), "long_audio": "only"}
    common = {
        "model": {"preset": "tiny", "seed": seed},
        "train": {"seed": seed, "progress": True, **TRAIN_COMMON},
        "deepspeed": {"zero_stage": 2, "precision": "auto"},
    }
    sources = {
        "clap": [short],
        "pretrain": [short],
        "sft": [short],
        "long": [longs, {**short, "weight": LONG_REPLAY_WEIGHT}],
    }
    per_stage = {
        stage: {**STAGE_SETTINGS[stage], "data": {**STAGE_SETTINGS[stage]["data"], "sources": sources[stage]}}
        for stage in STAGES
    }
    cfgs, previous = [], None
    for k, stage in enumerate(STAGES):
        over = {**common, **per_stage[stage], "stage": stage}
        over["data"] = {**over["data"], "num_workers": workers, "seed": seed}
        n_steps = max(1, int(steps[stage]))
        over["optim"] = {
            **over["optim"],
            "min_lr_ratio": 0.1,
            "warmup_steps": min(over["optim"]["warmup_steps"], n_steps // 5),
        }
        over["train"] = {**common["train"], **over.get("train", {}), "max_steps": n_steps, "checkpoint_every": 0}
        over["output"] = {"dir": str(runs / f"{k}-{stage}")}
        cfg = load_config(None, over)
        cfg["init_from"] = previous
        previous = cfg["output"]["dir"]
        cfgs.append(cfg)
    return cfgs


def generate_data(out: Path, size: dict, seed: int, workers: int = 2) -> dict:
    from af2.data.skills import SKILLS
    from af2.data.synth import generate
    from af2.data.synth.generate import skill_cycle

    meta = {}
    for name, n, n_long, s, weights in (
        ("train", size["n_train"], size["n_long"], seed, TRAIN_WEIGHTS),
        ("heldout", size["n_test"], size["n_long_test"], seed + 1, HELDOUT_WEIGHTS),
    ):
        t0 = time.time()
        folder = out / name
        if (folder / "metadata.json").is_file():
            m = json.loads((folder / "metadata.json").read_text())
            cycle = skill_cycle(weights)
            wanted = {k: cycle.count(k) for k in SKILLS}
            if (m.get("n"), m.get("n_long"), m.get("seed"), m.get("skill_weights")) == (n, n_long, s, wanted):
                say(f"data/{name}: reusing {m['questions']} questions in {folder}")
                meta[name] = m
                continue
        say(f"data/{name}: generating {n} clips + {n_long} long scenes (seed {s})")
        meta[name] = generate(
            folder,
            n,
            seed=s,
            n_long=n_long,
            long_seconds=tuple(size["long_seconds"]),
            progress=True,
            skill_weights=weights,
            workers=workers,
        )
        meta[name]["time_s"] = round(time.time() - t0, 1)
    return meta


def heldout_samples(manifest: Path) -> list:
    from af2.data.manifest import load_manifest

    return [s for s in load_manifest(manifest, strict=True).samples if s.choices]


def control_map(samples: list, seed: int):
    """Index -> another held-out question's index with the same question type (the audio swap)."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(str(s.extra.get("qtype", s.skill)), []).append(i)
    mapping = list(range(len(samples)))
    for idx in groups.values():
        if len(idx) < 2:
            continue
        shift = rng.permutation(len(idx))
        rolled = [idx[j] for j in np.roll(shift, 1)]
        for a, b in zip([idx[j] for j in shift], rolled):
            mapping[a] = b
    return mapping.__getitem__


def evaluate(model, samples: list, label: str, *, audio_map=None, max_windows: int = 6) -> dict:
    """Rank-classification accuracy on ``samples``: by skill (short clips), by question type, long."""
    from tqdm import tqdm

    from af2.eval.choice_scoring import accuracy_by_skill, score_choices

    t0 = time.time()
    with tqdm(total=len(samples), desc=f"eval {label}", unit="q", dynamic_ncols=True) as bar:
        results = score_choices(model, samples, max_windows=max_windows, audio_map=audio_map, progress=bar.update)
    long_ids = {s.id for s in samples if s.extra.get("long_audio")}
    short = [r for r in results if r.id not in long_ids]
    return {
        "by_skill": accuracy_by_skill(short),
        "by_qtype": accuracy_by_skill(results, key=lambda r: r.qtype),
        "long_audio": accuracy_by_skill([r for r in results if r.id in long_ids], key=lambda r: "long").get(
            "all", {"n": 0}
        ),
        "time_s": round(time.time() - t0, 1),
        "predictions": [r.to_dict() for r in results],
    }


def read_losses(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    return [{"step": r["step"], "loss": r["loss"]} for r in map(json.loads, path.read_text().splitlines())]


def plot_losses(losses: dict, out: Path) -> list[str]:
    """``loss_<stage>.png`` per stage and ``loss_all.png`` (stages end to end)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files, offset = [], 0
    fig_all, ax_all = plt.subplots(figsize=(8, 4))
    for stage, rows in losses.items():
        if not rows:
            continue
        steps, vals = [r["step"] for r in rows], [r["loss"] for r in rows]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(steps, vals, lw=1, alpha=0.5, label="per step")
        if len(vals) >= 5:
            k = max(2, len(vals) // 20)
            smooth = np.convolve(vals, np.ones(k) / k, mode="valid")
            ax.plot(steps[k - 1 :], smooth, lw=2, label=f"mean of {k}")
        ax.set(
            title=f"{stage} loss" + (" (contrastive)" if stage == "clap" else " (answer LM)"),
            xlabel="optimizer step",
            ylabel="loss",
        )
        ax.legend()
        fig.tight_layout()
        name = f"loss_{stage}.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        files.append(name)
        ax_all.plot([s + offset for s in steps], vals, lw=1, label=stage)
        offset += steps[-1]
    ax_all.set(title="AF2 tiny: curriculum losses", xlabel="optimizer step (all stages)", ylabel="loss")
    ax_all.legend()
    fig_all.tight_layout()
    fig_all.savefig(out / "loss_all.png", dpi=100)
    plt.close(fig_all)
    return files + ["loss_all.png"]


def z_score(acc: float, chance: float, n: int) -> float:
    """(accuracy - chance) in binomial standard errors of chance: a rough significance guide."""
    if not n or chance <= 0 or chance >= 1:
        return 0.0
    return (acc - chance) / math.sqrt(chance * (1 - chance) / n)


def skill_table(evals: dict) -> list[dict]:
    rows = []
    trained = evals["trained"]["by_skill"]
    names = [s for s in SKILL_ORDER if s in trained] + sorted(set(trained) - set(SKILL_ORDER) - {"all"}) + ["all"]
    for skill in names:
        t = trained[skill]
        row = {"skill": skill, "n": t["n"], "chance": round(t["chance"], 4)}
        for key, ev in evals.items():
            row[key] = round(ev["by_skill"].get(skill, {}).get("accuracy", float("nan")), 4)
        row["z_trained_vs_chance"] = round(z_score(t["accuracy"], t["chance"], t["n"]), 2)
        rows.append(row)
    long_t = evals["trained"]["long_audio"]
    if long_t.get("n"):
        row = {"skill": "long_audio (long scenes)", "n": long_t["n"], "chance": round(long_t["chance"], 4)}
        for key, ev in evals.items():
            row[key] = round(ev["long_audio"].get("accuracy", float("nan")), 4)
        row["z_trained_vs_chance"] = round(z_score(long_t["accuracy"], long_t["chance"], long_t["n"]), 2)
        rows.append(row)
    return rows


def write_markdown(report: dict, path: Path) -> None:
    lines = [
        "# AF2 tiny curriculum demo",
        "",
        f"`{report['command']}` - {report['mode']} run, seed {report['seed']}, device {report['device']}, "
        f"total {report['timings']['total_s']:.0f} s.",
        "",
        "Held-out multiple-choice questions, rank classification (each option scored by the model's "
        "log-likelihood of it as the answer). Chance = mean of 1/len(choices). *Shuffled audio*: the "
        "trained model with each question's audio replaced by another held-out clip of the same "
        "question type. z = (trained - chance) in binomial standard errors.",
        "",
        "| skill | n | chance | untrained | trained | shuffled audio | z |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["accuracy_table"]:
        lines.append(
            f"| {r['skill']} | {r['n']} | {r['chance']:.3f} | {r['untrained']:.3f} | {r['trained']:.3f} "
            f"| {r['trained_shuffled_audio']:.3f} | {r['z_trained_vs_chance']:+.1f} |"
        )
    lines += ["", "| stage | steps | first loss | final loss | time (s) |", "|---|---:|---:|---:|---:|"]
    for stage, s in report["stages"].items():
        lines.append(f"| {stage} | {s['steps']} | {s['first_loss']:.3f} | {s['final_loss']:.3f} | {s['time_s']:.0f} |")
    lines += [
        "",
        "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in report["timings"].items()),
        "",
        "Loss curves: " + ", ".join(f"[{f}]({f})" for f in report["plots"]),
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    """The old name of ``af2 demo`` (af2/cli/demo.py parses the flags, ``--out`` is ``--output``)."""
    from af2.cli import legacy_main

    return legacy_main("demo", "python -m training.demo", argv)


def run(args) -> int:
    """The demo with the parsed flags of ``af2 demo`` (output, quick, seed, steps_scale, workers,
    command_line)."""
    from af2._deps import require

    require("training.demo", "train", ["matplotlib"])  # its plots come last: fail before training
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    from af2.model import AudioFlamingo2
    from training.stages import build_model
    from training.train import run_stage

    t_all = time.time()
    mode = "quick" if args.quick else "full"
    size = SIZES[mode]
    steps = {k: max(1, round(v * args.steps_scale)) for k, v in size["steps"].items()}
    out = Path(args.output)
    runs, report_dir = out / "runs", out / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    timings: dict[str, float] = {}
    say(f"{mode} run -> {out} (device {device}, {torch.get_num_threads()} threads, steps {steps})")

    say("phase 1/5: synthetic AudioSkills data")
    t0 = time.time()
    data_meta = generate_data(out / "data", size, args.seed, workers=max(1, min(4, os.cpu_count() or 1)))
    timings["data_s"] = time.time() - t0
    samples = heldout_samples(out / "data" / "heldout" / "manifest.jsonl")
    say(f"held-out: {len(samples)} multiple-choice questions")

    cfgs = stage_configs(out / "data" / "train", runs, steps=steps, seed=args.seed, workers=args.workers)

    say("phase 2/5: evaluating the untrained model")
    t0 = time.time()
    evals = {"untrained": evaluate(build_model(cfgs[0]).to(device), samples, "untrained")}
    timings["eval_untrained_s"] = time.time() - t0

    say("phase 3/5: training clap -> pretrain -> sft -> long (DeepSpeed)")
    t0 = time.time()
    summaries = {}
    for k, cfg in enumerate(cfgs):
        stage_dir = Path(cfg["output"]["dir"])
        if stage_dir.exists():  # a fresh stage: stale metrics/checkpoints of an earlier run would mix in
            import shutil

            shutil.rmtree(stage_dir)
        say(
            f"stage {k + 1}/4 {cfg['stage']}: {cfg['train']['max_steps']} steps, lr {cfg['optim']['lr']:g}, "
            f"max_windows {cfg['data']['max_windows']}"
        )
        summaries[cfg["stage"]] = run_stage(cfg)
        say(
            f"stage {cfg['stage']} done in {summaries[cfg['stage']]['time_s']:.0f} s, "
            f"final loss {summaries[cfg['stage']]['final_loss']:.4f}"
        )
    timings["train_s"] = time.time() - t0

    say("phase 4/5: evaluating the trained model (+ shuffled-audio control)")
    t0 = time.time()
    model = AudioFlamingo2.from_pretrained(Path(cfgs[-1]["output"]["dir"]) / "model").to(device)
    evals["trained"] = evaluate(model, samples, "trained")
    evals["trained_shuffled_audio"] = evaluate(
        model, samples, "shuffled audio", audio_map=control_map(samples, args.seed)
    )
    timings["eval_trained_s"] = time.time() - t0

    say("phase 5/5: report")
    losses = {cfg["stage"]: read_losses(Path(cfg["output"]["dir"])) for cfg in cfgs}
    plots = plot_losses(losses, report_dir)
    timings["total_s"] = time.time() - t_all
    stages = {}
    for stage, s in summaries.items():
        vals = [r["loss"] for r in losses[stage] if r["loss"] == r["loss"]]
        stages[stage] = {
            "steps": s["steps"],
            "time_s": s["time_s"],
            "final_loss": s["final_loss"],
            "first_loss": vals[0] if vals else float("nan"),
            "mean_loss_first_10pct": float(np.mean(vals[: max(1, len(vals) // 10)])) if vals else None,
            "mean_loss_last_10pct": float(np.mean(vals[-max(1, len(vals) // 10) :])) if vals else None,
            "trainable_params": s["trainable_params"],
            "frozen_params": s["frozen_params"],
            "samples": s["samples"],
        }
    predictions = {k: ev.pop("predictions") for k, ev in evals.items()}
    report = {
        "command": args.command_line,
        "mode": mode,
        "seed": args.seed,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "evaluation": {
            "method": "rank classification over the options (af2.eval.choice_scoring), "
            "multiple-choice held-out questions only",
            "chance": "mean over questions of 1/len(choices)",
            "control": "trained model, audio swapped with another held-out clip of the same qtype",
            "n_questions": len(samples),
        },
        "accuracy_table": skill_table(evals),
        "accuracy": evals,
        "stages": stages,
        "losses": losses,
        "timings": {k: round(v, 1) for k, v in timings.items()},
        "data": data_meta,
        "stage_configs": cfgs,
        "plots": plots,
    }
    (report_dir / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (report_dir / "predictions.json").write_text(json.dumps(predictions) + "\n")
    write_markdown(report, report_dir / "report.md")
    say(f"done in {timings['total_s']:.0f} s; report in {report_dir}")
    print((report_dir / "report.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
