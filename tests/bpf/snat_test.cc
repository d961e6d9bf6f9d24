// Masquerade (SNAT) under BPF_PROG_TEST_RUN (bpf/lib/snat.h):
//  1. from_pod: a flow to a destination outside the no-masquerade set gets
//     the node's address as source and is routed out by FIB lookup; the
//     pod's own port is kept when it is free and not ephemeral, else a port
//     of the configured range is claimed; both skiff_snat entries (EGRESS
//     and INGRESS) are created;
//  2. ports: ephemeral source ports, two pods with the same port, UDP with
//     and without a checksum, ICMP echo identifiers, range exhaustion;
//  3. destinations never translated (skiff_nomasq, the node itself) and the
//     MASQUERADE flag off;
//  4. from_uplink: replies translated back into the pod (TCP, UDP, ICMP
//     echo reply);
//  5. from_uplink: ICMP errors about a translated flow (fragmentation
//     needed, time exceeded, port unreachable), quoted header included;
//  6. robustness: established flows, two CPUs racing on one new flow,
//     truncated ICMP errors, pre-claimed tuples;
//  7. what fwd_fib() does not send (TTL expiring, FIB miss) and fragments.
//
// The outside hosts are 192.168.1.200/.201 with neighbour entries (see
// snat_env.h), so translated packets get the FIB's MACs. Note: with the
// node's ephemeral range 32768-60999, "own port kept" needs a port outside
// it (30000 here); 40000 is ephemeral and gets a range port.
//
// Maps are filled directly (one pin dir per test: fresh maps). Output
// frames are compared byte for byte with frames the test builds itself,
// checksums recomputed from scratch. BPF_PROG_TEST_RUN reports the verdict
// but does not perform a redirect.
//
// Tests marked "BUG:" fail on purpose: they describe a production bug.
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "snat_env.h"

namespace skiff::bpftest {
namespace {

constexpr uint32_t kRedirect = TC_ACT_REDIRECT;  // 7
constexpr uint32_t kOk = TC_ACT_OK;              // 0
constexpr uint32_t kShot = TC_ACT_SHOT;          // 2
static_assert(kRedirect == 7 && kOk == 0 && kShot == 2);

constexpr uint8_t kTcp = IPPROTO_TCP;
constexpr uint8_t kUdp = IPPROTO_UDP;
constexpr uint8_t kIcmp = IPPROTO_ICMP;

// This node: 192.168.1.11 (remote_env.h's uplink address), PodCIDR
// 10.244.1.0/24, cluster CIDR 10.244.0.0/16.
const Ipv4 kNode = kUplinkIp;
const Ipv4Prefix kClusterCidr(Ipv4(0x0af40000), 16);
const Ipv4Prefix kLocalCidr(Ipv4(0x0af40100), 24);
const Ipv4 kPodA(0x0af4010a);  // 10.244.1.10: host veth skt-rpd-h (forwarding on, remote_env.h)
const Ipv4 kPodB(0x0af40114);  // 10.244.1.20: host veth skt-src-h (forwarding switched on per test)
// Another node, 192.168.1.12 (neighbour known), owns 10.244.5.0/24.
const Ipv4 kOtherNode = kNodeNeighIp;
const Ipv4Prefix kRemoteCidr(Ipv4(0x0af40500), 24);
const Ipv4 kRemotePod(0x0af40505);      // 10.244.5.5
const Ipv4 kClusterNoNode(0x0af4c801);  // 10.244.200.1: cluster CIDR, no node
// Outside the cluster.
const Ipv4 kOutside = kSnatOutside;    // 192.168.1.200, neighbour known
const Ipv4 kOutside2 = kSnatOutside2;  // 192.168.1.201, neighbour known
const Ipv4 kOutsideViaGw(0x0a320063);  // 10.50.0.99: behind the gateway 192.168.1.1
const Ipv4 kRouter(0xc0a801fe);        // 192.168.1.254: sends ICMP errors
const MacAddr kRouterMac{0x02, 0x5c, 0x1f, 0x00, 0x01, 0xfe};
const Ipv4Prefix kExtraNoMasq(Ipv4(0xac100000), 12);  // 172.16.0.0/12: a nonMasqueradeCIDR
const Ipv4 kInExtraNoMasq(0xac100505);                // 172.16.5.5

constexpr uint16_t kNatMin = 61000, kNatMax = 61009;  // 10 ports
constexpr uint16_t kEphMin = 32768, kEphMax = 60999;

skiff_endpoint_info endpoint(const TestVeth& v, uint32_t flags = SKIFF_EP_F_LOCAL) {
    skiff_endpoint_info e{};
    e.ifindex = static_cast<uint32_t>(v.host.ifindex);
    e.flags = flags;
    std::memcpy(e.pod_mac, v.pod.mac.data(), 6);
    std::memcpy(e.host_mac, v.host.mac.data(), 6);
    return e;
}

skiff_node_info node(Ipv4 node_ip, uint32_t flags = 0) {
    skiff_node_info n{};
    n.node_ip = node_ip.be();
    n.flags = flags;
    return n;
}

skiff_config config(uint32_t flags = SKIFF_CFG_F_MASQUERADE, uint16_t nat_min = kNatMin,
                    uint16_t nat_max = kNatMax) {
    skiff_config c{};
    c.node_ip = kNode.be();
    c.flags = flags;
    c.nat_port_min = nat_min;
    c.nat_port_max = nat_max;
    c.eph_port_min = kEphMin;
    c.eph_port_max = kEphMax;
    return c;
}

// The snat keys of a flow: for ICMP echo the identifier is the request's
// source port and the reply's destination port (the other port is 0).
skiff_ct_key egress_key(Ipv4 pod, Ipv4 dst, uint16_t sport, uint16_t dport, uint8_t proto) {
    return ct_key(pod, dst, sport, proto == kIcmp ? 0 : dport, proto, SKIFF_SNAT_EGRESS);
}
skiff_ct_key ingress_key(Ipv4 dst, uint16_t dport, uint16_t nat_port, uint8_t proto) {
    return ct_key(dst, kNode, proto == kIcmp ? 0 : dport, nat_port, proto, SKIFF_SNAT_INGRESS);
}

#define ASSERT_OK(expr)                                                    \
    do {                                                                   \
        auto ok_r_ = (expr);                                               \
        ASSERT_TRUE(ok_r_.ok()) << #expr << ": " << ok_r_.error().message; \
    } while (0)

class SnatTest : public ::testing::Test {
protected:
    void SetUp() override {
        const auto& rn = remote_net();
        ASSERT_TRUE(rn.ok()) << rn.error().message;
        const auto& sn = snat_net();
        ASSERT_TRUE(sn.ok()) << sn.error().message;
        rn_ = &rn.value();
        net_ = rn_->base;
        veth_a_ = &rn_->pod;
        veth_b_ = &net_->src;
        // bpf_fib_lookup() on ingress needs forwarding on skb->ifindex.
        ASSERT_OK(fwd_b_.enable("skt-src-h"));

        ASSERT_TRUE(pins_.create().ok()) << pins_.path();
        auto pod = bpf::pinned_program(bpf::Program::FromPod, pins_.path());
        ASSERT_TRUE(pod.ok()) << pod.error().message;
        from_pod_ = std::move(pod).value();
        auto upl = bpf::pinned_program(bpf::Program::FromUplink, pins_.path());
        ASSERT_TRUE(upl.ok()) << upl.error().message;
        from_uplink_ = std::move(upl).value();

        auto eps = bpf::EndpointMap::open(pins_.path());
        ASSERT_TRUE(eps.ok()) << eps.error().message;
        endpoints_.emplace(std::move(eps).value());
        auto nodes = bpf::NodeMap::open(pins_.path());
        ASSERT_TRUE(nodes.ok()) << nodes.error().message;
        nodes_.emplace(std::move(nodes).value());
        auto met = bpf::MetricsMap::open(pins_.path());
        ASSERT_TRUE(met.ok()) << met.error().message;
        metrics_.emplace(std::move(met).value());
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
        maps_.close();
        metrics_.reset();
        nodes_.reset();
        endpoints_.reset();
        from_pod_.reset();
        from_uplink_.reset();
        std::string err = pins_.remove();
        EXPECT_EQ(err, "") << "cleanup of " << pins_.path();
    }

