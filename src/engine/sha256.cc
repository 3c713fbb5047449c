// SHA-256 as specified in FIPS 180-4, sections 4.1.2 (functions), 4.2.2 (constants),
// 5.1.1 (padding), 5.3.3 (initial hash value) and 6.2.2 (hash computation); on x86 CPUs with the
// SHA extensions the compression function uses them (picked once, at first use).
#include "engine/sha256.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace clickrt::engine {
namespace {

// 4.2.2: the first 32 bits of the fractional parts of the cube roots of the first 64 primes.
constexpr uint32_t kK[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

// 5.3.3: the first 32 bits of the fractional parts of the square roots of the first 8 primes.
constexpr uint32_t kH0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                             0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

inline uint32_t Rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
inline uint32_t Ch(uint32_t x, uint32_t y, uint32_t z) { return (x & y) ^ (~x & z); }
inline uint32_t Maj(uint32_t x, uint32_t y, uint32_t z) { return (x & y) ^ (x & z) ^ (y & z); }
inline uint32_t BigSigma0(uint32_t x) { return Rotr(x, 2) ^ Rotr(x, 13) ^ Rotr(x, 22); }
inline uint32_t BigSigma1(uint32_t x) { return Rotr(x, 6) ^ Rotr(x, 11) ^ Rotr(x, 25); }
inline uint32_t SmallSigma0(uint32_t x) { return Rotr(x, 7) ^ Rotr(x, 18) ^ (x >> 3); }
inline uint32_t SmallSigma1(uint32_t x) { return Rotr(x, 17) ^ Rotr(x, 19) ^ (x >> 10); }

// One round (6.2.2 step 3) with the working variables passed in rotated order, so eight calls
// make eight rounds without moving values between registers: only d and h change.
inline void Round(uint32_t a, uint32_t b, uint32_t c, uint32_t& d, uint32_t e, uint32_t f,
                  uint32_t g, uint32_t& h, uint32_t k_plus_w) {
  uint32_t t1 = h + BigSigma1(e) + Ch(e, f, g) + k_plus_w;
  uint32_t t2 = BigSigma0(a) + Maj(a, b, c);
  d += t1;
  h = t1 + t2;
}

void CompressPortable(uint32_t state[8], const uint8_t* blocks, size_t count) {
  for (; count > 0; --count, blocks += 64) {
    uint32_t w[64];
    for (int t = 0; t < 16; ++t) {  // the message is read as big-endian 32-bit words
      w[t] = (uint32_t{blocks[4 * t]} << 24) | (uint32_t{blocks[4 * t + 1]} << 16) |
             (uint32_t{blocks[4 * t + 2]} << 8) | uint32_t{blocks[4 * t + 3]};
    }
    for (int t = 16; t < 64; ++t) {
      w[t] = SmallSigma1(w[t - 2]) + w[t - 7] + SmallSigma0(w[t - 15]) + w[t - 16];
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
#pragma GCC unroll 8
    for (int t = 0; t < 64; t += 8) {
      Round(a, b, c, d, e, f, g, h, kK[t] + w[t]);
      Round(h, a, b, c, d, e, f, g, kK[t + 1] + w[t + 1]);
      Round(g, h, a, b, c, d, e, f, kK[t + 2] + w[t + 2]);
      Round(f, g, h, a, b, c, d, e, kK[t + 3] + w[t + 3]);
      Round(e, f, g, h, a, b, c, d, kK[t + 4] + w[t + 4]);
      Round(d, e, f, g, h, a, b, c, kK[t + 5] + w[t + 5]);
      Round(c, d, e, f, g, h, a, b, kK[t + 6] + w[t + 6]);
      Round(b, c, d, e, f, g, h, a, kK[t + 7] + w[t + 7]);
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
  }
}

#if defined(__x86_64__)
// The same computation with the x86 SHA extensions (Intel SHA-NI, AMD Zen): sha256msg1/msg2
// compute the message schedule four words at a time, sha256rnds2 does two rounds on the state
// held as {A,B,E,F} and {C,D,G,H} (highest lane first), kept in registers across blocks.
__attribute__((target("sha,sse4.1,ssse3"))) void CompressShaNi(uint32_t state[8],
                                                               const uint8_t* blocks,
                                                               size_t count) {
  const __m128i byte_swap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
  __m128i dcba = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&state[0]));
  __m128i hgfe = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&state[4]));
  __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
  __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
  __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
  __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);

  for (; count > 0; --count, blocks += 64) {
    const __m128i abef_in = abef, cdgh_in = cdgh;
    __m128i m[4];      // m[g % 4] holds message words 4g .. 4g+3
#pragma GCC unroll 16  // fully unrolled, so m[] lives in registers
    for (int g = 0; g < 16; ++g) {
      __m128i w;
      if (g < 4) {
        w = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blocks + 16 * g)),
                             byte_swap);
      } else {
        // W[t+i] = s1(W[t+i-2]) + W[t+i-7] + s0(W[t+i-15]) + W[t+i-16], t = 4g.
        w = _mm_sha256msg1_epu32(m[g % 4], m[(g + 1) % 4]);
        w = _mm_add_epi32(w, _mm_alignr_epi8(m[(g + 3) % 4], m[(g + 2) % 4], 4));
        w = _mm_sha256msg2_epu32(w, m[(g + 3) % 4]);
      }
      m[g % 4] = w;
      __m128i kw = _mm_add_epi32(w, _mm_loadu_si128(reinterpret_cast<const __m128i*>(&kK[4 * g])));
      cdgh = _mm_sha256rnds2_epu32(cdgh, abef, kw);  // now holds the new A,B,E,F
      abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(kw, 0x0E));
    }
    abef = _mm_add_epi32(abef, abef_in);
    cdgh = _mm_add_epi32(cdgh, cdgh_in);
  }

  __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
  __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&state[0]), _mm_blend_epi16(feba, dchg, 0xF0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&state[4]), _mm_alignr_epi8(dchg, feba, 8));
}

