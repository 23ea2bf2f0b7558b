// The dynamic batcher: one worker thread, a bounded queue, and batched calls
// split back into per-request results.

#include <torchport/batcher.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <iomanip>
#include <sstream>
#include <mutex>
#include <numeric>
#include <thread>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

namespace torchport {
namespace {

using clock = std::chrono::steady_clock;

struct Request {
  std::vector<at::Tensor> inputs;
  int64_t rows = 0;
  std::promise<std::vector<at::Tensor>> promise;
  clock::time_point queued;
};

// Requests go into one call only when every input agrees in all but the first
// dimension (and in dtype and device): torch.cat needs it.
bool compatible(const Request& a, const Request& b) {
  for (size_t i = 0; i < a.inputs.size(); ++i) {
    const at::Tensor &x = a.inputs[i], &y = b.inputs[i];
    if (x.scalar_type() != y.scalar_type() || x.device() != y.device() || x.dim() != y.dim()) return false;
    if (!std::equal(x.sizes().begin() + 1, x.sizes().end(), y.sizes().begin() + 1)) return false;
  }
  return true;
}

// The name of the first dimension all inputs and outputs share, or a message
// naming the tensor that does not have it.
void check_batchable(const Manifest& m) {
  auto refuse = [&](const std::string& why) {
    throw Error(ErrorKind::BadOption, "model '" + m.name + "' cannot be batched: " + why +
                                          " (every input and output needs the same dynamic first dimension, "
                                          "exported with dynamic_dims such as {'x': {0: 'batch'}})");
  };
  if (m.inputs.empty()) refuse("it has no inputs");
  std::string batch;
  auto check = [&](const TensorSpec& spec, const std::string& what) {
    const std::string where = what + " '" + spec.name + "'";
    if (!spec.shape || spec.shape->empty()) refuse(where + " has no declared shape");
    if ((*spec.shape)[0] >= 0) refuse(where + " has a fixed first dimension " + std::to_string((*spec.shape)[0]));
    const std::string name = spec.dim_names.empty() ? "" : spec.dim_names[0];
    if (name.empty()) refuse(where + " has an unnamed dynamic first dimension");
    if (batch.empty()) batch = name;
    if (name != batch) refuse(where + " has first dimension '" + name + "', expected '" + batch + "'");
  };
  for (const auto& spec : m.inputs) check(spec, "input");
  for (const auto& spec : m.outputs) check(spec, "output");
}

// A promise is kept once: a second answer (after a failure half-way through
// handing results out) is dropped rather than thrown from the worker.
void fail(Request& r, std::exception_ptr e) {
  try {
    r.promise.set_exception(std::move(e));
  } catch (const std::future_error&) {
  }
}

}  // namespace

struct Batcher::Impl {
  Model model;
  BatcherOptions options;
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::unique_ptr<Request>> queue;
  bool stopping = false;
  std::atomic<int64_t> batches{0}, requests{0};
  std::thread worker;

  Impl(Model m, BatcherOptions o) : model(std::move(m)), options(o) {}

  // Nothing escapes the worker (an exception there would end the process):
  // whatever goes wrong around a group fails that group's requests.
  void loop() {
    try {
      serve_queue();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex);
      stopping = true;
    }
    fail_waiting("the batcher for model '" + model.manifest().name + "' was stopped");
  }

  void serve_queue() {
    for (;;) {
      std::vector<std::unique_ptr<Request>> group;
      {
        std::unique_lock<std::mutex> lock(mutex);
        wake.wait(lock, [&] { return stopping || !queue.empty(); });
        if (stopping) break;
        // The oldest request waits at most max_delay for others to join it.
        const auto deadline = queue.front()->queued + std::chrono::duration_cast<clock::duration>(
                                                          std::chrono::duration<double, std::milli>(options.max_delay_ms));
        wake.wait_until(lock, deadline, [&] { return stopping || ready_rows() >= options.max_batch; });
        if (stopping) break;
        int64_t rows = 0;
        for (auto it = queue.begin(); it != queue.end();) {
          if (!group.empty() && !compatible(*group.front(), **it)) {
            ++it;
            continue;
          }
          if (rows + (*it)->rows > options.max_batch) break;
          rows += (*it)->rows;
          group.push_back(std::move(*it));
          it = queue.erase(it);
        }
      }
      try {
        run_group(group);
      } catch (...) {
        for (auto& r : group) fail(*r, std::current_exception());
      }
    }
  }

