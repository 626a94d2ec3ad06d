"""``python -m training.demo [--out runs/demo] [--quick] [--seed 0]``: the whole AF2 curriculum, small.

One command that shows a tiny AF2 learning, on the CPU (or a GPU when there is one):

1. **data**: synthetic AudioSkills (7 skills, multiple choice and open-ended) + long scenes
   for training (``--seed``), and a held-out set from another seed (``--seed + 1``);
2. **untrained**: the initial model (the same seeded weights the first stage starts from) is
   evaluated on the held-out multiple-choice questions;
3. **train**: the curriculum ``training/configs/demo/curriculum.yaml`` (``quick.yaml`` for
   ``--quick``), run by :func:`training.curriculum.run` as any curriculum: AF-CLAP contrastive
   (``clap``) -> ``pretrain`` (30 s) -> ``sft`` (AF-CLAP audio encoder trainable too) -> ``long``
   (long scenes of 30 s - 5 min), each a DeepSpeed stage starting from the previous stage's
   export, the model the ``demo`` preset; its paths are taken from ``OUT``;
4. **eval**: the trained model on the same questions, and again with each question's audio
   swapped for another held-out clip of the same question type (a control: what the model gets
   right without the right audio);
5. **report** under ``OUT/report/``: ``report.json`` (per-skill accuracy untrained / trained /
   shuffled-audio / chance, per question type, losses per stage, timings, configs),
   ``report.md`` (tables) and ``loss_<stage>.png`` + ``loss_all.png`` (needs matplotlib).

Evaluation is rank classification (:mod:`af2.eval.choice_scoring`): each option scored by the
model's log-likelihood of it as the answer; only multiple-choice questions are evaluated and
chance is the mean of 1/len(choices); long scenes are reported apart, overall and by length
(:data:`LONG_BINS`). ``--quick`` is a seconds-long smoke run (tests): it checks the plumbing and
the report, not learning.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np

from af2.data.skills import SKILLS as SKILL_ORDER

#: Data sizes of the default run and of ``--quick`` (the stages' steps are in their configs).
#: ``weights``: the share of clips per skill (af2.data.synth.generate.skill_cycle): the skills the
#: report must show learned (counting, temporal order, attributes) get more training clips and
#: more held-out questions. Long scenes: 4 multiple-choice questions each, log-uniform lengths.
TRAIN_WEIGHTS = {
    "counting": 2,
    "temporal_reasoning": 4,
    "attribute_identification": 4,
    "contextual_sound_event_reasoning": 2,
}
HELDOUT_WEIGHTS = {"counting": 3, "temporal_reasoning": 4, "attribute_identification": 4}
SIZES = {
    "full": {"n_train": 6000, "n_long": 80, "n_test": 1500, "n_long_test": 40, "long_seconds": (30.0, 300.0)},
    "quick": {"n_train": 28, "n_long": 1, "n_test": 21, "n_long_test": 1, "long_seconds": (30.0, 32.0)},
}
CURRICULA = {"full": "curriculum.yaml", "quick": "quick.yaml"}
CONFIGS = Path(__file__).resolve().parent / "configs" / "demo"
#: The report's long-scene rows by scene length: (label, shortest s, longest s).
LONG_BINS = (("30-60 s", 0.0, 60.0), ("1-2 min", 60.0, 120.0), ("2-5 min", 120.0, float("inf")))


def say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def stage_configs(out: Path, *, mode: str, seed: int, workers: int, steps_scale: float = 1.0) -> list[dict]:
    """The main job's validated stage configs (:data:`CURRICULA`, paths under ``out``), ``init_from``
    chained; ``steps_scale`` multiplies every stage's steps (warmup at most a fifth of them)."""
    from training.config import load_config, merge
    from training.curriculum import plan

    extra = {"model": {"seed": seed}, "train": {"seed": seed}, "data": {"seed": seed, "num_workers": workers}}
    cfgs = plan(CONFIGS / CURRICULA[mode], extra, base_dir=out)
    if steps_scale != 1.0:
        for k, cfg in enumerate(cfgs):
            n = max(1, round(cfg["train"]["max_steps"] * steps_scale))
            scaled = {"train": {"max_steps": n}, "optim": {"warmup_steps": min(cfg["optim"]["warmup_steps"], n // 5)}}
            cfgs[k] = {**load_config(None, merge(cfg, {**scaled, "init_from": None})), "init_from": cfg["init_from"]}
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
            same = (m.get("n"), m.get("n_long"), m.get("seed"), m.get("skill_weights"), m.get("long_seconds"))
            if same == (n, n_long, s, wanted, list(size["long_seconds"])):
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


def length_bin(seconds: float) -> str:
    """The :data:`LONG_BINS` label of a long scene of ``seconds``."""
    return next(label for label, low, high in LONG_BINS if low <= seconds < high)


def evaluate(model, samples: list, label: str, *, audio_map=None, max_windows: int = 30, features=None) -> dict:
    """Rank-classification accuracy on ``samples``: by skill (short clips), by question type, and
    on the long scenes overall (``long_audio``) and by scene length (``long_audio_by_length``).
    ``features``: af2.eval.choice_scoring's cache of audio features, for passes with one model."""
    from tqdm import tqdm

    from af2.eval.choice_scoring import accuracy_by_skill, score_choices

    t0 = time.time()
    with tqdm(total=len(samples), desc=f"eval {label}", unit="q", dynamic_ncols=True) as bar:
        results = score_choices(
            model, samples, max_windows=max_windows, audio_map=audio_map, progress=bar.update, features=features
        )
    seconds = {s.id: float(s.extra.get("duration", 0.0)) for s in samples if s.extra.get("long_audio")}
    short = [r for r in results if r.id not in seconds]
    long = [r for r in results if r.id in seconds]
    by_length = accuracy_by_skill(long, key=lambda r: length_bin(seconds[r.id]))
    by_length.pop("all", None)
    return {
        "by_skill": accuracy_by_skill(short),
        "by_qtype": accuracy_by_skill(results, key=lambda r: r.qtype),
        "long_audio": accuracy_by_skill(long, key=lambda r: "long").get("all", {"n": 0}),
        "long_audio_by_length": {b: by_length[b] for b, _, _ in LONG_BINS if b in by_length},
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
    long_rows = [("long_audio (long scenes)", lambda ev: ev["long_audio"])]
    long_rows += [
        (f"long_audio {b}", lambda ev, b=b: ev["long_audio_by_length"].get(b, {}))
        for b, _, _ in LONG_BINS
        if b in evals["trained"]["long_audio_by_length"]
    ]
    for name, pick in long_rows:
        t = pick(evals["trained"])
        if not t.get("n"):
            continue
        row = {"skill": name, "n": t["n"], "chance": round(t["chance"], 4)}
        for key, ev in evals.items():
            row[key] = round(pick(ev).get("accuracy", float("nan")), 4)
        row["z_trained_vs_chance"] = round(z_score(t["accuracy"], t["chance"], t["n"]), 2)
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
    long_qtypes = [q for q in report["accuracy"]["trained"]["by_qtype"] if q.startswith("long.")]
    if long_qtypes:
        lines += ["", "Long scenes by question type:", "", "| question type | n | chance | untrained | trained | z |"]
        lines.append("|---|---:|---:|---:|---:|---:|")
        for q in sorted(long_qtypes):
            t, u = report["accuracy"]["trained"]["by_qtype"][q], report["accuracy"]["untrained"]["by_qtype"].get(q, {})
            z = z_score(t["accuracy"], t["chance"], t["n"])
            untrained = u.get("accuracy", float("nan"))
            lines.append(f"| {q} | {t['n']} | {t['chance']:.3f} | {untrained:.3f} | {t['accuracy']:.3f} | {z:+.1f} |")
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
    """The old name of ``af2 demo`` (training/cli/demo.py parses the flags, ``--out`` is ``--output``)."""
    from af2.cli import legacy_main

    return legacy_main("demo", "python -m training.demo", argv)


def run(args) -> int:
    """The demo with the parsed flags of ``af2 demo`` (output, quick, seed, steps_scale, workers,
    resume, command_line)."""
    from af2._deps import require

    require("training.demo", "train", ["matplotlib"])  # its plots come last: fail before training
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    from af2.model import AudioFlamingo2
    from training.curriculum import run as run_curriculum
    from training.stages import build_model

    t_all = time.time()
    mode = "quick" if args.quick else "full"
    size = SIZES[mode]
    out = Path(args.output)
    report_dir = out / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    timings: dict[str, float] = {}
    say(f"{mode} run -> {out} (device {device}, {torch.get_num_threads()} threads)")

    say("phase 1/5: synthetic AudioSkills data")
    t0 = time.time()
    data_meta = generate_data(out / "data", size, args.seed, workers=max(1, min(4, os.cpu_count() or 1)))
    timings["data_s"] = time.time() - t0
    samples = heldout_samples(out / "data" / "heldout" / "manifest.jsonl")
    say(f"held-out: {len(samples)} multiple-choice questions")

    cfgs = stage_configs(out, mode=mode, seed=args.seed, workers=args.workers, steps_scale=args.steps_scale)
    max_windows = max(cfg["data"]["max_windows"] for cfg in cfgs)

    say("phase 2/5: evaluating the untrained model")
    t0 = time.time()
    evals = {"untrained": evaluate(build_model(cfgs[0]).to(device), samples, "untrained", max_windows=max_windows)}
    timings["eval_untrained_s"] = time.time() - t0

    say(f"phase 3/5: training {' -> '.join(cfg['stage'] for cfg in cfgs)} (DeepSpeed)")
    t0 = time.time()
    resume = bool(getattr(args, "resume", False))
    if not resume:  # fresh stages: stale metrics/checkpoints of an earlier run would mix in
        for cfg in cfgs:
            shutil.rmtree(cfg["output"]["dir"], ignore_errors=True)

    def announce(k: int, cfg: dict) -> None:
        say(
            f"stage {k + 1}/{len(cfgs)} {cfg['stage']}: {cfg['train']['max_steps']} steps, lr {cfg['optim']['lr']:g}, "
            f"max_windows {cfg['data']['max_windows']}"
        )

    summaries = {s["stage"]: s for s in run_curriculum(cfgs, resume=resume, on_stage=announce)}
    for stage, s in summaries.items():
        say(f"stage {stage}: {s['time_s']:.0f} s, final loss {s['final_loss']:.4f}")
    timings["train_s"] = time.time() - t0

    say("phase 4/5: evaluating the trained model (+ shuffled-audio control)")
    t0 = time.time()
    model = AudioFlamingo2.from_pretrained(Path(cfgs[-1]["output"]["dir"]) / "model").to(device)
    features: dict = {}  # the trained model's audio features, shared by both passes
    evals["trained"] = evaluate(model, samples, "trained", max_windows=max_windows, features=features)
    evals["trained_shuffled_audio"] = evaluate(
        model,
        samples,
        "shuffled audio",
        audio_map=control_map(samples, args.seed),
        max_windows=max_windows,
        features=features,
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
