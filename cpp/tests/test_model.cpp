// The C++ API as an embedding application uses it: load, run, contract,
// errors, golden checks, threads.

#include <fstream>
#include <iostream>
#include <random>
#include <thread>

#include <unistd.h>

#include <gtest/gtest.h>

#include <torchport/tools.h>
#include <torchport/torchport.h>

#include "fixtures.h"

namespace tp = torchport;
using namespace torchport::testing;

namespace {

}  // namespace

TEST(Model, LoadsManifest) {
  const auto model = tp::Model::load(linear_artifact());
  const auto& m = model.manifest();
  EXPECT_TRUE(m.from_artifact());
  EXPECT_EQ(m.name, "linear");
  ASSERT_EQ(m.inputs.size(), 1u);
  EXPECT_EQ(m.inputs[0].name, "x");
  EXPECT_EQ(*m.inputs[0].dtype, c10::ScalarType::Float);
  EXPECT_EQ(*m.inputs[0].shape, (std::vector<int64_t>{-1, 4}));
  EXPECT_EQ(m.outputs[0].name, "y");
  EXPECT_TRUE(m.has_golden);
  EXPECT_NE(m.to_json().find("\"labels\""), std::string::npos);
  EXPECT_EQ(model.format(), "torchscript");
}

TEST(Model, RunsWithAnyBatchSize) {
  const auto model = tp::Model::load(linear_artifact());
  for (int64_t batch : {1, 3, 17}) {
    const auto x = torch::rand({batch, 4});
    const auto out = model.run({x});
    ASSERT_EQ(out.size(), 1u);
    const auto expected = torch::matmul(x, torch::arange(8, torch::kFloat32).reshape({4, 2}) / 8) +
                          torch::tensor({0.5f, -0.5f});
    EXPECT_TRUE(torch::equal(out[0], expected)) << "batch " << batch;
  }
}

TEST(Model, AcceptsNonContiguousInput) {
  const auto model = tp::Model::load(linear_artifact());
  const auto x = torch::rand({4, 5}).t();  // [5, 4], not contiguous
  ASSERT_FALSE(x.is_contiguous());
  EXPECT_TRUE(torch::equal(model.run({x})[0], model.run({x.contiguous()})[0]));
}

TEST(Model, RunsByName) {
  const auto model = tp::Model::load(linear_artifact());
  const auto x = torch::rand({2, 4});
  EXPECT_TRUE(torch::equal(model.run_named(std::map<std::string, at::Tensor>{{"x", x}})[0], model.run({x})[0]));
  expect_error([&] { model.run_named(std::map<std::string, at::Tensor>{{"z", x}}); },
               tp::ErrorKind::BadInput, {"missing 'x'", "unknown 'z'"});
}

TEST(Model, WrongInputsNameTheInput) {
  const auto model = tp::Model::load(linear_artifact());
  expect_error([&] { model.run({torch::rand({2, 4}, torch::kFloat64)}); }, tp::ErrorKind::BadInput,
               {"input 'x'", "expected dtype float32, got float64"});
  expect_error([&] { model.run({torch::rand({2, 4, 1})}); }, tp::ErrorKind::BadInput,
               {"input 'x'", "expected 2 dimensions", "[2, 4, 1]"});
  expect_error([&] { model.run({torch::rand({2, 5})}); }, tp::ErrorKind::BadInput,
               {"input 'x'", "dim 1 expected 4, got 5", "[2, 5] vs [*, 4]"});
  expect_error([&] { model.run(std::vector<at::Tensor>{}); }, tp::ErrorKind::BadInput, {"expects 1 input (x), got 0"});
  expect_error([&] { model.run(std::vector<at::Tensor>{torch::rand({2, 4}), torch::rand({2, 4})}); },
               tp::ErrorKind::BadInput, {"got 2"});
  expect_error([&] { model.run({at::Tensor()}); }, tp::ErrorKind::BadInput, {"undefined"});
  expect_error([&] { model.run({torch::rand({2, 4}).to_sparse()}); }, tp::ErrorKind::BadInput,
               {"dense"});
  // Still usable afterwards.
  EXPECT_EQ(model.run({torch::rand({2, 4})})[0].sizes(), (std::vector<int64_t>{2, 2}));
}

