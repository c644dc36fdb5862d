"""Pipeline steps that train nothing: each writes a small result into its folder (or fails, as asked), so
the pipeline's bookkeeping can be tested in milliseconds."""
from __future__ import annotations

from compress.errors import UserInputError


def install_fake_steps(monkeypatch, calls: list, fail=(), make_folder: bool = True, with_resume: bool = False) -> None:
    """Replace every step kind; ``calls`` gets the step name (or ``(name, resume)`` with ``with_resume``).
    A step in ``fail`` raises after leaving a half-written folder (none without ``make_folder``)."""
    from compress.jobs import pipeline_steps

    def step(p, s, folder, resume):
        calls.append((s.name, resume) if with_resume else s.name)
        if s.name in fail:
            if make_folder:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "half.txt").write_text("half")
            raise UserInputError(f"{s.name} failed")
        if s.folder not in ("", "."):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "config.json").write_text("{}")
            (folder / "result.txt").write_text(f"{s.name} {len(calls)}")
        return {"checkpoint": str(folder), "checkpoints": [str(folder)], "weights": [], "files": []}

    monkeypatch.setattr(pipeline_steps, "STEP_KINDS", {k: step for k in pipeline_steps.STEP_KINDS})
