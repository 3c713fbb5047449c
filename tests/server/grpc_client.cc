// A small gRPC client for the end-to-end test (tests/server/server_e2e.py): real stubs generated
// from proto/, requests given as the HTTP JSON bodies on stdin, answers printed as JSON.
//
//   clickrt_grpc_client ADDR health MODEL          ServerLive/Ready, ModelReady, metadata
//   clickrt_grpc_client ADDR infer MODEL [raw]     KServe JSON infer body on stdin
//   clickrt_grpc_client ADDR rank                  /v1/rank JSON body on stdin
//   clickrt_grpc_client ADDR garbage               bytes that are not a ModelInferRequest
//   clickrt_grpc_client ADDR batch                 stdin: [{"rpc": "rank"|"infer", "model": M,
//                                                  "raw": bool, "body": {...}}, ...], sent in
//                                                  order; prints [{"code","message","version"}]
//   clickrt_grpc_client ADDR drive                 stdin: {"model", "users", "items",
//                                                  "candidates", "threads", "max_s", "stop_file",
//                                                  "infer": body (optional)}: unversioned Rank
//                                                  (and, with "infer", every 4th a ModelInfer
//                                                  with id "req-<user>") for random users until
//                                                  stop_file exists or max_s passes; prints the
//                                                  counts by version and the errors
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <vector>

#include "clickrt_rank.grpc.pb.h"
#include "grpc_predict_v2.grpc.pb.h"

using nlohmann::json;

