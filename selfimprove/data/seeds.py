"""Seed questions: validated loading from files and offline generation.

A seed is `{seed_id, domain, question, answer?, task?, solution?, choices?}`; a `choice` seed (multiple
choice) carries its options in `choices`, and its answer is a letter or one option's text. `answer` is ground truth
for telemetry and evaluation only; SVD never shows it to the model. `solution`, a worked reference
solution, is read only by OPSD's ground-truth teacher (its privileged information). Bad input
raises `SeedError` naming the file, row and field, before anything is written.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from selfimprove.validation import AtLeast1, InputError, read_utf8

DOMAINS = ("math", "science", "choice", "code")


MAX_QUESTION_CHARS = 20_000  # longer questions are refused, naming the row (`seeds.max_question_chars`)


class SeedError(InputError):
    def __init__(self, file: str, row: int | None, field: str | None, problem: str) -> None:
        super().__init__(problem, file=file, row=row, field=field)


@dataclass
class SeedSource:
    """Where seeds come from: a file, or reasoning-gym tasks generated offline."""

    path: str | None = None  # JSONL / Parquet / CSV with `question` (+ optional seed_id, domain, answer, task)
    inbox: str | None = None  # a folder (its .jsonl/.csv/.parquet files) or a glob of seed files; `size` caps a run's take
    tasks: list[str] = field(default_factory=lambda: ["basic_arithmetic"])  # reasoning-gym task names
    size: AtLeast1 = 64  # generated questions (split evenly over tasks)
    seed: int = 1234  # generator seed; held-out sets use another one
    max_question_chars: AtLeast1 = MAX_QUESTION_CHARS  # a longer question in a file is refused, naming its row
    difficulty: dict = field(default_factory=lambda: {
        "basic_arithmetic": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2,
                             "operators": ["+", "-", "*"], "allow_parentheses": False, "allow_negation": False},
    })  # per-task reasoning-gym config overrides


def load(source: SeedSource, exclude_questions: set[str] | frozenset = frozenset()) -> list[dict]:
    """The seeds of a file, an inbox or the generator; `exclude_questions` (keys, see `question_key`) are left
    out. An inbox gives at most `size` of the rest, each question once. Every row says where it came from."""
    if source.inbox:
        return take_new(read_inbox(source.inbox, source.max_question_chars), exclude_questions, source.size)
    if source.path:
        rows = read_file(Path(source.path), source.max_question_chars)
        return take_new(rows, exclude_questions) if exclude_questions else rows  # a file alone is taken as it is
    return generate(source, exclude_questions)


def question_key(question: str) -> str:
    """The content hash of a question, normalised (case, whitespace): what a track remembers it took."""
    return hashlib.sha256(" ".join(question.split()).casefold().encode()).hexdigest()[:32]


def take_new(rows: list[dict], exclude_questions: set[str] | frozenset, limit: int | None = None) -> list[dict]:
    """The rows whose question is not in `exclude_questions` (keys) nor repeats an earlier row's, at most `limit`."""
    seen, out = set(exclude_questions), []
    for r in rows:
        key = question_key(r["question"])
        if key not in seen and (limit is None or len(out) < limit):
            seen.add(key)
            out.append(r)
    return out


INBOX_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def inbox_files(inbox: str) -> list[Path]:
    """An inbox's seed files in name order: a folder's .jsonl/.json/.csv/.parquet files, or a glob's matches."""
    folder = Path(inbox).expanduser()
    if folder.is_dir():
        files = [f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in INBOX_SUFFIXES]
    else:
        import glob

        files = [Path(f) for f in glob.glob(str(folder), recursive=True) if Path(f).is_file()]
        if not files and not glob.has_magic(str(folder)):
            raise SeedError(inbox, None, None, "inbox not found (a folder of seed files, or a glob)")
    return sorted(files, key=lambda f: (f.name, str(f)))


def read_inbox(inbox: str, max_question_chars: int = MAX_QUESTION_CHARS) -> list[dict]:
    """Every row of every inbox file, each file validated whole (a bad row names its file) before any is used.
    seed_ids are prefixed with the file's name, so two files may both have a row-1."""
    files = inbox_files(inbox)
    if not files:
        raise SeedError(inbox, None, None, "the inbox holds no seed file (.jsonl, .csv or .parquet)")
    rows = []
    for f in files:
        rows += [{**r, "seed_id": f"{f.stem}:{r['seed_id']}"} for r in read_file(f, max_question_chars)]
    return rows


