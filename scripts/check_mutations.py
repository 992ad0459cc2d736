"""Deliberate breaks: each one changes the code the way a plausible bug would, runs the tests that must catch
it, and restores the file. A break that no test catches is reported as SURVIVED (exit 1).

    .venv/bin/python scripts/check_mutations.py            # all of them (~15 min on 2 cores)
    .venv/bin/python scripts/check_mutations.py divergence # those whose name contains a word

Each entry: (name, file, the exact text, what replaces it, pytest node ids). The text must occur exactly
once, so an entry that no longer matches the code fails loudly instead of passing silently.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIV = "tests/training/test_divergence.py"
SANDBOX = "tests/evaluation/test_sandbox.py"
LEARN = "tests/training/test_learning.py"
SISTERS = "tests/flows/test_sister_flows.py"
SDZERO = "tests/methods/test_sdzero.py"

MUTATIONS: list[tuple[str, str, str, str, list[str]]] = [
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
    ("sandbox: RLIMIT_NPROC not set", "selfimprove/evaluation/sandbox.py",
     '"RLIMIT_NPROC": 0, ', "", [SANDBOX + "::test_without_the_audit_hook_the_process_limit_stops_a_fork_bomb"]),
    ("sandbox: RLIMIT_NOFILE not set", "selfimprove/evaluation/sandbox.py",
     '"RLIMIT_NOFILE": cfg.open_files,', "", [SANDBOX + "::test_without_the_audit_hook_the_open_files_limit_holds"]),
    ("sandbox: never runs as nobody", "selfimprove/evaluation/sandbox.py",
     "for nobody in ([True, False] if root and cfg.drop_privileges else [False]):", "for nobody in [False]:",
     [SANDBOX + "::test_every_layer_is_in_force_where_the_machine_allows_it"]),
    ("sandbox: no network namespace", "selfimprove/evaluation/sandbox.py",
     "for ns in ([True, False] if unshare else [False]):", "for ns in [False]:",
     [SANDBOX + "::test_every_layer_is_in_force_where_the_machine_allows_it"]),
    ("sandbox: the nobody launcher keeps root's uid", "selfimprove/evaluation/sandbox.py",
     'user = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if as_nobody else {}', "user = {}",
     [SANDBOX + "::test_every_layer_is_in_force_where_the_machine_allows_it",
      SANDBOX + "::test_without_the_audit_hook_the_unprivileged_user_cannot_touch_our_files_or_processes"]),
    ("sandbox: the network namespace launcher shares the host's network", "selfimprove/evaluation/sandbox.py",
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
]


def run(name: str, path: str, old: str, new: str, tests: list[str]) -> bool:
    file = ROOT / path
    original = file.read_text()
    if original.count(old) != 1:
        raise SystemExit(f"{name}: the text to break occurs {original.count(old)} times in {path}, not once")
    file.write_text(original.replace(old, new))
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", *tests], cwd=ROOT,
                              capture_output=True, text=True, timeout=900)
    finally:
        file.write_text(original)
    failed = [line.split(" - ")[0].split("::", 1)[-1] for line in done.stdout.splitlines()
              if line.startswith(("FAILED", "ERROR"))]
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
    return done.returncode != 0, f"{summary}; failed: {', '.join(failed[:4])}{' ...' if len(failed) > 4 else ''}"


def main(words: list[str]) -> int:
    survived = 0
    for name, path, old, new, tests in MUTATIONS:
        if words and not any(w in name for w in words):
            continue
        start = time.time()
        caught, evidence = run(name, path, old, new, tests)
        survived += not caught
        print(f"{'caught  ' if caught else 'SURVIVED'} {name} ({time.time() - start:.0f} s): {evidence}", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
