// Helpers for the service load-balancing tests (service_test.cc), on top of
// remote_env.h:
//  - raw access to the pinned skiff_services / skiff_backends / skiff_ct
//    maps (bpf_test_env.h's map_* on open_pinned_map() fds), with the key
//    and value layouts of maps/skiff_maps.h;
//  - transport checksum recomputation over the pseudo header, to build the
//    frame a translation is expected to produce and compare it byte for byte;
//  - the ServiceTest fixture (namespace service).
#pragma once

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <optional>
#include <string>
#include <vector>

#include "remote_env.h"

namespace skiff::bpftest {

// ---------------------------------------------------------------------------
// Map access
// ---------------------------------------------------------------------------

inline skiff_ct_key ct_key(Ipv4 saddr, Ipv4 daddr, uint16_t sport, uint16_t dport, uint8_t proto, uint8_t dir) {
    skiff_ct_key k{};
    k.saddr = saddr.be();
    k.daddr = daddr.be();
    k.sport = htons(sport);
    k.dport = htons(dport);
    k.proto = proto;
    k.dir = dir;
    return k;
}

// "saddr:sport -> daddr:dport proto N" of a conntrack (or snat) key.
inline std::string tuple_str(const skiff_ct_key& k) {
    return Ipv4::from_be(k.saddr).str() + ":" + std::to_string(ntohs(k.sport)) + " -> " + Ipv4::from_be(k.daddr).str() +
           ":" + std::to_string(ntohs(k.dport)) + " proto " + std::to_string(k.proto);
}

inline std::string describe(const skiff_ct_key& k) {
    return tuple_str(k) + (k.dir == SKIFF_CT_FORWARD ? " FORWARD" : k.dir == SKIFF_CT_REPLY ? " REPLY" : " dir?");
}

inline std::string describe(const skiff_ct_value& v) {
    return "backend " + std::to_string(v.backend_id) + " nat " + Ipv4::from_be(v.nat_addr).str() + ":" +
           std::to_string(ntohs(v.nat_port)) + " revnat " + std::to_string(v.revnat_id) + " pkts " +
           std::to_string(v.packets) + " bytes " + std::to_string(v.bytes) + " flags " + std::to_string(v.flags);
}

// The service, backend and conntrack maps of one pin dir.
class ServiceMaps {
public:
    Status open(const std::string& pin_dir) {
        SKIFF_ASSIGN_OR_RETURN(services_, datapath::open_pinned_map(pin_dir, SKIFF_MAP_SERVICES));
        SKIFF_ASSIGN_OR_RETURN(backends_, datapath::open_pinned_map(pin_dir, SKIFF_MAP_BACKENDS));
        SKIFF_ASSIGN_OR_RETURN(ct_, datapath::open_pinned_map(pin_dir, SKIFF_MAP_CT));
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

    // Slots 1..n -> ids, then slot 0 with count, rev-NAT id, flags and the
    // affinity timeout (seconds).
    Status set_frontend(Ipv4 vip, uint16_t port, uint8_t proto, const std::vector<uint32_t>& ids, uint16_t revnat_id,
                        uint32_t flags, uint32_t affinity_timeout = 0) {
        for (size_t i = 0; i < ids.size(); ++i) {
            skiff_service_value v{};
            v.backend_id = ids[i];
            SKIFF_TRY(map_put(services_.get(), svc_key(vip, port, proto, static_cast<uint16_t>(i + 1)), v,
                              "services: update slot " + std::to_string(i + 1)));
        }
        skiff_service_value v{};
        v.count = static_cast<uint16_t>(ids.size());
        v.revnat_id = revnat_id;
        v.flags = flags;
        v.affinity_timeout = affinity_timeout;
        return map_put(services_.get(), svc_key(vip, port, proto, 0), v, "services: update frontend");
    }
    Status set_service(Ipv4 vip, uint16_t port, uint8_t proto, const std::vector<uint32_t>& ids, uint16_t revnat_id = 1,
                       uint32_t flags = 0) {
        return set_frontend(vip, port, proto, ids, revnat_id, flags);
    }

    Status delete_service_slot(Ipv4 vip, uint16_t port, uint8_t proto, uint16_t slot) {
        return map_del(services_.get(), svc_key(vip, port, proto, slot), "services: delete slot");
    }

    Status set_backend(uint32_t id, Ipv4 ip, uint16_t port, uint8_t proto) {
        skiff_l4_addr b{};
        b.ip = ip.be();
        b.port = htons(port);
        b.proto = proto;
        return map_put(backends_.get(), id, b, "backends: update " + std::to_string(id));
    }

    Status delete_backend(uint32_t id) {
        return map_del(backends_.get(), id, "backends: delete " + std::to_string(id));
    }

    Status put_ct(const skiff_ct_key& k, const skiff_ct_value& v) { return map_put(ct_.get(), k, v, "ct: update"); }
    std::optional<skiff_ct_value> ct(const skiff_ct_key& k) const { return map_get<skiff_ct_value>(ct_.get(), k); }
    Status del_ct(const skiff_ct_key& k) { return map_del(ct_.get(), k, "ct: delete " + describe(k)); }
    std::vector<std::pair<skiff_ct_key, skiff_ct_value>> ct_all() const {
        return map_entries<skiff_ct_key, skiff_ct_value>(ct_.get());
    }

    // Forget every tracked connection.
    Status clear_ct() {
        skiff_ct_key k{};
        while (bpf_map_get_next_key(ct_.get(), nullptr, &k) == 0)
            if (bpf_map_delete_elem(ct_.get(), &k) != 0) return Error::errno_("ct: delete");
        return {};
    }

    std::string ct_dump() const {
        std::string s;
        for (const auto& [k, v] : ct_all()) s += "\n  " + describe(k) + " => " + describe(v);
        return s.empty() ? "(ct empty)" : s;
    }

protected:
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
    const Ipv4 src(get32(ip + kIpSaddr)), dst(get32(ip + kIpDaddr));
    uint16_t c = inet_checksum(&f[off], len, pseudo_header_sum(src, dst, proto, len));
    if (proto == IPPROTO_UDP && c == 0) c = 0xffff;
    put16(&f[check], c);
}

// The transport checksum of a frame verifies over the pseudo header.
inline bool l4_checksum_verifies(const Bytes& f) {
    const uint8_t* ip = &f[kEthHlen];
    const size_t off = l4_offset(f);
    const size_t len = ip_end(f) - off;
    const Ipv4 src(get32(ip + kIpSaddr)), dst(get32(ip + kIpDaddr));
    return csum_fold(csum_add(pseudo_header_sum(src, dst, ip[kIpProto], len), &f[off], len)) == 0xffff;
}

inline Ipv4 frame_saddr(const Bytes& f) { return Ipv4(get32(&f[kEthHlen + kIpSaddr])); }
inline Ipv4 frame_daddr(const Bytes& f) { return Ipv4(get32(&f[kEthHlen + kIpDaddr])); }
inline uint16_t frame_sport(const Bytes& f) { return get16(&f[l4_offset(f)]); }
inline uint16_t frame_dport(const Bytes& f) { return get16(&f[l4_offset(f) + 2]); }

// One routed hop at L3 on the frame f: new MACs, TTL - ttl_dec, the given
// addresses, IPv4 header checksum recomputed from scratch.
inline void rewrite_l3(Bytes& f, const MacAddr& eth_dst, const MacAddr& eth_src, uint8_t ttl_dec, Ipv4 saddr,
                       Ipv4 daddr) {
    std::memcpy(&f[0], eth_dst.data(), 6);
    std::memcpy(&f[6], eth_src.data(), 6);
    f[kEthHlen + kIpTtl] = static_cast<uint8_t>(f[kEthHlen + kIpTtl] - ttl_dec);
    put32(&f[kEthHlen + kIpSaddr], saddr.value());
    put32(&f[kEthHlen + kIpDaddr], daddr.value());
    ipv4_fix_checksum(&f[kEthHlen]);
}

// in with new MACs, TTL - ttl_dec, the given addresses and ports, all
// checksums recomputed from scratch.
inline Bytes rewritten(const Bytes& in, const MacAddr& eth_dst, const MacAddr& eth_src, uint8_t ttl_dec, Ipv4 saddr,
                       uint16_t sport, Ipv4 daddr, uint16_t dport) {
    Bytes f = in;
    rewrite_l3(f, eth_dst, eth_src, ttl_dec, saddr, daddr);
    const size_t off = l4_offset(f);
    put16(&f[off], sport);
    put16(&f[off + 2], dport);
    l4_fix_checksum(f);
    return f;
}

// What a translating, forwarding hop into the pod behind dst is expected to
// make of in: MACs of dst's veth pair, TTL - 1, the given addresses and
// ports, IPv4 and transport checksums recomputed from scratch.
inline Bytes expected_translated(const Bytes& in, const TestVeth& dst, Ipv4 saddr, uint16_t sport, Ipv4 daddr,
                                 uint16_t dport) {
    return rewritten(in, dst.pod.mac, dst.host.mac, 1, saddr, sport, daddr, dport);
}

// ---------------------------------------------------------------------------
// service_test.cc: DNAT to backends, conntrack, reverse translation
// ---------------------------------------------------------------------------

namespace service {

constexpr uint8_t kSyn = kTcpSyn, kAck = kTcpAck, kPshAck = kTcpPsh | kTcpAck, kFinAck = kTcpFin | kTcpAck,
                  kSynAck = kTcpSyn | kTcpAck;

inline const Ipv4 kClientIp(0x0af4000a);    // 10.244.0.10: pod A, the client (src veth)
inline const Ipv4 kBackendIp(0x0af40114);   // 10.244.1.20: pod B, backend 1 (dst veth)
inline const Ipv4 kBackend2Ip(0x0af4011e);  // 10.244.1.30: pod C, backend 2 (other veth)
inline const Ipv4 kRemoteBeIp(0x0af40214);  // 10.244.2.20: a backend on another node
inline const Ipv4 kVip(0x0a60000a);         // 10.96.0.10: the service's ClusterIP
inline const Ipv4 kOtherVip(0x0a60000b);    // 10.96.0.11: a second service

constexpr uint16_t kVport = 80, kBport = 8080;
constexpr uint32_t kBeId = 1, kBe2Id = 2;
constexpr uint16_t kRevNat = 7;

class ServiceTest : public RemoteNetTest {
protected:
    void SetUp() override {
        ASSERT_NO_FATAL_FAILURE(enter_test_net());
        ASSERT_NO_FATAL_FAILURE(load_pinned(kWithUplink));
        ASSERT_OK(maps_.open(pins_.path()));

        ASSERT_OK(endpoints_->upsert(kClientIp, endpoint(net_->src)));
        ASSERT_OK(endpoints_->upsert(kBackendIp, endpoint(net_->dst)));
        ASSERT_OK(endpoints_->upsert(kBackend2Ip, endpoint(net_->other)));
        ASSERT_NO_FATAL_FAILURE(expect_counters({}));  // fresh maps per test
        ASSERT_EQ(maps_.ct_all().size(), 0u);
    }