def generate(source: SeedSource, exclude_questions: set[str] | frozenset = frozenset()) -> list[dict]:
    """Questions from reasoning-gym, deterministic in (tasks, size, seed); skips `exclude_questions`."""
    import reasoning_gym

    rows: list[dict] = []
    per_task = [source.size // len(source.tasks) + (i < source.size % len(source.tasks)) for i in range(len(source.tasks))]
    for task, want in zip(source.tasks, per_task):
        options = dict(source.difficulty.get(task, {}))
        # over-generate so that dropping excluded and repeated questions still leaves `want`
        data = reasoning_gym.create_dataset(task, size=want * 3 + 16, seed=source.seed, **options)
        seen = set(exclude_questions)
        kept = 0
        for i, item in enumerate(data):
            if kept == want:
                break
            if question_key(item["question"]) in seen:
                continue
            seen.add(question_key(item["question"]))
            rows.append({"seed_id": f"{task}-{source.seed}-{i}", "domain": "math", "question": item["question"],
                         "answer": str(item["answer"]), "task": task, "source": f"generated:{task}:{source.seed}",
                         "source_row": i})
            kept += 1
    return rows


def read_file(path: Path, max_question_chars: int = MAX_QUESTION_CHARS) -> list[dict]:
    return validate(read_raw(Path(path)), str(path), max_question_chars)


def read_raw(path: Path) -> list[tuple[int, object]]:
    """(row number, record) pairs of a JSONL/CSV/Parquet file, before validation. Text is UTF-8 (a
    byte-order mark is accepted); rows are numbered as an editor numbers lines (CSV: the header is 1)."""
    name = str(path)
    if not path.is_file():
        raise SeedError(name, None, None, "file not found" if not path.exists() else "not a file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".json"):
            raw = []
            for n, line in enumerate(read_utf8(path, "row").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    raw.append((n, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise SeedError(name, n, None, f"not valid JSON ({e.msg})") from None
        elif suffix == ".csv":
            reader = csv.DictReader(io.StringIO(read_utf8(path, "row"), newline=""))
            raw = []
            for r in reader:
                n = reader.line_num
                if None in r:
                    raise SeedError(name, n, None, f"{len(reader.fieldnames) + len(r[None])} fields, the header has "
                                                   f"{len(reader.fieldnames)} (quote fields that contain commas)")
                raw.append((n, dict(r)))
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            raw = [(n, r) for n, r in enumerate(pq.read_table(path).to_pylist(), 1)]
        else:
            raise SeedError(name, None, None, f"unsupported file type {suffix!r} (use .jsonl, .csv or .parquet)")
    except OSError as e:
        raise SeedError(name, None, None, f"unreadable ({e.strerror or e})") from None
    except InputError:  # SeedError, and read_utf8's own line
        raise
    except Exception as e:  # pyarrow / csv parse errors
        raise SeedError(name, None, None, f"unreadable ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    return raw


def validate(raw: list[tuple[int, object]], name: str, max_question_chars: int = MAX_QUESTION_CHARS) -> list[dict]:
    if not raw:
        raise SeedError(name, None, None, "no rows")
    rows, ids = [], {}
    for n, r in raw:
        if not isinstance(r, dict):
            raise SeedError(name, n, None, f"expected an object, got {type(r).__name__}")
        q = r.get("question")
        if q is None:
            raise SeedError(name, n, "question", "missing")
        if not isinstance(q, str):
            raise SeedError(name, n, "question", f"must be a string, got {type(q).__name__}")
        if not q.strip():
            raise SeedError(name, n, "question", "empty")
        if len(q) > max_question_chars:
            raise SeedError(name, n, "question", f"{len(q):,} characters, over the limit of {max_question_chars:,} "
                                                 "(seeds.max_question_chars)")
        sid = r.get("seed_id", r.get("id", f"row-{n}"))
        if not isinstance(sid, (str, int)) or isinstance(sid, bool):
            raise SeedError(name, n, "seed_id", f"must be a string or integer, got {type(sid).__name__}")
        sid = str(sid)
        if sid in ids:
            raise SeedError(name, n, "seed_id", f"duplicate id {sid!r} (first at row {ids[sid]})")
        ids[sid] = n
        domain = r.get("domain") or "math"
        if domain not in DOMAINS:
            raise SeedError(name, n, "domain", f"{domain!r} is not one of {DOMAINS}")
        answer = r.get("answer")
        if answer is not None and not isinstance(answer, (str, int, float)):
            raise SeedError(name, n, "answer", f"must be a string or number, got {type(answer).__name__}")
        task = r.get("task")
        if task is not None and not isinstance(task, str):
            raise SeedError(name, n, "task", f"must be a string, got {type(task).__name__}")
        solution = r.get("solution")
        if solution is not None and not isinstance(solution, str):
            raise SeedError(name, n, "solution", f"must be a string, got {type(solution).__name__}")
        if solution is not None and len(solution) > max_question_chars:
            raise SeedError(name, n, "solution", f"{len(solution):,} characters, over the limit of "
                                                 f"{max_question_chars:,} (seeds.max_question_chars)")
        choices = r.get("choices")
        if choices is not None or domain == "choice":
            if not isinstance(choices, list) or len(choices) < 2 or len(choices) > 10 or \
                    not all(isinstance(c, str) and c.strip() for c in choices):
                raise SeedError(name, n, "choices", "a list of 2 to 10 non-empty strings (a choice seed's options)")
        if domain == "choice":
            if answer is not None and answer != "":
                from selfimprove.scoring.scorers import gold_choice

                try:
                    gold_choice({"choices": choices, "answer": str(answer)})
                except ValueError as e:
                    raise SeedError(name, n, "answer", str(e)) from None
        rows.append({"seed_id": sid, "domain": domain, "question": q.strip(), "choices": choices,
                     "answer": None if answer is None or answer == "" else str(answer), "task": task,
                     "solution": solution.strip() or None if solution else None, "source": name, "source_row": n})
    return rows
