// Helpers for the service load-balancing tests (service_test.cc), on top of
// bpf_test_env.h:
//  - raw access to the pinned skiff_services / skiff_backends / skiff_ct
//    maps (bpf_map_update_elem etc. on open_pinned_map() fds), with the key
//    and value layouts of maps/skiff_maps.h;
//  - transport checksum recomputation over the pseudo header, to build the
//    frame a translation is expected to produce and compare it byte for byte.
#pragma once

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <optional>
#include <string>
#include <vector>

#include "bpf_test_env.h"

namespace skiff::bpftest {

// ---------------------------------------------------------------------------
// Map access
// ---------------------------------------------------------------------------

inline skiff_ct_key ct_key(Ipv4 saddr, Ipv4 daddr, uint16_t sport, uint16_t dport, uint8_t proto,
                           uint8_t dir) {
    skiff_ct_key k{};
    k.saddr = saddr.be();
    k.daddr = daddr.be();
    k.sport = htons(sport);
    k.dport = htons(dport);
    k.proto = proto;
    k.dir = dir;
    return k;
}

inline std::string describe(const skiff_ct_key& k) {
    return Ipv4::from_be(k.saddr).str() + ":" + std::to_string(ntohs(k.sport)) + " -> " +
           Ipv4::from_be(k.daddr).str() + ":" + std::to_string(ntohs(k.dport)) + " proto " +
           std::to_string(k.proto) + (k.dir == SKIFF_CT_FORWARD ? " FORWARD" : k.dir == SKIFF_CT_REPLY ? " REPLY" : " dir?");
}

inline std::string describe(const skiff_ct_value& v) {
    return "backend " + std::to_string(v.backend_id) + " nat " + Ipv4::from_be(v.nat_addr).str() + ":" +
           std::to_string(ntohs(v.nat_port)) + " revnat " + std::to_string(v.revnat_id) + " pkts " +
           std::to_string(v.packets) + " bytes " + std::to_string(v.bytes) + " flags " +
           std::to_string(v.flags);
}

// The service, backend and conntrack maps of one pin dir.
class ServiceMaps {
public:
    Status open(const std::string& pin_dir) {
        SKIFF_ASSIGN_OR_RETURN(services_, bpf::open_pinned_map(pin_dir, SKIFF_MAP_SERVICES));
        SKIFF_ASSIGN_OR_RETURN(backends_, bpf::open_pinned_map(pin_dir, SKIFF_MAP_BACKENDS));
        SKIFF_ASSIGN_OR_RETURN(ct_, bpf::open_pinned_map(pin_dir, SKIFF_MAP_CT));
        return {};
    }
    void close() {
        services_.reset();
        backends_.reset();
        ct_.reset();
    }

    static skiff_service_key svc_key(Ipv4 vip, uint16_t port, uint8_t proto, uint16_t slot) {
        skiff_service_key k{};
        k.vip = vip.be();
        k.port = htons(port);
        k.proto = proto;
        k.slot = slot;
        return k;
    }

    // Frontend slot 0 {count, revnat_id, flags} and slots 1..n -> ids.
    Status set_service(Ipv4 vip, uint16_t port, uint8_t proto, const std::vector<uint32_t>& ids,
                       uint16_t revnat_id = 1, uint32_t flags = 0) {
        for (size_t i = 0; i < ids.size(); ++i) {
            skiff_service_key k = svc_key(vip, port, proto, static_cast<uint16_t>(i + 1));
            skiff_service_value v{};
            v.backend_id = ids[i];
            if (bpf_map_update_elem(services_.get(), &k, &v, BPF_ANY) != 0)
                return Error::errno_("services: update slot " + std::to_string(i + 1));
        }
        skiff_service_key k = svc_key(vip, port, proto, 0);
        skiff_service_value v{};
        v.count = static_cast<uint16_t>(ids.size());
        v.revnat_id = revnat_id;
        v.flags = flags;
        if (bpf_map_update_elem(services_.get(), &k, &v, BPF_ANY) != 0)
            return Error::errno_("services: update frontend");
        return {};
    }

    Status delete_service_slot(Ipv4 vip, uint16_t port, uint8_t proto, uint16_t slot) {
        skiff_service_key k = svc_key(vip, port, proto, slot);
        if (bpf_map_delete_elem(services_.get(), &k) != 0) return Error::errno_("services: delete slot");
        return {};
    }

    Status set_backend(uint32_t id, Ipv4 ip, uint16_t port, uint8_t proto) {
        skiff_backend b{};
        b.ip = ip.be();
        b.port = htons(port);
        b.proto = proto;
        if (bpf_map_update_elem(backends_.get(), &id, &b, BPF_ANY) != 0)
            return Error::errno_("backends: update " + std::to_string(id));
        return {};
    }

    Status delete_backend(uint32_t id) {
        if (bpf_map_delete_elem(backends_.get(), &id) != 0)
            return Error::errno_("backends: delete " + std::to_string(id));
        return {};
    }

    Status put_ct(const skiff_ct_key& k, const skiff_ct_value& v) {
        if (bpf_map_update_elem(ct_.get(), &k, &v, BPF_ANY) != 0) return Error::errno_("ct: update");
        return {};
    }

