#include "ipv4.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstdio>

namespace skiff {

Result<Ipv4> Ipv4::parse(std::string_view s) {
    uint32_t v = 0;
    int parts = 0;
    size_t i = 0;
    while (parts < 4) {
        if (i >= s.size() || s[i] < '0' || s[i] > '9')
            return Error::invalid("invalid IPv4 address '" + std::string(s) + "'");
        size_t start = i;
        unsigned octet = 0;
        auto [p, ec] = std::from_chars(s.data() + i, s.data() + s.size(), octet);
        i = static_cast<size_t>(p - s.data());
        // No leading zeros (ambiguous octal) and at most 255.
        if (ec != std::errc{} || octet > 255 || (i - start > 1 && s[start] == '0'))
            return Error::invalid("invalid IPv4 address '" + std::string(s) + "'");
        v = (v << 8) | octet;
        ++parts;
        if (parts < 4) {
            if (i >= s.size() || s[i] != '.') return Error::invalid("invalid IPv4 address '" + std::string(s) + "'");
            ++i;
        }
    }
    if (i != s.size()) return Error::invalid("invalid IPv4 address '" + std::string(s) + "'");
    return Ipv4(v);
}

Ipv4 Ipv4::from_be(uint32_t be) { return Ipv4(ntohl(be)); }

uint32_t Ipv4::be() const { return htonl(v_); }

std::string Ipv4::str() const {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%u.%u.%u.%u", v_ >> 24, (v_ >> 16) & 0xff, (v_ >> 8) & 0xff, v_ & 0xff);
    return buf;
}

Result<Ipv4Prefix> Ipv4Prefix::parse(std::string_view s, bool allow_host_bits) {
    auto slash = s.find('/');
    if (slash == std::string_view::npos)
        return Error::invalid("invalid CIDR '" + std::string(s) + "': missing /prefix-length");
    auto addr = Ipv4::parse(s.substr(0, slash));
    if (!addr) return Error::invalid("invalid CIDR '" + std::string(s) + "': bad address");
    auto lens = s.substr(slash + 1);
    int len = -1;
    auto [p, ec] = std::from_chars(lens.data(), lens.data() + lens.size(), len);
    if (lens.empty() || ec != std::errc{} || p != lens.data() + lens.size() || len < 0 || len > 32 ||
        (lens.size() > 1 && lens[0] == '0'))
        return Error::invalid("invalid CIDR '" + std::string(s) + "': bad prefix length");
    Ipv4Prefix pfx(*addr, len);
    if (!allow_host_bits && pfx.network() != *addr)
        return Error::invalid("invalid CIDR '" + std::string(s) + "': host bits set (did you mean " +
                              pfx.network().str() + "/" + std::to_string(len) + "?)");
    return pfx;
}

bool Ipv4Prefix::overlaps(const Ipv4Prefix& o) const {
    int l = len_ < o.len_ ? len_ : o.len_;
    uint32_t m = l == 0 ? 0 : ~uint32_t{0} << (32 - l);
    return (addr_.value() & m) == (o.addr_.value() & m);
}

std::string Ipv4Prefix::str() const { return addr_.str() + "/" + std::to_string(len_); }

std::string mac_str(const MacAddr& m) {
    char buf[18];
    std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
    return buf;
}

Result<MacAddr> parse_mac(std::string_view s) {
    MacAddr m{};
    unsigned b[6];
    if (s.size() != 17 ||
        std::sscanf(std::string(s).c_str(), "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
        return Error::invalid("invalid MAC address '" + std::string(s) + "'");
    for (int i = 0; i < 6; ++i) m[i] = static_cast<uint8_t>(b[i]);
    return m;
}

}  // namespace skiff
