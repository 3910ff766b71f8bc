"""docker-compose.yml, .env and the scripts its services run, without a Docker engine.

The compose file is checked by a real compose implementation (Debian's docker-compose
1.29, `config` parses, interpolates and validates against the compose schema without an
engine); the service scripts run here up to the point where a GPU would be needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO_ROOT
from tests.helpers.engine import installed_plan
from unetkit.cli import build_engine, build_service
from unetkit.core import UserError
from unetkit.triton import admin_key, free_ports, pytriton_server_dir, tritonserver_command

COMPOSE = REPO_ROOT / "docker-compose.yml"
NVIDIA_ENTRYPOINT = "/opt/nvidia/nvidia_entrypoint.sh"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UNETKIT_", "TRT_", "TRITON_"))}
    env.update(extra)
    return env


def compose_config(
    project: Path = REPO_ROOT, *options: str, **env: str
) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: apt-get install -y docker-compose"
    compose_file = str(project / "docker-compose.yml")
    return subprocess.run(
        [binary, "--project-directory", str(project), "-f", compose_file, *options, "config"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(**env),
    )


def host_ports(service: dict) -> set[tuple[str, int, int]]:
    """docker-compose 1.29 writes ports as HOST_IP:PUBLISHED:TARGET/tcp."""
    ports = set()
    for entry in service["ports"]:
        host_ip, published, target = str(entry).removesuffix("/tcp").rsplit(":", 2)
        ports.add((host_ip, int(published), int(target)))
    return ports


def dotenv() -> dict[str, str]:
    pairs = {}
    for line in (REPO_ROOT / ".env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


@pytest.fixture(scope="module")
def config() -> dict:
    result = compose_config(REPO_ROOT, "--profile", "loadtest")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_env_pins_one_tag_for_build_and_triton_and_holds_no_key():
    env = dotenv()
    assert env["TRT_TAG"] == env["TRITON_TAG"]
    assert len(env["TRT_TAG"].split(".")) == 2
    assert "UNETKIT_ADMIN_KEY" not in env


def test_build_then_triton_on_the_same_gpu(config):
    services = config["services"]
    tag = dotenv()["TRT_TAG"]
    assert services["build"]["build"]["args"]["TRT_TAG"] == tag
    assert services["triton"]["image"] == f"nvcr.io/nvidia/tritonserver:{tag}-py3"
    assert services["triton"]["depends_on"] == {
        "build": {"condition": "service_completed_successfully"}
    }
    devices = [
        services[s]["deploy"]["resources"]["reservations"]["devices"] for s in ("build", "triton")
    ]
    assert devices[0] == devices[1] and devices[0][0]["capabilities"] == ["gpu"]
    assert services["build"]["environment"]["UNETKIT_UPSAMPLE"] == "plugin"


def test_triton_is_published_on_loopback_only_and_checked_for_readiness(config):
    triton = config["services"]["triton"]
    assert host_ports(triton) == {
        ("127.0.0.1", 8000, 8000),
        ("127.0.0.1", 8001, 8001),
        ("127.0.0.1", 8002, 8002),
    }
    assert "/v2/health/ready" in " ".join(triton["healthcheck"]["test"])
    assert triton["shm_size"]
    assert triton["environment"]["UNETKIT_ADMIN_KEY"] == ""


def test_binding_to_the_network_takes_an_explicit_setting():
    result = compose_config(REPO_ROOT, UNETKIT_BIND="0.0.0.0", UNETKIT_GRPC_PORT="9001")
    assert result.returncode == 0, result.stderr
    ports = host_ports(yaml.safe_load(result.stdout)["services"]["triton"])
    assert ("0.0.0.0", 9001, 8001) in ports and ("0.0.0.0", 8000, 8000) in ports


def test_loadtest_belongs_to_its_profile(config):
    loadtest = config["services"]["loadtest"]
    assert loadtest["profiles"] == ["loadtest"]
    assert loadtest["depends_on"] == {"triton": {"condition": "service_healthy"}}
    assert loadtest["command"] == ["--triton-url", "triton:8001"]


def test_the_parser_rejects_an_invalid_file(tmp_path):
    shutil.copy(REPO_ROOT / ".env", tmp_path / ".env")
    text = COMPOSE.read_text().replace(
        "condition: service_completed_successfully", "condition: when_it_feels_like_it"
    )
    (tmp_path / "docker-compose.yml").write_text(text)
    result = compose_config(tmp_path)
    assert result.returncode != 0
    assert "when_it_feels_like_it" in result.stderr


def test_missing_tags_stop_compose_with_the_fix(tmp_path):
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    result = compose_config(tmp_path)
    assert result.returncode != 0
    assert "set TRT_TAG in .env" in result.stderr


def test_build_service_steps():
    steps = build_service.build_steps({"TRT_TAG": "26.10"})
    assert [s[0] for s in steps[:2]] == ["cmake", "cmake"]
    assert "-DCMAKE_CUDA_ARCHITECTURES=native" in steps[0]
    # Only the container's TensorRT (Debian layout under /usr) is searched.
    assert "-DTENSORRT_ROOT=/usr" in steps[0]
    export, engine = steps[2], steps[3]
    assert export[1:] == [
        "build/export_onnx.py",
        "example/unet_example.h5",
        "-o",
        "model_repository/unet/1/model.onnx",
    ]
    assert engine[1] == "build/build_engine.py"
    # the build_engine command line is one the tool accepts
    args = build_engine.parse_args(engine[2:])
    assert (args.precision, args.upsample) == ("fp16", "plugin")
    assert args.plugin_lib == Path("plugins/build-trt26.10/libunetkit_plugins.so")
    assert args.output == Path("model_repository/unet/1/model.plan")
    # `docker compose up` builds again only when an input changed; caches per TensorRT and GPU.
    assert args.if_changed and args.timing_cache_dir == Path("out/timing-caches")

    own = build_service.build_steps(
        {
            "TRT_TAG": "26.10",
            "UNETKIT_KERAS_MODEL": "models/mine.keras",
            "UNETKIT_EXPORT_ARGS": "--mean 0.5 --std 0.25",
            "UNETKIT_PRECISION": "fp32",
            "UNETKIT_UPSAMPLE": "native",
            "UNETKIT_PROFILE_MAX": "16x1024x1024",
        }
    )
    assert len(own) == 2  # no plugin to compile
    assert own[0][2] == "models/mine.keras" and own[0][-4:] == ["--mean", "0.5", "--std", "0.25"]
    args = build_engine.parse_args(own[1][2:])
    assert (args.precision, args.upsample, args.plugin_lib) == ("fp32", "native", None)
    assert args.max == "16x1024x1024" and args.min is None
    with pytest.raises(UserError, match="UNETKIT_PRECISION='int8': use one of fp16, fp32"):
        build_service.build_steps({"TRT_TAG": "26.10", "UNETKIT_PRECISION": "int8"})
    with pytest.raises(UserError, match=r"TRT_TAG='': set the TensorRT image's YY\.MM tag"):
        build_service.build_steps({})


def dockerfile_entrypoint(dockerfile: str) -> list[str]:
    prefix = "ENTRYPOINT "
    lines = (REPO_ROOT / dockerfile).read_text().splitlines()
    entrypoints = [line.removeprefix(prefix) for line in lines if line.startswith(prefix)]
    assert len(entrypoints) == 1, dockerfile
    return json.loads(entrypoints[0])


def test_both_gpu_services_start_through_nvidias_entrypoint(config):
    """/opt/nvidia/nvidia_entrypoint.sh enables CUDA forward compatibility (older
    data-center drivers) and ends in `exec "$@"`: the kit's command runs after it."""
    services = config["services"]
    assert services["triton"]["entrypoint"] == [
        NVIDIA_ENTRYPOINT,
        "python3",
        "-m",
        "unetkit.cli.triton_service",
    ]
    # The build service keeps its image's entry point, which starts with NVIDIA's too.
    assert "entrypoint" not in services["build"]
    assert services["build"]["build"]["dockerfile"] == "docker/build.Dockerfile"
    assert dockerfile_entrypoint("docker/build.Dockerfile") == [
        NVIDIA_ENTRYPOINT,
        "/opt/unetkit/docker/run_as_owner.sh",
        "python3",
        "-m",
        "unetkit.cli.build_service",
    ]


