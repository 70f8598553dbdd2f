#include "mcp/protocol.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <boost/json/serialize.hpp>

namespace redline::mcp {

namespace json = boost::json;

namespace {

// Handshake revisions whose tools/list and tools/call look the same as 2025-11-25's.
constexpr std::array<std::string_view, 4> kHandshakeVersions = {kVersion20251125, "2025-06-18",
                                                                "2025-03-26", "2024-11-05"};

constexpr std::string_view kBase64Prefix = "=?base64?";
constexpr std::string_view kBase64Suffix = "?=";

McpError malformed(std::string what) {
  return {McpErrorKind::kProtocol, "malformed result: " + std::move(what)};
}

const json::object* object_member(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value != nullptr ? value->if_object() : nullptr;
}

// Reads an optional string member into `out`: absent or null is "", another type an error.
Result<void> read_string(const json::object& object, std::string_view key, const std::string& where,
                         std::string& out) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr || value->is_null()) return {};
  if (!value->is_string()) return malformed(where + "." + std::string(key) + " is not a string");
  out = std::string(value->get_string());
  return {};
}

// Reads an optional object member into `out`: absent or null is {}, another type an error.
Result<void> read_object(const json::object& object, std::string_view key, const std::string& where,
                         json::object& out) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr || value->is_null()) return {};
  if (!value->is_object()) return malformed(where + "." + std::string(key) + " is not an object");
  out = value->get_object();
  return {};
}

// 2026-07-28 results say whether they are final; the client does not run the multi-round-trip
// flow (input_required), so only "complete" — or an older server's absent field — is usable.
Result<void> check_complete(const json::object& result) {
  const json::value* type = result.if_contains("resultType");
  if (type == nullptr || (type->is_string() && type->get_string() == "complete")) return {};
  return McpError{McpErrorKind::kProtocol, "the server asked for more input (resultType " +
                                               json::serialize(*type) +
                                               "), which this client does not support"};
}

Result<McpTool> read_tool(const json::value& value, std::size_t index) {
  const std::string where = "tools[" + std::to_string(index) + "]";
  const json::object* tool = value.if_object();
  if (tool == nullptr) return malformed(where + " is not an object");
  const json::value* name = tool->if_contains("name");
  if (name == nullptr || !name->is_string() || name->get_string().empty()) {
    return malformed(where + ".name is not a non-empty string");
  }
  McpTool out;
  out.name = std::string(name->get_string());
  for (const Result<void>& step : {read_string(*tool, "title", where, out.title),
                                   read_string(*tool, "description", where, out.description),
                                   read_object(*tool, "inputSchema", where, out.input_schema),
                                   read_object(*tool, "outputSchema", where, out.output_schema),
                                   read_object(*tool, "annotations", where, out.annotations)}) {
    if (!step) return step.error();
  }
  if (out.input_schema.empty()) out.input_schema = {{"type", "object"}};
  return out;
}

}  // namespace

void Dialect::dress(json::object& params) const {
  if (revision != McpRevision::k20260728) return;
  json::object envelope{
      {"io.modelcontextprotocol/protocolVersion", kVersion20260728},
      {"io.modelcontextprotocol/clientInfo", {{"name", client.name}, {"version", client.version}}},
      {"io.modelcontextprotocol/clientCapabilities", json::object()},
  };
  if (const json::object* meta = object_member(params, "_meta")) {
    for (const auto& [key, value] : *meta) envelope[key] = value;
  }
  params["_meta"] = std::move(envelope);
}

net::Headers Dialect::http_headers(std::string_view method, const json::object& params,
                                   bool is_request) const {
  net::Headers headers;
  if (revision == McpRevision::k20251125) {
    if (!protocol_version.empty()) headers.push_back({"MCP-Protocol-Version", protocol_version});
    return headers;
  }
  headers.push_back({"MCP-Protocol-Version", std::string(kVersion20260728)});
  if (!is_request) return headers;
  headers.push_back({"Mcp-Method", std::string(method)});
  // The methods whose target a gateway in front of the server may route on.
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 6> kNameSources = {{
      {"tools/call", "name"},
      {"prompts/get", "name"},
      {"resources/read", "uri"},
      {"tasks/get", "taskId"},
      {"tasks/update", "taskId"},
      {"tasks/cancel", "taskId"},
  }};
  for (const auto& [source_method, field] : kNameSources) {
    if (source_method != method) continue;
    const json::value* value = params.if_contains(field);
    if (value != nullptr && value->is_string()) {
      headers.push_back({"Mcp-Name", encode_header_value(value->get_string())});
    }
  }
  return headers;
}

