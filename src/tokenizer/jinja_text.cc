#include "tokenizer/jinja_text.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/utf8.h"

namespace lserve::jinja {
namespace {

// Simple (one code point to one code point) case pairs. Each range lists
// upper-case code points whose lower-case partner is `cp + delta`, either for
// every code point in [first, last] (stride 1) or for every other one
// (stride 2, the alternating upper/lower layout of Latin Extended and
// Cyrillic).
struct CaseRange {
  char32_t first;
  char32_t last;
  int stride;
  int delta;
};

constexpr CaseRange kCaseRanges[] = {
    {0x41, 0x5A, 1, 32},        // ASCII
    {0xC0, 0xD6, 1, 32},        // Latin-1
    {0xD8, 0xDE, 1, 32},        //
    {0x100, 0x12E, 2, 1},       // Latin Extended-A
    {0x132, 0x136, 2, 1},       //
    {0x139, 0x147, 2, 1},       //
    {0x14A, 0x176, 2, 1},       //
    {0x179, 0x17D, 2, 1},       //
    {0x182, 0x184, 2, 1},       // Latin Extended-B (common part)
    {0x1A0, 0x1A4, 2, 1},       //
    {0x1CD, 0x1DB, 2, 1},       //
    {0x1DE, 0x1EE, 2, 1},       //
    {0x1F8, 0x21E, 2, 1},       //
    {0x386, 0x386, 1, 38},      // Greek
    {0x388, 0x38A, 1, 37},      //
    {0x38C, 0x38C, 1, 64},      //
    {0x38E, 0x38F, 1, 63},      //
    {0x391, 0x3A1, 1, 32},      //
    {0x3A3, 0x3AB, 1, 32},      //
    {0x3D8, 0x3EE, 2, 1},       //
    {0x400, 0x40F, 1, 80},      // Cyrillic
    {0x410, 0x42F, 1, 32},      //
    {0x460, 0x480, 2, 1},       //
    {0x48A, 0x4BE, 2, 1},       //
    {0x4C0, 0x4C0, 1, 15},      //
    {0x4C1, 0x4CD, 2, 1},       //
    {0x4D0, 0x52E, 2, 1},       //
    {0x531, 0x556, 1, 48},      // Armenian
    {0x10A0, 0x10C5, 1, 7264},  // Georgian
    {0x1E00, 0x1E94, 2, 1},     // Latin Extended Additional
    {0x1EA0, 0x1EFE, 2, 1},     //
    {0x1F08, 0x1F0F, 1, -8},    // Greek Extended (unaccented-length pairs)
    {0x1F18, 0x1F1D, 1, -8},    //
    {0x1F28, 0x1F2F, 1, -8},    //
    {0x1F38, 0x1F3F, 1, -8},    //
    {0x1F48, 0x1F4D, 1, -8},    //
    {0x1F68, 0x1F6F, 1, -8},    //
    {0x2160, 0x216F, 1, 16},    // Roman numerals
    {0x24B6, 0x24CF, 1, 26},    // circled letters
    {0x2C00, 0x2C2F, 1, 48},    // Glagolitic
    {0xA640, 0xA66C, 2, 1},     // Cyrillic Extended-B
    {0xA680, 0xA69A, 2, 1},     //
    {0xA722, 0xA72E, 2, 1},     // Latin Extended-D
    {0xA732, 0xA76E, 2, 1},     //
    {0xFF21, 0xFF3A, 1, 32},    // fullwidth Latin
    {0x10400, 0x10427, 1, 40},  // Deseret
};

bool InRange(const CaseRange& r, char32_t cp) {
  return cp >= r.first && cp <= r.last && (r.stride == 1 || (cp - r.first) % 2 == 0);
}

// Lower-case partner of an upper-case code point, or 0.
char32_t LowerOf(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : 0;
  if (cp == 0x178) return 0xFF;
  if (cp == 0x130) return 'i';  // simplification: Python gives "i\u0307"
  for (const CaseRange& r : kCaseRanges) {
    if (InRange(r, cp)) return static_cast<char32_t>(static_cast<int64_t>(cp) + r.delta);
  }
  return 0;
}

// Upper-case partner of a lower-case code point, or 0.
char32_t UpperOf(char32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') ? cp - 32 : 0;
  switch (cp) {
    case 0xFF: return 0x178;
    case 0xB5: return 0x39C;
    case 0x131: return 'I';
    case 0x17F: return 'S';
    case 0x3C2: return 0x3A3;
    default: break;
  }
  for (const CaseRange& r : kCaseRanges) {
    int64_t upper = static_cast<int64_t>(cp) - r.delta;
    if (upper >= 0 && InRange(r, static_cast<char32_t>(upper))) return static_cast<char32_t>(upper);
  }
  return 0;
}

// Full upper-case mapping into `out` (handles the expanding ß -> SS).
void AppendUpper(std::u32string* out, char32_t cp) {
  if (cp == 0xDF) {
    out->append(U"SS");
    return;
  }
  char32_t u = UpperOf(cp);
  out->push_back(u ? u : cp);
}

void AppendLower(std::u32string* out, char32_t cp) {
  char32_t l = LowerOf(cp);
  out->push_back(l ? l : cp);
}

bool IsCased(char32_t cp) { return LowerOf(cp) != 0 || UpperOf(cp) != 0 || cp == 0xDF; }

bool IsPrintable(char32_t cp) {
  if (cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD) return false;
  if (cp < 0x600) return true;
  if ((cp >= 0x600 && cp <= 0x605) || cp == 0x61C || cp == 0x6DD || cp == 0x70F) return false;
  if (cp == 0x1680 || cp == 0x180E) return false;
  if ((cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F)) return false;
  if ((cp >= 0x205F && cp <= 0x2064) || (cp >= 0x2066 && cp <= 0x206F)) return false;
  if (cp == 0x3000 || (cp >= 0xD800 && cp <= 0xF8FF) || cp == 0xFEFF) return false;
  if ((cp >= 0xFFF9 && cp <= 0xFFFB) || cp == 0xFFFE || cp == 0xFFFF) return false;
  if ((cp >= 0xE0000 && cp <= 0xE0FFF) || cp >= 0xF0000) return false;
  return true;
}

template <typename MapFn>
std::string MapCodePoints(std::string_view s, MapFn fn) {
  std::u32string out;
  out.reserve(s.size());
  for (char32_t cp : DecodeCodePoints(s)) fn(&out, cp);
  return EncodeCodePoints(out);
}

}  // namespace

bool IsPySpace(char32_t cp) {
  switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D:
    case 0x1C: case 0x1D: case 0x1E: case 0x1F: case 0x20:
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

bool IsPyLineBreak(char32_t cp) {
  switch (cp) {
    case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x1C: case 0x1D: case 0x1E:
    case 0x85: case 0x2028: case 0x2029:
      return true;
    default:
      return false;
  }
}

bool IsPyDigit(char32_t cp) {
  if (cp >= '0' && cp <= '9') return true;
  if (cp == 0xB2 || cp == 0xB3 || cp == 0xB9) return true;
  return (cp >= 0x660 && cp <= 0x669) || (cp >= 0x6F0 && cp <= 0x6F9) || (cp >= 0x966 && cp <= 0x96F) ||
         (cp >= 0xFF10 && cp <= 0xFF19);
}

bool IsPyAlpha(char32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  if (IsCased(cp)) return true;
  if (cp == 0xAA || cp == 0xBA) return true;
  if (cp >= 0xC0 && cp <= 0x24F) return cp != 0xD7 && cp != 0xF7;
  return (cp >= 0x370 && cp <= 0x3FF && cp != 0x37E && cp != 0x387) || (cp >= 0x400 && cp <= 0x481) ||
         (cp >= 0x48A && cp <= 0x52F) || (cp >= 0x531 && cp <= 0x587) || (cp >= 0x5D0 && cp <= 0x5EA) ||
         (cp >= 0x620 && cp <= 0x64A) || (cp >= 0x671 && cp <= 0x6D3) || (cp >= 0x904 && cp <= 0x939) ||
         (cp >= 0xE01 && cp <= 0xE30) || (cp >= 0x10A0 && cp <= 0x10FF) || (cp >= 0x1100 && cp <= 0x11FF) ||
         (cp >= 0x1E00 && cp <= 0x1FFF) || (cp >= 0x3041 && cp <= 0x3096) || (cp >= 0x30A1 && cp <= 0x30FA) ||
         (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xAC00 && cp <= 0xD7A3) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0xFF21 && cp <= 0xFF3A) || (cp >= 0xFF41 && cp <= 0xFF5A) ||
         (cp >= 0x20000 && cp <= 0x2FA1F);
}

bool IsPyUpper(char32_t cp) { return LowerOf(cp) != 0; }
bool IsPyLower(char32_t cp) { return UpperOf(cp) != 0 || cp == 0xDF; }

std::u32string DecodeCodePoints(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out.push_back(c);
      ++i;
      continue;
    }
    size_t len = 1;
    out.push_back(utf8::DecodeOne(s, i, &len));
    i += len == 0 ? 1 : len;
  }
  return out;
}

