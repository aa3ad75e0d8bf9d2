"""Untrusted checkpoint files: nothing inside a file runs, odd files get one line naming them.

Every hostile archive is loaded in a fresh interpreter with a hang guard; the time of the load
itself is measured there, and the test checks what the load printed and which files it created.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_model

from uniformerv2 import CheckpointError, load_weights
from uniformerv2.weights import from_ours, read_state_dict

# TorchScript modules whose __setstate__ runs when torch.jit.load reads the archive.
_SCRIPTED = """
from typing import Tuple
import torch


class Printing(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("weight", torch.arange(6.0).reshape(2, 3))

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, bool]:
        return (self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, bool]) -> None:
        print("CODE FROM THE ARCHIVE RAN")
        self.weight = state[0]
        self.training = state[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Spinning(Printing):
    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, bool]) -> None:
        n = 0
        while n >= 0:
            n = n + 1
        self.weight = state[0]
        self.training = state[1]
"""

_LOADER = """
import json, sys, time
from uniformerv2.errors import CheckpointError
from uniformerv2.weights import read_state_dict
for path in sys.argv[1:]:
    print("BEGIN " + path, flush=True)
    start = time.perf_counter()
    try:
        result = {k: v.tolist() for k, v in read_state_dict(path).items()}
    except CheckpointError as exc:
        result = {"error": str(exc)}
    result["seconds"] = time.perf_counter() - start
    print("RESULT " + json.dumps(result), flush=True)
"""


class _WritesFile:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def _rewrite_data_pkl(source: Path, dest: Path, payload: bytes) -> Path:
    """A copy of a torch archive whose data.pkl is replaced by ``payload``."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            out.writestr(info, payload if info.filename.endswith("/data.pkl") else src.read(info))
    return dest


def _hostile_archives(root: Path) -> dict[str, Path]:
    """TorchScript archives whose __setstate__ prints / spins, and archives whose pickle runs a command."""
    (root / "hostile_modules.py").write_text(_SCRIPTED)
    sys.path.insert(0, str(root))
    try:
        import hostile_modules

        paths = {"printing": root / "printing.pt", "spinning": root / "spinning.pt"}
        torch.jit.script(hostile_modules.Printing()).save(str(paths["printing"]))
        torch.jit.script(hostile_modules.Spinning()).save(str(paths["spinning"]))
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("hostile_modules", None)
    torch.save({"weight": torch.ones(2)}, root / "plain.pt")
    payload = pickle.dumps({"weight": _WritesFile(str(root / "created_by_archive"))}, protocol=2)
    for name, source in (("command_torchscript", paths["printing"]), ("command_plain", root / "plain.pt")):
        paths[name] = _rewrite_data_pkl(source, root / f"{name}.pt", payload)
    return paths


@pytest.fixture(scope="module")
def hostile_loads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict, str]]:
    """Each hostile archive read in one fresh interpreter (hang guard 120 s): its result and what it printed."""
    root = tmp_path_factory.mktemp("hostile")
    paths = _hostile_archives(root)
    done = subprocess.run(
        [sys.executable, "-c", _LOADER, *map(str, paths.values())],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
    )
    out: dict[str, tuple[dict, str]] = {}
    for name, path in paths.items():
        block = done.stdout.split("BEGIN " + str(path) + "\n", 1)[1].split("BEGIN ", 1)[0]
        printed, _, result = block.partition("RESULT ")
        assert result, f"the loader crashed on {name}: {done.stderr[-2000:]}"
        out[name] = (json.loads(result), printed)
    out["created"] = ({"exists": (root / "created_by_archive").exists()}, "")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["printing", "spinning"])
def test_torchscript_setstate_never_runs(hostile_loads, kind) -> None:
    result, printed = hostile_loads[kind]
    assert result["seconds"] < 2.0
    assert printed == ""
    if "error" not in result:  # loaded: the buffer's values are readable, under its pickled-state name
        assert list(result.values())[0] == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["command_torchscript", "command_plain"])
def test_archive_whose_pickle_runs_a_command_is_refused(hostile_loads, kind) -> None:
    result, printed = hostile_loads[kind]
    assert result["seconds"] < 2.0 and printed == ""
    assert "error" in result and f"{kind}.pt: refused" in result["error"] and "system" in result["error"]
    assert "\n" not in result["error"] and "\x1b" not in result["error"]
    assert not hostile_loads["created"][0]["exists"]


