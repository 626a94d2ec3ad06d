"""``python -m training.curriculum --config training/configs/curriculum.yaml [--resume]``

Runs the stages in order in one process (group). Curriculum YAML::

    output_dir: runs/curriculum
    overrides: {data: {sources: [{manifest: data/synth/manifest.jsonl}]}}   # every stage
    stages:
      - {config: clap.yaml}                                  # relative to this file
      - {config: pretrain.yaml, overrides: {train: {max_steps: 100}}}

Stage ``k`` writes ``<output_dir>/<k>-<stage>/`` and starts from stage ``k-1``'s exported
weights (``<dir>/model``) with a fresh engine over its own trainable set. Every stage's
config is validated before the first one starts. ``--resume`` skips finished stages and
resumes the unfinished one from its newest good checkpoint (exit status 2, as training.train,
when none can be used). :func:`plan` builds the stage configs and :func:`run` trains them; the
main job (``training.demo``) runs its curriculum (``training/configs/demo/``) through both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import yaml

from training.config import ConfigError, load_config, merge, resolve_config_path

KEYS = {"output_dir", "overrides", "stages"}
STAGE_KEYS = {"config", "overrides"}


def _under(base: Optional[Path], path: str) -> str:
    return str(base / path) if base is not None and not Path(path).is_absolute() else path


def plan(path: str | Path, extra: dict | None = None, *, base_dir: str | Path | None = None) -> list[dict]:
    """The validated config of every stage, ``init_from`` chained. ``extra``: overrides of every
    stage (after the curriculum's own). ``base_dir``: relative ``output_dir`` and data manifests
    are taken from it instead of the working directory."""
    path = resolve_config_path(path)
    spec = yaml.safe_load(path.read_text()) or {}
    for key in spec:
        if key not in KEYS:
            raise ConfigError(key, f"unknown curriculum key (known: {', '.join(sorted(KEYS))})")
    if not spec.get("stages"):
        raise ConfigError("stages", "the curriculum has no stages")
    base = Path(base_dir) if base_dir is not None else None
    out = Path(_under(base, spec.get("output_dir", "runs/curriculum")))
    common = merge(spec.get("overrides") or {}, extra or {})
    cfgs, previous = [], None
    for k, stage in enumerate(spec["stages"]):
        bad = set(stage) - STAGE_KEYS if isinstance(stage, dict) else {"<not a mapping>"}
        if bad or "config" not in stage:
            raise ConfigError(f"stages[{k}]", f"expected {{config, overrides}}, got {stage!r}")
        try:
            cfg = load_config(path.parent / stage["config"], merge(common, stage.get("overrides") or {}), check=False)
            for src in cfg["data"]["sources"]:
                if isinstance(src, dict) and isinstance(src.get("manifest"), str):
                    src["manifest"] = _under(base, src["manifest"])
            name = f"{k}-{cfg['stage']}"
            cfg = merge(cfg, {"output": {"dir": str(out / name)}, "init_from": None})
            load_config(None, cfg)  # validate everything but the not-yet-written init_from
        except ConfigError as e:
            raise ConfigError(f"stages[{k}].{e.key}", str(e).split(": ", 1)[1]) from None
        cfg["init_from"] = previous
        previous = cfg["output"]["dir"]
        cfgs.append(cfg)
    return cfgs


def run(
    cfgs: list[dict], *, resume: bool = False, on_stage: Optional[Callable[[int, dict], None]] = None
) -> list[dict]:
    """Train the planned stages in order; returns their summaries. ``resume``: a stage whose final
    checkpoint and summary are written is skipped (its summary read back), the unfinished one
    resumes from its newest good checkpoint. ``on_stage(k, cfg)`` is called before stage ``k``
    trains."""
    from training.checkpoint import is_complete
    from training.train import run_stage

    summaries = []
    for k, cfg in enumerate(cfgs):
        out = Path(cfg["output"]["dir"])
        if resume and is_complete(out / "checkpoints" / "final") and (out / "summary.json").is_file():
            summaries.append(json.loads((out / "summary.json").read_text()))
            continue
        if on_stage is not None:
            on_stage(k, cfg)
        summaries.append(run_stage(cfg, resume=resume))
    return summaries


def main(argv: list[str] | None = None) -> int:
    """The old name of ``af2 curriculum`` (training/cli/curriculum.py parses the flags and runs the plan)."""
    from af2.cli import legacy_main

    return legacy_main("curriculum", "python -m training.curriculum", argv)


if __name__ == "__main__":
    raise SystemExit(main())
