// Small non-cryptographic hashing (FNV-1a, 64-bit) for deterministic names.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace skiff {

constexpr uint64_t fnv1a64(std::string_view s, uint64_t h = 0xcbf29ce484222325ull) {
    for (unsigned char c : s) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    return h;
}

inline std::string hex_digits(uint64_t v, int n) {
    char buf[17];
    std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
    return std::string(buf + 16 - n);
}

}  // namespace skiff
