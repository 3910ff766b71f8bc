"""The JSON build report written beside model.plan, and the check that the plan fits a machine.

Standard library only: the Triton container runs this check before tritonserver starts,
and it has neither numpy nor onnx.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from unetkit.core import Profile, UserError, sha256_file, write_text_atomic

REPORT_NAME = "build_report.json"
FORMAT_VERSION = 1
REBUILD_HINT = "rebuild with `docker compose run --rm build`"
# The builder whose plans Triton's TensorRT backend loads; TensorRT-RTX plans it cannot.
SERVING_BUILDER = "TensorRT"


@dataclass(frozen=True)
class Accuracy:
    samples: int
    max_abs_prob_diff: float
    mask_agreement: float
    prob_tolerance: float
    mask_agreement_required: float
    passed: bool


@dataclass(frozen=True)
class BuildReport:
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    upsample: str
    profile: dict[str, dict[str, int]]
    max_batch_size: int
    onnx_sha256: str
    plan_sha256: str
    built_at: str
    build_seconds: float
    plugin_library: str | None = None
    plugin_sha256: str | None = None
    accuracy: Accuracy | None = None
    builder: str = SERVING_BUILDER
    format_version: int = field(default=FORMAT_VERSION)


@dataclass(frozen=True)
class BuildInputs:
    """What a plan is built from. A plan whose report records the same is not built again."""

    builder: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    upsample: str
    profile: dict[str, dict[str, int]]
    onnx_sha256: str
    plugin_sha256: str | None
    checked: bool

    def report(self, **outcome: Any) -> BuildReport:
        """The build report of a plan built from these inputs; `outcome` adds what the build
        produced (plan hash, time, accuracy, ...)."""
        fields = asdict(self)
        del fields["checked"]  # the report holds the check's numbers instead
        return BuildReport(**fields, **outcome)


def report_path_for(plan_path: Path) -> Path:
    return plan_path.with_name(REPORT_NAME)


def write_report(path: Path, report: BuildReport) -> None:
    write_text_atomic(path, json.dumps(asdict(report), indent=2, sort_keys=True) + "\n")


def read_report(path: Path) -> BuildReport:
    if not path.is_file():
        raise UserError(
            f"{path}: no build report; the plan was not built by the kit: {REBUILD_HINT}"
        )
    try:
        data = json.loads(path.read_text())
        accuracy = data.pop("accuracy", None)
        report = BuildReport(
            **data, accuracy=Accuracy(**accuracy) if accuracy is not None else None
        )
    except (json.JSONDecodeError, TypeError, AttributeError) as e:
        raise UserError(
            f"{path}: not a build report this kit can read ({e}): {REBUILD_HINT}"
        ) from e
    if report.format_version != FORMAT_VERSION:
        raise UserError(
            f"{path}: build report format {report.format_version}, expected {FORMAT_VERSION}: "
            f"{REBUILD_HINT}"
        )
    return report


def _release(version: str) -> tuple[int, ...]:
    """major.minor.patch of a TensorRT version; the build number does not change the format."""
    parts = []
    for piece in version.split(".")[:3]:
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


def sm(compute_capability: str) -> str:
    return "sm_" + compute_capability.replace(".", "")


class ImageTags(NamedTuple):
    """The YY.MM tags of the compose images (.env): the build's nvcr.io/nvidia/tensorrt and
    the server's nvcr.io/nvidia/tritonserver."""

    tensorrt: str
    triton: str

    def differ(self) -> bool:
        return bool(self.tensorrt and self.triton) and self.tensorrt != self.triton


def plan_mismatch(
    report: BuildReport,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str,
    image_tags: ImageTags | None = None,
) -> str | None:
    """One line saying why the plan cannot load here, or None when it can.

    A plan deserializes only with the TensorRT release that built it, on a GPU of the same
    compute capability. When the TensorRT releases differ because .env names two image tags,
    a rebuild would only make the same plan again: the fix is one tag for both.
    """
    same_trt = report.builder == SERVING_BUILDER and _release(report.tensorrt_version) == _release(
        tensorrt_version
    )
    same_sm = report.compute_capability.strip() == compute_capability.strip()
    if same_trt and same_sm:
        return None
    hint = REBUILD_HINT
    if not same_trt and report.builder == SERVING_BUILDER and image_tags and image_tags.differ():
        hint = (
            f"the build image is tensorrt:{image_tags.tensorrt} (TRT_TAG) and the server "
            f"tritonserver:{image_tags.triton} (TRITON_TAG): set both to one YY.MM tag in .env, "
            "then `docker compose up` builds the plan again"
        )
    return (
        f"plan built with {report.builder} {report.tensorrt_version} on "
        f"{sm(report.compute_capability)} "
        f"({report.gpu_name}), this container has TensorRT {tensorrt_version} on "
        f"{sm(compute_capability)} ({gpu_name}): {hint}"
    )


def gpu_model_note(report: BuildReport, gpu_name: str) -> str | None:
    """Same architecture, other card: the plan loads, but its tactics were timed elsewhere."""
    if report.gpu_name.strip() == gpu_name.strip():
        return None
    return (
        f"plan was tuned on {report.gpu_name}, running on {gpu_name} "
        f"(same {sm(report.compute_capability)}): it loads, but {REBUILD_HINT} "
        "for the fastest kernels on this card"
    )


def _short(digest: str | None) -> str:
    return digest[:12] if digest else "none"


def rebuild_reason(plan: Path, inputs: BuildInputs) -> str | None:
    """Why the plan must be built again, or None when its report says it was built from
    exactly these inputs and the plan is the file the report describes."""
    report_path = report_path_for(plan)
    if not plan.is_file() or not report_path.is_file():
        return "no plan with a build report yet"
    try:
        report = read_report(report_path)
    except UserError:
        return f"{report_path.name} is not a report this kit can read"
    if sha256_file(plan) != report.plan_sha256:
        return f"{plan.name} is not the plan {report_path.name} describes"
    changes = [
        ("builder", report.builder, inputs.builder),
        ("TensorRT version", report.tensorrt_version, inputs.tensorrt_version),
        ("GPU", report.gpu_name, inputs.gpu_name),
        ("compute capability", report.compute_capability, inputs.compute_capability),
        ("precision", report.precision, inputs.precision),
        ("upsampling", report.upsample, inputs.upsample),
        ("ONNX model (sha256)", _short(report.onnx_sha256), _short(inputs.onnx_sha256)),
        ("plugin library (sha256)", _short(report.plugin_sha256), _short(inputs.plugin_sha256)),
    ]
    for what, built, wanted in changes:
        if built != wanted:
            return f"{what} changed: {built} -> {wanted}"
    if report.profile != inputs.profile:
        before, after = Profile.from_dict(report.profile), Profile.from_dict(inputs.profile)
        return (
            f"profile changed: {before.min}/{before.opt}/{before.max} -> "
            f"{after.min}/{after.opt}/{after.max}"
        )
    if inputs.checked and report.accuracy is None:
        return "the installed plan was never checked against ONNX Runtime"
    return None
