// image_app: classify pictures with an image model exported by torchport.
//
//   image_app MODEL.pt IMAGE...
//
// The application decodes each PNG/JPEG file itself (stb_image) into the buffer it
// would hold anyway, 8-bit RGB rows of H x W x 3 bytes, and gives that buffer to the
// model as it is: uint8 [1, H, W, 3]. The model's graph resizes, scales and
// normalises (the manifest's image contract says how). Prints one JSON answer per
// picture: the model's outputs, the label and the top-3 labels with their scores.

#include <iostream>
#include <memory>
#include <string>

#include <torch/torch.h>

#include <torchport/answers.h>
#include <torchport/torchport.h>

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#include <stb_image.h>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: image_app MODEL.pt IMAGE...\n";
    return 2;
  }
  try {
    const auto model = torchport::Model::load(argv[1]);
    const auto& input = model.manifest().inputs.at(0);
    if (!input.image) {
      std::cerr << "image_app: " << argv[1] << " does not take pictures (its input '" << input.name
                << "' has no image contract)\n";
      return 2;
    }
    const auto& image = *input.image;
    std::cerr << "model " << model.manifest().name << ": " << image.channels << " pictures, resized to "
              << image.size[0] << "x" << image.size[1] << " (" << image.resize << ") in the graph\n";
    for (int i = 2; i < argc; ++i) {
      int width = 0, height = 0, channels = 0;
      std::unique_ptr<stbi_uc, void (*)(void*)> pixels(stbi_load(argv[i], &width, &height, &channels, 3),
                                                       stbi_image_free);
      if (!pixels) {
        std::cerr << "image_app: " << argv[i] << ": " << stbi_failure_reason() << "\n";
        return 4;
      }
      // The application's buffer, not a copy: [1, H, W, 3] uint8, RGB.
      const at::Tensor picture = torch::from_blob(pixels.get(), {1, height, width, 3}, torch::kUInt8);
      const auto outputs = model.run({picture});
      std::cout << torchport::format_answers(outputs, model.manifest(), "json");
    }
    return 0;
  } catch (const torchport::Error& e) {
    std::cerr << "image_app: " << torchport::to_string(e.kind()) << ": " << e.what() << "\n";
    return 1;
  }
}
