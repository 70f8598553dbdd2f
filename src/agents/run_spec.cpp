#include "agents/run_spec.h"

#include <fmt/format.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "agents/json_input.h"
#include "agents/responses_format.h"
#include "common/ids.h"

namespace redline::agents {

namespace json = boost::json;

namespace {

const json::value* member(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value != nullptr && !value->is_null() ? value : nullptr;
}

std::string string_or_empty(const json::object& object, std::string_view key) {
  const json::value* value = member(object, key);
  return value && value->is_string() ? std::string(value->as_string()) : std::string();
}

}  // namespace

namespace {

std::string string_or_empty(const json_input::Members& members, std::string_view key) {
  const json::value* value = members.given(key);
  return value && value->is_string() ? std::string(value->as_string()) : std::string();
}

using json_input::element_param;
using json_input::JsonRejection;
using json_input::Members;
using json_input::reject;
using json_input::reject_missing;
using json_input::reject_type;
using json_input::require_object;
using json_input::require_one_of;

// One {"type": "mcp"} entry: a configured server, by name, and what of it may be used.
McpToolGrant read_grant(const Members& tool) {
  for (std::string_view address : {"server_url", "connector_id"}) {
    if (tool.given(address) != nullptr) {
      reject(
          "MCP servers are configured on the gateway ([[mcp_servers]]); name one with "
          "'server_label' instead of giving its address.",
          tool.param(address), "unsupported_parameter");
    }
  }
  McpToolGrant grant;
  grant.server = tool.required_nonempty_string("server_label");
  if (const json::value* allowed = tool.given("allowed_tools")) {
    // A list of names, or OpenAI's filter object {"tool_names": [...]}.
    std::string param = tool.param("allowed_tools");
    const json::array* names = allowed->if_array();
    if (const json::object* filter = allowed->if_object()) {
      Members members(*filter, param);
      names = members.array("tool_names");
      param = members.param("tool_names");
      if (names == nullptr) reject_missing(param);
    }
    if (names == nullptr) reject_type(param, "an array of tool names", *allowed);
    for (std::size_t i = 0; i < names->size(); ++i) {
      const json::value& name = (*names)[i];
      if (!name.is_string()) reject_type(element_param(param, i), "a string", name);
      grant.allowed_tools.emplace_back(name.get_string());
    }
  }
  // Tools the configuration gates always ask; a request may only add its own gate.
  if (const json::string* approval = tool.string("require_approval")) {
    require_one_of(tool.param("require_approval"), *approval, {"always", "never"});
    grant.always_approve = *approval == "always";
  }
  return grant;
}

}  // namespace

std::vector<McpToolGrant> read_mcp_grants(const json::array& tools, std::string_view param_prefix,
                                          std::optional<ApiError>& error) {
  std::vector<McpToolGrant> grants;
  try {
    for (std::size_t i = 0; i < tools.size(); ++i) {
      const std::string path = element_param(param_prefix, i);
      Members tool(require_object(tools[i], path), path);
      if (string_or_empty(tool, "type") != "mcp") continue;
      grants.push_back(read_grant(tool));
    }
  } catch (const JsonRejection& rejection) {
    error = rejection.error;
  }
  return grants;
}

RunSpecParse parse_run_spec(std::string_view body) {
  const json::value parsed = json_input::parse_json(body);
  if (!parsed.is_object()) {
    return {std::nullopt, make_error(400,
                                     "We could not parse the JSON body of your request. The body "
                                     "must be a JSON object (Content-Type: application/json).",
                                     "", "invalid_json")};
  }
  try {
    const Members request(parsed.get_object(), "");
    RunSpec spec;
    spec.model = request.required_nonempty_string("model");
    spec.instructions = request.optional_string("instructions").value_or("");
    ApiError item_error;
    const IdSource ids = [](std::string_view prefix) { return new_object_id(prefix); };
    auto items = normalize_items(request.required("input"), "input", ids, item_error);
    if (!items) throw JsonRejection{std::move(item_error)};
    if (items->empty()) {
      reject(
          "Invalid 'input': empty array. Expected an array with minimum length 1, but got an "
          "empty array instead.",
          "input", "empty_array");
    }
    spec.input = std::move(*items);
    if (const json::array* tools = request.array("tools")) {
      for (std::size_t i = 0; i < tools->size(); ++i) {
        const std::string path = element_param("tools", i);
        Members tool(require_object((*tools)[i], path), path);
        const std::string_view type = tool.required_string("type");
        if (type != "mcp") {
          reject(fmt::format("Agent runs call MCP tools on the gateway's side; a '{}' tool needs a "
                             "client to run it (use /v1/responses).",
                             type),
                 tool.param("type"), "unsupported_tool");
        }
        spec.tools.push_back(read_grant(tool));
      }
    }
    std::optional<ApiError> limits_error;
    spec.limits = read_run_limits(request.given("limits"), "limits", limits_error);
    if (limits_error) throw JsonRejection{std::move(*limits_error)};
    if (const json::object* memory = request.object("memory")) {
      const Members scope(*memory, "memory");
      spec.memory_user = scope.optional_string("user").value_or("");
      spec.memory_agent = scope.optional_string("agent").value_or("");
    }
    if (const json::object* metadata = request.object("metadata")) spec.metadata = *metadata;
    return {std::move(spec), {}};
  } catch (const JsonRejection& rejection) {
    return {std::nullopt, rejection.error};
  }
}

json::object to_json(const RunSpec& spec) {
  json::array tools;
  for (const McpToolGrant& grant : spec.tools) {
    json::array allowed;
    for (const std::string& name : grant.allowed_tools) allowed.emplace_back(name);
    tools.push_back(json::object{{"type", "mcp"},
                                 {"server_label", grant.server},
                                 {"allowed_tools", std::move(allowed)},
                                 {"require_approval", grant.always_approve ? "always" : "never"}});
  }
  return {{"model", spec.model},
          {"instructions", spec.instructions},
          {"input", spec.input},
          {"tools", std::move(tools)},
          {"limits", to_json(spec.limits)},
          {"memory", json::object{{"user", spec.memory_user}, {"agent", spec.memory_agent}}},
          {"metadata", spec.metadata},
          {"response_id", spec.response_id}};
}

std::optional<RunSpec> run_spec_from_json(const json::value& value) {
  if (!value.is_object()) return std::nullopt;
  const json::object& object = value.as_object();
  RunSpec spec;
  spec.model = string_or_empty(object, "model");
  spec.instructions = string_or_empty(object, "instructions");
  spec.response_id = string_or_empty(object, "response_id");
  if (const json::value* input = member(object, "input"); input && input->is_array()) {
    spec.input = input->as_array();
  }
  std::optional<ApiError> error;
  if (const json::value* tools = member(object, "tools"); tools && tools->is_array()) {
    spec.tools = read_mcp_grants(tools->as_array(), "tools", error);
  }
  spec.limits = read_run_limits(member(object, "limits"), "limits", error);
  if (const json::value* memory = member(object, "memory"); memory && memory->is_object()) {
    spec.memory_user = string_or_empty(memory->as_object(), "user");
    spec.memory_agent = string_or_empty(memory->as_object(), "agent");
  }
  if (const json::value* metadata = member(object, "metadata"); metadata && metadata->is_object()) {
    spec.metadata = metadata->as_object();
  }
  if (error || spec.model.empty()) return std::nullopt;
  return spec;
}

}  // namespace redline::agents
