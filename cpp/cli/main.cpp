// torchport-run: the runtime as a command. Argument parsing (CLI11) and
// printing only; every behaviour lives in the torchport::runtime library.

#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <torchport/answers.h>
#include <torchport/batcher.h>
#include <torchport/io.h>
#include <torchport/tools.h>
#include <torchport/torchport.h>

namespace {

constexpr const char* kFooter = R"(exit codes: 0 ok, 1 selfcheck mismatch, 2 usage or bad option, 3 artifact missing or
unreadable, 4 bad input, 5 the model failed while running, 9 an output could not be written,
10 a backend is not installed (a .pte without ExecuTorch: pip install 'torchport[executorch]'; an .onnx
without ONNX Runtime: pip install onnxruntime, or --onnxruntime PATH)
(the table, shared with the torchport command, is in docs/runtime.md).)";

struct Settings {
  std::string artifact, device = "cpu", input, check_nan = "no", format = "tensors";
  int threads = 0, iters = 100, warmup = 10, top_k = 3;
  double atol = 0.0, rtol = 0.0;
  std::vector<std::string> libraries;                    // --load-library, repeatable
  std::vector<std::string> names, sub_inputs, sub_outputs;  // submodule: one of each per call
  bool atol_given = false, rtol_given = false;
  int concurrency = torchport::Options{}.concurrency;
  std::string optimize_graph = "yes";
  std::string profile;  // --profile: torchport tune's settings
  std::string onnxruntime, onnx_optimization;  // ONNX models only
  std::vector<std::string> pred_inputs, pred_outputs;  // predict: one --output per --input
  int clients = 16, requests = 200;                     // serve-bench
  torchport::BatcherOptions batcher;
};

const CLI::Validator kFiniteNonNegative(
    [](std::string& text) -> std::string {
      double v = 0;
      if (!CLI::detail::lexical_cast(text, v) || !std::isfinite(v) || v < 0) {
        return "expected a finite number >= 0, got '" + text + "'";
      }
      return "";
    },
    "FLOAT>=0");

CLI::App* command(CLI::App& app, const std::string& name, const std::string& help, Settings& s) {
  CLI::App* sub = app.add_subcommand(name, help);
  sub->add_option("ARTIFACT", s.artifact, "a torchport artifact (.pt, .pt2, .pte, .onnx) or a plain TorchScript file")->required();
  sub->add_option("--device", s.device, "cpu (default), cuda, cuda:N");
  sub->add_option("--threads", s.threads, "intra-op threads, 0 = LibTorch's default")
      ->check(CLI::Range(0, torchport::max_threads()));
  sub->add_option("--load-library", s.libraries,
                  "a shared library of custom operators to load before the model (repeatable; needed "
                  "when the model calls operators outside aten::)")
      ->allow_extra_args(false);
  sub->add_option("--concurrency", s.concurrency, "concurrent runners of a .pt2 package or .pte program (default 4)")
      ->check(CLI::Range(1, torchport::kMaxConcurrency));
  sub->add_option("--optimize-graph", s.optimize_graph,
                  "no: run a TorchScript graph without the profiling executor's optimising passes, so the "
                  "first call costs about what later ones do (default yes)")
      ->check(CLI::IsMember({"yes", "no"}));
  sub->add_option("--onnxruntime", s.onnxruntime,
                  "ONNX models: the libonnxruntime.so to load (default: $TORCHPORT_ONNXRUNTIME, else the "
                  "onnxruntime wheel beside torch, else the loader's search path)");
  sub->add_option("--onnx-optimization", s.onnx_optimization,
                  "ONNX models: ONNX Runtime's graph optimisation level (default all)")
      ->check(CLI::IsMember({"all", "extended", "basic", "none"}));
  sub->add_option("--profile", s.profile,
                  "a profile written by torchport tune: its settings (format, level, threads, optimize-graph, "
                  "warm-up) apply where no option here sets them; refused if tuned for another artifact");
  return sub;
}

