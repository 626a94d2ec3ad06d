"""Command line: ``python -m af2 info`` prints how af2 was built; ``python -m af2 infer`` runs a
saved AF2 model on audio files or a manifest (see af2/eval/infer.py)."""
from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m af2", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="print af2.build_info()")
    info.add_argument("--json", action="store_true", help="print JSON instead of aligned text")
    inf = sub.add_parser("infer", help="answer prompts about audio with a saved AF2 model")
    inf.add_argument("--model", required=True, help="directory written by AudioFlamingo2.save_pretrained")
    inf.add_argument("--audio", nargs="+", help="audio files (with --prompt)")
    inf.add_argument("--prompt", help="the question asked about every --audio file")
    inf.add_argument("--input", help="a manifest (JSONL) of questions")
    inf.add_argument("--output", help="predictions JSONL (appended; reruns skip done ids)")
    inf.add_argument("--batch-size", type=int, default=8)
    inf.add_argument("--max-new-tokens", type=int, default=64)
    inf.add_argument("--max-windows", type=int, default=None, help="10-s windows per audio (default: the model's)")
    inf.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    args = parser.parse_args(argv)
    if args.command == "infer":
        return _infer(parser, args)

    if args.command == "info":
        import af2

        data = af2.build_info()
        if args.json:
            print(json.dumps(data, indent=2))
        else:
            width = max(map(len, data))
            for key, value in data.items():
                print(f"{key:<{width}}  {value}")
            if not data["cuda"]:
                print("note: CPU core only; this build has no CUDA kernels")
    return 0


def _infer(parser, args) -> int:
    import logging
    from pathlib import Path

    from af2.eval import infer

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if bool(args.audio) == bool(args.input):
        parser.error("infer needs either --audio FILES --prompt TEXT or --input MANIFEST --output PREDS")
    if args.audio and not args.prompt:
        parser.error("--audio needs --prompt")
    if args.input and not args.output:
        parser.error("--input needs --output")
    model = infer.load_model(args.model, args.device or infer.default_device())
    if args.audio:
        reqs = [infer.Request(str(i), Path(a), args.prompt) for i, a in enumerate(args.audio)]
        out = infer.run(model, reqs, output=None, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                        max_windows=args.max_windows, progress=False)
        for i, a in enumerate(args.audio):
            print(f"{a}\t{out['answers'].get(str(i), '<unreadable: see the warning above>')}")
        return 0 if out["failed"] == 0 else 1
    reqs, bad_lines = infer.requests_from_manifest(Path(args.input))
    for msg in bad_lines:
        print(f"skipping bad manifest line {msg}", file=sys.stderr)
    out = infer.run(model, reqs, output=Path(args.output), batch_size=args.batch_size,
                    max_new_tokens=args.max_new_tokens, max_windows=args.max_windows)
    print(f"answered {out['answered']}, already done {out['skipped_done']}, unreadable {out['failed']}, "
          f"bad manifest lines {len(bad_lines)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
