#pragma once
// MCP over stdio: the server is a child process; newline-delimited JSON-RPC messages go to its
// stdin and come from its stdout, and its stderr is drained to the debug log. Answers are
// matched to requests by id; the server's pings are answered. When the process exits or a pipe
// breaks, every pending request fails with kCrashed, and the next open() starts a new process
// (a new epoch, so the session negotiates again).
#include <boost/asio/any_io_executor.hpp>
#include <cstddef>
#include <memory>
#include <string>

#include "mcp/child_process.h"
#include "mcp/transport.h"

namespace redline::mcp {

struct StdioOptions {
  ChildProcess::Spec spec;
  std::string label;  // names the server in log lines, e.g. "MCP server \"files\""
  std::size_t max_message_bytes = 16u << 20;  // a longer line is a protocol violation
};

// All work happens on `executor`, which must be a strand (or a single-threaded context).
std::unique_ptr<Transport> make_stdio_transport(boost::asio::any_io_executor executor,
                                                StdioOptions options);

}  // namespace redline::mcp
