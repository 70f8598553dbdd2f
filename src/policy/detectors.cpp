#include "policy/detectors.h"

#include <hs/hs.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <limits>
#include <optional>

#include "policy/detector_numeric.h"
#include "policy/normalize.h"

namespace redline::policy {
namespace {

using detail::is_alnum;
using detail::is_digit;
using detail::is_upper;
using detail::NumericKind;
using detail::to_upper;

// How a candidate from one vectorscan pattern is checked (and, for markings, what it raises).
enum class Check : std::uint8_t {
  kNone,
  kLuhn,
  kIban,
  kPhoneInternational,
  kBanner,
  kPortionMark,
  kClassificationWord,
};

// How a candidate's start is found. Vectorscan's leftmost-start tracking (SOM) costs up to 10x
// throughput on patterns that begin with a repeated class or a long alternation, so those
// patterns report only their end and the start is re-found by a short backward scan over the
// bytes the pattern can contain. The patterns are written so that scan agrees with the regex.
enum class Span : std::uint8_t {
  kSom,     // vectorscan reports the start (HS_FLAG_SOM_LEFTMOST)
  kEmail,   // back over the domain to '@', then over the local part
  kBanner,  // back to the level word before the first "//"
  kPem,     // back to the nearest "-----BEGIN" before the END line, so two keys stay two
};

struct BuiltinPattern {
  const char* expression;
  unsigned flags;
  Check check;
  Span span = Span::kSom;
};

// Letters of `word` with an optional separator between each, so "S E C R E T", "S-E-C-R-E-T"
// and "S.E.C.R.E.T" match like "SECRET".
std::string spaced(std::string_view word) {
  std::string out;
  for (std::size_t i = 0; i < word.size(); ++i) {
    if (i > 0) out += "[ ._-]?";
    out += word[i];
  }
  return out;
}

// The marking levels, each written plainly or spaced out; "TOP SECRET" also as TOP_SECRET.
std::string marking_levels() {
  return "(?:" + spaced("TOP") + "[ ._-]{0,3}" + spaced("SECRET") + "|" + spaced("SECRET") + "|" +
         spaced("CONFIDENTIAL") + ")";
}

// After "//": control markings such as NOFORN, "REL TO USA, GBR", SCI, each an upper-case word
// (or letters spaced out), words separated by single spaces, markings by '/' or ','.
std::string banner_pattern() {
  const std::string word = "(?:[A-Z][A-Z0-9]+|[A-Z](?:[ .-][A-Z]){2,})";
  const std::string marking = word + "(?: " + word + ")*";
  const std::string slashes = " {0,3}/ {0,3}/ {0,3}";
  return "\\b" + marking_levels() + slashes + marking + "(?:(?: {0,3}[/,] {0,3})+" + marking +
         ")*\\b";
}

struct BuiltinDetector {
  const char* name;
  std::vector<BuiltinPattern> patterns;
  unsigned numeric_kinds = 0;  // bits 1 << detail::NumericKind
};

constexpr unsigned numeric_bit(detail::NumericKind kind) {
  return 1U << static_cast<unsigned>(kind);
}
constexpr unsigned kNumericCard = numeric_bit(detail::NumericKind::kPaymentCard);
constexpr unsigned kNumericSsn = numeric_bit(detail::NumericKind::kUsSsn);
constexpr unsigned kNumericIban = numeric_bit(detail::NumericKind::kIban);
constexpr unsigned kNumericIpv4 = numeric_bit(detail::NumericKind::kIpv4);
constexpr unsigned kNumericIpv6 = numeric_bit(detail::NumericKind::kIpv6);
constexpr unsigned kNumericPhoneNanp = numeric_bit(detail::NumericKind::kPhoneNanp);

const std::vector<BuiltinDetector>& builtin_detectors() {
  static const std::vector<BuiltinDetector>* detectors = [] {
    // Redaction needs every match's start; `Span` says whether vectorscan reports it or the
    // engine re-finds it.
    constexpr unsigned kCaseless = HS_FLAG_CASELESS;
    static const std::string banner = banner_pattern();
    static const std::string word = "\\b" + marking_levels() + "\\b";
    return new std::vector<BuiltinDetector>{
        {"email",
         {{"[a-z0-9_%+-]@(?:[a-z0-9-]+\\.)+[a-z]{2,24}\\b", kCaseless, Check::kNone,
           Span::kEmail}}},
        {"phone",
         {
             {"\\+[1-9][0-9]{0,2}(?:[ .-]?\\(?[0-9]{1,4}\\)?){2,6}", 0, Check::kPhoneInternational},
             {"\\b00[1-9][0-9]{0,2}(?:[ -]\\(?[0-9]{1,4}\\)?){2,6}", 0, Check::kPhoneInternational},
         },
         kNumericPhoneNanp},
        // Found by detail::find_numeric, not by vectorscan (see detector_numeric.h).
        {"us_ssn", {}, kNumericSsn},
        {"payment_card", {}, kNumericCard},
        {"iban", {}, kNumericIban},
        {"ip_address", {}, kNumericIpv4 | kNumericIpv6},
        {"aws_access_key", {{"\\b(?:AKIA|ASIA)[A-Z0-9]{16}\\b", 0, Check::kNone}}},
        {"private_key",
         {{"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----", 0, Check::kNone},
          {"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----.*-----END[A-Z0-9 ]{0,40}PRIVATE KEY-----",
           HS_FLAG_DOTALL, Check::kNone, Span::kPem}}},
        {"jwt",
         {{"\\beyJ[A-Za-z0-9_-]{8,}\\.eyJ[A-Za-z0-9_-]{8,}\\.[A-Za-z0-9_-]*", 0, Check::kNone}}},
        {"provider_token",
         {{"\\bgh[pousr]_[A-Za-z0-9]{36}\\b", 0, Check::kNone},
          {"\\bgithub_pat_[A-Za-z0-9_]{22,}", 0, Check::kNone},
          {"\\bxox[abposr]-[A-Za-z0-9-]{10,}", 0, Check::kNone},
          {"\\bsk-[A-Za-z0-9_-]{20,}", 0, Check::kNone},
          {"\\bAIza[0-9A-Za-z_-]{35}", 0, Check::kNone},
          {"\\bglpat-[A-Za-z0-9_-]{20,}", 0, Check::kNone}}},
        {"classification_banner", {{banner.c_str(), 0, Check::kBanner, Span::kBanner}}},
        {"portion_mark",
         {{"\\((?:TS|S|C|U)(?://[A-Z][A-Z0-9 ,/-]{0,60})?\\)", 0, Check::kPortionMark}}},
        {"classification_word", {{word.c_str(), 0, Check::kClassificationWord}}},
    };
  }();
  return *detectors;
}

const BuiltinDetector* find_builtin(std::string_view name) {
  for (const auto& detector : builtin_detectors()) {
    if (name == detector.name) return &detector;
  }
  return nullptr;
}

int count_digits(std::string_view s) {
  return static_cast<int>(std::count_if(s.begin(), s.end(), is_digit));
}

// E.164 allows at most 15 digits; fewer than 8 (country code included) is a short code or noise.
// The byte before must not continue an expression or a number ("10+1234567890").
bool international_phone_valid(std::string_view text, std::size_t begin, std::size_t end) {
  const std::string_view candidate = text.substr(begin, end - begin);
  const int digits = count_digits(candidate) - (candidate.starts_with("00") ? 2 : 0);
  if (digits < 8 || digits > 15) return false;
  if (candidate.back() == '(' || candidate.back() == ' ' || candidate.back() == '-') return false;
  if (std::count(candidate.begin(), candidate.end(), '(') !=
      std::count(candidate.begin(), candidate.end(), ')')) {
    return false;
  }
  if (begin > 0) {
    const char before = text[begin - 1];
    if (is_alnum(before) || before == ')' || before == '.' || before == '/') return false;
  }
  return end >= text.size() || !is_alnum(text[end]);
}

// The level and caveat names a marking can name, resolved against the lattice once at compile.
struct MarkingNames {
  std::optional<std::uint8_t> top_secret;
  std::optional<std::uint8_t> secret;
  std::optional<std::uint8_t> confidential;
  // Caveats by their name with separators removed ("EXPORTCONTROLLED"), plus NF for NOFORN.
  std::vector<std::pair<std::string, std::uint64_t>> caveats;

