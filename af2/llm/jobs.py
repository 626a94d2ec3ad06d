"""Batch jobs over JSONL input: exactly one result per input record, resumable after a kill.

Every input record has a source id (its ``id``, else a hash of its content). A record is done
when its id is in the output (``provenance.source_id``) or in the rejects file; a rerun skips
done records, so an interrupted job resumes where it stopped and nothing is written twice. The
lines of one record go out in a single ``write`` on an ``O_APPEND`` descriptor, then ``fsync``;
a torn last line (power loss) is cut off on the next start. Replies are cached before a record
is written, so a record whose reply arrived but whose line did not costs no request on resume.
Records that fail transiently (retries exhausted, a refused request) are left pending: the job
exits 1 and the next run tries them again. A server that is not there (``af2.llm.Unreachable``)
or refuses every request (a bad key) stops the whole job at once: records in flight are left
pending, finished ones stay written, and the job exits 2. A bad input line (not UTF-8, not
JSON, not an object, a duplicate id) and a record whose fields have the wrong types are
rejected with their line number; they never stop the job.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from af2.errors import InputError
from af2.jsonl import cut_torn_tail, good_objects, read_jsonl
from af2.llm.pipeline import Outcome, Pipeline, Record, RecordError, record_id
from af2.llm.redact import redact, redact_url
from af2.llm.retry import FatalError, LLMError

log = logging.getLogger("af2.llm.jobs")


@dataclass
class JobStats:
    inputs: int = 0
    already_done: int = 0
    ok: int = 0
    rejected: int = 0
    failed: int = 0
    lines_written: int = 0
    not_started: int = 0


def read_records(path: Path) -> tuple[list[Record], list[dict]]:
    """The input records, and a reject entry for each unreadable or duplicate line
    (``af2.jsonl``: a bad line never stops the job; a missing input raises ``InputError``)."""
    records, bad, first_line = [], [], {}
    for entry in read_jsonl(path, "input"):
        n = entry.line
        if not entry.ok:
            bad.append({"source_id": f"line-{n}", "input_line": n, "reasons": [f"input: {entry.error}"]})
            continue
        sid = record_id(entry.value)
        if sid in first_line:
            bad.append(
                {
                    "source_id": f"line-{n}",
                    "input_line": n,
                    "reasons": [f"input: duplicate id {sid!r} (first on line {first_line[sid]})"],
                }
            )
            continue
        first_line[sid] = n
        records.append(Record(sid, entry.value, n))
    return records, bad


def done_ids(path: Path) -> set[str]:
    """Source ids already in a JSONL output; cuts off a torn last line first (a bad line
    elsewhere is logged and ignored: its record is done again)."""
    cut_torn_tail(path)
    ids = set()
    for obj in good_objects(path, "output"):
        provenance = obj.get("provenance")
        sid = (provenance.get("source_id") if isinstance(provenance, dict) else None) or obj.get("source_id")
        if isinstance(sid, str):
            ids.add(sid)
    return ids


class JsonlAppender:
    """Appends groups of JSON lines atomically enough: one write per group, then fsync."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def write(self, objs: list[dict]) -> None:
        data = "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs).encode()
        with self._lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def rebase_audio(line: dict, in_dir: Path, out_dir: Path) -> dict:
    """Rewrite a relative ``audio`` path (relative to the input's folder) for the output's folder."""
    audio = line.get("audio")
    if isinstance(audio, str) and audio and not os.path.isabs(audio):
        line = {**line, "audio": os.path.relpath(os.path.normpath(in_dir / audio), out_dir)}
    return line


