#pragma once
// Agent memory: the REST API under /v1/memory/ for pinned blocks and archival records, the
// memory context a turn asks for ("redline": {"memory": {...}} on POST /v1/responses), and the
// automatic extraction of facts after a turn.
//
// Labels gate everything. A block or record is labelled with the lub of the label it was given
// and what the detectors find in its text; a key never writes above its maximum label and never
// reads (lists, searches, is shown) anything above it. Memory is only injected into a turn when
// at least one backend the turn may reach is cleared for it, and the turn's label is raised to
// what was injected, so the gateway routes it only to backends cleared for every injected item.
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/openai_error.h"
#include "net/http_message.h"
#include "policy/label.h"
#include "store/memory_store.h"

namespace redline::gateway {
class Gateway;
struct Caller;
}  // namespace redline::gateway
namespace redline::quota {
class Clock;
}

namespace redline::agents {

class BlockingPool;

// What a turn asks of memory: "redline": {"memory": {"user", "agent", "blocks", "search",
// "top_k", "extract"}}.
struct MemoryOptions {
  store::MemoryNamespace scope;
  bool blocks = true;   // inject the pinned blocks the scope sees
  bool search = false;  // inject the records that best match `query`
  std::string query;    // "" with search = the turn's last user input
  std::size_t top_k = 5;
  bool extract = false;  // extract facts from the turn afterwards
};

// Reads the "memory" member of the "redline" extension object; nullopt when absent. A malformed
// one sets `error` (a 400 naming the member).
std::optional<MemoryOptions> read_memory_options(const boost::json::object& redline,
                                                 std::size_t max_top_k,
                                                 std::optional<ApiError>& error);

// What a turn's prompt gets from memory.
struct MemoryContext {
  std::string text;         // a system message; "" = nothing to inject
  std::string label_floor;  // the lub of the injected items' labels; "" = nothing injected
  std::vector<std::string> injected;  // ids of the blocks and records injected
};

// One finished turn, for extraction.
struct TurnTranscript {
  std::string response_id;
  std::string transcript;  // "user: ...\nassistant: ..."
  std::string label;       // the turn's classification
};

class MemoryService {
 public:
  MemoryService(gateway::Gateway& gateway, std::shared_ptr<store::MemoryStore> store,
                BlockingPool& blocking, std::shared_ptr<const quota::Clock> clock);

  // Answers a request under /v1/memory/ (`path` starts with "/v1/memory").
  boost::asio::awaitable<net::HttpResponse> handle(const gateway::Caller& caller,
                                                   const net::HttpRequest& request,
                                                   std::string_view path);

  // The memory a turn for `alias` gets: the pinned blocks and best records the caller's key may
  // read and some backend of the alias is cleared for, most relevant first, within what one
  // routable label can carry. `query` is used when options.search and options.query is "".
  // `base` is the turn's own label (key default, declaration, detectors): memory that would make
  // it unroutable together with it is left out.
  boost::asio::awaitable<MemoryContext> context_for(const gateway::Caller& caller,
                                                    std::string_view alias,
                                                    const MemoryOptions& options,
                                                    std::string_view query, policy::Label base);

  // Reads facts out of a finished turn with the configured extraction model, through the
  // gateway under the caller's key, and files them as records of `scope` (subjects supersede
  // what they update). Runs in the background; a failure is logged, never shown to the client.
  void extract_in_background(const net::HttpRequest& origin, store::MemoryNamespace scope,
                             std::string tenant, TurnTranscript turn);

  // Files a record in `scope` (superseding the current one with the same subject), labelled at
  // least `label`: what a finished graph task learned. A failure is logged.
  boost::asio::awaitable<void> remember(const std::string& tenant,
                                        const store::MemoryNamespace& scope,
                                        const std::string& text, const std::string& subject,
                                        const std::string& source, const std::string& label);

  // Removes expired records; returns how many.
  std::int64_t purge_expired();

 private:
  struct Extraction;
  boost::asio::awaitable<void> extract(std::shared_ptr<Extraction> extraction);

  gateway::Gateway& gateway_;
  std::shared_ptr<store::MemoryStore> store_;
  BlockingPool& blocking_;
  std::shared_ptr<const quota::Clock> clock_;
};

}  // namespace redline::agents
