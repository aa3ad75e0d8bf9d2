"""Reading PyTorch zip archives (``torch.save`` files and TorchScript archives) without running anything.

``torch.load(weights_only=False)`` and ``torch.jit.load`` execute what an archive asks for: pickled
``__reduce__`` calls, or TorchScript ``__setstate__`` code. Here ``data.pkl`` is read with a
restricted :class:`pickle.Unpickler` instead:

- tensors are rebuilt from the archive's ``data/<key>`` records (``torch._utils._rebuild_tensor_v2``
  and the storage persistent ids), honouring the dtype of the storage and the archive's ``byteorder``;
- a few plain constructors (``collections.OrderedDict``, ``set``, ``torch.Size``, torch dtypes) are
  allowed because they only build data;
- any other class becomes an :class:`InertObject`: it records its constructor arguments and pickled
  state as plain attributes and has no behaviour (TorchScript ``__torch__.*`` modules become attribute
  maps whose tensors are read as a state dict);
- callables from modules that can reach the interpreter or the system (``builtins.exec``,
  ``os.system``, ``subprocess``...) are refused with a :class:`CheckpointError` naming the file.

In a TorchScript archive only ``__torch__.*`` classes are accepted besides the tensor rebuild
functions; anything else is refused.
"""

from __future__ import annotations

import collections
import io
import pickle
import pickletools
import sys
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import torch

from uniformerv2.errors import CheckpointError

#: Storage class names of torch.save's persistent ids -> element dtype.
_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128,
    "UntypedStorage": torch.uint8,
}

#: Modules whose callables could run code or touch the system: a pickle naming one is refused.
_DANGEROUS_MODULES = frozenset(
    "builtins __builtin__ os posix nt sys subprocess importlib runpy shutil socket pickle _pickle marshal "
    "types functools operator code codeop ctypes io webbrowser pty platform multiprocessing threading "
    "asyncio signal tempfile pathlib glob inspect gc weakref copyreg torch numpy.testing".split()
)
_SAFE_BUILTINS = {"set": set, "frozenset": frozenset, "slice": slice, "complex": complex, "bytearray": bytearray}


class InertObject:
    """Stand-in for a pickled instance of a class this loader does not run.

    Attributes:
        args: positional constructor arguments recorded from the pickle.
        state: the pickled state (``__setstate__`` argument), never interpreted.
        entries / elements: items of a pickled ``dict`` / ``list`` subclass, when there are any.
    """

    _pickled_name = "object"
    args: tuple[Any, ...]
    state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> InertObject:
        obj = super().__new__(cls)
        obj.__dict__["args"] = args
        obj.__dict__["state"] = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["args"] = args

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state

    def __setitem__(self, key: Any, value: Any) -> None:  # pickled dict subclasses (SETITEMS)
        self.__dict__.setdefault("entries", {})[key] = value

    def append(self, value: Any) -> None:  # pickled list subclasses (APPENDS)
        self.__dict__.setdefault("elements", []).append(value)

    def extend(self, values: Any) -> None:
        self.__dict__.setdefault("elements", []).extend(values)

    @property
    def attributes(self) -> dict[str, Any]:
        """The pickled state when it is a mapping of attribute names (TorchScript modules), else ``{}``."""
        state = self.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], Mapping):
            state = state[0]  # (dict, slots) form
        return dict(state) if isinstance(state, Mapping) else {}

    def __repr__(self) -> str:
        return f"<inert {self._pickled_name}>"


_INERT_CLASSES: dict[str, type[InertObject]] = {}


class UnsafePickle(pickle.UnpicklingError):
    """The pickle asks for a callable that could run code: the file is refused, never a damaged one."""


def _inert_class(module: str, name: str) -> type[InertObject]:
    key = f"{module}.{name}"
    if key not in _INERT_CLASSES:
        _INERT_CLASSES[key] = type(name, (InertObject,), {"_pickled_name": key, "__module__": __name__})
    return _INERT_CLASSES[key]


