"""The admin key from a file (a mounted Kubernetes Secret), as deploy/k8s passes it."""

from __future__ import annotations

import pytest

from unetkit.core import UserError
from unetkit.triton import ADMIN_KEY_FILE_ENV, admin_key


def test_the_key_is_read_from_the_file_the_variable_names(tmp_path):
    key_file = tmp_path / "admin-key"
    key_file.write_text("s3cret-from-a-secret\n")
    assert admin_key({ADMIN_KEY_FILE_ENV: str(key_file)}) == ("s3cret-from-a-secret", None)
    # the variable, when set, wins over the file
    assert admin_key({"UNETKIT_ADMIN_KEY": "env", ADMIN_KEY_FILE_ENV: str(key_file)}) == (
        "env",
        None,
    )


def test_a_missing_or_empty_key_file_is_refused_in_one_line(tmp_path):
    with pytest.raises(UserError, match=r"cannot read the admin key \(No such file") as info:
        admin_key({ADMIN_KEY_FILE_ENV: str(tmp_path / "absent")})
    assert "mount the Secret there" in str(info.value) and "\n" not in str(info.value)
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    with pytest.raises(UserError, match="the file is empty; put the key in it"):
        admin_key({ADMIN_KEY_FILE_ENV: str(empty)})
