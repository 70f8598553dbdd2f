#pragma once
// What a durable agent run is asked to do, as plain values: POST /v1/agent/runs, a task of a
// graph, and a /v1/responses request that offers MCP tools all become a RunSpec, which is stored
// with the run (it never changes) and read back when a restarted gateway resumes it.
//
// Body of POST /v1/agent/runs:
//   {"model": "chat", "instructions": "...", "input": "..." | [items],
//    "tools": [{"type": "mcp", "server_label": "files", "allowed_tools": ["search"],
//               "require_approval": "never" | "always"}],
//    "limits": {"max_steps", "max_tokens", "max_cost_usd", "max_wall_ms"},
//    "memory": {"user": "...", "agent": "..."}, "metadata": {...}}
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agents/task_graph.h"
#include "common/openai_error.h"

namespace redline::agents {

// The tools of one MCP server a run may call.
struct McpToolGrant {
  std::string server;                      // a [[mcp_servers]] name ("server_label")
  std::vector<std::string> allowed_tools;  // empty = every tool the server lists
  bool always_approve = false;             // "require_approval": "always"
};

struct RunSpec {
  std::string model;
  std::string instructions;
  boost::json::array input;  // normalised Responses items
  std::vector<McpToolGrant> tools;
  RunLimits limits;
  std::string memory_user;  // the memory namespace the run reads and writes
  std::string memory_agent;
  boost::json::object metadata;
  std::string response_id;  // set when the run answers a /v1/responses request
};

struct RunSpecParse {
  std::optional<RunSpec> spec;
  ApiError error;  // a 400 when !spec
};

// Parses POST /v1/agent/runs. 400s name the member: model or input missing; a tool whose type
// is not "mcp" (function tools need a client to run them: use /v1/responses), without
// server_label, or with a server_url (tool servers are configured, never named by address);
// limits out of range.
RunSpecParse parse_run_spec(std::string_view body);

// Reads the members a run shares with /v1/responses ("tools" entries of type "mcp") into
// grants; `error` set (param under `param_prefix`) on a malformed entry. Entries of other types
// are skipped.
std::vector<McpToolGrant> read_mcp_grants(const boost::json::array& tools,
                                          std::string_view param_prefix,
                                          std::optional<ApiError>& error);

boost::json::object to_json(const RunSpec& spec);
std::optional<RunSpec> run_spec_from_json(const boost::json::value& json);

}  // namespace redline::agents
