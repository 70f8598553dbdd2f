#include "agents/run_spec.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

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

std::vector<McpToolGrant> read_mcp_grants(const json::array& tools, std::string_view param_prefix,
                                          std::optional<ApiError>& error) {
  std::vector<McpToolGrant> grants;
  for (std::size_t i = 0; i < tools.size() && !error; ++i) {
    const std::string param = std::string(param_prefix) + "[" + std::to_string(i) + "]";
    if (!tools[i].is_object()) {
      error = make_error(400, "`" + param + "` must be an object.", param, "invalid_type");
      break;
    }
    const json::object& tool = tools[i].as_object();
    if (string_or_empty(tool, "type") != "mcp") continue;
    if (member(tool, "server_url") != nullptr || member(tool, "connector_id") != nullptr) {
      error = make_error(400,
                         "MCP servers are configured on the gateway ([[mcp_servers]]); name one "
                         "with `server_label` instead of giving its address.",
                         param + ".server_url", "unsupported_parameter");
      break;
    }
    McpToolGrant grant;
    grant.server = string_or_empty(tool, "server_label");
    if (grant.server.empty()) {
      error = make_error(400, "`" + param + ".server_label` is required.", param + ".server_label",
                         "missing_required_parameter");
      break;
    }
    if (const json::value* allowed = member(tool, "allowed_tools")) {
      // OpenAI also accepts {"tool_names": [...]}.
      const json::value* names = allowed;
      if (allowed->is_object()) names = member(allowed->as_object(), "tool_names");
      if (names == nullptr || !names->is_array()) {
        error = make_error(400, "`" + param + ".allowed_tools` must be a list of tool names.",
                           param + ".allowed_tools", "invalid_type");
        break;
      }
      for (const json::value& name : names->as_array()) {
        if (!name.is_string()) {
          error = make_error(400, "`" + param + ".allowed_tools` must be a list of tool names.",
                             param + ".allowed_tools", "invalid_type");
          break;
        }
        grant.allowed_tools.emplace_back(name.as_string());
      }
    }
    if (const json::value* approval = member(tool, "require_approval")) {
      if (approval->is_string() && approval->as_string() == "always") {
        grant.always_approve = true;
      } else if (!(approval->is_string() && approval->as_string() == "never")) {
        error = make_error(400,
                           "`" + param +
                               ".require_approval` must be \"always\" or \"never\" "
                               "(tools the gateway's configuration names always ask).",
                           param + ".require_approval", "invalid_value");
        break;
      }
    }
    grants.push_back(std::move(grant));
  }
  return grants;
}

RunSpecParse parse_run_spec(std::string_view body) {
  RunSpecParse result;
  auto fail = [&](ApiError error) {
    result.error = std::move(error);
    return std::move(result);
  };
  boost::system::error_code ec;
  const json::value parsed = json::parse(body, ec);
  if (ec || !parsed.is_object()) {
    return fail(make_error(400, "The body must be a JSON object.", "", "invalid_json"));
  }
  const json::object& object = parsed.as_object();
  RunSpec spec;
  spec.model = string_or_empty(object, "model");
  if (spec.model.empty()) {
    return fail(make_error(400, "`model` is required.", "model", "missing_required_parameter"));
  }
  if (const json::value* instructions = member(object, "instructions")) {
    if (!instructions->is_string()) {
      return fail(
          make_error(400, "`instructions` must be a string.", "instructions", "invalid_type"));
    }
    spec.instructions = std::string(instructions->as_string());
  }
  const json::value* input = member(object, "input");
  if (input == nullptr) {
    return fail(make_error(400, "`input` is required.", "input", "missing_required_parameter"));
  }
  ApiError item_error;
  const IdSource ids = [](std::string_view prefix) { return new_object_id(prefix); };
  auto items = normalize_items(*input, "input", ids, item_error);
  if (!items) return fail(std::move(item_error));
  if (items->empty()) {
    return fail(make_error(400, "`input` must not be empty.", "input", "empty_input"));
  }
  spec.input = std::move(*items);
  std::optional<ApiError> error;
  if (const json::value* tools = member(object, "tools")) {
    if (!tools->is_array()) {
      return fail(make_error(400, "`tools` must be an array.", "tools", "invalid_type"));
    }
    for (std::size_t i = 0; i < tools->as_array().size(); ++i) {
      const json::value& tool = tools->as_array()[i];
      if (tool.is_object() && string_or_empty(tool.as_object(), "type") != "mcp") {
        const std::string param = "tools[" + std::to_string(i) + "].type";
        return fail(make_error(400,
                               "Agent runs call MCP tools on the gateway's side; a '" +
                                   string_or_empty(tool.as_object(), "type") +
                                   "' tool needs a client to run it (use /v1/responses).",
                               param, "unsupported_tool"));
      }
    }
    spec.tools = read_mcp_grants(tools->as_array(), "tools", error);
  }
  spec.limits = read_run_limits(member(object, "limits"), "limits", error);
  if (const json::value* memory = member(object, "memory"); memory && !error) {
    if (!memory->is_object()) {
      error = make_error(400, "`memory` must be an object.", "memory", "invalid_type");
    } else {
      spec.memory_user = string_or_empty(memory->as_object(), "user");
      spec.memory_agent = string_or_empty(memory->as_object(), "agent");
    }
  }
  if (const json::value* metadata = member(object, "metadata"); metadata && !error) {
    if (!metadata->is_object()) {
      error = make_error(400, "`metadata` must be an object.", "metadata", "invalid_type");
    } else {
      spec.metadata = metadata->as_object();
    }
  }
  if (error) return fail(std::move(*error));
  result.spec = std::move(spec);
  return result;
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
