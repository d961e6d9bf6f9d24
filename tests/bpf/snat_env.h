// Helpers for the masquerade (SNAT) tests (snat_test.cc), on top of
// remote_env.h / service_features_env.h:
//  - two "outside" hosts on the uplink's subnet with permanent neighbour
//    entries (192.168.1.200 and .201), so that FIB lookups toward them
//    succeed with a MAC (bpf_redirect, not bpf_redirect_neigh). The
//    addresses differ from service_features_test.cc's 192.168.1.100/.101,
//    which must stay without a neighbour entry. Created once, in the
//    process' private netns only, and gone with it;
//  - raw access to the pinned skiff_snat, skiff_nomasq and skiff_config maps;
//  - frames: ICMP echo replies, ICMP errors quoting a packet, and the exact
//    frames a translation is expected to produce (checksums from scratch).
#pragma once

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "remote_env.h"
#include "service_features_env.h"

namespace skiff::bpftest {

// Outside the cluster, on the uplink's subnet, neighbours known.
inline const Ipv4 kSnatOutside(0xc0a801c8);   // 192.168.1.200
inline const Ipv4 kSnatOutside2(0xc0a801c9);  // 192.168.1.201
inline const MacAddr kSnatOutsideMac{0x02, 0x5c, 0x1f, 0x00, 0x01, 0xc8};
inline const MacAddr kSnatOutside2Mac{0x02, 0x5c, 0x1f, 0x00, 0x01, 0xc9};

namespace detail {

inline Status setup_snat_net() {
    const auto& rn = remote_net();
    if (!rn.ok()) return rn.error().wrap("no remote underlay");
    // Never touch anything unless we are in the private namespace.
    SKIFF_ASSIGN_OR_RETURN(auto now, current_netns_id());
    if (now.first == rn->base->root_ns_dev && now.second == rn->base->root_ns_ino)
        return Error::invalid("still in the root netns");
    SKIFF_ASSIGN_OR_RETURN(Netlink nl, Netlink::open());
    SKIFF_TRY(nl.add_neighbor(rn->uplink.host.ifindex, kSnatOutside, kSnatOutsideMac));
    SKIFF_TRY(nl.add_neighbor(rn->uplink.host.ifindex, kSnatOutside2, kSnatOutside2Mac));
    return ok();
}

}  // namespace detail

// Set up on first use; callers must check ok().
inline const Status& snat_net() {
    static const Status s = detail::setup_snat_net();
    return s;
}

// ---------------------------------------------------------------------------
// Maps
// ---------------------------------------------------------------------------

inline std::string nat_str(const skiff_ct_key& k) {
    return Ipv4::from_be(k.saddr).str() + ":" + std::to_string(ntohs(k.sport)) + " -> " +
           Ipv4::from_be(k.daddr).str() + ":" + std::to_string(ntohs(k.dport)) + " proto " +
           std::to_string(k.proto) +
           (k.dir == SKIFF_SNAT_EGRESS ? " EGRESS" : k.dir == SKIFF_SNAT_INGRESS ? " INGRESS" : " dir?");
}

inline std::string nat_str(const skiff_nat_value& v) {
    return Ipv4::from_be(v.addr).str() + ":" + std::to_string(ntohs(v.port)) + " pkts " +
           std::to_string(v.packets) + " bytes " + std::to_string(v.bytes) + " flags " + std::to_string(v.flags);
}

class SnatMaps {
public:
    Status open(const std::string& pin_dir) {
        SKIFF_ASSIGN_OR_RETURN(snat_, bpf::open_pinned_map(pin_dir, SKIFF_MAP_SNAT));
        SKIFF_ASSIGN_OR_RETURN(nomasq_, bpf::open_pinned_map(pin_dir, SKIFF_MAP_NOMASQ));
        SKIFF_ASSIGN_OR_RETURN(config_, bpf::open_pinned_map(pin_dir, SKIFF_MAP_CONFIG));
        return {};
    }
    void close() {
        snat_.reset();
        nomasq_.reset();
        config_.reset();
    }

    Status set_config(const skiff_config& c) {
        uint32_t zero = 0;
        if (bpf_map_update_elem(config_.get(), &zero, &c, BPF_ANY) != 0) return Error::errno_("config: update");
        return {};
    }

    static skiff_node_key lpm_key(const Ipv4Prefix& p) {
        skiff_node_key k{};
        k.prefixlen = static_cast<uint32_t>(p.len());
        k.ip = p.network().be();
        return k;
    }
    Status add_nomasq(const Ipv4Prefix& p) {
        skiff_node_key k = lpm_key(p);
        uint32_t one = 1;
        if (bpf_map_update_elem(nomasq_.get(), &k, &one, BPF_ANY) != 0)
            return Error::errno_("nomasq: add " + p.str());
        return {};
    }
    Status del_nomasq(const Ipv4Prefix& p) {
        skiff_node_key k = lpm_key(p);
        if (bpf_map_delete_elem(nomasq_.get(), &k) != 0) return Error::errno_("nomasq: delete " + p.str());
        return {};
    }

    std::optional<skiff_nat_value> get(const skiff_ct_key& k) const {
        skiff_nat_value v{};
        if (bpf_map_lookup_elem(snat_.get(), &k, &v) != 0) return std::nullopt;
        return v;
    }
    Status put(const skiff_ct_key& k, const skiff_nat_value& v) {
        if (bpf_map_update_elem(snat_.get(), &k, &v, BPF_ANY) != 0) return Error::errno_("snat: update");
        return {};
    }
    Status del(const skiff_ct_key& k) {
        if (bpf_map_delete_elem(snat_.get(), &k) != 0) return Error::errno_("snat: delete " + nat_str(k));
        return {};
    }

