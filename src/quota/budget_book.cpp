#include "quota/budget_book.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <map>
#include <unordered_map>
#include <utility>

#include "quota/rate_limiter.h"

namespace redline::quota {
namespace {

// Costs are kept in whole nano-dollars so that reserving, releasing and settling add and
// subtract exactly: with doubles, a book with nothing in flight could show a reserved residue.
constexpr double kNanoPerUsd = 1e9;
// About 9 billion dollars: far above any budget, far below int64 overflow when summed.
constexpr std::int64_t kMaxNanoUsd = std::int64_t{1} << 62;
constexpr std::int64_t kMaxTokens = std::int64_t{1} << 62;

std::int64_t to_nano_usd(double usd) {
  if (!(usd > 0)) return 0;  // also NaN
  const double nano = usd * kNanoPerUsd;
  return nano >= static_cast<double>(kMaxNanoUsd) ? kMaxNanoUsd : std::llround(nano);
}

double to_usd(std::int64_t nano_usd) { return static_cast<double>(nano_usd) / kNanoPerUsd; }

std::int64_t clamp_tokens(std::int64_t tokens) {
  return std::clamp<std::int64_t>(tokens, 0, kMaxTokens);
}

struct TransparentHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const {
    return std::hash<std::string_view>{}(text);
  }
};

std::string format_amount(BudgetDimension dimension, double amount) {
  char text[64];
  if (dimension == BudgetDimension::kTokens) {
    std::snprintf(text, sizeof text, "%.0f", amount);
  } else {
    std::snprintf(text, sizeof text, "$%.4f", amount);
  }
  return text;
}

}  // namespace

// The spend of one scope in one kind of window. Every budget on that scope and window checks
// its limits against this one record.
struct BudgetReservation::Record {
  Record(std::string scope_name, BudgetWindow budget_window)
      : scope(std::move(scope_name)), window(budget_window) {}

  const std::string scope;
  const BudgetWindow window;
  // Held across load_settled so that each window is loaded once; `mutex` is not held then, so
  // reservations and settlements of the current window go on meanwhile.
  std::mutex load_mutex;
  std::mutex mutex;
  // The rest under `mutex`.
  bool loaded = false;
  std::int64_t window_start = 0;
  std::int64_t settled_tokens = 0;
  std::int64_t settled_nano_usd = 0;
  std::int64_t reserved_tokens = 0;
  std::int64_t reserved_nano_usd = 0;

  bool current(std::int64_t start) const { return loaded && window_start >= start; }
};

struct BudgetBook::Table {
  struct Budget {
    BudgetSpec spec;
    std::optional<std::int64_t> max_nano_usd;
    std::shared_ptr<BudgetReservation::Record> record;
  };
  std::vector<Budget> budgets;
  std::unordered_map<std::string, std::vector<std::size_t>, TransparentHash, std::equal_to<>>
      by_scope;
};

// Brings `record` to the window starting at `start`, reading the spend from before this
// process through `load` at most once per window.
void BudgetBook::bring_to_window(Record& record, std::int64_t start, const LoadSettled& load) {
  {
    std::lock_guard lock(record.mutex);
    if (record.current(start)) return;
  }
  std::lock_guard loading(record.load_mutex);
  {
    std::lock_guard lock(record.mutex);
    if (record.current(start)) return;
  }
  const Spend settled = load ? load(record.scope, start) : Spend{};
  std::lock_guard lock(record.mutex);
  record.loaded = true;
  record.window_start = start;
  record.settled_tokens = clamp_tokens(settled.tokens);
  record.settled_nano_usd = to_nano_usd(settled.cost_usd);
}

std::string_view to_string(BudgetWindow window) {
  switch (window) {
    case BudgetWindow::kDay:
      return "day";
    case BudgetWindow::kMonth:
      return "month";
    case BudgetWindow::kTotal:
      return "total";
  }
  return "unknown";
}

std::int64_t window_start(BudgetWindow window, std::int64_t unix_seconds) {
  using namespace std::chrono;
  const sys_days day = floor<days>(sys_seconds(seconds(unix_seconds)));
  switch (window) {
    case BudgetWindow::kDay:
      return sys_seconds(day).time_since_epoch().count();
    case BudgetWindow::kMonth: {
      const year_month_day date(day);
      return sys_seconds(sys_days(date.year() / date.month() / 1)).time_since_epoch().count();
    }
    case BudgetWindow::kTotal:
      return 0;
  }
  return 0;
}

