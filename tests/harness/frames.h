// Frames for the BPF program tests, byte by byte (no kernel involved):
//  - Internet checksums (RFC 1071);
//  - hand-built Ethernet/IPv4/ICMP/TCP/UDP frames;
//  - checks of a routed frame against its input, random and broken IPv4
//    headers.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "common/ipv4.h"

namespace skiff::bpftest {

using Bytes = std::vector<uint8_t>;

// ---------------------------------------------------------------------------
// Checksums (RFC 1071), over big-endian 16-bit words
// ---------------------------------------------------------------------------

inline uint32_t csum_add(uint32_t sum, const uint8_t* p, size_t n) {
    for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t{p[i]} << 8) | p[i + 1];
    if (n & 1) sum += uint32_t{p[n - 1]} << 8;
    return sum;
}

inline uint16_t csum_fold(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

// The checksum to store: ~ of the one's complement sum (field zeroed first).
inline uint16_t inet_checksum(const uint8_t* p, size_t n, uint32_t initial = 0) {
    return static_cast<uint16_t>(~csum_fold(csum_add(initial, p, n)));
}

// A header including its checksum field verifies when it sums to 0xffff.
inline bool checksum_verifies(const uint8_t* p, size_t n) { return csum_fold(csum_add(0, p, n)) == 0xffff; }

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

constexpr size_t kEthHlen = 14;
constexpr uint16_t kEthPIp = 0x0800;
constexpr uint16_t kEthPArp = 0x0806;
constexpr uint16_t kEthPIpv6 = 0x86dd;

constexpr uint8_t kTcp = IPPROTO_TCP;
constexpr uint8_t kUdp = IPPROTO_UDP;
constexpr uint8_t kIcmp = IPPROTO_ICMP;
constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpPsh = 0x08, kTcpAck = 0x10;

// IPv4 header byte offsets.
constexpr size_t kIpTos = 1, kIpTotLen = 2, kIpId = 4, kIpFrag = 6, kIpTtl = 8, kIpProto = 9, kIpCheck = 10,
                 kIpSaddr = 12, kIpDaddr = 16;

inline void put16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
inline void put32(uint8_t* p, uint32_t v) {
    put16(p, static_cast<uint16_t>(v >> 16));
    put16(p + 2, static_cast<uint16_t>(v));
}
inline uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint32_t get32(const uint8_t* p) { return (static_cast<uint32_t>(get16(p)) << 16) | get16(p + 2); }

inline Bytes ethernet(const MacAddr& dst, const MacAddr& src, uint16_t ethertype, const Bytes& payload) {
    Bytes f(kEthHlen);
    std::memcpy(f.data(), dst.data(), 6);
    std::memcpy(f.data() + 6, src.data(), 6);
    put16(f.data() + 12, ethertype);
    f.insert(f.end(), payload.begin(), payload.end());
    return f;
}

struct Ipv4Spec {
    Ipv4 src, dst;
    uint8_t ttl = 64;
    uint8_t tos = 0;
    uint16_t id = 0x1234;
    uint16_t frag_off = 0x4000;  // DF
    uint8_t protocol = IPPROTO_ICMP;
    Bytes options;  // a multiple of 4 bytes, at most 40
    Bytes l4;       // transport header and payload
};

// The IPv4 header (with options) of spec, checksum filled in.
inline Bytes ipv4_header(const Ipv4Spec& s) {
    const size_t hlen = 20 + s.options.size();
    Bytes h(20);
    h[0] = static_cast<uint8_t>(0x40 | (hlen / 4));
    h[kIpTos] = s.tos;
    put16(&h[kIpTotLen], static_cast<uint16_t>(hlen + s.l4.size()));
    put16(&h[kIpId], s.id);
    put16(&h[kIpFrag], s.frag_off);
    h[kIpTtl] = s.ttl;
    h[kIpProto] = s.protocol;
    put32(&h[kIpSaddr], s.src.value());
    put32(&h[kIpDaddr], s.dst.value());
    h.insert(h.end(), s.options.begin(), s.options.end());
    put16(&h[kIpCheck], inet_checksum(h.data(), h.size()));
    return h;
}

inline Bytes ipv4_packet(const Ipv4Spec& s) {
    Bytes p = ipv4_header(s);
    p.insert(p.end(), s.l4.begin(), s.l4.end());
    return p;
}

// src -> dst carrying l4; everything else Ipv4Spec's defaults.
inline Ipv4Spec ipv4_spec(Ipv4 src, Ipv4 dst, uint8_t protocol, Bytes l4, uint8_t ttl = 64) {
    Ipv4Spec s;
    s.src = src;
    s.dst = dst;
    s.ttl = ttl;
    s.protocol = protocol;
    s.l4 = std::move(l4);
    return s;
}

// Recompute the header checksum of an IPv4 header in place (after edits).
inline void ipv4_fix_checksum(uint8_t* hdr) {
    const size_t hlen = (hdr[0] & 0xf) * 4u;
    put16(hdr + kIpCheck, 0);
    put16(hdr + kIpCheck, inet_checksum(hdr, hlen));
}

inline uint32_t pseudo_header_sum(Ipv4 src, Ipv4 dst, uint8_t proto, size_t len) {
    uint8_t ph[12] = {};
    put32(ph, src.value());
    put32(ph + 4, dst.value());
    ph[9] = proto;
    put16(ph + 10, static_cast<uint16_t>(len));
    return csum_add(0, ph, sizeof(ph));
}

inline Bytes icmp_echo(uint16_t ident, uint16_t seq, const Bytes& payload) {
    Bytes m(8);
    m[0] = 8;  // echo request
    put16(&m[4], ident);
    put16(&m[6], seq);
    m.insert(m.end(), payload.begin(), payload.end());
    put16(&m[2], inet_checksum(m.data(), m.size()));
    return m;
}

inline Bytes udp(Ipv4 src, Ipv4 dst, uint16_t sport, uint16_t dport, const Bytes& payload) {
    Bytes u(8);
    put16(&u[0], sport);
    put16(&u[2], dport);
    put16(&u[4], static_cast<uint16_t>(8 + payload.size()));
    u.insert(u.end(), payload.begin(), payload.end());
    uint16_t c = inet_checksum(u.data(), u.size(), pseudo_header_sum(src, dst, IPPROTO_UDP, u.size()));
    put16(&u[6], c == 0 ? 0xffff : c);
    return u;
}

// A TCP segment with an ack number and options (a multiple of 4 bytes).
inline Bytes tcp_segment(Ipv4 src, Ipv4 dst, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack_seq,
                         uint8_t flags, const Bytes& options, const Bytes& payload) {
    Bytes t(20);
    put16(&t[0], sport);
    put16(&t[2], dport);
    put32(&t[4], seq);
    put32(&t[8], ack_seq);
    t[12] = static_cast<uint8_t>(((20 + options.size()) / 4) << 4);
    t[13] = flags;
    put16(&t[14], 64240);
    t.insert(t.end(), options.begin(), options.end());
    t.insert(t.end(), payload.begin(), payload.end());
    put16(&t[16], inet_checksum(t.data(), t.size(), pseudo_header_sum(src, dst, IPPROTO_TCP, t.size())));
    return t;
}

inline Bytes tcp(Ipv4 src, Ipv4 dst, uint16_t sport, uint16_t dport, uint32_t seq, uint8_t flags,
                 const Bytes& payload) {
    return tcp_segment(src, dst, sport, dport, seq, 0, flags, {}, payload);
}

inline Bytes pattern(size_t n, uint8_t seed = 0) {
    Bytes b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 7);
    return b;
}