def test_the_container_builds_the_plugin_in_its_own_folder_per_tag(config):
    """Never the host's plugins/build (its CMakeCache.txt names host paths); Triton loads
    the library that the build service of the same tag compiled."""
    services = config["services"]
    steps = build_service.build_steps(services["build"]["environment"])
    build_dir = steps[0][steps[0].index("-B") + 1]
    assert build_dir == f"plugins/build-trt{dotenv()['TRT_TAG']}"
    assert steps[1] == ["cmake", "--build", build_dir, "--parallel"]
    assert services["triton"]["environment"]["UNETKIT_PLUGIN_LIB"] == (
        f"/opt/unetkit/{build_dir}/libunetkit_plugins.so"
    )

    other = compose_config(REPO_ROOT, TRT_TAG="26.11", TRITON_TAG="26.11")
    assert other.returncode == 0, other.stderr
    services = yaml.safe_load(other.stdout)["services"]
    steps = build_service.build_steps(services["build"]["environment"])
    assert steps[0][steps[0].index("-B") + 1] == "plugins/build-trt26.11"
    assert "build-trt26.11/" in services["triton"]["environment"]["UNETKIT_PLUGIN_LIB"]


def test_the_build_image_keeps_its_own_numpy():
    """numpy 1.26 is the CPU route's pin (its python backend stub); the TensorRT image's
    own numpy is what its TensorRT bindings were built with."""
    text = (REPO_ROOT / "docker" / "build.Dockerfile").read_text()
    install = text[text.index("pip install") :].split("\n\n")[0]
    assert "h5py==" in install and "numpy" not in install


