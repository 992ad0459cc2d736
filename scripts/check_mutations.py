"""Deliberate breaks: each one changes the code the way a plausible bug would, runs the tests that must catch
it, and restores the file. A break that no test catches is reported as SURVIVED (exit 1).

    .venv/bin/python scripts/check_mutations.py            # all of them (~15 min on 2 cores)
    .venv/bin/python scripts/check_mutations.py divergence # those whose name contains a word

Each entry: (name, file, the exact text, what replaces it, pytest node ids[, environment]). The text must occur exactly
once, so an entry that no longer matches the code fails loudly instead of passing silently. A file of None breaks
the machine instead (the environment given), not the code. Commit nothing while it runs: files are broken in place.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIV = "tests/training/test_divergence.py"
SANDBOX = "tests/scoring/test_sandbox.py"
LEARN = "tests/training/test_learning.py"
SISTERS = "tests/flows/test_sister_flows.py"
SDZERO = "tests/methods/test_sdzero.py"
STORAGE = "tests/warehouse/test_storage.py"
CONTAM = "tests/evaluation/test_contamination.py"
EVAL = "tests/evaluation/test_evaluation.py"
GATE = "tests/rounds/test_gate.py"

MUTATIONS: list[tuple] = [
    ("divergence: the student's top-k instead of the teacher's", "selfimprove/training/divergence.py",
     "idx = teacher_logits.topk(top_k, dim=-1).indices", "idx = student_logits.topk(top_k, dim=-1).indices", [DIV]),
    ("divergence: renormalised support not renormalised", "selfimprove/training/divergence.py",
     "return (F.log_softmax(student_logits.float().gather(-1, idx), -1),\n"
     "                F.log_softmax(teacher_logits.float().gather(-1, idx), -1))",
     "return log_s.gather(-1, idx), log_t.gather(-1, idx)", [DIV]),
    ("divergence: tail bucket dropped", "selfimprove/training/divergence.py",
     "return with_tail(ls), with_tail(lt)", "return ls, lt", [DIV]),
    ("divergence: jsd mixture weights swapped", "selfimprove/training/divergence.py",
     "log_s + torch.log(torch.tensor(1 - beta))]), dim=0)", "log_s + torch.log(torch.tensor(beta))]), dim=0)", [DIV]),
    ("divergence: mixture weight ignored", "selfimprove/training/divergence.py",
     "return mix * _kl(log_t, log_s) + (1 - mix) * _kl(log_s, log_t)",
     "return 0.5 * _kl(log_t, log_s) + 0.5 * _kl(log_s, log_t)", [DIV]),
    ("sandbox: RLIMIT_NPROC not set", "selfimprove/scoring/sandbox.py",
     '"RLIMIT_NPROC": 0, ', "", [SANDBOX + "::test_without_the_audit_hook_the_process_limit_stops_a_fork_bomb"]),
    ("sandbox: RLIMIT_NOFILE not set", "selfimprove/scoring/sandbox.py",
     '"RLIMIT_NOFILE": cfg.open_files,', "", [SANDBOX + "::test_without_the_audit_hook_the_open_files_limit_holds"]),
    ("sandbox: never runs as nobody", "selfimprove/scoring/sandbox.py",
     "for nobody in ([True, False] if root and cfg.drop_privileges else [False]):", "for nobody in [False]:",
     [SANDBOX + "::test_every_layer_is_in_force_where_the_machine_allows_it"]),
    ("sandbox: no network namespace", "selfimprove/scoring/sandbox.py",
     "for ns in ([True, False] if unshare else [False]):", "for ns in [False]:",
     [SANDBOX + "::test_every_layer_is_in_force_where_the_machine_allows_it"]),
    ("sandbox: the nobody launcher keeps root's uid", "selfimprove/scoring/sandbox.py",
     'user = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if as_nobody else {}', "user = {}",
     [SANDBOX + "::test_every_layer_is_in_force_where_the_machine_allows_it",
      SANDBOX + "::test_without_the_audit_hook_the_unprivileged_user_cannot_touch_our_files_or_processes"]),
    ("sandbox: the network namespace launcher shares the host's network", "selfimprove/scoring/sandbox.py",
     'prefix = [unshare, "-rn"] if ns else []', 'prefix = [unshare, "-r"] if ns else []',
     [SANDBOX + "::test_without_the_audit_hook_the_network_namespace_stops_a_socket"]),
    ("sft: loss on the whole sequence", "selfimprove/training/sft.py",
     "completion_only_loss=True", "completion_only_loss=False", [LEARN]),
    ("sft: the optimiser never moves the weights", "selfimprove/training/sft.py",
     "learning_rate=config.learning_rate,", "learning_rate=0.0,", [LEARN]),
    ("sft: the base model is saved instead of the trained one", "selfimprove/training/sft.py",
     "save_checkpoint(trained, tokenizer, output_dir)",
     "save_checkpoint(type(trained).from_pretrained(base_model), tokenizer, output_dir)", [LEARN]),
    ("self-distillation: the loss reads one position too early", "selfimprove/training/self_distill.py",
     "s_pos = list(range(len(prompt) - 1, len(prompt) - 1 + len(y)))",
     "s_pos = list(range(len(prompt) - 2, len(prompt) - 2 + len(y)))",
     [LEARN + "::test_the_self_distillation_loss_reads_the_response_tokens_only_and_moves_the_student"]),
    ("self-distillation: the teacher follows the student every step", "selfimprove/training/self_distill.py",
     "        self.optimizer.step()\n", "        self.optimizer.step()\n        self.sync()\n",
     [SDZERO + "::test_phase2_steps_lower_the_divergence_and_sync_copies_the_student"]),
    ("rft: a wrong sample is kept", "selfimprove/verification/filters.py",
     "        if s.correct:\n", "        if s.correct is not None:\n",
     [SISTERS + "::test_rft_on_the_scripted_engine_keeps_exactly_the_right_samples"]),
    ("ssd: the longest tenth is dropped", "selfimprove/verification/filters.py",
     'ranked = sorted(usable, key=lambda c: (c["n_tokens"], c["candidate_id"]))',
     'ranked = sorted(usable, key=lambda c: (-c["n_tokens"], c["candidate_id"]))',
     [SISTERS + "::test_ssd_on_the_scripted_engine_drops_exactly_the_shortest_tenth"]),
    ("injection: candidates reach the judge un-neutralized", "selfimprove/verification/judges.py",
     '    text = _VERDICT_TOKEN.sub("(verdict removed)", text)\n', "    return text\n",
     ["tests/verification/test_injection.py::test_no_attack_token_reaches_the_tiny_models_judge_prompts"]),
    ("lake: a local create overwrites an existing manifest", "selfimprove/storage/stores.py",
     "            os.link(tmp, target)  # atomic, and fails if the name exists",
     "            target.unlink(missing_ok=True)\n            os.link(tmp, target)",
     [STORAGE + "::test_threads_committing_one_stage_at_once_agree_on_a_single_winner"]),
    ("lake: an S3 create is unconditional", "selfimprove/storage/stores.py",
     'return self._conditional_put(key, data, IfNoneMatch="*")', "return self._conditional_put(key, data)",
     [STORAGE + "::test_threads_committing_one_stage_at_once_agree_on_a_single_winner"]),
    ("lake: a local replace ignores the tag", "selfimprove/storage/stores.py",
     "if now is None or now[1] != tag:", "if now is None:",
     [STORAGE + "::test_a_conditional_replace_with_a_stale_tag_loses_on_both_stores"]),
    ("lake: an S3 replace ignores the tag", "selfimprove/storage/stores.py",
     "return self._conditional_put(key, data, IfMatch=tag)", "return self._conditional_put(key, data)",
     [STORAGE + "::test_a_conditional_replace_with_a_stale_tag_loses_on_both_stores"]),
    ("lake: a lost replace is taken for a win", "warehouse/lake.py",
     "            if self.storage.replace(key, data, found[1]):\n                self._sweep(old, manifest)\n"
     "                break\n",
     "            self.storage.replace(key, data, found[1])\n            self._sweep(old, manifest)\n            break\n",
     [STORAGE + "::test_a_writer_that_loses_the_replace_race_reads_again_and_leaves_no_stale_part"]),
    ("lake: the pause hook does nothing (the two runs would not overlap)", "warehouse/shards.py",
     "if stage == self.stage and seconds:", "if False:",
     ["tests/tasks/test_faults.py::test_two_runs_writing_one_lake_at_once_both_complete_whole"]),
    ("contamination: completions and PI are not training text", "tasks/stages.py",
     'return [(i, questions.get(seed, "")) for i, seed, _ in pairs] + [(i, text) for i, _, text in pairs]',
     'return [(i, questions.get(seed, "")) for i, seed, _ in pairs]',
     [CONTAM + "::test_a_held_out_item_inside_a_completion_is_stopped",
      CONTAM + "::test_privileged_information_that_trains_is_checked_and_other_phases_are_not"]),
    ("contamination: PI of every phase counts as training text", "tasks/stages.py",
     '                  if r["phase"] == "distill"]', "                  ]",
     [CONTAM + "::test_privileged_information_that_trains_is_checked_and_other_phases_are_not"]),
    ("contamination: --allow-contamination is dropped by the CLI", "flows/cli.py",
     'overrides["contamination"] = {"allow": True}', 'overrides["contamination"] = {"allow": False}',
     [CONTAM + "::test_allow_contamination_through_the_cli_is_recorded"]),
    ("secrets: Ray workers get the S3 secret key in their runtime_env", "selfimprove/execution/ray_executor.py",
     '"AWS_DEFAULT_REGION")', '"AWS_DEFAULT_REGION", "AWS_SECRET_ACCESS_KEY")',
     ["tests/execution/test_ray.py::test_no_credential_reaches_a_ray_workers_runtime_env"]),
    ("secrets: a stage line carries the S3 secret into Prefect's log (synthetic leak)", "tasks/ui.py",
     "        (logger.warning if warning else logger.info)(message)",
     "        (logger.warning if warning else logger.info)(message + __import__('os').environ.get('AWS_SECRET_ACCESS_KEY', ''))",
     ["tests/flows/test_s3_flow.py"]),
    ("gate: a lower bound equal to the margin clears it", "selfimprove/rounds/gate.py",
     "if e.ci_low <= track.margin + EPS:", "if e.ci_low < track.margin:", [GATE]),
    ("gate: a guard drop of exactly the tolerance is refused (float rounding)", "selfimprove/rounds/gate.py",
     "e.guard_delta < -track.guard_tolerance - EPS:", "e.guard_delta < -track.guard_tolerance:", [GATE]),
    ("gate: the guard set is not checked", "selfimprove/rounds/gate.py",
     "if e.guard_delta is not None and e.guard_delta < -track.guard_tolerance - EPS:", "if False:",
     ["tests/rounds/test_tracks.py::test_measured_guard_and_diversity_evidence_refuse_a_round"]),
    ("gate: the diversity floor is not checked", "selfimprove/rounds/gate.py",
     "if track.diversity_floor is not None and e.diversity is not None and e.diversity < track.diversity_floor - EPS:",
     "if False:", ["tests/rounds/test_tracks.py::test_measured_guard_and_diversity_evidence_refuse_a_round"]),
    ("bootstrap: the upper quantile taken one resample early", "selfimprove/evaluation/heldout.py",
     "hi = means[min(resamples - 1, int((1 + level) / 2 * resamples))]",
     "hi = means[min(resamples - 1, int((1 + level) / 2 * resamples)) - 100]",
     [EVAL + "::test_bootstrap_intervals_match_the_exact_resampling_distribution"]),
    ("agreement: shares of the answered samples only", "selfimprove/verification/agreement.py",
     "    total = len(answers)\n", "    total = sum(a is not None for a in answers) or 1\n",
     [EVAL + "::test_agreement_and_majority_choice_by_hand"]),
    ("evaluate: pass@1 averaged over samples counted as right when undecided", "selfimprove/evaluation/heldout.py",
     'decided = [bool(r["correct"]) for r in rs if r["correct"] is not None]',
     'decided = [r["correct"] is not False for r in rs]',
     ["tests/flows/test_cli.py::test_eval_any_model_on_a_jsonl", EVAL]),
    ("votes: probability verdicts parsed from their text", "selfimprove/verification/votes.py",
     'out.append([(raw, "Y" if p_yes >= stage.threshold else "N", p_yes, 0)] * n)',
     "out.append([(raw, parse_verdict(raw), p_yes, 0)] * n)",
     ["tests/verification/test_cascade.py::test_probability_verdicts_are_never_unparseable"]),
    ("deployments: the weekly retrain may overlap itself", "prefect.yaml",
     "concurrency_limit: 1   # scheduled retrains never overlap", "concurrency_limit: 2",
     ["tests/flows/test_deployments.py"]),
    ("sdzero: the held-out reward seeds are not capped at a third", "selfimprove/training/distill_config.py",
     "[:min(val_size, len(seed_ids) // 3)]", "[:val_size]",
     [SDZERO + "::test_sdzero_flow_both_rewards_end_to_end"]),
    ("injection (real model, -m slow): nothing neutralizes the candidate", "selfimprove/verification/judges.py",
     '    text = _VERDICT_TOKEN.sub("(verdict removed)", text)\n', "    return text\n",
     ["-m", "slow", "tests/verification/test_injection.py::test_real_model_neutralizing_takes_most_of_the_attack_away"]),
    ("placebo: one more example than the filter kept", "selfimprove/verification/filters.py",
     "drawn_seeds = drawn_seeds[:config.keep]", "drawn_seeds = drawn_seeds[:config.keep + 1]",
     ["tests/verification/test_placebo.py"]),
    ("placebo: the draw ignores its seed", "selfimprove/verification/filters.py",
     "rng = random.Random(config.seed)", "rng = random.Random(0)", ["tests/verification/test_placebo.py"]),
    ("placebo: a format-invalid candidate may be drawn", "selfimprove/verification/filters.py",
     "        if not problems[c[\"candidate_id\"]]:\n            valid", "        if True:\n            valid",
     ["tests/verification/test_placebo.py"]),
    ("maj@k: a tie goes to the answer reached last", "selfimprove/testtime/majority.py",
     "winner = next(g for g in groups if g is not None and counts[g] == top)",
     "winner = [g for g in groups if g is not None and counts[g] == top][-1]", ["tests/evaluation/test_majority.py"]),
    ("maj@k: the cost of one call recorded instead of k", "selfimprove/testtime/majority.py",
     "sum(c[\"n_tokens\"] for c in cands), len(cands))", "sum(c[\"n_tokens\"] for c in cands), 1)",
     ["tests/evaluation/test_majority.py"]),
    ("experiment: a completed arm is run again", "flows/experiment.py",
     "if found and found[\"status\"] == \"completed\":", "if False:",
     ["tests/flows/test_experiment.py::test_an_experiment_of_two_methods_by_two_repeats_resumes_after_a_kill"]),
    ("experiment: every repeat on the same seeds", "flows/experiment.py",
     "base.seeds.seed + SEED_STRIDE * (repeat - 1)", "base.seeds.seed",
     ["tests/flows/test_experiment.py::test_an_experiment_of_two_methods_by_two_repeats_resumes_after_a_kill"]),
    ("gate: the guard refuses on its point estimate again", "selfimprove/rounds/gate.py",
     "guard_high = e.guard_ci_high if e.guard_ci_high is not None else e.guard_delta", "guard_high = e.guard_delta",
     [GATE]),
    ("layers: the run config imports a method package", "selfimprove/config.py",
     "from selfimprove.methods import METHODS, get_method, packages\n",
     "from selfimprove.methods import METHODS, get_method, packages\nfrom selfimprove.methods.opsd import config as _opsd  # noqa\n",
     ["tests/test_layers.py"]),
    ("stage order: provenance ignores the flow's order", "warehouse/provenance.py",
     "return (m.get(\"order\", 0), mtime, str(m.get(\"stage\", \"\")))", "return (0, mtime, str(m.get(\"stage\", \"\")))",
     ["tests/flows/test_svd.py::test_from_stage_keeps_upstream_and_recomputes_the_rest"]),
    ("engines: another engine's section enters the identity", "selfimprove/inference/base.py",
     "        return {\"dtype\": config.dtype, \"batch_size\": config.batch_size}",
     "        return {\"dtype\": config.dtype, \"batch_size\": config.batch_size, \"openai\": str(config.openai)}",
     ["tests/inference/test_backends.py::test_identity_names_engine_weights_and_every_setting_that_changes_outputs"]),
    ("sampler: top-p keeps the token that crosses the mass instead of stopping before the next",
     "selfimprove/inference/decoding.py", "probs.masked_fill(above >= self.top_p, 0.0)",
     "probs.masked_fill(above > self.top_p + 0.05, 0.0)", ["tests/inference/test_decoding.py"]),
    ("sampler: temperature applied after the softmax", "selfimprove/inference/decoding.py",
     "probs = torch.softmax(values / self.temperature, dim=-1)", "probs = torch.softmax(values, dim=-1)",
     ["tests/inference/test_decoding.py"]),
    ("stop rule: continuous batching never ends a sequence at its answer", "selfimprove/inference/decoding.py",
     "return force(scores, rows, self.eos) if bool(rows.any()) else scores", "return scores",
     ["tests/inference/test_decoding.py"]),
    ("segmented attention: a decoding request attends to its padding", "selfimprove/inference/paged_attention.py",
     "scores = scores.masked_fill(~valid[:, None, None, :], float(\"-inf\"))", "scores = scores", ["tests/inference/test_paged_attention.py"]),
    ("segmented attention: a prefill chunk cannot see its own position over a cached prefix",
     "selfimprove/inference/paged_attention.py", "<= past + torch.arange", "< past + torch.arange",
     ["tests/inference/test_paged_attention.py"]),
    ("stop rule: the boxed answer ends at its first closing brace, nested braces ignored",
     "selfimprove/scoring/answer_end.py", "            depth -= 1\n            if depth == 0:",
     "            depth -= 1\n            if depth <= 1:", ["tests/scoring/test_answer_end.py"]),
    ("sampling: the stored candidate keeps the text after its answer", "selfimprove/generation/sampling.py",
     "text = answer_end.cut(g.text, rule)", "text = g.text", ["tests/generation/test_sampling.py"]),
    ("cascade: advisory stages judged round by round again", "selfimprove/verification/cascade.py",
     "last_gate = max((i for i, s in enumerate(config.stages) if s.gate), default=-1)",
     "last_gate = len(config.stages) - 1", ["tests/verification/test_cascade.py"]),
    ("training: auto precision ignores the CPU's bf16 units", "selfimprove/training/sft.py",
     'return "bf16" if cpu_has_bf16() else "fp32"', 'return "fp32"', [LEARN]),
    ("report: chromium is missing where CI requires the browser test (the machine breaks, not the code)", None, "", "",
     ["tests/reporting/test_report.py::test_report_renders_in_headless_chromium"],
     {"SELFIMPROVE_REQUIRE_BROWSER": "1", "PATH": "/nonexistent"}),
]


def run(name: str, path: str, old: str, new: str, tests: list[str], env: dict | None = None) -> tuple[bool, str]:
    file = ROOT / path if path else None  # None: the environment breaks, the code stays
    original = file.read_text() if file else ""
    if file and original.count(old) != 1:
        raise SystemExit(f"{name}: the text to break occurs {original.count(old)} times in {path}, not once")
    if file:
        file.write_text(original.replace(old, new))
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", *tests], cwd=ROOT, capture_output=True, text=True,
                              timeout=900, env={**os.environ, **(env or {})})
    finally:
        if file:
            file.write_text(original)
    failed = [line.split(" - ")[0].split("::", 1)[-1] for line in done.stdout.splitlines()
              if line.startswith(("FAILED ", "ERROR tests/"))]
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
    return done.returncode != 0, f"{summary}; failed: {', '.join(failed[:4])}{' ...' if len(failed) > 4 else ''}"


def main(words: list[str]) -> int:
    survived = 0
    for name, *entry in MUTATIONS:
        if words and not any(w in name for w in words):
            continue
        start = time.time()
        caught, evidence = run(name, *entry)
        survived += not caught
        print(f"{'caught  ' if caught else 'SURVIVED'} {name} ({time.time() - start:.0f} s): {evidence}", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
