"""Mutated model files: the converter succeeds or raises UserError, never anything else."""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import GOLDEN
from unetkit.core import UserError
from unetkit.keras2onnx import export_onnx

MODELS = GOLDEN / "models"
SOURCES = [
    MODELS / name
    for name in (
        "sequential_tf.h5",
        "extras_k3.keras",
        "valid_tf.h5",
        "zhixuhao_k3.keras",
        "nested_tf.h5",  # a nested model and a shared Sequential block
        "nested_k3.keras",
        "tf_functions_tf.h5",  # TFOpLambda: flat inbound nodes, tensors in keyword arguments
    )
]
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI stays reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 1 << 40) | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)


@contextmanager
def scratch(name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory) / name


def converts_or_refuses(path: Path) -> None:
    try:
        export_onnx(path)
    except UserError as e:
        assert "\n" not in str(e)


@FUZZ
@given(source=st.sampled_from(SOURCES), fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_files(source: Path, fraction: float) -> None:
    data = source.read_bytes()
    with scratch(source.name) as path:
        path.write_bytes(data[: int(len(data) * fraction)])
        converts_or_refuses(path)


@FUZZ
@given(
    source=st.sampled_from(SOURCES),
    flips=st.lists(
        st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255)),
        min_size=1,
        max_size=8,
    ),
)
def test_flipped_bytes(source: Path, flips: list[tuple[float, int]]) -> None:
    data = bytearray(source.read_bytes())
    for where, mask in flips:
        data[int(where * len(data))] ^= mask
    with scratch(source.name) as path:
        path.write_bytes(bytes(data))
        converts_or_refuses(path)


def json_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            paths += json_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths += json_paths(item, (*prefix, index))
    return paths


def replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = replace(value[head], tuple(rest), new)
    return copy


def read_config(path: Path) -> Any:
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json"))
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["model_config"])


def write_config(source: Path, path: Path, config: Any) -> None:
    text = json.dumps(config)
    if source.suffix == ".keras":
        with zipfile.ZipFile(source) as src, zipfile.ZipFile(path, "w") as dst:
            for item in src.infolist():
                data = text.encode() if item.filename == "config.json" else src.read(item.filename)
                dst.writestr(item, data)
        return
    shutil.copy(source, path)
    with h5py.File(path, "r+") as f:
        f.attrs["model_config"] = text


@FUZZ
@given(source=st.sampled_from(SOURCES), choice=st.data(), new=json_values)
def test_mutated_config(source: Path, choice: st.DataObject, new: Any) -> None:
    config = read_config(source)
    path = choice.draw(st.sampled_from(json_paths(config)))
    with scratch(source.name) as target:
        write_config(source, target, replace(config, path, new))
        converts_or_refuses(target)
