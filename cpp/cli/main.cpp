// torchport-run: the runtime as a command. Argument parsing and printing only;
// every behaviour lives in the torchport::runtime library.

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <torchport/io.h>
#include <torchport/tools.h>
#include <torchport/torchport.h>

namespace {

// Exit codes, stable for scripts.
constexpr int kOk = 0;
constexpr int kMismatch = 1;
constexpr int kUsage = 2;
constexpr int kBadArtifact = 3;
constexpr int kBadInput = 4;
constexpr int kRuntime = 5;

const char* kUsageText =
    R"(usage: torchport-run COMMAND ARTIFACT [options]

Runs a torchport (or plain TorchScript) artifact with the C++ runtime.

commands:
  info ARTIFACT                         print the manifest as JSON
  predict ARTIFACT --input IN --output OUT [--check-nan yes]
                                        run the model on IN (a torch.save file holding a tensor,
                                        a list of tensors or a dict by input name); write OUT,
                                        readable by torch.load: a tensor for one output, else a
                                        tuple in manifest output order; --check-nan yes refuses
                                        inputs holding NaN or Inf
  selfcheck ARTIFACT [--atol A] [--rtol R]
                                        run the golden inputs, compare with the golden outputs
                                        (exact by default); print a JSON report
  bench ARTIFACT [--iters N] [--warmup N] [--input IN]
                                        time repeated runs; print JSON with first-call latency
                                        and p50/p90/p99 in milliseconds
  submodule ARTIFACT --name NAME --input IN --output OUT [--name ... --input ... --output ...]
                                        run a submodule's forward() ("features.3"; "" is the
                                        model) on IN (a list of tensors: its arguments; a dict:
                                        by keyword), without the model's input contract; write
                                        its tensors, flattened depth first, to OUT; repeat the
                                        three options for more submodules in one process (used
                                        by torchport.localize)

options for every command:
  --device DEV     cpu (default), cuda, cuda:N
  --threads N      intra-op threads (default: LibTorch's)
  --load-library PATH
                   a shared library of custom operators to load before the model
                   (repeatable; needed when the model calls ops outside aten::)
  -h, --help       this text
  --version        versions of torchport and of the torch it was built with

exit codes: 0 ok, 1 selfcheck mismatch, 2 usage or bad option, 3 artifact missing or
unreadable, 4 bad input, 5 the model failed while running.
)";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Args {
  std::string command, artifact;
  std::map<std::string, std::string> options;
  std::vector<std::string> libraries;  // --load-library, repeatable
  std::vector<std::pair<std::string, std::string>> sequence;  // every option, in order

  bool has(const std::string& key) const { return options.count(key) > 0; }
  std::string get(const std::string& key, const std::string& fallback = "") const {
    auto it = options.find(key);
    return it == options.end() ? fallback : it->second;
  }
  std::string require(const std::string& key) const {
    if (!has(key)) throw UsageError(command + " needs --" + key);
    return get(key);
  }
  template <typename T>
  T number(const std::string& key, T fallback) const {
    if (!has(key)) return fallback;
    const std::string text = get(key);
    try {
      size_t used = 0;
      T value;
      if constexpr (std::is_integral_v<T>) {
        value = static_cast<T>(std::stoll(text, &used));
      } else {
        value = static_cast<T>(std::stod(text, &used));
      }
      if (used != text.size()) throw std::invalid_argument(text);
      return value;
    } catch (const std::exception&) {
      throw UsageError("--" + key + ": expected a number, got '" + text + "'");
    }
  }
};