class Job:
    def __init__(
        self,
        pipeline: Pipeline,
        inp: Path,
        out: Path,
        *,
        rejects: Path | None = None,
        limit: int | None = None,
        progress: bool | None = None,
    ):
        self.pipeline, self.inp, self.out = pipeline, Path(inp), Path(out)
        self.rejects = Path(rejects) if rejects else self.out.with_name(self.out.name + ".rejects.jsonl")
        self.limit, self.progress = limit, progress
        self.stats = JobStats()
        self._lock = threading.Lock()
        self._halt = threading.Event()  # set by a fatal error: records not yet started are left
        self.started = False  # the input was read and the outputs opened

    def _reject(self, record: Record, outcome: Outcome) -> dict:
        pipeline = self.pipeline
        return {
            "source_id": record.source_id,
            "input_line": record.line,
            "pipeline": pipeline.name,
            "template": pipeline.template.name,
            "template_version": pipeline.template.version_tag,
            "model": pipeline.client.config.model,
            "reasons": outcome.reasons,
            "raw": outcome.raw,
        }

    def _work(self, record: Record, out: JsonlAppender, rejects: JsonlAppender) -> bool:
        """Process one record; False when the job was halted before it started."""
        if self._halt.is_set():
            return False
        try:
            outcome = self.pipeline.process(record)
        except RecordError as err:
            outcome = Outcome(reasons=[f"input: {err}"])
        except FatalError:
            self._halt.set()
            raise
        except (TypeError, AttributeError, KeyError, ValueError) as err:  # a field of the wrong type
            log.warning("line %d: rejected, malformed record (%s: %s)", record.line, type(err).__name__, err)
            outcome = Outcome(reasons=[f"input: malformed record ({type(err).__name__}: {err})"])
        if outcome.lines:
            in_dir, out_dir = self.inp.resolve().parent, self.out.resolve().parent
            out.write([rebase_audio(line, in_dir, out_dir) for line in outcome.lines])
        else:
            rejects.write([self._reject(record, outcome)])
        with self._lock:
            self.stats.ok += bool(outcome.lines)
            self.stats.rejected += not outcome.lines
            self.stats.lines_written += len(outcome.lines)
        return True

    def run(self) -> JobStats:
        records, bad = read_records(self.inp)
        done = done_ids(self.out) | done_ids(self.rejects)
        todo = [r for r in records if r.source_id not in done]
        stats = self.stats
        stats.inputs, stats.already_done = len(records) + len(bad), len(records) - len(todo)
        if self.limit is not None:
            stats.not_started, todo = max(0, len(todo) - self.limit), todo[: self.limit]
        out, rejects = JsonlAppender(self.out), JsonlAppender(self.rejects)
        self.started = True
        new_bad = [b for b in bad if b["source_id"] not in done]
        stats.already_done += len(bad) - len(new_bad)
        if new_bad:
            rejects.write([{**b, "pipeline": self.pipeline.name} for b in new_bad])
            stats.rejected += len(new_bad)
        try:
            self._run_all(todo, out, rejects)
        finally:
            out.close()
            rejects.close()
        return stats

    def _run_all(self, todo: list[Record], out: JsonlAppender, rejects: JsonlAppender) -> None:
        workers = max(1, self.pipeline.client.config.concurrency)
        queue, inflight, fatal = iter(todo), set(), None
        bar = tqdm(
            total=len(todo),
            desc=self.pipeline.name,
            unit="rec",
            leave=False,
            disable=None if self.progress is None else not self.progress,
        )  # None: on a terminal
        with ThreadPoolExecutor(max_workers=workers) as pool:
            try:
                while True:
                    while fatal is None and len(inflight) < 2 * workers:
                        record = next(queue, None)
                        if record is None:
                            break
                        inflight.add(pool.submit(self._work, record, out, rejects))
                    if not inflight:
                        break
                    finished, inflight = wait(inflight, return_when=FIRST_COMPLETED)
                    for future in finished:
                        bar.update()
                        err = future.exception()
                        if isinstance(err, FatalError):
                            fatal = fatal or err
                            self.stats.failed += 1  # in flight when the job stopped: pending
                        elif isinstance(err, LLMError):
                            self.stats.failed += 1
                            log.error("record left pending: %s", err)
                        elif err is not None:
                            raise err
                        elif not future.result():
                            self.stats.not_started += 1
            except BaseException:
                for future in inflight:
                    future.cancel()
                raise
            finally:
                bar.close()
        self.stats.not_started += sum(1 for _ in queue)
        if fatal is not None:
            raise fatal

    def report(self) -> dict:
        pipeline = self.pipeline
        config = pipeline.client.config
        return {
            "pipeline": pipeline.name,
            "input": str(self.inp),
            "output": str(self.out),
            "rejects": str(self.rejects),
            "model": config.model,
            "base_url": redact_url(config.base_url),
            "template": pipeline.template.key,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "records": asdict(self.stats),
            "usage": pipeline.client.report().to_dict(),
        }


def run_for_cli(job: "Job", *, report_path: Path, api_key, cache=None, extra=None) -> tuple[int, dict]:
    """Run ``job`` as the command-line tools do and return (exit status, report).

    Exit status: 0 every input has a result, 1 some are pending (rerun to resume), 2 a fatal
    server error (bad key, URL or model, a server that is not there) or an input that cannot
    be read, 130 interrupted. Once the job has started, the report (``job.report()`` plus
    ``extra()``) is written to ``report_path`` with the key redacted; the cache is always closed.
    """
    code = 0
    try:
        stats = job.run()
        code = 1 if stats.failed or stats.not_started else 0
    except InputError as err:  # FatalError and Unreachable included
        log.error("stopped: %s", redact(str(err), api_key))
        code = 2
    except KeyboardInterrupt:
        log.error("interrupted: rerun the same command to resume")
        code = 130
    finally:
        report = {**job.report(), **(extra() if extra else {})}
        if job.started:
            report_path.write_text(redact(json.dumps(report, indent=1, ensure_ascii=False), api_key) + "\n", "utf-8")
        if cache is not None:
            cache.close()
    return code, report
