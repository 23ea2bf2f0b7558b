#include "image_input.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include <zlib.h>

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

uint32_t be32(const std::string& b, size_t at) {
  return static_cast<uint32_t>(static_cast<unsigned char>(b[at])) << 24 |
         static_cast<uint32_t>(static_cast<unsigned char>(b[at + 1])) << 16 |
         static_cast<uint32_t>(static_cast<unsigned char>(b[at + 2])) << 8 |
         static_cast<uint32_t>(static_cast<unsigned char>(b[at + 3]));
}

unsigned byte_at(const std::string& b, size_t at) { return static_cast<unsigned char>(b[at]); }

std::string marker(unsigned m) {
  char text[8];
  std::snprintf(text, sizeof(text), "0xFF%02X", m & 0xFF);
  return text;
}

std::string dims(uint64_t w, uint64_t h) { return std::to_string(w) + "x" + std::to_string(h); }

// The side and pixel caps, from the header's own numbers, before any decoder runs.
void check_size(uint64_t w, uint64_t h, const std::string& where) {
  if (w == 0 || h == 0 || w > static_cast<uint64_t>(limits::kImageSide) || h > static_cast<uint64_t>(limits::kImageSide)) {
    bad(where, "its header declares " + dims(w, h) + " pixels; each side must be 1 to " +
                   std::to_string(limits::kImageSide));
  }
  if (w * h > limits::kImagePixels) {
    bad(where, "its header declares " + dims(w, h) + " pixels, more than the limit of " +
                   std::to_string(limits::kImagePixels));
  }
}

// PNG: the header's kind is one torchport decodes exactly as PIL does, and the
// compressed pixels inflate to no more than that header needs (a decompression
// bomb is refused after a bounded streaming inflate, before stb allocates).
void check_png(const std::string& b, const std::string& where) {
  if (b.size() < 33 || b.compare(12, 4, "IHDR") != 0 || be32(b, 8) != 13) bad(where, "its first chunk is not IHDR");
  const uint64_t w = be32(b, 16), h = be32(b, 20);
  const unsigned depth = byte_at(b, 24), colour = byte_at(b, 25), interlace = byte_at(b, 28);
  check_size(w, h, where);
  if (depth == 16) {
    bad(where, "it is a 16-bit PNG; torchport reads 8-bit PNGs (and 1/2/4-bit gray or palette ones), because "
               "16-bit samples have no single 8-bit reading that PIL and the runtime share: save it with 8 bits");
  }
  static const unsigned kChannels[] = {1, 0, 3, 1, 2, 0, 4};
  if (colour > 6 || kChannels[colour] == 0) bad(where, "its colour type " + std::to_string(colour) + " is not a PNG one");
  if (depth != 1 && depth != 2 && depth != 4 && depth != 8) bad(where, "its bit depth " + std::to_string(depth) + " is not a PNG one");
  if (interlace > 1) bad(where, "its interlace method " + std::to_string(interlace) + " is not a PNG one");
  const uint64_t bits = kChannels[colour] * depth;
  auto row_bytes = [&](uint64_t pw) { return pw == 0 ? 0 : 1 + (pw * bits + 7) / 8; };  // filter byte + samples
  uint64_t need = 0;
  if (interlace == 0) {
    need = h * row_bytes(w);
  } else {  // Adam7: seven reduced images
    static const int x0[] = {0, 4, 0, 2, 0, 1, 0}, y0[] = {0, 0, 4, 0, 2, 0, 1};
    static const int dx[] = {8, 8, 4, 4, 2, 2, 1}, dy[] = {8, 8, 8, 4, 4, 2, 2};
    for (int p = 0; p < 7; ++p) {
      const uint64_t pw = w > static_cast<uint64_t>(x0[p]) ? (w - x0[p] + dx[p] - 1) / dx[p] : 0;
      const uint64_t ph = h > static_cast<uint64_t>(y0[p]) ? (h - y0[p] + dy[p] - 1) / dy[p] : 0;
      if (pw && ph) need += ph * row_bytes(pw);
    }
  }
  z_stream z{};
  if (inflateInit(&z) != Z_OK) bad(where, "zlib could not start");
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&z, inflateEnd);
  std::vector<unsigned char> scratch(64 * 1024);
  uint64_t produced = 0;
  bool ended = false, seen_idat = false;
  for (size_t at = 8; at + 12 <= b.size() && !ended;) {
    const uint64_t len = be32(b, at);
    if (len > b.size() - at - 12) break;  // truncated: stb reports it
    const bool idat = b.compare(at + 4, 4, "IDAT") == 0;
    seen_idat = seen_idat || idat;
    // PIL (what training reads with) refuses a file whose chunks before the
    // first IDAT fail their CRC, and reads past a bad one from IDAT on; stb
    // checks none. The same files are refused here.
    if (!seen_idat) {
      const uint32_t stored = static_cast<uint32_t>(be32(b, at + 8 + len));
      const uint32_t computed = static_cast<uint32_t>(
          crc32(0L, reinterpret_cast<const Bytef*>(b.data() + at + 4), static_cast<uInt>(len + 4)));
      if (stored != computed) {
        char hex[64];
        std::snprintf(hex, sizeof hex, "stored 0x%08x, computed 0x%08x", stored, computed);
        bad(where, "its " + b.substr(at + 4, 4) + " chunk at byte " + std::to_string(at) + " fails its CRC (" + hex +
                       "): a damaged file, which PIL refuses too");
      }
    }
    if (b.compare(at + 4, 4, "IEND") == 0) break;
    if (idat) {
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(b.data() + at + 8));
      z.avail_in = static_cast<uInt>(len);
      while (z.avail_in > 0 && !ended) {
        z.next_out = scratch.data();
        z.avail_out = static_cast<uInt>(scratch.size());
        const int rc = inflate(&z, Z_NO_FLUSH);
        produced += scratch.size() - z.avail_out;
        if (produced > need) {
          bad(where, "its compressed pixels inflate to more than the " + std::to_string(need) + " bytes its " +
                         dims(w, h) + " header needs (a decompression bomb or a damaged file)");
        }
        if (rc == Z_STREAM_END) ended = true;
        else if (rc != Z_OK) break;  // damaged data: stb gives the reason
      }
    }
    at += 12 + len;
  }
}

