// torchport::Batcher: grouping, back-pressure, refusal of unbatchable models.

#include <future>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <torchport/batcher.h>
#include <torchport/torchport.h>

#include "fixtures.h"

namespace tp = torchport;
using namespace torchport::testing;

namespace {

// The linear fixture with its dynamic first dimension named "batch".
std::string batched_linear() {
  std::string manifest = linear_manifest();
  for (const std::string shape : {"[null, 4]", "[null, 2]"}) {
    manifest.replace(manifest.find(shape), shape.size(), "[\"batch\", " + shape.substr(7));
  }
  auto m = linear_module();
  const auto x = torch::rand({2, 4});
  return save(m, "batched_linear.pt",
              {{"torchport/manifest.json", manifest},
               {"torchport/golden.pt", golden_bytes({x}, {m.forward({x}).toTensor()})}});
}

}  // namespace

TEST(Batcher, GroupsRequestsIntoOneCallWithTheirOwnRows) {
  const auto model = tp::Model::load(batched_linear());
  tp::Batcher batcher(model, {.max_batch = 8, .max_delay_ms = 10'000, .max_queue = 64});
  std::vector<at::Tensor> xs;
  std::vector<std::future<std::vector<at::Tensor>>> futures;
  for (int i = 0; i < 8; ++i) {
    xs.push_back(torch::rand({1, 4}));
    futures.push_back(batcher.submit({xs.back()}));
  }
  const auto whole = model.run({torch::cat(xs)})[0];
  for (int i = 0; i < 8; ++i) {
    EXPECT_TRUE(torch::equal(futures[i].get()[0], whole.narrow(0, i, 1))) << i;
  }
  EXPECT_EQ(batcher.batches(), 1);
  EXPECT_EQ(batcher.requests(), 8);
}

TEST(Batcher, RefusesAFullQueueAtOnce) {
  tp::Batcher batcher(tp::Model::load(batched_linear()), {.max_batch = 8, .max_delay_ms = 10'000, .max_queue = 1});
  auto first = batcher.submit({torch::rand({1, 4})});
  expect_error([&] { batcher.submit({torch::rand({1, 4})}); }, tp::ErrorKind::Runtime, {"is full", "max_queue"});
}

TEST(Batcher, RefusesModelsWithoutASharedBatchDimension) {
  expect_error([] { tp::Batcher batcher(tp::Model::load(linear_artifact())); }, tp::ErrorKind::BadOption,
               {"cannot be batched", "input 'x' has an unnamed dynamic first dimension"});
  expect_error([] { tp::Batcher batcher(tp::Model::load(batched_linear()), {.max_batch = 0}); },
               tp::ErrorKind::BadOption, {"max_batch"});
}