  explicit MarkingNames(const LabelLattice& lattice)
      : top_secret(lattice.find_level("TOP_SECRET")),
        secret(lattice.find_level("SECRET")),
        confidential(lattice.find_level("CONFIDENTIAL")) {
    for (std::size_t i = 0; i < lattice.caveats().size(); ++i) {
      std::string compact;
      for (char c : lattice.caveats()[i]) {
        if (c != '_') compact.push_back(c);
      }
      caveats.emplace_back(compact, std::uint64_t{1} << i);
    }
    if (const auto noforn = lattice.find_caveat("NOFORN")) caveats.emplace_back("NF", *noforn);
  }

  // A marking's letters with separators removed: "TOPSECRET", "S", "TS", "C", ...
  std::optional<std::uint8_t> level(std::string_view letters) const {
    if (letters == "TOPSECRET" || letters == "TS") return top_secret;
    if (letters == "SECRET" || letters == "S") return secret;
    if (letters == "CONFIDENTIAL" || letters == "C") return confidential;
    return std::nullopt;
  }

  std::uint64_t caveat(std::string_view letters) const {
    for (const auto& [name, bit] : caveats) {
      if (name == letters) return bit;
    }
    return 0;
  }

  // "SECRET//NOFORN/REL TO USA, GBR" → SECRET with NOFORN (the other markings are not lattice
  // caveats here). Returns the lowest label when the level is not in the lattice.
  Label parse(std::string_view marking) const {
    Label label;
    std::string letters;
    bool in_level = true;
    auto flush = [&] {
      if (in_level) {
        label.level = level(letters).value_or(0);
      } else {
        label.caveats |= caveat(letters);
      }
      letters.clear();
    };
    for (std::size_t i = 0; i < marking.size(); ++i) {
      const char c = marking[i];
      if (is_alnum(c)) {
        letters.push_back(c);
      } else if (c == '/' || c == ',') {
        if (!letters.empty() || !in_level) flush();
        in_level = false;
      }
    }
    flush();
    return label;
  }
};

// Bare "(C)" and "(S)" are common outside markings (list items, "(C) 2024 Acme"), so a portion
// mark without "//" counts only at the start of a line and not before a year or "Copyright".
bool portion_mark_in_place(std::string_view text, std::size_t begin, std::size_t end) {
  const std::string_view mark = text.substr(begin, end - begin);
  if (mark.find("//") != std::string_view::npos) return true;
  for (std::size_t i = begin; i > 0; --i) {
    const char c = text[i - 1];
    if (c == '\n' || c == '\r') break;
    if (c != ' ' && c != '\t') return false;
  }
  std::size_t next = end;
  while (next < text.size() && text[next] == ' ') ++next;
  if (next < text.size() && is_digit(text[next])) return false;
  static constexpr std::string_view kCopyright = "COPYRIGHT";
  if (text.size() - next >= kCopyright.size()) {
    bool copyright = true;
    for (std::size_t k = 0; k < kCopyright.size(); ++k) {
      copyright = copyright && to_upper(text[next + k]) == kCopyright[k];
    }
    if (copyright) return false;
  }
  return true;
}

struct Range {
  std::uint32_t begin;
  std::uint32_t end;
};

std::size_t scan_back(std::string_view text, std::size_t from, bool (*allowed)(char)) {
  while (from > 0 && allowed(text[from - 1])) --from;
  return from;
}

bool is_domain_char(char c) { return is_alnum(c) || c == '.' || c == '-'; }
bool is_local_part_char(char c) {
  return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}
bool is_banner_char(char c) {
  return is_upper(c) || is_digit(c) || c == ' ' || c == ',' || c == '/' || c == '.' || c == '_' ||
         c == '-';
}

// The banner's level word ends right before the first "//" (spaces allowed); walk back over as
// many letters as the level has, skipping the separators of a spaced-out form.
std::optional<std::size_t> banner_begin(std::string_view text, std::size_t from, std::size_t end) {
  std::size_t slash = text.substr(from, end - from).find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  slash += from;
  std::string letters;  // reversed
  std::vector<std::size_t> positions;
  for (std::size_t p = slash; p > from; --p) {
    const char c = text[p - 1];
    if (is_upper(c)) {
      letters.push_back(c);
      positions.push_back(p - 1);
    } else if (c != ' ' && c != '.' && c != '_' && c != '-') {
      break;
    }
  }
  for (std::string_view level : {"TERCESPOT", "TERCES", "LAITNEDIFNOC"}) {
    if (std::string_view(letters).starts_with(level)) {
      const std::size_t begin = positions[level.size() - 1];
      if (begin > 0 && is_alnum(text[begin - 1])) return std::nullopt;
      return begin;
    }
  }
  return std::nullopt;
}

// Where the candidate ending at `to` starts (and, for hex tokens, really ends); nullopt when
// there is no such candidate after all.
std::optional<Range> find_range(Span span, std::string_view text, std::uint32_t from,
                                std::uint32_t to) {
  std::size_t begin = from;
  std::size_t end = to;
  switch (span) {
    case Span::kSom:
      break;
    case Span::kEmail: {
      const std::size_t at = scan_back(text, end, is_domain_char);
      if (at == 0 || text[at - 1] != '@') return std::nullopt;
      begin = scan_back(text, at - 1, is_local_part_char);
      while (begin < at - 1 && !is_alnum(text[begin])) ++begin;  // \b before the local part
      if (begin == at - 1) return std::nullopt;
      break;
    }
    case Span::kPem: {
      const std::size_t end_line = text.rfind("-----END", end);
      const std::size_t begin_line = text.rfind("-----BEGIN", end_line);
      if (end_line == std::string_view::npos || begin_line == std::string_view::npos) {
        return std::nullopt;
      }
      begin = begin_line;
      break;
    }
    case Span::kBanner: {
      const auto start = banner_begin(text, scan_back(text, end, is_banner_char), end);
      if (!start) return std::nullopt;
      begin = *start;
      break;
    }
  }
  return Range{static_cast<std::uint32_t>(begin), static_cast<std::uint32_t>(end)};
}

std::string escape_literal(std::string_view keyword) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  if (is_alnum(keyword.front()) || keyword.front() == '_') out += "\\b";
  for (char c : keyword) {
    if (is_alnum(c)) {
      out.push_back(c);
    } else {
      const auto byte = static_cast<unsigned char>(c);
      out += "\\x";
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xF]);
    }
  }
  if (is_alnum(keyword.back()) || keyword.back() == '_') out += "\\b";
  return out;
}

