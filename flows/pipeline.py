"""The stages every method shares, in order (`STAGES`): seeds → candidates → verdicts → selection →
contamination guard → fine-tuning → held-out evaluation, and the one start of every run (`prepare_run`,
`start_run`). A method is a config (see the method registry, `selfimprove.methods`): SVD judges with
its cascade, SSD keeps raw samples, RFT keeps what the ground truth accepts; evaluation is greedy, or a
T_eval sweep for SSD. A method package's flow (`flows/sdzero.py`, `flows/opsd.py`) shares the start,
the sampling, the guard, the SFT stage and the evaluation, and declares its own stage order.
"""
from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from typing import Iterator
from datetime import datetime, timezone

from dataclasses import replace

from selfimprove import config as configlib
from selfimprove.config import RunConfig
from selfimprove.data import seeds as seedlib
from selfimprove.data.datasets import BUILTIN
from selfimprove.generation import few_shot
from selfimprove.evaluation.heldout import load_items
from selfimprove.inference.base import backend_class, for_checkpoint
from selfimprove.methods import default_method, get_method, methods_of_flow, options_of_flow, tracked_flows
from selfimprove.validation import InputError
from selfimprove.warehouse.lake import file_sha256
from selfimprove.tasks.common import StageContext
from selfimprove.tasks.report import summarize_run
from selfimprove.tasks.ui import say
from selfimprove.warehouse.run_status import COMPLETED, FAILED, one_line, set_status
from selfimprove.tasks.stages import (evaluate_majority, evaluate_model, evaluate_uq_ttc, fine_tune, guard_contamination,
                                      ingest_seeds, judge_candidates, judge_model_of, register_run, sample_candidates,
                                      select_examples)
from selfimprove.warehouse.lake import Lake, lake_location
from selfimprove.rounds.evidence import diversity_evaluation, guard_evaluation
from selfimprove.tasks.rounds import (accumulate_examples, ingest_guard, on_track, promotion_gate, round_seeds,
                                      taken_questions)




def evaluations(*trained: str) -> tuple[str, ...]:
    """The evaluation stages that end a flow, in order: the base, each trained model, the test-time baselines
    (UQ-TTC, the base's majority vote), then a track's guard set and the diversity samples of champion (base)
    and challenger (tuned)."""
    return (*(f"eval-{label}" for label in ("base", *trained)), "eval-uq_ttc", "eval-base+majority", "guard-items",
            "eval-guard-base", "eval-guard-tuned", "eval-diversity-base", "eval-diversity-tuned")


# the shared stages' order (svd, ssd, rft); a flow with stages of its own declares its own `STAGES`
STAGES = ("seeds", "candidates", "judge", "select", "contamination", "accumulate", "train", *evaluations("tuned"))


def new_run_id(flow_name: str) -> str:
    return f"{flow_name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def check_start(cfg: RunConfig, lake: str | None, run_id: str | None = None, reuse: str | None = None,
                from_stage: str | None = None, flags: dict | None = None) -> list[dict]:
    """Everything a run's start can refuse, checked before its first write: run ids, seeds, the held-out
    file, the engine, every model's prompts. Returns what the model check found (`check_models`).
    `flags` names the options as the user gave them (CLI flags; Prefect parameter names by default)."""
    names = {"run_id": "run_id", "reuse": "reuse", "from_stage": "from_stage", **(flags or {})}
    if from_stage and not reuse:
        raise InputError(f"{names['from_stage']} needs {names['reuse']} RUN_ID (the run whose earlier stages are kept)")
    lk = Lake(lake_location(lake))
    if lk.on_s3:
        lk.storage.check()  # an unreachable bucket is one line, before anything is written
    for given, name in ((run_id, "run_id"), (reuse, "reuse")):
        if given is not None:
            lk.require_run(given, names[name])
    if cfg.seeds.path or cfg.seeds.inbox:
        seeds = seedlib.load(cfg.seeds)
        method = get_method(cfg.method)
        if method.reads_answers and any(not s["answer"] for s in seeds):
            row = next(i for i, s in enumerate(seeds, 1) if not s["answer"])
            label_free = [m for m in methods_of_flow(method.flow) if not get_method(m).reads_answers]
            raise InputError(f"missing ({cfg.method} grades by ground truth"
                             + (f"; label-free: --method {' | '.join(label_free)})" if label_free else ")"),
                             file=cfg.seeds.path, row=row, field="answer")
        stored = (lk.read_manifest(run_id, "seeds") or {}).get("seed_file_sha256") if run_id else None
        if stored and stored != file_sha256(cfg.seeds.path):
            raise InputError(f"changed since run {run_id} read it; resuming would mix two seed sets "
                             "(restore the file, or start a new run)", file=cfg.seeds.path)
    if cfg.track.name:  # a round with no new question is refused here, before the run is registered
        round_seeds(cfg, taken_questions(lk.location, cfg, run_id))
    if cfg.evaluation.dataset not in BUILTIN:
        load_items(cfg.evaluation)  # a held-out file is checked like a seed file
    if cfg.sampling.few_shot:
        few_shot.examples(cfg.sampling.few_shot)  # so is a few-shot file
    backend_class(cfg.backend.kind).check(cfg.backend)
    if cfg.executor.kind == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise InputError("executor kind ray needs Ray on this machine: pip install 'selfimprove[cluster]'",
                             field="executor.kind")
    return check_models(cfg)


