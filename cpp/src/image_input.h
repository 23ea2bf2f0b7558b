// PNG and JPEG files as inputs: decoded with stb_image (Debian libstb-dev) into the
// uint8 [1, H, W, 3] RGB tensor an application holds, after the header's size is
// checked against the limits.

#pragma once

#include <string>

#include <ATen/core/Tensor.h>

namespace torchport::detail {

namespace limits {
constexpr int kImageSide = 16'384;                ///< pixels on either side of an input image
constexpr uint64_t kImagePixels = 64ull << 20;    ///< pixels in an input image (64 Mi)
}  // namespace limits

/// True when `bytes` start with the PNG or JPEG signature.
bool is_image(const std::string& bytes);

/// The image as uint8 [1, H, W, 3], RGB (gray and palette images expanded, alpha
/// dropped). Refuses with Error(BadInput) naming `where`: a side over kImageSide, more
/// than kImagePixels pixels, or data the decoder cannot read (with its reason).
at::Tensor read_image(const std::string& bytes, const std::string& where);

}  // namespace torchport::detail