std::atomic<std::uint64_t> next_set_id{1};

struct RawHit {
  std::uint32_t pattern;
  std::uint32_t from;
  std::uint32_t to;
};

struct Candidate {
  std::uint16_t detector;
  std::uint32_t begin;
  std::uint32_t end;
  Label raises;
};

// Per-thread scan state: vectorscan scratch (grown for each new set the thread scans with) and
// buffers reused across scans so a steady-state scan does not allocate.
struct ThreadScanState {
  hs_scratch_t* scratch = nullptr;
  std::uint64_t scratch_set_id = 0;
  NormalizedText normalized;
  std::vector<RawHit> hits;
  std::vector<detail::NumericCandidate> numeric;
  std::vector<Candidate> candidates;

  ~ThreadScanState() {
    if (scratch != nullptr) hs_free_scratch(scratch);
  }
};

int on_match(unsigned int id, unsigned long long from, unsigned long long to, unsigned int,
             void* context) {
  static_cast<std::vector<RawHit>*>(context)->push_back(
      RawHit{id, static_cast<std::uint32_t>(from), static_cast<std::uint32_t>(to)});
  return 0;
}

}  // namespace

struct DetectorSet::Compiled {
  struct Pattern {
    std::uint16_t detector;
    Check check;
    Span span;
  };
  hs_database_t* database = nullptr;
  std::vector<Pattern> patterns;
  std::uint64_t id = next_set_id.fetch_add(1);
  MarkingNames markings;
  // Numeric built-ins (detector_numeric.h): which kinds run, and the detector each reports as.
  unsigned numeric_kinds = 0;
  std::uint16_t numeric_detector[detail::kNumericKinds] = {};

