// Helpers for the service feature tests (reject, session affinity, Maglev,
// hairpin, NodePort, socket LB: service_features_test.cc and
// service_features_nat_test.cc), on top of service_env.h:
//  - FeatureMaps: ServiceMaps plus the pinned skiff_affinity, skiff_maglev
//    and skiff_config maps;
//  - the datapath's seedless flow hash (bpf/lib/service.h), reproduced;
//  - the exact RST and ICMP port-unreachable answers the reject path must
//    produce;
//  - the ServiceFeatureTest fixture (namespace features).
#pragma once

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <time.h>

#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "service_env.h"

namespace skiff::bpftest {

using skiff::monotonic_ns;  // the datapath's clock (common/clock.h)

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

// The service maps, and skiff_affinity, skiff_maglev and skiff_config.
class FeatureMaps : public ServiceMaps {
public:
    Status open(const std::string& pin_dir) {
        SKIFF_TRY(ServiceMaps::open(pin_dir));
        SKIFF_ASSIGN_OR_RETURN(affinity_, datapath::open_pinned_map(pin_dir, SKIFF_MAP_AFFINITY));
        SKIFF_ASSIGN_OR_RETURN(maglev_, datapath::open_pinned_map(pin_dir, SKIFF_MAP_MAGLEV));
        SKIFF_ASSIGN_OR_RETURN(config_, datapath::open_pinned_map(pin_dir, SKIFF_MAP_CONFIG));
        return {};
    }
    void close() {
        ServiceMaps::close();
        affinity_.reset();
        maglev_.reset();
        config_.reset();
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
        skiff_affinity_value v{};
        v.last_used_ns = last_used_ns;
        v.backend_id = backend_id;
        v.slot = slot;
        return map_put(affinity_.get(), affinity_key(client, revnat_id), v, "affinity: update");
    }
    std::optional<skiff_affinity_value> affinity(Ipv4 client, uint16_t revnat_id) const {
        return map_get<skiff_affinity_value>(affinity_.get(), affinity_key(client, revnat_id));
    }
    size_t affinity_count() const { return map_key_count<skiff_affinity_key>(affinity_.get()); }

    // The whole table of one frontend: table[i] is the backend id of index i.
    Status set_maglev(uint16_t revnat_id, const std::vector<uint32_t>& table) {
        for (uint32_t i = 0; i < table.size(); ++i) {
            skiff_maglev_key k{};
            k.revnat_id = revnat_id;
            k.index = i;
            SKIFF_TRY(map_put(maglev_.get(), k, table[i], "maglev: update " + std::to_string(i)));
        }
        return {};
    }

    Status set_config(const skiff_config& c) { return map_put(config_.get(), uint32_t{0}, c, "config: update"); }

private:
    UniqueFd affinity_, maglev_, config_;
};

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

// What the reject path sends straight back for the frame in: Ethernet
// addresses swapped, an IPv4 header without options (id 0, DF, TTL 64) from
// in's destination to its source, carrying l4.
inline Bytes answer_to(const Bytes& in, uint8_t protocol, const Bytes& l4) {
    Ipv4Spec s = ipv4_spec(frame_daddr(in), frame_saddr(in), protocol, l4, 64);
    s.id = 0;
    s.frag_off = 0x4000;
    MacAddr in_dst{}, in_src{};
    std::memcpy(in_dst.data(), &in[0], 6);
    std::memcpy(in_src.data(), &in[6], 6);
    return ethernet(in_src, in_dst, kEthPIp, ipv4_packet(s));
}

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
    return answer_to(in, IPPROTO_TCP, t);
}

// The ICMP destination unreachable / port unreachable for the datagram in:
// quoting its IPv4 header and the first 8 bytes after it.
// The cluster's pod range in c, as the agent writes it (network order).
inline void set_cluster_range(skiff_config& c, const Ipv4Prefix& range) {
    c.cluster_net = range.network().be();
    c.cluster_mask = htonl(range.mask());
}

