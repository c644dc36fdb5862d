"""Device profiles: shipped data (power modes switch SMs off), user YAML files, validation."""
import pytest
import yaml

from compress.errors import UserInputError
from profiles.device import DEVICES_DIR, list_device_profiles, load_device_profile, match_profile

EXPECTED = {"jetson-nano", "jetson-tx2", "jetson-xavier-nx", "jetson-agx-xavier", "jetson-orin-nano-4gb",
            "jetson-orin-nano-8gb", "jetson-orin-nx-8gb", "jetson-orin-nx-16gb", "jetson-agx-orin-32gb",
            "jetson-agx-orin-64gb", "rtx-4090", "host-cpu"}


def test_all_profiles_load_with_sources():
    profs = {p.name: p for p in list_device_profiles()}
    assert EXPECTED <= set(profs)
    for name in EXPECTED - {"host-cpu"}:
        p = profs[name]
        assert all(p.sources[k] and p.sources[k] != "not given" for k in p.values), name
        assert all(m.source for m in p.power_modes)


def test_agx_orin_15w_switches_sms_off():
    p = load_device_profile("jetson-agx-orin-64gb")
    m = p.mode("MODE_15W")
    assert (m.active_sms, m.gpu_max_mhz, m.emc_max_mhz) == (6, 408, 2133)
    assert p.sm_count == 16
    # peak scales with active SMs and clock: 42.6 TFLOPS * 6/16 * 408/1300
    assert p.peak_ops("fp16", "MODE_15W") == pytest.approx(p.peak_fp16_tflops * 1e12 * 6 / 16 * 408 / 1300)
    assert p.bandwidth("MODE_15W") == pytest.approx(204.8e9 * 2133 / 3199)
    assert p.mode("1").name == "MODE_15W"  # by nvpmodel id
    nx = load_device_profile("jetson-orin-nx-16gb").mode("15W")
    assert (nx.active_sms, nx.gpu_max_mhz) == (4, 612)


def test_nano_has_no_int8_and_unknown_mode():
    p = load_device_profile("jetson_nano")
    assert p.peak_ops("int8") is None
    with pytest.raises(UserInputError, match="no power mode 'turbo'.*MAXN"):
        p.mode("turbo")
    with pytest.raises(UserInputError, match="Unknown device profile 'jetson-nanoo'.*jetson-nano"):
        load_device_profile("jetson-nanoo")


def _user_profile(tmp_path, **over):
    data = yaml.safe_load((DEVICES_DIR / "jetson-orin-nano-8gb.yaml").read_text())
    data.update(name="my-board", **over)
    path = tmp_path / "my-board.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_user_yaml(tmp_path):
    p = load_device_profile(str(_user_profile(tmp_path)))
    assert p.name == "my-board" and p.mode().name == "15W"
    with pytest.raises(UserInputError, match="must be written as"):
        load_device_profile(str(_user_profile(tmp_path, sm_count=8)))
    with pytest.raises(UserInputError, match="unknown key.*colour"):
        load_device_profile(str(_user_profile(tmp_path, colour="green")))
    with pytest.raises(UserInputError, match="does not exist"):
        load_device_profile(str(tmp_path / "missing.yaml"))


def test_jetson_detection_picks_the_matching_profile(tmp_path):
    from runtime.jetson import detect_jetson
    from tests.conftest import fake_jetson

    info = detect_jetson(fake_jetson(tmp_path))
    assert info.l4t_release == "35.3.1" and match_profile(info.model, info.memory_gb) == "jetson-agx-orin-32gb"
    (tmp_path / "proc/meminfo").write_text("MemTotal:       64335836 kB\n")
    info = detect_jetson(tmp_path)
    assert match_profile(info.model, info.memory_gb) == "jetson-agx-orin-64gb"
    (tmp_path / "proc/device-tree/model").write_bytes(b"NVIDIA Jetson Nano Developer Kit\x00")
    info = detect_jetson(tmp_path)
    assert match_profile(info.model, info.memory_gb) == "jetson-nano"


def test_a_unique_prefix_picks_the_profile_and_an_ambiguous_one_lists_the_candidates():
    assert load_device_profile("jetson-agx-x").name == "jetson-agx-xavier"
    assert load_device_profile("jetson-orin-nano-s").name == "jetson-orin-nano-super-devkit"
    with pytest.raises(UserInputError, match="ambiguous.*jetson-orin-nano-4gb, jetson-orin-nano-8gb, "
                                             "jetson-orin-nano-super-devkit"):
        load_device_profile("jetson-orin-nano")


