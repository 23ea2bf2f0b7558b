// The reader's limits, the writer's guarantees, options at the boundary and
// outputs that never alias the model: the C++ side of the hardening (also run
// under ASan and UBSan by `make sanitize`).

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <thread>

#include <c10/core/InferenceMode.h>

#include <torchport/io.h>
#include <torchport/tools.h>

#include "fixtures.h"
#include "reader.h"

namespace tp = torchport;
using namespace torchport::testing;

namespace {

std::string pickled(const c10::IValue& value) {
  const auto bytes = torch::pickle_save(value);
  return std::string(bytes.begin(), bytes.end());
}

// Sets `size` little-endian bytes at `at`.
void poke(std::string& bytes, size_t at, int size, uint64_t value) {
  for (int i = 0; i < size; ++i) bytes[at + i] = static_cast<char>(value >> (8 * i));
}

size_t end_record(const std::string& zip) { return zip.rfind(std::string("PK\x05\x06", 4)); }

size_t first_entry(const std::string& zip) {
  const size_t eocd = end_record(zip);
  uint64_t offset = 0;
  for (int i = 3; i >= 0; --i) offset = (offset << 8) | static_cast<uint8_t>(zip[eocd + 16 + i]);
  return offset;
}

}  // namespace

TEST(ZipLimits, DirectoryIsCheckedBeforeAnythingInflates) {
  const std::string good = pickled(torch::ones({2, 4}));
  EXPECT_NO_THROW(tp::detail::check_zip(good, "file", tp::ErrorKind::BadInput));

  std::string many = good;
  poke(many, end_record(many) + 10, 2, 0xFFFE);
  poke(many, end_record(many) + 8, 2, 0xFFFE);
  expect_error([&] { tp::detail::check_zip(many, "file", tp::ErrorKind::BadInput); }, tp::ErrorKind::BadInput, {"file: not a valid zip archive"});

  std::string bomb = good;  // first record: deflated, 2 GiB when inflated
  poke(bomb, first_entry(bomb) + 10, 2, 8);
  poke(bomb, first_entry(bomb) + 24, 4, 1ull << 31);
  expect_error([&] { tp::detail::check_zip(bomb, "file", tp::ErrorKind::BadInput); }, tp::ErrorKind::BadInput, {"inflates to 2147483648 bytes, more than the limit"});

  std::string outside = good;
  poke(outside, first_entry(outside) + 20, 4, 1ull << 30);
  poke(outside, first_entry(outside) + 24, 4, 1ull << 30);
  expect_error([&] { tp::detail::check_zip(outside, "file", tp::ErrorKind::BadArtifact); },
                 tp::ErrorKind::BadArtifact, {"lies outside the file"});

  std::string encrypted = good;
  poke(encrypted, first_entry(encrypted) + 8, 2, 1);
  expect_error([&] { tp::detail::check_zip(encrypted, "file", tp::ErrorKind::BadInput); },
                 tp::ErrorKind::BadInput, {"is encrypted"});

  expect_error([&] { tp::detail::check_zip("PK", "file", tp::ErrorKind::BadInput); }, tp::ErrorKind::BadInput, {"too short"});
}

TEST(PickleLimits, StructureIsWalkedBeforeUnpickling) {
  auto check = [](const std::string& p) { tp::detail::check_pickle(p.data(), p.size(), "p", tp::ErrorKind::BadInput); };
  // [[[...]]] 100,000 deep: LibTorch would build it and overflow the stack freeing it.
  std::string deep = "\x80\x02" + std::string(100000, ']') + std::string(99999, 'a') + ".";
  expect_error([&] { check(deep); }, tp::ErrorKind::BadInput, {"nests containers 1001 deep"});
  std::string shallow = "\x80\x02" + std::string(500, ']') + std::string(499, 'a') + ".";
  EXPECT_NO_THROW(check(shallow));
  expect_error([&] { check(std::string("\x80\x02]r\xff\xff\xff\xff.", 9)); }, tp::ErrorKind::BadInput, {"memo index"});
  expect_error([&] { check(std::string("\x80\x02h\x05.", 5)); }, tp::ErrorKind::BadInput, {"never set"});
  expect_error([&] { check(std::string("\x80\x02\xff.", 4)); }, tp::ErrorKind::BadInput, {"unknown opcode 0xff"});
  expect_error([&] { check(std::string("\x80\x02X\xff\xff\xff\x7f", 7)); }, tp::ErrorKind::BadInput, {"past the end"});
  expect_error([&] { check(std::string("\x80\x02]", 3)); }, tp::ErrorKind::BadInput, {"no STOP"});
  expect_error([&] { check(std::string("\x80\x02""0.", 4)); }, tp::ErrorKind::BadInput, {"underflow"});
}

