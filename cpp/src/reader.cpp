// Reading hostile files: regular files only, zip directories and pickles
// checked against the limits in reader.h before LibTorch sees them.

#include "reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <cerrno>
#include <cstring>
#include <set>
#include <unordered_set>

#include <caffe2/serialize/inline_container.h>
#include <torch/serialize.h>

#include <torchport/tools.h>

#include "detail.h"

namespace torchport::detail {
namespace {

std::string file_type(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

[[noreturn]] void refuse(ErrorKind kind, const std::string& where, const std::string& what) {
  throw Error(kind, where + ": " + what);
}

uint64_t le(const std::string& b, uint64_t pos, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[pos + i]);
  return v;
}

class MemoryReader final : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit MemoryReader(std::shared_ptr<const std::string> bytes) : bytes_(std::move(bytes)) {}
  size_t size() const override { return bytes_->size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= bytes_->size()) return 0;
    n = std::min<size_t>(n, bytes_->size() - pos);
    std::memcpy(buf, bytes_->data() + pos, n);
    return n;
  }

 private:
  std::shared_ptr<const std::string> bytes_;
};

// A record name as it can be shown in a message: control and non-ASCII bytes as \xNN.
std::string printable(const std::string& name) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : name.substr(0, 200)) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return name.size() > 200 ? out + "..." : out;
}

// Zip slip: a record name is a relative path inside the archive's folder, so
// no extractor (AOTInductor's loader writes records to disk) can be led out
// of it. Refused: absolute paths, drive letters, backslashes, '..', '.' and
// empty components, NUL and other control bytes.
void check_record_name(const std::string& name, uint64_t index, const std::string& where, ErrorKind kind) {
  auto bad = [&](const std::string& why) {
    refuse(kind, where, "record " + std::to_string(index) + " '" + printable(name) + "' " + why +
                            "; a record name must be a relative path inside the archive");
  };
  for (unsigned char c : name) {
    if (c == 0) bad("has a NUL byte in its name");
    if (c < 0x20 || c == 0x7f) bad("has a control character in its name");
    if (c == '\\') bad("has a backslash in its name (a Windows path separator)");
  }
  if (name.front() == '/') bad("is an absolute path");
  if (name.size() >= 2 && name[1] == ':') bad("starts with a drive letter");
  size_t start = 0;
  while (true) {
    const size_t slash = name.find('/', start);
    const std::string part = name.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part == "..") bad("climbs out of its folder ('..')");
    if (part == ".") bad("has a '.' component");
    if (part.empty() && slash != std::string::npos) bad("has an empty path component ('//')");
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
}

}  // namespace

std::shared_ptr<const std::string> read_regular_file(const std::string& path, const std::string& what,
                                                      ErrorKind kind) {
  const std::string who = what + " '" + path + "'";
  struct stat st {};
  // stat first, so that a FIFO is never opened (opening one for reading waits
  // for a writer); the opened descriptor is checked again against a swap.
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      throw Error(kind == ErrorKind::BadArtifact ? ErrorKind::NotFound : kind, who + " does not exist");
    }
    refuse(kind, who, std::string("cannot be read: ") + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) refuse(kind, who, "is " + file_type(st.st_mode) + ", expected a regular file");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) refuse(kind, who, std::string("cannot be opened: ") + std::strerror(errno));
  auto bytes = std::make_shared<std::string>();
  try {
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      refuse(kind, who, "changed while being opened; expected a regular file");
    }
    if (st.st_size == 0) refuse(kind, who, "is empty");
    bytes->resize(static_cast<size_t>(st.st_size));
    size_t done = 0;
    while (done < bytes->size()) {
      const ssize_t n = ::read(fd, bytes->data() + done, bytes->size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) refuse(kind, who, std::string("read failed: ") + std::strerror(errno));
      if (n == 0) break;  // shrank while being read
      done += static_cast<size_t>(n);
    }
    bytes->resize(done);
  } catch (const std::bad_alloc&) {
    ::close(fd);
    refuse(kind, who, "is too large to read into memory (" + std::to_string(st.st_size) + " bytes)");
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return bytes;
}

