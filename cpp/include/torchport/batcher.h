#pragma once
// Dynamic batching in the process: concurrent callers submit single requests,
// one worker groups them along the shared batch dimension, runs one batched
// Model::run and hands each caller its rows back.

#include <future>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include <torchport/torchport.h>

namespace torchport {

/// How a Batcher groups requests.
struct BatcherOptions {
  int max_batch = 16;         ///< rows in one batched call, 1 to 4096
  double max_delay_ms = 2.0;  ///< how long the oldest waiting request may wait for others, 0 to 10,000
  int max_queue = 1024;       ///< requests waiting at most; a submit beyond is refused at once, 1 to 1,000,000
};

/// Groups concurrent requests into batched calls of one Model. Every input and
/// output of the model must share a dynamic first dimension (the batch,
/// `["batch", ...]` in the manifest); other models are refused at construction.
/// A request's rows come back exactly as Model::run would give them for the
/// same rows in a batch; a request whose batched call fails is run on its own,
/// so a bad request fails alone, with the error Model::run gives it.
///
///     torchport::Batcher batcher(model, {.max_batch = 16, .max_delay_ms = 2});
///     auto outputs = batcher.submit({image}).get();  // image: [1, C, H, W]
class Batcher {
 public:
  /// Throws BadOption for options out of range and for a model without a shared
  /// dynamic batch dimension (the message says which input or output lacks it).
  explicit Batcher(Model model, BatcherOptions options = {});
  /// Finishes the batch in flight, then stops the worker; requests still waiting
  /// (and any submit racing with the destructor) fail with a Runtime error.
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  /// Queues one request (inputs in manifest order, each with the same number of
  /// rows, at most max_batch). The inputs are copied: the caller may reuse its
  /// buffers once submit returns. Throws BadInput for a malformed request and
  /// Runtime, at once, when max_queue requests are already waiting.
  std::future<std::vector<at::Tensor>> submit(std::vector<at::Tensor> inputs);
  /// submit(inputs).get().
  std::vector<at::Tensor> run(std::vector<at::Tensor> inputs);

  const BatcherOptions& options() const;
  /// Batched calls made so far, and the requests they carried.
  int64_t batches() const;
  int64_t requests() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// What serve_bench measured for one way of serving.
struct ServeStats {
  double seconds = 0, requests_per_s = 0, p50_ms = 0, p99_ms = 0, mean_batch = 1;
};

/// `clients` threads each send `requests` single-row requests (the example
/// inputs' first row) one after another: first each calling Model::run itself,
/// then through a Batcher with `options`. Returns {unbatched, batched}.
std::pair<ServeStats, ServeStats> serve_bench(const Model& model, const BatcherOptions& options, int clients,
                                              int requests);

/// serve_bench's result as JSON text.
std::string serve_bench_json(const std::pair<ServeStats, ServeStats>& result, const BatcherOptions& options,
                             int clients, int requests, int indent = 2);

}  // namespace torchport