// A scan may start only once the tables it decodes with are defined: the
// quantisation table of every frame component, and the DC and AC Huffman
// tables its components name (a progressive scan uses DC tables in its first
// DC pass only, AC tables in AC passes).
// The tables defined so far (stb decodes with whatever its arrays hold for a
// table no DHT/DQT defined: uninitialised memory, a crash or garbage).
struct JpegTables {
  bool huffman[2][4] = {};  // [DC, AC][slot]
  bool quant[4] = {};
  unsigned frame_quant[3] = {};  // each frame component's quantisation table
  unsigned frame_comps = 0;
  bool progressive = false;
};

void check_scan_tables(const std::string& b, size_t seg, size_t end, const std::string& where, const JpegTables& t) {
  for (unsigned c = 0; c < t.frame_comps; ++c) {
    if (t.frame_quant[c] > 3 || !t.quant[t.frame_quant[c]]) {
      bad(where, "its scan starts before quantisation table " + std::to_string(t.frame_quant[c]) +
                     " (used by its frame) is defined; the file is damaged");
    }
  }
  if (seg >= end) bad(where, "its scan header is cut off");
  const unsigned ns = byte_at(b, seg);
  if (ns < 1 || ns > 4 || seg + 1 + 2 * ns + 3 > end) bad(where, "its scan header is cut off or names " + std::to_string(ns) + " components");
  const unsigned ss = byte_at(b, seg + 1 + 2 * ns), ah = byte_at(b, seg + 3 + 2 * ns) >> 4;
  const bool dc = !t.progressive || (ss == 0 && ah == 0), ac = !t.progressive || ss > 0;
  for (unsigned i = 0; i < ns; ++i) {
    const unsigned td = byte_at(b, seg + 2 + 2 * i) >> 4, ta = byte_at(b, seg + 2 + 2 * i) & 15;
    if ((dc && (td > 3 || !t.huffman[0][td])) || (ac && (ta > 3 || !t.huffman[1][ta]))) {
      bad(where, "its scan uses a Huffman table (DC " + std::to_string(td) + ", AC " + std::to_string(ta) +
                     ") that no DHT segment before it defined; the file is damaged");
    }
  }
}

