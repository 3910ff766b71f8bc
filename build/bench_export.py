"""Benchmark the converter on the full-width zhixuhao U-Net (base 64, 256x256x1, ~31M params),
or on a model of the zoo built by its library (--zoo NAME, e.g. sm_linknet_inceptionv3).

    .venv/bin/python build/bench_export.py [--keras-python .venv-keras/bin/python] [--zoo NAME]

Keras (from the dev environment) builds the model and saves it as .h5 and .keras in a
temporary directory (a zoo model: tf-keras .h5 and Keras 3 .keras, by
tests/keras2onnx/zoo/make_zoo.py); each export (unetkit.keras2onnx.write_onnx, what
build/export_onnx.py runs) then runs in a fresh interpreter, so its peak RSS (ru_maxrss) is
the converter's own. Prints one JSON line per format.
Targets: under 10 s and under twice the weights' size in memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MAKE_MODEL = """
import sys
sys.path.insert(0, {golden!r})
import numpy as np
import keras, tf_keras
from make_goldens import zhixuhao_unet
model = zhixuhao_unet(tf_keras, (256, 256, 1), base=64)
model.save({h5!r})
twin = zhixuhao_unet(keras, (256, 256, 1), base=64)
twin.set_weights(model.get_weights())
twin.save({keras!r})
print(model.count_params())
"""

MEASURE = """
import json, resource, sys, time
start = time.perf_counter()
from unetkit.keras2onnx import write_onnx
imported = time.perf_counter()
baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
write_onnx(sys.argv[1], sys.argv[2])
done = time.perf_counter()
print(json.dumps({
    "import_s": imported - start,
    "convert_and_write_s": done - imported,
    "baseline_rss_mib": baseline_kib / 1024,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def make_unet64(keras_python: str, tmp: Path) -> tuple[list[Path], int]:
    h5, keras_file = tmp / "unet64.h5", tmp / "unet64.keras"
    script = MAKE_MODEL.format(
        golden=str(ROOT / "tests" / "keras2onnx" / "golden"), h5=str(h5), keras=str(keras_file)
    )
    made = subprocess.run([keras_python, "-c", script], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        raise RuntimeError(made.stderr[-2000:])
    return [h5, keras_file], int(made.stdout.strip().splitlines()[-1])


def make_zoo_model(keras_python: str, tmp: Path, name: str) -> tuple[list[Path], int]:
    """The zoo model NAME as tf-keras .h5 and Keras 3 .keras, built by its library."""
    sources, params = [], 0
    for backend, fmt in (("tfkeras", "h5"), ("keras3", "keras")):
        command = [keras_python, str(ROOT / "tests/keras2onnx/zoo/make_zoo.py"), "--backend"]
        command += [backend, "--out", str(tmp), "--names", name, "--formats", f"{backend}.{fmt}"]
        made = subprocess.run(command, capture_output=True, text=True, check=False)
        result = json.loads((tmp / f"{name}__{backend}.json").read_text())
        if made.returncode != 0 or "params" not in result:
            raise RuntimeError(made.stderr[-2000:] or str(result))
        sources.append(tmp / f"{name}__{backend}.{fmt}")
        params = result["params"]
    return sources, params


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras-python", default=str(ROOT / ".venv-keras" / "bin" / "python"))
    parser.add_argument("--zoo", metavar="NAME", help="a zoo model (tests/keras2onnx/zoo/specs.py)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        try:
            if args.zoo:
                sources, params = make_zoo_model(args.keras_python, tmp, args.zoo)
            else:
                sources, params = make_unet64(args.keras_python, tmp)
        except RuntimeError as e:
            print(f"error: Keras could not build the model:\n{e}", file=sys.stderr)
            return 1
        weights_mib = params * 4 / 2**20
        for source in sources:
            out = Path(tmp) / f"{source.name}.onnx"
            measured = subprocess.run(
                [sys.executable, "-c", MEASURE, str(source), str(out)],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            result = json.loads(measured.stdout)
            result.update(
                file=source.name,
                format=source.suffix,
                params=params,
                weights_mib=round(weights_mib, 1),
                file_mib=round(source.stat().st_size / 2**20, 1),
                onnx_mib=round(out.stat().st_size / 2**20, 1),
                total_s=round(result["import_s"] + result["convert_and_write_s"], 2),
                peak_over_weights=round(result["peak_rss_mib"] / weights_mib, 2),
                peak_above_baseline_over_weights=round(
                    (result["peak_rss_mib"] - result["baseline_rss_mib"]) / weights_mib, 2
                ),
            )
            print(
                json.dumps(
                    {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