def test_tritonserver_command_restricts_admin_apis_behind_the_key(tmp_path):
    plugin = tmp_path / "libunetkit_plugins.so"
    command = tritonserver_command(tmp_path, [plugin], "s3cret")
    assert command[0] == "tritonserver"
    assert "--model-control-mode=none" in command
    assert (
        "--grpc-restricted-protocol=model-repository,shared-memory,trace,logging:"
        "unetkit-admin-key=s3cret"
    ) in command
    assert (
        "--http-restricted-api=model-repository,shared-memory,trace,logging:unetkit-admin-key=s3cret"
    ) in command
    assert f"--backend-config=tensorrt,plugins={plugin}" in command
    assert not any("plugins=" in c for c in tritonserver_command(tmp_path, [], "k"))


def test_admin_key_comes_from_the_environment_or_is_random():
    assert admin_key({"UNETKIT_ADMIN_KEY": " given "}) == ("given", None)
    first, note = admin_key({})
    second, _ = admin_key({"UNETKIT_ADMIN_KEY": ""})
    assert len(first) >= 32 and first != second and "random key" in note


def host_tools(bin_dir: Path, gpu_line: str) -> None:
    """An nvidia-smi answering like a GPU host (this machine has none), and the real
    tritonserver of the nvidia-pytriton wheel under the name the container gives it."""
    bin_dir.mkdir()
    nvidia_smi = bin_dir / "nvidia-smi"
    nvidia_smi.write_text(f"#!/bin/sh\necho '{gpu_line}'\n")
    nvidia_smi.chmod(0o755)
    (bin_dir / "tritonserver").symlink_to(pytriton_server_dir() / "bin" / "tritonserver")