namespace {

json StatusJson(const grpc::Status& s) {
  return {{"code", static_cast<int>(s.error_code())}, {"message", s.error_message()}};
}

void Flatten(const json& v, json* out) {
  if (v.is_array()) {
    for (const json& x : v) Flatten(x, out);
  } else {
    out->push_back(v);
  }
}

json Infer(inference::GRPCInferenceService::Stub& stub, const std::string& model, bool raw,
           const json& body) {
  inference::ModelInferRequest req;
  req.set_model_name(model);
  if (body.contains("version")) req.set_model_version(body["version"].get<std::string>());
  if (body.contains("id")) req.set_id(body["id"].get<std::string>());
  for (const json& in : body["inputs"]) {
    auto* t = req.add_inputs();
    t->set_name(in["name"].get<std::string>());
    const std::string dt = in["datatype"].get<std::string>();
    t->set_datatype(dt);
    for (const json& d : in["shape"]) t->add_shape(d.get<int64_t>());
    json flat = json::array();
    Flatten(in["data"], &flat);
    std::string bytes;
    for (const json& x : flat) {
      if (dt == "FP32") {
        const float f = x.get<float>();
        raw ? bytes.append(reinterpret_cast<const char*>(&f), 4)
            : (t->mutable_contents()->add_fp32_contents(f), bytes);
      } else {
        const int64_t i = x.get<int64_t>();
        raw ? bytes.append(reinterpret_cast<const char*>(&i), 8)
            : (t->mutable_contents()->add_int64_contents(i), bytes);
      }
    }
    if (raw) req.add_raw_input_contents(bytes);
  }
  inference::ModelInferResponse resp;
  grpc::ClientContext ctx;
  json out = StatusJson(stub.ModelInfer(&ctx, req, &resp));
  out["outputs"] = json::object();
  for (int i = 0; i < resp.outputs_size(); ++i) {
    const auto& o = resp.outputs(i);
    json data = json::array();
    if (resp.raw_output_contents_size() > i) {
      const std::string& b = resp.raw_output_contents(i);
      for (size_t k = 0; k + 4 <= b.size(); k += 4) {
        float f;
        std::memcpy(&f, b.data() + k, 4);
        data.push_back(f);
      }
    } else {
      for (float f : o.contents().fp32_contents()) data.push_back(f);
    }
    out["outputs"][o.name()] = {
        {"shape", json(o.shape())}, {"datatype", o.datatype()}, {"data", data}};
  }
  out["model_version"] = resp.model_version();
  return out;
}

json Rank(clickrt::Ranking::Stub& stub, const json& body) {
  clickrt::RankRequest req;
  if (body.contains("model")) req.set_model(body["model"].get<std::string>());
  if (body.contains("version")) req.set_version(body["version"].get<std::string>());
  if (body.contains("user_id")) req.set_user_id(body["user_id"].get<std::string>());
  if (body.contains("context")) {
    for (auto it = body["context"].begin(); it != body["context"].end(); ++it) {
      (*req.mutable_context())[it.key()] =
          it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
    }
  }
  for (const json& c : body.value("candidates", json::array()))
    req.add_candidates(c.get<std::string>());
  if (body.contains("k")) req.set_k(body["k"].get<int>());
  clickrt::RankResponse resp;
  grpc::ClientContext ctx;
  json out = StatusJson(stub.Rank(&ctx, req, &resp));
  json results = json::array();
  for (const auto& r : resp.results()) results.push_back({{"ad_id", r.ad_id()}, {"ctr", r.ctr()}});
  out["results"] = results;
  out["missing_features"] = resp.missing_features();
  out["candidates"] = resp.candidates();
  out["model"] = resp.model();
  out["version"] = resp.version();
  return out;
}

// Each request of `items` in order over one channel; the answering version of each.
json Batch(const std::shared_ptr<grpc::Channel>& channel, const json& items) {
  auto kserve = inference::GRPCInferenceService::NewStub(channel);
  auto ranking = clickrt::Ranking::NewStub(channel);
  json out = json::array();
  for (const json& it : items) {
    const json& body = it["body"];
    json r = it.value("rpc", "") == "infer"
                 ? Infer(*kserve, it["model"].get<std::string>(), it.value("raw", false), body)
                 : Rank(*ranking, body);
    out.push_back({{"code", r["code"]},
                   {"message", r["message"]},
                   {"version", r.contains("model_version") ? r["model_version"] : r["version"]}});
  }
  return out;
}

// Load from `threads` threads until `stop_file` exists or `max_s` passes.
json Drive(const std::shared_ptr<grpc::Channel>& channel, const json& cfg) {
  const auto users = cfg["users"].get<std::vector<std::string>>();
  const auto items = cfg["items"].get<std::vector<std::string>>();
  const std::string model = cfg.value("model", "");
  const size_t candidates = std::min<size_t>(cfg.value("candidates", 20), items.size());
  const int threads = cfg.value("threads", 4);
  const double max_s = cfg.value("max_s", 60.0);
  const std::string stop_file = cfg.value("stop_file", "");
  const json infer = cfg.value("infer", json());
  std::mutex mu;
  std::map<std::string, std::map<std::string, int64_t>> by_version;  // rpc -> version -> count
  int64_t requests = 0, errors = 0;
  json error_messages = json::array();
  const auto t0 = std::chrono::steady_clock::now();
  std::atomic<bool> stop{false};
  auto worker = [&](int seed) {
    auto kserve = inference::GRPCInferenceService::NewStub(channel);
    auto ranking = clickrt::Ranking::NewStub(channel);
    std::mt19937_64 rng(static_cast<uint64_t>(seed) * 7919 + 1);
    for (int64_t n = 0; !stop.load(); ++n) {
      const std::string& user = users[rng() % users.size()];
      json r;
      std::string rpc;
      if (!infer.is_null() && n % 4 == 3) {
        json body = infer;
        body["id"] = "req-" + user;
        r = Infer(*kserve, model, false, body);
        rpc = "infer";
      } else {
        json body = {{"model", model}, {"user_id", user}, {"candidates", json::array()}};
        for (size_t i = 0; i < candidates; ++i)
          body["candidates"].push_back(items[rng() % items.size()]);
        r = Rank(*ranking, body);
        rpc = "rank";
      }
      std::lock_guard lock(mu);
      ++requests;
      if (r["code"].get<int>() != 0) {
        ++errors;
        if (error_messages.size() < 5) error_messages.push_back(r["message"]);
      } else {
        ++by_version[rpc][rpc == "infer" ? r["model_version"].get<std::string>()
                                         : r["version"].get<std::string>()];
      }
    }
  };
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back(worker, i);
  while (!stop.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s >= max_s || (!stop_file.empty() && std::filesystem::exists(stop_file))) stop = true;
  }
  for (auto& t : pool) t.join();
  return {{"requests", requests},
          {"errors", errors},
          {"error_messages", error_messages},
          {"by_version", by_version}};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: clickrt_grpc_client ADDR health|infer|rank|garbage|batch|drive [MODEL] "
                 "[raw]\n";
    return 2;
  }
  auto channel = grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials());
  const std::string cmd = argv[2];
  auto kserve = inference::GRPCInferenceService::NewStub(channel);
  if (cmd == "health") {
    json out;
    {
      grpc::ClientContext c;
      inference::ServerLiveResponse r;
      out["live"] = StatusJson(kserve->ServerLive(&c, {}, &r));
      out["live"]["live"] = r.live();
    }
    {
      grpc::ClientContext c;
      inference::ServerReadyResponse r;
      out["ready"] = StatusJson(kserve->ServerReady(&c, {}, &r));
      out["ready"]["ready"] = r.ready();
    }
    {
      grpc::ClientContext c;
      inference::ServerMetadataResponse r;
      out["server"] = StatusJson(kserve->ServerMetadata(&c, {}, &r));
      out["server"]["name"] = r.name();
    }
    {
      grpc::ClientContext c;
      inference::ModelReadyRequest q;
      q.set_name(argc > 3 ? argv[3] : "");
      inference::ModelReadyResponse r;
      out["model_ready"] = StatusJson(kserve->ModelReady(&c, q, &r));
      out["model_ready"]["ready"] = r.ready();
    }
    {
      grpc::ClientContext c;
      inference::ModelMetadataRequest q;
      q.set_name(argc > 3 ? argv[3] : "");
      inference::ModelMetadataResponse r;
      out["metadata"] = StatusJson(kserve->ModelMetadata(&c, q, &r));
      out["metadata"]["versions"] = json(r.versions());
      json ins = json::array();
      for (const auto& t : r.inputs())
        ins.push_back({{"name", t.name()}, {"datatype", t.datatype()}, {"shape", json(t.shape())}});
      out["metadata"]["inputs"] = ins;
    }
    std::cout << out.dump() << "\n";
    return 0;
  }
  if (cmd == "garbage") {
    grpc::GenericStub generic(channel);
    grpc::ClientContext c;
    const char junk[] = "\xff\xff\xff\xff\x0f garbage that is not a protobuf";
    grpc::Slice slice(junk, sizeof(junk) - 1);
    grpc::ByteBuffer req(&slice, 1), resp;
    grpc::Status st;
    grpc::CompletionQueue cq;
    auto call =
        generic.PrepareUnaryCall(&c, "/inference.GRPCInferenceService/ModelInfer", req, &cq);
    call->StartCall();
    call->Finish(&resp, &st, reinterpret_cast<void*>(1));
    void* tag = nullptr;
    bool ok = false;
    cq.Next(&tag, &ok);
    std::cout << StatusJson(st).dump() << "\n";
    return 0;
  }
  const std::string text((std::istreambuf_iterator<char>(std::cin)),
                         std::istreambuf_iterator<char>());
  json body = json::parse(text, nullptr, false);
  if (body.is_discarded()) {
    std::cerr << "stdin is not JSON\n";
    return 2;
  }
  if (cmd == "infer" && argc > 3) {
    std::cout << Infer(*kserve, argv[3], argc > 4 && std::string(argv[4]) == "raw", body).dump()
              << "\n";
    return 0;
  }
  if (cmd == "batch") {
    std::cout << Batch(channel, body).dump() << "\n";
    return 0;
  }
  if (cmd == "drive") {
    std::cout << Drive(channel, body).dump() << "\n";
    return 0;
  }
  if (cmd == "rank") {
    auto ranking = clickrt::Ranking::NewStub(channel);
    std::cout << Rank(*ranking, body).dump() << "\n";
    return 0;
  }
  std::cerr << "unknown command " << cmd << "\n";
  return 2;
}
