// Reading hostile files: regular files only, zip directories and pickles
// checked against the limits in reader.h before LibTorch sees them.

#include "reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <unordered_set>

#include <caffe2/serialize/inline_container.h>
#include <torch/serialize.h>

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
    if (r.name.find('\0') != std::string::npos) bad("record " + std::to_string(i) + " has a NUL byte in its name");
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
    const uint64_t data = r.offset + 30 + le(b, r.offset + 26, 2) + le(b, r.offset + 28, 2);
    if (data > cd_offset || r.compressed > cd_offset - data) {
      bad("record '" + r.name + "' (" + std::to_string(r.compressed) + " bytes) lies outside the file");
    }
    records.push_back(std::move(r));
  }
  return records;
}

void check_pickle(const char* data, size_t size, const std::string& where, ErrorKind kind) {
  auto bad = [&](size_t at, const std::string& what) {
    refuse(kind, where, "malformed pickle at byte " + std::to_string(at) + ": " + what);
  };
  constexpr int kMark = -1;
  std::vector<int> stack;  // nesting depth of each item on the unpickler's stack
  std::vector<int> memo;   // depth of each memoised item; -2 when unset
  size_t p = 0;
  auto need = [&](size_t n) {
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
  auto pop = [&](size_t at) {
    if (stack.empty() || stack.back() == kMark) bad(at, "stack underflow");
    const int d = stack.back();
    stack.pop_back();
    return d;
  };
  auto pop_mark = [&](size_t at) {  // the deepest item above the last mark
    int deepest = 0;
    while (true) {
      if (stack.empty()) bad(at, "no mark on the stack");
      const int d = stack.back();
      stack.pop_back();
      if (d == kMark) return deepest;
      deepest = std::max(deepest, d);
    }
  };
  auto push = [&](size_t at, int depth) {
    if (depth > limits::kPickleDepth) {
      refuse(kind, where, "nests containers " + std::to_string(depth) + " deep at byte " + std::to_string(at) +
                              ", more than the limit of " + std::to_string(limits::kPickleDepth));
    }
    if (stack.size() > size) bad(at, "stack grows past the data");
    stack.push_back(depth);
  };
  auto nest = [&](size_t at, int inner) {  // put an item of depth `inner` into the container on top
    if (stack.empty() || stack.back() == kMark) bad(at, "no container to add to");
    const int d = std::max(stack.back(), inner + 1);
    stack.pop_back();
    push(at, d);
  };
  auto put = [&](size_t at, uint64_t index) {
    if (stack.empty() || stack.back() == kMark) bad(at, "nothing to memoise");
    if (index >= limits::kPickleMemo || index > size) bad(at, "memo index " + std::to_string(index) + " out of range");
    if (memo.size() <= index) memo.resize(index + 1, -2);
    memo[index] = stack.back();
  };
  auto get = [&](size_t at, uint64_t index) {
    if (index >= memo.size() || memo[index] == -2) bad(at, "memo index " + std::to_string(index) + " was never set");
    push(at, memo[index]);
  };
  auto decimal = [&](size_t at, const std::string& s) {
    if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos) {
      bad(at, "expected a memo index, got '" + s.substr(0, 20) + "'");
    }
    return std::stoull(s);
  };

  while (true) {
    if (p >= size) bad(p, "no STOP opcode");
    const size_t at = p;
    const auto op = static_cast<uint8_t>(data[p++]);
    switch (op) {
      case '(': stack.push_back(kMark); break;                                  // MARK
      case '.':                                                                 // STOP
        if (stack.size() != 1 || stack.back() == kMark) bad(at, "STOP with " + std::to_string(stack.size()) + " items on the stack");
        return;
      case '0': pop(at); break;                                                 // POP
      case '1': pop_mark(at); break;                                            // POP_MARK
      case '2': { const int d = pop(at); push(at, d); push(at, d); break; }      // DUP
      case 'F': case 'I': case 'L': case 'S': case 'V': line(); push(at, 0); break;
      case 'P': line(); push(at, 0); break;                                     // PERSID
      case 'J': arg(4); push(at, 0); break;                                     // BININT
      case 'K': arg(1); push(at, 0); break;                                     // BININT1
      case 'M': arg(2); push(at, 0); break;                                     // BININT2
      case 'N': case 0x88: case 0x89: push(at, 0); break;                       // NONE, NEWTRUE, NEWFALSE
      case 'G': arg(8); push(at, 0); break;                                     // BINFLOAT
      case 'T': case 'X': case 'B': { const uint64_t n = arg(4); need(n); p += n; push(at, 0); break; }
      case 'U': case 'C': case 0x8c: { const uint64_t n = arg(1); need(n); p += n; push(at, 0); break; }
      case 0x8a: { const uint64_t n = arg(1); need(n); p += n; push(at, 0); break; }  // LONG1
      case 0x8b: { const uint64_t n = arg(4); need(n); p += n; push(at, 0); break; }  // LONG4
      case 0x8d: case 0x8e: case 0x96: { const uint64_t n = arg(8); need(n); p += n; push(at, 0); break; }
      case 'Q': { const int d = pop(at); push(at, d); break; }                  // BINPERSID
      case 'R': { const int a = pop(at); pop(at); push(at, a); break; }         // REDUCE
      case 0x81: { const int a = pop(at); pop(at); push(at, a); break; }        // NEWOBJ
      case 0x92: { const int k = pop(at); const int a = pop(at); pop(at); push(at, std::max(a, k)); break; }
      case 'a': { const int d = pop(at); nest(at, d); break; }                  // APPEND
      case 'b': { const int d = pop(at); nest(at, d); break; }                  // BUILD
      case 's': { const int v = pop(at); const int k = pop(at); nest(at, std::max(k, v)); break; }
      case 'e': case 'u': case 0x90: { const int d = pop_mark(at); nest(at, d); break; }
      case 'd': case 'l': case 't': case 0x91: { const int d = pop_mark(at); push(at, d + 1); break; }
      case 'o': { const int d = pop_mark(at); push(at, d + 1); break; }         // OBJ
      case 'i': line(); line(); { const int d = pop_mark(at); push(at, d + 1); } break;  // INST
      case '}': case ']': case ')': case 0x8f: push(at, 1); break;              // empty containers
      case 0x85: { const int a = pop(at); push(at, a + 1); break; }             // TUPLE1
      case 0x86: { const int a = std::max(pop(at), pop(at)); push(at, a + 1); break; }
      case 0x87: { int a = pop(at); a = std::max(a, pop(at)); a = std::max(a, pop(at)); push(at, a + 1); break; }
      case 'c': line(); line(); push(at, 0); break;                             // GLOBAL
      case 0x93: pop(at); pop(at); push(at, 0); break;                          // STACK_GLOBAL
      case 0x82: arg(1); push(at, 0); break;                                    // EXT1
      case 0x83: arg(2); push(at, 0); break;
      case 0x84: arg(4); push(at, 0); break;
      case 'g': get(at, decimal(at, line())); break;                            // GET
      case 'h': get(at, arg(1)); break;                                         // BINGET
      case 'j': get(at, arg(4)); break;                                         // LONG_BINGET
      case 'p': put(at, decimal(at, line())); break;                            // PUT
      case 'q': put(at, arg(1)); break;                                         // BINPUT
      case 'r': put(at, arg(4)); break;                                         // LONG_BINPUT
      case 0x94: put(at, memo.size()); break;                                   // MEMOIZE
      case 0x80: arg(1); break;                                                 // PROTO
      case 0x95: arg(8); break;                                                 // FRAME
      case 0x97: push(at, 0); break;                                            // NEXT_BUFFER
      case 0x98: break;                                                         // READONLY_BUFFER
      default: bad(at, "unknown opcode 0x" + [&] {
                 static const char* hex = "0123456789abcdef";
                 return std::string{hex[op >> 4], hex[op & 15]};
               }());
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

std::shared_ptr<caffe2::serialize::ReadAdapterInterface> memory_reader(std::shared_ptr<const std::string> bytes) {
  return std::make_shared<MemoryReader>(std::move(bytes));
}

void check_zip_as(const std::string& bytes, const std::string& where, const std::string& what, ErrorKind kind) {
  try {
    check_zip(bytes, where, kind);
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
        check_pickle(static_cast<const char*>(data.get()), size, where + " record '" + name + "'", kind);
        has_pickle |= name == "data.pkl";
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
