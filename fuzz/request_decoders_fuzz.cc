// libFuzzer target for the server's request decoders: the KServe JSON infer body, the ranking
// JSON body and the KServe protobuf ModelInferRequest. Every input goes to all three; whatever
// decodes is encoded back, so the encoders see decoder output too. A crash, a sanitizer report
// or an exception escaping a decoder is a bug (decoders return Status, never throw).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <google/protobuf/stubs/logging.h>

#include "server/kserve_codec.h"
#include "server/kserve_proto_codec.h"
#include "server/rank_codec.h"

// protobuf logs every string field that is not UTF-8; the fuzzer makes millions of them.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace clickrt::server;
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  auto infer = DecodeInferJson(text);
  if (infer.ok()) {
    (void)EncodeInferJson("m", "1", infer->id, infer->inputs, {});
  }

  auto rank = DecodeRankJson(text);
  if (rank.ok()) {
    RankResponse r;
    r.model = rank->model;
    for (const auto& c : rank->candidates) r.results.push_back({c, 0.5f});
    (void)EncodeRankJson(r);
  }

  inference::ModelInferRequest proto;
  if (proto.ParseFromArray(data, static_cast<int>(size))) {
    auto decoded = DecodeInferProto(proto);
    if (decoded.ok()) {
      inference::ModelInferResponse resp;
      (void)EncodeInferProto("m", "1", *decoded, decoded->inputs, &resp);
    }
  }
  return 0;
}
