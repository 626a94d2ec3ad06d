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
when none can be used).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from training.config import ConfigError, load_config, merge, resolve_config_path

KEYS = {"output_dir", "overrides", "stages"}
STAGE_KEYS = {"config", "overrides"}


def plan(path: str | Path, extra: dict | None = None) -> list[dict]:
    """The validated config of every stage, ``init_from`` chained."""
    path = resolve_config_path(path)
    spec = yaml.safe_load(path.read_text()) or {}
    for key in spec:
        if key not in KEYS:
            raise ConfigError(key, f"unknown curriculum key (known: {', '.join(sorted(KEYS))})")
    if not spec.get("stages"):
        raise ConfigError("stages", "the curriculum has no stages")
    out = Path(spec.get("output_dir", "runs/curriculum"))
    common = merge(spec.get("overrides") or {}, extra or {})
    cfgs, previous = [], None
    for k, stage in enumerate(spec["stages"]):
        bad = set(stage) - STAGE_KEYS if isinstance(stage, dict) else {"<not a mapping>"}
        if bad or "config" not in stage:
            raise ConfigError(f"stages[{k}]", f"expected {{config, overrides}}, got {stage!r}")
        try:
            cfg = load_config(path.parent / stage["config"], merge(common, stage.get("overrides") or {}), check=False)
            name = f"{k}-{cfg['stage']}"
            cfg = merge(cfg, {"output": {"dir": str(out / name)}, "init_from": None})
            load_config(None, cfg)  # validate everything but the not-yet-written init_from
        except ConfigError as e:
            raise ConfigError(f"stages[{k}].{e.key}", str(e).split(": ", 1)[1]) from None
        cfg["init_from"] = previous
        previous = cfg["output"]["dir"]
        cfgs.append(cfg)
    return cfgs


def main(argv: list[str] | None = None) -> int:
    """The old name of ``af2 curriculum`` (af2/cli/curriculum.py parses the flags and runs the plan)."""
    from af2.cli import legacy_main

    return legacy_main("curriculum", "python -m training.curriculum", argv)


if __name__ == "__main__":
    raise SystemExit(main())
