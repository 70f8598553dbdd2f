#include "sim/sim_config.h"

#include <toml++/toml.h>

#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

namespace redline::sim {

namespace {

// Collects errors as "file:line:col: key: message" and reads typed values, so one pass reports
// every mistake in a file instead of stopping at the first.
class ConfigReader {
 public:
  explicit ConfigReader(std::string source) : source_(std::move(source)) {}

  void error(const toml::source_region& where, std::string_view key, std::string_view message) {
    std::string line = source_;
    line += ':';
    line += std::to_string(where.begin.line);
    line += ':';
    line += std::to_string(where.begin.column);
    line += ": ";
    line += key;
    line += ": ";
    line += message;
    errors_.push_back(std::move(line));
  }

  void reject_unknown_keys(const toml::table& table, std::string_view prefix,
                           std::initializer_list<std::string_view> known) {
    for (const auto& [key, node] : table) {
      bool found = false;
      for (std::string_view k : known) found = found || k == key.str();
      if (!found) error(node.source(), qualified(prefix, key.str()), "unknown key");
    }
  }

  static std::string qualified(std::string_view prefix, std::string_view key) {
    std::string out(prefix);
    if (!out.empty()) out += '.';
    out += key;
    return out;
  }

  std::optional<std::string> read_string(const toml::table& table, std::string_view prefix,
                                         std::string_view key) {
    const toml::node* node = table.get(key);
    if (node == nullptr) return std::nullopt;
    if (const auto* value = node->as_string()) return value->get();
    error(node->source(), qualified(prefix, key), "must be a string");
    return std::nullopt;
  }

  // Integers in [min, max].
  std::optional<std::int64_t> read_int(const toml::table& table, std::string_view prefix,
                                       std::string_view key, std::int64_t min, std::int64_t max) {
    const toml::node* node = table.get(key);
    if (node == nullptr) return std::nullopt;
    const auto* value = node->as_integer();
    if (value == nullptr) {
      error(node->source(), qualified(prefix, key), "must be an integer");
      return std::nullopt;
    }
    if (value->get() < min || value->get() > max) {
      error(node->source(), qualified(prefix, key),
            "must be between " + std::to_string(min) + " and " + std::to_string(max));
      return std::nullopt;
    }
    return value->get();
  }

  // Numbers (integer or float) in [min, max].
  std::optional<double> read_number(const toml::table& table, std::string_view prefix,
                                    std::string_view key, double min, double max) {
    const toml::node* node = table.get(key);
    if (node == nullptr) return std::nullopt;
    double number = 0;
    if (const auto* integer = node->as_integer()) {
      number = static_cast<double>(integer->get());
    } else if (const auto* floating = node->as_floating_point()) {
      number = floating->get();
    } else {
      error(node->source(), qualified(prefix, key), "must be a number");
      return std::nullopt;
    }
    if (!(number >= min && number <= max)) {
      std::ostringstream message;
      message << "must be between " << min << " and " << max;
      error(node->source(), qualified(prefix, key), message.str());
      return std::nullopt;
    }
    return number;
  }

  const toml::table* read_table(const toml::table& table, std::string_view prefix,
                                std::string_view key) {
    const toml::node* node = table.get(key);
    if (node == nullptr) return nullptr;
    if (const auto* value = node->as_table()) return value;
    error(node->source(), qualified(prefix, key), "must be a table");
    return nullptr;
  }

  std::vector<std::string>& errors() { return errors_; }