bool CpuHasShaNi() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  return (ebx >> 29) & 1;  // CPUID.(EAX=7,ECX=0):EBX.SHA[bit 29]
}
#endif

Sha256::CompressFn PickCompress(bool use_hardware) {
#if defined(__x86_64__)
  static const bool has_sha_ni = CpuHasShaNi();  // probed once
  if (use_hardware && has_sha_ni) return CompressShaNi;
#endif
  (void)use_hardware;
  return CompressPortable;
}

}  // namespace

Sha256::Sha256(bool use_hardware) : compress_(PickCompress(use_hardware)) {
  std::memcpy(state_, kH0, sizeof(state_));
}

bool Sha256::UsesHardware() const { return compress_ != CompressPortable; }

void Sha256::Update(std::span<const uint8_t> data) {
  const uint8_t* p = data.data();
  size_t n = data.size();
  total_bytes_ += n;
  if (buffered_ > 0) {
    size_t take = std::min(n, sizeof(buffer_) - buffered_);
    std::memcpy(buffer_ + buffered_, p, take);
    buffered_ += take;
    p += take;
    n -= take;
    if (buffered_ < sizeof(buffer_)) return;
    compress_(state_, buffer_, 1);
    buffered_ = 0;
  }
  if (n >= 64) {
    compress_(state_, p, n / 64);
    p += n / 64 * 64;
    n %= 64;
  }
  if (n > 0) std::memcpy(buffer_, p, n);
  buffered_ = n;
}

void Sha256::Update(std::string_view data) {
  Update(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
}

Sha256::Digest Sha256::Finish() {
  // 5.1.1: append bit '1', zeros to 56 mod 64 bytes, then the length in bits, big-endian.
  const uint64_t bit_length = total_bytes_ * 8;
  uint8_t pad[72] = {0x80};
  size_t pad_bytes = (buffered_ < 56 ? 56 : 120) - buffered_;
  for (int i = 0; i < 8; ++i) pad[pad_bytes + i] = static_cast<uint8_t>(bit_length >> (56 - 8 * i));
  Update(std::span<const uint8_t>(pad, pad_bytes + 8));
  Digest digest;
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 4; ++j) digest[4 * i + j] = static_cast<uint8_t>(state_[i] >> (24 - 8 * j));
  }
  return digest;
}

std::string DigestHex(const Sha256::Digest& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (uint8_t byte : digest) {
    out.push_back(kHex[byte >> 4]);
    out.push_back(kHex[byte & 15]);
  }
  return out;
}

std::string Sha256Hex(std::span<const uint8_t> data) {
  Sha256 hasher;
  hasher.Update(data);
  return DigestHex(hasher.Finish());
}

std::string Sha256Hex(std::string_view data) {
  Sha256 hasher;
  hasher.Update(data);
  return DigestHex(hasher.Finish());
}

StatusOr<std::string> Sha256HexOfFile(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return NotFound("cannot open '" + path + "': " + std::strerror(errno));
  }
  Sha256 hasher;
  std::vector<uint8_t> chunk(1 << 20);
  size_t got;
  while ((got = std::fread(chunk.data(), 1, chunk.size(), file)) > 0) {
    hasher.Update(std::span<const uint8_t>(chunk.data(), got));
  }
  bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) return DataLoss("error reading '" + path + "'");
  return DigestHex(hasher.Finish());
}

}  // namespace clickrt::engine