inline std::string hex(const uint8_t* p, size_t n) {
    std::string s;
    char buf[4];
    for (size_t i = 0; i < n; ++i) {
        std::snprintf(buf, sizeof(buf), "%02x", p[i]);
        s += buf;
    }
    return s;
}
inline std::string hex(const Bytes& b) { return hex(b.data(), b.size()); }
inline std::string hex(const MacAddr& m) { return hex(m.data(), m.size()); }

// ---------------------------------------------------------------------------
// Frame checks and broken frames
// ---------------------------------------------------------------------------

// out (as long as in: callers check that first) is in after one routed hop
// at L3: same ethertype, TTL - 1 with a valid (fully recomputed) header
// checksum, nothing else changed in the IPv4 header; after it, what (the
// payload) unchanged.
inline void expect_ipv4_hop(const Bytes& in, const Bytes& out, const char* what) {
    EXPECT_EQ(get16(&out[12]), get16(&in[12])) << "ethertype";
    const uint8_t* ih = &in[kEthHlen];
    const uint8_t* oh = &out[kEthHlen];
    const size_t hlen = (ih[0] & 0xf) * 4u;
    EXPECT_EQ(oh[kIpTtl], ih[kIpTtl] - 1) << "TTL decremented by one";
    EXPECT_TRUE(checksum_verifies(oh, hlen)) << "IPv4 header checksum does not verify: " << hex(oh, hlen);
    Bytes expect_hdr(ih, ih + hlen);
    expect_hdr[kIpTtl]--;
    ipv4_fix_checksum(expect_hdr.data());
    EXPECT_EQ(hex(oh, hlen), hex(expect_hdr)) << "only TTL and checksum may change in the header";
    EXPECT_EQ(hex(out.data() + kEthHlen + hlen, out.size() - kEthHlen - hlen),
              hex(in.data() + kEthHlen + hlen, in.size() - kEthHlen - hlen))
        << what << " must be unchanged";
}

