"""A model exported with --input-dtype float32 and served by the kit (make_repository, a real
Triton): it matches Keras on 16-bit data as closely as the converter's goldens do, and the
client maps a 16-bit TIFF onto its 0..1 scale without going through 8 bits.

The golden is the example U-Net's PROB computed by Keras itself on a 16-bit image
(golden/make_16bit_golden.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.helpers.serving import copy_model_directory, image_input, run_client
from unetkit.core import MODEL_NAME, OUTPUT_MASK, OUTPUT_PROB
from unetkit.pipelines import EXAMPLE_MODEL, make_repository
from unetkit.triton import TritonServer

GOLDEN = np.load(Path(__file__).parent / "golden" / "example_16bit.npz")
TOLERANCE = 1e-4  # max |PROB - Keras's PROB| of the converter's goldens (test_golden.py)


def keras_mask(prob: np.ndarray) -> np.ndarray:
    return prob[..., 0] > 0.5  # the example model's threshold


def decided(prob: np.ndarray) -> np.ndarray:
    """Pixels whose MASK cannot flip within the tolerance."""
    return np.abs(prob[..., 0] - 0.5) > TOLERANCE


@pytest.fixture(scope="module")
def float_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    repository = copy_model_directory(tmp_path_factory.mktemp("float_repository"))
    make_repository(EXAMPLE_MODEL, repository, precision="fp32", input_dtype="float32")
    log = tmp_path_factory.mktemp("float_triton_log") / "triton.log"
    with TritonServer.on_free_ports(repository, log_file=log) as server:
        yield server


def test_the_served_float32_model_matches_keras_on_16bit_data(float_server: TritonServer) -> None:
    image = GOLDEN["image"]  # uint16, the example model takes it as image / 65535
    with grpcclient.InferenceServerClient(float_server.grpc_url) as client:
        config = client.get_model_config(MODEL_NAME, as_json=True)["config"]
        assert config["input"][0]["data_type"] == "TYPE_FP32"
        pixels = (image.astype(np.float32) / 65535.0)[None, :, :, None]
        result = client.infer(MODEL_NAME, [image_input(pixels, "FP32")])
        with pytest.raises(InferenceServerException, match="FP32"):  # 8 bits are refused
            client.infer(MODEL_NAME, [image_input(np.zeros((1, 16, 16, 1), np.uint8))])
    prob, mask = result.as_numpy(OUTPUT_PROB)[0], result.as_numpy(OUTPUT_MASK)[0]
    keras = GOLDEN["prob"]
    assert np.max(np.abs(prob - keras)) <= TOLERANCE  # the goldens' tolerance
    sure = decided(keras)
    assert sure.mean() > 0.99
    np.testing.assert_array_equal(mask[sure] > 0, keras_mask(keras)[sure])


def test_the_client_sends_a_16bit_tiff_on_the_models_float_scale(
    float_server: TritonServer, tmp_path: Path
) -> None:
    tifffile.imwrite(tmp_path / "sixteen.tif", GOLDEN["image"])
    run = run_client("-u", float_server.grpc_url, "-o", tmp_path / "out", tmp_path / "sixteen.tif")
    assert run.returncode == 0, run.stderr
    assert "intensities 0..65535 (16-bit" in run.stdout and "0..1 (float32)" in run.stdout
    mask = tifffile.imread(tmp_path / "out" / "sixteen.mask.tif") > 0
    keras = GOLDEN["prob"]
    sure = decided(keras)
    np.testing.assert_array_equal(mask[sure], keras_mask(keras)[sure])
