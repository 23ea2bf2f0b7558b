"""The runtimes that can run an artifact, in one registry (the verify layer):
parity (``verify``), ``bench``, ``tune`` and the localiser load and run
artifacts through it, and the ``torchport-run`` command line is built here
and nowhere else.

    >>> from torchport.runtimes import REGISTRY, readers
    >>> readers("onnx")
    ('onnxruntime', 'native', 'binary')
    >>> loaded = REGISTRY["native"].load("model.pt", threads=2)
    >>> outputs = loaded.run(inputs)   # the output tensors, flattened in the manifest's order
    >>> call = loaded.call(inputs)     # the bare call on those inputs, for timing

A runtime is one of: the eager model itself (``eager``), a format's own Python
runtime (``torchscript``, ``aoti``, ``onnxruntime``, ``executorch``), the C++
runtime in this process (``native``) or in a ``torchport-run`` process
(``binary``). Adding one is a class below and a row in ``REGISTRY``.
"""

from __future__ import annotations

import abc
import importlib
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch

from torchport._warnings import jit as _jit
from torchport.errors import BadOptionError, NativeUnavailableError, TorchportError
from torchport.manifest import Manifest
from torchport.native import NativeModel, binary_path, load_native

# torchport.formats is imported where it is used: it loads the extension at
# import, and bench, tune and the localiser import without it.

#: the install command that brings the C++ runtime (the extension and the binary)
_INSTALL_NATIVE = "install torchport with its extension: pip install --no-build-isolation . (or run make)"


@dataclass(frozen=True)
class Setup:
    """What a runtime loads an artifact with."""

    threads: Optional[int] = None  # intra-op threads; None: torch's current count (the C++ runtime: its default)
    libraries: Sequence[str] = ()  # custom operator libraries the artifact needs
    device: str = "cpu"
    manifest: Optional[Manifest] = None  # its constants are passed by keyword, as the C++ runtime passes them
    model: Optional[torch.nn.Module] = None  # the eager model (the ``eager`` runtime only)
    options: Mapping[str, Any] = field(default_factory=dict)  # more NativeModel options (tune's optimize, ...)


@dataclass(frozen=True)
class Submodule:
    """A submodule of a loaded artifact, as the localiser sees it."""

    type: str
    callable: bool  # it has a forward() of its own to run
    custom_ops: list[str]


