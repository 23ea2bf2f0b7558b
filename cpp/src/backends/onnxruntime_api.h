#pragma once
// The few declarations of ONNX Runtime's C API this runtime uses, written from
// the public, append-only ABI (include/onnxruntime/core/session/onnxruntime_c_api.h,
// API version 13 = ORT 1.13): no wheel ships the header, and torchport builds
// without ONNX Runtime, which is dlopen'ed at run time (backends/onnxruntime.cpp).
//
// OrtApi is a table of function pointers whose order never changes between
// releases (new entries are appended), so a newer library serves an older
// version: GetApi(kOrtApiVersion) returns the table as version 13 laid it out,
// or null when the library is older. Only the slots used are named; the others
// are padding, and static_asserts pin every named slot to its index.

#include <cstddef>
#include <cstdint>

namespace torchport::detail::ort {

/// The API version these declarations were written against.
constexpr uint32_t kOrtApiVersion = 13;

struct OrtEnv;
struct OrtStatus;
struct OrtMemoryInfo;
struct OrtSession;
struct OrtValue;
struct OrtRunOptions;
struct OrtTypeInfo;
struct OrtTensorTypeAndShapeInfo;
struct OrtSessionOptions;
struct OrtAllocator;

enum ONNXTensorElementDataType : int {
  ONNX_UNDEFINED = 0,
  ONNX_FLOAT = 1,
  ONNX_UINT8 = 2,
  ONNX_INT8 = 3,
  ONNX_UINT16 = 4,
  ONNX_INT16 = 5,
  ONNX_INT32 = 6,
  ONNX_INT64 = 7,
  ONNX_STRING = 8,
  ONNX_BOOL = 9,
  ONNX_FLOAT16 = 10,
  ONNX_DOUBLE = 11,
  ONNX_UINT32 = 12,
  ONNX_UINT64 = 13,
  ONNX_COMPLEX64 = 14,
  ONNX_COMPLEX128 = 15,
  ONNX_BFLOAT16 = 16,
};

enum ONNXType : int { ONNX_TYPE_UNKNOWN = 0, ONNX_TYPE_TENSOR = 1 };
enum OrtLoggingLevel : int { ORT_LOGGING_LEVEL_VERBOSE = 0, ORT_LOGGING_LEVEL_ERROR = 3, ORT_LOGGING_LEVEL_FATAL = 4 };
enum GraphOptimizationLevel : int {
  ORT_DISABLE_ALL = 0,
  ORT_ENABLE_BASIC = 1,
  ORT_ENABLE_EXTENDED = 2,
  ORT_ENABLE_ALL = 99
};
enum ExecutionMode : int { ORT_SEQUENTIAL = 0, ORT_PARALLEL = 1 };
enum OrtAllocatorType : int { OrtDeviceAllocator = 0, OrtArenaAllocator = 1 };
enum OrtMemType : int { OrtMemTypeDefault = 0 };

using Status = OrtStatus*;  // nullptr is success

struct OrtApi {
  void* slot0_CreateStatus;
  int (*GetErrorCode)(const OrtStatus*) noexcept;                    // 1
  const char* (*GetErrorMessage)(const OrtStatus*) noexcept;        // 2
  Status (*CreateEnv)(OrtLoggingLevel, const char* logid, OrtEnv** out) noexcept;  // 3
  void* slots4_7[4];
  Status (*CreateSessionFromArray)(const OrtEnv*, const void* data, size_t size, const OrtSessionOptions*,
                                   OrtSession** out) noexcept;      // 8
  Status (*Run)(OrtSession*, const OrtRunOptions*, const char* const* input_names,
                const OrtValue* const* inputs, size_t input_len, const char* const* output_names,
                size_t output_names_len, OrtValue** outputs) noexcept;  // 9
  Status (*CreateSessionOptions)(OrtSessionOptions** out) noexcept;  // 10
  void* slots11_12[2];
  Status (*SetSessionExecutionMode)(OrtSessionOptions*, ExecutionMode) noexcept;  // 13
  void* slots14_21[8];
  Status (*SetSessionLogSeverityLevel)(OrtSessionOptions*, int) noexcept;  // 22
  Status (*SetSessionGraphOptimizationLevel)(OrtSessionOptions*, GraphOptimizationLevel) noexcept;  // 23
  Status (*SetIntraOpNumThreads)(OrtSessionOptions*, int) noexcept;  // 24
  Status (*SetInterOpNumThreads)(OrtSessionOptions*, int) noexcept;  // 25
  void* slots26_29[4];
  Status (*SessionGetInputCount)(const OrtSession*, size_t* out) noexcept;   // 30
  Status (*SessionGetOutputCount)(const OrtSession*, size_t* out) noexcept;  // 31
  void* slot32;
  Status (*SessionGetInputTypeInfo)(const OrtSession*, size_t index, OrtTypeInfo** out) noexcept;   // 33
  Status (*SessionGetOutputTypeInfo)(const OrtSession*, size_t index, OrtTypeInfo** out) noexcept;  // 34
  void* slot35;
  Status (*SessionGetInputName)(const OrtSession*, size_t index, OrtAllocator*, char** out) noexcept;   // 36
  Status (*SessionGetOutputName)(const OrtSession*, size_t index, OrtAllocator*, char** out) noexcept;  // 37
  void* slots38_48[11];
  Status (*CreateTensorWithDataAsOrtValue)(const OrtMemoryInfo*, void* data, size_t data_len, const int64_t* shape,
                                           size_t shape_len, ONNXTensorElementDataType,
                                           OrtValue** out) noexcept;  // 49
  void* slot50;
  Status (*GetTensorMutableData)(OrtValue*, void** out) noexcept;  // 51
  void* slots52_54[3];
  Status (*CastTypeInfoToTensorInfo)(const OrtTypeInfo*, const OrtTensorTypeAndShapeInfo** out) noexcept;  // 55
  Status (*GetOnnxTypeFromTypeInfo)(const OrtTypeInfo*, ONNXType* out) noexcept;  // 56
  void* slots57_59[3];
  Status (*GetTensorElementType)(const OrtTensorTypeAndShapeInfo*, ONNXTensorElementDataType* out) noexcept;  // 60
  Status (*GetDimensionsCount)(const OrtTensorTypeAndShapeInfo*, size_t* out) noexcept;  // 61
  Status (*GetDimensions)(const OrtTensorTypeAndShapeInfo*, int64_t* dims, size_t len) noexcept;  // 62
  void* slots63_64[2];
  Status (*GetTensorTypeAndShape)(const OrtValue*, OrtTensorTypeAndShapeInfo** out) noexcept;  // 65
  void* slot66;
  Status (*GetValueType)(const OrtValue*, ONNXType* out) noexcept;  // 67
  void* slot68;
  Status (*CreateCpuMemoryInfo)(OrtAllocatorType, OrtMemType, OrtMemoryInfo** out) noexcept;  // 69
  void* slots70_75[6];
  Status (*AllocatorFree)(OrtAllocator*, void* p) noexcept;  // 76
  void* slot77;
  Status (*GetAllocatorWithDefaultOptions)(OrtAllocator** out) noexcept;  // 78
  void* slots79_91[13];
  void (*ReleaseEnv)(OrtEnv*) noexcept;                  // 92
  void (*ReleaseStatus)(OrtStatus*) noexcept;            // 93
  void (*ReleaseMemoryInfo)(OrtMemoryInfo*) noexcept;    // 94
  void (*ReleaseSession)(OrtSession*) noexcept;          // 95
  void (*ReleaseValue)(OrtValue*) noexcept;              // 96
  void* slot97_ReleaseRunOptions;
  void (*ReleaseTypeInfo)(OrtTypeInfo*) noexcept;        // 98
  void (*ReleaseTensorTypeAndShapeInfo)(OrtTensorTypeAndShapeInfo*) noexcept;  // 99
  void (*ReleaseSessionOptions)(OrtSessionOptions*) noexcept;  // 100
};

#define TORCHPORT_ORT_SLOT(field, index) \
  static_assert(offsetof(OrtApi, field) == (index) * sizeof(void*), #field " must be OrtApi slot " #index)
TORCHPORT_ORT_SLOT(GetErrorCode, 1);
TORCHPORT_ORT_SLOT(GetErrorMessage, 2);
TORCHPORT_ORT_SLOT(CreateEnv, 3);
TORCHPORT_ORT_SLOT(CreateSessionFromArray, 8);
TORCHPORT_ORT_SLOT(Run, 9);
TORCHPORT_ORT_SLOT(CreateSessionOptions, 10);
TORCHPORT_ORT_SLOT(SetSessionExecutionMode, 13);
TORCHPORT_ORT_SLOT(SetSessionLogSeverityLevel, 22);
TORCHPORT_ORT_SLOT(SetSessionGraphOptimizationLevel, 23);
TORCHPORT_ORT_SLOT(SetIntraOpNumThreads, 24);
TORCHPORT_ORT_SLOT(SetInterOpNumThreads, 25);
TORCHPORT_ORT_SLOT(SessionGetInputCount, 30);
TORCHPORT_ORT_SLOT(SessionGetOutputCount, 31);
TORCHPORT_ORT_SLOT(SessionGetInputTypeInfo, 33);
TORCHPORT_ORT_SLOT(SessionGetOutputTypeInfo, 34);
TORCHPORT_ORT_SLOT(SessionGetInputName, 36);
TORCHPORT_ORT_SLOT(SessionGetOutputName, 37);
TORCHPORT_ORT_SLOT(CreateTensorWithDataAsOrtValue, 49);
TORCHPORT_ORT_SLOT(GetTensorMutableData, 51);
TORCHPORT_ORT_SLOT(CastTypeInfoToTensorInfo, 55);
TORCHPORT_ORT_SLOT(GetOnnxTypeFromTypeInfo, 56);
TORCHPORT_ORT_SLOT(GetTensorElementType, 60);
TORCHPORT_ORT_SLOT(GetDimensionsCount, 61);
TORCHPORT_ORT_SLOT(GetDimensions, 62);
TORCHPORT_ORT_SLOT(GetTensorTypeAndShape, 65);
TORCHPORT_ORT_SLOT(GetValueType, 67);
TORCHPORT_ORT_SLOT(CreateCpuMemoryInfo, 69);
TORCHPORT_ORT_SLOT(AllocatorFree, 76);
TORCHPORT_ORT_SLOT(GetAllocatorWithDefaultOptions, 78);
TORCHPORT_ORT_SLOT(ReleaseEnv, 92);
TORCHPORT_ORT_SLOT(ReleaseStatus, 93);
TORCHPORT_ORT_SLOT(ReleaseMemoryInfo, 94);
TORCHPORT_ORT_SLOT(ReleaseSession, 95);
TORCHPORT_ORT_SLOT(ReleaseValue, 96);
TORCHPORT_ORT_SLOT(ReleaseTypeInfo, 98);
TORCHPORT_ORT_SLOT(ReleaseTensorTypeAndShapeInfo, 99);
TORCHPORT_ORT_SLOT(ReleaseSessionOptions, 100);
#undef TORCHPORT_ORT_SLOT

/// What OrtGetApiBase() returns.
struct OrtApiBase {
  const OrtApi* (*GetApi)(uint32_t version) noexcept;  ///< null when the library is older than `version`
  const char* (*GetVersionString)() noexcept;
};

}  // namespace torchport::detail::ort