TEST(PickleLimits, StorageReferencesAreRecorded) {
  const std::string file =
      pickled(c10::ivalue::Tuple::create({torch::ones({2, 4}), torch::ones({3}, torch::kInt64)}));
  caffe2::serialize::PyTorchStreamReader reader(
      tp::detail::memory_reader(std::make_shared<const std::string>(file)));
  auto [data, size] = reader.getRecord("data.pkl");
  const auto needs = tp::detail::check_pickle(static_cast<const char*>(data.get()), size, "p", tp::ErrorKind::BadInput);
  ASSERT_EQ(needs.size(), 2u);
  EXPECT_EQ(needs[0].bytes, 2u * 4 * 4);
  EXPECT_EQ(needs[1].bytes, 3u * 8);
  EXPECT_NO_THROW(tp::detail::check_storages(reader, needs, "data/", "p", tp::ErrorKind::BadInput));
  auto shrunk = needs;
  shrunk[0].bytes = 1u << 20;
  expect_error([&] { tp::detail::check_storages(reader, shrunk, "data/", "p", tp::ErrorKind::BadInput); },
                 tp::ErrorKind::BadInput, {"holds 32 bytes, but 1048576 are declared"});
}

TEST(FileLimits, OnlyRegularFilesAreRead) {
  const auto fifo = (temp_dir() / "reader.fifo").string();
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Opening a FIFO for reading would wait for a writer forever.
  expect_error([&] { tp::Model::load(fifo); }, tp::ErrorKind::BadArtifact, {"is a FIFO"});
  expect_error([&] { tp::read_tensor_file(fifo); }, tp::ErrorKind::BadInput, {"is a FIFO"});
  expect_error([&] { tp::Model::load("/dev/zero"); }, tp::ErrorKind::BadArtifact, {"character device"});
  expect_error([&] { tp::Model::load(temp_dir().string()); }, tp::ErrorKind::BadArtifact, {"is a directory"});
}

TEST(ManifestLimits, NumbersNamesAndDepth) {
  const std::string base = linear_manifest();
  auto with = [&](const std::string& from, const std::string& to) {
    std::string text = base;
    text.replace(text.find(from), from.size(), to);
    return text;
  };
  auto parse = [](const std::string& text) { return tp::Manifest::from_json(text, "m"); };
  EXPECT_NO_THROW(parse(base));
  expect_error([&] { parse(with(R"("schema": 1)", R"("schema": 4294967297)")); }, tp::ErrorKind::BadArtifact, {"newer than"});
  expect_error([&] { parse(with(R"("schema": 1)", R"("schema": 0)")); }, tp::ErrorKind::BadArtifact, {"positive integer"});
  expect_error([&] { parse(with("[null, 4]", "[null, 18446744073709551615]")); }, tp::ErrorKind::BadArtifact, {"shape entries"});
  expect_error([&] { parse(with(R"("float32", "shape": [null, 4])", R"("uint1", "shape": [null, 4])")); },
                 tp::ErrorKind::BadArtifact, {"supported: float32"});
  expect_error([&] { parse(with(R"("labels": ["a", "b"])", R"("labels": )" + std::string(200, '[') + std::string(200, ']'))); },
                 tp::ErrorKind::BadArtifact, {"levels deep"});
  expect_error([&] { parse(with(R"("labels": ["a", "b"])", R"("x": NaN)")); }, tp::ErrorKind::BadArtifact, {"NaN or Infinity"});
  expect_error([&] { parse(with(R"("name": "x")", R"("name": "a\nb")")); }, tp::ErrorKind::BadArtifact, {"control character"});
}

