// CNI spec versions this plugin speaks.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace skiff::cni {

inline constexpr std::array<std::string_view, 5> kSupportedVersions = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
inline constexpr std::string_view kLatestVersion = "1.1.0";

inline bool version_supported(std::string_view v) {
    for (auto s : kSupportedVersions)
        if (s == v) return true;
    return false;
}

// Semantic comparison of "major.minor.patch"; unparsable sorts first.
int version_compare(std::string_view a, std::string_view b);
inline bool version_at_least(std::string_view v, std::string_view min) { return version_compare(v, min) >= 0; }

}  // namespace skiff::cni