std::vector<ZipRecord> check_zip(const std::string& b, const std::string& where, ErrorKind kind) {
  const uint64_t size = b.size();
  auto bad = [&](const std::string& what) { refuse(kind, where, "not a valid zip archive: " + what); };
  if (size < 22) bad("too short (" + std::to_string(size) + " bytes)");
  // The end-of-central-directory record: 22 bytes plus a comment of up to 64 KiB.
  int64_t eocd = -1;
  const uint64_t lowest = size > 22 + 0xFFFF ? size - 22 - 0xFFFF : 0;
  for (uint64_t p = size - 22 + 1; p-- > lowest;) {
    if (le(b, p, 4) == 0x06054b50 && p + 22 + le(b, p + 20, 2) == size) {
      eocd = static_cast<int64_t>(p);
      break;
    }
  }
  if (eocd < 0) bad("no end-of-central-directory record");
  uint64_t count = le(b, eocd + 10, 2), cd_size = le(b, eocd + 12, 4), cd_offset = le(b, eocd + 16, 4);
  if (le(b, eocd + 4, 2) != 0 || le(b, eocd + 6, 2) != 0) bad("multi-disk archives are not supported");
  if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
    // ZIP64: a locator just before the record points at the ZIP64 end record.
    if (eocd < 20 || le(b, eocd - 20, 4) != 0x07064b50) bad("ZIP64 locator missing");
    const uint64_t z = le(b, eocd - 20 + 8, 8);
    if (z > size || size - z < 56 || le(b, z, 4) != 0x06064b50) bad("ZIP64 end record out of place");
    count = le(b, z + 32, 8);
    cd_size = le(b, z + 40, 8);
    cd_offset = le(b, z + 48, 8);
  }
  if (count > limits::kZipRecords) {
    refuse(kind, where, "holds " + std::to_string(count) + " records, more than the limit of " +
                            std::to_string(limits::kZipRecords));
  }
  if (cd_offset > size || cd_size > size - cd_offset) bad("central directory lies outside the file");

  std::vector<ZipRecord> records;
  records.reserve(count);
  std::unordered_set<std::string> names;
  uint64_t pos = cd_offset, inflated = 0;
  const uint64_t cd_end = cd_offset + cd_size;
  for (uint64_t i = 0; i < count; ++i) {
    if (cd_end - pos < 46 || pos > cd_end || le(b, pos, 4) != 0x02014b50) {
      bad("central directory entry " + std::to_string(i) + " is malformed");
    }
    const uint64_t flags = le(b, pos + 8, 2);
    ZipRecord r;
    r.method = static_cast<uint16_t>(le(b, pos + 10, 2));
    r.compressed = le(b, pos + 20, 4);
    r.uncompressed = le(b, pos + 24, 4);
    const uint64_t name_len = le(b, pos + 28, 2), extra_len = le(b, pos + 30, 2), comment_len = le(b, pos + 32, 2);
    r.offset = le(b, pos + 42, 4);
    if (46 + name_len + extra_len + comment_len > cd_end - pos) bad("entry " + std::to_string(i) + " overruns the directory");
    if (name_len == 0 || name_len > limits::kZipNameBytes) {
      refuse(kind, where, "record " + std::to_string(i) + " has a name of " + std::to_string(name_len) +
                              " bytes (limit " + std::to_string(limits::kZipNameBytes) + ", and not empty)");
    }
    r.name = b.substr(pos + 46, name_len);
    check_record_name(r.name, i, where, kind);
    // Unix "version made by" (upper byte 3): the upper 16 bits of the external
    // attributes are the mode; a link would make an extractor write through it.
    const uint64_t made_by = le(b, pos + 4, 2) >> 8, mode = le(b, pos + 38, 4) >> 16;
    const uint64_t type = mode & S_IFMT;
    if (made_by == 3 && type != 0 && type != S_IFREG && type != S_IFDIR) {
      refuse(kind, where, "record '" + printable(r.name) + "' is " +
                              (type == S_IFLNK ? std::string("a symbolic link") : "a special file") +
                              "; only regular file records are read");
    }
    // ZIP64 extra field: the 64-bit values of the fields that read 0xFFFFFFFF.
    for (uint64_t e = pos + 46 + name_len, end = e + extra_len; end - e >= 4;) {
      const uint64_t id = le(b, e, 2), len = le(b, e + 2, 2);
      if (len > end - e - 4) bad("record '" + r.name + "' has a malformed extra field");
      if (id == 0x0001) {
        uint64_t f = e + 4;
        auto take = [&](uint64_t& field) {
          if (field != 0xFFFFFFFF) return;
          if (f + 8 > e + 4 + len) bad("record '" + r.name + "' has a short ZIP64 field");
          field = le(b, f, 8);
          f += 8;
        };
        take(r.uncompressed);
        take(r.compressed);
        take(r.offset);
      }
      e += 4 + len;
    }
    pos += 46 + name_len + extra_len + comment_len;
    if (flags & 0x1) refuse(kind, where, "record '" + r.name + "' is encrypted");
    if (!names.insert(r.name).second) refuse(kind, where, "record '" + r.name + "' appears twice");
    if (r.method == 0) {
      if (r.compressed != r.uncompressed) bad("stored record '" + r.name + "' declares two sizes");
    } else if (r.method == 8) {
      if (r.uncompressed > limits::kInflatedRecord) {
        refuse(kind, where, "record '" + r.name + "' inflates to " + std::to_string(r.uncompressed) +
                                " bytes, more than the limit of " + std::to_string(limits::kInflatedRecord));
      }
      inflated += r.uncompressed;
      if (inflated > limits::kInflatedTotal) {
        refuse(kind, where, "compressed records inflate to more than the limit of " +
                                std::to_string(limits::kInflatedTotal) + " bytes");
      }
    } else {
      bad("record '" + r.name + "' uses compression method " + std::to_string(r.method) +
          " (stored and deflate are read)");
    }
    // The record's data must lie inside the file, before the directory.
    if (r.offset > cd_offset || cd_offset - r.offset < 30 || le(b, r.offset, 4) != 0x04034b50) {
      bad("record '" + r.name + "' has no local header at offset " + std::to_string(r.offset));
    }
    // Extractors that walk local headers would use this name, not the directory's.
    const uint64_t local_name_len = le(b, r.offset + 26, 2);
    if (local_name_len != name_len || cd_offset - r.offset - 30 < name_len ||
        b.compare(r.offset + 30, name_len, r.name) != 0) {
      refuse(kind, where, "record '" + printable(r.name) +
                              "' has another name in its local header than in the central directory");
    }
    const uint64_t data = r.offset + 30 + le(b, r.offset + 26, 2) + le(b, r.offset + 28, 2);
    if (data > cd_offset || r.compressed > cd_offset - data) {
      bad("record '" + r.name + "' (" + std::to_string(r.compressed) + " bytes) lies outside the file");
    }
    r.data = data;
    records.push_back(std::move(r));
  }
  return records;
}