    std::vector<std::pair<skiff_ct_key, skiff_nat_value>> all() const {
        std::vector<std::pair<skiff_ct_key, skiff_nat_value>> out;
        skiff_ct_key cur{}, next{};
        const void* prev = nullptr;
        while (bpf_map_get_next_key(snat_.get(), prev, &next) == 0) {
            skiff_nat_value v{};
            if (bpf_map_lookup_elem(snat_.get(), &next, &v) == 0) out.emplace_back(next, v);
            cur = next;
            prev = &cur;
        }
        return out;
    }
    size_t count(uint8_t dir) const {
        size_t n = 0;
        for (const auto& [k, v] : all()) n += k.dir == dir;
        return n;
    }
    std::string dump() const {
        std::string s;
        for (const auto& [k, v] : all()) s += "\n  " + nat_str(k) + " => " + nat_str(v);
        return s.empty() ? "(snat empty)" : s;
    }

private:
    UniqueFd snat_, nomasq_, config_;
};

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

constexpr size_t kIcmpCheck = 2, kIcmpId = 4;

inline Bytes icmp_echo_reply(uint16_t ident, uint16_t seq, const Bytes& payload) {
    Bytes m = icmp_echo(ident, seq, payload);
    m[0] = 0;  // echo reply
    put16(&m[kIcmpCheck], 0);
    put16(&m[kIcmpCheck], inet_checksum(m.data(), m.size()));
    return m;
}

// An ICMP error message: type, code, the 4 "rest of header" bytes (e.g.
// the next-hop MTU of "fragmentation needed" in the low 16 bits) and the
// quoted offending packet.
inline Bytes icmp_error_msg(uint8_t type, uint8_t code, uint32_t rest, const Bytes& quote) {
    Bytes m(8);
    m[0] = type;
    m[1] = code;
    put32(&m[4], rest);
    m.insert(m.end(), quote.begin(), quote.end());
    put16(&m[kIcmpCheck], inet_checksum(m.data(), m.size()));
    return m;
}

// The ICMP message of an IPv4 frame (up to the IP total length) verifies.
inline bool icmp_checksum_verifies(const Bytes& f) {
    const size_t off = l4_offset(f);
    return checksum_verifies(&f[off], ip_end(f) - off);
}

// The IP packet of an Ethernet frame (without trailing bytes).
inline Bytes ip_packet_of(const Bytes& f) { return Bytes(f.begin() + kEthHlen, f.begin() + ip_end(f)); }

// in (an ICMP echo frame) with new MACs, TTL - ttl_dec, the given addresses
// and identifier, both checksums recomputed from scratch.
inline Bytes icmp_rewritten(const Bytes& in, const MacAddr& eth_dst, const MacAddr& eth_src, uint8_t ttl_dec,
                            Ipv4 saddr, Ipv4 daddr, uint16_t id) {
    Bytes f = in;
    std::memcpy(&f[0], eth_dst.data(), 6);
    std::memcpy(&f[6], eth_src.data(), 6);
    f[kEthHlen + kIpTtl] = static_cast<uint8_t>(f[kEthHlen + kIpTtl] - ttl_dec);
    put32(&f[kEthHlen + kIpSaddr], saddr.value());
    put32(&f[kEthHlen + kIpDaddr], daddr.value());
    ipv4_fix_checksum(&f[kEthHlen]);
    const size_t off = l4_offset(f);
    put16(&f[off + kIcmpId], id);
    put16(&f[off + kIcmpCheck], 0);
    put16(&f[off + kIcmpCheck], inet_checksum(&f[off], ip_end(f) - off));
    return f;
}

// What an ICMP error about a masqueraded flow must look like when it is
// delivered into the pod: MACs of the pod's veth pair, outer TTL - 1,
// outer destination = the pod, quoted source address = the pod (quoted IP
// checksum recomputed), quoted source port (ICMP: echo identifier) = the
// pod's, ICMP checksum recomputed over the whole message. The quoted
// transport checksum is left as it was (bpf/lib/snat.h does not touch it).
inline Bytes icmp_error_to_pod(const Bytes& in, const TestVeth& pod, Ipv4 pod_ip, uint16_t pod_port) {
    Bytes f = in;
    std::memcpy(&f[0], pod.pod.mac.data(), 6);
    std::memcpy(&f[6], pod.host.mac.data(), 6);
    f[kEthHlen + kIpTtl]--;
    put32(&f[kEthHlen + kIpDaddr], pod_ip.value());
    ipv4_fix_checksum(&f[kEthHlen]);
    const size_t off = l4_offset(f);
    const size_t inner = off + 8;
    put32(&f[inner + kIpSaddr], pod_ip.value());
    ipv4_fix_checksum(&f[inner]);
    const size_t port = inner + 20 + (f[inner + kIpProto] == IPPROTO_ICMP ? kIcmpId : 0);
    put16(&f[port], pod_port);
    put16(&f[off + kIcmpCheck], 0);
    put16(&f[off + kIcmpCheck], inet_checksum(&f[off], ip_end(f) - off));
    return f;
}

}  // namespace skiff::bpftest
