// Upper bounds on the tokens of a request, known before the upstream reports real usage, so
// rate limits and budgets can be charged up front and corrected at settlement.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace redline::quota {

// What one image input may cost, covering high-detail images on the gpt-4o, gpt-4.1 and o-series
// families (at most 1536 patches × 1.72, or 8 tiles × 170 + 85). Models that price images
// higher (gpt-4o-mini counts about 36 000 tokens per image) need their own allowance.
inline constexpr std::int64_t kDefaultTokensPerImage = 2'700;

// An upper bound on the prompt tokens of an OpenAI request body (chat completions, responses,
// completions, embeddings), in one pass over the bytes without parsing.
//
// Why the byte length bounds the text: byte-level BPE never yields more tokens than UTF-8
// bytes, and the JSON around each message (quotes, "role", "content") takes more bytes than
// the few template tokens a message adds. Two refinements keep it a bound while making it
// tighter where the bytes say nothing about tokens:
//   - each image part (a "type" of "image_url" or "input_image") adds `tokens_per_image`;
//   - the base64 payload of an inline image ("image_url": {"url": "data:image/..."} or
//     "image_url": "data:image/...") is not counted as text, since the image allowance covers it.
// Content the body only refers to (file_id, previous_response_id, stored prompts) cannot be
// bounded from the body; settlement corrects for it. A body that obfuscates its keys with \u
// escapes only makes the estimate lower by the image allowances it hides, again corrected at
// settlement.
std::int64_t estimate_input_tokens(std::string_view request_body,
                                   std::int64_t tokens_per_image = kDefaultTokensPerImage);

// The most output tokens a request may produce: its max_tokens (or max_completion_tokens /
// max_output_tokens) when given, capped by what the model can produce (`model_cap`; <= 0 when
// unknown). A max_tokens of 0 or below yields 0 (the upstream refuses it before generating).
// Without either, 0: the caller must supply a cap to reserve anything for output.
std::int64_t worst_case_output_tokens(std::optional<std::int64_t> max_tokens,
                                      std::int64_t model_cap);

}  // namespace redline::quota