namespace {

// What the walk keeps of an item on the unpickler's stack: its nesting depth,
// and for the small values a storage reference is made of (strings, ints,
// globals, short tuples), the value itself.
struct Item {
  enum Kind { kOther, kMark, kText, kInt, kGlobal, kTuple } kind = kOther;
  int depth = 0;
  std::string text;  // kText, kGlobal ("module name")
  int64_t number = 0;
  std::vector<Item> elements;  // kTuple, up to kTupleValues, without their own elements
};
constexpr size_t kTupleValues = 8;
constexpr size_t kTextValue = 256;

Item other(int depth) { return Item{Item::kOther, depth}; }

Item tuple_of(std::vector<Item> items) {
  int deepest = 0;
  for (const auto& i : items) deepest = std::max(deepest, i.depth);
  Item t{Item::kTuple, deepest + 1};
  if (items.size() <= kTupleValues) {
    for (auto& i : items) i.elements.clear();
    t.elements = std::move(items);
  }
  return t;
}

// Bytes per element of "torch FloatStorage" and friends; 0 when unknown.
size_t storage_element_size(const std::string& global) {
  // Dtypes without a typed storage class are saved untyped, their numel in bytes.
  if (global == "torch.storage UntypedStorage" || global == "torch UntypedStorage") return 1;
  if (global.rfind("torch ", 0) != 0 || global.size() < 13 || global.compare(global.size() - 7, 7, "Storage") != 0) {
    return 0;
  }
  const std::string name = global.substr(6, global.size() - 13);
  if (name == "Untyped") return 1;
  for (int i = 0; i < static_cast<int>(c10::ScalarType::NumOptions); ++i) {
    const auto type = static_cast<c10::ScalarType>(i);
    if (name == c10::toString(type)) return c10::elementSize(type);
  }
  return 0;
}

}  // namespace

