// Helpers for the masquerade (SNAT) tests (snat_test.cc, snat_reply_test.cc,
// snat_socket_test.cc, snat_node_test.cc, snat_mark_test.cc,
// snat_service_test.cc), on top of
// service_features_env.h (and so service_env.h, remote_env.h):
//  - two "outside" hosts on the uplink's subnet with permanent neighbour
//    entries (192.168.1.200 and .201), so that FIB lookups toward them
//    succeed with a MAC (bpf_redirect, not bpf_redirect_neigh). The
//    addresses differ from service_features_test.cc's 192.168.1.100/.101,
//    which must stay without a neighbour entry. Created once, in the
//    process' private netns only, and gone with it;
//  - raw access to the pinned skiff_snat, skiff_nomasq, skiff_config and
//    skiff_trace maps;
//  - sockets of the node's own (NodeSocket), made by this process in the
//    private netns, for the datapath's socket lookups to find;
//  - frames: ICMP echo replies, ICMP errors quoting a packet, the node's
//    own packets as they leave the uplink, and the exact frames a
//    translation is expected to produce (checksums from scratch);
//  - the SnatTest fixture (namespace snat): from_pod, from_uplink and
//    to_uplink (the uplink's egress) loaded into one pin dir.
#pragma once

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "agent/snat_gc.h"
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
    SKIFF_TRY(check_private_netns(*rn->base));
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
    return tuple_str(k) + (k.dir == SKIFF_SNAT_EGRESS ? " EGRESS" : k.dir == SKIFF_SNAT_INGRESS ? " INGRESS" : " dir?");
}

inline std::string nat_str(const skiff_nat_value& v) {
    return Ipv4::from_be(v.addr).str() + ":" + std::to_string(ntohs(v.port)) + " pkts " + std::to_string(v.packets) +
           " bytes " + std::to_string(v.bytes) + " flags " + std::to_string(v.flags);
}

class SnatMaps {
public:
    Status open(const std::string& pin_dir) {
        SKIFF_ASSIGN_OR_RETURN(snat_, datapath::open_pinned_map(pin_dir, SKIFF_MAP_SNAT));
        SKIFF_ASSIGN_OR_RETURN(nomasq_, datapath::open_pinned_map(pin_dir, SKIFF_MAP_NOMASQ));
        SKIFF_ASSIGN_OR_RETURN(config_, datapath::open_pinned_map(pin_dir, SKIFF_MAP_CONFIG));
        SKIFF_ASSIGN_OR_RETURN(trace_, datapath::open_pinned_map(pin_dir, SKIFF_MAP_TRACE));
        return {};
    }
    void close() {
        snat_.reset();
        nomasq_.reset();
        config_.reset();
        trace_.reset();
    }
    int snat_fd() const { return snat_.get(); }

    // The result the last trace-mode run left (skiff_trace).
    skiff_trace_result trace() const {
        return map_get<skiff_trace_result>(trace_.get(), uint32_t{0}).value_or(skiff_trace_result{});
    }

    Status set_config(const skiff_config& c) { return map_put(config_.get(), uint32_t{0}, c, "config: update"); }

    static skiff_node_key lpm_key(const Ipv4Prefix& p) {
        skiff_node_key k{};
        k.prefixlen = static_cast<uint32_t>(p.len());
        k.ip = p.network().be();
        return k;
    }
    Status add_nomasq(const Ipv4Prefix& p) {
        return map_put(nomasq_.get(), lpm_key(p), uint32_t{1}, "nomasq: add " + p.str());
    }
    Status del_nomasq(const Ipv4Prefix& p) { return map_del(nomasq_.get(), lpm_key(p), "nomasq: delete " + p.str()); }

    std::optional<skiff_nat_value> get(const skiff_ct_key& k) const { return map_get<skiff_nat_value>(snat_.get(), k); }
    Status put(const skiff_ct_key& k, const skiff_nat_value& v) { return map_put(snat_.get(), k, v, "snat: update"); }
    Status del(const skiff_ct_key& k) { return map_del(snat_.get(), k, "snat: delete " + nat_str(k)); }