std::string EncodeCodePoints(std::u32string_view cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t cp : cps) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else {
      utf8::Append(&out, cp);
    }
  }
  return out;
}

size_t CodePointCount(std::string_view s) {
  size_t count = 0;
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
    } else {
      size_t len = 1;
      utf8::DecodeOne(s, i, &len);
      i += len == 0 ? 1 : len;
    }
    ++count;
  }
  return count;
}

std::vector<size_t> CodePointOffsets(std::string_view s) {
  std::vector<size_t> offsets;
  offsets.reserve(s.size() + 1);
  size_t i = 0;
  while (i < s.size()) {
    offsets.push_back(i);
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
    } else {
      size_t len = 1;
      utf8::DecodeOne(s, i, &len);
      i += len == 0 ? 1 : len;
    }
  }
  offsets.push_back(s.size());
  return offsets;
}

std::string PyStrip(std::string_view s, StripSide side, const std::string* chars) {
  std::u32string cps = DecodeCodePoints(s);
  std::u32string strip_set;
  if (chars != nullptr) strip_set = DecodeCodePoints(*chars);
  auto strippable = [&](char32_t cp) {
    return chars == nullptr ? IsPySpace(cp) : strip_set.find(cp) != std::u32string::npos;
  };
  size_t begin = 0;
  size_t end = cps.size();
  if (side != StripSide::kRight) {
    while (begin < end && strippable(cps[begin])) ++begin;
  }
  if (side != StripSide::kLeft) {
    while (end > begin && strippable(cps[end - 1])) --end;
  }
  return EncodeCodePoints(std::u32string_view(cps).substr(begin, end - begin));
}