std::optional<std::int64_t> next_window_start(BudgetWindow window, std::int64_t unix_seconds) {
  using namespace std::chrono;
  const sys_days day = floor<days>(sys_seconds(seconds(unix_seconds)));
  switch (window) {
    case BudgetWindow::kDay:
      return sys_seconds(day + days(1)).time_since_epoch().count();
    case BudgetWindow::kMonth: {
      const year_month_day date(day);
      const year_month next = date.year() / date.month() + months(1);
      return sys_seconds(sys_days(next / 1)).time_since_epoch().count();
    }
    case BudgetWindow::kTotal:
      return std::nullopt;
  }
  return std::nullopt;
}

std::string BudgetDenial::message() const {
  static constexpr std::string_view kAdjectives[] = {"daily", "monthly", "total"};
  std::string text =
      "Budget exceeded for " + scope + " (" + std::string(kAdjectives[static_cast<int>(window)]) +
      (dimension == BudgetDimension::kTokens ? " tokens" : " cost") + "): limit " +
      format_amount(dimension, limit) + ", spent " + format_amount(dimension, spent) +
      ", reserved " + format_amount(dimension, reserved) + ", requested " +
      format_amount(dimension, requested);
  if (resets_in) {
    text += "; resets in " +
            format_reset(std::chrono::duration_cast<std::chrono::milliseconds>(*resets_in));
  }
  return text + ".";
}

BudgetReservation::BudgetReservation(BudgetReservation&& other) noexcept
    : records_(std::move(other.records_)),
      reserved_tokens_(other.reserved_tokens_),
      reserved_nano_usd_(other.reserved_nano_usd_) {
  other.records_.clear();
}

BudgetReservation& BudgetReservation::operator=(BudgetReservation&& other) noexcept {
  if (this != &other) {
    release();
    records_ = std::move(other.records_);
    other.records_.clear();
    reserved_tokens_ = other.reserved_tokens_;
    reserved_nano_usd_ = other.reserved_nano_usd_;
  }
  return *this;
}

BudgetReservation::~BudgetReservation() { release(); }

void BudgetReservation::settle(const Spend& actual) {
  const std::int64_t tokens = clamp_tokens(actual.tokens);
  const std::int64_t nano_usd = to_nano_usd(actual.cost_usd);
  for (const auto& record : records_) {
    std::lock_guard lock(record->mutex);
    record->reserved_tokens -= reserved_tokens_;
    record->reserved_nano_usd -= reserved_nano_usd_;
    record->settled_tokens = std::min(record->settled_tokens + tokens, kMaxTokens);
    record->settled_nano_usd = std::min(record->settled_nano_usd + nano_usd, kMaxNanoUsd);
    assert(record->reserved_tokens >= 0 && record->reserved_nano_usd >= 0);
  }
  records_.clear();
}

void BudgetReservation::release() {
  for (const auto& record : records_) {
    std::lock_guard lock(record->mutex);
    record->reserved_tokens -= reserved_tokens_;
    record->reserved_nano_usd -= reserved_nano_usd_;
    assert(record->reserved_tokens >= 0 && record->reserved_nano_usd >= 0);
  }
  records_.clear();
}

BudgetBook::BudgetBook(std::vector<BudgetSpec> specs, std::shared_ptr<const Clock> clock,
                       LoadSettled load_settled)
    : clock_(std::move(clock)), load_settled_(std::move(load_settled)) {
  assert(clock_ != nullptr);
  configure(std::move(specs));
}

BudgetBook::~BudgetBook() = default;

void BudgetBook::configure(std::vector<BudgetSpec> specs) {
  const auto previous = table();
  std::map<std::pair<std::string, BudgetWindow>, std::shared_ptr<Record>> records;
  if (previous) {
    for (const auto& budget : previous->budgets) {
      records.emplace(std::pair{budget.record->scope, budget.record->window}, budget.record);
    }
  }
  auto next = std::make_shared<Table>();
  next->budgets.reserve(specs.size());
  for (auto& spec : specs) {
    auto& record = records[{spec.scope, spec.window}];
    if (!record) record = std::make_shared<Record>(spec.scope, spec.window);
    Table::Budget budget{std::move(spec), std::nullopt, record};
    if (budget.spec.max_tokens) budget.spec.max_tokens = clamp_tokens(*budget.spec.max_tokens);
    if (budget.spec.max_cost_usd) budget.max_nano_usd = to_nano_usd(*budget.spec.max_cost_usd);
    next->by_scope[budget.spec.scope].push_back(next->budgets.size());
    next->budgets.push_back(std::move(budget));
  }
  std::lock_guard lock(table_mutex_);
  table_ = std::move(next);
}

std::shared_ptr<const BudgetBook::Table> BudgetBook::table() const {
  std::lock_guard lock(table_mutex_);
  return table_;
}

