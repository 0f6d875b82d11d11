#include "tokenizer/unicode.h"

#include <algorithm>
#include <vector>

#include "core/utf8.h"
#include "tokenizer/unicode_tables.h"

namespace lserve::unicode {
namespace {

using unicode_tables::CodePointRange;

const CodePointRange* FindRange(const CodePointRange* table, size_t size, char32_t cp) {
  const CodePointRange* end = table + size;
  const CodePointRange* it = std::upper_bound(
      table, end, cp, [](char32_t c, const CodePointRange& r) { return c < r.first; });
  if (it == table) return nullptr;
  --it;
  return cp <= it->last ? it : nullptr;
}

// Hangul syllable composition constants (Unicode chapter 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr int kLCount = 19, kVCount = 21, kTCount = 28;
constexpr int kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

const unicode_tables::Decomposition* FindDecomposition(const unicode_tables::Decomposition* table,
                                                       size_t size, char32_t cp) {
  const auto* end = table + size;
  const auto* it = std::lower_bound(
      table, end, cp,
      [](const unicode_tables::Decomposition& d, char32_t c) { return d.code_point < c; });
  return (it != end && it->code_point == cp) ? it : nullptr;
}

// Appends the full decomposition of `cp` (itself when it has none).
void Decompose(char32_t cp, bool compatibility, std::vector<char32_t>* out) {
  if (cp < 0xA0) {
    out->push_back(cp);
    return;
  }
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const int s = static_cast<int>(cp - kSBase);
    out->push_back(kLBase + s / kNCount);
    out->push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out->push_back(kTBase + s % kTCount);
    return;
  }
  const unicode_tables::Decomposition* d = nullptr;
  if (compatibility) {
    d = FindDecomposition(unicode_tables::kCompatibilityDecomposition,
                          unicode_tables::kCompatibilityDecompositionSize, cp);
  }
  if (d == nullptr) {
    d = FindDecomposition(unicode_tables::kCanonicalDecomposition,
                          unicode_tables::kCanonicalDecompositionSize, cp);
  }
  if (d == nullptr) {
    out->push_back(cp);
    return;
  }
  out->insert(out->end(), unicode_tables::kDecompositionPool + d->offset,
              unicode_tables::kDecompositionPool + d->offset + d->length);
}

// The primary composite of (first, second), or 0.
char32_t Compose(char32_t first, char32_t second) {
  if (first >= kLBase && first < kLBase + kLCount && second >= kVBase && second < kVBase + kVCount) {
    return kSBase + ((first - kLBase) * kVCount + (second - kVBase)) * kTCount;
  }
  if (first >= kSBase && first < kSBase + kSCount && (first - kSBase) % kTCount == 0 &&
      second > kTBase && second < kTBase + kTCount) {
    return first + (second - kTBase);
  }
  const auto* table = unicode_tables::kComposition;
  const auto* end = table + unicode_tables::kCompositionSize;
  const auto* it = std::lower_bound(table, end, std::pair<char32_t, char32_t>(first, second),
                                    [](const unicode_tables::Composition& c,
                                       const std::pair<char32_t, char32_t>& key) {
                                      return c.first != key.first ? c.first < key.first
                                                                  : c.second < key.second;
                                    });
  return (it != end && it->first == first && it->second == second) ? it->composite : 0;
}

// Canonical ordering: a stable sort of every run of non-starters by class.
void ReorderCombiningMarks(std::vector<char32_t>* cps) {
  size_t i = 0;
  const size_t n = cps->size();
  while (i < n) {
    if (CombiningClass((*cps)[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < n && CombiningClass((*cps)[j]) != 0) ++j;
    if (j - i > 1) {
      std::stable_sort(cps->begin() + i, cps->begin() + j, [](char32_t a, char32_t b) {
        return CombiningClass(a) < CombiningClass(b);
      });
    }
    i = j;
  }
}

// Canonical composition (UAX #15): a character joins the last starter unless
// a character between them is a starter or has a class >= its own.
void ComposeAll(std::vector<char32_t>* cps) {
  std::vector<char32_t>& v = *cps;
  size_t out = 0;
  bool has_starter = false;
  size_t starter = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const char32_t c = v[i];
    const uint8_t ccc = CombiningClass(c);
    if (has_starter) {
      const bool adjacent = (out == starter + 1);
      const uint8_t last_ccc = adjacent ? 0 : CombiningClass(v[out - 1]);
      const bool blocked = !adjacent && (last_ccc == 0 || last_ccc >= ccc);
      if (!blocked) {
        const char32_t composite = Compose(v[starter], c);
        if (composite != 0) {
          v[starter] = composite;
          continue;
        }
      }
    }
    if (ccc == 0) {
      has_starter = true;
      starter = out;
    }
    v[out++] = c;
  }
  v.resize(out);
}

}  // namespace

GeneralCategory CategoryOf(char32_t cp) {
  const CodePointRange* r =
      FindRange(unicode_tables::kGeneralCategory, unicode_tables::kGeneralCategorySize, cp);
  return r ? static_cast<GeneralCategory>(r->value) : GeneralCategory::kCn;
}

uint8_t CombiningClass(char32_t cp) {
  if (cp < 0x300) return 0;
  const CodePointRange* r =
      FindRange(unicode_tables::kCombiningClass, unicode_tables::kCombiningClassSize, cp);
  return r ? r->value : 0;
}

bool IsWhitespace(char32_t cp) {
  if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20;
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool IsNumeric(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  const GeneralCategory c = CategoryOf(cp);
  return c == GeneralCategory::kNd || c == GeneralCategory::kNl || c == GeneralCategory::kNo;
}

bool IsWordChar(char32_t cp) {
  if (cp < 0x80) {
    return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
           cp == '_';
  }
  if (cp == 0x200C || cp == 0x200D) return true;  // Join_Control
  // Other_Alphabetic symbols (circled and squared Latin letters).
  if ((cp >= 0x24B6 && cp <= 0x24E9) || (cp >= 0x1F130 && cp <= 0x1F149) ||
      (cp >= 0x1F150 && cp <= 0x1F169) || (cp >= 0x1F170 && cp <= 0x1F189)) {
    return true;
  }
  switch (CategoryOf(cp)) {
    case GeneralCategory::kLu: case GeneralCategory::kLl: case GeneralCategory::kLt:
    case GeneralCategory::kLm: case GeneralCategory::kLo: case GeneralCategory::kNl:
    case GeneralCategory::kMn: case GeneralCategory::kMc: case GeneralCategory::kMe:
    case GeneralCategory::kNd: case GeneralCategory::kPc:
      return true;
    default:
      return false;
  }
}

bool IsPunctuation(char32_t cp) {
  if (cp < 0x80) {
    return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) ||
           (cp >= 0x7B && cp <= 0x7E);
  }
  switch (CategoryOf(cp)) {
    case GeneralCategory::kPc: case GeneralCategory::kPd: case GeneralCategory::kPs:
    case GeneralCategory::kPe: case GeneralCategory::kPi: case GeneralCategory::kPf:
    case GeneralCategory::kPo:
      return true;
    default:
      return false;
  }
}

bool IsCombiningMark(char32_t cp) {
  if (cp < 0x300) return false;
  const GeneralCategory c = CategoryOf(cp);
  return c == GeneralCategory::kMn || c == GeneralCategory::kMc || c == GeneralCategory::kMe;
}

std::string Normalize(std::string_view utf8, NormalizationForm form) {
  bool ascii = true;
  for (const char ch : utf8) {
    if (static_cast<uint8_t>(ch) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return std::string(utf8);
  const bool compatibility = form == NormalizationForm::kNFKC || form == NormalizationForm::kNFKD;
  const bool compose = form == NormalizationForm::kNFC || form == NormalizationForm::kNFKC;
  std::vector<char32_t> cps;
  cps.reserve(utf8.size());
  size_t i = 0;
  while (i < utf8.size()) Decompose(NextCodePoint(utf8, &i), compatibility, &cps);
  ReorderCombiningMarks(&cps);
  if (compose) ComposeAll(&cps);
  std::string out;
  out.reserve(utf8.size());
  for (const char32_t cp : cps) utf8::Append(&out, cp);
  return out;
}

std::string Lowercase(std::string_view utf8) {
  std::string out;
  out.reserve(utf8.size());
  size_t i = 0;
  while (i < utf8.size()) {
    const char32_t cp = NextCodePoint(utf8, &i);
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp));
      continue;
    }
    if (cp == 0x130) {  // LATIN CAPITAL LETTER I WITH DOT ABOVE -> i + COMBINING DOT ABOVE
      out.push_back('i');
      utf8::Append(&out, 0x307);
      continue;
    }
    const auto* table = unicode_tables::kLowercase;
    const auto* end = table + unicode_tables::kLowercaseSize;
    const auto* it = std::lower_bound(
        table, end, cp, [](const unicode_tables::CaseMapping& m, char32_t c) { return m.from < c; });
    utf8::Append(&out, (it != end && it->from == cp) ? it->to : cp);
  }
  return out;
}

char32_t FirstCodePoint(std::string_view s) {
  size_t i = 0;
  return NextCodePoint(s, &i);
}

char32_t LastCodePoint(std::string_view s) {
  size_t start = s.size() - 1;
  while (start > 0 && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80) --start;
  size_t i = start;
  return NextCodePoint(s, &i);
}

}  // namespace lserve::unicode
