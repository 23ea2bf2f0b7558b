# Stub for the compiled torchport._native module (cpp/bindings/module.cpp).
# tests/test_binding.py checks it against the module's real signatures.
from collections.abc import Sequence
from typing import Any, Optional

import torch

__version__: str
__torch_version__: str

class Model:
    def __init__(
        self,
        path: str,
        *,
        device: str = "cpu",
        threads: int = 0,
        warmup_runs: int = 0,
        check_nan: bool = False,
        verify_checksum: bool = True,
        libraries: list[str] = [],
    ) -> None: ...
    @property
    def path(self) -> str: ...
    @property
    def format(self) -> str: ...
    @property
    def warmup_ms(self) -> float: ...
    @property
    def manifest_json(self) -> str: ...
    def run(self, inputs: Sequence[Any]) -> list[torch.Tensor]: ...
    def run_named(self, inputs: dict[str, Any]) -> list[torch.Tensor]: ...
    def golden(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]: ...
    def example_inputs(self) -> list[torch.Tensor]: ...
    def selfcheck(self, *, atol: float = 0.0, rtol: float = 0.0) -> str: ...
    def benchmark(self, *, inputs: Optional[Sequence[Any]] = None, iters: int = 100, warmup: int = 10) -> str: ...
    def submodules(self) -> list[Submodule]: ...
    def run_submodule(self, name: str, args: Sequence[Any], *, kwargs: Optional[dict[str, Any]] = None) -> Any: ...
    def submodule_tensors(self, name: str) -> dict[str, torch.Tensor]: ...

class Submodule:
    name: str
    type: str
    callable: bool
    custom_ops: list[str]

class Comparison:
    output: str
    expected_shape: list[int]
    got_shape: list[int]
    expected_dtype: str
    got_dtype: str
    max_abs_diff: float
    max_rel_diff: float
    bit_exact: bool
    ok: bool

def read_tensor_file(path: str) -> list[torch.Tensor] | dict[str, torch.Tensor]: ...
def compare(
    names: Sequence[str], expected: Sequence[Any], got: Sequence[Any], *, atol: float = 0.0, rtol: float = 0.0
) -> list[Comparison]: ...