BudgetReserveResult BudgetBook::reserve(std::span<const std::string> scopes,
                                        const Spend& worst_case) {
  const auto current = table();
  const std::int64_t now = clock_->unix_seconds();
  const std::int64_t want_tokens = clamp_tokens(worst_case.tokens);
  const std::int64_t want_nano_usd = to_nano_usd(worst_case.cost_usd);

  std::vector<const Table::Budget*> budgets;
  for (std::size_t i = 0; i < scopes.size(); ++i) {
    if (std::find(scopes.begin(), scopes.begin() + i, scopes[i]) != scopes.begin() + i) continue;
    const auto found = current->by_scope.find(std::string_view(scopes[i]));
    if (found == current->by_scope.end()) continue;
    for (std::size_t index : found->second) budgets.push_back(&current->budgets[index]);
  }
  BudgetReserveResult result;
  if (budgets.empty()) {
    result.reservation.emplace();
    return result;
  }

  // Distinct records in address order: the lock order every reservation agrees on.
  std::vector<std::shared_ptr<Record>> records;
  for (const auto* budget : budgets) records.push_back(budget->record);
  std::sort(records.begin(), records.end(), std::owner_less<>());
  records.erase(std::unique(records.begin(), records.end()), records.end());
  for (const auto& record : records) {
    bring_to_window(*record, window_start(record->window, now), load_settled_);
  }

  std::vector<std::unique_lock<std::mutex>> locks;
  locks.reserve(records.size());
  for (const auto& record : records) locks.emplace_back(record->mutex);

  std::optional<BudgetDenial> denial;
  auto refuse = [&](const Table::Budget& budget, BudgetDimension dimension, double limit,
                    double spent, double reserved, double requested) {
    std::optional<std::chrono::seconds> resets_in;
    if (const auto next = next_window_start(budget.spec.window, now)) {
      resets_in = std::chrono::seconds(*next - now);
    }
    // Report the budget that stays closed longest: the request cannot pass before it reopens.
    const bool replaces =
        !denial || (denial->resets_in && (!resets_in || *resets_in > *denial->resets_in));
    if (!replaces) return;
    denial = BudgetDenial{budget.spec.scope, budget.spec.window, dimension, limit, spent,
                          reserved,          requested,          resets_in};
  };
  for (const auto* budget : budgets) {
    const Record& record = *budget->record;
    if (budget->spec.max_tokens &&
        record.settled_tokens + record.reserved_tokens + want_tokens > *budget->spec.max_tokens) {
      refuse(*budget, BudgetDimension::kTokens, static_cast<double>(*budget->spec.max_tokens),
             static_cast<double>(record.settled_tokens),
             static_cast<double>(record.reserved_tokens), static_cast<double>(want_tokens));
    }
    if (budget->max_nano_usd && record.settled_nano_usd + record.reserved_nano_usd + want_nano_usd >
                                    *budget->max_nano_usd) {
      refuse(*budget, BudgetDimension::kCost, to_usd(*budget->max_nano_usd),
             to_usd(record.settled_nano_usd), to_usd(record.reserved_nano_usd),
             to_usd(want_nano_usd));
    }
  }
  if (denial) {
    result.denial = std::move(denial);
    return result;
  }
  BudgetReservation reservation;
  reservation.reserved_tokens_ = want_tokens;
  reservation.reserved_nano_usd_ = want_nano_usd;
  for (const auto& record : records) {
    record->reserved_tokens += want_tokens;
    record->reserved_nano_usd += want_nano_usd;
  }
  reservation.records_ = std::move(records);
  result.reservation.emplace(std::move(reservation));
  return result;
}

std::vector<BudgetStatus> BudgetBook::snapshot() {
  const auto current = table();
  const std::int64_t now = clock_->unix_seconds();
  std::vector<BudgetStatus> statuses;
  statuses.reserve(current->budgets.size());
  for (const auto& budget : current->budgets) {
    Record& record = *budget.record;
    bring_to_window(record, window_start(record.window, now), load_settled_);
    BudgetStatus status;
    status.scope = budget.spec.scope;
    status.window = budget.spec.window;
    status.max_tokens = budget.spec.max_tokens;
    status.max_cost_usd = budget.spec.max_cost_usd;
    std::lock_guard lock(record.mutex);
    status.window_start = record.window_start;
    status.settled = {record.settled_tokens, to_usd(record.settled_nano_usd)};
    status.reserved = {record.reserved_tokens, to_usd(record.reserved_nano_usd)};
    statuses.push_back(std::move(status));
  }
  return statuses;
}

}  // namespace redline::quota