// JPEG: every marker segment is walked before stb sees the file. Debian's stb
// 2.27 writes past its Huffman arrays for a table of more than 256 codes, so
// each table is checked here; only the frame kinds whose decode is documented
// are let through, and the entropy-coded data must be large enough for the
// blocks the frame declares (a tiny file cannot claim a huge picture).
void check_jpeg(const std::string& b, const std::string& where) {
  uint64_t w = 0, h = 0, blocks = 0, entropy = 0;
  bool frame = false;
  JpegTables tables;
  size_t at = 2;
  while (at < b.size()) {
    if (byte_at(b, at) != 0xFF) {  // entropy-coded data (after an SOS) up to the next marker
      ++at;
      ++entropy;
      continue;
    }
    while (at < b.size() && byte_at(b, at) == 0xFF) ++at;  // fill bytes
    if (at >= b.size()) break;
    const unsigned m = byte_at(b, at++);
    if (m == 0x00 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) {  // stuffed 0xFF, RSTn, TEM: no length
      if (m == 0x00) entropy += 1;
      continue;
    }
    if (m == 0xD9) break;  // EOI
    if (m == 0xD8) bad(where, "it has a second start-of-image marker");
    if (at + 2 > b.size()) bad(where, "marker " + marker(m) + " is cut off");
    const size_t len = static_cast<size_t>(byte_at(b, at)) << 8 | byte_at(b, at + 1);
    if (len < 2 || at + len > b.size()) {
      bad(where, "a marker segment declares " + std::to_string(len) + " bytes, the file has " + std::to_string(b.size() - at));
    }
    const size_t seg = at + 2, end = at + len;
    if (m == 0xC4) {  // DHT: tables of at most 256 codes whose lengths form a prefix code
      for (size_t p = seg; p < end;) {
        if (p + 17 > end) bad(where, "a Huffman table is cut off");
        const unsigned tc = byte_at(b, p) >> 4, th = byte_at(b, p) & 15;
        if (tc > 1 || th > 3) bad(where, "a Huffman table has class " + std::to_string(tc) + " and slot " + std::to_string(th));
        uint64_t n = 0, code = 0;
        for (int i = 0; i < 16; ++i) {
          const unsigned count = byte_at(b, p + 1 + i);
          n += count;
          code = (code + count);
          if (code > (uint64_t{1} << (i + 1))) bad(where, "a Huffman table's code lengths do not form a prefix code");
          code <<= 1;
        }
        if (n > 256) bad(where, "a Huffman table declares " + std::to_string(n) + " codes, more than the 256 a JPEG may have");
        if (p + 17 + n > end) bad(where, "a Huffman table's " + std::to_string(n) + " values run past its segment");
        tables.huffman[tc][th] = true;
        p += 17 + n;
      }
    } else if (m == 0xDB) {  // DQT: 64 entries of 8 or 16 bits per table
      for (size_t p = seg; p < end;) {
        const unsigned pq = byte_at(b, p) >> 4, tq = byte_at(b, p) & 15;
        if (pq > 1 || tq > 3) bad(where, "a quantisation table has precision " + std::to_string(pq) + " and slot " + std::to_string(tq));
        if (p + 1 + 64 * (pq + 1) > end) bad(where, "a quantisation table is cut off");
        tables.quant[tq] = true;
        p += 1 + 64 * (pq + 1);
      }
    } else if (m == 0xC0 || m == 0xC1 || m == 0xC2) {  // SOF0/1/2: baseline, extended, progressive Huffman
      if (frame) bad(where, "it has more than one frame header");
      frame = true;
      tables.progressive = m == 0xC2;
      if (len < 8) bad(where, "its frame header is cut off");
      const unsigned precision = byte_at(b, seg), comps = byte_at(b, seg + 5);
      h = static_cast<uint64_t>(byte_at(b, seg + 1)) << 8 | byte_at(b, seg + 2);
      w = static_cast<uint64_t>(byte_at(b, seg + 3)) << 8 | byte_at(b, seg + 4);
      if (precision != 8) bad(where, "it has " + std::to_string(precision) + "-bit samples; torchport reads 8-bit JPEGs");
      check_size(w, h, where);
      if (comps != 1 && comps != 3) {
        bad(where, "it has " + std::to_string(comps) + " colour components; torchport reads gray (1) and YCbCr (3) "
                   "JPEGs, not CMYK");
      }
      if (len != 8 + 3 * comps) bad(where, "its frame header's length does not match its components");
      tables.frame_comps = comps;
      for (unsigned c = 0; c < comps; ++c) tables.frame_quant[c] = byte_at(b, seg + 8 + 3 * c) & 15;
      unsigned hs[3], vs[3], hmax = 1, vmax = 1;
      for (unsigned c = 0; c < comps; ++c) {
        hs[c] = byte_at(b, seg + 7 + 3 * c) >> 4;
        vs[c] = byte_at(b, seg + 7 + 3 * c) & 15;
        if (hs[c] < 1 || hs[c] > 4 || vs[c] < 1 || vs[c] > 4) bad(where, "a component has sampling factors out of 1 to 4");
        hmax = std::max(hmax, hs[c]);
        vmax = std::max(vmax, vs[c]);
      }
      if (comps == 3) {
        const bool full = hs[0] == 1 && vs[0] == 1, half = hs[0] == 2 && vs[0] == 2;
        const bool chroma = hs[1] == 1 && vs[1] == 1 && hs[2] == 1 && vs[2] == 1;
        if (!chroma || !(full || half)) {
          bad(where, "its chroma subsampling (" + std::to_string(hs[0]) + "x" + std::to_string(vs[0]) + ", " +
                         std::to_string(hs[1]) + "x" + std::to_string(vs[1]) + ", " + std::to_string(hs[2]) + "x" +
                         std::to_string(vs[2]) + ") is not 4:4:4 or 4:2:0, the two torchport reads; save it with "
                         "subsampling 4:4:4 or 4:2:0");
        }
      }
      for (unsigned c = 0; c < comps; ++c) {
        const uint64_t cw = (w * hs[c] + hmax - 1) / hmax, ch = (h * vs[c] + vmax - 1) / vmax;
        blocks += ((cw + 7) / 8) * ((ch + 7) / 8);
      }
    } else if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
      bad(where, "its frame kind (marker " + marker(m) +
                     ": lossless, hierarchical or arithmetic-coded) is not one torchport reads");
    } else if (m == 0xDA && !frame) {
      bad(where, "its scan starts before its frame header");
    } else if (m == 0xDA) {
      check_scan_tables(b, seg, end, where, tables);
    }
    at = end;
  }
  if (!frame) bad(where, "it has no frame header");
  // At least two bits per block (a DC code and an end-of-block code).
  if (entropy < blocks / 4) {
    bad(where, "its " + std::to_string(entropy) + " bytes of compressed data cannot hold the " + std::to_string(blocks) +
                   " blocks its " + dims(w, h) + " header declares (truncated, or a decompression bomb)");
  }
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
  try {
    if (bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0) {
      check_png(bytes, where);
    } else {
      check_jpeg(bytes, where);
    }
  } catch (const std::bad_alloc&) {
    bad(where, "out of memory while checking it");
  }
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
  at::Tensor t;
  try {
    t = at::empty({1, h, w, 3}, at::kByte);  // [1, H, W, 3] RGB
  } catch (const std::bad_alloc&) {
    bad(where, "its " + dims(w, h) + " pixels could not be allocated (out of memory)");
  }
  std::memcpy(t.data_ptr(), pixels.get(), static_cast<size_t>(w) * h * 3);
  return t;
}

}  // namespace torchport::detail
