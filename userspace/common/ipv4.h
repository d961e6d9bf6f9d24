// IPv4 addresses and prefixes, parsed strictly.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "result.h"

namespace skiff {

// An IPv4 address held in host byte order (value() == 0x0a000001 for 10.0.0.1).
class Ipv4 {
public:
    constexpr Ipv4() = default;
    constexpr explicit Ipv4(uint32_t host_order) : v_(host_order) {}

    static Result<Ipv4> parse(std::string_view s);
    static Ipv4 from_be(uint32_t be);

    uint32_t value() const { return v_; }
    uint32_t be() const;  // network byte order, as stored in BPF maps
    std::string str() const;

    auto operator<=>(const Ipv4&) const = default;

private:
    uint32_t v_ = 0;
};

// A prefix such as 10.244.1.0/24. Host bits must be zero unless parsed with
// allow_host_bits (then it keeps the address, e.g. "10.244.1.5/24").
class Ipv4Prefix {
public:
    Ipv4Prefix() = default;
    Ipv4Prefix(Ipv4 addr, int len) : addr_(addr), len_(len) {}

    static Result<Ipv4Prefix> parse(std::string_view s, bool allow_host_bits = false);

    Ipv4 addr() const { return addr_; }
    int len() const { return len_; }
    Ipv4 network() const { return Ipv4(addr_.value() & mask()); }
    Ipv4 broadcast() const { return Ipv4(network().value() | ~mask()); }
    uint32_t mask() const { return len_ == 0 ? 0 : ~uint32_t{0} << (32 - len_); }
    uint64_t size() const { return uint64_t{1} << (32 - len_); }
    bool contains(Ipv4 ip) const { return (ip.value() & mask()) == network().value(); }
    bool overlaps(const Ipv4Prefix& o) const;
    std::string str() const;

    auto operator<=>(const Ipv4Prefix&) const = default;

private:
    Ipv4 addr_;
    int len_ = 0;
};

using MacAddr = std::array<uint8_t, 6>;
std::string mac_str(const MacAddr& mac);
Result<MacAddr> parse_mac(std::string_view s);

}  // namespace skiff
