// An ExecuTorch program file (.pte) carries no free-form records, so torchport's
// manifest and golden examples follow the program in the same file:
//
//   [program bytes, as ExecuTorch wrote them][manifest.json][golden.pt]
//   [footer: "TPORTPTE", u32 version, u32 0, u64 program, u64 manifest, u64 golden]
//
// (little-endian). ExecuTorch's loader reads the program by the sizes in its own
// header and ignores what follows, so the file stays a plain .pte that any
// ExecuTorch runtime loads (examples/edge_app does). The sizes must add up to
// the file's size exactly; nothing is trusted before that is checked.

#include "pte.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include <map>
#include <optional>
#include <vector>

#include <ATen/core/dispatch/Dispatcher.h>
#include <torchport/torchport.h>

namespace torchport::detail {
namespace {

uint64_t le64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

uint32_t le32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// Where ExecuTorch's own data ends, from its extended header ("eh00" at byte 8:
// u32 header length, u64 program size, u64 segment base offset, u64 segment
// data size); 0 when there is no such header.
uint64_t program_end(std::string_view bytes) {
  if (bytes.size() < 40 || bytes.compare(8, 4, "eh00") != 0 || le32(bytes.data() + 12) < 32) return 0;
  const uint64_t program = le64(bytes.data() + 16), base = le64(bytes.data() + 24), data = le64(bytes.data() + 32);
  if (base == 0 || data == 0) return program;
  return base > UINT64_MAX - data ? UINT64_MAX : std::max(program, base + data);
}

}  // namespace

bool is_pte(std::string_view bytes) {
  return bytes.size() >= 8 && bytes[4] == 'E' && bytes[5] == 'T' && bytes[6] >= '0' && bytes[6] <= '9' &&
         bytes[7] >= '0' && bytes[7] <= '9';
}

PteParts split_pte(std::string_view bytes, const std::string& where) {
  PteParts parts;
  parts.program = bytes;
  if (bytes.size() < kPteFooterBytes ||
      std::memcmp(bytes.data() + bytes.size() - kPteFooterBytes, kPteTailMagic, sizeof(kPteTailMagic)) != 0) {
    // A bare ExecuTorch program (its signature is its contract), unless bytes
    // follow its data: then a torchport tail lost its end.
    const uint64_t end = program_end(bytes);
    if (end != 0 && bytes.size() > end) {
      throw Error(ErrorKind::BadArtifact,
                  where + ": " + std::to_string(bytes.size() - end) + " bytes follow the ExecuTorch program (" +
                      std::to_string(end) + " bytes) without torchport's footer: the file was truncated or modified");
    }
    return parts;
  }
  const char* footer = bytes.data() + bytes.size() - kPteFooterBytes;
  const uint32_t version = le32(footer + 8);
  if (version != kPteTailVersion) {
    throw Error(ErrorKind::BadArtifact, where + ": torchport tail version " + std::to_string(version) +
                                            ", this runtime reads version " + std::to_string(kPteTailVersion));
  }
  const uint64_t program = le64(footer + 16), manifest = le64(footer + 24), golden = le64(footer + 32);
  const uint64_t body = bytes.size() - kPteFooterBytes;
  // Each size no larger than the body before adding, so the sum cannot overflow.
  if (program > body || manifest > body || golden > body || program + manifest + golden != body) {
    throw Error(ErrorKind::BadArtifact,
                where + ": torchport tail sizes (program " + std::to_string(program) + ", manifest " +
                    std::to_string(manifest) + ", golden " + std::to_string(golden) + " bytes) do not add up to the " +
                    std::to_string(body) + " bytes before the footer: the file was truncated or modified");
  }
  parts.program = bytes.substr(0, program);
  parts.manifest = bytes.substr(program, manifest);
  parts.golden = bytes.substr(program + manifest, golden);
  if (!is_pte(parts.program)) {
    throw Error(ErrorKind::BadArtifact, where + ": the bytes before torchport's tail are not an ExecuTorch program");
  }
  return parts;
}

}  // namespace torchport::detail

// ---------------------------------------------------------------------------
// The program's structure, walked before ExecuTorch's loader follows it. The
// field numbers are those of executorch/schema/program.fbs (executorch 1.5.1):
// a union takes two slots (its type, then its value). Every offset is checked
// to lie inside the program before it is read.

namespace torchport::detail {
namespace {

class FlatWalk {
 public:
  FlatWalk(std::string_view b, const std::string& where) : b_(b), where_(where) {}

