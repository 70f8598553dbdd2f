// Budgets: how many tokens and how many US dollars a scope (a tenant, an API key) may spend per
// UTC calendar day, per UTC calendar month, or in total.
//
// A request reserves its worst case before it goes upstream and settles its actual usage when
// it ends, so concurrent requests can never together overspend: a reservation passes only if,
// for every budget that applies, settled + reserved + worst case <= limit.
//
// What was spent before this process started comes from `load_settled`, called once per budget
// state per window, the first time the window is used (reserve() or snapshot()), outside every
// lock the book's other callers need. Budgets that share a scope and window share one spend
// record, so a day's token limit and a day's cost limit on "tenant:acme" see the same spend.
//
// At a window change (UTC midnight, the first of a month) the spend restarts from
// load_settled(new window); reservations still in flight keep counting, and settle into
// whatever window is current when they settle, as the audit log records them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quota/clock.h"

namespace redline::quota {

enum class BudgetWindow { kDay, kMonth, kTotal };

// "day", "month", "total".
std::string_view to_string(BudgetWindow window);

struct BudgetSpec {
  std::string scope;  // e.g. "tenant:acme", "key:k_123"
  BudgetWindow window = BudgetWindow::kDay;
  std::optional<std::int64_t> max_tokens;  // unset = no token limit
  std::optional<double> max_cost_usd;      // unset = no cost limit
};

struct Spend {
  std::int64_t tokens = 0;
  double cost_usd = 0;
};

// Unix seconds at which the window containing `unix_seconds` began: 00:00 UTC that day, 00:00
// UTC on the first of that month, or 0 for kTotal.
std::int64_t window_start(BudgetWindow window, std::int64_t unix_seconds);
// Unix seconds at which the next window begins; nullopt for kTotal.
std::optional<std::int64_t> next_window_start(BudgetWindow window, std::int64_t unix_seconds);

enum class BudgetDimension { kTokens, kCost };

struct BudgetDenial {
  std::string scope;
  BudgetWindow window = BudgetWindow::kDay;
  BudgetDimension dimension = BudgetDimension::kTokens;
  // In the refused dimension: tokens, or US dollars.
  double limit = 0;
  double spent = 0;      // settled in the current window
  double reserved = 0;   // held by requests in flight
  double requested = 0;  // this request's worst case
  // Until the window restarts; nullopt for a total budget, which never does.
  std::optional<std::chrono::seconds> resets_in;

  // One line, e.g. "Budget exceeded for tenant:acme (daily tokens): limit 10000, spent 9000,
  // reserved 500, requested 1000; resets in 3h12m0s."
  std::string message() const;
};

class BudgetBook;

// The worst case held in every budget a request is subject to. Move-only. settle() replaces the
// reservation by the actual spend; destruction without settle() releases the reservation and
// records no spend (the request failed before using anything).
class BudgetReservation {
 public:
  BudgetReservation() = default;
  BudgetReservation(BudgetReservation&& other) noexcept;
  BudgetReservation& operator=(BudgetReservation&& other) noexcept;
  BudgetReservation(const BudgetReservation&) = delete;
  BudgetReservation& operator=(const BudgetReservation&) = delete;
  ~BudgetReservation();

  // Releases the reservation and counts `actual` as spent, even when it exceeds the worst case
  // (only a misbehaving upstream reports more than the request allowed). Later calls do nothing.
  void settle(const Spend& actual);

 private:
  friend class BudgetBook;
  struct Record;

  void release();

  std::vector<std::shared_ptr<Record>> records_;
  std::int64_t reserved_tokens_ = 0;
  std::int64_t reserved_nano_usd_ = 0;
};

struct BudgetReserveResult {
  std::optional<BudgetReservation> reservation;  // set exactly when every budget had room
  std::optional<BudgetDenial> denial;            // set exactly when one had not
  bool ok() const { return reservation.has_value(); }
};

// One budget as the admin view shows it.
struct BudgetStatus {
  std::string scope;
  BudgetWindow window = BudgetWindow::kDay;
  std::int64_t window_start = 0;  // unix seconds; 0 for kTotal
  std::optional<std::int64_t> max_tokens;
  std::optional<double> max_cost_usd;
  Spend settled;
  Spend reserved;
};

class BudgetBook {
 public:
  // Spend already settled for `scope` in the window that began at `window_start_unix`.
  using LoadSettled = std::function<Spend(std::string_view scope, std::int64_t window_start_unix)>;

  BudgetBook(std::vector<BudgetSpec> specs, std::shared_ptr<const Clock> clock,
             LoadSettled load_settled);
  ~BudgetBook();
  BudgetBook(const BudgetBook&) = delete;
  BudgetBook& operator=(const BudgetBook&) = delete;

  // Replaces the budgets (config reload). A budget whose scope and window existed before keeps
  // its spend and reservations in flight under the new limits; new ones load lazily; removed
  // ones are forgotten (reservations on them still end cleanly).
  void configure(std::vector<BudgetSpec> specs);

  // Reserves `worst_case` in every budget that applies to any of `scopes`, or in none. Scopes
  // without budgets cost nothing; a scope named twice counts once. Thread-safe: apart from a
  // first use of a window (which calls load_settled), it locks only the spend records involved,
  // for a few additions. The reservation may outlive the book.
  BudgetReserveResult reserve(std::span<const std::string> scopes, const Spend& worst_case);

  // Every budget, in configuration order, brought to the current window first.
  std::vector<BudgetStatus> snapshot();

 private:
  using Record = BudgetReservation::Record;
  struct Table;
  std::shared_ptr<const Table> table() const;
  static void bring_to_window(Record& record, std::int64_t window_start_unix,
                              const LoadSettled& load);

  std::shared_ptr<const Clock> clock_;
  LoadSettled load_settled_;
  mutable std::mutex table_mutex_;
  std::shared_ptr<const Table> table_;
};

}  // namespace redline::quota
