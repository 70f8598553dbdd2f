#include "gateway/approvals.h"

#include <openssl/rand.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>

#include "common/json_text.h"

namespace redline::gateway {

namespace asio = boost::asio;

struct ApprovalDesk::Waiter {
  explicit Waiter(asio::any_io_executor executor) : timer(executor) {}
  asio::steady_timer timer;
  // Written once, under the desk's mutex, by whoever decides first.
  std::optional<ApprovalDecision> decision;
  PendingApproval info;
};

namespace {

std::string approval_id() {
  unsigned char bytes[12];
  RAND_bytes(bytes, sizeof bytes);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "apr_";
  for (unsigned char byte : bytes) {
    id += kHex[byte >> 4];
    id += kHex[byte & 15];
  }
  return id;
}

std::int64_t unix_seconds(std::chrono::system_clock::time_point at) {
  return std::chrono::duration_cast<std::chrono::seconds>(at.time_since_epoch()).count();
}

}  // namespace

ApprovalDesk::ApprovalDesk() = default;
ApprovalDesk::~ApprovalDesk() = default;

asio::awaitable<ApprovalDecision> ApprovalDesk::hold(
    ApprovalRequest request, std::chrono::milliseconds timeout,
    const std::function<void(std::function<void()>)>& on_registered) {
  auto waiter = std::make_shared<Waiter>(co_await asio::this_coro::executor);
  const auto now = std::chrono::system_clock::now();
  waiter->info = {approval_id(), std::move(request), now, now + timeout};
  const std::string id = waiter->info.id;
  {
    std::lock_guard lock(mutex_);
    waiting_.emplace(id, waiter);
  }
  std::weak_ptr<Waiter> weak = waiter;
  on_registered([this, weak, id] {
    if (auto held = weak.lock()) {
      std::lock_guard lock(mutex_);
      if (!held->decision) held->decision = ApprovalDecision::kAbandoned;
      waiting_.erase(id);
      asio::post(held->timer.get_executor(), [held] { held->timer.cancel(); });
    }
  });
  waiter->timer.expires_after(timeout);
  co_await waiter->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  std::lock_guard lock(mutex_);
  waiting_.erase(id);
  if (!waiter->decision) waiter->decision = ApprovalDecision::kTimedOut;
  co_return *waiter->decision;
}

std::vector<PendingApproval> ApprovalDesk::pending() const {
  std::lock_guard lock(mutex_);
  std::vector<PendingApproval> out;
  for (const auto& [id, waiter] : waiting_) out.push_back(waiter->info);
  std::sort(out.begin(), out.end(), [](const PendingApproval& a, const PendingApproval& b) {
    return a.created < b.created;
  });
  return out;
}

bool ApprovalDesk::decide(const std::string& id, bool approve) {
  std::shared_ptr<Waiter> waiter;
  {
    std::lock_guard lock(mutex_);
    auto it = waiting_.find(id);
    if (it == waiting_.end() || it->second->decision) return false;
    waiter = it->second;
    waiter->decision = approve ? ApprovalDecision::kApproved : ApprovalDecision::kDenied;
    waiting_.erase(it);
  }
  // The timer belongs to the held request's thread: cancel it there.
  asio::post(waiter->timer.get_executor(), [waiter] { waiter->timer.cancel(); });
  return true;
}

std::string to_json(const PendingApproval& approval) {
  const ApprovalRequest& r = approval.request;
  std::string out = "{\"id\":" + json_string(approval.id);
  out += ",\"object\":\"approval\",\"request_id\":" + json_string(r.request_id);
  out += ",\"tenant\":" + json_string(r.tenant);
  out += ",\"key_id\":" + json_string(r.key_id);
  out += ",\"model\":" + json_string(r.model);
  out += ",\"label\":" + json_string(r.label);
  out += ",\"rule\":" + json_string(r.rule);
  out += ",\"detectors\":" + json_string(r.detectors);
  out += ",\"created_at\":" + std::to_string(unix_seconds(approval.created));
  out += ",\"expires_at\":" + std::to_string(unix_seconds(approval.deadline)) + "}";
  return out;
}

}  // namespace redline::gateway