std::vector<StorageNeed> check_pickle(const char* data, size_t size, const std::string& where, ErrorKind kind) {
  auto bad = [&](size_t at, const std::string& what) {
    refuse(kind, where, "malformed pickle at byte " + std::to_string(at) + ": " + what);
  };
  std::vector<Item> stack;
  std::vector<std::optional<Item>> memo;
  std::vector<StorageNeed> needs;
  size_t p = 0;
  auto need = [&](uint64_t n) {
    if (n > size - p) bad(p, "argument runs past the end of the data");
  };
  auto arg = [&](int bytes) {
    need(bytes);
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(data[p + i]);
    p += bytes;
    return v;
  };
  auto line = [&]() -> std::string {
    const void* nl = std::memchr(data + p, '\n', std::min<size_t>(size - p, limits::kPickleTextArg));
    if (!nl) bad(p, "text argument without a newline within " + std::to_string(limits::kPickleTextArg) + " bytes");
    const size_t len = static_cast<const char*>(nl) - (data + p);
    std::string s(data + p, len);
    p += len + 1;
    return s;
  };
  auto text = [&](uint64_t n) {
    need(n);
    Item item{Item::kText, 0};
    if (n <= kTextValue) item.text.assign(data + p, n);
    p += n;
    return item;
  };
  auto pop = [&](size_t at) {
    if (stack.empty() || stack.back().kind == Item::kMark) bad(at, "stack underflow");
    Item item = std::move(stack.back());
    stack.pop_back();
    return item;
  };
  auto pop_mark = [&](size_t at) {  // the items above the last mark, in order
    std::vector<Item> items;
    while (true) {
      if (stack.empty()) bad(at, "no mark on the stack");
      Item item = std::move(stack.back());
      stack.pop_back();
      if (item.kind == Item::kMark) break;
      if (items.size() <= kTupleValues) {
        items.push_back(std::move(item));
      } else {
        items.back().depth = std::max(items.back().depth, item.depth);
      }
    }
    std::reverse(items.begin(), items.end());
    return items;
  };
  auto deepest = [](const std::vector<Item>& items) {
    int d = 0;
    for (const auto& i : items) d = std::max(d, i.depth);
    return d;
  };
  auto push = [&](size_t at, Item item) {
    if (item.depth > limits::kPickleDepth) {
      refuse(kind, where, "nests containers " + std::to_string(item.depth) + " deep at byte " + std::to_string(at) +
                              ", more than the limit of " + std::to_string(limits::kPickleDepth));
    }
    if (stack.size() > size) bad(at, "stack grows past the data");
    stack.push_back(std::move(item));
  };
  auto nest = [&](size_t at, int inner) {  // put an item of depth `inner` into the container on top
    if (stack.empty() || stack.back().kind == Item::kMark) bad(at, "no container to add to");
    const int d = std::max(stack.back().depth, inner + 1);
    stack.pop_back();
    push(at, other(d));
  };
  auto put = [&](size_t at, uint64_t index) {
    if (stack.empty() || stack.back().kind == Item::kMark) bad(at, "nothing to memoise");
    if (index >= limits::kPickleMemo || index > size) bad(at, "memo index " + std::to_string(index) + " out of range");
    if (memo.size() <= index) memo.resize(index + 1);
    Item copy = stack.back();
    if (copy.kind == Item::kTuple) copy.elements.clear();
    memo[index] = std::move(copy);
  };
  auto get = [&](size_t at, uint64_t index) {
    if (index >= memo.size() || !memo[index]) bad(at, "memo index " + std::to_string(index) + " was never set");
    push(at, *memo[index]);
  };
  auto decimal = [&](size_t at, const std::string& s) {
    if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos) {
      bad(at, "expected a memo index, got '" + s.substr(0, 20) + "'");
    }
    return std::stoull(s);
  };
  auto integer = [&](int64_t v) { return Item{Item::kInt, 0, {}, v}; };
  auto long_int = [&](uint64_t n) {  // LONG1/LONG4: little-endian two's complement
    need(n);
    Item item = other(0);
    if (n <= 8) {
      uint64_t v = 0;
      for (uint64_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(data[p + i])) << (8 * i);
      if (n > 0 && n < 8 && (static_cast<uint8_t>(data[p + n - 1]) & 0x80)) v |= ~uint64_t{0} << (8 * n);
      item = integer(static_cast<int64_t>(v));
    }
    p += n;
    return item;
  };
  // ('storage', torch.<Type>Storage, key, location, numel): the record `key`
  // must hold numel elements; LibTorch's unpickler does not check.
  auto persistent = [&](size_t at, const Item& id) {
    if (id.kind != Item::kTuple || id.elements.size() < 5 || id.elements[0].kind != Item::kText ||
        id.elements[0].text != "storage") {
      return;
    }
    const auto& type = id.elements[1];
    const auto& key = id.elements[2];
    const auto& numel = id.elements[4];
    if (type.kind != Item::kGlobal || key.kind != Item::kText || numel.kind != Item::kInt) {
      bad(at, "malformed storage reference");
    }
    const size_t element = storage_element_size(type.text);
    if (element == 0) bad(at, "unknown storage type '" + type.text + "'");
    if (numel.number < 0 || static_cast<uint64_t>(numel.number) > (uint64_t{1} << 62) / element) {
      bad(at, "storage '" + key.text + "' declares " + std::to_string(numel.number) + " elements");
    }
    needs.push_back({key.text, static_cast<uint64_t>(numel.number) * element});
  };

  while (true) {
    if (p >= size) bad(p, "no STOP opcode");
    const size_t at = p;
    const auto op = static_cast<uint8_t>(data[p++]);
    switch (op) {
      case '(': stack.push_back(Item{Item::kMark}); break;                      // MARK
      case '.':                                                                 // STOP
        if (stack.size() != 1 || stack.back().kind == Item::kMark) {
          bad(at, "STOP with " + std::to_string(stack.size()) + " items on the stack");
        }
        return needs;
      case '0': pop(at); break;                                                 // POP
      case '1': pop_mark(at); break;                                            // POP_MARK
      case '2': { Item d = pop(at); push(at, d); push(at, d); break; }          // DUP
      case 'F': case 'L': case 'S': case 'V': case 'P': line(); push(at, other(0)); break;
      case 'I': {                                                               // INT
        const std::string s = line();
        push(at, s.size() < 18 && !s.empty() && s.find_first_not_of("-0123456789") == std::string::npos
                     ? integer(std::stoll(s)) : other(0));
        break;
      }
      case 'J': push(at, integer(static_cast<int32_t>(arg(4)))); break;         // BININT
      case 'K': push(at, integer(static_cast<int64_t>(arg(1)))); break;         // BININT1
      case 'M': push(at, integer(static_cast<int64_t>(arg(2)))); break;         // BININT2
      case 'N': case 0x88: case 0x89: push(at, other(0)); break;                // NONE, NEWTRUE, NEWFALSE
      case 'G': arg(8); push(at, other(0)); break;                              // BINFLOAT
      case 'X': case 'T': case 'B': push(at, text(arg(4))); break;              // BINUNICODE, BINSTRING, BINBYTES
      case 'U': case 'C': case 0x8c: push(at, text(arg(1))); break;             // short strings and bytes
      case 0x8d: case 0x8e: case 0x96: push(at, text(arg(8))); break;           // 8-byte lengths
      case 0x8a: push(at, long_int(arg(1))); break;                             // LONG1
      case 0x8b: push(at, long_int(arg(4))); break;                             // LONG4
      case 'Q': { Item id = pop(at); persistent(at, id); push(at, other(id.depth)); break; }  // BINPERSID
      case 'R': case 0x81: { Item a = pop(at); pop(at); push(at, other(a.depth)); break; }  // REDUCE, NEWOBJ
      case 0x92: { Item k = pop(at); Item a = pop(at); pop(at); push(at, other(std::max(a.depth, k.depth))); break; }
      case 'a': case 'b': { Item d = pop(at); nest(at, d.depth); break; }       // APPEND, BUILD
      case 's': { Item v = pop(at); Item k = pop(at); nest(at, std::max(k.depth, v.depth)); break; }
      case 'e': case 'u': case 0x90: { const auto items = pop_mark(at); nest(at, deepest(items)); break; }
      case 't': push(at, tuple_of(pop_mark(at))); break;                        // TUPLE
      case 'd': case 'l': case 0x91: case 'o': push(at, other(deepest(pop_mark(at)) + 1)); break;
      case 'i': line(); line(); push(at, other(deepest(pop_mark(at)) + 1)); break;  // INST
      case '}': case ']': case 0x8f: push(at, other(1)); break;                 // empty containers
      case ')': push(at, tuple_of({})); break;                                  // EMPTY_TUPLE
      case 0x85: { Item a = pop(at); push(at, tuple_of({std::move(a)})); break; }  // TUPLE1
      case 0x86: { Item b = pop(at); Item a = pop(at); push(at, tuple_of({std::move(a), std::move(b)})); break; }
      case 0x87: {
        Item c = pop(at); Item b = pop(at); Item a = pop(at);
        push(at, tuple_of({std::move(a), std::move(b), std::move(c)}));
        break;
      }
      case 'c': {                                                               // GLOBAL
        std::string module = line();
        const std::string name = line();
        Item g{Item::kGlobal, 0};
        g.text = module + " " + name;
        push(at, std::move(g));
        break;
      }
      case 0x93: {                                                              // STACK_GLOBAL
        Item name = pop(at); Item module = pop(at);
        Item g{Item::kGlobal, 0};
        g.text = module.text + " " + name.text;
        push(at, std::move(g));
        break;
      }
      case 0x82: arg(1); push(at, other(0)); break;                             // EXT1
      case 0x83: arg(2); push(at, other(0)); break;
      case 0x84: arg(4); push(at, other(0)); break;
      case 'g': get(at, decimal(at, line())); break;                            // GET
      case 'h': get(at, arg(1)); break;                                         // BINGET
      case 'j': get(at, arg(4)); break;                                         // LONG_BINGET
      case 'p': put(at, decimal(at, line())); break;                            // PUT
      case 'q': put(at, arg(1)); break;                                         // BINPUT
      case 'r': put(at, arg(4)); break;                                         // LONG_BINPUT
      case 0x94: put(at, memo.size()); break;                                   // MEMOIZE
      case 0x80: arg(1); break;                                                 // PROTO
      case 0x95: arg(8); break;                                                 // FRAME
      case 0x97: push(at, other(0)); break;                                     // NEXT_BUFFER
      case 0x98: break;                                                         // READONLY_BUFFER
      default: {
        static const char* hex = "0123456789abcdef";
        bad(at, std::string("unknown opcode 0x") + hex[op >> 4] + hex[op & 15]);
      }
    }
  }
}

