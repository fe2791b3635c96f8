"""A real S3-compatible server for tests (moto's standalone server, from the test extras), and a look into it.

Tests talk to it over HTTP with the same client genkeep uses; nothing of the client is mocked. Every test gets a
bucket of its own. The AWS_* variables given to genkeep point at this server only, with throwaway credentials, so
no test can reach a real account whatever the machine's own AWS settings say.
"""

from __future__ import annotations

import io
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx
from PIL import Image

from tests.support.processes import free_port, stop
from tests.support.waiting import wait_for

ACCESS_KEY = "genkeep-test-access-key"
SECRET_KEY = "genkeep-test-secret-key-not-a-real-one"


@contextmanager
def s3_server(log_path: Path) -> Iterator[str]:
    """moto_server on a free 127.0.0.1 port; yields its endpoint URL once it answers."""
    port = free_port()
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"moto_server exited: {log_path.read_text()[-2000:]}")
        try:
            return httpx.get(endpoint, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(answers, timeout=60, interval=0.1, message="moto_server to answer")
        yield endpoint
    finally:
        stop(process)
        log.close()


def aws_env(endpoint: str) -> dict[str, str]:
    """The standard AWS variables that point genkeep (or any S3 client) at the test server."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": "us-east-1",
        # No profile, session token or config file of the machine's own may take part.
        "AWS_CONFIG_FILE": "/nonexistent/genkeep-test-aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/genkeep-test-aws-credentials",
    }


AWS_VARIABLES_CLEARED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                         "AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION")


def client(endpoint: str) -> Any:
    return boto3.session.Session().client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY,
                                          aws_secret_access_key=SECRET_KEY, region_name="us-east-1")


def new_bucket(endpoint: str) -> str:
    name = f"genkeep-test-{secrets.token_hex(6)}"
    client(endpoint).create_bucket(Bucket=name)
    return name


def keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    """Every key in the bucket under the prefix, as another client sees them."""
    pages = client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def object_bytes(endpoint: str, bucket: str, key: str) -> bytes:
    data: bytes = client(endpoint).get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def is_whole_image(data: bytes) -> bool:
    """Whether the bytes are a complete picture: every pixel decodes."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        return True
    except (OSError, SyntaxError):
        return False
