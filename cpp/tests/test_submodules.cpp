// Submodule access (for the divergence localiser) and custom operator
// libraries (Options::libraries). ctest runs each test in its own process, so
// a library loaded by one test is not there for another.

#include <gtest/gtest.h>
#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/csrc/jit/frontend/sugared_value.h>

#include <torchport/tools.h>
#include <torchport/torchport.h>

#include "fixtures.h"

namespace tp = torchport;
using namespace torchport::testing;

namespace {

// Net(body: Body(scale: Scale), head: Linear) with forward methods all the way down.
std::string nested_artifact(const std::string& name) {
  torch::jit::Module scale("Scale");
  scale.register_parameter("factor", torch::tensor({2.f}), false);
  scale.define(R"(
    def forward(self, x):
        return x * self.factor
  )");
  torch::jit::Module body("Body");
  body.register_module("scale", scale);
  body.define(R"(
    def forward(self, x):
        return self.scale.forward(x) + 1.0
  )");
  auto head = linear_module();
  torch::jit::Module net("Net");
  net.register_module("body", body);
  net.register_module("head", head);
  net.define(R"(
    def forward(self, x):
        return self.head.forward(self.body.forward(x))
  )");
  return save(net, name);
}

// Module::define's default resolver knows torch's builtins only; this one also
// resolves `tp_test` to the ops of that namespace, as torch.ops.tp_test does in Python.
struct TpTestResolver : torch::jit::Resolver {
  std::shared_ptr<torch::jit::SugaredValue> resolveValue(const std::string& name, torch::jit::GraphFunction& fn,
                                                         const torch::jit::SourceRange& loc) override {
    if (name == "tp_test") return std::make_shared<torch::jit::BuiltinModule>("tp_test");
    return torch::jit::nativeResolver()->resolveValue(name, fn, loc);
  }
  c10::TypePtr resolveType(const std::string& name, const torch::jit::SourceRange& loc) override {
    return torch::jit::nativeResolver()->resolveType(name, loc);
  }
};

}  // namespace

TEST(Submodules, ListedDepthFirstWithTypes) {
  const auto model = tp::Model::load(nested_artifact("nested_list.pt"));
  const auto subs = model.submodules();
  std::vector<std::string> names;
  for (const auto& s : subs) names.push_back(s.name);
  EXPECT_EQ(names, (std::vector<std::string>{"body", "body.scale", "head"}));
  EXPECT_EQ(subs[1].type, "Scale");
  EXPECT_TRUE(subs[1].callable);
  EXPECT_TRUE(subs[0].custom_ops.empty());
}

TEST(Submodules, RunOnTheirOwn) {
  const auto model = tp::Model::load(nested_artifact("nested_run.pt"));
  const auto x = torch::tensor({{1.f, 2.f, 3.f, 4.f}});
  const auto scaled = model.run_submodule("body.scale", {x}).toTensor();
  EXPECT_TRUE(torch::equal(scaled, x * 2));
  const auto body = model.run_submodule("body", {x}).toTensor();
  EXPECT_TRUE(torch::equal(body, x * 2 + 1));
  // "" is the model itself, the same numbers as run().
  EXPECT_TRUE(torch::equal(model.run_submodule("", {x}).toTensor(), model.run({x})[0]));
  const auto tensors = model.submodule_tensors("head");
  ASSERT_EQ(tensors.count("weight"), 1u);
  EXPECT_EQ(tensors.at("weight").sizes(), (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(model.submodule_tensors("").count("body.scale.factor"), 1u);
}

TEST(Submodules, UnknownNameListsWhatThereIs) {
  const auto model = tp::Model::load(nested_artifact("nested_unknown.pt"));
  expect_error([&] { model.run_submodule("body.shift", {torch::rand({1, 4})}); },
               tp::ErrorKind::BadOption, {"'body.shift'", "'body' has: scale"});
  expect_error([&] { model.run_submodule("tail", {torch::rand({1, 4})}); }, tp::ErrorKind::BadOption,
               {"'tail'", "the model has: body, head"});
  expect_error([&] { model.submodule_tensors("nope"); }, tp::ErrorKind::BadOption, {"'nope'"});
}

TEST(Submodules, WithoutForwardIsNamed) {
  torch::jit::Module holder("Holder");
  holder.register_parameter("w", torch::ones({2}), false);
  torch::jit::Module net("Net");
  net.register_module("holder", holder);
  net.define(R"(
    def forward(self, x):
        return x * self.holder.w
  )");
  const auto model = tp::Model::load(save(net, "no_forward.pt"));
  expect_error([&] { model.run_submodule("holder", {torch::rand({2})}); }, tp::ErrorKind::BadOption,
               {"'holder'", "Holder", "no forward()"});
  EXPECT_FALSE(model.submodules().at(0).callable);
}

TEST(Submodules, WrongArgumentsAreARuntimeErrorNamingTheSubmodule) {
  const auto model = tp::Model::load(nested_artifact("nested_args.pt"));
  expect_error([&] { model.run_submodule("body.scale", {torch::rand({1}), torch::rand({1})}); },
               tp::ErrorKind::Runtime, {"'body.scale'", "Scale"});
}

TEST(Libraries, MissingFileIsABadOptionNamingIt) {
  tp::Options options;
  options.libraries = {"/nonexistent/libops.so"};
  expect_error([&] { tp::Model::load(linear_artifact("lib_missing.pt"), options); },
               tp::ErrorKind::BadOption, {"/nonexistent/libops.so", "does not exist"});
}

TEST(Libraries, NotALibraryIsABadOptionWithDlerror) {
  tp::Options options;
  options.libraries = {write_file("not_a_library.so", "hello")};
  expect_error([&] { tp::Model::load(linear_artifact("lib_bad.pt"), options); },
               tp::ErrorKind::BadOption, {"not_a_library.so", "cannot be loaded", "file too short"});
}

TEST(Libraries, CustomOpsLoadRunAndAreListed) {
  tp::Options options;
  options.libraries = {TP_TEST_OPS};
  // The library must be loaded before the module that calls its op is compiled.
  tp::Model::load(linear_artifact("lib_first.pt"), options);

  torch::jit::Module act("Act");
  act.define(R"(
    def forward(self, x):
        return tp_test.softsign(x)
  )",
             std::make_shared<TpTestResolver>());
  torch::jit::Module net("Net");
  net.register_module("act", act);
  net.define(R"(
    def forward(self, x):
        return self.act.forward(x) * 2.0
  )");
  const auto model = tp::Model::load(save(net, "custom_op.pt"), options);
  const auto x = torch::tensor({-3.f, 0.f, 1.f});
  EXPECT_TRUE(torch::equal(model.run({x})[0], x / (1 + x.abs()) * 2));
  const auto subs = model.submodules();
  ASSERT_EQ(subs.size(), 1u);
  EXPECT_EQ(subs[0].custom_ops, (std::vector<std::string>{"tp_test::softsign"}));
}