void check_storages(caffe2::serialize::PyTorchStreamReader& reader, const std::vector<StorageNeed>& needs,
                    const std::string& prefix, const std::string& where, ErrorKind kind) {
  for (const auto& need : needs) {
    const std::string name = prefix + need.key;
    if (!reader.hasRecord(name)) refuse(kind, where, "storage record '" + name + "' is missing");
    const size_t size = std::get<1>(reader.getRecord(name));
    if (size < need.bytes) {
      refuse(kind, where, "storage record '" + name + "' holds " + std::to_string(size) + " bytes, but " +
                              std::to_string(need.bytes) + " are declared");
    }
  }
}

void check_code(const char* data, size_t size, const std::string& where, ErrorKind kind) {
  int depth = 0, deepest = 0;
  uint64_t indent = 0;
  bool line_start = true;
  for (size_t i = 0; i < size; ++i) {
    const char c = data[i];
    if (c == '\n') {
      line_start = true;
      indent = 0;
      continue;
    }
    if (line_start && (c == ' ' || c == '\t')) {
      if (++indent > limits::kCodeIndent) {
        refuse(kind, where, "code is indented more than " + std::to_string(limits::kCodeIndent) + " columns");
      }
      continue;
    }
    line_start = false;
    if (c == '(' || c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (depth > limits::kCodeDepth) {
        refuse(kind, where, "code nests brackets more than " + std::to_string(limits::kCodeDepth) + " deep");
      }
    } else if (c == ')' || c == ']' || c == '}') {
      depth = std::max(0, depth - 1);
    }
  }
}