std::string PyUpper(std::string_view s) { return MapCodePoints(s, AppendUpper); }
std::string PyLower(std::string_view s) { return MapCodePoints(s, AppendLower); }

std::string PySwapCase(std::string_view s) {
  return MapCodePoints(s, [](std::u32string* out, char32_t cp) {
    if (IsPyUpper(cp)) {
      AppendLower(out, cp);
    } else {
      AppendUpper(out, cp);
    }
  });
}

std::string PyTitle(std::string_view s) {
  bool previous_cased = false;
  return MapCodePoints(s, [&](std::u32string* out, char32_t cp) {
    if (previous_cased) {
      AppendLower(out, cp);
    } else if (cp == 0xDF) {
      out->append(U"Ss");
    } else {
      AppendUpper(out, cp);
    }
    previous_cased = IsCased(cp);
  });
}

std::string PyCapitalize(std::string_view s) {
  bool first = true;
  return MapCodePoints(s, [&](std::u32string* out, char32_t cp) {
    if (first) {
      if (cp == 0xDF) {
        out->append(U"Ss");
      } else {
        AppendUpper(out, cp);
      }
      first = false;
    } else {
      AppendLower(out, cp);
    }
  });
}

std::vector<std::string> PySplitLines(std::string_view s) {
  std::u32string cps = DecodeCodePoints(s);
  std::vector<std::string> lines;
  size_t start = 0;
  size_t i = 0;
  while (i < cps.size()) {
    if (!IsPyLineBreak(cps[i])) {
      ++i;
      continue;
    }
    lines.push_back(EncodeCodePoints(std::u32string_view(cps).substr(start, i - start)));
    if (cps[i] == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ++i;
    ++i;
    start = i;
  }
  if (start < cps.size()) lines.push_back(EncodeCodePoints(std::u32string_view(cps).substr(start)));
  return lines;
}

std::vector<std::string> PySplitWhitespace(std::string_view s, int64_t max_split) {
  std::u32string cps = DecodeCodePoints(s);
  std::vector<std::string> parts;
  size_t i = 0;
  const size_t n = cps.size();
  while (i < n) {
    while (i < n && IsPySpace(cps[i])) ++i;
    if (i == n) break;
    if (max_split >= 0 && static_cast<int64_t>(parts.size()) == max_split) {
      parts.push_back(EncodeCodePoints(std::u32string_view(cps).substr(i)));
      break;
    }
    size_t start = i;
    while (i < n && !IsPySpace(cps[i])) ++i;
    parts.push_back(EncodeCodePoints(std::u32string_view(cps).substr(start, i - start)));
  }
  return parts;
}

std::vector<std::string> PyRSplitWhitespace(std::string_view s, int64_t max_split) {
  std::u32string cps = DecodeCodePoints(s);
  std::vector<std::string> parts;
  size_t i = cps.size();
  while (i > 0) {
    while (i > 0 && IsPySpace(cps[i - 1])) --i;
    if (i == 0) break;
    if (max_split >= 0 && static_cast<int64_t>(parts.size()) == max_split) {
      parts.push_back(EncodeCodePoints(std::u32string_view(cps).substr(0, i)));
      break;
    }
    size_t end = i;
    while (i > 0 && !IsPySpace(cps[i - 1])) --i;
    parts.push_back(EncodeCodePoints(std::u32string_view(cps).substr(i, end - i)));
  }
  return std::vector<std::string>(parts.rbegin(), parts.rend());
}

void AppendPyHexEscape(char32_t cp, std::string* out) {
  char buf[16];
  if (cp < 0x100) {
    std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(cp));
  } else if (cp < 0x10000) {
    std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(cp));
  } else {
    std::snprintf(buf, sizeof(buf), "\\U%08x", static_cast<unsigned>(cp));
  }
  out->append(buf);
}