def check_models(cfg: RunConfig) -> list[dict]:
    """Every model the run uses (policy, judge, a track's base) loads its tokenizer and renders what the run will
    send it (`preflight.check_model`); a served model is checked through `backend.openai.tokenizer` when it is set."""
    from selfimprove.inference import models
    from selfimprove.inference.preflight import check_model

    roles: dict[str, list[str]] = {}
    if backend_class(cfg.backend.kind).loads_checkpoints:
        roles.setdefault(cfg.model, []).append("policy")
        judge = judge_model_of(cfg)
        if judge:
            roles.setdefault(judge, []).append("judge")
        if cfg.track.name:
            roles.setdefault(cfg.track.trains(cfg.model), []).append("trained")
    elif cfg.backend.openai.tokenizer:
        roles[cfg.backend.openai.tokenizer] = ["policy", "judge"]
    report = []
    for model, jobs in roles.items():
        needs = prompt_needs(cfg, jobs)
        report.append({"roles": jobs, **check_model(model, models.resolve(model), cfg.backend.prompt_format,
                                                    cfg.sampling.thinking, needs)})
    return report


def kept_by(lake: str | None, run: str | None, method: str, flag: str) -> int:
    """How many training examples run `run` selected (its `select` stage): the size of a placebo of its filter."""
    if not run:
        raise InputError(f"{method} keeps as many examples as the run it controls: name that run with {flag} RUN_ID "
                         "(or set filter.keep)", field="filter.keep")
    selected = Lake(lake_location(lake)).read_manifest(run, "select")
    if not selected:
        raise InputError(f"run {run} selected no training examples (no finished select stage) for {method} to match",
                         field=flag)
    return int(selected.get("rows", {}).get("train_examples", 0))


def prompt_needs(cfg: RunConfig, roles: list[str]):
    """One prompt of each kind the run sends a model in these roles."""
    from selfimprove import prompts
    from selfimprove.generation.sampling import seed_message, user_message
    from selfimprove.inference.preflight import PromptNeeds
    from selfimprove.verification.judges import prompts_used
    from selfimprove.verification.votes import VERDICT_PREFIX

    question, answer = "What is 2 + 3?", "2 + 3 = 5. The answer is \\boxed{5}."
    needs = PromptNeeds()
    if "policy" in roles:  # each domain's turn, with its few-shot examples
        needs.samples["sample"] = seed_message({"question": question, "domain": "math"}, cfg.sampling)
        for domain in sorted(cfg.sampling.domain_prompts):
            needs.samples[f"sample:{domain}"] = seed_message(
                {"question": question, "domain": domain, "choices": ["4", "5"] if domain == "choice" else None}, cfg.sampling)
    if "policy" in roles or "trained" in roles:
        needs.training = (user_message(question, cfg.sampling.prompt)[0]["content"], answer)
    if "judge" in roles:
        for stage in cfg.cascade.stages:
            if stage.calls_model:
                text = prompts.load(prompts_used(stage)[-1]).render(question=question, answer=answer, inferred=question)
                needs.judges[f"judge:{stage.name}"] = [{"role": "user", "content": text}]
                if stage.scoring in ("probability", "constrained"):
                    needs.verdict_prefix = VERDICT_PREFIX
    return needs