  // Stopping: nothing waiting is run; each waiting request gets a clean error.
  void fail_waiting(const std::string& why) {
    std::deque<std::unique_ptr<Request>> left;
    {
      std::lock_guard<std::mutex> lock(mutex);
      left.swap(queue);
    }
    for (auto& r : left) fail(*r, std::make_exception_ptr(Error(ErrorKind::Runtime, why)));
  }

  // Rows the head of the queue could be batched with now (called locked).
  int64_t ready_rows() const {
    int64_t rows = 0;
    for (const auto& r : queue) {
      if (compatible(*queue.front(), *r)) rows += r->rows;
    }
    return rows;
  }

  void run_alone(Request& r) {
    std::vector<at::Tensor> out;
    try {
      out = model.run(r.inputs);
    } catch (...) {
      fail(r, std::current_exception());
      return;
    }
    try {
      r.promise.set_value(std::move(out));
    } catch (const std::future_error&) {
    }
  }

  void run_group(std::vector<std::unique_ptr<Request>>& group) {
    batches += 1;
    requests += static_cast<int64_t>(group.size());
    if (group.size() == 1) {
      run_alone(*group.front());
      return;
    }
    std::vector<at::Tensor> outputs;
    int64_t total = 0;
    try {
      std::vector<at::Tensor> batched;
      for (size_t i = 0; i < group.front()->inputs.size(); ++i) {
        std::vector<at::Tensor> parts;
        for (const auto& r : group) parts.push_back(r->inputs[i]);
        batched.push_back(at::cat(parts, 0));  // [sum of rows, ...]
      }
      total = batched.front().size(0);
      outputs = model.run(batched);
      for (const auto& t : outputs) {
        if (t.dim() == 0 || t.size(0) != total) outputs.clear();
      }
    } catch (...) {
      outputs.clear();
    }
    if (outputs.empty()) {
      // A failed batch (one bad request, or outputs without the batch rows):
      // each request on its own, so each gets its own result or error.
      for (auto& r : group) run_alone(*r);
      return;
    }
    int64_t offset = 0;
    for (auto& r : group) {
      std::vector<at::Tensor> mine;
      mine.reserve(outputs.size());
      // Copies, so that one caller's result does not keep the whole batch alive.
      for (const auto& t : outputs) mine.push_back(t.narrow(0, offset, r->rows).clone());
      offset += r->rows;
      r->promise.set_value(std::move(mine));
    }
  }
};

Batcher::Batcher(Model model, BatcherOptions options) {
  auto text = [](double v) {
    std::ostringstream out;
    out << std::setprecision(17) << v;
    return out.str();
  };
  auto range = [&](const char* name, double value, double lo, double hi) {
    if (!(value >= lo && value <= hi)) {  // NaN too
      throw Error(ErrorKind::BadOption, std::string(name) + ": expected " + text(lo) + " to " + text(hi) + ", got " +
                                            text(value));
    }
  };
  range("max_batch", options.max_batch, 1, 4096);
  range("max_delay_ms", options.max_delay_ms, 0, 10'000);
  range("max_queue", options.max_queue, 1, 1'000'000);
  check_batchable(model.manifest());
  impl_ = std::make_unique<Impl>(std::move(model), options);
  impl_->worker = std::thread([impl = impl_.get()] { impl->loop(); });
}

Batcher::~Batcher() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  impl_->worker.join();
}