Args parse(int argc, char** argv) {
  const std::map<std::string, std::vector<std::string>> allowed = {
      {"info", {"device", "threads"}},
      {"predict", {"device", "threads", "input", "output", "check-nan"}},
      {"selfcheck", {"device", "threads", "atol", "rtol"}},
      {"bench", {"device", "threads", "iters", "warmup", "input"}},
      {"submodule", {"device", "threads", "name", "input", "output"}},
  };
  Args args;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) == 0 && a.size() > 2) {
      std::string key = a.substr(2), value;
      const auto eq = key.find('=');
      if (eq != std::string::npos) {
        value = key.substr(eq + 1);
        key = key.substr(0, eq);
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        throw UsageError("--" + key + " needs a value");
      }
      args.sequence.emplace_back(key, value);
      if (key == "load-library") {
        args.libraries.push_back(value);
      } else {
        args.options[key] = value;
      }
    } else {
      positional.push_back(a);
    }
  }
  if (positional.empty()) throw UsageError("missing COMMAND");
  args.command = positional[0];
  auto it = allowed.find(args.command);
  if (it == allowed.end()) throw UsageError("unknown command '" + args.command + "'");
  if (positional.size() < 2) throw UsageError(args.command + " needs an ARTIFACT");
  if (positional.size() > 2) throw UsageError("unexpected argument '" + positional[2] + "'");
  args.artifact = positional[1];
  for (const auto& [key, value] : args.options) {
    const auto& ok = it->second;
    if (std::find(ok.begin(), ok.end(), key) == ok.end()) {
      throw UsageError("unknown option --" + key + " for " + args.command);
    }
  }
  return args;
}

int exit_code(torchport::ErrorKind kind) {
  switch (kind) {
    case torchport::ErrorKind::NotFound:
    case torchport::ErrorKind::BadArtifact: return kBadArtifact;
    case torchport::ErrorKind::BadInput: return kBadInput;
    case torchport::ErrorKind::BadOption: return kUsage;
    case torchport::ErrorKind::Runtime: return kRuntime;
  }
  return kRuntime;
}

int run_command(const Args& args) {
  torchport::Options options;
  options.device = args.get("device", "cpu");
  options.threads = args.number<int>("threads", 0);
  const std::string check_nan = args.get("check-nan", "no");
  if (check_nan != "yes" && check_nan != "no") {
    throw UsageError("--check-nan: expected yes or no, got '" + check_nan + "'");
  }
  options.check_nan = check_nan == "yes";
  options.libraries = args.libraries;
  const auto model = torchport::Model::load(args.artifact, options);

  if (args.command == "info") {
    std::cout << model.manifest().to_json() << "\n";
    return kOk;
  }
  if (args.command == "predict") {
    const auto inputs = torchport::read_tensor_file(args.require("input"));
    const std::string output = args.require("output");
    torchport::write_tensor_file(output, torchport::run(model, inputs));
    return kOk;
  }
  if (args.command == "selfcheck") {
    const auto report =
        torchport::selfcheck(model, args.number<double>("atol", 0.0), args.number<double>("rtol", 0.0));
    std::cout << report.to_json() << "\n";
    return report.ok() ? kOk : kMismatch;
  }
  if (args.command == "submodule") {
    std::map<std::string, std::vector<std::string>> calls;  // name, input, output: in order
    for (const auto& [key, value] : args.sequence) calls[key].push_back(value);
    const auto& names = calls["name"];
    if (names.empty()) throw UsageError("submodule needs --name");
    if (calls["input"].size() != names.size() || calls["output"].size() != names.size()) {
      throw UsageError("submodule needs one --input and one --output per --name (got " +
                       std::to_string(names.size()) + " --name, " + std::to_string(calls["input"].size()) +
                       " --input, " + std::to_string(calls["output"].size()) + " --output)");
    }
    for (size_t i = 0; i < names.size(); ++i) {
      torchport::run_submodule_file(model, names[i], calls["input"][i], calls["output"][i]);
    }
    return kOk;
  }
  // bench
  const auto inputs = args.has("input")
                          ? torchport::positional_inputs(model, torchport::read_tensor_file(args.get("input")))
                          : model.example_inputs();
  const auto result = torchport::benchmark(model, inputs, args.number<int>("iters", 100),
                                           args.number<int>("warmup", 10));
  std::cout << result.to_json() << "\n";
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsageText;
      return kOk;
    }
    if (a == "--version") {
      std::cout << "torchport-run " << torchport::version() << " (torch " << torchport::torch_version()
                << ")\n";
      return kOk;
    }
  }
  try {
    return run_command(parse(argc, argv));
  } catch (const UsageError& e) {
    std::cerr << "torchport-run: " << e.what() << "\n(see torchport-run --help)\n";
    return kUsage;
  } catch (const torchport::Error& e) {
    std::cerr << "torchport-run: error[" << torchport::to_string(e.kind()) << "]: " << e.what() << "\n";
    return exit_code(e.kind());
  } catch (const std::exception& e) {
    std::cerr << "torchport-run: internal error: " << e.what() << "\n";
    return kRuntime;
  }
}
