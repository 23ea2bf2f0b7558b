"""Serve an artifact with NVIDIA Triton Inference Server's PyTorch backend (the serve
layer; ``torchport.triton`` is the same names under their first import path).

``export_triton`` writes (or adds a version to) a Triton model repository::

    REPO/NAME/config.pbtxt      the model configuration, from the artifact's manifest
    REPO/NAME/labels.txt        one label per line, for a classifier output (when the manifest has labels)
    REPO/NAME/<N>/model.pt      the artifact itself (TorchScript; its manifest and golden file ride along)

``check_triton`` validates such a model without a server: it parses ``config.pbtxt``
with Triton's own schema (``tritonclient``'s ``ModelConfig``, the ``triton`` extra),
checks the layout against the repository rules, and runs a request built from the
config (names, data types, dims, reshape, ``max_batch_size``) through torchport's C++
runtime on every version's ``model.pt``, comparing with the golden outputs bit for bit.

    >>> from torchport.serve import export_triton, check_triton
    >>> export_triton("digits.pt", "models", name="digits")
    TritonExport(model_dir=PosixPath('models/digits'), version=1, ...)
    >>> print(check_triton("models/digits"))

The rules followed, from Triton's documentation:

- names: the PyTorch backend maps config inputs onto ``forward``'s arguments either by
  argument name or by ``<name>__<index>``, and outputs by ``<name>__<index>`` over a flat
  tuple. Inputs keep the manifest's names when they are ``forward``'s argument names;
  otherwise, and for every output, the name becomes ``<name>__<index>``
  (``INPUT__<index>``/``OUTPUT__<index>`` when the name itself is not a plain identifier
  or contains ``__``).
- shapes: with ``max_batch_size > 0`` the full shape is ``[-1] + dims``, so a batch must be
  dim 0 of every input and output; dynamic dims are ``-1``; a tensor whose shape is only
  the batch (or a scalar) is declared ``dims: [1]`` with ``reshape: { shape: [] }``.
- data types: those the backend converts (bool, uint8, int8, int16, int32, int64,
  float16, float32, float64).
- versions: numeric folders not starting with 0; Triton ignores other folders.

The modules: ``config`` (config.pbtxt from a manifest), ``forward`` (what the backend can
call), ``schema`` (Triton's ModelConfig, merging configs), ``repository``
(``export_triton``) and ``check`` (``check_triton``, outputs judged by
``torchport.comparison.compare``).
"""

from torchport.serve.check import (
    GoldenRequest,
    TritonCheck,
    TritonCheckRow,
    check_layout,
    check_triton,
    golden_requests,
    serve_like_triton,
)
from torchport.serve.config import (
    BACKEND,
    CONFIG_FILE,
    DATA_TYPES,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_QUEUE_DELAY_US,
    INSTANCE_KINDS,
    INT32_MAX,
    LABEL_FILE,
    MODEL_FILE,
    PLATFORM,
    TORCH_DTYPES,
    TritonConfig,
    TritonTensor,
    config_from_manifest,
)
from torchport.serve.forward import (
    forward_arguments,
)
from torchport.serve.repository import (
    TritonExport,
    export_triton,
)
from torchport.serve.schema import (
    TritonSchemaUnavailable,
    model_config_schema,
    parse_config,
)

__all__ = [
    "GoldenRequest",
    "TritonCheck",
    "TritonCheckRow",
    "TritonConfig",
    "TritonExport",
    "TritonSchemaUnavailable",
    "TritonTensor",
    "check_layout",
    "check_triton",
    "config_from_manifest",
    "export_triton",
    "forward_arguments",
    "golden_requests",
    "model_config_schema",
    "parse_config",
    "serve_like_triton",
]