std::future<std::vector<at::Tensor>> Batcher::submit(std::vector<at::Tensor> inputs) {
  const Manifest& m = impl_->model.manifest();
  if (inputs.size() != m.inputs.size()) {
    throw Error(ErrorKind::BadInput, "model '" + m.name + "' takes " + std::to_string(m.inputs.size()) +
                                         " inputs, got " + std::to_string(inputs.size()));
  }
  auto request = std::make_unique<Request>();
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string where = "input '" + m.inputs[i].name + "'";
    if (!inputs[i].defined() || inputs[i].dim() == 0) {
      throw Error(ErrorKind::BadInput, where + ": expected a tensor with a batch dimension, got " +
                                           (inputs[i].defined() ? "a scalar" : "none (the batcher takes every input)"));
    }
    const int64_t rows = inputs[i].size(0);
    if (i == 0) request->rows = rows;
    if (rows != request->rows) {
      throw Error(ErrorKind::BadInput, where + ": expected " + std::to_string(request->rows) +
                                           " rows like the first input, got " + std::to_string(rows));
    }
  }
  if (request->rows < 1 || request->rows > impl_->options.max_batch) {
    throw Error(ErrorKind::BadInput, "a request must hold 1 to max_batch (" +
                                         std::to_string(impl_->options.max_batch) + ") rows, got " +
                                         std::to_string(request->rows));
  }
  // The request owns a copy: the caller may refill (or free) its buffers as
  // soon as submit returns, and the worker never frees memory the caller's
  // runtime (Python) owns.
  try {
    request->inputs.reserve(inputs.size());
    for (const auto& t : inputs) request->inputs.push_back(t.clone(at::MemoryFormat::Contiguous));
  } catch (const std::bad_alloc&) {
    throw Error(ErrorKind::BadInput, "model '" + m.name + "': the request's " + std::to_string(request->rows) +
                                         " rows could not be copied (out of memory)");
  }
  inputs.clear();
  auto future = request->promise.get_future();
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (impl_->stopping) {
      throw Error(ErrorKind::Runtime, "the batcher for model '" + m.name + "' was stopped");
    }
    if (static_cast<int64_t>(impl_->queue.size()) >= impl_->options.max_queue) {
      throw Error(ErrorKind::Runtime, "the batcher for model '" + m.name + "' is full: " +
                                          std::to_string(impl_->options.max_queue) +
                                          " requests already wait (max_queue); retry later or raise max_queue");
    }
    request->queued = clock::now();
    impl_->queue.push_back(std::move(request));
  }
  impl_->wake.notify_one();
  return future;
}

std::vector<at::Tensor> Batcher::run(std::vector<at::Tensor> inputs) { return submit(std::move(inputs)).get(); }

const BatcherOptions& Batcher::options() const { return impl_->options; }
int64_t Batcher::batches() const { return impl_->batches; }
int64_t Batcher::requests() const { return impl_->requests; }

namespace {

template <typename Call>
ServeStats serve(const std::vector<at::Tensor>& one, int clients, int requests, Call call) {
  std::vector<std::vector<double>> times(clients);
  std::vector<std::thread> threads;
  std::exception_ptr failure;
  std::mutex failure_mutex;
  const auto start = clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      try {
        for (int i = 0; i < requests; ++i) {
          const auto t0 = clock::now();
          call(one);
          times[c].push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(failure_mutex);
        failure = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  if (failure) std::rethrow_exception(failure);
  ServeStats s;
  s.seconds = std::chrono::duration<double>(clock::now() - start).count();
  std::vector<double> all;
  for (const auto& v : times) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  s.requests_per_s = static_cast<double>(all.size()) / s.seconds;
  s.p50_ms = all[all.size() / 2];
  s.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  return s;
}

}  // namespace

std::pair<ServeStats, ServeStats> serve_bench(const Model& model, const BatcherOptions& options, int clients,
                                              int requests) {
  if (clients < 1 || clients > 1024) {
    throw Error(ErrorKind::BadOption, "clients: expected 1 to 1024, got " + std::to_string(clients));
  }
  if (requests < 1 || requests > 1'000'000) {
    throw Error(ErrorKind::BadOption, "requests: expected 1 to 1000000, got " + std::to_string(requests));
  }
  Batcher batcher(model, options);  // refuses an unbatchable model before anything runs
  std::vector<at::Tensor> one;
  for (const auto& t : model.example_inputs()) one.push_back(t.narrow(0, 0, 1).contiguous());
  for (int i = 0; i < 3; ++i) model.run(one);  // past the first calls' cost
  const ServeStats plain = serve(one, clients, requests, [&](const auto& x) { model.run(x); });
  ServeStats batched = serve(one, clients, requests, [&](const auto& x) { batcher.run(x); });
  batched.mean_batch = static_cast<double>(batcher.requests()) / static_cast<double>(std::max<int64_t>(1, batcher.batches()));
  return {plain, batched};
}

std::string serve_bench_json(const std::pair<ServeStats, ServeStats>& result, const BatcherOptions& options,
                             int clients, int requests, int indent) {
  auto row = [](const ServeStats& s) {
    return nlohmann::json{{"seconds", s.seconds}, {"requests_per_s", s.requests_per_s}, {"p50_ms", s.p50_ms},
                          {"p99_ms", s.p99_ms}, {"mean_batch", s.mean_batch}};
  };
  nlohmann::json out = {
      {"clients", clients},
      {"requests_per_client", requests},
      {"max_batch", options.max_batch},
      {"max_delay_ms", options.max_delay_ms},
      {"max_queue", options.max_queue},
      {"unbatched", row(result.first)},
      {"batched", row(result.second)},
      {"throughput_ratio", result.second.requests_per_s / result.first.requests_per_s},
  };
  return out.dump(indent);
}

}  // namespace torchport