void check_in_bounds(const at::Tensor& t, const std::string& where, ErrorKind kind) {
  if (!t.defined() || !t.has_storage() || t.numel() == 0) return;
  // The furthest element, in elements from the storage's start; overflow-checked.
  __int128 last = t.storage_offset();
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (t.stride(d) < 0) refuse(kind, where, "holds a tensor with a negative stride");
    last += static_cast<__int128>(t.size(d) - 1) * t.stride(d);
  }
  const __int128 needed = (last + 1) * static_cast<__int128>(t.element_size());
  if (t.storage_offset() < 0 || needed > static_cast<__int128>(t.storage().nbytes())) {
    refuse(kind, where, "holds a tensor of shape " + shape_string(t.sizes().vec()) + " that reaches past its " +
                            std::to_string(t.storage().nbytes()) + "-byte storage");
  }
}

std::shared_ptr<caffe2::serialize::ReadAdapterInterface> memory_reader(std::shared_ptr<const std::string> bytes) {
  return std::make_shared<MemoryReader>(std::move(bytes));
}

std::vector<ZipRecord> check_zip_as(const std::string& bytes, const std::string& where, const std::string& what,
                                    ErrorKind kind) {
  try {
    return check_zip(bytes, where, kind);
  } catch (const Error& e) {
    std::string why = e.what();
    if (why.rfind(where + ": ", 0) == 0) why = why.substr(where.size() + 2);
    throw Error(kind, where + " is " + what + ": " + why);
  }
}