TEST(Options, CheckedAtTheBoundary) {
  const auto path = linear_artifact("options.pt");
  tp::Options o;
  o.threads = tp::max_threads() + 1;
  expect_error([&] { tp::Model::load(path, o); }, tp::ErrorKind::BadOption, {"threads: expected 0"});
  o = {};
  o.warmup_runs = tp::kMaxWarmupRuns + 1;
  expect_error([&] { tp::Model::load(path, o); }, tp::ErrorKind::BadOption, {"warmup_runs"});
  for (const int concurrency : {0, -1, tp::kMaxConcurrency + 1}) {
    o = {};
    o.concurrency = concurrency;
    expect_error([&] { tp::Model::load(path, o); }, tp::ErrorKind::BadOption, {"concurrency: expected 1 to"});
  }
  o = {};
  o.device = "cpu:0";  // the same device as "cpu"
  const auto model = tp::Model::load(path, o);
  EXPECT_NO_THROW(model.run({torch::rand({3, 4})}));
  o.device = "cpu:1";
  expect_error([&] { tp::Model::load(path, o); }, tp::ErrorKind::BadOption, {"cpu:1"});
  o.device = "vulkan";
  expect_error([&] { tp::Model::load(path, o); }, tp::ErrorKind::BadOption, {"device"});
  expect_error([&] { tp::selfcheck(model, std::nan(""), 0.0); }, tp::ErrorKind::BadOption, {"atol"});
  expect_error([&] { tp::selfcheck(model, 0.0, -1.0); }, tp::ErrorKind::BadOption, {"rtol"});
}

TEST(Aliasing, OutputsAndGoldenNeverShareTheModelsMemory) {
  torch::jit::Module m("Leaky");
  m.register_parameter("weight", torch::ones({3}), false);
  m.register_buffer("state", torch::zeros({4}));
  m.define(R"(
    def forward(self, x):
        return (x * 2.0, self.weight, self.state[1:3], x)
  )");
  const auto path = save(m, "leaky.pt");
  const auto model = tp::Model::load(path);
  const auto x = torch::rand({3});
  auto first = model.run({x});
  {
    c10::InferenceMode guard;  // outputs computed by the model are inference tensors
    for (auto& t : first) t.add_(100);
  }
  const auto second = model.run({x});
  EXPECT_TRUE(torch::equal(second[1], torch::ones({3})));
  EXPECT_TRUE(torch::equal(second[2], torch::zeros({2})));
  EXPECT_TRUE(torch::equal(second[3], x)) << "the input was changed through an output";
  EXPECT_NE(second[3].data_ptr(), x.data_ptr());

  const auto golden_path = linear_artifact("aliasing.pt");
  const auto linear = tp::Model::load(golden_path);
  {
    c10::InferenceMode guard;
    linear.golden().outputs[0].add_(1);
    linear.example_inputs()[0].add_(1);
  }
  EXPECT_TRUE(tp::selfcheck(linear).ok()) << "editing golden() or example_inputs() changed what selfcheck uses";
}