def _reconstructor(cls: Any, base: Any, state: Any = None) -> InertObject:
    """``copyreg._reconstructor`` for inert classes only (protocol 0/1 pickles of plain objects)."""
    if not (isinstance(cls, type) and issubclass(cls, InertObject)):
        raise UnsafePickle(f"copyreg._reconstructor applied to {cls!r}")
    return cls.__new__(cls)


class _Storage:
    """A storage of the archive, referenced by persistent id; bytes are read when a tensor needs them."""

    def __init__(self, data: torch.Tensor, dtype: torch.dtype) -> None:
        self.data = data
        self.dtype = dtype


def _rebuild_tensor(storage: _Storage, offset: int, size: Any, stride: Any, *_: Any) -> torch.Tensor:
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor refers to something that is not a storage of the archive")
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride) or int(offset) < 0:
        raise pickle.UnpicklingError("tensor with a negative size, stride or offset")
    extent = int(offset) + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) + 1 if all(size) else 0
    if extent > storage.data.numel():
        raise pickle.UnpicklingError("tensor extends past the end of its storage record")
    return storage.data.as_strided(size, stride, int(offset))


def _rebuild_parameter(data: torch.Tensor, *_: Any) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("a parameter that is not a tensor")
    return data


def _torch_size(*args: Any) -> torch.Size:
    return torch.Size(*args)


def _build_list(values: Any) -> list[Any]:
    """``torch.jit._pickle.build_*list``: a typed TorchScript list, as a plain list."""
    return list(values)


def _restore_type_tag(value: Any, _type_name: Any = None) -> Any:
    """``torch.jit._pickle.restore_type_tag``: the container itself (the type tag is dropped)."""
    return value


_TENSOR_FUNCTIONS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "Size"): _torch_size,
    ("torch.jit._pickle", "restore_type_tag"): _restore_type_tag,
    **{
        ("torch.jit._pickle", f"build_{kind}list"): _build_list
        for kind in ("int", "float", "double", "bool", "tensor", "str")
    },
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles ``data.pkl`` of a PyTorch zip archive; see the module docstring for what is allowed."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, source: str, torchscript: bool) -> None:
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix
        self._source = source
        self._torchscript = torchscript
        self._swap = _byteorder(archive, prefix) != sys.byteorder
        self._storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _TENSOR_FUNCTIONS:
            return _TENSOR_FUNCTIONS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module == "__torch__" or module.startswith("__torch__."):
            return _inert_class(module, name)
        if not self._torchscript:
            if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
                return _SAFE_BUILTINS[name]
            if module == "_codecs" and name == "encode":
                return _latin1_encode
            if module == "copyreg" and name in ("_reconstructor", "__newobj__"):
                return _reconstructor if name == "_reconstructor" else _newobj
            if module.split(".")[0] not in _DANGEROUS_MODULES or _is_torch_class(module, name):
                return _inert_class(module, name)
        kind = "TorchScript archive" if self._torchscript else "pickle"
        module = "builtins" if module == "__builtin__" else module
        raise UnsafePickle(f"the {kind} calls {module}.{name}")

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {str(pid)[:60]}")
        dtype, key = pid[1], str(pid[2])
        if not isinstance(dtype, torch.dtype):
            raise pickle.UnpicklingError(f"storage {key} has no known element type")
        if key not in self._storages:
            self._storages[key] = _Storage(self._read_storage(key, dtype), dtype)
        return self._storages[key]

    def _read_storage(self, key: str, dtype: torch.dtype) -> torch.Tensor:
        name = f"{self._prefix}data/{key}"
        try:
            info = self._archive.getinfo(name)
        except KeyError:
            raise pickle.UnpicklingError(f"storage record {name} is missing") from None
        itemsize = torch.empty((), dtype=dtype).element_size()
        if info.file_size % itemsize:
            raise pickle.UnpicklingError(f"storage record {name} is not a whole number of {dtype} elements")
        raw = torch.empty(info.file_size, dtype=torch.uint8)
        with self._archive.open(info) as handle:
            if cast(io.BufferedIOBase, handle).readinto(raw.numpy().data) != info.file_size:
                raise pickle.UnpicklingError(f"storage record {name} is cut short")
        if self._swap and itemsize > 1:
            raw = raw.view(-1, itemsize).flip(-1).reshape(-1)
        return raw.view(dtype)


