"""The plugin's GPU harness (plugins/tests/gpu_harness), built by CMake beside the plugin.

CI has no GPU, so the harness runs with --no-gpu: it loads the real libunetkit_plugins.so,
takes its creator through getCreators, walks the formats and makes every case's plugin up to
enqueue (create, configure, serialize, re-create for runtime, attach, onShapeChange). The
enqueue and element comparison run on a GPU (`make plugins-harness`, results in
plugins/results/). Skipped with one line where the TensorRT headers are absent.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.plugins.cmake import PluginBuild

# 7 shapes x 64 scale pairs + 2 tiny shapes x 3 extreme scales, per accepted combination.
CASES_PER_COMBINATION = 7 * 64 + 2 * 3
COMBINATIONS = [
    "fp32 kLINEAR -> fp32 kLINEAR",
    "fp16 kLINEAR -> fp16 kLINEAR",
    "fp16 kHWC8 -> fp16 kHWC8",
]


def run_harness(build: PluginBuild, *args: str) -> subprocess.CompletedProcess[str]:
    harness = build.directory / "unetkit_plugin_gpu_harness"
    return subprocess.run([str(harness), *args], capture_output=True, text=True, timeout=120)


def test_the_harness_drives_every_accepted_format_up_to_enqueue(
    plugin_build: PluginBuild, tmp_path: Path
) -> None:
    result = run_harness(
        plugin_build, "--plugin", str(plugin_build.plugin), "--no-gpu", "--out", str(tmp_path)
    )

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "one creator registered on load, withdrawn by getCreators" in lines[0]
    accepted = lines[lines.index("supportsFormatCombination accepts 3 combinations:") + 1 :][:3]
    assert [line.strip() for line in accepted] == COMBINATIONS
    total = CASES_PER_COMBINATION * len(COMBINATIONS)
    assert f"no-GPU run (enqueue skipped): {total} cases, 0 failed" in result.stdout
    rows = (tmp_path / "cases.tsv").read_text().splitlines()
    assert len(rows) == total + 1
    assert "fp16 kHWC8 -> fp16 kHWC8, N=3 C=13 H=7 W=9, scale 2x3\t0\t0\tprepared" in rows
    assert '"failed_cases": 0' in (tmp_path / "summary.json").read_text()


def test_the_harness_refuses_a_library_without_the_plugin_in_one_line(
    plugin_build: PluginBuild,
) -> None:
    assert plugin_build.plugin.is_file()
    kernels_only = plugin_build.directory / "libunetkit_kernels.so"

    result = run_harness(plugin_build, "--plugin", str(kernels_only), "--no-gpu")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: loading the library registered 0 creators; expected exactly one "
        "(its load-time registration)"
    ]


def test_the_harness_names_a_bad_argument_and_its_usage(plugin_build: PluginBuild) -> None:
    assert plugin_build.plugin.is_file()
    missing = run_harness(plugin_build, "--no-gpu")
    unknown = run_harness(plugin_build, "--plugin", str(plugin_build.plugin), "--scales", "9")

    assert missing.returncode == unknown.returncode == 2
    assert missing.stderr.startswith(
        "error: --plugin is required; usage: unetkit_plugin_gpu_harness"
    )
    assert unknown.stderr.startswith("error: unknown or incomplete argument '--scales'")