    const TestVeth& veth_of(Ipv4 pod) const { return pod == kPodB ? *veth_b_ : *veth_a_; }
    const MacAddr& uplink_mac() const { return rn_->uplink.host.mac; }

    // --- frames ---

    // As the pod sends it into its veth.
    Bytes pod_frame(Ipv4 pod, Ipv4 dst, uint8_t proto, const Bytes& l4, uint8_t ttl = 64) const {
        Ipv4Spec s;
        s.src = pod;
        s.dst = dst;
        s.ttl = ttl;
        s.protocol = proto;
        s.l4 = l4;
        const TestVeth& v = veth_of(pod);
        return ethernet(v.host.mac, v.pod.mac, kEthPIp, ipv4_packet(s));
    }
    Bytes tcp_from(Ipv4 pod, Ipv4 dst, uint16_t sport, uint16_t dport, uint8_t flags = kTcpSyn,
                   size_t payload = 0, uint8_t ttl = 64) const {
        return pod_frame(pod, dst, kTcp,
                         tcp_segment(pod, dst, sport, dport, 0x11223344, flags & kTcpAck ? 0x55667788 : 0, flags,
                                     {}, pattern(payload)),
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
        Ipv4Spec s;
        s.src = src;
        s.dst = dst;
        s.ttl = ttl;
        s.id = 0x4321;
        s.protocol = proto;
        s.l4 = l4;
        return ethernet(uplink_mac(), src_mac, kEthPIp, ipv4_packet(s));
    }
    // An ICMP error from the router to the node (or to), quoting quote.
    Bytes icmp_error(uint8_t type, uint8_t code, uint32_t rest, const Bytes& quote, Ipv4 to = kNode) const {
        Ipv4Spec s;
        s.src = kRouter;
        s.dst = to;
        s.ttl = 255;
        s.id = 0;
        s.frag_off = 0;
        s.protocol = kIcmp;
        s.l4 = icmp_error_msg(type, code, rest, quote);
        return ethernet(uplink_mac(), kRouterMac, kEthPIp, ipv4_packet(s));
    }

    RunResult run_pod(const Bytes& f, Ipv4 pod) { return test_run(from_pod_.get(), f, veth_of(pod).host.ifindex); }
    RunResult run_uplink(const Bytes& f) { return test_run(from_uplink_.get(), f, rn_->uplink.host.ifindex); }

    // --- counters ---

    Counters counters() {
        auto c = read_counters(*metrics_);
        EXPECT_TRUE(c.ok()) << c.error().message;
        return c.ok() ? c.value() : Counters{};
    }
    void expect_counters(const Counters& want) { EXPECT_EQ(describe(counters()), describe(want)); }
    Count counter(uint32_t reason, uint32_t dir) {
        Counters c = counters();
        auto it = c.find({reason, dir});
        return it == c.end() ? Count{} : it->second;
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
    uint16_t send_out(const Bytes& in, Ipv4 pod, const MacAddr& next_hop_mac = kSnatOutsideMac,
                      Bytes* out = nullptr) {
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
        EXPECT_EQ(hex(r.data),
                  hex(rewritten(in, next_hop_mac, uplink_mac(), 1, kNode, nat, dst, frame_dport(in))));
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
            skiff_ct_key rk{};
            rk.saddr = k.daddr;
            rk.daddr = v.addr;
            rk.sport = k.dport;
            rk.dport = v.port;
            rk.proto = k.proto;
            rk.dir = SKIFF_SNAT_INGRESS;
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

    PinDir pins_;
    const RemoteNet* rn_ = nullptr;
    const TestNet* net_ = nullptr;
    const TestVeth* veth_a_ = nullptr;
    const TestVeth* veth_b_ = nullptr;
    ForwardingOn fwd_b_;
    UniqueFd from_pod_, from_uplink_;
    std::optional<bpf::EndpointMap> endpoints_;
    std::optional<bpf::NodeMap> nodes_;
    std::optional<bpf::MetricsMap> metrics_;
    SnatMaps maps_;
};

using SnatEgressTest = SnatTest;
using SnatPortTest = SnatTest;
using SnatExemptTest = SnatTest;
using SnatReplyTest = SnatTest;
using SnatIcmpErrorTest = SnatTest;
using SnatRobustnessTest = SnatTest;
using SnatForwardTest = SnatTest;

// =============================================================================
// 1. from_pod: translation, routing, entries, counters
// =============================================================================

TEST_F(SnatEgressTest, TcpSynKeepsItsOwnPortAndIsRoutedOutByFib) {
    // 30000 is below the node's ephemeral range (32768-60999) and its reply
    // tuple is free. (40000 would be inside the range: a range port.)
    Bytes in = tcp_from(kPodA, kOutside, 30000, 80);
    ASSERT_EQ(in.size(), 54u);
    const uint64_t t0 = monotonic_ns();
    Bytes out;
    const uint16_t nat = send_out(in, kPodA, kSnatOutsideMac, &out);
    const uint64_t t1 = monotonic_ns();
    EXPECT_EQ(nat, 30000) << "own port kept";
    ASSERT_EQ(out.size(), 54u);
    EXPECT_EQ(hex(&out[0], 6), hex(kSnatOutsideMac)) << "destination MAC from the FIB (neighbour)";
    EXPECT_EQ(hex(&out[6], 6), hex(uplink_mac())) << "source MAC: the uplink's";
    EXPECT_EQ(out[kEthHlen + kIpTtl], 63);
    EXPECT_EQ(frame_dport(out), 80);

    expect_flow(kPodA, 30000, kOutside, 80, kTcp, 30000, 1, 54);
    auto eg = maps_.get(egress_key(kPodA, kOutside, 30000, 80, kTcp));
    ASSERT_TRUE(eg);
    EXPECT_GE(eg->created_ns, t0);
    EXPECT_LE(eg->created_ns, t1);
    EXPECT_EQ(eg->flags, 0);
    auto ig = maps_.get(ingress_key(kOutside, 80, 30000, kTcp));
    ASSERT_TRUE(ig);
    EXPECT_EQ(ig->packets, 0u) << "nothing came back yet";
    EXPECT_EQ(ig->bytes, 0u);
    EXPECT_GE(ig->created_ns, t0);
    EXPECT_LE(ig->created_ns, t1);
    EXPECT_EQ(maps_.all().size(), 2u) << maps_.dump();
    expect_consistent_pairs();

    expect_counters({{{SKIFF_FWD_FIB, SKIFF_DIR_EGRESS}, Count{1, 54}},
                     {{SKIFF_SNAT_NEW, SKIFF_DIR_EGRESS}, Count{1, 54}}});
}

TEST_F(SnatEgressTest, DestinationBehindAGatewayGetsTheGatewaysMac) {
    Bytes in = tcp_from(kPodA, kOutsideViaGw, 30000, 443, kTcpSyn, 20);
    EXPECT_EQ(send_out(in, kPodA, kGatewayMac), 30000);
    expect_flow(kPodA, 30000, kOutsideViaGw, 443, kTcp, 30000, 1, in.size());
}

TEST_F(SnatEgressTest, PodWithSpoofedSourceIsDroppedNotTranslated) {
    // Pod B's address sent from pod A's veth: anti-spoofing first.
    Bytes in = tcp_from(kPodB, kOutside, 30000, 80);
    RunResult r = test_run(from_pod_.get(), in, veth_a_->host.ifindex);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, kShot);
    EXPECT_EQ(maps_.all().size(), 0u) << maps_.dump();
    expect_counters({{{SKIFF_DROP_INVALID_SOURCE, SKIFF_DIR_EGRESS}, Count{1, 54}}});
}

// =============================================================================
// 2. Ports
// =============================================================================

TEST_F(SnatPortTest, EphemeralSourcePortsGetARangePortOthersKeepTheirs) {
    struct Case {
        uint16_t sport;
        bool kept;
    };
    // Kept ports first: 61005 lies inside the NAT range, and a range port
    // claimed before it could be 61005.
    const std::vector<Case> cases = {
        {1024, true},    {32767, true},   // below the ephemeral range
        {61005, true},   {65535, true},   // above (61005 even inside the NAT range: its tuple is free)
        {32768, false},  {45000, false}, {60999, false},  // inside: the node's own sockets may use it
    };
    std::set<uint16_t> seen;
    for (const auto& c : cases) {
        SCOPED_TRACE("sport " + std::to_string(c.sport));
        Bytes in = tcp_from(kPodA, kOutside, c.sport, 443);
        const uint16_t nat = send_out(in, kPodA);
        if (c.kept) {
            EXPECT_EQ(nat, c.sport);
        } else {
            EXPECT_GE(nat, kNatMin);
            EXPECT_LE(nat, kNatMax);
        }
        EXPECT_TRUE(seen.insert(nat).second) << "port " << nat << " handed out twice";
        expect_flow(kPodA, c.sport, kOutside, 443, kTcp, nat, 1, in.size());
    }
    expect_consistent_pairs();
    EXPECT_EQ(counter(SKIFF_SNAT_NEW, SKIFF_DIR_EGRESS).packets, cases.size());
    EXPECT_EQ(counter(SKIFF_FWD_FIB, SKIFF_DIR_EGRESS).packets, cases.size());
}

TEST_F(SnatPortTest, TwoPodsWithTheSameSourcePortGetDistinctPorts) {
    for (uint16_t sport : {uint16_t{30000}, uint16_t{45000}}) {
        SCOPED_TRACE("sport " + std::to_string(sport));
        const uint16_t a = send_out(tcp_from(kPodA, kOutside, sport, 80), kPodA);
        const uint16_t b = send_out(tcp_from(kPodB, kOutside, sport, 80), kPodB);
        ASSERT_NE(a, 0);
        ASSERT_NE(b, 0);
        EXPECT_NE(a, b) << "one reply tuple for two flows";
        if (sport == 30000) {
            EXPECT_EQ(a, 30000) << "the first pod keeps its port";
        }
        EXPECT_GE(b, kNatMin) << "the second pod gets a range port";
        EXPECT_LE(b, kNatMax);
        expect_flow(kPodA, sport, kOutside, 80, kTcp, a, 1, 54);
        expect_flow(kPodB, sport, kOutside, 80, kTcp, b, 1, 54);

        // And the replies find their own pod.
        expect_reply_into_pod(wire(kSnatOutsideMac, kOutside, kNode, kTcp,
                                   tcp_segment(kOutside, kNode, 80, a, 9, 0x11223345, kTcpSyn | kTcpAck, {}, {})),
                              kPodA, sport);
        expect_reply_into_pod(wire(kSnatOutsideMac, kOutside, kNode, kTcp,
                                   tcp_segment(kOutside, kNode, 80, b, 9, 0x11223345, kTcpSyn | kTcpAck, {}, {})),
                              kPodB, sport);
    }
    const auto ports = expect_consistent_pairs();
    EXPECT_EQ(ports.size(), 4u);
    EXPECT_EQ(std::set<uint16_t>(ports.begin(), ports.end()).size(), 4u) << "same destination: all ports distinct";
    EXPECT_EQ(maps_.count(SKIFF_SNAT_INGRESS), 4u) << maps_.dump();
}

TEST_F(SnatPortTest, FillingTheRangeHandsOutEveryPortExactlyOnce) {
    // 10 ephemeral flows to one destination: all 10 range ports, each once.
    std::set<uint16_t> got;
    for (uint16_t i = 0; i < 10; ++i) {
        const Ipv4 pod = i % 2 ? kPodB : kPodA;
        const uint16_t nat = send_out(tcp_from(pod, kOutside, static_cast<uint16_t>(50000 + i / 2), 80), pod);
        EXPECT_TRUE(got.insert(nat).second) << "port " << nat << " twice";
    }
    std::set<uint16_t> want;
    for (uint16_t p = kNatMin; p <= kNatMax; ++p) want.insert(p);
    EXPECT_EQ(got, want);
    expect_consistent_pairs();
    // The same pod ports to another destination: the range again.
    std::set<uint16_t> got2;
    for (uint16_t i = 0; i < 10; ++i) {
        const Ipv4 pod = i % 2 ? kPodB : kPodA;
        got2.insert(send_out(tcp_from(pod, kOutside2, static_cast<uint16_t>(50000 + i / 2), 80), pod,
                             kSnatOutside2Mac));
    }
    EXPECT_EQ(got2, want) << "NAT ports are per destination";
    expect_consistent_pairs();
    EXPECT_EQ(maps_.all().size(), 40u);
}

TEST_F(SnatPortTest, UdpWithAChecksumIsTranslatedWithAValidChecksum) {
    Bytes kept = udp_from(kPodA, kOutside, 5353, 53, 40);
    EXPECT_EQ(send_out(kept, kPodA), 5353);
    expect_flow(kPodA, 5353, kOutside, 53, kUdp, 5353, 1, kept.size());

    Bytes eph = udp_from(kPodA, kOutside, 50000, 53, 41);
    Bytes out;
    const uint16_t nat = send_out(eph, kPodA, kSnatOutsideMac, &out);
    EXPECT_GE(nat, kNatMin);
    EXPECT_LE(nat, kNatMax);
    EXPECT_NE(get16(&out[l4_offset(out) + kUdpCheck]), 0) << "a UDP checksum is never turned into 'none'";
    expect_flow(kPodA, 50000, kOutside, 53, kUdp, nat, 1, eph.size());
    expect_consistent_pairs();
}

TEST_F(SnatPortTest, UdpWithoutAChecksumStaysWithoutOne) {
    for (uint16_t sport : {uint16_t{5353}, uint16_t{50000}}) {
        SCOPED_TRACE("sport " + std::to_string(sport));
        Bytes in = udp_from(kPodA, kOutside, sport, 53, 33, /*no_checksum=*/true);
        ASSERT_EQ(get16(&in[l4_offset(in) + kUdpCheck]), 0);
        Bytes out;
        const uint16_t nat = send_out(in, kPodA, kSnatOutsideMac, &out);
        ASSERT_FALSE(out.empty());
        EXPECT_EQ(get16(&out[l4_offset(out) + kUdpCheck]), 0) << "checksum 0 ('none') must stay 0";
        if (sport == 5353) {
            EXPECT_EQ(nat, 5353);
        }
    }
    expect_consistent_pairs();
}

TEST_F(SnatPortTest, UdpChecksumThatTranslatesToZeroIsSentAsAllOnes) {
    // Choose 2 payload bytes so that, with the node as source, the computed
    // checksum is 0: RFC 768 sends it as 0xffff (0 would mean "none").
    const uint16_t sport = 5000, dport = 53;
    Bytes probe = udp(kNode, kOutside, sport, dport, Bytes{0, 0});
    put16(&probe[kUdpCheck], 0);
    const uint16_t sum = csum_fold(csum_add(pseudo_header_sum(kNode, kOutside, kUdp, probe.size()), probe.data(),
                                            probe.size()));
    const uint16_t w = static_cast<uint16_t>(0xffff - sum);
    Bytes payload = {static_cast<uint8_t>(w >> 8), static_cast<uint8_t>(w)};
    Bytes check = udp(kNode, kOutside, sport, dport, payload);
    ASSERT_EQ(get16(&check[kUdpCheck]), 0xffff) << "the crafted datagram must compute to 0";

    Bytes in = pod_frame(kPodA, kOutside, kUdp, udp(kPodA, kOutside, sport, dport, payload));
    ASSERT_NE(get16(&in[l4_offset(in) + kUdpCheck]), 0);
    Bytes out;
    EXPECT_EQ(send_out(in, kPodA, kSnatOutsideMac, &out), sport);
    ASSERT_FALSE(out.empty());
    EXPECT_EQ(get16(&out[l4_offset(out) + kUdpCheck]), 0xffff);
}

TEST_F(SnatPortTest, IcmpEchoKeepsItsIdentifierWhenFree) {
    // Identifiers are not ports of the node's sockets: kept even when they
    // fall inside the ephemeral port range.
    for (uint16_t id : {uint16_t{7}, uint16_t{50000}}) {
        SCOPED_TRACE("id " + std::to_string(id));
        Bytes in = ping_from(kPodA, kOutside, id);
        EXPECT_EQ(send_out(in, kPodA), id);
        expect_flow(kPodA, id, kOutside, 0, kIcmp, id, 1, in.size());
    }
    expect_consistent_pairs();
    expect_counters({{{SKIFF_FWD_FIB, SKIFF_DIR_EGRESS}, Count{2, 2 * 74}},
                     {{SKIFF_SNAT_NEW, SKIFF_DIR_EGRESS}, Count{2, 2 * 74}}});
}

TEST_F(SnatPortTest, IcmpEchoIdentifierTakenByAnotherPodIsChangedWithAValidChecksum) {
    const uint16_t id = 0x1234;
    EXPECT_EQ(send_out(ping_from(kPodA, kOutside, id), kPodA), id);
    Bytes in = ping_from(kPodB, kOutside, id, 3, 56);
    Bytes out;
    const uint16_t nat = send_out(in, kPodB, kSnatOutsideMac, &out);
    EXPECT_GE(nat, kNatMin);
    EXPECT_LE(nat, kNatMax);
    ASSERT_FALSE(out.empty());
    EXPECT_TRUE(icmp_checksum_verifies(out)) << "ICMP checksum after the identifier changed";
    EXPECT_EQ(get16(&out[l4_offset(out) + 6]), 3) << "sequence untouched";
    expect_flow(kPodB, id, kOutside, 0, kIcmp, nat, 1, in.size());
    expect_consistent_pairs();
}

TEST_F(SnatPortTest, ExhaustedRangeDropsNewFlowsAndKeepsExistingOnes) {
    ASSERT_OK(maps_.set_config(config(SKIFF_CFG_F_MASQUERADE, 61000, 61001)));
    const uint16_t p1 = send_out(tcp_from(kPodA, kOutside, 45000, 80), kPodA);
    const uint16_t p2 = send_out(tcp_from(kPodA, kOutside, 45001, 80), kPodA);
    EXPECT_EQ((std::set<uint16_t>{p1, p2}), (std::set<uint16_t>{61000, 61001}));
    ASSERT_EQ(maps_.all().size(), 4u) << maps_.dump();

    // The third flow: no port left for this destination.
    Bytes third = tcp_from(kPodA, kOutside, 45002, 80);
    RunResult r = run_pod(third, kPodA);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, kShot);
    EXPECT_EQ(counter(SKIFF_DROP_NAT_NO_PORT, SKIFF_DIR_EGRESS), (Count{1, 54}));
    EXPECT_EQ(maps_.all().size(), 4u) << "a failed claim leaves nothing behind" << maps_.dump();
    // From the other pod too.
    r = run_pod(tcp_from(kPodB, kOutside, 45000, 80), kPodB);
    EXPECT_EQ(r.retval, kShot);
    EXPECT_EQ(counter(SKIFF_DROP_NAT_NO_PORT, SKIFF_DIR_EGRESS).packets, 2u);

    // Existing flows keep translating, to the same ports.
    EXPECT_EQ(send_out(tcp_from(kPodA, kOutside, 45000, 80, kTcpAck, 10), kPodA), p1);
    EXPECT_EQ(send_out(tcp_from(kPodA, kOutside, 45001, 80, kTcpAck, 10), kPodA), p2);
    EXPECT_EQ(counter(SKIFF_SNAT_EGRESS_XLATE, SKIFF_DIR_EGRESS).packets, 2u);
    // And their replies come back.
    expect_reply_into_pod(wire(kSnatOutsideMac, kOutside, kNode, kTcp,
                               tcp_segment(kOutside, kNode, 80, p2, 5, 6, kTcpAck, {}, pattern(4))),
                          kPodA, 45001);
    // Still possible: a non-ephemeral port (own port), another destination.
    EXPECT_EQ(send_out(tcp_from(kPodA, kOutside, 30000, 80), kPodA), 30000);
    const uint16_t other = send_out(tcp_from(kPodA, kOutside2, 45002, 80), kPodA, kSnatOutside2Mac);
    EXPECT_TRUE(other == 61000 || other == 61001) << other;
    expect_consistent_pairs();
    EXPECT_EQ(maps_.all().size(), 8u) << maps_.dump();
}

TEST_F(SnatPortTest, ALastFreePortIsAlwaysFound) {
    // All but one range port already claimed toward this destination (by a
    // flow of some other pod): a new flow must find the free one, wherever
    // its random starting point (the range is smaller than the tries).
    for (uint16_t free_port = kNatMin; free_port <= kNatMax; ++free_port) {
        SCOPED_TRACE("free port " + std::to_string(free_port));
        for (const auto& [k, v] : maps_.all()) ASSERT_OK(maps_.del(k));
        for (uint16_t p = kNatMin; p <= kNatMax; ++p) {
            if (p == free_port) continue;
            skiff_nat_value v{};
            v.addr = Ipv4(0x0af401c8).be();  // 10.244.1.200
            v.port = htons(p);
            v.created_ns = v.last_seen_ns = monotonic_ns();
            ASSERT_OK(maps_.put(ingress_key(kOutside, 80, p, kTcp), v));
        }
        EXPECT_EQ(send_out(tcp_from(kPodA, kOutside, 45000, 80), kPodA), free_port);
    }
}

TEST_F(SnatPortTest, OwnPortWhoseTupleIsTakenGetsARangePort) {
    // The reply tuple of port 30000 is already some other flow's (here a
    // bare INGRESS entry, as left by a claim of another CPU).
    skiff_nat_value v{};
    v.addr = kPodB.be();
    v.port = htons(30000);
    ASSERT_OK(maps_.put(ingress_key(kOutside, 80, 30000, kTcp), v));
    const uint16_t nat = send_out(tcp_from(kPodA, kOutside, 30000, 80), kPodA);
    EXPECT_GE(nat, kNatMin);
    EXPECT_LE(nat, kNatMax);
    auto still = maps_.get(ingress_key(kOutside, 80, 30000, kTcp));
    ASSERT_TRUE(still);
    EXPECT_EQ(still->addr, kPodB.be()) << "the other flow's entry must not be overwritten";
}

// =============================================================================
// 3. Not translated
// =============================================================================

TEST_F(SnatExemptTest, NoMasqueradeDestinationsAreNotTranslated) {
    ASSERT_OK(maps_.add_nomasq(kExtraNoMasq));
    struct Case {
        const char* what;
        Ipv4 dst;
        uint32_t verdict;
    };
    const std::vector<Case> cases = {
        {"a pod on another node", kRemotePod, kRedirect},       // routed to its node, source kept
        {"cluster CIDR without a node", kClusterNoNode, kOk},   // the stack's
        {"another node's IP", kOtherNode, kOk},
        {"this node's IP", kNode, kOk},
        {"a nonMasqueradeCIDR", kInExtraNoMasq, kOk},
    };
    for (const auto& c : cases) {
        for (uint8_t proto : {kTcp, kUdp, kIcmp}) {
            SCOPED_TRACE(std::string(c.what) + " proto " + std::to_string(proto));
            Bytes in = proto == kTcp   ? tcp_from(kPodA, c.dst, 45000, 80)
                       : proto == kUdp ? udp_from(kPodA, c.dst, 45000, 53)
                                       : ping_from(kPodA, c.dst, 45000);
            expect_not_translated(in, kPodA, c.verdict);
        }
    }
    EXPECT_EQ(maps_.all().size(), 0u) << maps_.dump();
    const Counters c = counters();
    for (uint32_t reason : {SKIFF_SNAT_NEW, SKIFF_SNAT_EGRESS_XLATE, SKIFF_DROP_NAT_NO_PORT}) {
        EXPECT_EQ(c.count({reason, SKIFF_DIR_EGRESS}), 0u) << describe(c);
    }
    EXPECT_EQ(counter(SKIFF_FWD_REMOTE_NODE, SKIFF_DIR_EGRESS).packets, 3u) << describe(c);
}

TEST_F(SnatExemptTest, RemotePodIsRoutedToItsNodeWithTheSourceKept) {
    Bytes in = tcp_from(kPodA, kRemotePod, 45000, 80);
    RunResult r = run_pod(in, kPodA);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, kRedirect);
    Bytes want = in;
    std::memcpy(&want[0], kNodeNeighMac.data(), 6);
    std::memcpy(&want[6], uplink_mac().data(), 6);
    want[kEthHlen + kIpTtl]--;
    ipv4_fix_checksum(&want[kEthHlen]);
    EXPECT_EQ(hex(r.data), hex(want));
    expect_counters({{{SKIFF_FWD_REMOTE_NODE, SKIFF_DIR_EGRESS}, Count{1, 54}}});
}

TEST_F(SnatExemptTest, TheNodesOwnAddressIsNeverTranslatedEvenWithoutANoMasqueradeEntry) {
    ASSERT_OK(maps_.del_nomasq(Ipv4Prefix(kNode, 32)));
    for (uint8_t proto : {kTcp, kUdp, kIcmp}) {
        SCOPED_TRACE("proto " + std::to_string(proto));
        Bytes in = proto == kTcp   ? tcp_from(kPodA, kNode, 45000, 80)
                   : proto == kUdp ? udp_from(kPodA, kNode, 45000, 53)
                                   : ping_from(kPodA, kNode, 45000);
        expect_not_translated(in, kPodA, kOk);
    }
    // While another node's address without its entry would be.
    ASSERT_OK(maps_.del_nomasq(Ipv4Prefix(kOtherNode, 32)));
    EXPECT_EQ(send_out(tcp_from(kPodA, kOtherNode, 30000, 80), kPodA, kNodeNeighMac), 30000);
}

TEST_F(SnatExemptTest, MasqueradeOffTranslatesNothing) {
    ASSERT_OK(maps_.set_config(config(0)));
    for (Ipv4 pod : {kPodA, kPodB}) {
        for (uint8_t proto : {kTcp, kUdp, kIcmp}) {
            SCOPED_TRACE(pod.str() + " proto " + std::to_string(proto));
            Bytes in = proto == kTcp   ? tcp_from(pod, kOutside, 45000, 80)
                       : proto == kUdp ? udp_from(pod, kOutside, 30000, 53)
                                       : ping_from(pod, kOutside, 77);
            expect_not_translated(in, pod, kOk);
        }
    }
    EXPECT_EQ(maps_.all().size(), 0u) << maps_.dump();
    expect_counters({{{SKIFF_FWD_STACK, SKIFF_DIR_EGRESS}, Count{6, 2 * (54 + 58 + 74)}}});
}

TEST_F(SnatExemptTest, NoNodeAddressConfiguredTranslatesNothing) {
    skiff_config c = config();
    c.node_ip = 0;
    ASSERT_OK(maps_.set_config(c));
    expect_not_translated(tcp_from(kPodA, kOutside, 45000, 80), kPodA, kOk);
    EXPECT_EQ(maps_.all().size(), 0u) << maps_.dump();
}

TEST_F(SnatExemptTest, IcmpOtherThanEchoRequestIsNotTranslated) {
    // An echo reply or an error sent by a pod: no identifier to claim.
    Bytes reply = pod_frame(kPodA, kOutside, kIcmp, icmp_echo_reply(99, 1, pattern(8)));
    RunResult r = run_pod(reply, kPodA);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(frame_saddr(r.data).str(), kPodA.str());
    EXPECT_EQ(maps_.all().size(), 0u) << maps_.dump();
}

// =============================================================================
// 4. Replies on the uplink
// =============================================================================

TEST_F(SnatReplyTest, TcpSynAckIsTranslatedBackIntoThePod) {
    for (uint16_t sport : {uint16_t{30000}, uint16_t{45000}}) {
        SCOPED_TRACE("sport " + std::to_string(sport));
        const uint16_t nat = send_out(tcp_from(kPodA, kOutside, sport, 80), kPodA);
        ASSERT_NE(nat, 0);
        Bytes reply = wire(kSnatOutsideMac, kOutside, kNode, kTcp,
                           tcp_segment(kOutside, kNode, 80, nat, 777, 0x11223345, kTcpSyn | kTcpAck,
                                       {0x02, 0x04, 0x05, 0xb4}, {}));
        const Count before = counter(SKIFF_SNAT_INGRESS_XLATE, SKIFF_DIR_INGRESS);
        expect_reply_into_pod(reply, kPodA, sport);
        const Count after = counter(SKIFF_SNAT_INGRESS_XLATE, SKIFF_DIR_INGRESS);
        EXPECT_EQ(after.packets, before.packets + 1);
        EXPECT_EQ(after.bytes, before.bytes + reply.size());
        auto ig = maps_.get(ingress_key(kOutside, 80, nat, kTcp));
        ASSERT_TRUE(ig);
        EXPECT_EQ(ig->packets, 1u);
        EXPECT_EQ(ig->bytes, reply.size());
    }
    const Counters c = counters();
    EXPECT_EQ(counter(SKIFF_SNAT_INGRESS_XLATE, SKIFF_DIR_INGRESS), (Count{2, 2 * 58})) << describe(c);
    EXPECT_EQ(counter(SKIFF_FWD_LOCAL_POD, SKIFF_DIR_INGRESS), (Count{2, 2 * 58})) << describe(c);
    EXPECT_EQ(maps_.all().size(), 4u) << "replies create no entries" << maps_.dump();
}

TEST_F(SnatReplyTest, UdpReplyIsTranslatedBackIntoThePod) {
    const uint16_t kept = send_out(udp_from(kPodB, kOutside, 5353, 53), kPodB);
    const uint16_t eph = send_out(udp_from(kPodB, kOutside, 50000, 53), kPodB);
    ASSERT_EQ(kept, 5353);
    ASSERT_GE(eph, kNatMin);
    expect_reply_into_pod(wire(kSnatOutsideMac, kOutside, kNode, kUdp, udp(kOutside, kNode, 53, kept, pattern(70))),
                          kPodB, 5353);
    expect_reply_into_pod(wire(kSnatOutsideMac, kOutside, kNode, kUdp, udp(kOutside, kNode, 53, eph, pattern(71))),
                          kPodB, 50000);
    // Without a checksum: it stays without one.
    Bytes u = udp(kOutside, kNode, 53, eph, pattern(12));
    put16(&u[kUdpCheck], 0);
    Bytes nocsum = wire(kSnatOutsideMac, kOutside, kNode, kUdp, u);
    RunResult r = run_uplink(nocsum);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, kRedirect);
    EXPECT_EQ(get16(&r.data[l4_offset(r.data) + kUdpCheck]), 0);
    EXPECT_EQ(frame_dport(r.data), 50000);
    EXPECT_EQ(counter(SKIFF_SNAT_INGRESS_XLATE, SKIFF_DIR_INGRESS).packets, 3u);
}

TEST_F(SnatReplyTest, IcmpEchoReplyIsTranslatedBackIntoThePod) {
    const uint16_t id = 0x0bad;
    ASSERT_EQ(send_out(ping_from(kPodA, kOutside, id), kPodA), id);
    const uint16_t nat_b = send_out(ping_from(kPodB, kOutside, id), kPodB);
    ASSERT_NE(nat_b, id);
    expect_reply_into_pod(wire(kSnatOutsideMac, kOutside, kNode, kIcmp, icmp_echo_reply(id, 1, pattern(32, 9))),
                          kPodA, id);
    expect_reply_into_pod(wire(kSnatOutsideMac, kOutside, kNode, kIcmp, icmp_echo_reply(nat_b, 1, pattern(32, 9))),
                          kPodB, id);
    const Counters c = counters();
    EXPECT_EQ(counter(SKIFF_SNAT_INGRESS_XLATE, SKIFF_DIR_INGRESS), (Count{2, 2 * 74})) << describe(c);
    EXPECT_EQ(counter(SKIFF_FWD_LOCAL_POD, SKIFF_DIR_INGRESS), (Count{2, 2 * 74})) << describe(c);
}

TEST_F(SnatReplyTest, PacketsNotMatchingAFlowAreLeftToTheStack) {
    const uint16_t nat = send_out(tcp_from(kPodA, kOutside, 45000, 80), kPodA);
    const uint16_t id = send_out(ping_from(kPodA, kOutside, 99), kPodA);
    ASSERT_NE(nat, 0);
    auto syn_ack = [&](Ipv4 src, uint16_t sport, uint16_t dport) {
        return wire(kSnatOutsideMac, src, kNode, kTcp,
                    tcp_segment(src, kNode, sport, dport, 1, 2, kTcpSyn | kTcpAck, {}, {}));
    };
    expect_uplink_untouched(syn_ack(kOutside, 81, nat));        // other source port
    expect_uplink_untouched(syn_ack(kOutside2, 80, nat));       // other source address
    expect_uplink_untouched(syn_ack(kOutside, 80, 45000));      // the pod's port, not the NAT port
    expect_uplink_untouched(wire(kSnatOutsideMac, kOutside, kNode, kUdp, udp(kOutside, kNode, 80, nat, {})));
    // An echo request (not a reply) with the translated identifier.
    expect_uplink_untouched(wire(kSnatOutsideMac, kOutside, kNode, kIcmp, icmp_echo(id, 1, pattern(8))));
    EXPECT_EQ(counter(SKIFF_SNAT_INGRESS_XLATE, SKIFF_DIR_INGRESS).packets, 0u);
    EXPECT_EQ(counter(SKIFF_FWD_STACK, SKIFF_DIR_INGRESS).packets, 5u);
}

// =============================================================================
// 5. ICMP errors about a translated flow
// =============================================================================

TEST_F(SnatIcmpErrorTest, FragmentationNeededAboutATcpFlowIsTranslatedIntoThePod) {
    // Two flows: one with a range port (the quoted port changes back), one
    // that kept its own port.
    for (uint16_t sport : {uint16_t{45000}, uint16_t{30000}}) {
        SCOPED_TRACE("sport " + std::to_string(sport));
        Bytes out;
        const uint16_t nat = send_out(tcp_from(kPodA, kOutside, sport, 80, kTcpAck | kTcpPsh, 1200), kPodA,
                                      kSnatOutsideMac, &out);
        ASSERT_NE(nat, 0);
        const Bytes quoted = ip_packet_of(out);  // as it left the node: node:nat -> outside:80
        for (size_t qlen : {size_t{28}, size_t{48}, size_t{548}, quoted.size()}) {
            SCOPED_TRACE("quote " + std::to_string(qlen) + " bytes");
            const Bytes quote(quoted.begin(), quoted.begin() + static_cast<long>(qlen));
            Bytes err = icmp_error(3, 4, 1280, quote);  // fragmentation needed, next-hop MTU 1280
            ASSERT_EQ(get16(&err[l4_offset(err) + 6]), 1280);
            expect_error_into_pod(err, kPodA, sport);
        }
    }
    const Counters c = counters();
    EXPECT_EQ(counter(SKIFF_SNAT_ICMP_ERROR, SKIFF_DIR_INGRESS).packets, 8u) << describe(c);
    EXPECT_EQ(counter(SKIFF_FWD_LOCAL_POD, SKIFF_DIR_INGRESS).packets, 8u) << describe(c);
    EXPECT_EQ(maps_.all().size(), 4u) << "errors create no entries" << maps_.dump();
}

TEST_F(SnatIcmpErrorTest, TimeExceededAboutAUdpFlowIsTranslatedIntoThePod) {
    Bytes out;
    const uint16_t nat = send_out(udp_from(kPodB, kOutside, 50000, 53, 30), kPodB, kSnatOutsideMac, &out);
    ASSERT_GE(nat, kNatMin);
    const Bytes quoted = ip_packet_of(out);
    for (size_t qlen : {size_t{28}, quoted.size()}) {
        SCOPED_TRACE("quote " + std::to_string(qlen) + " bytes");
        Bytes err = icmp_error(11, 0, 0, Bytes(quoted.begin(), quoted.begin() + static_cast<long>(qlen)));
        expect_error_into_pod(err, kPodB, 50000);
    }
    const Counters c = counters();
    EXPECT_EQ(counter(SKIFF_SNAT_ICMP_ERROR, SKIFF_DIR_INGRESS).packets, 2u) << describe(c);
}

TEST_F(SnatIcmpErrorTest, PortUnreachableAboutAnIcmpEchoRestoresTheIdentifier) {
    const uint16_t id = 4242;
    ASSERT_EQ(send_out(ping_from(kPodA, kOutside, id), kPodA), id);
    Bytes out;
    const uint16_t nat_b = send_out(ping_from(kPodB, kOutside, id, 5), kPodB, kSnatOutsideMac, &out);
    ASSERT_GE(nat_b, kNatMin);
    const Bytes quoted = ip_packet_of(out);
    ASSERT_EQ(get16(&quoted[20 + kIcmpId]), nat_b);
    Bytes err = icmp_error(3, 3, 0, Bytes(quoted.begin(), quoted.begin() + 28));
    expect_error_into_pod(err, kPodB, id);
    // The other pod's echo (identifier kept): only the addresses change.
    Bytes out_a;
    ASSERT_EQ(send_out(ping_from(kPodA, kOutside, id, 6), kPodA, kSnatOutsideMac, &out_a), id);
    const Bytes quoted_a = ip_packet_of(out_a);
    expect_error_into_pod(icmp_error(3, 1, 0, quoted_a), kPodA, id);
    EXPECT_EQ(counter(SKIFF_SNAT_ICMP_ERROR, SKIFF_DIR_INGRESS).packets, 2u) << describe(counters());
}

TEST_F(SnatIcmpErrorTest, ErrorsAboutFlowsNeverTranslatedAreLeftAlone) {
    const uint16_t nat = send_out(tcp_from(kPodA, kOutside, 45000, 80), kPodA);
    ASSERT_NE(nat, 0);
    auto quote_of = [](Ipv4 src, Ipv4 dst, uint8_t proto, uint16_t sport, uint16_t dport) {
        Ipv4Spec s;
        s.src = src;
        s.dst = dst;
        s.ttl = 63;
        s.protocol = proto;
        s.l4 = proto == kTcp ? tcp(src, dst, sport, dport, 1, kTcpSyn, {})
               : proto == kUdp ? udp(src, dst, sport, dport, pattern(8))
                               : icmp_echo(sport, 1, pattern(8));
        Bytes p = ipv4_packet(s);
        return Bytes(p.begin(), p.begin() + 28);
    };
    const std::vector<std::pair<const char*, Bytes>> cases = {
        {"the node's own connection", quote_of(kNode, kOutside, kTcp, 45001, 80)},
        {"another destination port", quote_of(kNode, kOutside, kTcp, nat, 81)},
        {"another destination", quote_of(kNode, kOutside2, kTcp, nat, 80)},
        {"another protocol", quote_of(kNode, kOutside, kUdp, nat, 80)},
        {"an echo never sent", quote_of(kNode, kOutside, kIcmp, 123, 0)},
        {"quoted source is another node", quote_of(kOtherNode, kOutside, kTcp, nat, 80)},
    };
    for (const auto& [what, quote] : cases) {
        SCOPED_TRACE(what);
        expect_uplink_untouched(icmp_error(3, 4, 1280, quote));
    }
    // The flow's exact quote, but the error is addressed to someone else
    // than the quoted source: not about a packet this node sent.
    expect_uplink_untouched(icmp_error(3, 4, 1280, quote_of(kNode, kOutside, kTcp, nat, 80), kOtherNode));
    EXPECT_EQ(counter(SKIFF_SNAT_ICMP_ERROR, SKIFF_DIR_INGRESS).packets, 0u) << describe(counters());
    EXPECT_EQ(counter(SKIFF_FWD_STACK, SKIFF_DIR_INGRESS).packets, cases.size() + 1) << describe(counters());
}

// =============================================================================
// 6. Robustness
// =============================================================================

TEST_F(SnatRobustnessTest, EstablishedFlowUsesItsEntryWithoutNewClaims) {
    Bytes syn = tcp_from(kPodA, kOutside, 45000, 80);
    const uint16_t nat = send_out(syn, kPodA);
    ASSERT_NE(nat, 0);
    const auto before = maps_.all();
    ASSERT_EQ(before.size(), 2u);

    uint64_t bytes = syn.size();
    for (size_t payload : {size_t{0}, size_t{100}, size_t{1000}}) {
        Bytes seg = tcp_from(kPodA, kOutside, 45000, 80, kTcpAck | kTcpPsh, payload);
        EXPECT_EQ(send_out(seg, kPodA), nat) << "the same port for the whole flow";
        bytes += seg.size();
    }
    EXPECT_EQ(maps_.all().size(), 2u) << maps_.dump();
    expect_flow(kPodA, 45000, kOutside, 80, kTcp, nat, 4, bytes);
    auto eg = maps_.get(egress_key(kPodA, kOutside, 45000, 80, kTcp));
    ASSERT_TRUE(eg);
    EXPECT_EQ(eg->flags & SKIFF_CT_F_CLOSING, 0);
    EXPECT_EQ(counter(SKIFF_SNAT_NEW, SKIFF_DIR_EGRESS).packets, 1u);
    EXPECT_EQ(counter(SKIFF_SNAT_EGRESS_XLATE, SKIFF_DIR_EGRESS).packets, 3u);
    EXPECT_EQ(counter(SKIFF_FWD_FIB, SKIFF_DIR_EGRESS).packets, 4u);

    // A FIN marks the flow closing (for the agent's shorter timeout).
    EXPECT_EQ(send_out(tcp_from(kPodA, kOutside, 45000, 80, kTcpFin | kTcpAck), kPodA), nat);
    eg = maps_.get(egress_key(kPodA, kOutside, 45000, 80, kTcp));
    ASSERT_TRUE(eg);
    EXPECT_NE(eg->flags & SKIFF_CT_F_CLOSING, 0);
    EXPECT_EQ(maps_.all().size(), 2u) << maps_.dump();
}

TEST_F(SnatRobustnessTest, EstablishedFlowKeepsItsPortWhenTheRangeChanges) {
    const uint16_t nat = send_out(tcp_from(kPodA, kOutside, 45000, 80), kPodA);
    ASSERT_NE(nat, 0);
    ASSERT_OK(maps_.set_config(config(SKIFF_CFG_F_MASQUERADE, 62000, 62009)));
    EXPECT_EQ(send_out(tcp_from(kPodA, kOutside, 45000, 80, kTcpAck, 5), kPodA), nat);
    const uint16_t fresh = send_out(tcp_from(kPodA, kOutside, 45001, 80), kPodA);
    EXPECT_GE(fresh, 62000);
    EXPECT_LE(fresh, 62009);
}

// Two CPUs setting up the same new flow at once: both must translate it to
// the same port, and the loser gives its claimed port back (no orphan
// INGRESS entry). The window is small: this only exercises the race path
// in some rounds, but the invariant must hold in all.
TEST_F(SnatRobustnessTest, ConcurrentFirstPacketsOfOneFlowAgreeOnOnePort) {
    const int ncpu = static_cast<int>(std::thread::hardware_concurrency());
    if (ncpu < 2) GTEST_SKIP() << "needs two CPUs";
    const Bytes syn = tcp_from(kPodA, kOutside, 45000, 80);
    const int fd = from_pod_.get(), ifindex = veth_a_->host.ifindex;
    constexpr int kRounds = 300;
    struct Out {
        uint32_t retval = 0;
        int err = 0;
        uint16_t port = 0;
    };
    std::vector<Out> out[2];
    out[0].resize(kRounds);
    out[1].resize(kRounds);
    std::atomic<int> go{-1}, done{0};
    auto worker = [&](int t) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(t, &set);
        (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
        for (int i = 0; i < kRounds; ++i) {
            while (go.load(std::memory_order_acquire) < i) std::this_thread::yield();
            RunResult r = test_run(fd, syn, ifindex);
            out[t][i] = {r.retval, r.err, r.data.size() == syn.size() ? frame_sport(r.data) : uint16_t{0}};
            done.fetch_add(1, std::memory_order_acq_rel);
        }
    };
    std::thread a(worker, 0), b(worker, 1);
    std::vector<std::string> bad;
    for (int i = 0; i < kRounds; ++i) {
        for (const auto& [k, v] : maps_.all()) (void)maps_.del(k);
        go.store(i, std::memory_order_release);
        while (done.load(std::memory_order_acquire) < 2 * (i + 1)) std::this_thread::yield();
        const auto entries = maps_.all();
        const Out &x = out[0][i], &y = out[1][i];
        if (x.err || y.err || x.retval != kRedirect || y.retval != kRedirect || x.port != y.port || x.port < kNatMin ||
            x.port > kNatMax || entries.size() != 2) {
            bad.push_back("round " + std::to_string(i) + ": ports " + std::to_string(x.port) + "/" +
                          std::to_string(y.port) + " verdicts " + std::to_string(x.retval) + "/" +
                          std::to_string(y.retval) + " entries " + std::to_string(entries.size()) + maps_.dump());
        }
    }
    a.join();
    b.join();
    EXPECT_TRUE(bad.empty()) << bad.size() << " bad rounds, first: " << (bad.empty() ? "" : bad.front());
    // Rounds in which both CPUs found no entry and claimed a port (the race
    // path): SKIFF_SNAT_NEW counts both.
    const uint64_t raced = counter(SKIFF_SNAT_NEW, SKIFF_DIR_EGRESS).packets - kRounds;
    RecordProperty("raced_rounds", static_cast<int>(raced));
    std::printf("[          ] %llu of %d rounds took the race path\n", static_cast<unsigned long long>(raced),
                kRounds);
}

TEST_F(SnatRobustnessTest, TruncatedIcmpErrorIsNotRewrittenAndDoesNotCrash) {
    Bytes out;
    const uint16_t nat = send_out(tcp_from(kPodA, kOutside, 45000, 80), kPodA, kSnatOutsideMac, &out);
    ASSERT_NE(nat, 0);
    const Bytes quoted = ip_packet_of(out);
    // No quote, part of the quoted IP header, the header without any port.
    for (size_t qlen : {size_t{0}, size_t{1}, size_t{12}, size_t{19}, size_t{20}, size_t{21}, size_t{22}}) {
        SCOPED_TRACE("quote " + std::to_string(qlen) + " bytes");
        expect_uplink_untouched(icmp_error(3, 4, 1280, Bytes(quoted.begin(), quoted.begin() + static_cast<long>(qlen))));
    }
    // Cut inside the ICMP header itself (the outer IP total length says so).
    Bytes err = icmp_error(3, 4, 1280, {});
    for (size_t cut : {size_t{1}, size_t{4}, size_t{7}}) {
        SCOPED_TRACE("ICMP header of " + std::to_string(cut) + " bytes");
        Bytes f(err.begin(), err.begin() + static_cast<long>(kEthHlen + 20 + cut));
        put16(&f[kEthHlen + kIpTotLen], static_cast<uint16_t>(20 + cut));
        ipv4_fix_checksum(&f[kEthHlen]);
        expect_uplink_untouched(f);
    }
    EXPECT_EQ(counter(SKIFF_SNAT_ICMP_ERROR, SKIFF_DIR_INGRESS).packets, 0u) << describe(counters());
    // The flow itself is unharmed.
    expect_uplink_untouched(icmp_error(3, 4, 1280, {}));
    expect_error_into_pod(icmp_error(3, 4, 1280, Bytes(quoted.begin(), quoted.begin() + 28)), kPodA, 45000);
}

// BUG (minor): an ICMP error whose quote holds the inner IP header and
// fewer than the 8 bytes RFC 792 requires (here 4, 6 or 7: the ports and a
// little more) is still rewritten and delivered. snat_icmp_error() only
// checks that the 4 port bytes can be loaded, so it translates a message
// every receiver discards anyway (Linux' icmp_unreach() requires inner
// header + 8 bytes). Expected: left alone like the shorter quotes above.
// Fix: require inner_off + 20 + 8 <= ETH_HLEN + ntohs(ip->tot_len) before
// loading the quote (which also covers the next test).
TEST_F(SnatRobustnessTest, IcmpErrorQuotingFewerThanEightBytesIsNotRewritten) {
    Bytes out;
    ASSERT_NE(send_out(tcp_from(kPodA, kOutside, 45000, 80), kPodA, kSnatOutsideMac, &out), 0);
    const Bytes quoted = ip_packet_of(out);
    for (size_t qlen : {size_t{24}, size_t{26}, size_t{27}}) {
        SCOPED_TRACE("quote " + std::to_string(qlen) + " bytes");
        expect_uplink_untouched(icmp_error(3, 4, 1280, Bytes(quoted.begin(), quoted.begin() + static_cast<long>(qlen))));
    }
}

// BUG (minor): the quoted packet is read up to the end of the frame, not
// of the IP packet: an ICMP error whose IP total length ends before the
// quote (or inside it), followed by non-zero trailing bytes on the wire (a
// trailer; zero Ethernet padding is harmless, its "ihl" is 0), is
// translated using those bytes, and bytes outside the IP packet are
// rewritten, with the ICMP checksum adjusted for bytes it does not cover.
// l4_load() is careful to stay inside tot_len; snat_icmp_error() is not.
// Expected: left alone. Fix: as above, bound the quote by tot_len.
TEST_F(SnatRobustnessTest, IcmpErrorQuoteIsNotReadBeyondTheIpPacket) {
    Bytes out;
    ASSERT_NE(send_out(tcp_from(kPodA, kOutside, 45000, 80), kPodA, kSnatOutsideMac, &out), 0);
    const Bytes quoted = ip_packet_of(out);
    for (size_t inside : {size_t{0}, size_t{16}, size_t{20}}) {
        SCOPED_TRACE(std::to_string(inside) + " quoted bytes inside the IP packet");
        // The full 28-byte quote on the wire, but tot_len covers only part.
        Bytes f = icmp_error(3, 4, 1280, Bytes(quoted.begin(), quoted.begin() + 28));
        put16(&f[kEthHlen + kIpTotLen], static_cast<uint16_t>(20 + 8 + inside));
        ipv4_fix_checksum(&f[kEthHlen]);
        const size_t off = l4_offset(f);
        put16(&f[off + kIcmpCheck], 0);
        put16(&f[off + kIcmpCheck], inet_checksum(&f[off], 8 + inside));
        expect_uplink_untouched(f);
    }
}

// Regression (fixed): a masqueraded packet whose TTL expires here is translated before
// the TTL check. fwd_fib() then hands it to the stack with the node's own
// address as source, which the stack drops as a martian: the pod never
// gets its ICMP time exceeded (traceroute/mtr from a pod shows no first
// hop), and a NAT port stays claimed for a flow that never left. Without
// masquerade (the remote-node path) the untranslated packet goes to the
// stack, which answers. Expected: untranslated, to the stack, no entries.
// Fix: in from_pod_ipv4(), hand packets with ip->ttl <= 1 to the stack
// before snat_egress() (or translate only after fwd_fib() decided to
// redirect).
TEST_F(SnatForwardTest, PacketWhoseTtlExpiresHereIsNotTranslated) {
    for (uint8_t ttl : {uint8_t{1}, uint8_t{0}}) {
        SCOPED_TRACE("ttl " + std::to_string(ttl));
        Bytes in = tcp_from(kPodA, kOutside, 45000 + ttl, 80, kTcpSyn, 0, ttl);
        expect_not_translated(in, kPodA, kOk);
    }
    EXPECT_EQ(counter(SKIFF_FWD_TTL_EXPIRED, SKIFF_DIR_EGRESS).packets, 2u) << describe(counters());
}

// Regression (fixed): the same for a FIB miss after translation, e.g. a packet above the
// route's MTU (BPF_FIB_LKUP_RET_FRAG_NEEDED; a route with a smaller "mtu"
// works the same): it reaches the stack already carrying the node's address
// as source, is dropped as a martian, and the pod never gets its ICMP
// "fragmentation needed" (a PMTU black hole), while a NAT port stays
// claimed. Expected: untranslated, to the stack (which answers), no
// entries. Fix: do the FIB lookup (and TTL check) before snat_egress() and
// translate only packets that will be redirected.
TEST_F(SnatForwardTest, PacketTheFibCannotForwardIsNotTranslated) {
    Bytes big = tcp_from(kPodA, kOutside, 45000, 80, kTcpAck | kTcpPsh, 1600);  // IP 1640 > 1500
    expect_not_translated(big, kPodA, kOk);
    EXPECT_EQ(counter(SKIFF_FWD_FIB_MISS, SKIFF_DIR_EGRESS).packets, 1u) << describe(counters());
}

// A UDP datagram of 2000 payload bytes in two fragments (1480 + 528 bytes
// of the 2008-byte datagram), IP id 0x7777.
std::pair<Bytes, Bytes> udp_fragments(Ipv4 src, Ipv4 dst, uint16_t sport, uint16_t dport) {
    const Bytes u = udp(src, dst, sport, dport, pattern(2000, 5));
    Ipv4Spec s;
    s.src = src;
    s.dst = dst;
    s.id = 0x7777;
    s.protocol = kUdp;
    s.frag_off = 0x2000;  // MF, offset 0
    s.l4 = Bytes(u.begin(), u.begin() + 1480);
    Bytes head = ipv4_packet(s);
    s.frag_off = 1480 / 8;  // offset 1480, last
    s.l4 = Bytes(u.begin() + 1480, u.end());
    Bytes tail = ipv4_packet(s);
    return {head, tail};
}

// Regression (fixed): only the first fragment of a datagram is masqueraded. Later
// fragments carry no ports, l4_load() returns L4_NONE and from_pod hands
// them to the stack untranslated, which forwards them with the pod's
// address as source (there is no iptables MASQUERADE behind it): the
// destination sees the head from the node and the rest from 10.244.1.10
// and can never reassemble the datagram. Any UDP datagram (or ICMP echo)
// above the MTU sent by a pod to the outside is lost. Expected: the tail
// leaves like the head, from the node's address. Fix: remember the
// translation of a first fragment, keyed by {src, dst, proto, IP id}
// (an LRU map, as Cilium's ipv4_frag_datagrams), and rewrite the address
// (IP checksum only) of the later fragments that match, in from_pod.
TEST_F(SnatForwardTest, LaterFragmentsOfAMasqueradedDatagramLeaveFromTheNode) {
    auto [head, tail] = udp_fragments(kPodA, kOutside, 50000, 4000);
    const TestVeth& v = veth_of(kPodA);
    Bytes head_f = ethernet(v.host.mac, v.pod.mac, kEthPIp, head);
    Bytes tail_f = ethernet(v.host.mac, v.pod.mac, kEthPIp, tail);
    RunResult r = run_pod(head_f, kPodA);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, kRedirect);
    EXPECT_EQ(frame_saddr(r.data).str(), kNode.str()) << "the first fragment is translated";
    EXPECT_TRUE(checksum_verifies(&r.data[kEthHlen], 20));

