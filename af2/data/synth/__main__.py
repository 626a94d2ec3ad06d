"""``python -m af2.data.synth --out DIR --n 2000 --seed 0``: write a synthetic AudioSkills set."""
from __future__ import annotations

import argparse
import json
import logging

from af2.data.synth.generate import generate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m af2.data.synth", description=__doc__)
    p.add_argument("--out", required=True, help="output folder (clips/, long/, manifest.jsonl, metadata.json)")
    p.add_argument("--n", type=int, default=2000, help="short clips (one question each, temporal ones 3), spread over the 7 skills")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-long", type=int, default=None, help="long scenes, 3 questions each (default n // 50)")
    p.add_argument("--long-min", type=float, default=30.0, help="shortest long scene, seconds")
    p.add_argument("--long-max", type=float, default=300.0, help="longest long scene, seconds")
    p.add_argument("--speech", choices=("auto", "espeak", "formant"), default="auto",
                   help="speech engine: espeak-ng if installed (auto), or formant-synthesised syllables")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    meta = generate(args.out, args.n, seed=args.seed, n_long=args.n_long, long_seconds=(args.long_min, args.long_max),
                    speech=args.speech, progress=not args.quiet)
    print(json.dumps(meta, indent=2))
    if "speech_note" in meta:
        print(f"NOTE: {meta['speech_note']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
