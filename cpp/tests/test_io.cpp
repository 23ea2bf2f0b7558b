// Tensor files: what torchport-run predict reads and writes.

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <gtest/gtest.h>

#include <torchport/io.h>

#include "fixtures.h"

namespace tp = torchport;
using namespace torchport::testing;

namespace {

std::string pickled(const c10::IValue& value, const std::string& name) {
  const auto bytes = torch::pickle_save(value);
  return write_file(name, std::string(bytes.begin(), bytes.end()));
}

tp::ErrorKind kind_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const tp::Error& e) {
    return e.kind();
  }
  ADD_FAILURE() << "no torchport::Error thrown";
  return tp::ErrorKind::Runtime;
}

}  // namespace

TEST(TensorFile, RoundTripsOneAndSeveralTensors) {
  const auto a = torch::rand({2, 3}), b = torch::arange(5);
  const auto one = (temp_dir() / "one.pt").string();
  tp::write_tensor_file(one, {a});
  auto bundle = tp::read_tensor_file(one);
  ASSERT_EQ(bundle.positional.size(), 1u);
  EXPECT_TRUE(torch::equal(bundle.positional[0], a));

  const auto two = (temp_dir() / "two.pt").string();
  tp::write_tensor_file(two, {a, b});
  bundle = tp::read_tensor_file(two);
  ASSERT_EQ(bundle.positional.size(), 2u);
  EXPECT_TRUE(torch::equal(bundle.positional[1], b));
  EXPECT_FALSE(bundle.by_name);
}

TEST(TensorFile, ReadsDictByName) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  dict.insert("x", torch::ones({1, 4}));
  const auto bundle = tp::read_tensor_file(pickled(dict, "named.pt"));
  EXPECT_TRUE(bundle.by_name);
  ASSERT_EQ(bundle.named.count("x"), 1u);
  const auto model = tp::Model::load(linear_artifact());
  EXPECT_EQ(tp::run(model, bundle)[0].sizes(), (std::vector<int64_t>{1, 2}));
}

TEST(TensorFile, RefusesWhatIsNotTensors) {
  EXPECT_EQ(kind_of([] { tp::read_tensor_file((temp_dir() / "nope.pt").string()); }),
            tp::ErrorKind::BadInput);
  EXPECT_EQ(kind_of([] { tp::read_tensor_file(temp_dir().string()); }), tp::ErrorKind::BadInput);
  EXPECT_EQ(kind_of([] { tp::read_tensor_file(write_file("empty_in.pt", "")); }), tp::ErrorKind::BadInput);
  EXPECT_EQ(kind_of([] { tp::read_tensor_file(write_file("junk_in.pt", "junk bytes")); }),
            tp::ErrorKind::BadInput);
  EXPECT_EQ(kind_of([] { tp::read_tensor_file(pickled(c10::IValue(int64_t{3}), "int.pt")); }),
            tp::ErrorKind::BadInput);
  EXPECT_EQ(kind_of([] { tp::read_tensor_file(pickled(c10::IValue("text"), "str.pt")); }),
            tp::ErrorKind::BadInput);
  std::vector<c10::IValue> mixed{torch::ones({1}), c10::IValue(2.5)};
  EXPECT_EQ(kind_of([&] { tp::read_tensor_file(pickled(c10::ivalue::Tuple::create(mixed), "mixed.pt")); }),
            tp::ErrorKind::BadInput);
}

TEST(TensorFile, WriteReplacesAtomically) {
  const auto path = (temp_dir() / "replace.pt").string();
  tp::write_tensor_file(path, {torch::zeros({2})});
  tp::write_tensor_file(path, {torch::ones({3})});
  EXPECT_TRUE(torch::equal(tp::read_tensor_file(path).positional[0], torch::ones({3})));
  for (const auto& entry : std::filesystem::directory_iterator(temp_dir())) {
    EXPECT_EQ(entry.path().string().find(".tmp-"), std::string::npos) << entry.path();
  }
}

TEST(CsvInput, EncodesColumnsByNameAndRefusesBadCells) {
  tp::Manifest manifest;
  manifest.features = {{"temp", "numeric", {}}, {"city", "categorical", {"lyon", "nice"}}};
  // Columns in another order, a label column ignored, an unknown city as zeros.
  const auto rows = write_file("rows.csv", "city,label,temp\nnice,hot,21.5\nbrest,cold,-3\n");
  const auto bundle = tp::read_input_file(rows, manifest);
  ASSERT_EQ(bundle.positional.size(), 1u);
  const auto expected = torch::tensor({21.5f, 0.f, 1.f, -3.f, 0.f, 0.f}).reshape({2, 3});
  EXPECT_TRUE(torch::equal(bundle.positional[0], expected));
  for (const char* bad : {"city,label\nnice,hot\n", "city,temp\nnice,inf\n", "city,temp\nnice,1,2\n", "city,temp\n"}) {
    EXPECT_EQ(kind_of([&] { tp::read_input_file(write_file("bad.csv", bad), manifest); }), tp::ErrorKind::BadInput)
        << bad;
  }
  // Without features, CSV text is no input file.
  EXPECT_EQ(kind_of([&] { tp::read_input_file(rows, tp::Manifest{}); }), tp::ErrorKind::BadInput);
}

TEST(ImageInput, RefusesOversizedAndBrokenPicturesBeforeDecoding) {
  // A PNG signature and an IHDR that declares 100000 x 100000 pixels, and nothing more.
  std::string huge = "\x89PNG\r\n\x1a\n";
  huge += std::string("\0\0\0\x0dIHDR", 8) + std::string("\0\x01\x86\xa0\0\x01\x86\xa0\x08\x02\0\0\0", 13) +
          std::string(4, '\0') + std::string(64, '\0');
  for (const auto& [name, bytes] : {std::pair<std::string, std::string>{"huge.png", huge},
                                    {"cut.png", huge.substr(0, 12)},
                                    {"broken.jpg", std::string("\xff\xd8\xff\xe0") + std::string(40, '\0')}}) {
    try {
      tp::read_tensor_file(write_file(name, bytes));
      ADD_FAILURE() << name << " was read";
    } catch (const tp::Error& e) {
      EXPECT_EQ(e.kind(), tp::ErrorKind::BadInput) << name;
      EXPECT_NE(std::string(e.what()).find(name + "' is not a readable PNG/JPEG image"), std::string::npos) << e.what();
    }
  }
}

// The image and .npz fuzz corpus (tests/test_image_fuzz.py writes it to
// build/image-corpus; `make sanitize` points TORCHPORT_INPUT_CORPUS at it):
// every file decodes or is refused with a torchport::Error, under ASan too.
TEST(InputCorpus, EveryFileDecodesOrIsRefusedCleanly) {
  const char* folder = std::getenv("TORCHPORT_INPUT_CORPUS");
  if (folder == nullptr || !std::filesystem::is_directory(folder)) {
    GTEST_SKIP() << "TORCHPORT_INPUT_CORPUS is not set to a folder (run tests/test_image_fuzz.py first)";
  }
  int decoded = 0, refused = 0;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    try {
      tp::read_tensor_file(entry.path().string());
      ++decoded;
    } catch (const tp::Error& e) {
      EXPECT_EQ(e.kind(), tp::ErrorKind::BadInput) << entry.path() << ": " << e.what();
      ++refused;
    }
  }
  EXPECT_GT(decoded + refused, 0);
  std::cout << "corpus: " << decoded << " decoded, " << refused << " refused\n";
}