    r = run_pod(tail_f, kPodA);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(frame_saddr(r.data).str(), kNode.str())
        << "the second fragment of the same datagram leaves with the pod's address";
    EXPECT_EQ(r.retval, kRedirect) << describe(counters());
}

// Regression (fixed): the same on the way back: the first fragment of a reply is
// translated into the pod, later fragments (to the node's address, no
// ports) go to the node's own stack, whose reassembly never completes. A
// large UDP answer (e.g. a DNS response above the MTU to a resolver pod)
// never arrives. Expected: the tail is delivered into the pod too. Fix:
// the fragment map above, looked up in from_uplink for fragments to the
// node's address.
TEST_F(SnatForwardTest, LaterFragmentsOfAReplyAreDeliveredIntoThePod) {
    const uint16_t nat = send_out(udp_from(kPodA, kOutside, 50000, 4000), kPodA);
    ASSERT_GE(nat, kNatMin);
    auto [head, tail] = udp_fragments(kOutside, kNode, 4000, nat);
    RunResult r = run_uplink(ethernet(uplink_mac(), kSnatOutsideMac, kEthPIp, head));
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, kRedirect);
    EXPECT_EQ(frame_daddr(r.data).str(), kPodA.str()) << "the first fragment is translated";

    r = run_uplink(ethernet(uplink_mac(), kSnatOutsideMac, kEthPIp, tail));
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, kRedirect) << "the second fragment stays on the node; " << describe(counters());
    EXPECT_EQ(frame_daddr(r.data).str(), kPodA.str());
}

}  // namespace
}  // namespace skiff::bpftest