    void TearDown() override {
        maps_.close();
        RemoteNetTest::TearDown();
    }

    // VIP:80/proto -> B:8080 (id 1), and C:8080 (id 2) when two.
    void one_backend(uint8_t proto) {
        ASSERT_OK(maps_.set_backend(kBeId, kBackendIp, kBport, proto));
        ASSERT_OK(maps_.set_service(kVip, kVport, proto, {kBeId}, kRevNat));
    }
    void two_backends(uint8_t proto) {
        ASSERT_OK(maps_.set_backend(kBeId, kBackendIp, kBport, proto));
        ASSERT_OK(maps_.set_backend(kBe2Id, kBackend2Ip, kBport, proto));
        ASSERT_OK(maps_.set_service(kVip, kVport, proto, {kBeId, kBe2Id}, kRevNat));
    }

    // --- frames ---

    static Bytes l4(uint8_t proto, Ipv4 src, Ipv4 dst, uint16_t sport, uint16_t dport, uint8_t flags,
                    const Bytes& payload) {
        if (proto == kTcp) return tcp(src, dst, sport, dport, 0x11223344, flags, payload);
        return udp(src, dst, sport, dport, payload);
    }
    static Bytes frame(const TestVeth& from, Ipv4 src, Ipv4 dst, uint8_t proto, const Bytes& l4, uint8_t ttl = 64) {
        return eth_from_pod(from, ipv4_packet(ipv4_spec(src, dst, proto, l4, ttl)));
    }
    // A -> dst:dport from the client's veth.
    Bytes client(Ipv4 dst, uint16_t dport, uint16_t sport, uint8_t proto = kTcp, uint8_t flags = kSyn,
                 size_t payload = 0, uint8_t seed = 0) const {
        return frame(net_->src, kClientIp, dst, proto,
                     l4(proto, kClientIp, dst, sport, dport, flags, pattern(payload, seed)));
    }

