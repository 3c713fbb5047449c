// The gRPC front end: inference.GRPCInferenceService (KServe v2) and clickrt.Ranking.
#include <grpcpp/grpcpp.h>

#include "clickrt_rank.grpc.pb.h"
#include "grpc_predict_v2.grpc.pb.h"
#include "server/canary_routing.h"
#include "server/kserve_proto_codec.h"
#include "server/server_state.h"

namespace clickrt::server {
namespace {

using Clock = std::chrono::steady_clock;

grpc::StatusCode GrpcCode(StatusCode c) {
  switch (c) {
    case StatusCode::kOk:
      return grpc::StatusCode::OK;
    case StatusCode::kInvalidArgument:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case StatusCode::kNotFound:
      return grpc::StatusCode::NOT_FOUND;
    case StatusCode::kUnimplemented:
      return grpc::StatusCode::UNIMPLEMENTED;
    case StatusCode::kOutOfRange:
      return grpc::StatusCode::OUT_OF_RANGE;
    case StatusCode::kDataLoss:
      return grpc::StatusCode::INVALID_ARGUMENT;  // the client's data
    case StatusCode::kFailedPrecondition:
      return grpc::StatusCode::FAILED_PRECONDITION;
    case StatusCode::kResourceExhausted:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case StatusCode::kDeadlineExceeded:
      return grpc::StatusCode::DEADLINE_EXCEEDED;
    case StatusCode::kUnavailable:
      return grpc::StatusCode::UNAVAILABLE;
    case StatusCode::kInternal:
      return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::INTERNAL;
}

// The labels and outcome of one RPC; `Finish` records it and makes the grpc::Status.
struct Call {
  Call(ServerState* state, const char* name) : s(state), endpoint(name) {}
  ServerState* s;
  const char* endpoint;
  Clock::time_point start = Clock::now();
  std::string model, version;

  void Label(const ModelVersion& m) {
    model = m.name;
    version = m.version;
  }
  grpc::Status Finish(const Status& st) {
    const grpc::StatusCode code = GrpcCode(st.code());
    s->Record(model, version, endpoint, "grpc", std::to_string(static_cast<int>(code)), !st.ok(),
              ReasonLabel(st.code()), start);
    return st.ok() ? grpc::Status::OK : grpc::Status(code, st.message());
  }
};

// Runs `fn` (returning Status); the one place exceptions are caught on the gRPC side.
template <typename Fn>
grpc::Status Guard(Call& call, Fn fn) {
  try {
    return call.Finish(fn());
  } catch (const std::exception& e) {
    return call.Finish(Internal(std::string("unexpected exception: ") + e.what()));
  } catch (...) {
    return call.Finish(Internal("unexpected exception"));
  }
}

void FillMeta(
    const std::vector<runtime::IoSpec>& specs,
    google::protobuf::RepeatedPtrField<inference::ModelMetadataResponse::TensorMetadata>* out) {
  for (const auto& x : specs) {
    auto* t = out->Add();
    t->set_name(x.name);
    t->set_datatype(KServeDatatype(x.dtype));
    for (int64_t d : x.dims) t->add_shape(d);
  }
}

class InferenceService final : public inference::GRPCInferenceService::Service {
 public:
  explicit InferenceService(ServerState* s) : s_(s) {}

  grpc::Status ServerLive(grpc::ServerContext*, const inference::ServerLiveRequest*,
                          inference::ServerLiveResponse* r) override {
    Call call(s_, "health");
    return Guard(call, [&] {
      r->set_live(true);
      return Status::Ok();
    });
  }
  grpc::Status ServerReady(grpc::ServerContext*, const inference::ServerReadyRequest*,
                           inference::ServerReadyResponse* r) override {
    Call call(s_, "health");
    return Guard(call, [&] {
      r->set_ready(s_->ready.load());
      return Status::Ok();
    });
  }
  grpc::Status ModelReady(grpc::ServerContext*, const inference::ModelReadyRequest* req,
                          inference::ModelReadyResponse* r) override {
    Call call(s_, "model_ready");
    return Guard(call, [&]() -> Status {
      ASSIGN_OR_RETURN(auto mv, s_->repo->Find(req->name(), req->version()));
      call.Label(*mv);
      r->set_ready(s_->ready.load());
      return Status::Ok();
    });
  }
  grpc::Status ServerMetadata(grpc::ServerContext*, const inference::ServerMetadataRequest*,
                              inference::ServerMetadataResponse* r) override {
    Call call(s_, "server_metadata");
    return Guard(call, [&] {
      r->set_name("clickrt");
      r->set_version(CLICKRT_VERSION);
      r->add_extensions("model_repository_readonly");
      r->add_extensions("clickrt_rank");
      return Status::Ok();
    });
  }
  grpc::Status ModelMetadata(grpc::ServerContext*, const inference::ModelMetadataRequest* req,
                             inference::ModelMetadataResponse* r) override {
    Call call(s_, "model_metadata");
    return Guard(call, [&]() -> Status {
      ASSIGN_OR_RETURN(auto mv, s_->repo->Find(req->name(), req->version()));
      call.Label(*mv);
      r->set_name(mv->name);
      for (const std::string& v : s_->repo->Versions(mv->name)) r->add_versions(v);
      r->set_platform("clickrt_" + mv->engine->backend());
      FillMeta(mv->inputs, r->mutable_inputs());
      FillMeta(mv->outputs, r->mutable_outputs());
      return Status::Ok();
    });
  }
  grpc::Status ModelInfer(grpc::ServerContext*, const inference::ModelInferRequest* req,
                          inference::ModelInferResponse* r) override {
    Call call(s_, "infer");
    return Guard(call, [&]() -> Status {
      ASSIGN_OR_RETURN(auto mv, s_->repo->Find(req->model_name(), req->model_version()));
      call.Label(*mv);
      ASSIGN_OR_RETURN(InferRequest decoded, DecodeInferProto(*req));
      const bool routed = req->model_version().empty();  // canaries see these only
      if (routed) {
        RouteCanary(s_, InferRoutingKey(decoded.id), &mv);
        call.Label(*mv);
      }
      auto out = mv->Infer(std::move(decoded.inputs));
      if (routed) {
        ObserveCanary(s_, mv->name, mv->version, !out.ok(), call.start,
                      out.ok() ? InferCtrs(*mv, *out) : std::vector<float>());
      }
      if (!out.ok()) return out.status();
      return EncodeInferProto(mv->name, mv->version, decoded, *out, r);
    });
  }

 private:
  ServerState* s_;
};

class RankingService final : public clickrt::Ranking::Service {
 public:
  explicit RankingService(ServerState* s) : s_(s) {}

  grpc::Status Rank(grpc::ServerContext*, const clickrt::RankRequest* req,
                    clickrt::RankResponse* r) override {
    Call call(s_, "rank");
    return Guard(call, [&]() -> Status {
      server::RankRequest q;
      q.model = req->model();
      q.version = req->version();
      q.user_id = req->user_id();
      if (q.user_id.empty()) return InvalidArgument("user_id is empty");
      for (const auto& [k, v] : req->context()) q.context[k] = v;
      q.candidates.assign(req->candidates().begin(), req->candidates().end());
      if (q.candidates.empty()) return InvalidArgument("candidates is empty");
      if (req->k() < 0) return InvalidArgument("k must not be negative");
      q.k = req->k();
      const bool routed = q.version.empty();  // canaries see these only
      auto mv = s_->ranker->Resolve(q);
      if (mv.ok()) {
        if (routed) RouteRankCanary(s_, &q, &*mv);
        call.Label(**mv);
      }
      auto ranked = s_->ranker->Rank(q);
      if (routed && mv.ok()) {
        std::vector<float> ctrs;
        if (ranked.ok()) {
          for (const RankResult& x : ranked->results) ctrs.push_back(x.ctr);
        }
        ObserveCanary(s_, call.model, call.version, !ranked.ok(), call.start, ctrs);
      }
      if (!ranked.ok()) return ranked.status();
      r->set_model(ranked->model);
      r->set_version(ranked->version);
      for (const RankResult& x : ranked->results) {
        auto* o = r->add_results();
        o->set_ad_id(x.ad_id);
        o->set_ctr(x.ctr);
      }
      r->set_missing_features(ranked->missing_features);
      r->set_candidates(ranked->candidates);
      return Status::Ok();
    });
  }

 private:
  ServerState* s_;
};

struct Services {
  InferenceService inference;
  RankingService ranking;
  explicit Services(ServerState* s) : inference(s), ranking(s) {}
};

}  // namespace

Status StartGrpc(ServerState* s, std::unique_ptr<grpc::Server>* out,
                 std::shared_ptr<void>* services_out, int* port) {
  auto services = std::make_shared<Services>(s);
  grpc::ServerBuilder b;
  int selected = 0;
  const ServerOptions& o = s->options;
  b.AddListeningPort(o.host + ":" + std::to_string(o.grpc_port), grpc::InsecureServerCredentials(),
                     &selected);
  b.SetMaxReceiveMessageSize(static_cast<int>(std::min<size_t>(o.max_body_bytes, INT32_MAX)));
  b.RegisterService(&services->inference);
  b.RegisterService(&services->ranking);
  std::unique_ptr<grpc::Server> server = b.BuildAndStart();
  if (!server || selected == 0) {
    return Status(StatusCode::kUnavailable,
                  "cannot listen for gRPC on " + o.host + ":" + std::to_string(o.grpc_port));
  }
  *port = selected;
  *out = std::move(server);
  *services_out = std::move(services);
  return Status::Ok();
}

}  // namespace clickrt::server
