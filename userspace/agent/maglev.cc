#include "maglev.h"

#include "common/hash.h"

namespace skiff::agent {

std::vector<uint32_t> maglev_table(const std::vector<std::string>& names, uint32_t size) {
    std::vector<uint32_t> table;
    if (names.empty() || size < 2) return table;
    const size_t n = names.size();
    std::vector<uint64_t> offset(n), skip(n), next(n, 0);
    for (size_t i = 0; i < n; ++i) {
        offset[i] = fnv1a64(names[i]) % size;
        skip[i] = fnv1a64(names[i], 0x9e3779b97f4a7c15ull) % (size - 1) + 1;
    }
    constexpr uint32_t kEmpty = UINT32_MAX;
    table.assign(size, kEmpty);
    uint32_t filled = 0;
    // Each backend in turn claims its next preferred empty entry.
    while (true) {
        for (size_t i = 0; i < n; ++i) {
            uint64_t c = (offset[i] + next[i] * skip[i]) % size;
            while (table[c] != kEmpty) {
                ++next[i];
                c = (offset[i] + next[i] * skip[i]) % size;
            }
            table[c] = static_cast<uint32_t>(i);
            ++next[i];
            if (++filled == size) return table;
        }
    }
}

}  // namespace skiff::agent
