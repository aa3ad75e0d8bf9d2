"""run_sharded(): sharding, resume, crash-cut lines, merge; two real ranks over gloo via the CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import uniformerv2.inference.sharding as sharding
from uniformerv2.inference.sharding import read_records, run_sharded, shard_file

REPO = Path(__file__).resolve().parents[1]


class CountingJob:
    """A job that 'fails' on names containing 'bad' and remembers what it was asked to do."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, todo: list[str]):
        self.calls.append(list(todo))
        for video in todo:
            yield {"video": video, "error": "broken"} if "bad" in video else {"video": video, "value": len(video)}


def test_single_process_writes_merges_and_resumes(tmp_path) -> None:
    paths = [f"v{i}.mp4" for i in range(5)] + ["bad.mp4"]
    out = tmp_path / "preds.json"
    job = CountingJob()
    summary = run_sharded(paths, job, out)
    assert (summary.rank, summary.world_size, summary.processed, summary.skipped) == (0, 1, 6, 0)
    assert summary.failed == [("bad.mp4", "broken")] and summary.any_failed
    assert [r["video"] for r in json.loads(out.read_text())] == paths
    assert shard_file(out, 0).name == "preds.rank0.jsonl"

    again = run_sharded(paths, job, out)
    assert job.calls[-1] == ["bad.mp4"]  # successes skipped, the failure retried
    assert (again.processed, again.skipped) == (1, 5)
    assert len(shard_file(out, 0).read_text().splitlines()) == 1 + 7  # the settings header, then the records


def test_resume_after_a_crash_mid_line(tmp_path) -> None:
    out = tmp_path / "o.json"
    shard = shard_file(out, 0)
    header = json.dumps({"fingerprint": {}})
    shard.write_text(header + "\n" + json.dumps({"video": "a", "value": 1}) + "\n" + '{"video": "b", "val')
    job = CountingJob()
    run_sharded(["a", "b", "c"], job, out)
    assert job.calls == [["b", "c"]]
    assert set(read_records(out)) == {"a", "b", "c"}
    assert all(json.loads(line) for line in shard.read_text().splitlines()[3:])


def test_two_ranks_in_sequence_shard_and_rank0_merges(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sharding, "barrier", lambda world: None)
    paths = [f"v{i}" for i in range(7)]
    out = tmp_path / "all.json"
    jobs = {1: CountingJob(), 0: CountingJob()}
    written: list[list[dict]] = []
    one = run_sharded(paths, jobs[1], out, rank=1, world_size=2, write=written.append)
    assert jobs[1].calls == [paths[1::2]] and one.records is None and written == []
    zero = run_sharded(paths, jobs[0], out, rank=0, world_size=2, write=written.append)
    assert jobs[0].calls == [paths[0::2]]
    assert [r["video"] for r in zero.records] == paths and written == [zero.records]
    # Resumable with another world size: nothing left to do.
    job = CountingJob()
    assert run_sharded(paths, job, out, rank=0, world_size=3).processed == 0 and job.calls == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_under_two_gloo_ranks(tmp_path, tiny_model_dir, make_test_video) -> None:
    videos = [make_test_video(f"v{i}.mp4", num_frames=10 + i) for i in range(3)] + [tmp_path / "missing.mp4"]
    out = tmp_path / "preds.json"
    port = _free_port()
    env_base = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }
    argv = [
        sys.executable,
        "-m",
        "uniformerv2",
        "predict",
        *map(str, videos),
        "--model",
        str(tiny_model_dir),
        "--json",
        str(out),
        "--workers",
        "0",
        "--views",
        "1x1",
    ]
    procs = [
        subprocess.Popen(
            argv,
            env={**env_base, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in (0, 1)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes == [1, 1], results  # rank 0 sees the merged failure, rank 1 its own (missing.mp4 is index 3)
    records = json.loads(out.read_text())
    assert [r["video"] for r in records] == list(map(str, videos))
    assert "predictions" in records[0] and records[3]["error"] == "file does not exist"
    assert str(videos[0]) in results[0][0] and str(videos[1]) in results[1][0]
    assert shard_file(out, 0).exists() and shard_file(out, 1).exists()


def test_cli_under_torchrun_needs_an_output(capsys, monkeypatch, tiny_model_dir, make_test_video) -> None:
    from uniformerv2.cli.main import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["predict", str(make_test_video()), "--model", str(tiny_model_dir)]) == 2
    assert "under torchrun" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["out.json", "sub/out.csv"])
def test_shard_file_names(tmp_path, name) -> None:
    assert shard_file(tmp_path / name, 3) == (tmp_path / name).with_name(Path(name).stem + ".rank3.jsonl")


def test_runtime_autocast_has_one_convention() -> None:
    import torch

    from uniformerv2.runtime import amp_dtype, autocast

    assert amp_dtype(None) is None and amp_dtype("none") is None
    assert amp_dtype("bf16") is amp_dtype("bfloat16") is amp_dtype(torch.bfloat16) is torch.bfloat16
    assert amp_dtype("fp16") is amp_dtype(torch.float16) is torch.float16
    with pytest.raises(ValueError, match="bf16 or fp16"):
        amp_dtype("fp8")
    layer = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with autocast("cpu", "bf16"):
        assert layer(x).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "none"):
        assert layer(x).dtype == torch.float32


def test_runtime_resolve_device(monkeypatch) -> None:
    import torch

    from uniformerv2.errors import DeviceError
    from uniformerv2.runtime import dist_env, resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device(None).type in ("cpu", "mps")
        with pytest.raises(DeviceError, match="'cuda' is not available"):
            resolve_device("cuda")
    for bad in ("garbage", "tpu", "meta", "cuda:x"):
        with pytest.raises(DeviceError, match=repr(bad)):
            resolve_device(bad)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert dist_env() == (3, 4, 1)