  explicit Compiled(const LabelLattice& lattice) : markings(lattice) {}
  ~Compiled() {
    if (database != nullptr) hs_free_database(database);
  }
};

std::vector<DetectorSpec> builtin_detector_specs(const LabelLattice& lattice) {
  auto named = [&](std::string_view level, std::string_view caveat) {
    Label label;
    label.level = lattice.find_level(level).value_or(0);
    if (!caveat.empty()) label.caveats = lattice.find_caveat(caveat).value_or(0);
    return label;
  };
  const Label personal = named("INTERNAL", "PII");
  const Label sensitive_personal = named("CONFIDENTIAL", "PII");
  const Label card = named("CONFIDENTIAL", "PCI");
  const Label secret = named("CONFIDENTIAL", "");
  std::vector<DetectorSpec> specs;
  for (const auto& builtin : builtin_detectors()) {
    DetectorSpec spec;
    spec.name = builtin.name;
    const std::string_view name = builtin.name;
    if (name == "email" || name == "phone" || name == "ip_address") {
      spec.raises = personal;
    } else if (name == "us_ssn" || name == "iban") {
      spec.raises = sensitive_personal;
    } else if (name == "payment_card") {
      spec.raises = card;
    } else if (name == "aws_access_key" || name == "private_key" || name == "jwt" ||
               name == "provider_token") {
      spec.raises = secret;
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

std::shared_ptr<const DetectorSet> DetectorSet::compile(const LabelLattice& lattice,
                                                        std::vector<DetectorSpec> specs,
                                                        std::string* error) {
  auto fail = [&](std::string message) -> std::shared_ptr<const DetectorSet> {
    if (error != nullptr) *error = std::move(message);
    return nullptr;
  };
  if (specs.size() > std::numeric_limits<std::uint16_t>::max()) {
    return fail("too many detectors: " + std::to_string(specs.size()));
  }
  std::shared_ptr<DetectorSet> set(new DetectorSet());
  set->lattice_ = lattice;
  set->compiled_ = std::make_unique<Compiled>(lattice);
  Compiled& compiled = *set->compiled_;

  std::vector<std::string> expressions;
  std::vector<unsigned> flags;
  auto add = [&](std::uint16_t detector, std::string expression, unsigned extra, Check check,
                 Span span) {
    expressions.push_back(std::move(expression));
    flags.push_back(extra | (span == Span::kSom ? HS_FLAG_SOM_LEFTMOST : 0));
    compiled.patterns.push_back({detector, check, span});
  };
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const DetectorSpec& spec = specs[i];
    const auto id = static_cast<std::uint16_t>(i);
    const BuiltinDetector* builtin = find_builtin(spec.name);
    if (builtin == nullptr && spec.patterns.empty() && spec.keywords.empty()) {
      return fail("detector \"" + spec.name +
                  "\" is not a built-in detector and has no patterns or keywords");
    }
    if (!spec.enabled) continue;
    if (builtin != nullptr) {
      for (unsigned kind = 0; kind < detail::kNumericKinds; ++kind) {
        if ((builtin->numeric_kinds >> kind) & 1U) compiled.numeric_detector[kind] = id;
      }
      compiled.numeric_kinds |= builtin->numeric_kinds;
      for (const auto& pattern : builtin->patterns) {
        add(id, pattern.expression, pattern.flags, pattern.check, pattern.span);
      }
    }
    const Check custom_check = spec.validator == Validator::kLuhn   ? Check::kLuhn
                               : spec.validator == Validator::kIban ? Check::kIban
                                                                    : Check::kNone;
    for (const auto& pattern : spec.patterns) add(id, pattern, 0, custom_check, Span::kSom);
    for (const auto& keyword : spec.keywords) {
      if (keyword.empty()) return fail("detector \"" + spec.name + "\" has an empty keyword");
      add(id, escape_literal(keyword), HS_FLAG_CASELESS, Check::kNone, Span::kSom);
    }
  }

  if (!expressions.empty()) {
    std::vector<const char*> pointers;
    std::vector<unsigned> ids;
    for (std::size_t i = 0; i < expressions.size(); ++i) {
      pointers.push_back(expressions[i].c_str());
      ids.push_back(static_cast<unsigned>(i));
    }
    hs_compile_error_t* compile_error = nullptr;
    const hs_error_t status = hs_compile_multi(
        pointers.data(), flags.data(), ids.data(), static_cast<unsigned>(pointers.size()),
        HS_MODE_BLOCK, nullptr, &compiled.database, &compile_error);
    if (status != HS_SUCCESS) {
      std::string message = compile_error != nullptr && compile_error->message != nullptr
                                ? compile_error->message
                                : "vectorscan error " + std::to_string(status);
      if (compile_error != nullptr && compile_error->expression >= 0) {
        const auto index = static_cast<std::size_t>(compile_error->expression);
        message = "detector \"" + specs[compiled.patterns[index].detector].name + "\": pattern \"" +
                  expressions[index] + "\": " + message;
      }
      hs_free_compile_error(compile_error);
      return fail(message);
    }
  }
  set->specs_ = std::move(specs);
  return set;
}

DetectorSet::~DetectorSet() = default;

std::size_t DetectorSet::size() const { return specs_.size(); }

const DetectorSpec& DetectorSet::spec(std::uint16_t id) const {
  assert(id < specs_.size());
  return specs_[id];
}

const LabelLattice& DetectorSet::lattice() const { return lattice_; }

bool DetectorSet::scan(std::string_view text, std::vector<DetectorMatch>& out) const {
  const Compiled& compiled = *compiled_;
  if (compiled.database == nullptr && compiled.numeric_kinds == 0) return true;
  assert(text.size() < std::numeric_limits<std::uint32_t>::max());
  thread_local ThreadScanState state;
  if (compiled.database != nullptr && state.scratch_set_id != compiled.id) {
    if (hs_alloc_scratch(compiled.database, &state.scratch) != HS_SUCCESS) return false;
    state.scratch_set_id = compiled.id;
  }

  normalize(text, state.normalized);
  const std::string_view scanned = state.normalized.changed ? state.normalized.text : text;
  state.hits.clear();
  if (compiled.database != nullptr &&
      hs_scan(compiled.database, scanned.data(), static_cast<unsigned>(scanned.size()), 0,
              state.scratch, on_match, &state.hits) != HS_SUCCESS) {
    return false;
  }
  state.numeric.clear();
  if (compiled.numeric_kinds != 0) {
    detail::find_numeric(scanned, compiled.numeric_kinds, state.numeric);
  }
  if (state.hits.empty() && state.numeric.empty()) return true;

  state.candidates.clear();
  for (const detail::NumericCandidate& found : state.numeric) {
    const std::uint16_t detector = compiled.numeric_detector[static_cast<unsigned>(found.kind)];
    state.candidates.push_back({detector, found.begin, found.end, specs_[detector].raises});
  }
  for (RawHit hit : state.hits) {
    const auto& pattern = compiled.patterns[hit.pattern];
    const auto range = find_range(pattern.span, scanned, hit.from, hit.to);
    if (!range) continue;
    hit.from = range->begin;
    hit.to = range->end;
    const DetectorSpec& spec = specs_[pattern.detector];
    const std::string_view candidate = scanned.substr(hit.from, hit.to - hit.from);
    Label raises = spec.raises;
    bool valid = true;
    switch (pattern.check) {
      case Check::kNone:
        break;
      case Check::kLuhn:
        valid = detail::luhn_valid(candidate);
        break;
      case Check::kIban:
        valid = detail::iban_valid(candidate);
        break;
      case Check::kPhoneInternational:
        valid = international_phone_valid(scanned, hit.from, hit.to);
        break;
      case Check::kPortionMark:
        valid = portion_mark_in_place(scanned, hit.from, hit.to);
        [[fallthrough]];
      case Check::kBanner:
      case Check::kClassificationWord: {
        // Strip the brackets of a portion mark; the rest parses like a banner.
        const std::string_view marking = pattern.check == Check::kPortionMark
                                             ? candidate.substr(1, candidate.size() - 2)
                                             : candidate;
        raises = least_upper_bound(raises, compiled.markings.parse(marking));
        // A marking that raises nothing ("(U)", or a level this lattice lacks) is not a hit.
        valid = valid && !(raises == Label{});
        break;
      }
    }
    if (valid) state.candidates.push_back({pattern.detector, hit.from, hit.to, raises});
  }

  // Per detector, leftmost first and the longest at one start; drop anything overlapping a kept
  // match of the same detector.
  std::sort(state.candidates.begin(), state.candidates.end(),
            [](const Candidate& a, const Candidate& b) {
              if (a.detector != b.detector) return a.detector < b.detector;
              if (a.begin != b.begin) return a.begin < b.begin;
              return a.end > b.end;
            });
  const NormalizedText& normalized = state.normalized;
  std::size_t i = 0;
  while (i < state.candidates.size()) {
    const std::uint16_t detector = state.candidates[i].detector;
    std::uint32_t kept_end = 0;
    bool any_kept = false;
    for (; i < state.candidates.size() && state.candidates[i].detector == detector; ++i) {
      const Candidate& c = state.candidates[i];
      if (any_kept && c.begin < kept_end) continue;
      any_kept = true;
      kept_end = c.end;
      DetectorMatch match{detector, c.begin, c.end, c.raises};
      if (normalized.changed) {
        match.begin = normalized.source_begin[c.begin];
        match.end = normalized.source_end[c.end - 1];
      }
      out.push_back(match);
    }
  }
  return true;
}

ScanSummary DetectorSet::classify(std::string_view text) const {
  ScanSummary summary;
  summary.hits.assign(specs_.size(), 0);
  thread_local std::vector<DetectorMatch> matches;
  matches.clear();
  if (!scan(text, matches)) {
    summary.scanned = false;
    summary.label = lattice_.top();
    return summary;
  }
  for (const DetectorMatch& match : matches) {
    summary.label = least_upper_bound(summary.label, match.raises);
    ++summary.hits[match.detector];
  }
  return summary;
}

}  // namespace redline::policy