def with_options(flow_name: str, method: str | None, overrides: dict | None, values: dict) -> dict | None:
    """`overrides` with the flow's run options that were given (`MethodPackage.options`: a CLI flag or the flow's
    parameter of the same name), each checked against the named method."""
    for option in options_of_flow(flow_name):
        if values.get(option.name) is not None:
            option.check(method, values[option.name])
            overrides = configlib.merge(overrides or {}, option.overrides(values[option.name]))
    return overrides


_PREPARED: dict[str, tuple[RunConfig, list[dict]]] = {}  # what the CLI prepared, for the flow run it starts


def prepare_run(flow_name: str, preset: str = "quickstart", config_file: str | None = None,
                overrides: dict | None = None, method: str | None = None, lake: str | None = None,
                run_id: str | None = None, reuse: str | None = None, from_stage: str | None = None,
                flags: dict | None = None, keep: bool = False,
                stages: tuple[str, ...] = STAGES) -> tuple[RunConfig, list[dict]]:
    """The one start of a run: its config, loaded once (preset, file, overrides, the method's changes; `method`
    None takes the flow's default for that config) and put on its track, and every check a start can refuse,
    run once on that config (`check_start`). The CLI prepares before any flow run exists (`keep`): the flow
    run it then starts with the same arguments takes that preparation instead of repeating it. `stages`: the
    flow's stage order, which `from_stage` must name."""
    if from_stage is not None and from_stage not in stages[1:]:
        flag = (flags or {}).get("from_stage", "from_stage")
        raise InputError(f"{from_stage!r} is not a stage of {flow_name} after its first; one of: {', '.join(stages[1:])}",
                         field=flag)
    method = method or default_method(flow_name, configlib.requested(preset, config_file, overrides).to_dict())
    key = json.dumps([flow_name, preset, config_file, overrides, method, lake, run_id, reuse, from_stage],
                     sort_keys=True, default=str)
    if key in _PREPARED:
        return _PREPARED.pop(key)
    cfg = on_track(configlib.load(preset, config_file, overrides, method), lake, run_id)
    prepared = cfg, check_start(cfg, lake, run_id, reuse, from_stage, flags)
    if cfg.filter.sized_by_reuse:  # a placebo keeps as many examples as the run it controls
        cfg.filter.keep = kept_by(lake, reuse, method, (flags or {}).get("reuse", "reuse"))
    if keep:
        _PREPARED[key] = prepared
    return prepared


@contextmanager
def start_run(flow_name: str, cfg: RunConfig, preset: str, lake: str | None, run_id: str | None = None,
              reuse: str | None = None, from_stage: str | None = None, cache: bool = True,
              prompting: list[dict] | None = None, stages: tuple[str, ...] = ()) -> Iterator[StageContext]:
    """`with start_run(...) as ctx:` the stage context of a registered run (its inputs checked first unless
    `prepare_run` did, with `prompting` its model check: a refused start writes nothing), whose status is
    `running` inside the block and `completed` or `failed` after it. `stages`: the flow's stage order."""
    if cfg.track.name and flow_name not in tracked_flows():
        raise InputError(f"{cfg.track.name!r}: runs of {', '.join(tracked_flows())} can be on a track, not {flow_name} "
                         "(yet)", field="track.name")
    if prompting is None:
        prompting = check_start(cfg, lake, run_id, reuse, from_stage)
    ctx = StageContext(lake=lake_location(lake), run_id=run_id or new_run_id(flow_name), reuse=reuse,
                       from_stage=from_stage, cache=cache, stages=stages)
    register_run(ctx, cfg, flow_name, preset, {"prompting": prompting})
    with tracked(ctx):
        yield ctx


@contextmanager
def tracked(ctx: StageContext) -> Iterator[None]:
    """Mark the run failed (its stage kept, the reason in one line) if the block raises, completed if not."""
    lake = Lake(ctx.lake)
    try:
        yield
    except BaseException as e:
        set_status(lake, ctx.run_id, FAILED, reason=one_line(e))
        say(f"[run] {ctx.run_id} failed: {one_line(e)}", warning=True)
        raise
    set_status(lake, ctx.run_id, COMPLETED)


