"""What several test modules share: paths, small models, a running server's helpers."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
GOLDEN = REPO_ROOT / "tests" / "keras2onnx" / "golden"