TEST(Model, ChannelsLastHint) {
  auto m = torch::jit::Module("Conv");
  m.define("def forward(self, x):\n  return x.mean(dim=[2, 3])\n");
  const auto path = save(m, "conv.pt", {{"torchport/manifest.json", R"({"schema": 1, "name": "conv",
      "torchport_version": "0", "torch_version": "0", "export_method": "script", "created": "",
      "inputs": [{"name": "image", "dtype": "float32", "shape": [null, 3, 32, 32]}],
      "outputs": [{"name": "y", "dtype": "float32", "shape": [null, 3]}]})"}});
  const auto model = tp::Model::load(path);
  expect_error([&] { model.run({torch::rand({1, 32, 32, 3})}); }, tp::ErrorKind::BadInput,
               {"input 'image': dim 1 expected 3, got 32", "NHWC"});
}

TEST(Model, NanCheckIsOptIn) {
  const auto x = torch::tensor({{1.f, NAN, 0.f, 0.f}});
  EXPECT_NO_THROW(tp::Model::load(linear_artifact()).run({x}));
  tp::Options options;
  options.check_nan = true;
  expect_error([&] { tp::Model::load(linear_artifact(), options).run({x}); },
               tp::ErrorKind::BadInput, {"input 'x'", "NaN"});
}

TEST(Model, TwoInputsTwoOutputs) {
  const auto path = save(two_io_module(), "two_io_plain.pt");
  const auto model = tp::Model::load(path);
  // No manifest: the contract comes from forward()'s schema.
  EXPECT_FALSE(model.manifest().from_artifact());
  ASSERT_EQ(model.manifest().inputs.size(), 2u);
  EXPECT_EQ(model.manifest().inputs[0].name, "a");
  EXPECT_EQ(model.manifest().inputs[1].name, "b");
  ASSERT_EQ(model.manifest().outputs.size(), 2u);
  const auto a = torch::rand({3, 2}), b = torch::rand({3, 2});
  const auto out = model.run_named(std::map<std::string, at::Tensor>{{"b", b}, {"a", a}});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(torch::equal(out[0], a + b));
  EXPECT_TRUE(torch::equal(out[1], a * b.sum(1, true)));
  expect_error([&] { model.run({a}); }, tp::ErrorKind::BadInput, {"expects 2 inputs (a, b), got 1"});
}

TEST(Model, ModelFailureIsRuntimeError) {
  const auto model = tp::Model::load(save(failing_module(), "failing.pt"));
  expect_error([&] { model.run({torch::ones({2, 4})}); }, tp::ErrorKind::Runtime,
               {"model 'Failing' failed while running", "cannot be multiplied"});
  EXPECT_TRUE(torch::equal(model.run({torch::ones({2, 3})})[0], 3 * torch::ones({2, 3})));
}

TEST(Artifact, FaultsAreErrorsOfTheRightKind) {
  expect_error([] { tp::Model::load((temp_dir() / "missing.pt").string()); },
               tp::ErrorKind::NotFound, {"missing.pt", "does not exist"});
  expect_error([] { tp::Model::load(temp_dir().string()); }, tp::ErrorKind::BadArtifact,
               {"directory"});
  expect_error([] { tp::Model::load(write_file("empty.pt", "")); }, tp::ErrorKind::BadArtifact,
               {"empty"});
  expect_error([] { tp::Model::load(write_file("text.pt", "hello, not a zip")); },
               tp::ErrorKind::BadArtifact, {"text.pt", "not a loadable TorchScript archive"});
  const auto whole = read_file(linear_artifact("whole.pt"));
  expect_error([&] { tp::Model::load(write_file("truncated.pt", whole.substr(0, whole.size() / 2))); },
               tp::ErrorKind::BadArtifact, {"truncated.pt"});
}

TEST(Artifact, ManifestFaults) {
  auto with_manifest = [](const std::string& name, const std::string& manifest) {
    return save(linear_module(), name, {{"torchport/manifest.json", manifest}});
  };
  expect_error([&] { tp::Model::load(with_manifest("badjson.pt", "{not json")); },
               tp::ErrorKind::BadArtifact, {"manifest.json", "not valid JSON"});
  expect_error([&] { tp::Model::load(with_manifest("newer.pt", linear_manifest(99))); },
               tp::ErrorKind::BadArtifact, {"schema 99 is newer"});
  expect_error([&] { tp::Model::load(with_manifest("noinputs.pt", R"({"schema": 1, "name": "x"})")); },
               tp::ErrorKind::BadArtifact, {"missing field"});
  std::string two_inputs = linear_manifest();
  two_inputs.replace(two_inputs.find("\"inputs\": ["), 11,
                     R"("inputs": [{"name": "extra", "dtype": "float32", "shape": [1]}, )");
  expect_error([&] { tp::Model::load(with_manifest("disagree.pt", two_inputs)); },
               tp::ErrorKind::BadArtifact, {"2 inputs", "forward() takes 1"});
  // The manifest says golden examples exist, but none were stored.
  expect_error([&] { tp::Model::load(with_manifest("nogolden.pt", linear_manifest())); },
               tp::ErrorKind::BadArtifact, {"golden.pt is missing"});
}

TEST(Options, BadOptionsAreRejected) {
  tp::Options options;
  options.device = "gpu:banana";
  expect_error([&] { tp::Model::load(linear_artifact(), options); }, tp::ErrorKind::BadOption,
               {"device", "gpu:banana"});
  options = {};
  options.threads = -1;
  expect_error([&] { tp::Model::load(linear_artifact(), options); }, tp::ErrorKind::BadOption,
               {"threads"});
}

TEST(Golden, SelfcheckPassesAndCatchesMismatch) {
  const auto model = tp::Model::load(linear_artifact());
  const auto report = tp::selfcheck(model);
  ASSERT_EQ(report.rows.size(), 1u);
  EXPECT_TRUE(report.ok());
  EXPECT_TRUE(report.rows[0].bit_exact);

  const auto x = torch::rand({2, 4});
  const auto wrong = torch::zeros({2, 2});
  const auto path = save(linear_module(), "wrong_golden.pt",
                         {{"torchport/manifest.json", linear_manifest()},
                          {"torchport/golden.pt", golden_bytes({x}, {wrong})}});
  const auto bad = tp::selfcheck(tp::Model::load(path));
  EXPECT_FALSE(bad.ok());
  EXPECT_GT(bad.rows[0].max_abs_diff, 0.0);
  EXPECT_TRUE(tp::selfcheck(tp::Model::load(path), /*atol=*/1e3).ok());

  // A manifest tolerance is the default; explicit figures may be stricter.
  std::string tolerant = linear_manifest();
  tolerant.insert(tolerant.rfind('}'), R"(, "format": "torchscript", "tolerance": {"atol": 1000, "rtol": 0})");
  const auto loose = save(linear_module(), "tolerant_golden.pt",
                          {{"torchport/manifest.json", tolerant},
                           {"torchport/golden.pt", golden_bytes({x}, {wrong})}});
  const auto model_loose = tp::Model::load(loose);
  EXPECT_EQ(model_loose.manifest().atol, 1000.0);
  EXPECT_EQ(model_loose.manifest().format, "torchscript");
  EXPECT_TRUE(tp::selfcheck(model_loose).ok());
  EXPECT_FALSE(tp::selfcheck(model_loose, 0.0, 0.0).ok());
  EXPECT_NE(model_loose.manifest().to_json().find("\"tolerance\""), std::string::npos);
}

TEST(Manifest, ToleranceMustBeFiniteAndNonNegative) {
  for (const std::string bad : {R"({"atol": -1, "rtol": 0})", R"({"atol": 0})", R"("loose")"}) {
    std::string text = linear_manifest();
    text.insert(text.rfind('}'), R"(, "tolerance": )" + bad);
    expect_error([&] { tp::Manifest::from_json(text); }, tp::ErrorKind::BadArtifact, {"tolerance"});
  }
  std::string text = linear_manifest();
  text.insert(text.rfind('}'), R"(, "format": "tflite")");
  expect_error([&] { tp::Manifest::from_json(text); }, tp::ErrorKind::BadArtifact, {"format"});
}

TEST(Warmup, RunsAtLoadAndReportsItsCost) {
  tp::Options options;
  options.warmup_runs = 3;
  const auto model = tp::Model::load(linear_artifact(), options);
  EXPECT_GT(model.warmup_ms(), 0.0);
  EXPECT_EQ(tp::Model::load(linear_artifact()).warmup_ms(), 0.0);
}

TEST(Bench, ReportsOrderedPercentiles) {
  const auto model = tp::Model::load(linear_artifact());
  const auto r = tp::benchmark(model, model.example_inputs(), 50, 5);
  EXPECT_EQ(r.iters, 50);
  EXPECT_LE(r.min_ms, r.p50_ms);
  EXPECT_LE(r.p50_ms, r.p90_ms);
  EXPECT_LE(r.p90_ms, r.p99_ms);
  EXPECT_LE(r.p99_ms, r.max_ms);
  expect_error([&] { tp::benchmark(model, model.example_inputs(), 0, 0); }, tp::ErrorKind::BadOption,
               {"iters"});
}

TEST(Threads, ConcurrentRunsMatchSingleThreadedResults) {
  // 8 threads x 500 calls with batch sizes 1..16 against one shared Model.
  const auto model = tp::Model::load(linear_artifact());
  constexpr int kThreads = 8, kCalls = 500;
  std::vector<at::Tensor> inputs, expected;
  for (int i = 0; i < kCalls; ++i) {
    inputs.push_back(torch::rand({1 + i % 16, 4}));
    expected.push_back(model.run({inputs.back()})[0]);
  }
  std::atomic<int> mismatches{0}, errors{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        const int k = (i + t) % kCalls;
        try {
          if (!torch::equal(model.run({inputs[k]})[0], expected[k])) ++mismatches;
        } catch (...) {
          ++errors;
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(errors.load(), 0);
}

TEST(Contract, NamedDimsMustAgreeAcrossInputs) {
  const auto path = save(two_io_module(), "two_io_named.pt", {{"torchport/manifest.json", R"({"schema": 1,
      "name": "two", "torchport_version": "0", "torch_version": "0", "export_method": "script", "created": "",
      "inputs": [{"name": "a", "dtype": "float32", "shape": ["batch", "width"]},
                 {"name": "b", "dtype": "float32", "shape": ["batch", "width"]}],
      "outputs": [{"name": "sum", "dtype": "float32", "shape": ["batch", "width"]},
                  {"name": "prod", "dtype": "float32", "shape": ["batch", "width"]}]})"}});
  const auto model = tp::Model::load(path);
  EXPECT_EQ(model.run({torch::rand({3, 2}), torch::rand({3, 2})}).size(), 2u);
  EXPECT_EQ(model.run({torch::rand({5, 7}), torch::rand({5, 7})})[0].sizes(), (std::vector<int64_t>{5, 7}));
  expect_error([&] { model.run({torch::rand({3, 2}), torch::rand({4, 2})}); }, tp::ErrorKind::BadInput,
               {"input 'b': dim 0 (batch) is 4, but input 'a' has batch = 3"});
  expect_error([&] { model.run({torch::rand({3, 2}), torch::rand({3, 5})}); }, tp::ErrorKind::BadInput,
               {"input 'b': dim 1 (width) is 5, but input 'a' has width = 2"});
  EXPECT_NE(model.manifest().to_json().find("\"batch\""), std::string::npos);
}

TEST(Artifact, ChecksumMismatchIsRefusedUnlessDisabled) {
  std::string manifest = linear_manifest();
  manifest.replace(manifest.rfind('}'), 1, R"(, "checksum": "sha256:0000"})");
  auto m = linear_module();
  const auto x = torch::rand({2, 4});
  const auto path = save(m, "bad_checksum.pt",
                         {{"torchport/manifest.json", manifest},
                          {"torchport/golden.pt", golden_bytes({x}, {m.forward({x}).toTensor()})}});
  expect_error([&] { tp::Model::load(path); }, tp::ErrorKind::BadArtifact,
               {"checksum mismatch", "sha256:0000", "modified after export"});
  tp::Options options;
  options.verify_checksum = false;
  EXPECT_TRUE(tp::selfcheck(tp::Model::load(path, options)).ok());
}

namespace {
// Resident memory of this process in bytes (Linux).
size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}
}  // namespace

TEST(Lifetime, LoadingAndDroppingModelsDoesNotGrowMemory) {
#ifdef __SANITIZE_ADDRESS__
  // ASan holds freed memory in quarantine, so resident size says nothing
  // there; LeakSanitizer checks the same property in that build.
  GTEST_SKIP() << "resident-memory check is meaningless under AddressSanitizer";
#endif
  const auto path = linear_artifact("lifetime.pt");
  auto cycle = [&](int n) {
    for (int i = 0; i < n; ++i) {
      const auto model = tp::Model::load(path);
      model.run({torch::rand({1 + i % 8, 4})});
    }
  };
  cycle(50);  // allocator pools and LibTorch's caches settle
  const size_t before = resident_bytes();
  cycle(300);
  const size_t after = resident_bytes();
  std::cout << "[ lifetime ] 300 load/run/drop cycles: resident " << before / 1024 << " KB -> " << after / 1024
            << " KB\n";
  // A leak of one model per cycle (module, golden tensors, manifest: tens of
  // KB) would add several MB over 300 cycles.
  EXPECT_LT(after, before + 2 * 1024 * 1024) << "before " << before << " after " << after;
}

TEST(Fuzz, CorruptedArchivesWithoutChecksumAreCleanErrors) {
  // No checksum in this artifact, so every corruption reaches LibTorch's own
  // zip reader, unpickler and TorchScript compiler (the case of plain
  // TorchScript files); the runtime must turn each failure into an Error.
  const std::string whole = read_file(linear_artifact("fuzz_source.pt"));
  std::mt19937 rng(1234);
  int errors = 0, loaded = 0;
  for (int i = 0; i < 300; ++i) {
    std::string bytes = whole;
    switch (i % 3) {
      case 0:
        bytes.resize(rng() % bytes.size());
        break;
      case 1:
        for (int k = 0, n = 1 + static_cast<int>(rng() % 8); k < n; ++k) {
          bytes[rng() % bytes.size()] ^= static_cast<char>(1 << (rng() % 8));
        }
        break;
      default: {
        const size_t start = rng() % bytes.size();
        for (size_t k = start; k < std::min(bytes.size(), start + 1 + rng() % 64); ++k) bytes[k] = 0;
      }
    }
    const auto path = write_file("fuzz_case.pt", bytes);
    try {
      const auto model = tp::Model::load(path);
      model.run({torch::rand({2, 4})});
      ++loaded;
    } catch (const tp::Error&) {
      ++errors;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "case " << i << ": escaped as " << typeid(e).name() << ": " << e.what();
    }
  }
  std::cout << "[ fuzz     ] 300 corrupted archives: " << errors << " clean errors, " << loaded
            << " loaded and ran\n";
  EXPECT_EQ(errors + loaded, 300);
  EXPECT_GT(errors, 150);
}

// Schema 2: the output structure, bounded dims and constants (issue 8).
TEST(Manifest, Schema2StructureBoundsAndConstants) {
  std::string text = linear_manifest(2);
  text.replace(text.find("\"golden\": true"), 14, "\"golden\": false");
  text.replace(text.find("[null, 4]"), 9, R"(["batch", 4])");
  text.insert(text.rfind('}'), R"(, "dims": {"batch": {"min": 1, "max": 3}},
      "structure": {"type": "dict", "class": "Out", "keys": ["y"], "items": [{"type": "list", "items": [0]}]})");
  const auto m = tp::Manifest::from_json(text);
  EXPECT_EQ(m.dim_bounds.at("batch").max, 3);
  EXPECT_EQ(tp::Manifest::from_json(m.to_json()).structure_json, m.structure_json);

  const auto model = tp::Model::load(save(linear_module(), "structured.pt", {{"torchport/manifest.json", text}}));
  const tp::Outputs out = model.run_structured({at::rand({2, 4})});
  ASSERT_EQ(out.names, std::vector<std::string>{"y"});
  ASSERT_TRUE(out.structure.isGenericDict());
  const c10::IValue y = out.structure.toGenericDict().at("y");
  ASSERT_TRUE(y.isList());
  EXPECT_TRUE(y.toListRef()[0].toTensor().equal(out.tensors[0]));
  expect_error([&] { model.run({at::rand({5, 4})}); }, tp::ErrorKind::BadInput,
               {"input 'x'", "(batch) is 5, expected 1 to 3"});

  for (const std::string bad : {R"(, "structure": 1)", R"(, "structure": {"type": "tuple", "items": [0, 0]})",
                                R"(, "dims": {"seq": {"min": 1, "max": 2}})", R"(, "constants": {"k": [1]})"}) {
    std::string broken = linear_manifest(2);
    broken.insert(broken.rfind('}'), bad);
    EXPECT_THROW(tp::Manifest::from_json(broken), tp::Error) << bad;
  }
}

// Schema 3: a list with one item per batch element (issue 8's detection model).
TEST(Manifest, Schema3ListPerBatchElement) {
  torch::jit::Module m("PerRow");
  m.define(R"(
    def forward(self, x):
        return [{"row": x[i] * 2.0, "kept": x[i][x[i] > 0.5]} for i in range(x.size(0))]
  )");
  auto manifest = [](const std::string& structure, const std::string& first = "output_*.row", int schema = 3) {
    return R"({"schema": )" + std::to_string(schema) + R"(, "name": "per_row", "torchport_version": "0.1.0",
      "torch_version": "2.13.0", "export_method": "script", "created": "2026-01-01T00:00:00Z",
      "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 4]}],
      "outputs": [{"name": ")" + first + R"(", "dtype": "float32", "shape": [4]},
                  {"name": "output_*.kept", "dtype": "float32", "shape": [null], "data_dependent": [0]}],
      "metadata": {}, "golden": false, "structure": )" + structure + "}";
  };
  const std::string per_batch = R"({"type": "list", "per": "batch", "item": {"type": "dict", "keys": ["row", "kept"], "items": [0, 1]}})";
  const auto parsed = tp::Manifest::from_json(manifest(per_batch));
  EXPECT_EQ(tp::Manifest::from_json(parsed.to_json()).structure_json, parsed.structure_json);
  EXPECT_EQ(parsed.output_names_for(4), (std::vector<std::string>{"output_0.row", "output_0.kept", "output_1.row", "output_1.kept"}));
  expect_error([&] { parsed.output_names_for(3); }, tp::ErrorKind::Runtime, {"got 3 outputs", "0 + batch x 2"});

  const auto model = tp::Model::load(save(m, "per_row.pt", {{"torchport/manifest.json", manifest(per_batch)}}));
  for (const int64_t batch : {3, 1}) {
    const at::Tensor x = at::rand({batch, 4});
    const tp::Outputs out = model.run_structured({x});
    ASSERT_EQ(out.tensors.size(), static_cast<size_t>(2 * batch));
    EXPECT_EQ(out.names.back(), "output_" + std::to_string(batch - 1) + ".kept");
    ASSERT_TRUE(out.structure.isList());
    ASSERT_EQ(out.structure.toListRef().size(), static_cast<size_t>(batch));
    const auto last = out.structure.toListRef().back().toGenericDict();
    EXPECT_TRUE(last.at("row").toTensor().equal(x[batch - 1] * 2.0));
    EXPECT_TRUE(last.at("kept").toTensor().equal(x[batch - 1].masked_select(x[batch - 1] > 0.5)));
  }

  // Hostile or broken per-batch nodes are BadArtifact, never a crash.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {manifest(per_batch, "output_*.row", 2), "needs schema 3"},
      {manifest(R"({"type": "list", "per": "batch", "item": {"type": "list", "per": "batch", "item": {"type": "tuple", "items": [0, 1]}}})"),
       "nests inside another"},
      {manifest(R"({"type": "list", "per": "batch", "item": 7})"), "not an output index"},
      {manifest(R"({"type": "list", "per": "batch"})"), "needs its 'item'"},
      {manifest(R"({"type": "list", "per": "batch", "item": {"type": "tuple", "items": []}})"), "holds no output"},
      {manifest(R"({"type": "tuple", "per": "batch", "item": {"type": "tuple", "items": [0, 1]}})"), "only a list"},
      {manifest(R"({"type": "list", "per": "seq", "item": {"type": "tuple", "items": [0, 1]}})"), "'per' must be"},
      {manifest(R"({"type": "list", "per": "batch", "items": [0, 1], "item": {"type": "tuple", "items": [0, 1]}})"), "one 'item'"},
      {manifest(R"({"type": "list", "per": "batch", "item": {"type": "tuple", "items": [1, 0]}})"), "in order"},
      {manifest(R"({"type": "tuple", "items": [{"type": "list", "per": "batch", "item": 1}, 0]})"), "in order"},
      {manifest(R"({"type": "list", "item": 0, "items": [0, 1]})"), "'item' belongs"},
      {manifest(per_batch, "row"), "must hold one '*'"},
      {manifest(R"({"type": "tuple", "items": [0, {"type": "list", "per": "batch", "item": 1}]})", "output_7.kept"),
       "takes for one batch element"},
  };
  for (const auto& [text, why] : bad) {
    expect_error([&] { tp::Manifest::from_json(text); }, tp::ErrorKind::BadArtifact, {why});
  }
  std::string no_batch = manifest(per_batch);
  no_batch.replace(no_batch.find(R"(["batch", 4])"), 12, "[null, 4]");
  expect_error([&] { tp::Manifest::from_json(no_batch); }, tp::ErrorKind::BadArtifact, {"dim named \"batch\""});
}

