// Helpers for service_features_test.cc (reject, session affinity, Maglev,
// hairpin, NodePort, socket LB), on top of service_env.h / remote_env.h:
//  - raw access to the pinned skiff_services (frontends with flags and an
//    affinity timeout), skiff_affinity, skiff_maglev and skiff_config maps;
//  - the datapath's seedless flow hash (bpf/lib/service.h), reproduced;
//  - CLOCK_MONOTONIC (the clock of bpf_ktime_get_ns());
//  - a per-device IPv4 forwarding switch restored on destruction;
//  - frames with TCP options / an ack number, and the exact RST and ICMP
//    port-unreachable answers the reject path must produce.
#pragma once

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "remote_env.h"
#include "service_env.h"

namespace skiff::bpftest {

// ---------------------------------------------------------------------------
// Clock
// ---------------------------------------------------------------------------

inline uint64_t monotonic_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

constexpr uint64_t kNsPerSec = 1000000000ull;

// ---------------------------------------------------------------------------
// The datapath's flow hash (bpf/lib/service.h: hash_mix, svc_flow_hash), on
// host-order values: ntohl(client), ntohl(vip), ntohs(ports).
// ---------------------------------------------------------------------------

inline uint32_t dp_hash_mix(uint32_t h) {
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

inline uint32_t dp_flow_hash(Ipv4 client, Ipv4 vip, uint16_t sport, uint16_t dport, uint8_t proto) {
    const uint32_t ports = (static_cast<uint32_t>(sport) << 16) | dport;
    return dp_hash_mix(client.value() ^ dp_hash_mix(ports ^ dp_hash_mix(vip.value() + proto)));
}

// ---------------------------------------------------------------------------
// Maps beyond service_env.h's ServiceMaps
// ---------------------------------------------------------------------------

class FeatureMaps {
public:
    Status open(const std::string& pin_dir) {
        SKIFF_ASSIGN_OR_RETURN(services_, bpf::open_pinned_map(pin_dir, SKIFF_MAP_SERVICES));
        SKIFF_ASSIGN_OR_RETURN(affinity_, bpf::open_pinned_map(pin_dir, SKIFF_MAP_AFFINITY));
        SKIFF_ASSIGN_OR_RETURN(maglev_, bpf::open_pinned_map(pin_dir, SKIFF_MAP_MAGLEV));
        SKIFF_ASSIGN_OR_RETURN(config_, bpf::open_pinned_map(pin_dir, SKIFF_MAP_CONFIG));
        SKIFF_ASSIGN_OR_RETURN(ct_, bpf::open_pinned_map(pin_dir, SKIFF_MAP_CT));
        return {};
    }
    void close() {
        services_.reset();
        affinity_.reset();
        maglev_.reset();
        config_.reset();
        ct_.reset();
    }

    // Forget every tracked connection.
    Status clear_ct() {
        skiff_ct_key k{};
        while (bpf_map_get_next_key(ct_.get(), nullptr, &k) == 0)
            if (bpf_map_delete_elem(ct_.get(), &k) != 0) return Error::errno_("ct: delete");
        return {};
    }

    // Slots 1..n -> ids, then slot 0 with count, rev-NAT id, flags and the
    // affinity timeout (seconds).
    Status set_frontend(Ipv4 vip, uint16_t port, uint8_t proto, const std::vector<uint32_t>& ids,
                        uint16_t revnat_id, uint32_t flags, uint32_t affinity_timeout = 0) {
        for (size_t i = 0; i < ids.size(); ++i) {
            skiff_service_key k = ServiceMaps::svc_key(vip, port, proto, static_cast<uint16_t>(i + 1));
            skiff_service_value v{};
            v.backend_id = ids[i];
            if (bpf_map_update_elem(services_.get(), &k, &v, BPF_ANY) != 0)
                return Error::errno_("services: update slot " + std::to_string(i + 1));
        }
        skiff_service_key k = ServiceMaps::svc_key(vip, port, proto, 0);
        skiff_service_value v{};
        v.count = static_cast<uint16_t>(ids.size());
        v.revnat_id = revnat_id;
        v.flags = flags;
        v.affinity_timeout = affinity_timeout;
        if (bpf_map_update_elem(services_.get(), &k, &v, BPF_ANY) != 0)
            return Error::errno_("services: update frontend");
        return {};
    }

    static skiff_affinity_key affinity_key(Ipv4 client, uint16_t revnat_id) {
        skiff_affinity_key k{};
        k.client = client.be();
        k.revnat_id = revnat_id;
        return k;
    }
    // slot: the backend's slot in the frontend (the datapath honours an
    // entry only while that slot still names the backend).
    Status put_affinity(Ipv4 client, uint16_t revnat_id, uint32_t backend_id, uint16_t slot, uint64_t last_used_ns) {
        skiff_affinity_key k = affinity_key(client, revnat_id);
        skiff_affinity_value v{};
        v.last_used_ns = last_used_ns;
        v.backend_id = backend_id;
        v.slot = slot;
        if (bpf_map_update_elem(affinity_.get(), &k, &v, BPF_ANY) != 0) return Error::errno_("affinity: update");
        return {};
    }
    std::optional<skiff_affinity_value> affinity(Ipv4 client, uint16_t revnat_id) const {
        skiff_affinity_key k = affinity_key(client, revnat_id);
        skiff_affinity_value v{};
        if (bpf_map_lookup_elem(affinity_.get(), &k, &v) != 0) return std::nullopt;
        return v;
    }
    size_t affinity_count() const {
        size_t n = 0;
        skiff_affinity_key cur{}, next{};
        const void* prev = nullptr;
        while (bpf_map_get_next_key(affinity_.get(), prev, &next) == 0) {
            ++n;
            cur = next;
            prev = &cur;
        }
        return n;
    }

    // The whole table of one frontend: table[i] is the backend id of index i.
    Status set_maglev(uint16_t revnat_id, const std::vector<uint32_t>& table) {
        for (uint32_t i = 0; i < table.size(); ++i) {
            skiff_maglev_key k{};
            k.revnat_id = revnat_id;
            k.index = i;
            uint32_t id = table[i];
            if (bpf_map_update_elem(maglev_.get(), &k, &id, BPF_ANY) != 0)
                return Error::errno_("maglev: update " + std::to_string(i));
        }
        return {};
    }

    Status set_config(const skiff_config& c) {
        uint32_t zero = 0;
        if (bpf_map_update_elem(config_.get(), &zero, &c, BPF_ANY) != 0) return Error::errno_("config: update");
        return {};
    }

private:
    UniqueFd services_, affinity_, maglev_, config_, ct_;
};

// ---------------------------------------------------------------------------
// IPv4 forwarding on one device of the private netns, put back afterwards
// (bpf_fib_lookup() on ingress needs it on skb->ifindex; the agent enables
// it node-wide in production).
// ---------------------------------------------------------------------------

inline std::optional<std::string> read_sysctl(const std::string& key) {
    UniqueFd fd(::open(("/proc/sys/" + key).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return std::nullopt;
    char buf[64] = {};
    ssize_t n = ::read(fd.get(), buf, sizeof(buf) - 1);
    if (n <= 0) return std::nullopt;
    std::string s(buf, static_cast<size_t>(n));
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

class ForwardingOn {
public:
    Status enable(const std::string& dev) {
        key_ = "net/ipv4/conf/" + dev + "/forwarding";
        auto old = read_sysctl(key_);
        if (!old) return Error::errno_("read sysctl " + key_);
        old_ = *old;
        return write_sysctl(key_, "1");
    }
    ~ForwardingOn() {
        if (old_) (void)write_sysctl(key_, *old_);
    }

private:
    std::string key_;
    std::optional<std::string> old_;
};

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpPsh = 0x08, kTcpAck = 0x10;

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

inline uint32_t get32(const uint8_t* p) { return (static_cast<uint32_t>(get16(p)) << 16) | get16(p + 2); }

// The RST the reject path must send back for the TCP segment in (RFC 793
// reset generation): Ethernet addresses swapped, IPv4 header without
// options (id 0, DF, TTL 64) from the segment's destination to its source,
// a bare 20-byte TCP header with the ports swapped.
inline Bytes expected_rst(const Bytes& in, uint32_t seq, uint32_t ack_seq, uint8_t flags) {
    const Ipv4 client = frame_saddr(in), vip = frame_daddr(in);
    Bytes t(20);
    put16(&t[0], frame_dport(in));
    put16(&t[2], frame_sport(in));
    put32(&t[4], seq);
    put32(&t[8], ack_seq);
    t[12] = 5 << 4;
    t[13] = flags;
    put16(&t[16], inet_checksum(t.data(), t.size(), pseudo_header_sum(vip, client, IPPROTO_TCP, t.size())));
    Ipv4Spec s;
    s.src = vip;
    s.dst = client;
    s.ttl = 64;
    s.id = 0;
    s.frag_off = 0x4000;
    s.protocol = IPPROTO_TCP;
    s.l4 = t;
    MacAddr in_dst{}, in_src{};
    std::memcpy(in_dst.data(), &in[0], 6);
    std::memcpy(in_src.data(), &in[6], 6);
    return ethernet(in_src, in_dst, kEthPIp, ipv4_packet(s));
}

// The ICMP destination unreachable / port unreachable for the datagram in:
// quoting its IPv4 header and the first 8 bytes after it.
inline Bytes expected_port_unreachable(const Bytes& in) {
    Bytes m(8);
    m[0] = 3;  // destination unreachable
    m[1] = 3;  // port unreachable
    m.insert(m.end(), in.begin() + kEthHlen, in.begin() + kEthHlen + 28);
    put16(&m[2], inet_checksum(m.data(), m.size()));
    Ipv4Spec s;
    s.src = frame_daddr(in);
    s.dst = frame_saddr(in);
    s.ttl = 64;
    s.id = 0;
    s.frag_off = 0x4000;
    s.protocol = IPPROTO_ICMP;
    s.l4 = m;
    MacAddr in_dst{}, in_src{};
    std::memcpy(in_dst.data(), &in[0], 6);
    std::memcpy(in_src.data(), &in[6], 6);
    return ethernet(in_src, in_dst, kEthPIp, ipv4_packet(s));
}

// in with new MACs, TTL - ttl_dec, the given addresses and ports, all
// checksums recomputed from scratch.
inline Bytes rewritten(const Bytes& in, const MacAddr& eth_dst, const MacAddr& eth_src, uint8_t ttl_dec, Ipv4 saddr,
                       uint16_t sport, Ipv4 daddr, uint16_t dport) {
    Bytes f = in;
    std::memcpy(&f[0], eth_dst.data(), 6);
    std::memcpy(&f[6], eth_src.data(), 6);
    f[kEthHlen + kIpTtl] = static_cast<uint8_t>(f[kEthHlen + kIpTtl] - ttl_dec);
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
