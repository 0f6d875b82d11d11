// Internal to formats: pieces of error-message text shared by the parsers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lserve::formats_detail {

// "'s'" (built by appending: GCC 12 warns falsely on "'" + std::string).
inline std::string Quoted(std::string_view s) {
  std::string q;
  q.reserve(s.size() + 2);
  q += '\'';
  q += s;
  q += '\'';
  return q;
}

// A shape as "[2, 3, 4]".
inline std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace lserve::formats_detail