  [[noreturn]] void bad(const std::string& what) const {
    throw Error(ErrorKind::BadArtifact, where_ + ": malformed ExecuTorch program: " + what);
  }
  void need(uint64_t pos, uint64_t n, const char* what) const {
    if (pos > b_.size() || n > b_.size() - pos) bad(std::string(what) + " lies outside the program");
  }
  uint32_t u32(uint64_t pos) const { need(pos, 4, "a field"); return le32(b_.data() + pos); }
  uint64_t u64(uint64_t pos) const { need(pos, 8, "a field"); return le64(b_.data() + pos); }
  uint16_t u16(uint64_t pos) const {
    need(pos, 2, "a vtable");
    return static_cast<uint16_t>(static_cast<uint8_t>(b_[pos]) | static_cast<uint8_t>(b_[pos + 1]) << 8);
  }
  uint8_t u8(uint64_t pos) const { need(pos, 1, "a field"); return static_cast<uint8_t>(b_[pos]); }

  /// The table a uoffset at `pos` points to.
  uint64_t deref(uint64_t pos) const {
    const uint64_t target = pos + u32(pos);
    need(target, 4, "a table or vector");
    return target;
  }
  /// Where field `slot` of the table at `table` lies; 0 when absent.
  uint64_t field(uint64_t table, int slot) const {
    const int64_t vt = static_cast<int64_t>(table) - static_cast<int32_t>(u32(table));
    if (vt < 0) bad("a vtable lies outside the program");
    const uint16_t vt_size = u16(static_cast<uint64_t>(vt));
    const uint64_t entry = 4 + 2 * static_cast<uint64_t>(slot);
    if (entry + 2 > vt_size) return 0;
    const uint16_t off = u16(static_cast<uint64_t>(vt) + entry);
    return off == 0 ? 0 : table + off;
  }
  /// A vector field: (position of its first element, length); length 0 when absent.
  std::pair<uint64_t, uint64_t> vec(uint64_t table, int slot, uint64_t element) const {
    const uint64_t f = field(table, slot);
    if (f == 0) return {0, 0};
    const uint64_t v = deref(f);
    const uint64_t n = u32(v);
    if (n > (b_.size() - v - 4) / element) bad("a vector of " + std::to_string(n) + " elements overruns the program");
    return {v + 4, n};
  }
  uint64_t table_at(uint64_t first, uint64_t i) const { return deref(first + 4 * i); }
  /// A string field; "" when absent.
  std::string str(uint64_t table, int slot) const {
    const uint64_t f = field(table, slot);
    if (f == 0) return "";
    const uint64_t at = deref(f);
    const uint64_t n = u32(at);
    need(at + 4, n, "a string");
    return std::string(b_.substr(at + 4, n));
  }
  /// A scalar field; flatbuffers leaves out a field equal to its default (0 throughout program.fbs).
  int32_t i32_field(uint64_t table, int slot, int32_t fallback) const {
    const uint64_t f = field(table, slot);
    return f == 0 ? fallback : static_cast<int32_t>(u32(f));
  }