int run(const std::string& name, const Settings& s) {
  torchport::Options options;
  options.device = s.device;
  options.threads = s.threads;
  options.concurrency = s.concurrency;
  options.check_nan = s.check_nan == "yes";
  options.libraries = s.libraries;
  options.optimize_graph = s.optimize_graph == "yes";
  options.profile = s.profile;
  options.onnxruntime = s.onnxruntime;
  options.onnx_optimization = s.onnx_optimization;
  const auto model = torchport::Model::load(s.artifact, options);
  if (!s.profile.empty()) {
    // On stderr, so that info's stdout stays the manifest JSON.
    const auto& o = model.options();
    std::cerr << "torchport-run: profile '" << s.profile << "' applied: " << model.path() << " (" << model.format()
              << "), threads " << o.threads << ", optimize " << (o.optimize.empty() ? "as exported" : o.optimize)
              << ", optimize-graph " << (o.optimize_graph ? "yes" : "no") << ", warmup_runs " << o.warmup_runs
              << "\n";
  }

  if (name == "info") {
    std::cout << model.manifest().to_json() << "\n";
    return 0;
  }
  if (name == "predict") {
    if (s.pred_outputs.size() != s.pred_inputs.size()) {
      throw torchport::Error(torchport::ErrorKind::BadOption,
                             "predict needs one --output per --input (got " + std::to_string(s.pred_inputs.size()) +
                                 " --input, " + std::to_string(s.pred_outputs.size()) + " --output)");
    }
    // Every output is refused before anything runs: none may replace the
    // artifact, an input, or another output of this command.
    std::vector<std::string> protect = {s.artifact};
    protect.insert(protect.end(), s.pred_inputs.begin(), s.pred_inputs.end());
    for (size_t i = 0; i < s.pred_outputs.size(); ++i) {
      torchport::check_output_path(s.pred_outputs[i], protect);
      for (size_t j = 0; j < i; ++j) {
        if (s.pred_outputs[j] == s.pred_outputs[i]) {
          throw torchport::Error(torchport::ErrorKind::BadOption,
                                 "--output '" + s.pred_outputs[i] + "' is given twice");
        }
      }
    }
    // One load for all pairs, in order; the first failure stops the command
    // (outputs already written stay).
    for (size_t i = 0; i < s.pred_inputs.size(); ++i) {
      const auto outputs = torchport::run(model, torchport::read_input_file(s.pred_inputs[i], model.manifest()));
      if (s.format == "tensors") {
        torchport::write_outputs_file(s.pred_outputs[i], model.structure_outputs(outputs), protect);
      } else {
        torchport::write_file(s.pred_outputs[i], torchport::format_answers(outputs, model.manifest(), s.format, s.top_k),
                              /*overwrite=*/true, protect);
      }
    }
    return 0;
  }
  if (name == "serve-bench") {
    const auto result = torchport::serve_bench(model, s.batcher, s.clients, s.requests);
    std::cout << torchport::serve_bench_json(result, s.batcher, s.clients, s.requests) << "\n";
    return 0;
  }
  if (name == "submodule") {
    if (s.sub_inputs.size() != s.names.size() || s.sub_outputs.size() != s.names.size()) {
      throw torchport::Error(torchport::ErrorKind::BadOption,
                             "submodule needs one --input and one --output per --name (got " +
                                 std::to_string(s.names.size()) + " --name, " + std::to_string(s.sub_inputs.size()) +
                                 " --input, " + std::to_string(s.sub_outputs.size()) + " --output)");
    }
    for (size_t i = 0; i < s.names.size(); ++i) {
      torchport::run_submodule_file(model, s.names[i], s.sub_inputs[i], s.sub_outputs[i]);
    }
    return 0;
  }
  if (name == "selfcheck") {
    // Without --atol/--rtol, the manifest's tolerance (bit-exact unless it says).
    const bool given = s.atol_given || s.rtol_given;
    const auto report = given ? torchport::selfcheck(model, s.atol, s.rtol) : torchport::selfcheck(model);
    std::cout << report.to_json() << "\n";
    return report.ok() ? 0 : torchport::kExitMismatch;
  }
  const auto inputs = s.input.empty()
                          ? model.example_inputs()
                          : torchport::positional_inputs(model, torchport::read_input_file(s.input, model.manifest()));
  std::cout << torchport::benchmark(model, inputs, s.iters, s.warmup).to_json() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Runs a torchport artifact (a TorchScript archive, an AOTInductor .pt2 package, an ExecuTorch .pte "
               "or an ONNX model, told apart by content; or a plain TorchScript or ONNX file) with the C++ runtime. "
               "ONNX models run on ONNX Runtime, loaded at run time (--onnxruntime, $TORCHPORT_ONNXRUNTIME, or the "
               "onnxruntime wheel beside torch).", "torchport-run");
  app.footer(kFooter);
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("torchport-run ") + torchport::version() + " (torch " +
                                        torchport::torch_version() + ")");
  Settings s;

  command(app, "info", "print the manifest as JSON", s);

  CLI::App* predict = command(
      app, "predict",
      "run the model on IN (a torch.save file holding a tensor, a list of tensors or a dict by input "
      "name, where an optional input may be left out); write OUT, readable by plain torch.load: the outputs "
      "nested as the exported model returned them (a tensor, a tuple in manifest output order, or the "
      "model's dicts and lists). OUT may not be the artifact or an IN. Repeat --input and --output to run many "
      "files with one load, in order; the first failure stops (outputs written before it stay).",
      s);
  predict->add_option("--input", s.pred_inputs, "input file: torch.save, .npy, .npz (arrays by input name, or arr_0, arr_1... by position), CSV rows with a header for a model whose manifest has features, or a "
                      "PNG/JPEG picture (uint8 [1, H, W, 3] RGB); repeatable")
      ->required()
      ->allow_extra_args(false);
  predict->add_option("--output", s.pred_outputs, "output file, replaced atomically; one per --input")
      ->required()
      ->allow_extra_args(false);
  predict->add_option("--format", s.format,
                      "tensors (default: a torch.save file), json or csv: named outputs, one record per sample, "
                      "with the label and the top-k labels and scores when the manifest has labels")
      ->check(CLI::IsMember({"tensors", "json", "csv"}));
  predict->add_option("--top-k", s.top_k, "labels and scores per sample with --format json|csv (default 3)")
      ->check(CLI::Range(1, 1'000'000));
  predict->add_option("--check-nan", s.check_nan, "yes: refuse inputs holding NaN or Inf")
      ->check(CLI::IsMember({"yes", "no"}));

  CLI::App* selfcheck = command(
      app, "selfcheck",
      "run the golden inputs, compare with the golden outputs (exact by default); print a JSON report", s);
  CLI::Option* atol = selfcheck->add_option("--atol", s.atol, "absolute tolerance (default: the manifest's)")
                          ->check(kFiniteNonNegative);
  CLI::Option* rtol = selfcheck->add_option("--rtol", s.rtol, "relative tolerance (default: the manifest's)")
                          ->check(kFiniteNonNegative);

  CLI::App* bench = command(
      app, "bench", "time repeated runs; print JSON with first-call latency and p50/p90/p99 in ms", s);
  bench->add_option("--iters", s.iters, "timed runs (default 100)")->check(CLI::Range(1, 10'000'000));
  bench->add_option("--warmup", s.warmup, "untimed runs first (default 10)")->check(CLI::Range(0, 10'000'000));
  bench->add_option("--input", s.input, "input file (default: the golden inputs)");

  CLI::App* serve = command(
      app, "serve-bench",
      "CLIENTS threads each send REQUESTS single-row requests (the first row of the golden inputs), first "
      "calling the model directly, then through the dynamic batcher; print JSON with throughput and "
      "p50/p99 latency of both",
      s);
  serve->add_option("--clients", s.clients, "concurrent client threads (default 16)")->check(CLI::Range(1, 1024));
  serve->add_option("--requests", s.requests, "requests per client (default 200)")->check(CLI::Range(1, 1'000'000));
  serve->add_option("--max-batch", s.batcher.max_batch, "rows per batched call (default 16)")
      ->check(CLI::Range(1, 4096));
  serve->add_option("--max-delay-ms", s.batcher.max_delay_ms, "longest wait for a batch to fill (default 2)")
      ->check(CLI::Range(0.0, 10'000.0));
  serve->add_option("--max-queue", s.batcher.max_queue, "requests waiting at most (default 1024)")
      ->check(CLI::Range(1, 1'000'000));

  CLI::App* submodule = command(
      app, "submodule",
      "run a submodule's forward() (\"features.3\"; \"\" is the model) on IN (a list of tensors: its "
      "arguments; a dict: by keyword), without the model's input contract; write its tensors, flattened "
      "depth first, to OUT. Repeat the three options for more submodules in one process (used by "
      "torchport.localize).",
      s);
  submodule->add_option("--name", s.names, "qualified submodule name")->required()->allow_extra_args(false);
  submodule->add_option("--input", s.sub_inputs, "its arguments (torch.save)")->required()->allow_extra_args(false);
  submodule->add_option("--output", s.sub_outputs, "its tensors, replaced atomically")
      ->required()
      ->allow_extra_args(false);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "torchport-run: " << e.what() << "\n(see torchport-run --help)\n";
    return torchport::kExitUsage;
  }
  s.atol_given = atol->count() > 0;
  s.rtol_given = rtol->count() > 0;
  const std::string name = app.get_subcommands().front()->get_name();
  try {
    return run(name, s);
  } catch (const torchport::Error& e) {
    std::cerr << "torchport-run: error[" << torchport::to_string(e.kind()) << "]: " << e.what() << "\n";
    return torchport::exit_code(e.kind());
  } catch (const std::exception& e) {
    std::cerr << "torchport-run: internal error: " << e.what() << "\n";
    return torchport::exit_code(torchport::ErrorKind::Runtime);
  }
}