    std::vector<std::pair<skiff_ct_key, skiff_nat_value>> all() const {
        return map_entries<skiff_ct_key, skiff_nat_value>(snat_.get());
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
    UniqueFd snat_, nomasq_, config_, trace_;
};

// ---------------------------------------------------------------------------
// Sockets of the node's own
// ---------------------------------------------------------------------------

// A socket made by this process inside the private netns, where the uplink
// holds the node's address: what the datapath's lookups of the node's
// sockets (bpf_skc_lookup_tcp, bpf_sk_lookup_udp) must find. Closed when
// destroyed.
class NodeSocket {
public:
    // A TCP listener on addr:port (Ipv4(): any address).
    static Result<NodeSocket> tcp_listener(Ipv4 addr, uint16_t port) {
        SKIFF_ASSIGN_OR_RETURN(NodeSocket s, bound(SOCK_STREAM, addr, port));
        if (::listen(s.fd_.get(), 8) != 0) return Error::errno_("listen");
        return s;
    }
    // A UDP socket bound to addr:port.
    static Result<NodeSocket> udp_bound(Ipv4 addr, uint16_t port) { return bound(SOCK_DGRAM, addr, port); }
    // A TCP connection from local:port to dst:dport, left in SYN_SENT (its
    // SYN leaves the uplink toward a MAC nobody answers from).
    static Result<NodeSocket> tcp_connecting(Ipv4 local, uint16_t port, Ipv4 dst, uint16_t dport) {
        SKIFF_ASSIGN_OR_RETURN(NodeSocket s, bound(SOCK_STREAM | SOCK_NONBLOCK, local, port));
        sockaddr_in sa = sockaddr_of(dst, dport);
        if (::connect(s.fd_.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) == 0 || errno != EINPROGRESS)
            return Error::errno_("connect to " + dst.str() + " (want EINPROGRESS)");
        return s;
    }
    void close() { fd_.reset(); }

private:
    static sockaddr_in sockaddr_of(Ipv4 addr, uint16_t port) {
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = addr.be();
        sa.sin_port = htons(port);
        return sa;
    }
    static Result<NodeSocket> bound(int type, Ipv4 addr, uint16_t port) {
        // Never open anything outside the private namespace.
        const auto& net = test_net();
        if (!net.ok()) return net.error().wrap("no private netns");
        SKIFF_TRY(detail::check_private_netns(*net));
        NodeSocket s;
        s.fd_.reset(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
        if (!s.fd_.valid()) return Error::errno_("socket");
        // IP_FREEBIND: also addresses the netns does not have (its lo is down).
        int one = 1;
        if (::setsockopt(s.fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
            ::setsockopt(s.fd_.get(), IPPROTO_IP, IP_FREEBIND, &one, sizeof(one)) != 0)
            return Error::errno_("setsockopt");
        sockaddr_in sa = sockaddr_of(addr, port);
        if (::bind(s.fd_.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) != 0)
            return Error::errno_("bind " + addr.str() + ":" + std::to_string(port));
        return s;
    }

    UniqueFd fd_;
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

// Recompute the ICMP checksum of an IPv4 frame over the whole message.
inline void icmp_fix_checksum(Bytes& f) {
    const size_t off = l4_offset(f);
    put16(&f[off + kIcmpCheck], 0);
    put16(&f[off + kIcmpCheck], inet_checksum(&f[off], ip_end(f) - off));
}

// The IP packet of an Ethernet frame (without trailing bytes).
inline Bytes ip_packet_of(const Bytes& f) { return Bytes(f.begin() + kEthHlen, f.begin() + ip_end(f)); }

// in (an ICMP echo frame) with new MACs, TTL - ttl_dec, the given addresses
// and identifier, both checksums recomputed from scratch.
inline Bytes icmp_rewritten(const Bytes& in, const MacAddr& eth_dst, const MacAddr& eth_src, uint8_t ttl_dec,
                            Ipv4 saddr, Ipv4 daddr, uint16_t id) {
    Bytes f = in;
    rewrite_l3(f, eth_dst, eth_src, ttl_dec, saddr, daddr);
    put16(&f[l4_offset(f) + kIcmpId], id);
    icmp_fix_checksum(f);
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
    rewrite_l3(f, pod.pod.mac, pod.host.mac, 1, frame_saddr(in), pod_ip);
    const size_t inner = l4_offset(f) + 8;
    put32(&f[inner + kIpSaddr], pod_ip.value());
    ipv4_fix_checksum(&f[inner]);
    const size_t port = inner + 20 + (f[inner + kIpProto] == IPPROTO_ICMP ? kIcmpId : 0);
    put16(&f[port], pod_port);
    icmp_fix_checksum(f);
    return f;
}

// ---------------------------------------------------------------------------
// snat_test.cc, snat_reply_test.cc
// ---------------------------------------------------------------------------

namespace snat {

// This node: 192.168.1.11 (remote_env.h's uplink address), PodCIDR
// 10.244.1.0/24, cluster CIDR 10.244.0.0/16.
inline const Ipv4 kNode = kUplinkIp;
inline const Ipv4Prefix kClusterCidr(Ipv4(0x0af40000), 16);
inline const Ipv4Prefix kLocalCidr(Ipv4(0x0af40100), 24);
inline const Ipv4 kPodA(0x0af4010a);  // 10.244.1.10: host veth skt-rpd-h (forwarding on, remote_env.h)
inline const Ipv4 kPodB(0x0af40114);  // 10.244.1.20: host veth skt-src-h (forwarding switched on per test)
// Another node, 192.168.1.12 (neighbour known), owns 10.244.5.0/24.
inline const Ipv4 kOtherNode = kNodeNeighIp;
inline const Ipv4Prefix kRemoteCidr(Ipv4(0x0af40500), 24);
inline const Ipv4 kRemotePod(0x0af40505);      // 10.244.5.5
inline const Ipv4 kClusterNoNode(0x0af4c801);  // 10.244.200.1: cluster CIDR, no node
// Outside the cluster.
inline const Ipv4 kOutside = kSnatOutside;    // 192.168.1.200, neighbour known
inline const Ipv4 kOutside2 = kSnatOutside2;  // 192.168.1.201, neighbour known
inline const Ipv4 kOutsideViaGw(0x0a320063);  // 10.50.0.99: behind the gateway 192.168.1.1
inline const Ipv4 kRouter(0xc0a801fe);        // 192.168.1.254: sends ICMP errors
inline const MacAddr kRouterMac{0x02, 0x5c, 0x1f, 0x00, 0x01, 0xfe};
inline const Ipv4Prefix kExtraNoMasq(Ipv4(0xac100000), 12);  // 172.16.0.0/12: a nonMasqueradeCIDR
inline const Ipv4 kInExtraNoMasq(0xac100505);                // 172.16.5.5

constexpr uint16_t kNatMin = 61000, kNatMax = 61009;  // 10 ports

inline skiff_config config(uint32_t flags = SKIFF_CFG_F_MASQUERADE, uint16_t nat_min = kNatMin,
                           uint16_t nat_max = kNatMax) {
    skiff_config c{};
    c.node_ip = kNode.be();
    c.flags = flags;
    c.nat_port_min = nat_min;
    c.nat_port_max = nat_max;
    set_cluster_range(c, kClusterCidr);  // as the agent sets it
    return c;
}

// The snat keys of a flow: for ICMP echo the identifier is the request's
// source port and the reply's destination port (the other port is 0).
inline skiff_ct_key egress_key(Ipv4 pod, Ipv4 dst, uint16_t sport, uint16_t dport, uint8_t proto) {
    return ct_key(pod, dst, sport, proto == kIcmp ? 0 : dport, proto, SKIFF_SNAT_EGRESS);
}
inline skiff_ct_key ingress_key(Ipv4 dst, uint16_t dport, uint16_t nat_port, uint8_t proto) {
    return ct_key(dst, kNode, proto == kIcmp ? 0 : dport, nat_port, proto, SKIFF_SNAT_INGRESS);
}

class SnatTest : public RemoteNetTest {
protected:
    void SetUp() override {
        ASSERT_NO_FATAL_FAILURE(enter_remote_net());
        const auto& sn = snat_net();
        ASSERT_TRUE(sn.ok()) << sn.error().message;
        veth_a_ = &rn_->pod;
        veth_b_ = &net_->src;
        // bpf_fib_lookup() on ingress needs forwarding on skb->ifindex.
        ASSERT_OK(fwd_b_.enable("skt-src-h"));

        ASSERT_NO_FATAL_FAILURE(load_pinned(kWithUplink | kWithNodes));
        ASSERT_NO_FATAL_FAILURE(load(datapath::Program::ToUplink, to_uplink_));
        ASSERT_OK(maps_.open(pins_.path()));

        ASSERT_OK(endpoints_->upsert(kPodA, endpoint(*veth_a_)));
        ASSERT_OK(endpoints_->upsert(kPodB, endpoint(*veth_b_)));
        ASSERT_OK(nodes_->upsert(kLocalCidr, node(kNode, SKIFF_NODE_F_LOCAL)));
        ASSERT_OK(nodes_->upsert(kRemoteCidr, node(kOtherNode)));
        ASSERT_OK(maps_.add_nomasq(kClusterCidr));
        ASSERT_OK(maps_.add_nomasq(Ipv4Prefix(kNode, 32)));
        ASSERT_OK(maps_.add_nomasq(Ipv4Prefix(kOtherNode, 32)));
        ASSERT_OK(maps_.set_config(config()));

        EXPECT_EQ(describe(counters()), describe(Counters{}));  // fresh maps per test
        ASSERT_EQ(maps_.all().size(), 0u) << maps_.dump();
    }

    void TearDown() override {
        sockets_.clear();
        maps_.close();
        to_uplink_.reset();
        RemoteNetTest::TearDown();
    }

    const TestVeth& veth_of(Ipv4 pod) const { return pod == kPodB ? *veth_b_ : *veth_a_; }
    const MacAddr& uplink_mac() const { return uplink_->host.mac; }

    // --- frames ---

    // As the pod sends it into its veth.
    Bytes pod_frame(Ipv4 pod, Ipv4 dst, uint8_t proto, const Bytes& l4, uint8_t ttl = 64) const {
        return eth_from_pod(veth_of(pod), ipv4_packet(ipv4_spec(pod, dst, proto, l4, ttl)));
    }
    Bytes tcp_from(Ipv4 pod, Ipv4 dst, uint16_t sport, uint16_t dport, uint8_t flags = kTcpSyn, size_t payload = 0,
                   uint8_t ttl = 64) const {
        return pod_frame(pod, dst, kTcp,
                         tcp_segment(pod, dst, sport, dport, 0x11223344, flags & kTcpAck ? 0x55667788 : 0, flags, {},
                                     pattern(payload)),
                         ttl);
    }
    Bytes udp_from(Ipv4 pod, Ipv4 dst, uint16_t sport, uint16_t dport, size_t payload = 16,
                   bool no_checksum = false) const {
        Bytes u = udp(pod, dst, sport, dport, pattern(payload, 3));
        if (no_checksum) put16(&u[kUdpCheck], 0);
        return pod_frame(pod, dst, kUdp, u);
    }
    Bytes ping_from(Ipv4 pod, Ipv4 dst, uint16_t id, uint16_t seq = 1, size_t payload = 32) const {
        return pod_frame(pod, dst, kIcmp, icmp_echo(id, seq, pattern(payload, 9)));
    }
    // As it arrives on the uplink from src_mac.
    Bytes wire(const MacAddr& src_mac, Ipv4 src, Ipv4 dst, uint8_t proto, const Bytes& l4, uint8_t ttl = 60) const {
        Ipv4Spec s = ipv4_spec(src, dst, proto, l4, ttl);
        s.id = 0x4321;
        return eth_from_wire(*uplink_, src_mac, ipv4_packet(s));
    }
    // An ICMP error from the router to the node (or to), quoting quote.
    Bytes icmp_error(uint8_t type, uint8_t code, uint32_t rest, const Bytes& quote, Ipv4 to = kNode) const {
        Ipv4Spec s = ipv4_spec(kRouter, to, kIcmp, icmp_error_msg(type, code, rest, quote), 255);
        s.id = 0;
        s.frag_off = 0;
        return eth_from_wire(*uplink_, kRouterMac, ipv4_packet(s));
    }

    // The node's own packet as its stack sends it out of the uplink (to
    // next_hop_mac), from src (normally the node).
    Bytes node_frame(Ipv4 dst, uint8_t proto, const Bytes& l4, Ipv4 src = kNode,
                     const MacAddr& next_hop_mac = kSnatOutsideMac) const {
        return ethernet(next_hop_mac, uplink_mac(), kEthPIp, ipv4_packet(ipv4_spec(src, dst, proto, l4)));
    }
    Bytes node_tcp(Ipv4 dst, uint16_t sport, uint16_t dport, uint8_t flags = kTcpSyn, size_t payload = 0) const {
        return node_frame(dst, kTcp,
                          tcp_segment(kNode, dst, sport, dport, 0x01020304, flags & kTcpAck ? 0x0a0b0c0d : 0, flags, {},
                                      pattern(payload, 1)));
    }
    Bytes node_udp(Ipv4 dst, uint16_t sport, uint16_t dport, size_t payload = 24) const {
        return node_frame(dst, kUdp, udp(kNode, dst, sport, dport, pattern(payload, 5)));
    }
    Bytes node_ping(Ipv4 dst, uint16_t id, uint16_t seq = 1, size_t payload = 40) const {
        return node_frame(dst, kIcmp, icmp_echo(id, seq, pattern(payload, 11)));
    }

    // BPF_PROG_TEST_RUN with skb->mark set (and read back in RunResult::ctx).
    static RunResult run_marked(int prog_fd, const Bytes& f, int ifindex, uint32_t mark) {
        __sk_buff ctx{};
        ctx.ifindex = static_cast<uint32_t>(ifindex);
        ctx.mark = mark;
        return test_run(prog_fd, f, ctx);
    }
    RunResult run_pod(const Bytes& f, Ipv4 pod, uint32_t mark = 0) {
        return run_marked(from_pod_.get(), f, veth_of(pod).host.ifindex, mark);
    }
    RunResult run_uplink_marked(const Bytes& f, uint32_t mark) {
        return run_marked(from_uplink_.get(), f, uplink_->host.ifindex, mark);
    }
    // The uplink's egress (to_uplink).
    RunResult run_to_uplink(const Bytes& f, uint32_t mark = 0) {
        return run_marked(to_uplink_.get(), f, uplink_->host.ifindex, mark);
    }

    // A socket of the node's, open until the test ends (or closed); nullptr
    // (and a failure) if it could not be made.
    NodeSocket* node_socket(Result<NodeSocket> s) {
        EXPECT_TRUE(s.ok()) << s.error().message;
        if (!s.ok()) return nullptr;
        sockets_.push_back(std::make_unique<NodeSocket>(std::move(s).value()));
        return sockets_.back().get();
    }

    // --- checks ---

    // IPv4 header checksum, and the transport or ICMP checksum.
    static void expect_valid(const Bytes& f) {
        ASSERT_GE(f.size(), kEthHlen + 20);
        const size_t hlen = (f[kEthHlen] & 0xfu) * 4u;
        EXPECT_TRUE(checksum_verifies(&f[kEthHlen], hlen)) << "IPv4 header checksum: " << hex(&f[kEthHlen], hlen);
        const uint8_t proto = f[kEthHlen + kIpProto];
        if (proto == kIcmp) {
            EXPECT_TRUE(icmp_checksum_verifies(f)) << "ICMP checksum: " << hex(f);
        } else if (!(proto == kUdp && get16(&f[l4_offset(f) + kUdpCheck]) == 0)) {
            EXPECT_TRUE(l4_checksum_verifies(f)) << "transport checksum: " << hex(f);
        }
    }

    // Sends in (from pod) and expects it masqueraded: source = the node,
    // out of the uplink to next_hop_mac, TTL - 1, everything else as sent
    // but the source port (ICMP echo: identifier). Returns the NAT port,
    // 0 on failure; *out gets the frame as it left.
    uint16_t send_out(const Bytes& in, Ipv4 pod, const MacAddr& next_hop_mac = kSnatOutsideMac, Bytes* out = nullptr) {
        RunResult r = run_pod(in, pod);
        EXPECT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_EQ(r.retval, kRedirect) << describe(counters()) << maps_.dump();
        EXPECT_EQ(r.data.size(), in.size());
        if (r.err != 0 || r.retval != kRedirect || r.data.size() != in.size()) return 0;
        expect_valid(r.data);
        if (out) *out = r.data;
        const uint8_t proto = in[kEthHlen + kIpProto];
        const Ipv4 dst = frame_daddr(in);
        EXPECT_EQ(frame_saddr(r.data).str(), kNode.str()) << "source: the node";
        EXPECT_EQ(frame_daddr(r.data).str(), dst.str()) << "destination untouched";
        const size_t off = l4_offset(r.data);
        if (proto == kIcmp) {
            const uint16_t id = get16(&r.data[off + kIcmpId]);
            EXPECT_EQ(hex(r.data), hex(icmp_rewritten(in, next_hop_mac, uplink_mac(), 1, kNode, dst, id)));
            return id;
        }
        const uint16_t nat = frame_sport(r.data);
        EXPECT_EQ(hex(r.data), hex(rewritten(in, next_hop_mac, uplink_mac(), 1, kNode, nat, dst, frame_dport(in))));
        return nat;
    }

    // Sends in from pod and expects it to leave untranslated (source and
    // ports as sent), with the given verdict; no snat entry is created.
    void expect_not_translated(const Bytes& in, Ipv4 pod, uint32_t verdict) {
        const size_t before = maps_.all().size();
        RunResult r = run_pod(in, pod);
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_EQ(r.retval, verdict) << describe(counters());
        ASSERT_EQ(r.data.size(), in.size());
        EXPECT_EQ(frame_saddr(r.data).str(), pod.str()) << "source must be the pod's";
        EXPECT_EQ(hex(&r.data[l4_offset(r.data)], 8), hex(&in[l4_offset(in)], 8)) << "ports untouched";
        if (verdict == kOk) {
            EXPECT_EQ(hex(r.data), hex(in)) << "handed to the stack unchanged";
        }
        EXPECT_EQ(maps_.all().size(), before) << maps_.dump();
    }

    // Both entries of a translated flow, with the right fields.
    void expect_flow(Ipv4 pod, uint16_t pod_port, Ipv4 dst, uint16_t dport, uint8_t proto, uint16_t nat_port,
                     uint64_t packets, uint64_t bytes) {
        SCOPED_TRACE("flow " + pod.str() + ":" + std::to_string(pod_port) + " -> " + dst.str() + ":" +
                     std::to_string(dport) + " as " + std::to_string(nat_port));
        auto eg = maps_.get(egress_key(pod, dst, pod_port, dport, proto));
        ASSERT_TRUE(eg.has_value()) << "no EGRESS entry" << maps_.dump();
        EXPECT_EQ(Ipv4::from_be(eg->addr).str(), kNode.str());
        EXPECT_EQ(ntohs(eg->port), nat_port);
        EXPECT_EQ(eg->packets, packets);
        EXPECT_EQ(eg->bytes, bytes);
        EXPECT_NE(eg->created_ns, 0u);
        EXPECT_GE(eg->last_seen_ns, eg->created_ns);
        auto ig = maps_.get(ingress_key(dst, dport, nat_port, proto));
        ASSERT_TRUE(ig.has_value()) << "no INGRESS entry" << maps_.dump();
        EXPECT_EQ(Ipv4::from_be(ig->addr).str(), pod.str());
        EXPECT_EQ(ntohs(ig->port), pod_port);
        EXPECT_NE(ig->created_ns, 0u);
    }

    // Every EGRESS entry has its own INGRESS entry pointing back at it, no
    // INGRESS key serves two flows, and there are no other entries.
    // Returns the NAT ports per destination tuple.
    std::multiset<uint16_t> expect_consistent_pairs() {
        const auto all = maps_.all();
        std::map<std::vector<uint8_t>, skiff_nat_value> ingress;
        size_t n_egress = 0;
        for (const auto& [k, v] : all) {
            if (k.dir == SKIFF_SNAT_INGRESS) {
                std::vector<uint8_t> raw(reinterpret_cast<const uint8_t*>(&k),
                                         reinterpret_cast<const uint8_t*>(&k) + sizeof(k));
                EXPECT_TRUE(ingress.emplace(raw, v).second) << "INGRESS key listed twice";
            } else {
                EXPECT_EQ(k.dir, SKIFF_SNAT_EGRESS) << nat_str(k);
                ++n_egress;
            }
        }
        std::set<std::vector<uint8_t>> used;
        std::multiset<uint16_t> ports;
        for (const auto& [k, v] : all) {
            if (k.dir != SKIFF_SNAT_EGRESS) continue;
            const skiff_ct_key rk = agent::snat_partner(k, v);  // as the agent's GC pairs them
            std::vector<uint8_t> raw(reinterpret_cast<const uint8_t*>(&rk),
                                     reinterpret_cast<const uint8_t*>(&rk) + sizeof(rk));
            EXPECT_EQ(Ipv4::from_be(v.addr).str(), kNode.str()) << nat_str(k);
            auto it = ingress.find(raw);
            if (it == ingress.end()) {
                ADD_FAILURE() << "no INGRESS entry for " << nat_str(k) << maps_.dump();
                continue;
            }
            EXPECT_TRUE(used.insert(raw).second) << "INGRESS " << nat_str(rk) << " shared by two flows" << maps_.dump();
            EXPECT_EQ(it->second.addr, k.saddr) << nat_str(rk) << " points at the wrong pod";
            EXPECT_EQ(it->second.port, k.sport) << nat_str(rk) << " points at the wrong port";
            ports.insert(ntohs(v.port));
        }
        EXPECT_EQ(ingress.size(), n_egress) << "orphan INGRESS entries" << maps_.dump();
        return ports;
    }

    // A reply arriving on the uplink, expected translated into pod.
    void expect_reply_into_pod(const Bytes& reply, Ipv4 pod, uint16_t pod_port) {
        RunResult r = run_uplink(reply);
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_EQ(r.retval, kRedirect) << describe(counters()) << maps_.dump();
        ASSERT_EQ(r.data.size(), reply.size());
        expect_valid(r.data);
        const TestVeth& v = veth_of(pod);
        const uint8_t proto = reply[kEthHlen + kIpProto];
        if (proto == kIcmp) {
            EXPECT_EQ(hex(r.data),
                      hex(icmp_rewritten(reply, v.pod.mac, v.host.mac, 1, frame_saddr(reply), pod, pod_port)));
        } else {
            EXPECT_EQ(hex(r.data), hex(rewritten(reply, v.pod.mac, v.host.mac, 1, frame_saddr(reply),
                                                 frame_sport(reply), pod, pod_port)));
        }
    }

    // An ICMP error arriving on the uplink, expected translated into pod.
    void expect_error_into_pod(const Bytes& err, Ipv4 pod, uint16_t pod_port) {
        RunResult r = run_uplink(err);
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_EQ(r.retval, kRedirect) << describe(counters()) << maps_.dump();
        ASSERT_EQ(r.data.size(), err.size());
        const Bytes& o = r.data;
        const TestVeth& v = veth_of(pod);
        const size_t off = l4_offset(o), inner = off + 8;
        EXPECT_TRUE(checksum_verifies(&o[kEthHlen], 20)) << "outer IPv4 checksum";
        EXPECT_TRUE(icmp_checksum_verifies(o)) << "ICMP checksum over the whole message";
        EXPECT_TRUE(checksum_verifies(&o[inner], 20)) << "quoted IPv4 header checksum";
        EXPECT_EQ(frame_saddr(o).str(), kRouter.str()) << "outer source untouched";
        EXPECT_EQ(frame_daddr(o).str(), pod.str()) << "outer destination: the pod";
        EXPECT_EQ(Ipv4(get32(&o[inner + kIpSaddr])).str(), pod.str()) << "quoted source: the pod";
        EXPECT_EQ(hex(&o[inner + kIpDaddr], 4), hex(&err[inner + kIpDaddr], 4)) << "quoted destination untouched";
        EXPECT_EQ(hex(&o[off], 2), hex(&err[off], 2)) << "type and code";
        EXPECT_EQ(hex(&o[off + 4], 4), hex(&err[off + 4], 4)) << "rest of header (next-hop MTU)";
        EXPECT_EQ(hex(o), hex(icmp_error_to_pod(err, v, pod, pod_port)));
    }

    // An uplink frame expected to go to the stack untouched.
    void expect_uplink_untouched(const Bytes& in) {
        RunResult r = run_uplink(in);
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_EQ(r.retval, kOk) << describe(counters());
        EXPECT_EQ(hex(r.data), hex(in)) << "must not be rewritten";
    }

    const TestVeth* veth_a_ = nullptr;
    const TestVeth* veth_b_ = nullptr;
    ForwardingOn fwd_b_;
    SnatMaps maps_;
    UniqueFd to_uplink_;
    std::vector<std::unique_ptr<NodeSocket>> sockets_;
};

}  // namespace snat

}  // namespace skiff::bpftest