class Loaded(abc.ABC):
    """An artifact (or, for ``eager``, the model) loaded by one runtime."""

    #: run() enters torch.inference_mode around the call: the runtimes that run torch code
    #: in Python (the C++ runtime enters c10::InferenceMode itself)
    inference_mode = False
    #: call()'s result is already the output tensors in order; else it is flattened
    flat = True

    def __init__(self, runtime: "Runtime", path: Optional[Path], setup: Setup) -> None:
        self.runtime, self.path, self.setup = runtime, path, setup
        self.threads = setup.threads or torch.get_num_threads()

    @abc.abstractmethod
    def call(self, inputs: Sequence[torch.Tensor]) -> Callable[[], Any]:
        """The call on ``inputs``, bound and ready to time; it returns what the runtime returns."""

    def run(self, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """The output tensors, flattened depth first (the manifest's output order)."""
        call = self.call(inputs)
        if self.inference_mode:
            with torch.inference_mode():
                out = call()
        else:
            out = call()
        return tuple(out) if self.flat else tuple(load_native().describe_outputs(out).tensors)


class Submodules(abc.ABC):
    """A loaded artifact whose submodules run one by one (the localiser's runtimes)."""

    threads: int

    @abc.abstractmethod
    def submodules(self) -> dict[str, Submodule]:
        """Every submodule by qualified name (the model itself, "", left out)."""

    @abc.abstractmethod
    def run_submodule(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Runs one submodule's forward() ("" is the model) on the arguments as given."""

    @abc.abstractmethod
    def submodule_tensors(self, name: str) -> dict[str, torch.Tensor]:
        """Its parameters and buffers, by name relative to it."""

    def run_submodules(self, calls: list[tuple[str, list, dict]]) -> dict[str, Any]:
        """Results (or exceptions) of several calls at once, where a runtime
        gains by batching them; {} leaves each to run_submodule() when needed."""
        return {}

    def set_threads(self, threads: int) -> None:
        # The binding and Python TorchScript share this process's pool.
        self.threads = threads
        torch.set_num_threads(threads)


def _bind(fn: Callable[..., Any], inputs: Sequence[torch.Tensor], manifest: Optional[Manifest]) -> Callable[[], Any]:
    """``fn`` called as the C++ runtime calls a model: with the manifest's
    constants by keyword, and then the inputs by name."""
    tensors = list(inputs)
    if manifest is None or not manifest.constants:
        return lambda: fn(*tensors)
    kwargs = {**dict(zip(manifest.input_names, tensors)), **manifest.constants}
    if isinstance(fn, torch.jit.ScriptModule):  # a traced module takes only its tensors
        params = {a.name for a in fn.forward.schema.arguments}
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return lambda: fn(**kwargs)


class _Eager(Loaded):
    inference_mode, flat = True, False

    def __init__(self, runtime: "Runtime", path: Optional[Path], setup: Setup) -> None:
        super().__init__(runtime, path, setup)
        if setup.model is None:
            raise BadOptionError("runtime 'eager': expected the eager model (model=...), got none")
        self.model = setup.model.eval()

    def call(self, inputs):
        return _bind(self.model, inputs, self.setup.manifest)


class _TorchScript(Loaded, Submodules):
    inference_mode, flat = True, False

    def __init__(self, runtime: "Runtime", path: Path, setup: Setup) -> None:
        super().__init__(runtime, path, setup)
        for lib in setup.libraries:  # the operators must be registered before torch.jit.load
            torch.ops.load_library(str(lib))
        self.module = _jit(torch.jit.load, str(path), map_location=setup.device)
        self.module.eval()  # as the C++ runtime's TorchScript backend does

    def call(self, inputs):
        return _bind(self.module, inputs, self.setup.manifest)

    def _find(self, name: str) -> torch.jit.ScriptModule:
        module = self.module
        for part in name.split(".") if name else []:
            module = getattr(module, part, None)
            if not isinstance(module, torch.jit.ScriptModule):
                raise BadOptionError(f"submodule '{name}': the artifact has no submodule '{part}' there")
        return module

    def run_submodule(self, name, args, kwargs):
        module = self._find(name)
        if not hasattr(module, "forward"):
            raise BadOptionError(f"submodule '{name}' has no forward() to call")
        with torch.inference_mode():
            return module.forward(*args, **kwargs)

    def submodules(self):
        from torchport.formats import custom_ops

        out = {}
        for name, m in self.module.named_modules():
            if not name:
                continue
            has_forward = hasattr(m, "forward") and "forward" in m._c._method_names()
            ops = custom_ops(m) if has_forward else []  # the one walk (torchport.formats)
            out[name] = Submodule(m.original_name, has_forward, ops)
        return out

    def submodule_tensors(self, name):
        module = self._find(name)
        return {**dict(module.named_parameters()), **dict(module.named_buffers())}


class _AOTInductor(Loaded):
    inference_mode, flat = True, False

    def __init__(self, runtime: "Runtime", path: Path, setup: Setup) -> None:
        super().__init__(runtime, path, setup)
        self.package = torch._inductor.aoti_load_package(str(path))

    def call(self, inputs):
        tensors = list(inputs)
        return lambda: self.package(*tensors)


class _ONNXRuntime(Loaded):
    def __init__(self, runtime: "Runtime", path: Path, setup: Setup) -> None:
        super().__init__(runtime, path, setup)
        from torchport.formats import onnxruntime_session

        self.session = onnxruntime_session(path, self.threads)  # its own intra-op pool

    def call(self, inputs):
        from torchport.formats import run_onnxruntime

        tensors = list(inputs)
        return lambda: run_onnxruntime(self.session, tensors)


class _ExecuTorch(Loaded):
    def call(self, inputs):
        from torchport.formats import run_executorch_python

        tensors = list(inputs)
        return lambda: run_executorch_python(self.path, tensors)


class _Native(Loaded, Submodules):
    def __init__(self, runtime: "Runtime", path: Path, setup: Setup) -> None:
        super().__init__(runtime, path, setup)
        self.model = NativeModel(path, device=setup.device, threads=setup.threads, libraries=setup.libraries,
                                 **setup.options)

    def call(self, inputs):
        tensors = list(inputs)
        return lambda: self.model.run(*tensors)

    def run_submodule(self, name, args, kwargs):
        return self.model.run_submodule(name, args, kwargs or None)

    def submodules(self):
        return {s.name: Submodule(s.type, s.callable, list(s.custom_ops)) for s in self.model.submodules()}

    def submodule_tensors(self, name):
        return self.model.submodule_tensors(name)


class _Binary(Loaded, Submodules):
    """Each call in a ``torchport-run`` process; the binding only lists
    submodules and reads their tensors (for the localiser)."""

    def __init__(self, runtime: "Runtime", path: Path, setup: Setup) -> None:
        super().__init__(runtime, path, setup)
        self._listing: Optional[NativeModel] = None

    def call(self, inputs):
        tensors = list(inputs)
        return lambda: run_binary(self.path, tensors, threads=self.threads, libraries=self.setup.libraries)

    def set_threads(self, threads: int) -> None:
        self.threads = threads  # passed on the command line

    def _model(self) -> NativeModel:
        if self._listing is None:
            self._listing = NativeModel(self.path, device=self.setup.device, threads=self.threads,
                                        libraries=self.setup.libraries)
        return self._listing

    def submodules(self):
        return {s.name: Submodule(s.type, s.callable, list(s.custom_ops)) for s in self._model().submodules()}

    def submodule_tensors(self, name):
        return self._model().submodule_tensors(name)

    def run_submodule(self, name, args, kwargs):
        result = self.run_submodules([(name, list(args), dict(kwargs))])[name]
        if isinstance(result, Exception):
            raise result
        return result

    def run_submodules(self, calls):
        """All calls in one ``torchport-run submodule`` process, which loads the
        model once and runs them in order; it stops at the first that fails."""
        results: dict[str, Any] = {}
        ready = []
        for name, args, kwargs in calls:
            try:
                _binary_arguments(name, args, kwargs)
                ready.append((name, args, kwargs))
            except BadOptionError as e:
                results[name] = e
        if ready:
            results.update(self._submodule_process(ready))
        return results

    def _submodule_process(self, calls: list[tuple[str, list, dict]]) -> dict[str, Any]:
        results: dict[str, Any] = {}
        with tempfile.TemporaryDirectory(prefix="torchport-localize-") as tmp:
            args, files = [], []
            for i, (name, positional, kwargs) in enumerate(calls):
                src, dst = Path(tmp) / f"in{i}.pt", Path(tmp) / f"out{i}.pt"
                torch.save({k: v.cpu() for k, v in kwargs.items()} if kwargs else [t.cpu() for t in positional], src)
                args += ["--name", name, "--input", str(src), "--output", str(dst)]
                files.append((name, dst))
            proc = _run_process(binary_command("submodule", self.path, threads=self.threads, device=self.setup.device,
                                               libraries=self.setup.libraries, args=args))
            for name, dst in files:
                if not dst.exists():  # the call that failed; the ones after it did not run
                    results[name] = _exit_error("submodule", proc)
                    break
                results[name] = torch.load(dst, weights_only=True)
        return results


def _binary_arguments(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """BadOptionError unless the binary can pass these arguments: tensors, by position or by name."""
    if args and kwargs:
        raise BadOptionError(
            f"submodule '{name}' takes positional and keyword arguments; the binary runtime passes one or "
            "the other (use runtime='native')"
        )
    items = list(kwargs.values()) if kwargs else list(args)
    if not all(isinstance(t, torch.Tensor) for t in items):
        kinds = sorted({type(t).__name__ for t in items if not isinstance(t, torch.Tensor)})
        raise BadOptionError(
            f"submodule '{name}' takes {', '.join(kinds)} arguments; the binary runtime passes tensors only "
            "(use runtime='native')"
        )


# ---------------------------------------------------------------------------- torchport-run


def binary_command(command: str, artifact: Union[str, Path], *, threads: Optional[int] = None,
                   device: Optional[str] = None, libraries: Sequence[str] = (), args: Sequence[str] = ()) -> list[str]:
    """The one ``torchport-run`` command line: ``command`` on ``artifact`` with
    the runtime's options, then the command's own ``args``."""
    cmd = [str(binary_path()), command, str(artifact)]
    if threads:
        cmd += ["--threads", str(threads)]
    if device:
        cmd += ["--device", device]
    for lib in libraries:
        cmd += ["--load-library", str(lib)]
    return cmd + list(args)


def _run_process(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def _exit_error(command: str, proc: subprocess.CompletedProcess) -> TorchportError:
    return TorchportError(f"torchport-run {command} exited {proc.returncode}: {proc.stderr.strip()}")


def run_binary(path: Union[str, Path], inputs: Sequence[torch.Tensor], *, threads: Optional[int] = None,
               libraries: Sequence[str] = ()) -> tuple[torch.Tensor, ...]:
    """Runs ``torchport-run predict`` in a subprocess and reads its output back.

        >>> (logits,) = run_binary("model.pt", [x], threads=1)
    """
    with tempfile.TemporaryDirectory(prefix="torchport-") as tmp:
        src, dst = Path(tmp) / "inputs.pt", Path(tmp) / "outputs.pt"
        torch.save([t.detach().cpu() for t in inputs], src)
        proc = _run_process(binary_command("predict", path, threads=threads, libraries=libraries,
                                           args=["--input", str(src), "--output", str(dst)]))
        if proc.returncode != 0:
            raise _exit_error("predict", proc)
        out = load_native().read_outputs_file(str(dst))  # the runtime's reader, flattened in output order
    return tuple(out)


# ---------------------------------------------------------------------------- the registry


def _python_package(module: str, extra: str) -> Callable[[], None]:
    """A check that ``module`` imports, else the error naming the extra that brings it."""

    def check() -> None:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise NativeUnavailableError(f"{module} is not installed ({e}): pip install 'torchport[{extra}]'") from None

    return check


def _the_binary() -> None:
    load_native()  # the binary's outputs are read back by the runtime's reader
    try:
        binary_path()
    except NativeUnavailableError as e:
        raise NativeUnavailableError(f"{e}; {_INSTALL_NATIVE}") from None


@dataclass(frozen=True)
class Runtime:
    """One way to run an artifact: what it reads, what it needs, how it loads.

        >>> REGISTRY["aoti"].formats, REGISTRY["aoti"].kind
        (('aoti',), 'python')
    """

    name: str
    # "model": the eager model; "python": a format's own Python runtime; "native": the
    # C++ runtime in this process; "binary": the C++ runtime in a torchport-run process
    kind: str
    formats: tuple[str, ...]  # the artifact formats it reads (none for eager, which runs the model)
    about: str  # what runs, in a few words
    opener: type[Loaded]
    needs: str = ""  # what must be installed beyond torch
    require: Callable[[], Any] = lambda: None  # raises NativeUnavailableError naming the fix when it is not
    own_pool: bool = False  # its intra-op threads are its session's own, not torch's process-wide pool

    @property
    def runs_submodules(self) -> bool:
        return issubclass(self.opener, Submodules)

    def load(self, path: Union[str, Path, None], **setup: Any) -> Loaded:
        """``path`` loaded by this runtime (for ``eager``, the ``model=``); ``setup`` as in ``Setup``."""
        self.require()
        return self.opener(self, None if path is None else Path(path), Setup(**setup))


#: the C++ runtime's backends (cpp/src/backends): one for every format torchport writes
_CPP_FORMATS = ("torchscript", "aoti", "onnx", "executorch")

#: every runtime, in the order reports list them
REGISTRY: dict[str, Runtime] = {r.name: r for r in (
    Runtime("eager", "model", (), "the model the artifact was exported from, in Python", _Eager),
    Runtime("torchscript", "python", ("torchscript",), "torch.jit.load in Python", _TorchScript),
    Runtime("aoti", "python", ("aoti",), "torch._inductor.aoti_load_package in Python", _AOTInductor),
    Runtime("onnxruntime", "python", ("onnx",), "an ONNX Runtime session in Python", _ONNXRuntime,
            "the onnxruntime package", _python_package("onnxruntime", "onnx"), own_pool=True),
    Runtime("executorch", "python", ("executorch",), "ExecuTorch's Python runtime", _ExecuTorch,
            "the executorch package", _python_package("executorch.runtime", "executorch")),
    Runtime("native", "native", _CPP_FORMATS, "the C++ runtime through the binding (NativeModel)", _Native,
            "the compiled extension torchport._native", load_native),
    Runtime("binary", "binary", _CPP_FORMATS, "the torchport-run binary, one process per call", _Binary,
            "the torchport-run binary", _the_binary),
)}


def readers(fmt: str) -> tuple[str, ...]:
    """The runtimes that read ``fmt`` artifacts, in registry order."""
    return tuple(r.name for r in REGISTRY.values() if fmt in r.formats)


def python_runtime(fmt: str) -> str:
    """``fmt``'s own Python runtime: the reference for custom inputs without the eager model."""
    return next(r.name for r in REGISTRY.values() if r.kind == "python" and fmt in r.formats)


def check_names(names: Iterable[str], choices: Sequence[str], what: str = "runtimes") -> None:
    """BadOptionError naming the unknown ones and the choices."""
    unknown = set(names) - set(choices)
    if unknown:
        raise BadOptionError(f"{what}: unknown {sorted(unknown)}; choose from {tuple(choices)}")