inline Bytes expected_port_unreachable(const Bytes& in) {
    Bytes m(8);
    m[0] = 3;  // destination unreachable
    m[1] = 3;  // port unreachable
    m.insert(m.end(), in.begin() + kEthHlen, in.begin() + kEthHlen + 28);
    put16(&m[2], inet_checksum(m.data(), m.size()));
    return answer_to(in, IPPROTO_ICMP, m);
}

// ---------------------------------------------------------------------------
// service_features_test.cc, service_features_nat_test.cc
// ---------------------------------------------------------------------------

namespace features {

// This node: PodCIDR 10.244.0.0/24, node IP = the uplink's address
// (remote_env.h: 192.168.1.11). Pods (all local endpoints):
inline const Ipv4Prefix kLocalCidr(Ipv4(0x0af40000), 24);
inline const Ipv4 kPodA(0x0af4000a);  // 10.244.0.10: the client, src veth
inline const Ipv4 kPodB(0x0af40014);  // 10.244.0.20: backend, dst veth
inline const Ipv4 kPodC(0x0af4001e);  // 10.244.0.30: backend, other veth
inline const Ipv4 kPodD(0x0af40028);  // 10.244.0.40: backend, other veth
// Another node (192.168.1.12, neighbour known) owns 10.244.1.0/24.
inline const Ipv4Prefix kRemoteCidr(Ipv4(0x0af40100), 24);
inline const Ipv4 kRemotePod(0x0af40114);  // 10.244.1.20: a backend there
// Outside the cluster, on the uplink's subnet (no neighbour entry).
inline const Ipv4 kOutside(0xc0a80164);   // 192.168.1.100
inline const Ipv4 kOutside2(0xc0a80165);  // 192.168.1.101
inline const MacAddr kOutsideMac{0x02, 0x5c, 0x1f, 0x00, 0x01, 0x64};

// The cluster's pod range: both PodCIDRs; set in skiff_config as the agent does.
inline const Ipv4Prefix kClusterRange(Ipv4(0x0af40000), 16);  // 10.244.0.0/16

inline const Ipv4 kVip(0x0a60000a);  // 10.96.0.10
constexpr uint16_t kVport = 80, kBport = 8080, kNodePort = 30080;
constexpr uint32_t kIdB = 1, kIdC = 2, kIdD = 3, kIdRemote = 4, kIdA = 5, kIdHostNet = 6;
constexpr uint16_t kRevNat = 7, kNodePortRevNat = 9;
inline const Ipv4 kHairpin(SKIFF_HAIRPIN_ADDR);

class ServiceFeatureTest : public RemoteNetTest {
protected:
    void SetUp() override {
        ASSERT_NO_FATAL_FAILURE(enter_remote_net());
        ASSERT_NO_FATAL_FAILURE(load_pinned(kWithUplink | kWithNodes));
        ASSERT_OK(fmaps_.open(pins_.path()));  // maps_ is its ServiceMaps part

        ASSERT_OK(endpoints_->upsert(kPodA, endpoint(net_->src)));
        ASSERT_OK(endpoints_->upsert(kPodB, endpoint(net_->dst)));
        ASSERT_OK(endpoints_->upsert(kPodC, endpoint(net_->other)));
        ASSERT_OK(endpoints_->upsert(kPodD, endpoint(net_->other)));
        ASSERT_OK(nodes_->upsert(kLocalCidr, node(kUplinkIp, SKIFF_NODE_F_LOCAL)));
        ASSERT_OK(nodes_->upsert(kRemoteCidr, node(kNodeNeighIp)));
        ASSERT_OK(maps_.set_backend(kIdB, kPodB, kBport, kTcp));
        ASSERT_OK(maps_.set_backend(kIdC, kPodC, kBport, kTcp));
        ASSERT_OK(maps_.set_backend(kIdD, kPodD, kBport, kTcp));
        skiff_config cfg{};
        set_cluster_range(cfg, kClusterRange);
        ASSERT_OK(fmaps_.set_config(cfg));
        EXPECT_EQ(describe(counters()), describe(Counters{}));  // fresh maps per test
        ASSERT_EQ(maps_.ct_all().size(), 0u);
    }