TEST(Writer, NoReplaceIsAtomicAgainstRaces) {
  const auto path = (temp_dir() / "raced.bin").string();
  std::remove(path.c_str());
  constexpr int kWriters = 16;
  std::atomic<int> won{0}, refused{0}, ready{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kWriters; ++i) {
    threads.emplace_back([&, i] {
      ++ready;
      while (ready < kWriters) std::this_thread::yield();
      try {
        tp::write_file(path, std::string(1 << 16, static_cast<char>('a' + i)), /*overwrite=*/false);
        ++won;
      } catch (const tp::Error& e) {
        if (e.kind() == tp::ErrorKind::BadOption) ++refused;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(won, 1);
  EXPECT_EQ(refused, kWriters - 1);
  const std::string content = read_file(path);
  ASSERT_EQ(content.size(), 1u << 16);
  EXPECT_EQ(content.find_first_not_of(content[0]), std::string::npos) << "two writers' bytes mixed";
}

TEST(Writer, LinksLongNamesAndLeftovers) {
  const auto folder = temp_dir() / "writer";
  std::filesystem::remove_all(folder);
  std::filesystem::create_directories(folder);
  // A dangling symlink is "something there": no-replace refuses it and leaves it.
  const auto link = folder / "link.pt";
  std::filesystem::create_symlink(folder / "nowhere", link);
  expect_error([&] { tp::write_file(link.string(), "x", false); }, tp::ErrorKind::BadOption, {"already exists"});
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_FALSE(std::filesystem::exists(folder / "nowhere"));
  // Replacing replaces the link itself; its target is left alone.
  std::ofstream(folder / "target.pt") << "target";
  std::filesystem::remove(link);
  std::filesystem::create_symlink(folder / "target.pt", link);
  tp::write_file(link.string(), "new", true);
  EXPECT_FALSE(std::filesystem::is_symlink(link));
  EXPECT_EQ(read_file((folder / "target.pt").string()), "target");
  // The longest name the file system allows.
  const auto longest = folder / std::string(255, 'n');
  tp::write_file(longest.string(), "long", false);
  EXPECT_EQ(read_file(longest.string()), "long");
  // Nothing but the files written is left in the folder.
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(folder)) names.push_back(e.path().filename().string());
  EXPECT_EQ(names.size(), 3u);
  // An output may not replace what the command reads, under any name.
  const auto artifact = linear_artifact("protected.pt");
  const auto hard = (folder / "hard.pt").string();
  ASSERT_EQ(::link(artifact.c_str(), hard.c_str()), 0);
  expect_error([&] { tp::write_tensor_file(hard, {torch::ones({1})}, {artifact}); }, tp::ErrorKind::BadOption, {"which this command reads"});
  EXPECT_NO_THROW(tp::Model::load(artifact));
}

TEST(Fuzz, ZipDirectoryFieldsAndPickleBytes) {
  // Structural corruption (directory fields set to boundary values, pickle
  // opcodes replaced) of an artifact without a checksum, so each case reaches
  // the reader's checks and LibTorch behind them.
  const std::string whole = read_file(save(linear_module(), "structural_source.pt"));
  std::mt19937 rng(99);
  const std::pair<int, int> fields[] = {{8, 2}, {10, 2}, {20, 4}, {24, 4}, {28, 2}, {30, 2}, {42, 4}};
  const uint64_t values[] = {0, 1, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 1ull << 31, 4096};
  int errors = 0, loaded = 0;
  for (int i = 0; i < 300; ++i) {
    std::string bytes = whole;
    if (i % 2 == 0) {
      const size_t eocd = end_record(bytes);
      size_t entry = first_entry(bytes);
      for (int k = static_cast<int>(rng() % 6); k > 0 && entry + 46 < eocd; --k) {
        const auto le2 = [&](size_t at) { return static_cast<uint8_t>(bytes[at]) | static_cast<uint8_t>(bytes[at + 1]) << 8; };
        entry += 46 + le2(entry + 28) + le2(entry + 30) + le2(entry + 32);
      }
      const auto [offset, size] = fields[rng() % std::size(fields)];
      if (entry + offset + size <= bytes.size()) poke(bytes, entry + offset, size, values[rng() % std::size(values)]);
    } else {
      const size_t pkl = bytes.find("data.pkl");
      const size_t at = bytes.find('\x80', pkl == std::string::npos ? 0 : pkl);
      for (int k = 0, n = 1 + static_cast<int>(rng() % 4); k < n && at != std::string::npos; ++k) {
        bytes[(at + rng() % 64) % bytes.size()] = "(]}ahqrtX.\x85\x86"[rng() % 13];
      }
    }
    const auto path = write_file("structural_case.pt", bytes);
    try {
      tp::Model::load(path).run({torch::rand({2, 4})});
      ++loaded;
    } catch (const tp::Error&) {
      ++errors;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "case " << i << ": escaped as " << typeid(e).name() << ": " << e.what();
    }
  }
  std::cout << "[ fuzz     ] 300 structural mutations: " << errors << " clean errors, " << loaded << " loaded\n";
  EXPECT_EQ(errors + loaded, 300);
  EXPECT_GT(errors, 100);
}
