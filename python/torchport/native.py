"""The C++ runtime from Python: ``NativeModel`` over ``torchport._native``, and
the path of the ``torchport-run`` binary.

    >>> m = NativeModel("model.pt", threads=2)
    >>> (logits,) = m.run(torch.rand(4, 1, 8, 8))
"""

from __future__ import annotations

import json
import shutil
import sysconfig
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

# torch first: it loads libtorch from its own wheel, and the extension then
# binds to that same copy rather than resolving one through its rpath alone.
import torch

from torchport._ext import load_native
from torchport.errors import NativeUnavailableError
from torchport.manifest import Manifest

BINARY = "torchport-run"


def binary_path() -> Path:
    """Where ``torchport-run`` is: beside this interpreter's scripts, else on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / BINARY
    if beside.exists():
        return beside
    found = shutil.which(BINARY)
    if found:
        return Path(found)
    raise NativeUnavailableError(f"{BINARY} is not installed (looked in {beside.parent} and on PATH)")


def read_tensor_file(path: Union[str, Path], artifact: Union[str, Path, None] = None
                     ) -> Union[list[torch.Tensor], dict[str, torch.Tensor]]:
    """Reads a torch.save file of tensors (or an .npy array) with the C++ runtime's reader,
    which executes nothing: a list of tensors, or a dict by input name. With the
    ``artifact`` the file is for, CSV rows too when its manifest has ``features``
    (the runtime's ``read_input_file``, as ``torchport-run predict --input``)."""
    manifest = None
    if artifact is not None:
        from torchport.manifest import read_manifest

        manifest = read_manifest(artifact)
    if manifest is None or not manifest.features:  # only features make CSV rows readable
        return load_native().read_tensor_file(str(path))
    return load_native().read_input_file(str(path), manifest.validated())


class NativeModel:
    """An artifact loaded by the C++ runtime (the same code that embedding
    applications and ``torchport-run`` use).

    ``threads`` sets LibTorch's intra-op threads, which are process-wide.
    ``warmup_runs`` runs the golden inputs at load, each time also their first
    row alone when the inputs share a dynamic batch dim (cost in ``warmup_ms``);
    ``check_nan`` rejects NaN/Inf inputs; ``verify_checksum`` checks the
    payload checksum recorded at export. ``libraries`` are shared libraries of
    custom operators loaded (process-wide) before the model. ``run`` releases
    the GIL and may be called from several threads at once; ``concurrency`` is
    how many calls run at once without waiting (the runner pool of an
    AOTInductor ``.pt2``). ``optimize_graph=False`` runs a TorchScript graph
    without the profiling executor's optimising passes, so that the first
    call costs about what later ones do (see docs/runtime.md, "Speed").
    ``optimize`` (``"freeze"`` or ``"fast"``) applies a TorchScript
    optimisation level at load, on top of the exported one. ``profile`` is a
    file written by ``torchport tune``: its settings apply where these
    arguments are left at their defaults, and ``options`` shows the result.
    An ``.onnx`` model runs on ONNX Runtime inside the C++ runtime: ``onnxruntime``
    names its libonnxruntime.so (default: ``$TORCHPORT_ONNXRUNTIME``, else the
    installed ``onnxruntime`` wheel), ``onnx_optimization`` its graph
    optimisation level (``"all"``, ``"extended"``, ``"basic"``, ``"none"``) and
    ``threads`` its session's intra-op threads.
    """

    def __init__(
        self,
        path: Union[str, Path],
        *,
        device: str = "cpu",
        threads: Optional[int] = None,
        warmup_runs: int = 0,
        check_nan: bool = False,
        verify_checksum: bool = True,
        libraries: Sequence[Union[str, Path]] = (),
        concurrency: int = 4,
        optimize_graph: bool = True,
        optimize: str = "",
        profile: Union[str, Path, None] = None,
        onnxruntime: Union[str, Path, None] = None,
        onnx_optimization: str = "",
    ) -> None:
        native = load_native()
        self.path = Path(path)
        self._model = native.Model(
            str(path),
            device=device,
            threads=0 if threads is None else threads,
            warmup_runs=warmup_runs,
            check_nan=check_nan,
            verify_checksum=verify_checksum,
            libraries=[str(p) for p in libraries],
            concurrency=concurrency,
            optimize_graph=optimize_graph,
            optimize=optimize,
            profile="" if profile is None else str(profile),
            onnxruntime="" if onnxruntime is None else str(onnxruntime),
            onnx_optimization=onnx_optimization,
        )
        # The file run: a profile may pick a sibling of another format.
        self.path = Path(self._model.path)
        self.manifest: Manifest = Manifest.from_native(self._model.manifest)

    @property
    def format(self) -> str:
        """The backend that loaded the file: ``"torchscript"``, ``"aoti"``, ``"executorch"`` or ``"onnx"``."""
        return self._model.format

    @property
    def options(self) -> Any:
        """The options it runs with, a profile's settings applied (``threads``,
        ``optimize_graph``, ``optimize``, ``warmup_runs``, ``profile``, ...)."""
        return self._model.options

    @property
    def warmup_ms(self) -> float:
        return self._model.warmup_ms

    def run(self, *inputs: Any) -> tuple[torch.Tensor, ...]:
        """Runs the model; inputs in manifest order, or one dict by input name.

        >>> m.run(image)            # positional
        >>> m.run({"image": image})  # by name
        """
        # Every check (and every layout fix-up) happens in the runtime.
        # A tensor is tested first: the Mapping ABC check costs more than the binding's own work.
        if len(inputs) == 1 and not isinstance(inputs[0], torch.Tensor) and isinstance(inputs[0], Mapping):
            return tuple(self._model.run_named(dict(inputs[0])))
        return tuple(self._model.run(inputs))

    __call__ = run

    def run_structured(self, *inputs: Any) -> Any:
        """Runs the model and returns what the exported model returned: a tensor,
        or its tuples, named tuples, lists and dicts (a ``ModelOutput`` comes back
        as a dict of its fields). Inputs as for ``run``; ``None`` (or a name left
        out of the dict) leaves an optional input out.

        >>> m.run_structured({"input_ids": ids, "attention_mask": mask})["last_hidden_state"]
        """
        if len(inputs) == 1 and isinstance(inputs[0], Mapping):
            return self._model.run_structured(dict(inputs[0]))
        return self._model.run_structured(list(inputs))

    def golden(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The golden ``(inputs, outputs)`` stored at export."""
        inputs, outputs = self._model.golden()
        return list(inputs), list(outputs)

    def selfcheck(self, *, atol: Optional[float] = None, rtol: Optional[float] = None) -> dict[str, Any]:
        """Golden inputs against golden outputs, in C++; ``report["ok"]`` says if they match.
        Within ``atol``/``rtol``; when neither is given, within the manifest's
        tolerance (bit-exact unless its format states one)."""
        return json.loads(self._model.selfcheck(atol=atol, rtol=rtol))

    def benchmark(self, inputs: Optional[list[torch.Tensor]] = None, *, iters: int = 100, warmup: int = 10) -> dict[str, Any]:
        """Latency in milliseconds (first call, p50, p90, p99) measured in C++."""
        tensors = None if inputs is None else list(inputs)
        return json.loads(self._model.benchmark(inputs=tensors, iters=iters, warmup=warmup))

    def submodules(self) -> list[Any]:
        """The model's submodules (name, type, callable, custom_ops), depth-first."""
        return list(self._model.submodules())

    def run_submodule(self, name: str, args: Sequence[Any], kwargs: Optional[Mapping[str, Any]] = None) -> Any:
        """Runs one submodule's ``forward`` ("" is the model) on the arguments as
        given, without the input contract; for torchport.localize.

        >>> m.run_submodule("features.3", [x])
        """
        return self._model.run_submodule(name, list(args), kwargs=None if kwargs is None else dict(kwargs))

    def submodule_tensors(self, name: str) -> dict[str, torch.Tensor]:
        """Parameters and buffers of a submodule ("" is the model), by name relative to it."""
        return dict(self._model.submodule_tensors(name))

    def order_inputs(self, inputs: Mapping[str, Any]) -> list[torch.Tensor]:
        """Inputs given by name, in the model's order (the runtime's rule); unknown or
        missing names are a BadInputError that lists them."""
        return list(self._model.order_inputs(dict(inputs)))

    def __repr__(self) -> str:
        return f"NativeModel({str(self.path)!r}, inputs={self.manifest.input_names}, outputs={self.manifest.output_names})"


class Batcher:
    """Dynamic batching in the process (``torchport::Batcher``): threads that each
    call ``run`` with one request are grouped into batched calls of up to
    ``max_batch`` rows, waiting at most ``max_delay_ms`` for one another. The model's
    inputs and outputs must share a dynamic first dimension. A full queue
    (``max_queue`` waiting requests) raises ``ModelRuntimeError`` at once.

    >>> batcher = Batcher(NativeModel("model.pt"), max_batch=16, max_delay_ms=2.0)
    >>> (logits,) = batcher.run(image)  # image: (1, C, H, W); from many threads at once
    """

    def __init__(self, model: NativeModel, *, max_batch: int = 16, max_delay_ms: float = 2.0,
                 max_queue: int = 1024) -> None:
        self._batcher = load_native().Batcher(
            model._model, max_batch=max_batch, max_delay_ms=max_delay_ms, max_queue=max_queue
        )

    def run(self, *inputs: Any) -> tuple[torch.Tensor, ...]:
        """One request (tensors in manifest order); blocks until its batch has run."""
        return tuple(self._batcher.run(inputs))

    def submit(self, *inputs: Any) -> Any:
        """Queues one request; ``.result()`` on the returned future waits for it."""
        return self._batcher.submit(inputs)

    @property
    def batches(self) -> int:
        """Batched calls made so far (``requests / batches`` is the mean batch)."""
        return self._batcher.batches

    @property
    def requests(self) -> int:
        return self._batcher.requests