def _is_torch_class(module: str, name: str) -> bool:
    """A class of an already imported torch module (``torch.device``, ``torch.optim.AdamW``), not a function."""
    if module != "torch" and not module.startswith("torch."):
        return False
    return isinstance(getattr(sys.modules.get(module), name, None), type)


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes`` (text only)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode with unexpected arguments")
    return text.encode("latin1")


def _newobj(cls: Any, *args: Any) -> InertObject:
    if not (isinstance(cls, type) and issubclass(cls, InertObject)):
        raise pickle.UnpicklingError(f"copyreg.__newobj__ applied to {cls!r}")
    return cls.__new__(cls, *args)


def _byteorder(archive: zipfile.ZipFile, prefix: str) -> str:
    try:
        text = archive.read(f"{prefix}byteorder").decode("ascii").strip()
    except KeyError:
        return "little"  # written by torch versions before the record existed: x86/ARM little-endian
    if text not in ("little", "big"):
        raise CheckpointError(f"unknown byte order {text!r}")
    return text


def _data_pickle(archive: zipfile.ZipFile) -> str | None:
    names = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") <= 1]
    return min(names, key=len) if names else None


def is_torchscript(archive: zipfile.ZipFile) -> bool:
    """A TorchScript archive carries its code (``code/``) and ``constants.pkl``."""
    return any(n.endswith("constants.pkl") or "/code/" in n for n in archive.namelist())


def load_archive(path: str | Path) -> tuple[Any, bool]:
    """The object pickled in a PyTorch zip archive, and whether the archive is TorchScript.

    Raises:
        CheckpointError: a corrupt zip, no ``data.pkl``, or a pickle that asks for something refused.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            pkl = _data_pickle(archive)
            if pkl is None:
                raise CheckpointError(f"{path}: not a checkpoint (a zip archive without data.pkl)")
            prefix = pkl[: -len("data.pkl")]
            torchscript = is_torchscript(archive)
            unpickler = RestrictedUnpickler(archive.read(pkl), archive, prefix, str(path), torchscript)
            return unpickler.load(), torchscript
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise CheckpointError(f"{path}: corrupt checkpoint archive ({_first_line(exc)})") from None
    except UnsafePickle as exc:
        raise CheckpointError(
            f"{path}: refused, the file needs arbitrary unpickling to load ({_first_line(exc)}); "
            "nothing in it was run - re-save its state dict or convert it to safetensors where you trust it"
        ) from None
    except (pickle.UnpicklingError, TypeError, ValueError, RuntimeError, AttributeError, IndexError, KeyError) as exc:
        raise CheckpointError(f"{path}: malformed checkpoint data ({_first_line(exc)})") from None


def module_tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """``(dotted name, tensor)`` for every tensor in an unpickled TorchScript module tree.

    Attribute maps give ``parent.child`` names (as ``state_dict()`` would); a custom pickled state
    that is not a mapping is walked under ``__state__.<index>``.
    """
    if isinstance(obj, torch.Tensor):
        yield prefix.rstrip("."), obj
    elif isinstance(obj, InertObject):
        attributes = obj.attributes
        if attributes:
            yield from module_tensors(attributes, prefix)
        elif obj.state is not None:
            yield from module_tensors(obj.state, prefix + "__state__.")
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from module_tensors(value, f"{prefix}{key}.")
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            yield from module_tensors(value, f"{prefix}{index}.")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def dangerous_global(data: bytes) -> str | None:
    """The first ``module.name`` a pickle would import that could run code, read off its opcodes
    without unpickling anything (for the message refusing a bare pickle); None when there is none
    or the data is not a readable pickle."""
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name == "GLOBAL":
                module, name = str(arg).split(" ", 1)
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                module, name = strings[-2], strings[-1]
            else:
                if isinstance(arg, str):
                    strings.append(arg)
                continue
            top = module.split(".")[0]
            if top in _DANGEROUS_MODULES and top != "torch" and not (top == "builtins" and name in _SAFE_BUILTINS):
                return f"{module}.{name}"
    except (ValueError, pickle.UnpicklingError, EOFError):
        return None
    return None
