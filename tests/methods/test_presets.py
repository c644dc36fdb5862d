import pytest

from compress.data.vsm import USUAL_DA, VSMConfig
from compress.errors import UserInputError
from compress.jobs.config_merge import job_config_from_mapping
from compress.methods.presets import list_presets, load_preset, preset_path


def test_presets_are_listed_and_found():
    assert {"pskd", "erkt", "erkt-usual-da", "hr-s2dml"} <= set(list_presets())
    assert preset_path("pskd").suffix == ".yaml"
    with pytest.raises(UserInputError, match="Known: dkd-cifar, erkt"):
        preset_path("psdk")


def test_pskd_paper_schedule():
    job = job_config_from_mapping(load_preset("pskd"))
    t = job.train
    assert (t.optimizer, t.lr, t.momentum, t.batch_size, t.epochs) == ("sgd", 0.1, 0.9, 32, 200)
    assert (t.schedule, t.milestones, t.gamma) == ("multistep", (60, 120, 160), 0.1)
    assert job.method == "pskd"
    assert job.method_params == {"alpha": 0.1, "beta": 1.0, "gamma": 0.8, "temperature": 4.0, "mixup_alpha": 0.1}
    assert (job.student, job.teacher_arch) == ("resnet18", "resnet34")
    assert job.data.augment.hflip == 0.5


def test_erkt_paper_schedule():
    job = job_config_from_mapping(load_preset("erkt"))
    t = job.train
    assert (t.optimizer, t.lr, t.schedule, t.weight_decay, t.batch_size, t.epochs) == (
        "adamw", 2e-4, "cosine", 1e-6, 30, 600)
    assert job.data.image_size == 256 and job.method == "erkt" and job.student == "efficientnet_b0"
    usual = job_config_from_mapping(load_preset("erkt-usual-da"))
    assert {k: usual.method_params[k] for k in USUAL_DA} == USUAL_DA
    # the paper's preset keeps the full VSM that the method no longer defaults to
    assert {k: job.method_params[k] for k in USUAL_DA} == {k: getattr(VSMConfig(), k) for k in USUAL_DA} != USUAL_DA


def test_bad_config_keys_are_rejected():
    with pytest.raises(UserInputError, match="Unknown key"):
        job_config_from_mapping({"train": {"lrr": 0.1}})
    with pytest.raises(UserInputError, match="method_params"):
        job_config_from_mapping({"method": "pskd", "method_params": {"delta": 1}})


def test_hr_s2dml_paper_schedule_keeps_eq5_as_printed():
    from compress.jobs.config_merge import load_job_config
    from compress.jobs.metric_learning import MetricLearningConfig
    from compress.methods.hr_s2dml import HRParams

    cfg = load_job_config(MetricLearningConfig, {}, command="metric-learn", config_file=str(preset_path("hr-s2dml")))
    t = cfg.train
    assert (t.optimizer, t.lr, t.batch_size, t.epochs, t.schedule, t.step_size, t.gamma) == (
        "sgd", 1e-3, 256, 100, "step", 30, 0.5)
    assert cfg.method_params == {"margin": 0.5, "scale_tau": 0.05, "hr_weight": 1.0, "hr_normalization": "none"}
    assert (cfg.backbone, cfg.embedding_dim, cfg.data.image_size) == ("resnet18", 128, 256)
    assert HRParams().hr_normalization == "batch"  # the toolkit's default differs from the preset


def test_dkd_cifar_keeps_the_papers_beta_while_the_default_is_2():
    from compress.methods.dkd import DKDParams

    job = job_config_from_mapping(load_preset("dkd-cifar"))
    assert job.method == "dkd" and job.method_params == {"alpha": 1.0, "beta": 8.0, "temperature": 4.0,
                                                         "warmup_epochs": 20}
    assert DKDParams().beta == 2.0
