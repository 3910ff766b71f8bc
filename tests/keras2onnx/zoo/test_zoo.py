"""Real-world U-Nets, built by their public libraries (specs.py, make_zoo.py), converted with no
flags and compared with Keras in ONNX Runtime: max |PROB - Keras| <= 1e-4 and MASK equal
wherever Keras's own decision is clear, at the canonical size and at a second size.

`make test` checks the committed models and one cached model per library and encoder family
(Spec.ci); `make test-models` (UNETKIT_ZOO=all) every model in every format its library saves.
Models that are not committed are built on first use into ~/.cache/unetkit/zoo/ (or
$UNETKIT_ZOO_CACHE), one folder per spec keyed by the spec, the generator and the pinned
Keras environment, with .venv-keras (or $UNETKIT_KERAS_PYTHON): a second run reuses them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.helpers import REPO_ROOT
from tests.keras2onnx.test_golden import check_outputs
from tests.keras2onnx.zoo.specs import COMMITTED, COMMITTED_FORMATS, SPECS, Spec
from unetkit.keras2onnx import convert

ALL = os.environ.get("UNETKIT_ZOO") == "all"
CACHE = Path(
    os.environ.get("UNETKIT_ZOO_CACHE", Path.home() / ".cache" / "unetkit" / "zoo")
).expanduser()
KERAS_PYTHON = Path(os.environ.get("UNETKIT_KERAS_PYTHON", REPO_ROOT / ".venv-keras/bin/python"))
MAKE_ZOO = Path(__file__).with_name("make_zoo.py")


@dataclass(frozen=True)
class Case:
    spec: Spec
    format: str  # e.g. "tfkeras.h5"

    @property
    def backend(self) -> str:
        return self.format.split(".")[0]

    @property
    def committed(self) -> bool:
        return self.spec.committed and self.format in COMMITTED_FORMATS

    @property
    def folder(self) -> Path:
        return COMMITTED if self.committed else CACHE / f"{self.spec.name}-{self.spec.key()}"

    def path(self, suffix: str) -> Path:
        return self.folder / f"{self.spec.name}__{self.backend}{suffix}"

    @property
    def model(self) -> Path:
        return self.path("." + self.format.split(".")[1])

    @property
    def id(self) -> str:
        return f"{self.spec.name}[{self.format}]"


def selected(everything: bool) -> list[Case]:
    """Every spec in every format, or what `make test` checks (committed, and Spec.ci)."""
    cases = [Case(spec, fmt) for spec in SPECS for fmt in spec.formats]
    return [c for c in cases if everything or c.format in ci_formats(c.spec)]


def ci_formats(spec: Spec) -> tuple[str, ...]:
    """What `make test` checks: the committed files, each committed model as Keras 3 saves it
    (.keras, built in the cache: quick), and Spec.ci."""
    committed = (*COMMITTED_FORMATS, "keras3.keras") if spec.committed else ()
    return (*committed, *spec.ci)


CASES = selected(ALL)


def build_missing(cases: list[Case]) -> None:
    """Run make_zoo.py once per backend for the specs whose files are not in the cache."""
    for backend in ("tfkeras", "keras3"):
        missing = sorted(
            {c.spec.name for c in cases if c.backend == backend and not c.path(".json").exists()}
        )
        formats = sorted({c.format for c in cases if c.backend == backend})
        if not missing:
            continue
        if not KERAS_PYTHON.exists():
            pytest.fail(f"{KERAS_PYTHON} is missing: run `make keras-venv` to build the zoo")
        command = [str(KERAS_PYTHON), str(MAKE_ZOO), "--backend", backend, "--cache"]
        command += ["--out", str(CACHE), "--names", ",".join(missing)]
        command += ["--formats", ",".join(formats)]
        if ALL:
            command.append("--reload-check")
        env = {**os.environ, "OMP_NUM_THREADS": "2"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"make_zoo.py failed:\n{done.stderr[-3000:]}")


@pytest.fixture(scope="session")
def zoo(request: pytest.FixtureRequest) -> None:
    """Build what the selected tests need and the cache lacks, once per session."""
    wanted = [
        item.callspec.params["case"]
        for item in request.session.items
        if hasattr(item, "callspec") and isinstance(item.callspec.params.get("case"), Case)
    ]
    build_missing([c for c in wanted if not c.committed])


def result_of(case: Case) -> dict:
    return json.loads(case.path(".json").read_text())


PARAMS = [
    pytest.param(c, id=c.id, marks=() if c.committed else pytest.mark.zoo_cache) for c in CASES
]
REPORT: dict[str, str] = {}  # case id -> outcome, for `make test-models`'s summary


@pytest.mark.parametrize("case", PARAMS)
def test_the_library_model_converts_and_matches_keras(zoo: None, case: Case) -> None:
    result = result_of(case)
    assert "error" not in result, f"make_zoo.py failed: {result.get('error')}"
    expected_error = case.spec.library_errors.get(case.backend)
    if "build_error" in result or expected_error:
        # The library's own failure: it must still fail, with the error the README reports.
        assert expected_error is not None, f"the library failed: {result.get('build_error')}"
        assert expected_error in result.get("build_error", ""), "the library builds it now"
        REPORT[case.id] = f"not built: the library raises {result['build_error'][:160]}"
        return
    saved = next(f for f in result["files"] if f["format"] == case.format)
    assert "error" not in saved, saved["error"]
    goldens = np.load(case.path(".npz"))
    with convert(case.model) as conversion:
        model = conversion.to_model()
        info = conversion.info
    if case.spec.sizes is not None:
        assert info.describe_sizes() == case.spec.sizes
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    worst = 0.0
    for i in (0, 1):
        image = goldens[f"image_{i}"]
        assert info.check_size(image.shape[1], image.shape[2]) is None
        # The goldens' logits are kept within +-0.5 (make_zoo.calibrate_output), so a softmax
        # over three classes has more near-ties than the kit's own goldens: 95% decided.
        check_outputs(session, image, goldens[f"prob_{i}"], decided_at_least=0.95)
        (prob,) = session.run(["PROB"], {"IMAGE": image})
        worst = max(worst, float(np.abs(prob - goldens[f"prob_{i}"]).max()))
    sizes = f"{goldens['image_0'].shape[1]} and {goldens['image_1'].shape[1]}"
    reload = [f.get("reload_max_abs_diff") for f in result["files"] if f["format"] == case.format]
    REPORT[case.id] = f"ok: max |dPROB| {worst:.1e} at {sizes}; serves {info.describe_sizes()}" + (
        f"; Keras's own reload differs by {reload[0]:.1e}" if reload and reload[0] else ""
    )


def test_every_library_and_encoder_family_is_in_make_test() -> None:
    ci = selected(everything=False)
    assert {c.spec.library for c in ci} == {s.library for s in SPECS}
    assert {c.spec.family for c in ci} >= {s.family for s in SPECS if s.family}
    assert {c.backend for c in ci} == {"tfkeras", "keras3"}


@pytest.mark.zoo_cache
def test_a_resnet_encoder_serves_multiples_of_32_and_says_31_runs_too(zoo: None) -> None:
    """segmentation-models' default (None, None, 3) input with a ResNet encoder takes 31, 32,
    63, 64, ...: the export serves the multiples of 32 and says what else runs."""
    case = next(c for c in CASES if c.id == "sm_unet_resnet18[tfkeras.h5]")
    with convert(case.model) as conversion:
        assert conversion.info.fixed_size is None
        assert conversion.info.describe_sizes() == "H a multiple of 32, W a multiple of 32"
        notes = conversion.notes
    assert len(notes) == 2 and all("also runs at" in n and "31, 63" in n for n in notes)


def write_report(path: Path) -> str:
    """The outcome of every case (`make test-models` writes it to out/zoo_report.md)."""
    lines = [
        f"- `{case.id}`: {REPORT.get(case.id, 'FAILED (see the test output) or not selected')}"
        for case in CASES
    ]
    passed = sum(1 for case in CASES if REPORT.get(case.id, "").startswith("ok"))
    text = f"{passed} of {len(CASES)} model files convert and match Keras.\n\n" + "\n".join(lines)
    path.parent.mkdir(exist_ok=True)
    path.write_text(text + "\n")
    return text


if __name__ == "__main__":  # list the cases: python -m tests.keras2onnx.zoo.test_zoo
    for case in CASES:
        print(case.id, "committed" if case.committed else case.folder, file=sys.stdout)
