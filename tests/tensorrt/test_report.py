"""Build report, environment probing and the loader check that runs before Triton.

The environment (TensorRT version, GPU) is passed in as values: what is tested is the
comparison, which must name the mismatch in one line before Triton's own error.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from tests.helpers import REPO_ROOT
from tests.helpers.engine import installed_plan
from unetkit.core import BatchShape, Profile, UserError, sha256_file
from unetkit.tensorrt import (
    Accuracy,
    BuildInputs,
    Gpu,
    ImageTags,
    check_deployment,
    parse_nvidia_smi,
    plan_mismatch,
    read_report,
    rebuild_reason,
    report_path_for,
    tensorrt_version_from_libraries,
    write_report,
)

H100 = Gpu("NVIDIA H100 80GB HBM3", "9.0")


def test_report_round_trips_with_accuracy(tmp_path):
    plan = installed_plan(tmp_path / "1")
    report = read_report(report_path_for(plan))
    checked = Accuracy(8, 3e-4, 0.99995, 1e-3, 0.999, True)
    write_report(report_path_for(plan), replace(report, accuracy=checked))
    again = read_report(report_path_for(plan))
    assert again.accuracy == checked
    assert again.tensorrt_version == "10.13.3.9" and again.profile["max"]["batch"] == 32
    data = json.loads(report_path_for(plan).read_text())
    assert data["precision"] == "fp16" and data["accuracy"]["passed"] is True


@pytest.mark.parametrize(
    "content,message",
    [
        ("{not json", "not a build report"),
        ('{"tensorrt_version": "10.1"}', "not a build report"),
        ("[]", "not a build report"),
    ],
)
def test_unreadable_reports_are_refused_in_one_line(tmp_path, content, message):
    path = tmp_path / "build_report.json"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as info:
        read_report(path)
    assert "docker compose run --rm build" in str(info.value)
    assert "\n" not in str(info.value)


def test_plan_fits_same_release_and_architecture(tmp_path):
    report = read_report(report_path_for(installed_plan(tmp_path)))
    # the build number of the release does not matter
    assert plan_mismatch(report, "10.13.3", H100.name, "9.0") is None


def test_other_tensorrt_or_architecture_is_one_line_with_the_fix(tmp_path):
    report = read_report(report_path_for(installed_plan(tmp_path)))
    message = plan_mismatch(report, "10.14.1.48", "NVIDIA L4", "8.9")
    assert message == (
        "plan built with TensorRT 10.13.3.9 on sm_90 (NVIDIA H100 80GB HBM3), this container "
        "has TensorRT 10.14.1.48 on sm_89 (NVIDIA L4): rebuild with `docker compose run --rm build`"
    )
    assert "TensorRT 10.13.3.9 on sm_90" in plan_mismatch(report, "10.13.3", "NVIDIA L4", "8.9")
    assert "TensorRT 11.4.0" in plan_mismatch(report, "11.4.0", H100.name, "9.0")


def test_a_tensorrt_mismatch_from_two_image_tags_says_to_align_them(tmp_path):
    report = read_report(report_path_for(installed_plan(tmp_path)))
    message = plan_mismatch(report, "10.14.1.48", H100.name, "9.0", ImageTags("25.08", "25.10"))
    assert message == (
        "plan built with TensorRT 10.13.3.9 on sm_90 (NVIDIA H100 80GB HBM3), this container "
        "has TensorRT 10.14.1.48 on sm_90 (NVIDIA H100 80GB HBM3): the build image is "
        "tensorrt:25.08 (TRT_TAG) and the server tritonserver:25.10 (TRITON_TAG): set both to "
        "one YY.MM tag in .env, then `docker compose up` builds the plan again"
    )
    # one tag for both: the plan is simply stale, and a rebuild is the fix
    same_tags = plan_mismatch(report, "10.14.1.48", H100.name, "9.0", ImageTags("25.10", "25.10"))
    assert same_tags.endswith("rebuild with `docker compose run --rm build`")
    # another GPU with the same TensorRT: the tags are not the cause
    other_gpu = plan_mismatch(report, "10.13.3", "NVIDIA L4", "8.9", ImageTags("25.08", "25.10"))
    assert other_gpu.endswith("rebuild with `docker compose run --rm build`")


def test_check_deployment_accepts_a_matching_plan_and_notes_another_card(tmp_path):
    plugin = tmp_path / "libunetkit_plugins.so"
    plugin.write_bytes(b"\x7fELF plugin")
    plan = installed_plan(tmp_path / "1", plugin=plugin)
    assert check_deployment(plan, plugin, "10.13.3.9", H100) == []
    notes = check_deployment(plan, plugin, "10.13.3.9", Gpu("NVIDIA H100 PCIe", "9.0"))
    assert len(notes) == 1 and "tuned on NVIDIA H100 80GB HBM3" in notes[0]


def test_check_deployment_refuses_changed_or_missing_files(tmp_path):
    plugin = tmp_path / "libunetkit_plugins.so"
    plugin.write_bytes(b"\x7fELF plugin")
    plan = installed_plan(tmp_path / "1", plugin=plugin)

    plugin.write_bytes(b"\x7fELF rebuilt against another TensorRT")
    with pytest.raises(UserError, match="changed since the plan was built"):
        check_deployment(plan, plugin, "10.13.3.9", H100)
    with pytest.raises(UserError, match=r"plugin but .* is missing"):
        check_deployment(plan, tmp_path / "absent.so", "10.13.3.9", H100)

    with pytest.raises(UserError, match=r"say where its library is \(UNETKIT_PLUGIN_LIB"):
        check_deployment(plan, None, "10.13.3.9", H100)

    plan.write_bytes(b"a plan copied in by hand")
    with pytest.raises(UserError, match="not the plan its build report describes"):
        check_deployment(plan, plugin, "10.13.3.9", H100)
    with pytest.raises(UserError, match="no TensorRT plan"):
        check_deployment(tmp_path / "none" / "model.plan", None, "10.13.3.9", H100)


def test_a_tensorrt_rtx_plan_never_fits_tritons_tensorrt(tmp_path):
    plan = installed_plan(tmp_path / "1", tensorrt_version="10.13.3.9")
    report = replace(read_report(report_path_for(plan)), builder="TensorRT-RTX")
    message = plan_mismatch(report, "10.13.3.9", H100.name, "9.0")
    assert message is not None
    assert message.startswith("plan built with TensorRT-RTX 10.13.3.9 on sm_90")


def test_rebuild_reason_names_the_first_input_that_changed(tmp_path):
    plugin = tmp_path / "libunetkit_plugins.so"
    plugin.write_bytes(b"\x7fELF plugin")
    plan = installed_plan(tmp_path / "1", plugin=plugin)
    profile = Profile(BatchShape(1, 16, 16), BatchShape(8, 256, 256), BatchShape(32, 512, 512))
    same = BuildInputs(
        builder="TensorRT",
        tensorrt_version="10.13.3.9",
        gpu_name=H100.name,
        compute_capability="9.0",
        precision="fp16",
        upsample="plugin",
        profile=profile.as_dict(),
        onnx_sha256="0" * 64,
        plugin_sha256=sha256_file(plugin),
        checked=False,
    )
    assert rebuild_reason(plan, same) is None
    changes = {
        "tensorrt_version": ("10.13.3.10", "TensorRT version changed: 10.13.3.9 -> 10.13.3.10"),
        "gpu_name": ("NVIDIA H100 PCIe", "GPU changed: NVIDIA H100 80GB HBM3 -> NVIDIA H100"),
        "compute_capability": ("8.9", "compute capability changed: 9.0 -> 8.9"),
        "precision": ("fp32", "precision changed: fp16 -> fp32"),
        "upsample": ("native", "upsampling changed: plugin -> native"),
        "onnx_sha256": ("1" * 64, "ONNX model (sha256) changed: 000000000000 -> 111111111111"),
        "plugin_sha256": ("f" * 64, "plugin library (sha256) changed"),
        "builder": ("TensorRT-RTX", "builder changed: TensorRT -> TensorRT-RTX"),
        "checked": (True, "never checked against ONNX Runtime"),
    }
    for name, (value, reason) in changes.items():
        assert reason in (rebuild_reason(plan, replace(same, **{name: value})) or ""), name
    bigger = Profile(profile.min, profile.opt, BatchShape(64, 512, 512)).as_dict()
    assert (
        rebuild_reason(plan, replace(same, profile=bigger))
    ) == "profile changed: 1x16x16/8x256x256/32x512x512 -> 1x16x16/8x256x256/64x512x512"

    plan.write_bytes(b"replaced by hand")
    assert rebuild_reason(plan, same) == "model.plan is not the plan build_report.json describes"
    report_path_for(plan).write_text("{not json")
    assert "is not a report this kit can read" in (rebuild_reason(plan, same) or "")
    report_path_for(plan).unlink()
    assert rebuild_reason(plan, same) == "no plan with a build report yet"


def test_nvidia_smi_csv_is_parsed():
    gpu = parse_nvidia_smi("NVIDIA H100 80GB HBM3, 9.0\nNVIDIA H100 80GB HBM3, 9.0\n")
    assert gpu == H100
    assert parse_nvidia_smi("Tesla T4, 7.5").compute_capability == "7.5"
    with pytest.raises(UserError, match="no GPU"):
        parse_nvidia_smi("\n")
    with pytest.raises(UserError, match="cannot read nvidia-smi"):
        parse_nvidia_smi("NVIDIA H100, [N/A]")


def test_tensorrt_version_is_read_from_the_library_file_names(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in (
        "libnvinfer.so",
        "libnvinfer.so.10",
        "libnvinfer.so.10.13.3",
        "libnvonnxparser.so.10.13.3",
        "libnvinfer.so.10.9.0",
    ):
        (lib / name).write_bytes(b"")
    assert tensorrt_version_from_libraries((str(tmp_path / "missing"), str(lib))) == "10.13.3"
    assert tensorrt_version_from_libraries((str(tmp_path / "missing"),)) is None


def run_check_plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "build" / "check_plan.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_plan_cli(tmp_path):
    plan = installed_plan(tmp_path / "1")
    gpu = ["--gpu-name", "NVIDIA H100 80GB HBM3", "--compute-capability", "9.0"]
    ok = run_check_plan(str(plan), "--tensorrt-version", "10.13.3.9", *gpu)
    assert ok.returncode == 0, ok.stderr
    assert "fits TensorRT 10.13.3.9" in ok.stdout

    bad = run_check_plan(str(plan), "--tensorrt-version", "11.4.0.106", *gpu)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: plan built with TensorRT 10.13.3.9 on sm_90 (NVIDIA H100 80GB HBM3), this "
        "container has TensorRT 11.4.0.106 on sm_90 (NVIDIA H100 80GB HBM3): rebuild with "
        "`docker compose run --rm build`"
    ]
    half = run_check_plan(str(plan), "--tensorrt-version", "10.13.3", "--gpu-name", "X")
    assert half.returncode == 2 and "together" in half.stderr