// Sets s.id so that the header checksum is 0x0000 (the one's complement
// "negative zero" that incremental updates can get wrong), of the header as
// built or, after_hop, of the header after a TTL decrement.
inline void set_id_for_zero_checksum(Ipv4Spec& s, bool after_hop) {
    for (uint32_t id = 0; id <= 0xffff; ++id) {
        s.id = static_cast<uint16_t>(id);
        Bytes h = ipv4_header(s);
        if (after_hop) {
            h[kIpTtl]--;
            ipv4_fix_checksum(h.data());
        }
        if (get16(&h[kIpCheck]) == 0) break;
        ASSERT_NE(id, 0xffffu) << "no ID gives a zero checksum";
    }
}

// A random IPv4 header, options and payload (any protocol) from src to dst,
// TTL 2..255, rnd(lo, hi) drawing uniformly; a random fragment offset only
// when random_frag_off (else DF).
template <class Rnd>
Ipv4Spec random_ipv4_spec(Rnd& rnd, Ipv4 src, Ipv4 dst, bool random_frag_off) {
    Ipv4Spec s;
    s.src = src;
    s.dst = dst;
    s.ttl = static_cast<uint8_t>(rnd(2, 255));
    s.tos = static_cast<uint8_t>(rnd(0, 255));
    s.id = static_cast<uint16_t>(rnd(0, 0xffff));
    if (random_frag_off) s.frag_off = static_cast<uint16_t>(rnd(0, 1) ? 0x4000 : rnd(0, 0xffff) & 0x1fff);
    s.protocol = static_cast<uint8_t>(rnd(0, 255));
    s.options = pattern(4 * rnd(0, 10), static_cast<uint8_t>(rnd(0, 255)));
    s.l4 = pattern(rnd(0, 64), static_cast<uint8_t>(rnd(0, 255)));
    return s;
}

struct FrameCase {
    std::string name;
    Bytes frame;
};

// Copies of good (Ethernet + an IPv4 packet of 40 bytes or more), each
// broken in one way, the header checksum kept valid so only the broken
// field is wrong: IHL 0, 1, 4 and beyond the frame, with ihl6_cut IHL 6 on a
// frame that ends after 20 bytes, total length > frame, 0xffff, < header, 0,
// and the given versions.
inline std::vector<FrameCase> malformed_ipv4(const Bytes& good, bool ihl6_cut, std::vector<uint8_t> versions) {
    std::vector<FrameCase> cases;
    auto edit = [&](std::string name, auto&& f) {
        Bytes b = good;
        f(b);
        if (b.size() >= kEthHlen + 20) {
            put16(&b[kEthHlen + kIpCheck], 0);
            put16(&b[kEthHlen + kIpCheck], inet_checksum(&b[kEthHlen], 20));
        }
        cases.push_back({std::move(name), std::move(b)});
    };
    for (uint8_t ihl : {0, 1, 4}) edit("IHL " + std::to_string(ihl), [&](Bytes& b) { b[kEthHlen] = 0x40 | ihl; });
    // IHL 15 = 60 bytes of header, but the frame has 14 + 40 bytes.
    edit("IHL beyond the frame", [&](Bytes& b) {
        b.resize(kEthHlen + 40);
        b[kEthHlen] = 0x4f;
        put16(&b[kEthHlen + kIpTotLen], 40);
    });
    if (ihl6_cut) {
        edit("IHL 6, frame ends after 20 bytes", [&](Bytes& b) {
            b.resize(kEthHlen + 20);
            b[kEthHlen] = 0x46;
            put16(&b[kEthHlen + kIpTotLen], 20);
        });
    }
    edit("total length > frame",
         [&](Bytes& b) { put16(&b[kEthHlen + kIpTotLen], static_cast<uint16_t>(b.size() - kEthHlen + 1)); });
    edit("total length 0xffff", [&](Bytes& b) { put16(&b[kEthHlen + kIpTotLen], 0xffff); });
    edit("total length < header", [&](Bytes& b) { put16(&b[kEthHlen + kIpTotLen], 19); });
    edit("total length 0", [&](Bytes& b) { put16(&b[kEthHlen + kIpTotLen], 0); });
    for (uint8_t v : versions)
        edit("version " + std::to_string(v), [&](Bytes& b) { b[kEthHlen] = static_cast<uint8_t>((v << 4) | 5); });
    return cases;
}

}  // namespace skiff::bpftest