    void TearDown() override {
        fmaps_.close();
        RemoteNetTest::TearDown();
    }

    // --- frames ---

    // As the pod behind from sends it into its veth.
    static Bytes pod_frame(const TestVeth& from, Ipv4 src, Ipv4 dst, uint8_t proto, const Bytes& l4,
                           const Bytes& ip_options = {}) {
        Ipv4Spec s = ipv4_spec(src, dst, proto, l4);
        s.options = ip_options;
        return eth_from_pod(from, ipv4_packet(s));
    }
    // A -> dst:dport, a SYN (TCP) or a datagram with payload bytes (UDP).
    Bytes from_a(Ipv4 dst, uint16_t dport, uint16_t sport, uint8_t proto = kTcp, uint8_t flags = kTcpSyn,
                 size_t payload = 0) const {
        return from_pod_ip(kPodA, dst, dport, sport, proto, flags, payload);
    }
    Bytes from_pod_ip(Ipv4 src, Ipv4 dst, uint16_t dport, uint16_t sport, uint8_t proto = kTcp, uint8_t flags = kTcpSyn,
                      size_t payload = 0) const {
        Bytes l4 = proto == kTcp ? tcp_segment(src, dst, sport, dport, 0x11223344, 0, flags, {}, pattern(payload))
                                 : udp(src, dst, sport, dport, pattern(payload));
        return pod_frame(net_->src, src, dst, proto, l4);
    }
    // As it arrives on the uplink from src_mac.
    Bytes wire(const MacAddr& src_mac, Ipv4 src, Ipv4 dst, uint8_t proto, const Bytes& l4, uint8_t ttl = 64) const {
        return eth_from_wire(*uplink_, src_mac, ipv4_packet(ipv4_spec(src, dst, proto, l4, ttl)));
    }

    RunResult run_pod(const Bytes& f, int ifindex = 0) {
        return test_run(from_pod_.get(), f, ifindex ? ifindex : net_->src.host.ifindex);
    }

    // --- checks ---

    static void expect_checksums(const Bytes& out) {
        ASSERT_GE(out.size(), kEthHlen + 20);
        const size_t hlen = (out[kEthHlen] & 0xfu) * 4u;
        EXPECT_TRUE(checksum_verifies(&out[kEthHlen], hlen)) << "IPv4 header checksum: " << hex(&out[kEthHlen], hlen);
        const bool udp_none = out[kEthHlen + kIpProto] == kUdp && get16(&out[l4_offset(out) + kUdpCheck]) == 0;
        if (!udp_none) {
            EXPECT_TRUE(l4_checksum_verifies(out)) << "transport checksum does not verify";
        }
    }

    // A new connection from A to VIP:80 and the backend it was sent to.
    Ipv4 connect_a(uint16_t sport, uint8_t proto = kTcp) {
        Bytes in = from_a(kVip, kVport, sport, proto);
        RunResult r = run_pod(in);
        EXPECT_EQ(r.err, 0);
        EXPECT_EQ(r.retval, kRedirect) << "sport " << sport;
        if (r.data.size() < kEthHlen + 20) return Ipv4();
        expect_checksums(r.data);
        EXPECT_EQ(frame_dport(r.data), kBport);
        return frame_daddr(r.data);
    }

    uint32_t id_of(Ipv4 be) const {
        if (be == kPodB) return kIdB;
        if (be == kPodC) return kIdC;
        if (be == kPodD) return kIdD;
        return 0;
    }

    FeatureMaps fmaps_;
    ServiceMaps& maps_ = fmaps_;
};

}  // namespace features

}  // namespace skiff::bpftest
