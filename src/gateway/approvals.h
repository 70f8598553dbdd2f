#pragma once
// Requests held by a require_approval rule until an admin decides. A held request waits on its
// own I/O thread; an admin's decision arrives on another thread and wakes it there. Nothing about
// a held request's content is kept here: only who asked, for what, and which rule held it.
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace redline::gateway {

struct ApprovalRequest {
  std::string request_id;
  std::string tenant;
  std::string key_id;
  std::string model;
  std::string label;
  std::string rule;
  std::string detectors;  // "email=2,iban=1": names and counts, never matched text
};

enum class ApprovalDecision { kApproved, kDenied, kTimedOut, kAbandoned };

struct PendingApproval {
  std::string id;
  ApprovalRequest request;
  std::chrono::system_clock::time_point created;
  std::chrono::system_clock::time_point deadline;
};

class ApprovalDesk {
 public:
  ApprovalDesk();
  ~ApprovalDesk();

  // Holds the calling coroutine until an admin decides, `timeout` passes, or `abandon` (given to
  // the caller through `on_registered`, e.g. for a client disconnect) is called.
  boost::asio::awaitable<ApprovalDecision> hold(
      ApprovalRequest request, std::chrono::milliseconds timeout,
      const std::function<void(std::function<void()> abandon)>& on_registered);

  std::vector<PendingApproval> pending() const;
  // False when no request with that id is waiting (already decided, timed out or unknown).
  bool decide(const std::string& id, bool approve);

 private:
  struct Waiter;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<Waiter>> waiting_;
};

// The JSON the admin API returns for a pending approval.
std::string to_json(const PendingApproval& approval);

}  // namespace redline::gateway
