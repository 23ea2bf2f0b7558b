#include "image_input.h"

#include <cstring>
#include <memory>

#include <ATen/ATen.h>

#include <torchport/torchport.h>

// Only the two formats torchport reads, from memory (the file is read once, bounded,
// by read_regular_file), and no image larger than the limits.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_NO_STDIO
#define STBI_FAILURE_USERMSG
#define STBI_MAX_DIMENSIONS 16384
#include <stb_image.h>

namespace torchport::detail {
namespace {

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  throw Error(ErrorKind::BadInput, where + " is not a readable PNG/JPEG image: " + what);
}

}  // namespace

bool is_image(const std::string& bytes) {
  return bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0 || bytes.compare(0, 3, "\xff\xd8\xff") == 0;
}

at::Tensor read_image(const std::string& bytes, const std::string& where) {
  static_assert(limits::kImageSide == STBI_MAX_DIMENSIONS);
  if (bytes.size() > static_cast<size_t>(INT32_MAX)) bad(where, "it is over 2 GiB");
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int length = static_cast<int>(bytes.size());
  int width = 0, height = 0, channels = 0;
  // The header's size first: nothing is allocated for an image over the limits.
  if (!stbi_info_from_memory(data, length, &width, &height, &channels)) bad(where, stbi_failure_reason());
  if (width <= 0 || height <= 0 || width > limits::kImageSide || height > limits::kImageSide) {
    bad(where, "it is " + std::to_string(width) + "x" + std::to_string(height) + " pixels; each side must be 1 to " +
                   std::to_string(limits::kImageSide));
  }
  if (static_cast<uint64_t>(width) * static_cast<uint64_t>(height) > limits::kImagePixels) {
    bad(where, "it is " + std::to_string(width) + "x" + std::to_string(height) + " pixels, more than the limit of " +
                   std::to_string(limits::kImagePixels));
  }
  int w = 0, h = 0, n = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(stbi_load_from_memory(data, length, &w, &h, &n, 3), stbi_image_free);
  if (!pixels) bad(where, stbi_failure_reason());
  if (w != width || h != height) bad(where, "its header and its data disagree on the size");
  at::Tensor t = at::empty({1, h, w, 3}, at::kByte);  // [1, H, W, 3] RGB
  std::memcpy(t.data_ptr(), pixels.get(), static_cast<size_t>(w) * h * 3);
  return t;
}

}  // namespace torchport::detail