 private:
  std::string_view b_;
  const std::string& where_;
};

// KernelTypes and InstructionArguments, as numbered in program.fbs (0 is NONE).
enum Value : uint8_t { kNone = 0, kNull, kInt, kBool, kDouble, kTensor, kString, kIntList, kDoubleList,
                       kBoolList, kTensorList, kOptionalTensorList };
enum Instr : uint8_t { kKernelCall = 1, kDelegateCall, kMoveCall, kJumpFalseCall, kFreeCall };

// The value types a kernel argument may have, from the operator's schema in
// LibTorch's registry (ExecuTorch's kernels read their arguments by the same
// schema, and abort on a value of another type); empty where any type goes.
std::vector<uint8_t> accepted(const c10::TypePtr& type) {
  using K = c10::TypeKind;
  switch (type->kind()) {
    case K::TensorType: return {kTensor};
    case K::IntType: case K::SymIntType: return {kInt};
    case K::FloatType: return {kDouble};
    case K::BoolType: return {kBool};
    case K::NumberType: return {kInt, kDouble, kBool};
    case K::StringType: return {kString};
    case K::OptionalType: {
      auto inner = accepted(type->castRaw<c10::OptionalType>()->getElementType());
      if (inner.empty()) return {};
      inner.push_back(kNull);
      if (inner.front() == kTensorList) inner.push_back(kOptionalTensorList);
      return inner;
    }
    case K::ListType: {
      const auto& elem = type->castRaw<c10::ListType>()->getElementType();
      switch (elem->kind()) {
        case K::TensorType: return {kTensorList};
        case K::IntType: case K::SymIntType: return {kIntList};
        case K::FloatType: return {kDoubleList};
        case K::BoolType: return {kBoolList};
        case K::OptionalType:
          return elem->castRaw<c10::OptionalType>()->getElementType()->kind() == K::TensorType
                     ? std::vector<uint8_t>{kOptionalTensorList, kTensorList}
                     : std::vector<uint8_t>{};
        default: return {};
      }
    }
    default: return {};
  }
}

const char* type_name(uint8_t t) {
  static const char* names[] = {"none", "None", "int", "bool", "float", "tensor", "string", "int list",
                                "float list", "bool list", "tensor list", "optional tensor list"};
  return t <= kOptionalTensorList ? names[t] : "unknown";
}

// The schema's argument types for "aten::add" "out"; nullopt for operators
// LibTorch does not know (ExecuTorch's own and custom ones are left to ExecuTorch).
std::optional<std::vector<std::vector<uint8_t>>> schema_types(const std::string& name, const std::string& overload) {
  if (name.find("::") == std::string::npos) return std::nullopt;
  const auto op = c10::Dispatcher::singleton().findSchema(c10::OperatorName(name, overload));
  if (!op) return std::nullopt;
  std::vector<std::vector<uint8_t>> types;
  for (const auto& arg : op->schema().arguments()) types.push_back(accepted(arg.type()));
  return types;
}

// Lists whose items are indices of other values (IntList: [long];
// TensorList, OptionalTensorList: [int]) must hold values of the list's item
// type: ExecuTorch unboxes each item with EValue::to<T>() when a kernel reads
// the list, which aborts the process on another type (SIGABRT at the first
// run). An index past the values is refused here too, naming the list.
// DoubleList and BoolList hold their items themselves: their vectors are
// only kept inside the program.
void check_list_items(const FlatWalk& w, const std::vector<uint8_t>& types, uint64_t table, uint64_t v,
                      const std::string& in_plan) {
  const uint8_t type = types[v];
  if (type == kDoubleList || type == kBoolList) {
    w.vec(table, 0, type == kDoubleList ? 8 : 1);
    return;
  }
  if (type != kIntList && type != kTensorList && type != kOptionalTensorList) return;
  const uint64_t width = type == kIntList ? 8 : 4;
  const uint8_t item_type = type == kIntList ? kInt : kTensor;
  const std::string list = std::string(type_name(type)) + " " + std::to_string(v);
  const auto [first, n] = w.vec(table, 0, width);
  for (uint64_t i = 0; i < n; ++i) {
    const int64_t item = width == 8 ? static_cast<int64_t>(w.u64(first + 8 * i))
                                    : static_cast<int64_t>(static_cast<int32_t>(w.u32(first + 4 * i)));
    if (type == kOptionalTensorList && item == -1) continue;  // None
    if (item < 0 || static_cast<uint64_t>(item) >= types.size()) {
      w.bad(in_plan + ": " + list + " refers to value " + std::to_string(item) + " of " + std::to_string(types.size()));
    }
    if (types[static_cast<uint64_t>(item)] != item_type) {
      w.bad(in_plan + ": " + list + " holds value " + std::to_string(item) + ", which is not " +
            (item_type == kInt ? "an int" : "a tensor") + " (it is a " +
            type_name(types[static_cast<uint64_t>(item)]) + ")");
    }
  }
}

// Every operator needs a name: ExecuTorch 1.5.1 logs "Missing operator name"
// but, for some programs (the undelegated MLP's first operator), still
// finishes loading the method and then calls the kernel it never resolved
// (SIGSEGV in Method::execute_instruction at the first run).
void check_operator_names(const FlatWalk& w, uint64_t ops, uint64_t n_ops, const std::string& in_plan) {
  for (uint64_t o = 0; o < n_ops; ++o) {
    const uint64_t op = w.table_at(ops, o);
    // Operator: name 0, overload 1.
    if (w.field(op, 0) == 0) {
      w.bad(in_plan + ": operator " + std::to_string(o) + " of " + std::to_string(n_ops) +
            " has no name (expected \"namespace::op\")");
    }
    w.str(op, 0);
    w.str(op, 1);
  }
}

}  // namespace

void check_pte_program(std::string_view program, const std::string& where, uint64_t plan_cap) {
  FlatWalk w(program, where);
  const uint64_t root = w.deref(0);
  // Program: version 0, execution_plan 1, constant_buffer 2, ..., constant_segment 5.
  const auto [plans, n_plans] = w.vec(root, 1, 4);
  if (n_plans == 0) w.bad("it holds no execution plan");
  uint64_t constants = w.vec(root, 2, 4).second;
  if (const uint64_t seg = w.field(root, 5); seg != 0) {
    constants = std::max(constants, w.vec(w.deref(seg), 1, 8).second);  // SubsegmentOffsets.offsets
  }
  for (uint64_t p = 0; p < n_plans; ++p) {
    const uint64_t plan = w.table_at(plans, p);
    const std::string in_plan = "plan " + std::to_string(p);
    // ExecutionPlan: values 2, inputs 3, outputs 4, chains 5, operators 6, delegates 7, non_const_buffer_sizes 8.
    const auto [values, n_values] = w.vec(plan, 2, 4);
    const auto [ops, n_ops] = w.vec(plan, 6, 4);
    const uint64_t n_delegates = w.vec(plan, 7, 4).second;
    std::map<int32_t, std::optional<std::vector<std::vector<uint8_t>>>> schemas;
    std::map<int32_t, std::string> op_names;
    auto index = [&](int64_t i, const std::string& what) {
      if (i < 0 || static_cast<uint64_t>(i) >= n_values) {
        w.bad(in_plan + ": " + what + " refers to value " + std::to_string(i) + " of " + std::to_string(n_values));
      }
      return static_cast<uint64_t>(i);
    };
    std::vector<uint8_t> types(n_values, kNone);
    std::vector<uint64_t> tables(n_values, 0);
    for (uint64_t v = 0; v < n_values; ++v) {
      const uint64_t ev = w.table_at(values, v);
      const uint64_t t = w.field(ev, 0);
      types[v] = t == 0 ? kNone : w.u8(t);
      if (types[v] > kOptionalTensorList) w.bad(in_plan + ": value " + std::to_string(v) + " has unknown type " +
                                                 std::to_string(types[v]));
      if (types[v] != kNone && types[v] != kNull) {
        const uint64_t f = w.field(ev, 1);
        if (f == 0) w.bad(in_plan + ": value " + std::to_string(v) + " has a type but no content");
        tables[v] = w.deref(f);
      }
    }
    check_operator_names(w, ops, n_ops, in_plan);
    std::vector<bool> io(n_values, false);
    for (int slot : {3, 4}) {
      const auto [first, n] = w.vec(plan, slot, 4);
      for (uint64_t i = 0; i < n; ++i) io[index(static_cast<int32_t>(w.u32(first + 4 * i)), slot == 3 ? "an input" : "an output")] = true;
    }
    // Tensors: constants (no planned memory, not an input or output) must
    // name a constant buffer that exists and is not the reserved empty one.
    for (uint64_t v = 0; v < n_values; ++v) {
      check_list_items(w, types, tables[v], v, in_plan);
      if (types[v] != kTensor) continue;
      // Tensor: sizes 2, data_buffer_idx 5, allocation_info 6, extra_tensor_info 9.
      const auto [sizes, rank] = w.vec(tables[v], 2, 4);
      bool empty = false;
      for (uint64_t d = 0; d < rank; ++d) {
        const int32_t s = static_cast<int32_t>(w.u32(sizes + 4 * d));
        if (s < 0) w.bad(in_plan + ": tensor " + std::to_string(v) + " has a negative size");
        empty = empty || s == 0;
      }
      const uint64_t buffer = static_cast<uint32_t>(w.i32_field(tables[v], 5, 0));
      const bool planned = w.field(tables[v], 6) != 0, external = w.field(tables[v], 9) != 0;
      if (planned || external || io[v]) continue;
      if (buffer >= constants && buffer != 0) {
        w.bad(in_plan + ": constant tensor " + std::to_string(v) + " refers to constant buffer " +
              std::to_string(buffer) + " of " + std::to_string(constants));
      }
      if (buffer == 0 && !empty) {
        w.bad(in_plan + ": constant tensor " + std::to_string(v) +
              " points at the empty buffer (index 0) and has no planned memory: it has no data");
      }
    }
    // Instructions of every chain: indices in range, delegate calls with arguments.
    const auto [chains, n_chains] = w.vec(plan, 5, 4);
    for (uint64_t c = 0; c < n_chains; ++c) {
      const auto [instrs, n_instrs] = w.vec(w.table_at(chains, c), 2, 4);
      for (uint64_t i = 0; i < n_instrs; ++i) {
        const std::string at = in_plan + " chain " + std::to_string(c) + " instruction " + std::to_string(i);
        const uint64_t ins = w.table_at(instrs, i);
        const uint64_t tf = w.field(ins, 0), vf = w.field(ins, 1);
        const uint8_t kind = tf == 0 ? 0 : w.u8(tf);
        if (kind < kKernelCall || kind > kFreeCall || vf == 0) w.bad(at + " has no known instruction type");
        const uint64_t args = w.deref(vf);
        if (kind == kKernelCall || kind == kDelegateCall) {
          const int32_t callee = w.i32_field(args, 0, 0);
          const uint64_t callees = kind == kKernelCall ? n_ops : n_delegates;
          if (callee < 0 || static_cast<uint64_t>(callee) >= callees) {
            w.bad(at + " calls " + (kind == kKernelCall ? "operator " : "delegate ") + std::to_string(callee) +
                  " of " + std::to_string(callees));
          }
          const auto [first, n] = w.vec(args, 1, 4);
          if (kind == kDelegateCall && n == 0) w.bad(at + " is a delegate call without arguments");
          const std::vector<std::vector<uint8_t>>* schema = nullptr;
          if (kind == kKernelCall) {
            auto found = schemas.find(callee);
            if (found == schemas.end()) {
              const uint64_t op = w.table_at(ops, static_cast<uint64_t>(callee));
              const std::string name = w.str(op, 0), overload = w.str(op, 1);
              op_names[callee] = name + (overload.empty() ? "" : "." + overload);
              found = schemas.emplace(callee, schema_types(name, overload)).first;
            }
            if (found->second) {
              schema = &*found->second;
              if (n < schema->size()) {
                w.bad(at + " calls " + op_names[callee] + " with " + std::to_string(n) + " arguments; its schema takes " +
                      std::to_string(schema->size()));
              }
            }
          }
          for (uint64_t a = 0; a < n; ++a) {
            const uint64_t value = index(static_cast<int32_t>(w.u32(first + 4 * a)), at + " argument " + std::to_string(a));
            // A kernel reads every argument as a value of some type; an unset one aborts ExecuTorch.
            if (types[value] == kNone) w.bad(at + " argument " + std::to_string(a) + " is a value without a type");
            if (schema != nullptr && a < schema->size() && !(*schema)[a].empty() &&
                std::find((*schema)[a].begin(), (*schema)[a].end(), types[value]) == (*schema)[a].end()) {
              w.bad(at + " passes a " + type_name(types[value]) + " as argument " + std::to_string(a) + " of " +
                    op_names[callee] + ", whose schema takes a " + type_name((*schema)[a].front()));
            }
          }
        } else if (kind == kMoveCall) {
          index(w.i32_field(args, 0, 0), at + " (move from)");
          index(w.i32_field(args, 1, 0), at + " (move to)");
        } else if (kind == kJumpFalseCall) {
          const uint64_t cond = index(w.i32_field(args, 0, 0), at + " (condition)");
          if (types[cond] != kBool) w.bad(at + " jumps on a value that is not a bool");
          const int32_t dest = w.i32_field(args, 1, 0);
          if (dest < 0 || static_cast<uint64_t>(dest) >= n_instrs) w.bad(at + " jumps outside its chain");
        } else {
          index(w.i32_field(args, 0, 0), at + " (free)");
        }
      }
    }
    // The memory plan: buffer 0 is reserved; the rest is allocated for each
    // loaded method, so it is bounded before anything is allocated.
    const auto [sizes, n_sizes] = w.vec(plan, 8, 8);
    uint64_t planned = 0;
    for (uint64_t i = 0; i < n_sizes; ++i) {
      const int64_t s = static_cast<int64_t>(w.u64(sizes + 8 * i));
      if (s < 0) w.bad(in_plan + ": memory plan buffer " + std::to_string(i) + " has a negative size");
      planned += std::min<uint64_t>(static_cast<uint64_t>(s), plan_cap + 1);
      if (planned > plan_cap) {
        throw Error(ErrorKind::BadArtifact,
                    where + ": " + in_plan + "'s memory plan needs more than " + std::to_string(plan_cap) +
                        " bytes (the cap on one method's planned memory; buffers so far " +
                        std::to_string(planned) + " bytes)");
      }
    }
  }
}

}  // namespace torchport::detail