 private:
  std::string source_;
  std::vector<std::string> errors_;
};

// "host:port", "[v6]:port".
bool parse_listen(std::string_view text, std::string& host, std::uint16_t& port) {
  std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view host_part = text.substr(0, colon);
  std::string_view port_part = text.substr(colon + 1);
  if (host_part.front() == '[') {
    if (host_part.size() < 3 || host_part.back() != ']') return false;
    host_part = host_part.substr(1, host_part.size() - 2);
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port_part.data(), port_part.data() + port_part.size(), value);
  if (ec != std::errc() || end != port_part.data() + port_part.size() || value > 65535) {
    return false;
  }
  host.assign(host_part);
  port = static_cast<std::uint16_t>(value);
  return true;
}

void read_latency(ConfigReader& reader, const toml::table& model, std::string_view prefix,
                  LatencyDistribution& latency) {
  const toml::node* node = model.get("ttft_ms");
  if (node == nullptr) return;
  std::string key = ConfigReader::qualified(prefix, "ttft_ms");
  // A bare number is a constant latency.
  if (node->is_number()) {
    if (auto mean = reader.read_number(model, prefix, "ttft_ms", 0, 3.6e6)) latency.mean_ms = *mean;
    return;
  }
  const toml::table* table = node->as_table();
  if (table == nullptr) {
    reader.error(node->source(), key, "must be a number or { mean = ..., stddev = ... }");
    return;
  }
  reader.reject_unknown_keys(*table, key, {"mean", "stddev"});
  if (auto mean = reader.read_number(*table, key, "mean", 0, 3.6e6)) latency.mean_ms = *mean;
  if (auto stddev = reader.read_number(*table, key, "stddev", 0, 3.6e6)) {
    latency.stddev_ms = *stddev;
  }
  if (latency.stddev_ms > 0 && latency.mean_ms == 0) {
    reader.error(table->source(), key, "a stddev needs a mean above 0");
  }
}

void read_failures(ConfigReader& reader, const toml::table& table, std::string_view prefix,
                   FailureRates& failures) {
  reader.reject_unknown_keys(
      table, prefix,
      {"error_5xx", "rate_limit_429", "timeout", "disconnect_mid_stream", "retry_after_s"});
  if (auto v = reader.read_number(table, prefix, "error_5xx", 0, 1)) failures.error_5xx = *v;
  if (auto v = reader.read_number(table, prefix, "rate_limit_429", 0, 1)) {
    failures.rate_limit_429 = *v;
  }
  if (auto v = reader.read_number(table, prefix, "timeout", 0, 1)) failures.timeout = *v;
  if (auto v = reader.read_number(table, prefix, "disconnect_mid_stream", 0, 1)) {
    failures.disconnect_mid_stream = *v;
  }
  if (auto v = reader.read_int(table, prefix, "retry_after_s", 0, 86400)) {
    failures.retry_after_s = static_cast<int>(*v);
  }
  double total = failures.error_5xx + failures.rate_limit_429 + failures.timeout +
                 failures.disconnect_mid_stream;
  if (total > 1.0 + 1e-9)
    reader.error(table.source(), prefix, "failure rates add up to more than 1");
}

std::optional<ModelProfile> read_model(ConfigReader& reader, const toml::table& table,
                                       std::string_view prefix) {
  std::size_t errors_before = reader.errors().size();
  reader.reject_unknown_keys(table, prefix,
                             {"name", "ttft_ms", "tokens_per_second", "max_concurrency",
                              "queue_size", "output_tokens", "embedding_dimensions", "tool_rounds",
                              "cite_tool_results", "prefix_cache_entries", "failures"});
  ModelProfile model;
  if (auto name = reader.read_string(table, prefix, "name")) {
    model.name = *name;
    if (model.name.empty()) reader.error(table.get("name")->source(), prefix, "name is empty");
  } else if (table.get("name") == nullptr) {
    reader.error(table.source(), ConfigReader::qualified(prefix, "name"), "is required");
  }
  read_latency(reader, table, prefix, model.ttft);
  if (auto v = reader.read_number(table, prefix, "tokens_per_second", 0, 1e7)) {
    model.tokens_per_second = *v;
  }
  if (auto v = reader.read_int(table, prefix, "max_concurrency", 0, 1000000)) {
    model.max_concurrency = static_cast<int>(*v);
  }
  if (auto v = reader.read_int(table, prefix, "queue_size", 0, 10000000)) {
    model.queue_size = static_cast<int>(*v);
  }
  if (auto v = reader.read_int(table, prefix, "output_tokens", 1, 1000000)) {
    model.output_tokens = static_cast<int>(*v);
  }
  if (auto v = reader.read_int(table, prefix, "embedding_dimensions", 1, 65536)) {
    model.embedding_dimensions = static_cast<int>(*v);
  }
  if (auto v = reader.read_int(table, prefix, "tool_rounds", 1, 1000)) {
    model.tool_rounds = static_cast<int>(*v);
  }
  if (auto v = reader.read_int(table, prefix, "prefix_cache_entries", 0, 10000000)) {
    model.prefix_cache_entries = static_cast<int>(*v);
  }
  if (const toml::node* cite = table.get("cite_tool_results")) {
    if (const auto* value = cite->as_boolean()) {
      model.cite_tool_results = value->get();
    } else {
      reader.error(cite->source(), ConfigReader::qualified(prefix, "cite_tool_results"),
                   "must be true or false");
    }
  }
  if (const toml::table* failures = reader.read_table(table, prefix, "failures")) {
    read_failures(reader, *failures, ConfigReader::qualified(prefix, "failures"), model.failures);
  }
  if (reader.errors().size() != errors_before) return std::nullopt;
  return model;
}

SimConfigResult read_config(const toml::table& root, std::string source) {
  ConfigReader reader(std::move(source));
  SimConfig config;
  reader.reject_unknown_keys(root, "", {"sim", "models"});

  if (const toml::table* sim = reader.read_table(root, "", "sim")) {
    reader.reject_unknown_keys(*sim, "sim", {"name", "listen", "threads", "seed"});
    if (auto name = reader.read_string(*sim, "sim", "name")) config.name = *name;
    if (auto listen = reader.read_string(*sim, "sim", "listen")) {
      if (!parse_listen(*listen, config.host, config.port)) {
        reader.error(sim->get("listen")->source(), "sim.listen", "must be \"host:port\"");
      }
    }
    if (auto threads = reader.read_int(*sim, "sim", "threads", 1, 1024)) {
      config.threads = static_cast<std::size_t>(*threads);
    }
    if (auto seed = reader.read_int(*sim, "sim", "seed", 0, INT64_MAX)) {
      config.seed = static_cast<std::uint64_t>(*seed);
    }
  }

  const toml::node* models_node = root.get("models");
  if (models_node == nullptr) {
    reader.error(root.source(), "models", "at least one [[models]] is required");
  } else if (const toml::array* models = models_node->as_array()) {
    std::set<std::string, std::less<>> names;
    for (std::size_t i = 0; i < models->size(); ++i) {
      std::string prefix = "models[" + std::to_string(i) + "]";
      const toml::node& entry = *models->get(i);
      const toml::table* table = entry.as_table();
      if (table == nullptr) {
        reader.error(entry.source(), prefix, "must be a table");
        continue;
      }
      if (auto model = read_model(reader, *table, prefix)) {
        if (!names.insert(model->name).second) {
          reader.error(table->source(), prefix + ".name",
                       "duplicate model \"" + model->name + "\"");
        }
        config.models.push_back(std::move(*model));
      }
    }
    if (models->empty()) {
      reader.error(models_node->source(), "models", "at least one [[models]] is required");
    }
  } else {
    reader.error(models_node->source(), "models", "must be an array of tables ([[models]])");
  }

  SimConfigResult result;
  result.errors = std::move(reader.errors());
  if (result.errors.empty()) result.config = std::move(config);
  return result;
}

}  // namespace

SimConfigResult load_sim_config_string(std::string_view text, std::string source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& error) {
    ConfigReader reader(source);
    reader.error(error.source(), "toml", error.description());
    SimConfigResult result;
    result.errors = std::move(reader.errors());
    return result;
  }
  return read_config(root, std::move(source));
}

SimConfigResult load_sim_config_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    SimConfigResult result;
    result.errors.push_back(path + ":0:0: file: cannot be read");
    return result;
  }
  std::ostringstream text;
  text << file.rdbuf();
  return load_sim_config_string(text.str(), path);
}

}  // namespace redline::sim