c10::IValue load_tensor_archive(const std::string& bytes, const std::string& where, ErrorKind kind) {
  check_zip_as(bytes, where, "not a tensor file written by torch.save", kind);
  bool has_pickle = false;
  try {
    caffe2::serialize::PyTorchStreamReader reader(memory_reader(std::make_shared<const std::string>(bytes)));
    for (const auto& name : reader.getAllRecords()) {
      if (name.size() >= 3 && name.compare(name.size() - 3, 3, "pkl") == 0) {
        auto [data, size] = reader.getRecord(name);
        const auto needs = check_pickle(static_cast<const char*>(data.get()), size, where + " record '" + name + "'", kind);
        if (name == "data.pkl") {
          has_pickle = true;
          check_storages(reader, needs, "data/", where, kind);
        }
      }
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(kind, where + " is not a tensor file written by torch.save: " + brief(e));
  }
  if (!has_pickle) throw Error(kind, where + " is not a tensor file written by torch.save: it holds no data.pkl");
  try {
    // The TorchScript unpickler only builds tensors and plain containers; it
    // cannot import or call arbitrary Python, unlike pickle.load.
    return torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
  } catch (const std::bad_alloc&) {
    refuse(kind, where, "holds more data than can be allocated");
  } catch (const std::exception& e) {
    throw Error(kind, where + " is not a tensor file written by torch.save: " + brief(e));
  }
}

}  // namespace torchport::detail
