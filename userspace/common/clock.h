// The datapath's clock: bpf_ktime_get_ns() reads CLOCK_MONOTONIC, so the
// times in the conntrack and NAT maps (created, last seen) compare with
// this one.
#pragma once

#include <time.h>

#include <cstdint>

namespace skiff {

inline uint64_t monotonic_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace skiff
