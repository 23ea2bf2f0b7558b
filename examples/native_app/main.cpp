// native_app: load an artifact, check its inputs, run it, print the outputs.
//
//   native_app MODEL.pt [BATCH [OPS_LIBRARY...]]
//
// Runs the artifact's golden inputs (or the first example repeated to batch
// BATCH; 0 keeps the golden batch), then compares with the golden outputs
// stored at export. OPS_LIBRARY: custom operator libraries the model calls.

#include <iostream>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include <torchport/tools.h>
#include <torchport/torchport.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: native_app MODEL.pt [BATCH [OPS_LIBRARY...]]\n";
    return 2;
  }
  try {
    torchport::Options options;
    options.warmup_runs = 2;  // pay the first-call cost at load, not on the first request
    for (int i = 3; i < argc; ++i) options.libraries.emplace_back(argv[i]);
    const auto model = torchport::Model::load(argv[1], options);
    const auto& manifest = model.manifest();
    std::cout << "model " << manifest.name << " (warm-up " << model.warmup_ms() << " ms)\n";

    auto inputs = model.example_inputs();
    if (argc > 2 && std::stoll(argv[2]) > 0) {
      // Resize the batch: the runtime checks every fixed dimension for us.
      const int64_t batch = std::stoll(argv[2]);
      for (auto& t : inputs) {
        if (!t.defined()) continue;  // an optional input left out
        std::vector<int64_t> repeats(t.dim(), 1);
        repeats[0] = batch;
        t = t.narrow(0, 0, 1).repeat(repeats);  // [batch, ...]
      }
    }
    // By name, and nested as the model returned them (a dict, a list of dicts...).
    const auto outputs = model.run_structured(inputs);
    for (size_t i = 0; i < outputs.tensors.size(); ++i) {
      std::cout << "output " << outputs.names[i] << ": "
                << torchport::shape_string(outputs.tensors[i].sizes().vec()) << "\n";
    }
    std::cout << "structure: " << outputs.structure.tagKind() << "\n";

    const auto report = torchport::selfcheck(model);
    std::cout << "selfcheck: " << (report.ok() ? "ok" : "MISMATCH") << "\n";

    // A wrong input is an error that names it, and the model stays usable.
    try {
      model.run({at::zeros({1, 2, 3, 4, 5})});
    } catch (const torchport::Error& e) {
      std::cout << "rejected bad input: " << e.what() << "\n";
    }
    return report.ok() ? 0 : 1;
  } catch (const torchport::Error& e) {
    std::cerr << "native_app: " << torchport::to_string(e.kind()) << ": " << e.what() << "\n";
    return 1;
  }
}
