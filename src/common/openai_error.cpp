#include "common/openai_error.h"

#include "common/json_text.h"

namespace redline {

namespace {
void append_nullable(std::string& out, const std::string& value) {
  if (value.empty()) {
    out += "null";
  } else {
    append_json_string(out, value);
  }
}
}  // namespace

std::string error_body(const ApiError& error) {
  std::string out = R"({"error":{"message":)";
  append_json_string(out, error.message);
  out += R"(,"type":)";
  append_json_string(out, error.type.empty() ? error_type_for_status(error.status) : error.type);
  out += R"(,"param":)";
  append_nullable(out, error.param);
  out += R"(,"code":)";
  append_nullable(out, error.code);
  out += "}}";
  return out;
}

std::string_view error_type_for_status(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 429:
      return "rate_limit_error";
    case 503:
      return "service_unavailable";
    default:
      return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

ApiError make_error(int status, std::string message, std::string param, std::string code) {
  return ApiError{status, std::move(message), std::string(error_type_for_status(status)),
                  std::move(param), std::move(code)};
}

}  // namespace redline