def _evaluate(ctx: StageContext, cfg: RunConfig, items_manifest: dict, model: str, label: str, evaluation=None) -> dict:
    # a checkpoint this run trained is evaluated by an engine that can load it
    of_model = cfg if model == cfg.model else replace(cfg, backend=for_checkpoint(cfg.backend))
    return evaluate_model(ctx, replace(of_model, evaluation=evaluation or cfg.evaluation), items_manifest, model, label)


def evaluate_models(ctx: StageContext, cfg: RunConfig, seeds_manifest: dict, models: dict[str, str | None], m: dict) -> None:
    """Each labelled model on the run's held-out items (None: not trained, skipped), T_eval sweep included."""
    for label, model in models.items():
        if model is None:
            continue
        m[f"eval-{label}"] = _evaluate(ctx, cfg, seeds_manifest, model, label)
        for t in cfg.evaluation.temperature_sweep:  # SSD tunes T_eval for base and trained model alike
            at_t = replace(cfg.evaluation, temperature=t, samples=cfg.evaluation.sweep_samples if t > 0 else 1)
            m[f"eval-{label}@T{t}"] = _evaluate(ctx, cfg, seeds_manifest, model, f"{label}@T{t}", at_t)
    if cfg.uq_ttc.enabled:
        m["eval-uq_ttc"] = evaluate_uq_ttc(ctx, cfg, seeds_manifest, cfg.model)
    if cfg.majority.enabled:  # the base model's maj@k, k = the samples a training seed gets
        m["eval-base+majority"] = evaluate_majority(ctx, cfg, seeds_manifest, cfg.model)


def face_gate(ctx: StageContext, cfg: RunConfig, m: dict, trained: dict) -> None:
    """On a track: the champion (the run's base) and the challenger (the checkpoint of the `trained` stage's
    manifest) on the guard set and, sampled, on the held-out items for diversity; then the promotion gate."""
    track = cfg.track
    challenger = trained.get("checkpoint")
    if challenger:
        pair = {"base": cfg.model, "tuned": challenger}
        if track.guard:
            m["guard-items"] = ingest_guard(ctx, cfg)
            for label, model in pair.items():
                m[f"guard-{label}"] = _evaluate(ctx, cfg, m["guard-items"], model, f"guard-{label}",
                                                guard_evaluation(track, cfg.evaluation))
        if track.diversity_k:
            for label, model in pair.items():
                m[f"diversity-{label}"] = _evaluate(ctx, cfg, m["seeds"], model, f"diversity-{label}",
                                                    diversity_evaluation(track, cfg.evaluation, cfg.sampling.temperature))
    promotion_gate(ctx, cfg, m, trained)


def run_method(flow_name: str, method: str, preset: str = "quickstart", config_file: str | None = None,
               lake: str | None = None, overrides: dict | None = None, run_id: str | None = None, reuse: str | None = None,
               from_stage: str | None = None, cache: bool = True) -> dict:
    """seeds → candidates → verdicts → training examples → guard → fine-tune → held-out evaluation → summary;
    on a track, earlier rounds' examples join the training set (`train_on: accumulated`) and the gate decides."""
    cfg, prompting = prepare_run(flow_name, preset, config_file, overrides, method, lake, run_id, reuse, from_stage)
    with start_run(flow_name, cfg, preset, lake, run_id, reuse, from_stage, cache, prompting, STAGES) as ctx:
        m: dict[str, dict] = {}
        m["seeds"] = ingest_seeds(ctx, cfg)
        m["candidates"] = sample_candidates(ctx, cfg, m["seeds"])
        m["judge"] = judge_candidates(ctx, cfg, m["seeds"], m["candidates"])
        m["select"] = select_examples(ctx, cfg, m["seeds"], m["candidates"], m["judge"])
        if cfg.contamination.enabled:
            m["contamination"] = guard_contamination(ctx, cfg, m["seeds"], m["select"])
        if cfg.track.name and cfg.track.train_on == "accumulated":
            m["accumulate"] = accumulate_examples(ctx, cfg, m["select"])
        m["train"] = fine_tune(ctx, cfg, m["select"], m.get("accumulate"))
        evaluate_models(ctx, cfg, m["seeds"], {"base": cfg.model, "tuned": m["train"].get("checkpoint")}, m)
        if cfg.track.name:  # the base evaluated is the track's champion: the gate compares the two
            face_gate(ctx, cfg, m, m["train"])
        return summarize_run(ctx, cfg, m)