std::string encode_header_value(std::string_view value) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  bool plain = !value.empty() && !is_space(value.front()) && !is_space(value.back()) &&
               !(value.starts_with(kBase64Prefix) && value.ends_with(kBase64Suffix)) &&
               std::all_of(value.begin(), value.end(), [](char c) {
                 auto byte = static_cast<unsigned char>(c);
                 return byte == '\t' || (byte >= 0x20 && byte <= 0x7e);
               });
  if (plain) return std::string(value);
  std::string encoded(4 * ((value.size() + 2) / 3), '\0');
  int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(encoded.data()),
                               reinterpret_cast<const unsigned char*>(value.data()),
                               static_cast<int>(value.size()));
  encoded.resize(static_cast<std::size_t>(length));
  return std::string(kBase64Prefix) + encoded + std::string(kBase64Suffix);
}

json::object initialize_params(const ClientIdentity& client) {
  return {
      {"protocolVersion", kVersion20251125},
      {"capabilities", json::object()},
      {"clientInfo", {{"name", client.name}, {"version", client.version}}},
  };
}

json::object tool_call_params(std::string_view name, json::object arguments,
                              std::string_view idempotency_key) {
  return {
      {"name", name},
      {"arguments", std::move(arguments)},
      {"_meta", {{kIdempotencyKeyMeta, idempotency_key}}},
  };
}

json::object cancelled_params(RequestId id) { return {{"requestId", id}, {"reason", "timed out"}}; }

Result<std::string> read_initialize_result(const json::value& result) {
  const json::object* object = result.if_object();
  if (object == nullptr) return malformed("the initialize result is not an object");
  const json::value* version = object->if_contains("protocolVersion");
  if (version == nullptr || !version->is_string()) {
    return malformed("the initialize result has no protocolVersion");
  }
  std::string_view agreed = version->get_string();
  if (std::find(kHandshakeVersions.begin(), kHandshakeVersions.end(), agreed) ==
      kHandshakeVersions.end()) {
    return McpError{McpErrorKind::kProtocol, "the server speaks protocol version \"" +
                                                 std::string(agreed) +
                                                 "\", which this client does not"};
  }
  return std::string(agreed);
}

ProbeVerdict classify_probe(const Result<json::value>& outcome) {
  if (outcome) {
    const json::object* result = outcome->if_object();
    const json::value* versions =
        result != nullptr ? result->if_contains("supportedVersions") : nullptr;
    const json::array* list = versions != nullptr ? versions->if_array() : nullptr;
    bool modern =
        list != nullptr && std::any_of(list->begin(), list->end(), [](const json::value& version) {
          return version.is_string() && version.get_string() == kVersion20260728;
        });
    return modern ? ProbeVerdict::kModern : ProbeVerdict::kLegacy;
  }
  const McpError& error = outcome.error();
  switch (error.kind) {
    case McpErrorKind::kServer:   // method not found, unsupported version, ...: an older server
    case McpErrorKind::kCrashed:  // stdio servers that exit on anything before initialize
    case McpErrorKind::kTimeout:  // ...or ignore it; initialize then has its own timeout
      return ProbeVerdict::kLegacy;
    case McpErrorKind::kTransport: {
      // A 2025-era HTTP server rejects a request outside a session with a 4xx; 401 and 403 say
      // the client is not allowed in, which no fallback changes.
      int status = error.http_status;
      bool rejected = status >= 400 && status < 500 && status != 401 && status != 403;
      return rejected ? ProbeVerdict::kLegacy : ProbeVerdict::kFailed;
    }
    case McpErrorKind::kProtocol:
    case McpErrorKind::kInvalidArgument:
      return ProbeVerdict::kFailed;
  }
  return ProbeVerdict::kFailed;
}

Result<ToolsPage> read_tools_page(const json::value& result) {
  const json::object* object = result.if_object();
  if (object == nullptr) return malformed("the tools/list result is not an object");
  if (auto complete = check_complete(*object); !complete) return std::move(complete).error();
  const json::value* tools = object->if_contains("tools");
  if (tools == nullptr || !tools->is_array()) return malformed("tools is not an array");
  ToolsPage page;
  for (std::size_t i = 0; i < tools->get_array().size(); ++i) {
    auto tool = read_tool(tools->get_array()[i], i);
    if (!tool) return std::move(tool).error();
    page.tools.push_back(std::move(tool).value());
  }
  if (auto cursor = read_string(*object, "nextCursor", "result", page.next_cursor); !cursor) {
    return std::move(cursor).error();
  }
  return page;
}

Result<McpToolResult> read_tool_result(const json::value& result) {
  const json::object* object = result.if_object();
  if (object == nullptr) return malformed("the tools/call result is not an object");
  if (auto complete = check_complete(*object); !complete) return std::move(complete).error();
  const json::value* content = object->if_contains("content");
  if (content == nullptr || !content->is_array()) return malformed("content is not an array");
  McpToolResult out;
  out.content = content->get_array();
  if (const json::value* is_error = object->if_contains("isError"); is_error != nullptr) {
    if (!is_error->is_bool()) return malformed("isError is not a boolean");
    out.is_error = is_error->get_bool();
  }
  if (const json::value* structured = object->if_contains("structuredContent")) {
    out.structured_content = *structured;
  }
  return out;
}

}  // namespace redline::mcp
