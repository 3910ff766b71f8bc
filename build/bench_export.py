"""Benchmark the converter on the full-width zhixuhao U-Net (base 64, 256x256x1, ~31M params).

    .venv/bin/python build/bench_export.py [--keras-python .venv-keras/bin/python]

Keras (from the dev environment) builds the model and saves it as .h5 and .keras in a
temporary directory; each export (unetkit.keras2onnx.write_onnx, what build/export_onnx.py
runs) then runs in a fresh interpreter, so its peak RSS (ru_maxrss) is the converter's own.
Prints one JSON line per format.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras-python", default=str(ROOT / ".venv-keras" / "bin" / "python"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        h5, keras_file = Path(tmp) / "unet64.h5", Path(tmp) / "unet64.keras"
        script = MAKE_MODEL.format(
            golden=str(ROOT / "tests" / "keras2onnx" / "golden"), h5=str(h5), keras=str(keras_file)
        )
        made = subprocess.run(
            [args.keras_python, "-c", script], capture_output=True, text=True, check=False
        )
        if made.returncode != 0:
            print(
                f"error: Keras could not build the model:\n{made.stderr[-2000:]}", file=sys.stderr
            )
            return 1
        params = int(made.stdout.strip().splitlines()[-1])
        weights_mib = params * 4 / 2**20
        for source in (h5, keras_file):
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
