"""How long the owner waits for a 1 MB image: from the data folder vs from an S3-compatible bucket.

`.venv/bin/python bench/storage_serve.py [--requests N] [--write]` starts moto_server (the test extras' S3 server)
and two `genkeep serve` processes, one per storage, each with one task whose result is a 1 MB PNG, then fetches
that result through genkeep's /files URL with the owner's cookie: one at a time (latency) and 8 at a time
(throughput). For the redirect alternative it also times the bucket's own presigned URL fetched directly, the
least a redirect could cost (the redirect itself adds a round trip to genkeep). It also times the two client
libraries considered, boto3 (genkeep's) and obstore (if installed: `pip install obstore`), getting and putting
1 MB and importing. --write puts the tables in docs/benchmarks.md, in their own section.
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import sections
from PIL import Image

from genkeep.config import Settings
from genkeep.engines.base import EngineContext, EngineJob, EngineResult, RunToCompletionEngine

BENCH_DIR = Path(__file__).resolve().parent
DOC = BENCH_DIR.parent / "docs" / "benchmarks.md"
SECTION = "<!-- storage_serve: written by bench/storage_serve.py -->"
IMAGE_BYTES = 1024 * 1024
CONCURRENCY = 8


def kept_section(doc: Path = DOC) -> str:
    """This script's section of `doc` (from its marker to the next section), for `make bench` to keep ("" if
    none)."""
    return sections.kept_section(SECTION, doc)


class MegabyteEngine(RunToCompletionEngine):
    """Makes a PNG of noise of about 1 MB (noise does not compress, so the size is what was asked)."""

    name = "bench-megabyte"
    rerun_safe = True

    def run(self, job: EngineJob, ctx: EngineContext) -> EngineResult:
        side = int((IMAGE_BYTES / 3) ** 0.5)
        out = io.BytesIO()
        Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "PNG", compress_level=0)
        return EngineResult(out.getvalue())


def create_engine(_settings: Settings) -> MegabyteEngine:
    return MegabyteEngine()


def timed(fetch: Callable[[], int], count: int) -> list[float]:
    """Milliseconds per call, after a few warm-up calls."""
    for _ in range(5):
        fetch()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        fetch()
        times.append((time.perf_counter() - started) * 1000)
    return times


def throughput(fetch: Callable[[], int], count: int) -> float:
    """Images per second with CONCURRENCY fetching at once."""
    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(lambda _: fetch(), range(count)))
    return count / (time.perf_counter() - started)


def row(name: str, times: list[float], per_second: float | None, size: int) -> str:
    ordered = sorted(times)
    p90 = ordered[int(len(ordered) * 0.9) - 1]
    rate = f"{per_second:.0f}" if per_second is not None else ""
    return (f"| {name} | {size / 1_048_576:.2f} MB | {statistics.median(times):.1f} | {p90:.1f} | {rate} |")


def compare_clients(s3: Any, endpoint: str, bucket: str, count: int) -> list[str]:
    """boto3 and obstore, each getting and putting 1 MB against the same bucket, and the time to import each."""
    data = os.urandom(IMAGE_BYTES)
    s3.put_object(Bucket=bucket, Key="clients/one", Body=data)

    def get_boto3() -> int:
        return len(s3.get_object(Bucket=bucket, Key="clients/one")["Body"].read())

    def put_boto3() -> int:
        s3.put_object(Bucket=bucket, Key="clients/two", Body=data)
        return IMAGE_BYTES

    def import_ms(module: str) -> float:
        code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
        output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        return float(output) * 1000

    rows = [f"| boto3 | {statistics.median(timed(get_boto3, count)):.1f} | "
            f"{statistics.median(timed(put_boto3, count)):.1f} | {import_ms('boto3'):.0f} |"]
    try:
        import obstore
        from obstore.store import S3Store
    except ImportError:
        return [*rows, "| obstore | not installed (`pip install obstore` to compare) | | |"]
    store = S3Store(bucket, endpoint=endpoint, region="us-east-1", access_key_id="bench",
                    secret_access_key="bench-secret", client_options={"allow_http": True})

    def get_obstore() -> int:
        return len(obstore.get(store, "clients/one").bytes())

    def put_obstore() -> int:
        obstore.put(store, "clients/three", data)
        return IMAGE_BYTES

    return [*rows, f"| obstore | {statistics.median(timed(get_obstore, count)):.1f} | "
                   f"{statistics.median(timed(put_obstore, count)):.1f} | {import_ms('obstore'):.0f} |"]


def measure_studio(name: str, env: dict[str, str], work: Path, count: int) -> tuple[str, str]:
    """Serve one task's 1 MB result through genkeep; the table row and the image's /files URL."""
    sys.path.insert(0, str(BENCH_DIR))
    from server import Server

    with Server(env, work / f"{name}.log") as server, httpx.Client(base_url=server.base_url, timeout=30) as owner:
        task = owner.post("/api/tasks", data={"type": "CREATE", "prompt": "one megabyte"}).json()
        deadline = time.monotonic() + 60
        while (task := owner.get(f"/api/tasks/{task['id']}").json())["status"] != "completed":
            if task["status"] == "failed" or time.monotonic() > deadline:
                raise RuntimeError(f"the {name} task did not complete: {task}")
            time.sleep(0.1)
        url = task["image_url"]
        size = len(owner.get(url).content)

        def fetch() -> int:
            answer = owner.get(url)
            assert answer.status_code == 200 and len(answer.content) == size
            return size

        times = timed(fetch, count)
        cookies = owner.cookies
        clients = [httpx.Client(base_url=server.base_url, cookies=cookies, timeout=30) for _ in range(CONCURRENCY)]
        slots = iter(range(10**9))

        def fetch_concurrently() -> int:
            client = clients[next(slots) % CONCURRENCY]
            return len(client.get(url).content)

        per_second = throughput(fetch_concurrently, count)
        for client in clients:
            client.close()
        return row(f"genkeep /files, {name}", times, per_second, size), url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--write", action="store_true", help="put the table in docs/benchmarks.md")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(BENCH_DIR))
    import boto3
    from server import bench_env, free_port

    work = Path(tempfile.mkdtemp(prefix="genkeep-storage-bench-"))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    aws = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret",
           "AWS_REGION": "us-east-1"}
    moto_log = open(work / "moto.log", "wb")  # noqa: SIM115 - the child owns it
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=moto_log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        bucket = f"genkeep-bench-{secrets.token_hex(4)}"
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench",
                          aws_secret_access_key="bench-secret", region_name="us-east-1")
        s3.create_bucket(Bucket=bucket)
        rows = []
        for name, storage_url in (("data folder", ""), ("S3 bucket (moto_server)", f"s3://{bucket}/bench")):
            data_dir = work / name.split()[0]
            env = bench_env(f"sqlite:///{data_dir / 'genkeep.db'}", data_dir, GENKEEP_WORKERS="1",
                            GENKEEP_ENGINE="storage_serve:create_engine", GENKEEP_STORAGE_URL=storage_url, **aws)
            line, url = measure_studio(name, env, work, args.requests)
            rows.append(line)
            print(line, flush=True)
        # The redirect alternative's floor: the bucket's presigned URL, fetched straight from the bucket.
        key = f"bench/tasks/{url.split('/')[2]}/{url.split('/')[3]}"
        link = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=600)
        with httpx.Client(timeout=30) as direct:
            size = len(direct.get(link).content)
            times = timed(lambda: len(direct.get(link).content), args.requests)
        rows.append(row("presigned URL, straight from the bucket (a redirect's floor)", times, None, size))
        print(rows[-1], flush=True)
        clients = compare_clients(s3, endpoint, bucket, min(args.requests, 100))
        print("\n".join(clients), flush=True)
    finally:
        moto.terminate()
        moto.wait(timeout=30)
        moto_log.close()
    text = "\n".join([
        SECTION,
        "## Serving a 1 MB image: data folder vs S3",
        f"`bench/storage_serve.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: one `genkeep serve` per "
        "storage (SQLite, one worker), the owner fetching one task's 1 MB PNG result through `/files` with its "
        f"cookie over a kept-alive connection, {args.requests} times one at a time, then {args.requests} with "
        f"{CONCURRENCY} at a time. The bucket is moto_server on the same machine (a Python server: a real S3 "
        "or MinIO answers faster, over a network slower).",
        "",
        "| how | size | p50 ms | p90 ms | images/s with 8 at once |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
        "genkeep streams a bucket's images through `/files` rather than redirecting to a presigned URL: one origin "
        "for the pages' Content-Security-Policy and the owner's cookie, the same owner check, and a URL the "
        "browser can cache (README, Images in object storage). The client libraries against the same bucket, "
        "median ms of one call on 1 MB:",
        "",
        "| client | GET 1 MB ms | PUT 1 MB ms | import ms |",
        "|---|---:|---:|---:|",
        *clients,
        "",
    ])
    if args.write:
        current = DOC.read_text() if DOC.exists() else ""
        kept = current.split(SECTION)[0].rstrip()
        DOC.write_text(f"{kept}\n\n{text}" if kept else text)
        print(f"written to {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
