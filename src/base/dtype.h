// Element types clickrt tensors can hold. Values match ONNX TensorProto.DataType so the importer
// and the engine file can store them as-is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "clickrt/status.h"

namespace clickrt {

enum class DType : int32_t {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kInt32 = 6,
  kInt64 = 7,
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kBFloat16 = 16,
};

// Bytes per element; 0 for kUndefined.
size_t DTypeSize(DType t);
// "float32", "int64", ...
const char* DTypeName(DType t);
// Maps an ONNX TensorProto.DataType number; error names the number when clickrt lacks it.
StatusOr<DType> DTypeFromOnnx(int32_t onnx_type);
StatusOr<DType> DTypeFromName(const std::string& name);
bool IsFloating(DType t);
bool IsInteger(DType t);

// IEEE half / bfloat16 conversions (round to nearest even).
float HalfToFloat(uint16_t h);
uint16_t FloatToHalf(float f);
float BFloat16ToFloat(uint16_t b);
uint16_t FloatToBFloat16(float f);

// Maps a C++ type to its DType.
template <typename T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::kFloat32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::kFloat64; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::kInt64; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::kInt32; };
template <> struct DTypeOf<int8_t> { static constexpr DType value = DType::kInt8; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::kUInt8; };
template <> struct DTypeOf<bool> { static constexpr DType value = DType::kBool; };

}  // namespace clickrt