    RunResult run_pod(const Bytes& f, int ifindex = 0) {
        return test_run(from_pod_.get(), f, ifindex ? ifindex : net_->src.host.ifindex);
    }

    // --- checks ---

    // out is in DNATed to daddr:dport and delivered into the pod behind dst.
    void expect_dnat(const Bytes& in, const RunResult& r, const TestVeth& dst, Ipv4 daddr, uint16_t dport) {
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_EQ(r.retval, kRedirect);
        ASSERT_EQ(r.data.size(), in.size());
        expect_checksums(r.data);
        Bytes want = expected_translated(in, dst, frame_saddr(in), frame_sport(in), daddr, dport);
        EXPECT_EQ(frame_daddr(r.data).str(), daddr.str());
        EXPECT_EQ(frame_dport(r.data), dport);
        EXPECT_EQ(hex(r.data), hex(want)) << "translated frame differs from the expected one";
    }

    // out is in with the source translated to saddr:sport, into dst's pod.
    void expect_snat(const Bytes& in, const RunResult& r, const TestVeth& dst, Ipv4 saddr, uint16_t sport) {
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_EQ(r.retval, kRedirect);
        ASSERT_EQ(r.data.size(), in.size());
        expect_checksums(r.data);
        Bytes want = expected_translated(in, dst, saddr, sport, frame_daddr(in), frame_dport(in));
        EXPECT_EQ(frame_saddr(r.data).str(), saddr.str());
        EXPECT_EQ(frame_sport(r.data), sport);
        EXPECT_EQ(hex(r.data), hex(want)) << "translated frame differs from the expected one";
    }

    static void expect_checksums(const Bytes& out) {
        const size_t hlen = (out[kEthHlen] & 0xfu) * 4u;
        EXPECT_TRUE(checksum_verifies(&out[kEthHlen], hlen)) << "IPv4 header checksum: " << hex(&out[kEthHlen], hlen);
        const bool udp_none = out[kEthHlen + kIpProto] == kUdp && get16(&out[l4_offset(out) + kUdpCheck]) == 0;
        if (!udp_none) {
            EXPECT_TRUE(l4_checksum_verifies(out))
                << "transport checksum does not verify: " << hex(&out[l4_offset(out)], ip_end(out) - l4_offset(out));
        }
    }

    static uint64_t packets_delta(const Counters& before, const Counters& after, uint32_t reason,
                                  uint32_t dir = SKIFF_DIR_EGRESS) {
        auto get = [&](const Counters& c) {
            auto it = c.find({reason, dir});
            return it == c.end() ? uint64_t{0} : it->second.packets;
        };
        return get(after) - get(before);
    }

    void expect_no_ct() { EXPECT_EQ(maps_.ct_all().size(), 0u) << maps_.ct_dump(); }

    ServiceMaps maps_;
};

}  // namespace service

}  // namespace skiff::bpftest
