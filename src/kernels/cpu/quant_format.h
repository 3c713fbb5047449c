// Row-wise quantized embedding tables: the byte layout shared by the reference kernels (which
// write and read it) and the fast kernels (which read it). Header-only; no dependencies.
//
// A table of V rows x D values is stored as V rows of RowwiseBytes(fmt, D) bytes, row v at byte
// v * RowwiseBytes(fmt, D). Each row carries its own affine map, value = code * scale + bias,
// computed in float as one fused multiply-add (a single rounding: std::fma), so every kernel that
// dequantizes a row gets the same floats bit for bit. Formats (FBGEMM's "fused" row-wise layouts):
//
//   kFloat32      D float32 values (little-endian), no scale / bias.                  4*D bytes
//   kInt8Rowwise  D uint8 codes, then float32 scale, float32 bias (unaligned).        D + 8 bytes
//                 scale = (max - min) / 255, bias = min of the row; code in [0, 255].
//   kInt4Rowwise  ceil(D/2) bytes of codes: element 2j in the low nibble of byte j, element 2j+1
//                 in the high nibble (0 for odd D); then fp16 (IEEE half) scale, fp16 bias.
//                 ceil(D/2) + 4 bytes. code in [0, 15]; scale ~ (max - min) / 15 and bias ~ min,
//                 both as fp16 (the quantizer rounds the bias down and the scale up, so that
//                 [bias, bias + 15 * scale] covers the row and every value is within scale / 2).
#pragma once

#include <cstdint>

namespace clickrt::kernels {

enum class RowFormat : int32_t { kFloat32 = 0, kInt8Rowwise = 1, kInt4Rowwise = 2 };

// Bytes per row of `fmt` for D values; -1 for an unknown format or D < 0.
inline int64_t RowwiseBytes(RowFormat fmt, int64_t D) {
  if (D < 0) return -1;
  switch (fmt) {
    case RowFormat::kFloat32:
      return 4 * D;
    case RowFormat::kInt8Rowwise:
      return D + 8;
    case RowFormat::kInt4Rowwise:
      return (D + 1) / 2 + 4;
  }
  return -1;
}

}  // namespace clickrt::kernels
