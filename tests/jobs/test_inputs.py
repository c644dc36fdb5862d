"""A train/distill job's inputs are resolved once at its start: the teacher's manifest read once, its recorded
data and preprocessing taken when no --data is given, a checkpoint student's architecture and weights, and
the checks that need no image."""
import pytest
import torch

from compress.checkpoint import Manifest, save_checkpoint
from compress.data.bundle import DataConfig
from compress.errors import UserInputError
from compress.jobs.inputs import JobConfig, resolve_inputs


def _ckpt(path, data=None, mean=(0.5,), size=16, arch="cifar_resnet8"):
    from compress.models import create_model

    torch.manual_seed(0)
    model = create_model(arch, num_classes=10, in_chans=1)
    man = Manifest(architecture=arch, num_classes=10, in_chans=1, image_size=size, mean=mean, std=(0.25,),
                   class_names=tuple(str(i) for i in range(10)), config={"data": data} if data else {})
    save_checkpoint(path, model, man)
    return str(path)


def test_a_given_teacher_is_read_once_and_fixes_data_size_and_normalisation(tmp_path, monkeypatch):
    import compress.checkpoint as ck

    teacher = _ckpt(tmp_path / "t", data={"data": str(tmp_path / "imgs"), "train_ratio": 0.3}, mean=(0.4,), size=24)
    reads = []
    real = ck.read_manifest
    monkeypatch.setattr(ck, "read_manifest", lambda p: reads.append(str(p)) or real(p))
    inputs = resolve_inputs(JobConfig(teacher=(teacher,), method="kd"), "distill")
    assert reads == [teacher]  # once, for the checks, the data and the preprocessing together
    assert inputs.teachers[0].image_size == 24 and inputs.mean_std == ((0.4,), (0.25,))
    assert inputs.cfg.data.data == str(tmp_path / "imgs") and inputs.cfg.data.train_ratio == 0.3  # its own data
    assert inputs.data.image_size == 24 and inputs.student.arch == "auto"
    given = resolve_inputs(JobConfig(teacher=(teacher,), data=DataConfig(image_size=32)), "distill")
    assert given.cfg.data.data == str(tmp_path / "imgs") and given.data.image_size == 32  # a flag on top wins


def test_a_checkpoint_student_gives_its_architecture_weights_and_preprocessing(tmp_path):
    student = _ckpt(tmp_path / "s", mean=(0.3,), size=20, arch="cifar_resnet14")
    inputs = resolve_inputs(JobConfig(student=student, method="ce"), "train")
    assert inputs.student.arch == "cifar_resnet14" and inputs.student.init.endswith("s")
    assert inputs.data.image_size == 20 and inputs.mean_std == ((0.3,), (0.25,)) and inputs.teachers == ()
    with pytest.raises(UserInputError, match="already gives the initial weights; drop --weights"):
        resolve_inputs(JobConfig(student=student, weights=str(tmp_path / "w.pth")), "train")


def test_what_needs_no_image_is_checked_before_anything_is_read(tmp_path):
    with pytest.raises(UserInputError, match="--unlabeled .* is not a folder"):
        resolve_inputs(JobConfig(unlabeled=str(tmp_path / "none"), method="kd-hr",
                                 teacher=(_ckpt(tmp_path / "t"),)), "distill")
    with pytest.raises(Exception, match="nosuch"):
        resolve_inputs(JobConfig(teacher=(str(tmp_path / "nosuch"),)), "distill")