def test_super_modes_and_new_profiles():
    nano = load_device_profile("jetson-orin-nano-8gb")
    assert nano.mode("MAXN_SUPER").gpu_max_mhz == 1020 and nano.mode("25W").gpu_max_mhz == 918
    # the 15W mode keeps its pre-6.2 caps: 625 MHz, 68 GB/s
    assert nano.peak_ops("fp16", "15W") == pytest.approx(8 * 1024 * 2 * 625e6, rel=1e-3)
    assert nano.bandwidth("15W") == pytest.approx(102e9 * 2133 / 3199)
    kit = load_device_profile("jetson-orin-nano-super-devkit")
    assert kit.default_power_mode == "MAXN_SUPER" and kit.mode("2").name == "MAXN_SUPER"
    assert match_profile("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super", 8.0) == kit.name
    ind = load_device_profile("jetson-agx-orin-industrial")
    assert ind.peak_ops("int8") == pytest.approx(16 * 2048 * 2 * 1.2e9, rel=1e-3) and ind.cpu_max_mhz == 2000
    for name in ("jetson-orin-nx-16gb", "jetson-orin-nx-8gb", "jetson-orin-nano-4gb"):
        assert load_device_profile(name).mode("MAXN_SUPER").gpu_max_mhz in (1020, 1173)


def _sourced(value):
    return {"value": value, "source": "typed by a user"}


def _mode(**over):
    m = {"name": "15W", "id": 0, "active_sms": 8, "gpu_max_mhz": 625, "emc_max_mhz": 2133, "source": "user"}
    m.update(over)
    return [m]


@pytest.mark.parametrize("over,words", [
    ({"gpu_max_mhz": _sourced(float("nan"))}, "'gpu_max_mhz' must be a finite number"),
    ({"gpu_max_mhz": _sourced(-625)}, "'gpu_max_mhz' must be a finite number ≥ 1, got -625"),
    ({"memory_bandwidth_gbs": _sourced(0)}, "'memory_bandwidth_gbs' must be a finite number"),
    ({"peak_fp16_tflops": _sourced(0)}, "'peak_fp16_tflops' must be a finite number"),
    ({"sm_count": _sourced(0)}, "'sm_count' must be a whole number ≥ 1"),
    ({"sm_count": _sourced("fast")}, "'sm_count' must be a whole number"),
    ({"compute_capability": _sourced("fast")}, "must be a version number"),
    ({"notes": 5}, "'notes' must be a list of text lines"),
    ({"kind": "phone"}, "kind must be one of jetson, gpu, cpu"),
    ({"power_modes": _mode(gpu_max_mhz=0)}, "gpu_max_mhz must be a finite number > 0, got 0"),
    ({"power_modes": _mode(gpu_max_mhz=float("nan"))}, "gpu_max_mhz must be a finite number > 0"),
    ({"power_modes": _mode(active_sms=-2)}, "active_sms must be a whole number ≥ 1"),
    ({"power_modes": _mode(emc_max_mhz="fast")}, "emc_max_mhz must be a finite number > 0"),
    ({"power_modes": "15W"}, "power_modes must be a list"),
    ({"default_power_mode": "turbo"}, "default_power_mode 'turbo' is none of its power modes (15W, 7W"),
])
def test_a_user_profile_with_a_wrong_value_is_one_line(tmp_path, over, words):
    with pytest.raises(UserInputError) as err:
        load_device_profile(str(_user_profile(tmp_path, **over)))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_profile_without_a_default_mode_uses_its_first_and_bytes_that_are_not_utf8_are_one_line(tmp_path):
    data = yaml.safe_load(_user_profile(tmp_path).read_text())
    data.pop("default_power_mode", None)
    path = tmp_path / "nodefault.yaml"
    path.write_text(yaml.safe_dump(data))
    p = load_device_profile(str(path))
    assert p.mode().name == p.power_modes[0].name
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserInputError, match="not UTF-8 text"):
        load_device_profile(str(bad))


def test_no_peak_or_bandwidth_is_negative_or_infinite_with_a_user_profile(tmp_path):
    p = load_device_profile(str(_user_profile(tmp_path)))
    for prec in ("fp32", "fp16"):
        ops = p.peak_ops(prec)
        assert ops is None or 0 < ops < float("inf")
    assert 0 < p.bandwidth() < float("inf")


@pytest.mark.parametrize("fixture, isa, flop", [("arm_cortex_a57.txt", "aarch64", 16), ("intel_avx2.txt", "x86_64", 32),
                                                ("intel_spr_amx.txt", "x86_64", 64)])
def test_the_host_profile_reads_the_cpu_the_way_the_rest_of_the_toolkit_does(monkeypatch, fixture, isa, flop):
    """One /proc/cpuinfo parser (compress.hardware): a Jetson's ARM ``Features`` give NEON, not the scalar 8."""
    from pathlib import Path

    import compress.hardware as hw
    from profiles.device import host_cpu_profile

    text = (Path(__file__).parents[1] / "fixtures" / "cpuinfo" / fixture).read_text()
    import dataclasses

    cpu = dataclasses.replace(hw.parse_cpuinfo(text, isa=isa, cores=4), mhz=1500.0)  # ARM cpuinfo has no clock
    monkeypatch.setattr(hw, "cpu_info", lambda: cpu)
    p = host_cpu_profile()
    assert f"4 cores x 1500.0 MHz x {flop} FP32 FLOP/cycle" in p.sources["peak_fp32_tflops"]
    assert p.values["peak_fp32_tflops"] == pytest.approx(4 * 1500e6 * flop / 1e12)
    assert p.display_name == f"host CPU ({cpu.model}, 4 cores)"