def test_openai_style_archive_tensors_match_torch_jit_state_dict(tmp_path) -> None:
    """The restricted reader gives the same tensors as the TorchScript runtime for a plain module tree."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    model[1].register_buffer("table", torch.arange(10, dtype=torch.int64).reshape(2, 5)[:, ::2])
    path = tmp_path / "tree.pt"
    torch.jit.script(model).save(str(path))
    expected = model.state_dict()
    got = read_state_dict(path)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key].dtype == value.dtype and torch.equal(got[key], value), key


def test_big_endian_archive_is_byte_swapped(tmp_path) -> None:
    values = {"w": torch.randn(3, 4), "i": torch.arange(5, dtype=torch.int32), "h": torch.randn(2).half()}
    little = tmp_path / "little.pt"
    torch.save(values, little)
    big = tmp_path / "big.pt"
    with zipfile.ZipFile(little) as src, zipfile.ZipFile(big, "w", zipfile.ZIP_STORED) as out:
        sizes = {}
        pkl = next(n for n in src.namelist() if n.endswith("data.pkl"))
        for key, tensor in zip(("0", "1", "2"), values.values(), strict=True):
            sizes[key] = tensor.element_size()
        for info in src.infolist():
            data = src.read(info)
            leaf = info.filename.rsplit("/", 1)[-1]
            if info.filename.endswith("byteorder"):
                data = b"big"
            elif "/data/" in info.filename and leaf in sizes:
                size = sizes[leaf]
                data = b"".join(data[i : i + size][::-1] for i in range(0, len(data), size))
            out.writestr(info, data)
        assert pkl
    got = read_state_dict(big)
    for key, value in values.items():
        assert torch.equal(got[key], value), key


def test_corrupt_zip_names_the_file(tmp_path) -> None:
    good = tmp_path / "good.pt"
    torch.save({"w": torch.randn(64, 64)}, good)
    data = bytearray(good.read_bytes())
    cut = tmp_path / "cut.pt"
    cut.write_bytes(bytes(data[: len(data) // 2]))
    flipped = tmp_path / "flipped.pt"
    offset = data.find(b"data/0") + 200
    data[offset : offset + 16] = bytes(16)
    flipped.write_bytes(bytes(data))
    for path in (cut, flipped):
        with pytest.raises(CheckpointError) as info:
            read_state_dict(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("payload", [b"garbage", pickle.dumps({"w": 1})[:-3]], ids=["not-a-pickle", "truncated"])
def test_damaged_pickle_in_an_archive_is_called_damaged_not_unsafe(tmp_path, payload) -> None:
    good = tmp_path / "good.pt"
    torch.save({"w": torch.randn(4)}, good)
    damaged = _rewrite_data_pkl(good, tmp_path / "damaged.pt", payload)
    with pytest.raises(CheckpointError) as info:
        read_state_dict(damaged)
    message = str(info.value)
    assert message.startswith(f"{damaged}: malformed checkpoint data (") and "refused" not in message


def test_storage_smaller_than_the_tensor_is_refused(tmp_path) -> None:
    source = tmp_path / "ok.pt"
    torch.save({"w": torch.ones(4)}, source)
    with zipfile.ZipFile(source) as src:
        pkl = next(n for n in src.namelist() if n.endswith("data.pkl"))
        original = src.read(pkl)
    payload = original.replace(b"K\x04\x85", b"M\x00\x10\x85")  # size (4,) -> (4096,)
    assert payload != original
    hostile = _rewrite_data_pkl(source, tmp_path / "short.pt", payload)
    with pytest.raises(CheckpointError, match="short.pt"):
        read_state_dict(hostile)


# ------------------------------------------------------------------------- MMAction2 training files


_FAKE_MMENGINE = """
import os


class HistoryBuffer:
    def __init__(self, values):
        self.values = values

    def __setstate__(self, state):
        open(os.environ["UNIFORMERV2_TEST_MARKER"], "w").write("state ran")
        self.__dict__.update(state)


class ConfigDict(dict):
    pass
