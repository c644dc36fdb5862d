"""Pipeline steps that train nothing: each writes a small result into its folder (or fails, as asked), so
the pipeline's bookkeeping can be tested in milliseconds."""
from __future__ import annotations

from compress.errors import UserInputError


def fake_outputs(s, folder, **export):
    """The typed outputs a step of ``s.kind`` hands on, naming ``folder`` as its checkpoint; ``export``
    fields (outcome, message) for export steps."""
    from compress.jobs import pipeline_outputs as po

    row = {"checkpoint": str(folder), "method": "ce", "test_oa": 0.5, "test_kappa": 0.4, "params_m": 0.1}
    return {"teacher": lambda: po.TeacherOutputs((str(folder),)),
            "baseline": lambda: po.BaselineOutputs(str(folder), row),
            "student": lambda: po.StudentOutputs(str(folder), row),
            "export": lambda: po.ExportOutputs(str(folder), **export),
            "profile": lambda: po.ProfileOutputs(),
            "report": lambda: po.ReportOutputs()}[s.kind]()


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
        return fake_outputs(s, folder)

    monkeypatch.setattr(pipeline_steps, "STEP_KINDS", {k: step for k in pipeline_steps.STEP_KINDS})
