"""checkov 3.3.30 (make policy-venv) on the rendered gpu, cpu and loadtest overlays: every
failed check must be one deploy/k8s/checkov-accepted.yaml lists, on the objects it names,
with its reason; the server-facing checks of the Pod Security Standards and the network
policies must all pass."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.manifests import K8S, kustomize
from tests.helpers import REPO_ROOT

CHECKOV = REPO_ROOT / ".venv-policy" / "bin" / "checkov"
OVERLAYS = ("gpu", "cpu", "loadtest")
ACCEPTED = yaml.safe_load((K8S / "checkov-accepted.yaml").read_text())
# Root, UID, pod security context, seccomp, capabilities, NET_RAW, secrets as files,
# read-only root filesystem, NetworkPolicy for every pod: never accepted.
MUST_PASS = {
    "CKV_K8S_22",
    "CKV_K8S_23",
    "CKV_K8S_28",
    "CKV_K8S_29",
    "CKV_K8S_31",
    "CKV_K8S_35",
    "CKV_K8S_37",
    "CKV_K8S_40",
    "CKV2_K8S_6",
}


@functools.cache
def checkov_report(directory: Path) -> dict:
    assert CHECKOV.is_file(), "checkov is missing: run `make policy-venv` (.venv-policy)"
    for overlay in OVERLAYS:
        rendered = kustomize(K8S / "overlays" / overlay)
        assert rendered.returncode == 0, rendered.stderr
        (directory / f"{overlay}.yaml").write_text(rendered.stdout)
    result = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", "kubernetes", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr  # 1: some check failed
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return checkov_report(tmp_path_factory.mktemp("rendered"))


def failures(report: dict) -> dict[str, set[str]]:
    """check id -> names of the objects it fails on."""
    found: dict[str, set[str]] = {}
    for failed in report["results"]["failed_checks"]:
        name = failed["resource"].split(".")[2]  # Kind.namespace.name[.labels...]
        found.setdefault(failed["check_id"], set()).add(name)
    return found


def test_checkov_read_every_rendered_object(report: dict) -> None:
    summary = report["summary"]
    assert summary["parsing_errors"] == 0 and summary["checkov_version"] == "3.3.30"
    assert summary["passed"] > 400


def test_only_the_accepted_checks_fail_and_each_still_does(report: dict) -> None:
    found = failures(report)
    unexpected = {c: sorted(n) for c, n in found.items() if c not in ACCEPTED}
    assert unexpected == {}, f"failed checks not in checkov-accepted.yaml: {unexpected}"
    for check, entry in ACCEPTED.items():
        assert found.get(check) == set(entry["objects"]), (check, sorted(found.get(check, ())))
        assert entry["why"].strip() and entry["name"].strip()


def test_the_server_facing_checks_pass_and_are_never_accepted(report: dict) -> None:
    passed = {p["check_id"] for p in report["results"]["passed_checks"]}
    assert passed >= MUST_PASS
    assert not MUST_PASS & set(failures(report))
    assert not MUST_PASS & set(ACCEPTED)
