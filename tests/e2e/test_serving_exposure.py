"""What the embedded server exposes by default."""

from __future__ import annotations

import ipaddress
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from unetkit.core import MODEL_NAME
from unetkit.triton import ADMIN_KEY_HEADER, TritonServer

GRPC_KEY_HEADER = f"triton-grpc-protocol-{ADMIN_KEY_HEADER}"


def test_model_repository_api_refused_without_the_key(triton: TritonServer) -> None:
    with grpcclient.InferenceServerClient(triton.grpc_url) as client:
        for call in (
            client.get_model_repository_index,
            lambda: client.unload_model(MODEL_NAME),
            client.get_log_settings,
            client.get_system_shared_memory_status,
            client.get_trace_settings,
        ):
            with pytest.raises(InferenceServerException) as caught:
                call()
            assert "restricted" in caught.value.message(), caught.value.message()
        with pytest.raises(InferenceServerException):
            client.get_model_repository_index(headers={GRPC_KEY_HEADER: "wrong-key"})
        assert client.is_model_ready(MODEL_NAME)


def test_model_repository_api_allowed_with_the_key(triton: TritonServer, admin_key: str) -> None:
    with grpcclient.InferenceServerClient(triton.grpc_url) as client:
        index = client.get_model_repository_index(
            headers={GRPC_KEY_HEADER: admin_key}, as_json=True
        )
    assert [m["name"] for m in index["models"]] == [MODEL_NAME]


def http_post(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=b"{}", headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def test_http_repository_api_needs_the_key(triton: TritonServer, admin_key: str) -> None:
    url = f"http://{triton.http_url}/v2/repository/index"
    assert http_post(url, {}) == 403
    assert http_post(url, {ADMIN_KEY_HEADER: admin_key}) == 200


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket in LISTEN state on `port`, from /proc/net/tcp{,6}."""
    found = set()
    for table, width in ((Path("/proc/net/tcp"), 8), (Path("/proc/net/tcp6"), 32)):
        for line in table.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:
                continue
            # The kernel prints each 32-bit word of the address in host (little-endian) order.
            raw = b"".join(bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, width, 8))
            found.add(str(ipaddress.ip_address(raw)))
    return found


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def test_server_listens_on_loopback_only(triton: TritonServer) -> None:
    for port in (triton.grpc_port, triton.http_port, triton.metrics_port):
        addresses = listening_addresses(port)
        assert addresses, f"nothing listens on port {port}"
        assert all(is_loopback(a) for a in addresses), (port, addresses)
