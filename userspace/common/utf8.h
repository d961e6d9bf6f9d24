// UTF-8 well-formedness (RFC 3629: no overlong forms, no surrogates,
// nothing above U+10FFFF), for strings that must travel in JSON unchanged.
#pragma once

#include <string_view>

namespace skiff {

inline bool valid_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        size_t n;
        unsigned lo = 0x80, hi = 0xbf;  // allowed range of the second byte
        if (c < 0x80)
            n = 0;
        else if (c >= 0xc2 && c <= 0xdf)
            n = 1;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2, lo = (c == 0xe0 ? 0xa0 : 0x80), hi = (c == 0xed ? 0x9f : 0xbf);
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, lo = (c == 0xf0 ? 0x90 : 0x80), hi = (c == 0xf4 ? 0x8f : 0xbf);
        else
            return false;
        if (i + n >= s.size() && n > 0) return false;
        for (size_t k = 1; k <= n; ++k) {
            const auto b = static_cast<unsigned char>(s[i + k]);
            if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xbf)) return false;
        }
        i += n + 1;
    }
    return true;
}

}  // namespace skiff
