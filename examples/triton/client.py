#!/usr/bin/env python3
"""Reproduce a torchport artifact's golden outputs through a running Triton server.

    python examples/triton/client.py runs/triton/digits --url localhost:8000

It reads MODEL_DIR/config.pbtxt and each version's model.pt golden examples, builds the
requests from the config (the same requests `torchport triton --check` runs through
torchport's C++ runtime), sends them with tritonclient's HTTP client, and compares the
responses with the golden outputs, bit for bit unless --atol/--rtol say otherwise (a GPU
instance computes with other kernels than the CPU that exported the golden outputs).

Exit status: 0 every response reproduces the golden outputs; 1 a response differs;
2 bad arguments; 3 MODEL_DIR is not a valid Triton model folder; 10 tritonclient is
missing (torchport's code for a component that is not installed); 69 (EX_UNAVAILABLE)
no Triton server answers at --url, or it has not loaded the model: start one as
README.md beside this script shows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_MISMATCH = 1
EXIT_NO_CLIENT = 10
EXIT_UNAVAILABLE = 69


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir", help="a model folder written by `torchport triton`, such as runs/triton/digits")
    p.add_argument("--url", default="localhost:8000", help="Triton's HTTP endpoint (default localhost:8000)")
    p.add_argument("--version", type=int, default=None, help="only this version (default: every version in the folder)")
    p.add_argument("--atol", type=float, default=0.0)
    p.add_argument("--rtol", type=float, default=0.0)
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the connection (default 3)")
    args = p.parse_args(argv)

    import torch

    from torchport.errors import TorchportError
    from torchport.comparison import compare
    from torchport.triton import TritonSchemaUnavailable, check_layout, golden_requests

    try:
        import tritonclient.http as httpclient
    except ImportError as e:
        print(f"client.py: tritonclient's HTTP client is not installed ({e}); "
              "pip install 'torchport[triton]' (or 'tritonclient[http]')", file=sys.stderr)
        return EXIT_NO_CLIENT

    model_dir = Path(args.model_dir)
    try:
        config, versions, _ = check_layout(model_dir)
        goldens = [g for g in golden_requests(model_dir, config) if args.version in (None, g.version)]
    except TritonSchemaUnavailable as e:
        print(f"client.py: {e}", file=sys.stderr)
        return EXIT_NO_CLIENT
    except TorchportError as e:
        print(f"client.py: {e}", file=sys.stderr)
        return e.exit_code  # torchport's table: 3 for a bad or missing model folder
    if not goldens:
        print(f"client.py: '{model_dir}' has no version {args.version} (it has {sorted(versions)})", file=sys.stderr)
        return 2
    name = config.name or model_dir.name

    try:
        client = httpclient.InferenceServerClient(args.url, connection_timeout=args.timeout, network_timeout=60.0)
        live = client.is_server_live()
    except Exception as e:  # noqa: BLE001 - connection refused, unknown host, timeout...
        live, reason = False, f"{type(e).__name__}: {e}"
    else:
        reason = "the server says it is not live"
    if not live:
        print(
            f"client.py: no Triton server answers at {args.url} ({reason}).\n"
            f"Nothing was compared. Serve the repository first, for example with Docker:\n"
            f"  docker run --rm -p 8000:8000 -v \"{model_dir.resolve().parent}:/models\" "
            f"nvcr.io/nvidia/tritonserver:26.05-py3 tritonserver --model-repository=/models\n"
            f"then run this script again (see examples/triton/README.md).",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE

    status = 0
    for golden in goldens:
        if not client.is_model_ready(name, str(golden.version)):
            print(f"client.py: the server at {args.url} is live but model '{name}' version {golden.version} is not "
                  "ready (not in its repository, failed to load, or not selected by the version policy: by "
                  "default Triton serves only the latest version)", file=sys.stderr)
            return EXIT_UNAVAILABLE
        responses = []
        for request in golden.requests:
            inputs = []
            for t in config.input:
                x = request[t.name].contiguous()
                wire = t.DESCRIPTOR.file.enum_types_by_name["DataType"].values_by_number[t.data_type].name[len("TYPE_"):]
                i = httpclient.InferInput(t.name, list(x.shape), wire)
                i.set_data_from_numpy(x.numpy(), binary_data=True)
                inputs.append(i)
            outputs = [httpclient.InferRequestedOutput(t.name, binary_data=True) for t in config.output]
            result = client.infer(name, inputs, model_version=str(golden.version), outputs=outputs)
            responses.append({t.name: torch.from_numpy(result.as_numpy(t.name).copy()) for t in config.output})
        got = {k: torch.cat([r[k] for r in responses]) if config.max_batch_size > 0 else responses[0][k]
               for k in golden.expected}
        names = list(golden.expected)  # judged by the runtime's one comparison, as check_triton judges them
        for row in compare("triton", names, [golden.expected[n] for n in names], [got[n] for n in names],
                           args.atol, args.rtol):
            print(f"version {golden.version}  {row.output:<16} {str(row.shape):<12} {row.dtype:<8} "
                  f"max abs diff {row.max_abs_diff:.3g}  "
                  f"{'bit-exact' if row.bit_exact else 'within tolerance' if row.ok else 'MISMATCH'}")
            if not row.ok:
                status = EXIT_MISMATCH
    print("result: " + ("golden outputs reproduced through Triton" if status == 0 else "MISMATCH"))
    return status


if __name__ == "__main__":
    sys.exit(main())