    std::optional<skiff_ct_value> ct(const skiff_ct_key& k) const {
        skiff_ct_value v{};
        if (bpf_map_lookup_elem(ct_.get(), &k, &v) != 0) return std::nullopt;
        return v;
    }

    std::vector<std::pair<skiff_ct_key, skiff_ct_value>> ct_all() const {
        std::vector<std::pair<skiff_ct_key, skiff_ct_value>> out;
        skiff_ct_key cur{}, next{};
        const void* prev = nullptr;
        while (bpf_map_get_next_key(ct_.get(), prev, &next) == 0) {
            skiff_ct_value v{};
            if (bpf_map_lookup_elem(ct_.get(), &next, &v) == 0) out.emplace_back(next, v);
            cur = next;
            prev = &cur;
        }
        return out;
    }

    std::string ct_dump() const {
        std::string s;
        for (const auto& [k, v] : ct_all()) s += "\n  " + describe(k) + " => " + describe(v);
        return s.empty() ? "(ct empty)" : s;
    }

private:
    UniqueFd services_, backends_, ct_;
};

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

constexpr size_t kTcpCheck = 16, kUdpCheck = 6;

// Offsets in an Ethernet frame carrying IPv4.
inline size_t l4_offset(const Bytes& f) { return kEthHlen + (f[kEthHlen] & 0xfu) * 4u; }
inline size_t ip_end(const Bytes& f) { return kEthHlen + get16(&f[kEthHlen + kIpTotLen]); }

// Recompute the TCP or UDP checksum of a frame from scratch (pseudo header
// from the current addresses). A UDP checksum of 0 ("none") stays 0; a
// computed UDP checksum of 0 is sent as 0xffff (RFC 768).
inline void l4_fix_checksum(Bytes& f) {
    const uint8_t* ip = &f[kEthHlen];
    const uint8_t proto = ip[kIpProto];
    const size_t off = l4_offset(f);
    const size_t len = ip_end(f) - off;
    const size_t check = off + (proto == IPPROTO_TCP ? kTcpCheck : kUdpCheck);
    if (proto == IPPROTO_UDP && get16(&f[check]) == 0) return;
    put16(&f[check], 0);
    Ipv4 src(static_cast<uint32_t>(get16(ip + kIpSaddr)) << 16 | get16(ip + kIpSaddr + 2));
    Ipv4 dst(static_cast<uint32_t>(get16(ip + kIpDaddr)) << 16 | get16(ip + kIpDaddr + 2));
    uint16_t c = inet_checksum(&f[off], len, pseudo_header_sum(src, dst, proto, len));
    if (proto == IPPROTO_UDP && c == 0) c = 0xffff;
    put16(&f[check], c);
}

// The transport checksum of a frame verifies over the pseudo header.
inline bool l4_checksum_verifies(const Bytes& f) {
    const uint8_t* ip = &f[kEthHlen];
    const size_t off = l4_offset(f);
    const size_t len = ip_end(f) - off;
    Ipv4 src(static_cast<uint32_t>(get16(ip + kIpSaddr)) << 16 | get16(ip + kIpSaddr + 2));
    Ipv4 dst(static_cast<uint32_t>(get16(ip + kIpDaddr)) << 16 | get16(ip + kIpDaddr + 2));
    return csum_fold(csum_add(pseudo_header_sum(src, dst, ip[kIpProto], len), &f[off], len)) == 0xffff;
}

inline Ipv4 frame_saddr(const Bytes& f) {
    return Ipv4(static_cast<uint32_t>(get16(&f[kEthHlen + kIpSaddr])) << 16 | get16(&f[kEthHlen + kIpSaddr + 2]));
}
inline Ipv4 frame_daddr(const Bytes& f) {
    return Ipv4(static_cast<uint32_t>(get16(&f[kEthHlen + kIpDaddr])) << 16 | get16(&f[kEthHlen + kIpDaddr + 2]));
}
inline uint16_t frame_sport(const Bytes& f) { return get16(&f[l4_offset(f)]); }
inline uint16_t frame_dport(const Bytes& f) { return get16(&f[l4_offset(f) + 2]); }

// What a translating, forwarding hop into the pod behind dst is expected to
// make of in: MACs of dst's veth pair, TTL - 1, the given addresses and
// ports, IPv4 and transport checksums recomputed from scratch.
inline Bytes expected_translated(const Bytes& in, const TestVeth& dst, Ipv4 saddr, uint16_t sport, Ipv4 daddr,
                                 uint16_t dport) {
    Bytes f = in;
    std::memcpy(&f[0], dst.pod.mac.data(), 6);
    std::memcpy(&f[6], dst.host.mac.data(), 6);
    f[kEthHlen + kIpTtl]--;
    put32(&f[kEthHlen + kIpSaddr], saddr.value());
    put32(&f[kEthHlen + kIpDaddr], daddr.value());
    ipv4_fix_checksum(&f[kEthHlen]);
    const size_t off = l4_offset(f);
    put16(&f[off], sport);
    put16(&f[off + 2], dport);
    l4_fix_checksum(f);
    return f;
}

}  // namespace skiff::bpftest
