"""What a run shows in the Prefect UI and on the terminal: stage messages, progress, artifacts.

Inside a Prefect run, `say` logs through the run logger (the flow run's Logs tab; Prefect's console
handler prints the same line on the terminal); outside one it prints. Artifacts and progress are
created only inside a run, and a failure to create one never fails the stage.
"""
from __future__ import annotations

from tqdm.auto import tqdm


def _in_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return bool(TaskRunContext.get() or FlowRunContext.get())


def say(message: str, warning: bool = False) -> None:
    """One line for the person watching: the run's Logs tab and the terminal."""
    if _in_run():
        from prefect.logging import get_run_logger

        logger = get_run_logger()
        (logger.warning if warning else logger.info)(message)
    else:
        print(message, flush=True)


def markdown_artifact(key: str, markdown: str, description: str) -> None:
    _artifact("create_markdown_artifact", key=key, markdown=markdown, description=description)


def table_artifact(key: str, rows: list[dict], description: str) -> None:
    _artifact("create_table_artifact", key=key, table=rows, description=description)


def _artifact(make: str, **kwargs) -> None:
    if not _in_run():
        return
    try:
        import prefect.artifacts

        getattr(prefect.artifacts, make)(**kwargs)
    except Exception as e:  # noqa: BLE001 - artifacts are a view; a failure must not fail the run
        say(f"[{kwargs['key']}] Prefect artifact not created: {e}", warning=True)


class Progress:
    """A tqdm bar, mirrored as a Prefect progress artifact (percentage and "done of total" in its
    description) when running inside a task; call it with the units just finished."""

    STEP = 5.0  # the artifact is updated every 5 percentage points (and at the end)

    def __init__(self, total: int, desc: str, unit: str = "prompt") -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
        self.artifact, self.shown = None, -self.STEP
        try:
            from prefect.artifacts import create_progress_artifact
            from prefect.context import TaskRunContext

            if TaskRunContext.get():
                self.artifact = create_progress_artifact(0.0, description=self._describe())
        except Exception:  # noqa: BLE001 - the UI mirror is optional; the stage is not
            self.artifact = None

    def _describe(self) -> str:
        done = self.bar.n
        share = 100.0 * done / self.total if self.total else 100.0
        return f"{self.desc}: {share:.0f}% ({done:,} of {self.total:,} {self.unit}s)"

    def __call__(self, n: int) -> None:
        self.bar.update(n)
        if self.artifact is None or not self.total:
            return
        done = 100.0 * self.bar.n / self.total
        if done - self.shown >= self.STEP or self.bar.n >= self.total:
            self.shown = done
            try:
                from prefect.artifacts import update_progress_artifact

                update_progress_artifact(self.artifact, min(done, 100.0), description=self._describe())
            except Exception:  # noqa: BLE001
                pass

    def close(self) -> None:
        self.bar.close()


def progress_bar(total: int, desc: str, unit: str = "prompt") -> tuple[Progress, Progress]:
    """(bar, tick): `tick(n)` advances both the terminal bar and the UI's progress artifact."""
    progress = Progress(total, desc, unit)
    return progress, progress


class StepProgress:
    """Progress for a loop that learns its total only once it starts (a trainer's steps):
    call it with (done, total)."""

    def __init__(self, desc: str, unit: str = "step") -> None:
        self.desc, self.unit, self.progress = desc, unit, None

    def __call__(self, done: int, total: int) -> None:
        if self.progress is None:
            self.progress = Progress(total, self.desc, self.unit)
        self.progress(done - self.progress.bar.n)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
