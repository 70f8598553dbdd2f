// Fuzzes the TOML config loader: any text must load or be rejected with errors, never crash,
// and an accepted config always has something to route to.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  redline::config::EnvLookup no_environment = [](const std::string&) -> std::optional<std::string> {
    return std::nullopt;
  };
  auto result = redline::config::load_config_string(text, "fuzz.toml", no_environment);
  if (result.config.has_value() != result.errors.empty()) __builtin_trap();
  if (result.config) {
    const auto& config = *result.config;
    if (config.backends.empty() || config.models.empty()) __builtin_trap();
    for (const auto& alias : config.models) {
      if (alias.targets.empty()) __builtin_trap();
      for (const auto& target : alias.targets) {
        const auto* backend = config.find_backend(target.backend);
        if (backend == nullptr || backend->find_model(target.model) == nullptr) __builtin_trap();
      }
    }
  } else {
    for (const auto& error : result.errors) {
      if (error.message.empty()) __builtin_trap();
    }
  }
  return 0;
}