// describe_outputs: the one rule for output order, names and structure (export calls it).
TEST(Structure, DescribeOutputsFindsAListPerBatchElement) {
  auto tensor = [](int64_t rows) {
    tp::ValueTree t;
    t.kind = "tensor";
    t.tensor = at::zeros({rows, 4});
    return t;
  };
  auto detections = [&](int64_t images) {  // [{"boxes": ..., "scores": ...} per image]
    tp::ValueTree list;
    list.kind = "list";
    for (int64_t i = 0; i < images; ++i) {
      tp::ValueTree d;
      d.kind = "dict";
      d.keys = {"boxes", "scores"};
      d.items = {tensor(i), tensor(1)};  // boxes kept: as many as the image's index
      list.items.push_back(d);
    }
    return list;
  };
  const tp::OutputLayout fixed = tp::describe_outputs(detections(2));
  EXPECT_EQ(fixed.names, (std::vector<std::string>{"output_0.boxes", "output_0.scores", "output_1.boxes", "output_1.scores"}));
  EXPECT_EQ(fixed.schema, 2);
  const auto at_three = detections(3);
  const tp::OutputLayout per = tp::describe_outputs(detections(2), 2, &at_three, 3);
  EXPECT_EQ(per.names, (std::vector<std::string>{"output_*.boxes", "output_*.scores"}));
  EXPECT_EQ(per.specs, (std::vector<size_t>{0, 1, 0, 1}));
  EXPECT_EQ(per.tensors.size(), 4u);
  EXPECT_EQ(per.schema, 3);
  EXPECT_EQ(per.structure_json,
            R"({"item":{"items":[0,1],"keys":["boxes","scores"],"type":"dict"},"per":"batch","type":"list"})");
  EXPECT_EQ(per.specs_for(6), (std::vector<size_t>{0, 1, 0, 1, 0, 1}));
  expect_error([&] { per.specs_for(5); }, tp::ErrorKind::Runtime, {"got 5 outputs"});
  // A list that does not follow the batch keeps its length.
  const auto at_two = detections(2);
  EXPECT_EQ(tp::describe_outputs(detections(2), 2, &at_two, 4).schema, 2);

  tp::ValueTree text;
  text.kind = "str";
  tp::ValueTree dict;
  dict.kind = "dict";
  dict.keys = {"y", "extra"};
  dict.items = {tensor(1), text};
  expect_error([&] { tp::describe_outputs(dict); }, tp::ErrorKind::BadOption, {"output 'extra' is a str"});
}