std::string PyStrRepr(std::string_view s) {
  bool has_single = s.find('\'') != std::string_view::npos;
  bool has_double = s.find('"') != std::string_view::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back(quote);
  for (char32_t cp : DecodeCodePoints(s)) {
    if (cp == static_cast<char32_t>(quote) || cp == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(cp));
    } else if (cp == '\n') {
      out.append("\\n");
    } else if (cp == '\r') {
      out.append("\\r");
    } else if (cp == '\t') {
      out.append("\\t");
    } else if (!IsPrintable(cp)) {
      AppendPyHexEscape(cp, &out);
    } else if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else {
      utf8::Append(&out, cp);
    }
  }
  out.push_back(quote);
  return out;
}

std::string PyFloatRepr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  auto result = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(result.ptr - buf));
  std::string out;
  if (!sci.empty() && sci[0] == '-') {
    out.push_back('-');
    sci.remove_prefix(1);
  }
  // sci is "d[.ddd]e[+-]XX": collect the significant digits and the exponent.
  size_t e_pos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_pos)) {
    if (c != '.') digits.push_back(c);
  }
  int exponent = 0;
  std::from_chars(sci.data() + e_pos + 1 + (sci[e_pos + 1] == '+' ? 1 : 0), sci.data() + sci.size(), exponent);
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  // Python's float_repr_style 'short': fixed notation when the decimal point
  // position decpt (value = 0.DIGITS * 10^decpt) satisfies -4 < decpt <= 16.
  int decpt = exponent + 1;
  int ndigits = static_cast<int>(digits.size());
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out.append("0.");
      out.append(static_cast<size_t>(-decpt), '0');
      out.append(digits);
    } else if (decpt >= ndigits) {
      out.append(digits);
      out.append(static_cast<size_t>(decpt - ndigits), '0');
      out.append(".0");
    } else {
      out.append(digits, 0, static_cast<size_t>(decpt));
      out.push_back('.');
      out.append(digits, static_cast<size_t>(decpt), std::string::npos);
    }
    return out;
  }
  out.push_back(digits[0]);
  if (ndigits > 1) {
    out.push_back('.');
    out.append(digits, 1, std::string::npos);
  }
  int exp10 = decpt - 1;
  std::snprintf(buf, sizeof(buf), "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
  out.append(buf);
  return out;
}

std::string HtmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out.append("&amp;"); break;
      case '<': out.append("&lt;"); break;
      case '>': out.append("&gt;"); break;
      case '\'': out.append("&#39;"); break;
      case '"': out.append("&#34;"); break;
      default: out.push_back(c);
    }
  }
  return out;
}

}  // namespace lserve::jinja
