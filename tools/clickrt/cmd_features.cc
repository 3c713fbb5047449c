// `clickrt features`: bulk-load a feature file into Redis, and read rows back as JSON.
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "features/feature_store.h"

namespace clickrt::cli {
namespace {

using features::Clock;

struct FeaturesOptions {
  std::string file;
  std::string redis;
  std::string prefix;
  size_t batch = 1000;
  int64_t timeout_ms = 10000;
  int pool = 2;
  bool quiet = false;
  std::vector<std::string> keys;
};

StatusOr<std::unique_ptr<features::FeatureStore>> OpenRedis(const FeaturesOptions& o) {
  ASSIGN_OR_RETURN(features::RedisOptions ro, features::ParseRedisAddress(o.redis));
  ro.key_prefix = o.prefix;
  ro.pool_size = o.pool;
  return features::MakeRedisStore(ro);
}

Status Load(const FeaturesOptions& o) {
  if (o.batch == 0) return InvalidArgument("--batch must be >= 1");
  ASSIGN_OR_RETURN(auto store, OpenRedis(o));
  const auto start = Clock::now();
  auto last_report = start;
  int64_t rows = 0;
  auto seconds = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
  Status read = features::ReadFeatureFile(o.file, o.batch, [&](features::FeatureBatch& batch) {
    RETURN_IF_ERROR(store->MultiPut(batch, Clock::now() + std::chrono::milliseconds(o.timeout_ms))
                        .WithContext("after " + std::to_string(rows) + " rows"));
    rows += static_cast<int64_t>(batch.size());
    auto now = Clock::now();
    if (!o.quiet && now - last_report >= std::chrono::seconds(1)) {
      std::cerr << "loaded " << rows << " rows (" << seconds(now - start) << " s)\n";
      last_report = now;
    }
    return Status::Ok();
  });
  RETURN_IF_ERROR(read);
  double took = seconds(Clock::now() - start);
  char rate[32];
  snprintf(rate, sizeof rate, "%.0f", took > 0 ? rows / took : 0.0);
  char secs[32];
  snprintf(secs, sizeof secs, "%.3f", took);
  std::cout << "loaded " << rows << " rows from " << o.file << " into redis " << o.redis
            << (o.prefix.empty() ? "" : " (prefix '" + o.prefix + "')") << " in " << secs << " s ("
            << rate << " rows/s)\n";
  return Status::Ok();
}

Status Get(const FeaturesOptions& o) {
  std::unique_ptr<features::FeatureStore> store;
  if (!o.redis.empty() == !o.file.empty()) {
    return InvalidArgument("give exactly one of --redis HOST:PORT and --file FEATURES");
  }
  if (!o.redis.empty()) {
    ASSIGN_OR_RETURN(store, OpenRedis(o));
  } else {
    ASSIGN_OR_RETURN(store, features::MakeMemoryStore());
    RETURN_IF_ERROR(features::LoadFeatureFile(o.file, store.get()));
  }
  std::vector<std::string> keys;
  for (const auto& k : o.keys) keys.push_back(o.redis.empty() ? o.prefix + k : k);
  ASSIGN_OR_RETURN(auto rows,
                   store->MultiGet(keys, Clock::now() + std::chrono::milliseconds(o.timeout_ms)));
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (size_t i = 0; i < rows.size(); ++i) {
    out[o.keys[i]] = rows[i] ? nlohmann::ordered_json(rows[i]->values()) : nlohmann::ordered_json();
  }
  std::cout << out.dump(1) << "\n";
  return Status::Ok();
}

}  // namespace

void RegisterFeatures(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<FeaturesOptions>();
  CLI::App* cmd = app.add_subcommand(
      "features", "Feature store tools: bulk-load a feature file into Redis, read rows back");
  cmd->require_subcommand(1);

  CLI::App* load = cmd->add_subcommand(
      "load",
      "Load a feature file (<key>\\t<name>=<value>... per line, or JSON Lines {\"key\", "
      "\"features\"}) into Redis: one hash per key, written with pipelined HSET");
  load->add_option("file", opts->file, "Feature file")->required();
  load->add_option("--redis", opts->redis, "Redis address HOST:PORT")->required();
  load->add_option("--prefix", opts->prefix, "Prepended to every key (e.g. clickrt:)");
  load->add_option("--batch", opts->batch, "Rows per pipelined round trip")->capture_default_str();
  load->add_option("--timeout-ms", opts->timeout_ms, "Deadline of one batch")
      ->capture_default_str();
  load->add_flag("--quiet,-q", opts->quiet, "No progress lines on stderr");
  load->callback([opts, exit_code] {
    Status s = Load(*opts);
    *exit_code = s.ok() ? 0 : Fail(s);
  });

  CLI::App* get = cmd->add_subcommand(
      "get", "Print the rows of KEYs as one JSON object {key: {name: value} or null}");
  get->add_option("keys", opts->keys, "Keys, e.g. user:17 item:3")->required();
  get->add_option("--redis", opts->redis, "Read from Redis at HOST:PORT");
  get->add_option("--file", opts->file, "Read from a feature file instead of Redis");
  get->add_option("--prefix", opts->prefix, "Prepended to every key");
  get->add_option("--timeout-ms", opts->timeout_ms, "Deadline of the read")->capture_default_str();
  get->callback([opts, exit_code] {
    Status s = Get(*opts);
    *exit_code = s.ok() ? 0 : Fail(s);
  });
}

}  // namespace clickrt::cli
