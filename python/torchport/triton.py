"""``torchport.triton``, the first import path of the serve layer: the names of
``torchport.serve`` (Triton model repositories, ``export_triton``, ``check_triton``).

    >>> from torchport.triton import export_triton, check_triton
"""

from torchport.serve import (
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
    GoldenRequest,
    TritonCheck,
    TritonCheckRow,
    TritonConfig,
    TritonExport,
    TritonSchemaUnavailable,
    TritonTensor,
    check_layout,
    check_triton,
    config_from_manifest,
    export_triton,
    forward_arguments,
    golden_requests,
    model_config_schema,
    parse_config,
    serve_like_triton,
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