"""


def _mmaction2_training_checkpoint(tmp_path: Path, model) -> Path:
    """An ``epoch_N.pth`` as mmengine writes it: meta, state_dict, message_hub, optimizer, schedulers.

    Objects of classes from a throwaway module are pickled by reference.
    """
    module_dir = tmp_path / "throwaway"
    module_dir.mkdir()
    (module_dir / "fake_mmengine_logging.py").write_text(_FAKE_MMENGINE)
    sys.path.insert(0, str(module_dir))
    try:
        import fake_mmengine_logging as fake

        sd = from_ours(model.state_dict(), "mmaction2")
        checkpoint = {
            "meta": {"epoch": 3, "iter": 120, "mmengine_version": "0.7.4", "time": "20230613_045423"},
            "state_dict": sd,
            "message_hub": {
                "log_scalars": {"train/loss": fake.HistoryBuffer([0.5, 0.4])},
                "runtime_info": fake.ConfigDict(epoch=3),
            },
            "optimizer": {"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-5}]},
            "param_schedulers": [{"last_epoch": 3}],
        }
        path = tmp_path / "epoch_3.pth"
        torch.save(checkpoint, path)
    finally:
        sys.path.remove(str(module_dir))
        sys.modules.pop("fake_mmengine_logging", None)
    return path


def test_mmaction2_training_checkpoint_loads_without_running_its_classes(tmp_path, monkeypatch) -> None:
    model = make_tiny_model()
    path = _mmaction2_training_checkpoint(tmp_path, model)
    marker = tmp_path / "marker"
    monkeypatch.setenv("UNIFORMERV2_TEST_MARKER", str(marker))
    fresh = make_tiny_model(seed=5)
    load_weights(fresh, path)  # the classes' module is importable again here: still nothing runs
    monkeypatch.syspath_prepend(str(tmp_path / "throwaway"))
    load_weights(fresh, path)
    assert not marker.exists()
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


@pytest.mark.parametrize(
    ("content", "looks_like"),
    [
        (b"", "an empty file"),
        (b"abseiling\nair drumming\n", "a text file"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(64), "an MP4/MOV video"),
        (b"\x1a\x45\xdf\xa3" + bytes(60), "a Matroska/WebM video"),
        (b"\x89PNG\r\n\x1a\n" + bytes(40), "a PNG image"),
        (bytes(range(7, 250)) * 4, "unrecognised binary data"),
    ],
)
def test_non_checkpoint_files_say_what_they_look_like(tmp_path, content, looks_like) -> None:
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        read_state_dict(path)
    assert str(info.value) == f"{path}: not a checkpoint ({looks_like})"


def test_refusal_messages_are_plain_one_line(tmp_path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("this would run code",))

    path = tmp_path / "evil.pth"
    buffer = io.BytesIO()
    torch.save({"model_state": {"x": torch.zeros(1)}, "hook": Evil()}, buffer)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert message.startswith(f"{path}: refused") and "builtins.print" in message
    assert "\n" not in message and "\x1b" not in message
    assert textwrap.shorten(message, 400) == message


def test_torchscript_typed_containers_are_plain_data(tmp_path) -> None:
    """List[int] / Dict[str, Tensor] attributes are pickled through torch.jit._pickle builders."""
    source = tmp_path / "typed.py"
    source.write_text(
        "from typing import Dict, List\nimport torch\n\n\nclass Typed(torch.nn.Module):\n"
        "    sizes: List[int]\n    table: Dict[str, torch.Tensor]\n\n    def __init__(self) -> None:\n"
        "        super().__init__()\n        self.sizes = [1, 2, 3]\n        self.table = {'a': torch.arange(3.0)}\n"
        "        self.scales = [0.5, 2.0]\n\n"
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:\n        return x\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import typed

        torch.jit.script(typed.Typed()).save(str(tmp_path / "typed.pt"))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("typed", None)
    got = read_state_dict(tmp_path / "typed.pt")
    assert list(got) == ["table.a"] and torch.equal(got["table.a"], torch.arange(3.0))


@pytest.mark.parametrize("protocol", [2, 4])
def test_bare_pickle_that_runs_a_command_is_refused_in_our_words(tmp_path, recwarn, protocol) -> None:
    """A plain (non-zip) pickle: torch's weights-only error (which suggests weights_only=False) never
    reaches the user, nor its protocol warnings; the message says what the pickle calls."""
    target = tmp_path / "created"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"state_dict": _WritesFile(str(target))}, protocol=protocol))
    with pytest.raises(CheckpointError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert message.startswith(f"{path}: refused") and f"the pickle calls {os.system.__module__}.system" in message
    assert "weights_only" not in message and not target.exists()
    assert not [w for w in recwarn if "pickle" in str(w.message)]