def run_entrypoint(
    tmp_path: Path, gpu_line: str, trt_version: str, *triton_args: str, **extra_env: str
):
    env = clean_env(
        **extra_env,
        PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
        TRT_VERSION=trt_version,
        UNETKIT_MODEL_REPOSITORY=str(tmp_path / "models"),
        UNETKIT_PLUGIN_LIB=str(tmp_path / "libunetkit_plugins.so"),
        UNETKIT_ADMIN_KEY="k3y",
        PYTHONPATH=str(REPO_ROOT),
    )
    host_tools(tmp_path / "bin", gpu_line)
    return subprocess.run(
        [sys.executable, "-m", "unetkit.cli.triton_service", *triton_args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_triton_entrypoint_checks_the_plan_then_starts_triton(tmp_path):
    """The plan check passes, and the real Triton 2.51 accepts every flag of the command
    line; it then stops at the model, since the wheel's Triton has no TensorRT backend."""
    plugin = tmp_path / "libunetkit_plugins.so"
    plugin.write_bytes(b"\x7fELF plugin")
    installed_plan(tmp_path / "models" / "unet" / "1", plugin=plugin)
    shutil.copy(
        REPO_ROOT / "model_repository" / "unet" / "config.pbtxt", tmp_path / "models" / "unet"
    )
    http, grpc, metrics = free_ports(3)
    result = run_entrypoint(
        tmp_path,
        "NVIDIA H100 80GB HBM3, 9.0",
        "10.13.3.9",
        # Later flags win: keep this test's server on loopback and free ports.
        "--http-address=127.0.0.1",
        f"--http-port={http}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc}",
        "--metrics-address=127.0.0.1",
        f"--metrics-port={metrics}",
    )
    log = result.stdout + result.stderr
    assert "Usage:" not in log and "Unrecognized" not in log, log
    assert "MODE_NONE" in log and str(tmp_path / "models") in log, log
    # Triton parsed config.pbtxt and got as far as looking for the TensorRT backend.
    assert "failed to load 'unet' version 1" in log, log
    assert "unable to find backend library for backend 'tensorrt'" in log, log
    assert result.returncode != 0


def test_triton_entrypoint_stops_on_a_plan_from_another_gpu(tmp_path):
    installed_plan(tmp_path / "models" / "unet" / "1")
    result = run_entrypoint(tmp_path, "NVIDIA L40S, 8.9", "10.13.3.9")
    assert result.returncode == 2
    assert result.stdout == ""  # tritonserver never started
    assert result.stderr.strip().splitlines() == [
        "error: plan built with TensorRT 10.13.3.9 on sm_90 (NVIDIA H100 80GB HBM3), this "
        "container has TensorRT 10.13.3.9 on sm_89 (NVIDIA L40S): rebuild with "
        "`docker compose run --rm build`"
    ]


def test_a_plan_from_another_image_tag_says_to_align_the_tags(tmp_path):
    """compose passes both .env tags to Triton: a TensorRT mismatch they cause is named."""
    installed_plan(tmp_path / "models" / "unet" / "1")
    result = run_entrypoint(
        tmp_path, "NVIDIA H100 80GB HBM3, 9.0", "10.14.1.48", TRT_TAG="25.08", TRITON_TAG="25.10"
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: plan built with TensorRT 10.13.3.9 on sm_90")
    assert line.endswith(
        "the build image is tensorrt:25.08 (TRT_TAG) and the server tritonserver:25.10 "
        "(TRITON_TAG): set both to one YY.MM tag in .env, then `docker compose up` builds the "
        "plan again"
    )


def test_triton_gets_both_tags_from_env(config):
    environment = config["services"]["triton"]["environment"]
    assert environment["TRT_TAG"] == environment["TRITON_TAG"] == dotenv()["TRT_TAG"]


def test_container_images_pin_the_versions_of_pyproject():
    import re

    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for requirement in [
        *project["dependencies"],
        *(r for extra in project["optional-dependencies"].values() for r in extra),
    ]:
        name, _, version = requirement.partition("==")
        pins[re.sub(r"\[.*\]", "", name).lower()] = version
    for dockerfile in ("docker/build.Dockerfile", "docker/loadtest.Dockerfile"):
        text = (REPO_ROOT / dockerfile).read_text()
        installed = re.findall(r"([A-Za-z][\w.-]*)(?:\[\w+\])?\"?==([\w.]+)", text)
        assert installed, dockerfile
        for name, version in installed:
            if name.lower() in pins:
                assert pins[name.lower()] == version, f"{dockerfile}: {name}=={version}"
