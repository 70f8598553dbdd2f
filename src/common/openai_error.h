#pragma once
// OpenAI-style error bodies: {"error":{"message","type","param","code"}}.
// Every error Redline returns to a client goes through here, so the official SDKs map them to
// their typed exceptions (BadRequestError, NotFoundError, RateLimitError, ...).
#include <string>
#include <string_view>

namespace redline {

struct ApiError {
  int status = 500;
  std::string message;
  std::string type;   // "invalid_request_error", "server_error", ...
  std::string param;  // empty → null
  std::string code;   // empty → null
};

// The JSON body for `error`.
std::string error_body(const ApiError& error);

// The `type` OpenAI uses for a status: 4xx → invalid_request_error (401 authentication_error,
// 403 permission_error, 429 rate_limit_error), 5xx → server_error / service_unavailable.
std::string_view error_type_for_status(int status);

// Shorthand: an error whose type follows from its status.
ApiError make_error(int status, std::string message, std::string param = {}, std::string code = {});

}  // namespace redline
