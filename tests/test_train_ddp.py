"""DDP on CPU: two gloo processes started like torchrun (RANK/WORLD_SIZE/MASTER_* env) train one
epoch and end with identical weights; the global batch is split between them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_brightness_dataset
from conftest import tiny_train_config as tiny_config

pytestmark = pytest.mark.slow  # end-to-end training runs

_WORKER = """
import json, sys, torch
from uniformerv2.train import TrainConfig, fit
result = fit(TrainConfig.from_dict(json.loads(open(sys.argv[1]).read())))
torch.save(result.model.state_dict(), sys.argv[2])
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_gloo_processes_end_with_identical_weights(tmp_path: Path) -> None:
    data = make_brightness_dataset(tmp_path / "data", num_train=8, num_val=3)
    cfg = tiny_config(data, tmp_path / "run", "optim.epochs=1", "optim.global_batch_size=4", "eval.batch_size=2")
    (tmp_path / "cfg.json").write_text(cfg.to_json())
    (tmp_path / "worker.py").write_text(_WORKER)
    port = _free_port()
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
        }
        cmd = [
            sys.executable,
            str(tmp_path / "worker.py"),
            str(tmp_path / "cfg.json"),
            str(tmp_path / f"rank{rank}.pt"),
        ]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # 8 videos, global batch 4 -> 2 per process, 2 steps each: 8 clips counted over both ranks
    assert len(records) == 1 and records[0]["train_clips"] == 8 and "val_top1" in records[0]
    test = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert test["count"] == 3
    assert not list((tmp_path / "run").glob("*.tmp"))
