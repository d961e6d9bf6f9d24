// Overlay mode under BPF_PROG_TEST_RUN (bpf/lib/tunnel.h):
//  - from_pod toward a PodCIDR flagged SKIFF_NODE_F_ENCAP: tunnel key set
//    and a redirect into the tunnel device named by skiff_config, inner MACs
//    the tunnel devices' common address, TTL - 1; no tunnel device: drop;
//  - packets too big for the path toward the remote node (a route with a
//    smaller MTU in the private netns): with DF, from a local pod, answered
//    with ICMP "fragmentation needed" carrying the inner MTU that fits; GSO
//    super-packets judged by their segments; without DF, sent on;
//  - a remote node's own address (a /32 flagged HOST) is reached through
//    the tunnel too;
//  - to_tunnel: the node's own packets get the key of the destination's
//    node; skiff's redirected packets pass untouched;
//  - from_tunnel: a packet without tunnel metadata (nothing the tunnel
//    device decapsulated) is dropped as spoofed;
//  - from_uplink: an outer packet for this node's tunnel port goes to the
//    stack untouched, counted fwd-from-tunnel, before any other lookup.
// The spoof check against real outer headers and the encapsulation itself
// are exercised with real VXLAN devices in tests/integration/test_overlay.py.
#include <cstdlib>

#include "remote_env.h"

namespace skiff::bpftest::remote {
namespace {

constexpr uint32_t kShot = 2;  // TC_ACT_SHOT
constexpr uint32_t kOk = 0;    // TC_ACT_OK
const MacAddr kTunnelMac = SKIFF_TUNNEL_MAC;
const MacAddr kTunnelSrcMac = SKIFF_TUNNEL_SRC_MAC;

inline const Ipv4Prefix kCidrEncap(Ipv4(0x0af40700), 24);      // 10.244.7.0/24 -> 192.168.1.12, encapsulated
inline const Ipv4Prefix kCidrSmallPath(Ipv4(0x0af40800), 24);  // 10.244.8.0/24 -> 10.50.0.9, path MTU 1300
inline const Ipv4 kEncapPodIp(0x0af40705);                     // 10.244.7.5
inline const Ipv4 kSmallPathPodIp(0x0af40805);                 // 10.244.8.5
inline const Ipv4 kSmallPathNodeIp(0x0a320009);                // 10.50.0.9

class TunnelTest : public RemoteTest {
protected:
    void SetUp() override {
        ASSERT_NO_FATAL_FAILURE(RemoteTest::SetUp());
        ASSERT_NO_FATAL_FAILURE(load(datapath::Program::ToTunnel, to_tunnel_));
        ASSERT_NO_FATAL_FAILURE(load(datapath::Program::FromTunnel, from_tunnel_));
        auto cfg = datapath::open_pinned_map(pins_.path(), SKIFF_MAP_CONFIG);
        ASSERT_TRUE(cfg.ok()) << cfg.error().message;
        config_ = std::move(cfg).value();
        // The "tunnel device": any device will do, test_run does not redirect.
        tunnel_ifindex_ = net_->other.host.ifindex;
        ASSERT_NO_FATAL_FAILURE(set_tunnel(tunnel_ifindex_));
        ASSERT_NO_FATAL_FAILURE(upsert_node(kCidrEncap, node(kNodeNeighIp, SKIFF_NODE_F_ENCAP)));
        ASSERT_NO_FATAL_FAILURE(upsert_node(kCidrSmallPath, node(kSmallPathNodeIp, SKIFF_NODE_F_ENCAP)));
        ASSERT_NO_FATAL_FAILURE(
            upsert_node(Ipv4Prefix(kNodeViaGwIp, 32), node(kNodeViaGwIp, SKIFF_NODE_F_ENCAP | SKIFF_NODE_F_HOST)));
        // The path toward 10.50.0.9 is smaller than the uplink, as a
        // router's "fragmentation needed" leaves it (a locked route MTU
        // counts for forwarding; a learnt exception does so by itself).
        ASSERT_EQ(std::system("ip route replace 10.50.0.9/32 via 192.168.1.1 dev skt-upl-h mtu lock 1300"), 0);
    }

    void TearDown() override {
        to_tunnel_.reset();
        from_tunnel_.reset();
        config_.reset();
        RemoteTest::TearDown();
    }

    void set_tunnel(int ifindex, uint16_t port = kTunnelPort) {
        skiff_config c{};
        c.node_ip = kUplinkIp.be();
        c.tunnel_ifindex = static_cast<uint32_t>(ifindex);
        c.tunnel_vni = 1;
        c.tunnel_port = htons(port);
        ASSERT_TRUE(map_put(config_.get(), uint32_t{0}, c, "config").ok());
    }

    Bytes pod_packet(Ipv4 dst, uint8_t proto, size_t payload, bool df = true) const {
        Ipv4Spec s = spec(kPodIp, dst, 64, proto, payload);
        if (!df) s.frag_off = 0;
        return from_pod_frame(rn_->pod, s);
    }

    // One routed hop into the tunnel: the tunnel's MACs (never the device's
    // own as source: VXLAN drops those as loops), TTL - 1.
    static void expect_encapsulated(const Bytes& in, const RunResult& r) {
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_EQ(r.retval, kRedirect);
        ASSERT_NO_FATAL_FAILURE(expect_routed(in, r.data, &kTunnelSrcMac, &kTunnelMac));
    }

    void expect_frag_needed(const Bytes& in, const RunResult& r);

    // to_tunnel on in as the stack sends it into the tunnel device, with
    // skb->mark mark.
    RunResult run_to_tunnel(const Bytes& in, uint32_t mark = 0) const {
        __sk_buff ctx{};
        ctx.ifindex = static_cast<uint32_t>(tunnel_ifindex_);
        ctx.mark = mark;
        return test_run(to_tunnel_.get(), in, ctx);
    }
    // Passed on (TC_ACT_OK) with skb->mark cleared.
    static void expect_passed_unmarked(const RunResult& r) {
        ASSERT_EQ(r.err, 0);
        EXPECT_EQ(r.retval, kOk);
        EXPECT_EQ(r.ctx.mark, 0u);
    }

    // An outer VXLAN packet from the neighbour node (its payload stands for
    // the VXLAN header and the inner frame).
    Bytes wire_vxlan(Ipv4 dst, uint16_t dport) const {
        Bytes l4 = udp(kNodeNeighIp, dst, 41000, dport, pattern(72));
        return wire_frame(ipv4_packet(ipv4_spec(kNodeNeighIp, dst, kUdp, l4)));
    }

    static constexpr uint16_t kTunnelPort = 8472;

    UniqueFd to_tunnel_, from_tunnel_, config_;
    int tunnel_ifindex_ = 0;
};

TEST_F(TunnelTest, PodToEncapsulatedNodeGoesIntoTheTunnel) {
    uint64_t bytes = 0;
    for (uint8_t proto : {kIcmp, kTcp, kUdp}) {
        SCOPED_TRACE(int(proto));
        Bytes in = pod_packet(kEncapPodIp, proto, 200);
        expect_encapsulated(in, run_pod(in));
        bytes += in.size();
    }
    expect_only(SKIFF_FWD_TUNNEL, SKIFF_DIR_EGRESS, 3, bytes);
}

TEST_F(TunnelTest, NativeNodesStayNative) {
    Bytes in = pod_icmp(kRemoteNeighIp);
    RunResult r = run_pod(in);
    EXPECT_EQ(r.retval, kRedirect);
    ASSERT_NO_FATAL_FAILURE(expect_to_node(in, r.data, kNodeNeighMac));
    expect_only(SKIFF_FWD_REMOTE_NODE, SKIFF_DIR_EGRESS, 1, in.size());
}

TEST_F(TunnelTest, WithoutATunnelDeviceEncapsulatedTrafficIsDropped) {
    ASSERT_NO_FATAL_FAILURE(set_tunnel(0));
    Bytes in = pod_icmp(kEncapPodIp);
    RunResult r = run_pod(in);
    EXPECT_EQ(r.retval, kShot);
    expect_only(SKIFF_DROP_NO_TUNNEL, SKIFF_DIR_EGRESS, 1, in.size());
}

TEST_F(TunnelTest, ExpiringTtlGoesToTheStack) {
    Bytes in = pod_icmp(kEncapPodIp, 1);
    RunResult r = run_pod(in);
    EXPECT_EQ(r.retval, kOk);
    EXPECT_EQ(r.data[kEthHlen + kIpTtl], 1);
    expect_only(SKIFF_FWD_TTL_EXPIRED, SKIFF_DIR_EGRESS, 1, in.size());
}

TEST_F(TunnelTest, RemoteNodeAddressIsReachedThroughTheTunnel) {
    Bytes in = from_pod_frame(rn_->pod, spec(kPodIp, kNodeViaGwIp, 64, kUdp, 64));
    expect_encapsulated(in, run_pod(in));
    expect_only(SKIFF_FWD_TUNNEL, SKIFF_DIR_EGRESS, 1, in.size());
}

TEST_F(TunnelTest, PacketsThatFitThePathAreSent) {
    // 1200 + 50 <= 1300; and a large one toward a node with a full-size path.
    Bytes fits = pod_packet(kSmallPathPodIp, kUdp, 1200 - 28);
    expect_encapsulated(fits, run_pod(fits));
    Bytes big = pod_packet(kEncapPodIp, kUdp, 1450 - 28);
    expect_encapsulated(big, run_pod(big));
    expect_only(SKIFF_FWD_TUNNEL, SKIFF_DIR_EGRESS, 2, fits.size() + big.size());
}

// The answer to a packet too big: ICMP 3/4 from the node to the pod, with
// the inner MTU that fits the path (1300 - 50), quoting the packet's header.
void TunnelTest::expect_frag_needed(const Bytes& in, const RunResult& r) {
    ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
    EXPECT_EQ(r.retval, kRedirect) << "back into the pod";
    const size_t ip = kEthHlen, icmp = kEthHlen + 20;
    ASSERT_GE(r.data.size(), icmp + 8 + 28);
    EXPECT_EQ(r.data[ip + kIpProto], kIcmp);
    EXPECT_EQ(get32(&r.data[ip + kIpSaddr]), kUplinkIp.value()) << "from the node";
    EXPECT_EQ(get32(&r.data[ip + kIpDaddr]), kPodIp.value()) << "to the pod";
    EXPECT_EQ(r.data[icmp], 3);
    EXPECT_EQ(r.data[icmp + 1], 4);
    EXPECT_EQ(get16(&r.data[icmp + 6]), 1250) << "next-hop MTU";
    EXPECT_EQ(hex(&r.data[icmp + 8], 20), hex(&in[kEthHlen], 20)) << "the offending header, quoted";
    EXPECT_TRUE(checksum_verifies(&r.data[ip], 20));
    EXPECT_TRUE(checksum_verifies(&r.data[icmp], 8 + 28));
    EXPECT_EQ(hex(r.data.data(), 6), hex(rn_->pod.pod.mac)) << "addressed to the pod";
}

TEST_F(TunnelTest, TooBigWithDfIsAnsweredWithFragmentationNeeded) {
    Bytes in = pod_packet(kSmallPathPodIp, kUdp, 1300 - 28);  // 1300 + 50 > 1300
    RunResult r = run_pod(in);
    ASSERT_NO_FATAL_FAILURE(expect_frag_needed(in, r));
    EXPECT_EQ(counter(SKIFF_FWD_FRAG_NEEDED).packets, 1u);
    EXPECT_EQ(counter(SKIFF_FWD_TUNNEL).packets, 0u);
}

TEST_F(TunnelTest, TooBigGsoSuperPacketIsJudgedByItsSegments) {
    // Two segments of 1398 bytes (BPF_PROG_TEST_RUN takes less than a page):
    // each 1398 + 20 + 32 (TCP with timestamps) + 50 = 1500 on the wire, too
    // big for the 1300-byte path.
    Ipv4Spec s =
        ipv4_spec(kPodIp, kSmallPathPodIp, kTcp,
                  tcp_segment(kPodIp, kSmallPathPodIp, 40000, 443, 1, 1, kTcpAck, Bytes(12, 1), Bytes(2796, 7)));
    Bytes in = from_pod_frame(rn_->pod, s);
    RunResult r = test_run_gso(from_pod_.get(), in, rn_->pod.host.ifindex, 1398, 2);
    ASSERT_NO_FATAL_FAILURE(expect_frag_needed(in, r));
    // The same super-packet toward a full-size path goes into the tunnel.
    Ipv4Spec ok = s;
    ok.dst = kEncapPodIp;
    ok.l4 = tcp_segment(kPodIp, kEncapPodIp, 40000, 443, 1, 1, kTcpAck, Bytes(12, 1), Bytes(2796, 7));
    Bytes in2 = from_pod_frame(rn_->pod, ok);
    RunResult r2 = test_run_gso(from_pod_.get(), in2, rn_->pod.host.ifindex, 1398, 2);
    EXPECT_EQ(r2.retval, kRedirect);
    EXPECT_EQ(hex(r2.data.data(), 6), hex(kTunnelMac));
}

TEST_F(TunnelTest, TooBigWithoutDfIsSentForTheUnderlayToFragment) {
    Bytes in = pod_packet(kSmallPathPodIp, kUdp, 1300 - 28, /*df=*/false);
    expect_encapsulated(in, run_pod(in));
    expect_only(SKIFF_FWD_TUNNEL, SKIFF_DIR_EGRESS, 1, in.size());
}

TEST_F(TunnelTest, NodeTrafficIntoTheTunnelGetsItsNodesKey) {
    // As the stack sends it through the route into the tunnel device.
    Bytes in = ethernet(kTunnelMac, kTunnelMac, kEthPIp, ipv4_packet(spec(kUplinkIp, kEncapPodIp, 64, kTcp, 100)));
    RunResult r = run_to_tunnel(in);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, kOk);
    EXPECT_EQ(hex(r.data.data() + 6, 6), hex(kTunnelSrcMac)) << "the stack's source MAC is the device's own";
    EXPECT_EQ(hex(r.data.data() + 12, in.size() - 12), hex(in.data() + 12, in.size() - 12))
        << "the packet itself is not touched";
    EXPECT_EQ(counter(SKIFF_FWD_TUNNEL).packets, 1u);
    // A destination no encapsulated node owns has no key to get.
    Bytes stray = ethernet(kTunnelMac, kTunnelMac, kEthPIp, ipv4_packet(spec(kUplinkIp, kRemoteNeighIp)));
    EXPECT_EQ(run_to_tunnel(stray).retval, kShot);
    EXPECT_EQ(counter(SKIFF_DROP_NO_TUNNEL).packets, 1u);
}

// Regression: the mark went on with the outer packet into the node's
// netfilter, where kubelet's KUBE-FIREWALL dropped it (bit 0x8000).
TEST_F(TunnelTest, EncapsulatedPacketsPassTheTunnelsEgressWithTheMarkCleared) {
    Bytes in = ethernet(kTunnelMac, kTunnelSrcMac, kEthPIp, ipv4_packet(spec(kPodIp, kRemoteNeighIp)));
    RunResult r = run_to_tunnel(in, SKIFF_TUNNEL_MARK);
    ASSERT_NO_FATAL_FAILURE(expect_passed_unmarked(r));
    EXPECT_EQ(hex(r.data.data(), in.size()), hex(in)) << "untouched";
    expect_counters({});
}

// Regression: a NodePort reply routed by FIB toward a client pod on
// another node entered the tunnel without a key and was lost.
TEST_F(TunnelTest, PacketsRoutedIntoTheTunnelByFibGetTheirKey) {
    Bytes in = ethernet(kTunnelMac, kTunnelMac, kEthPIp, ipv4_packet(spec(kUplinkIp, kEncapPodIp, 64, kUdp, 40)));
    RunResult r = run_to_tunnel(in, SKIFF_FORWARDED_MARK);
    ASSERT_NO_FATAL_FAILURE(expect_passed_unmarked(r));
    EXPECT_EQ(counter(SKIFF_FWD_TUNNEL).packets, 1u) << "keyed like the node's own packets";
}

TEST_F(TunnelTest, FromPodEncapsulationMarksThePacketKeyed) {
    Bytes in = pod_icmp(kEncapPodIp);
    RunResult r = run_pod(in);
    EXPECT_EQ(r.retval, kRedirect);
    EXPECT_EQ(r.ctx.mark, SKIFF_TUNNEL_MARK);
}

TEST_F(TunnelTest, EncapsulatedPacketsForThisNodeGoStraightToTheStack) {
    Bytes in = wire_vxlan(kUplinkIp, kTunnelPort);
    RunResult r = run_uplink(in);
    ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
    EXPECT_EQ(r.retval, kOk);
    EXPECT_EQ(r.data, in);
    expect_only(SKIFF_FWD_FROM_TUNNEL, SKIFF_DIR_INGRESS, 1, in.size());
}

TEST_F(TunnelTest, OnlyTheTunnelPortOfThisNodeSkipsTheUplinksLookups) {
    // Another port, another address, and no tunnel port configured: the
    // ordinary path, whatever it decides.
    ASSERT_EQ(run_uplink(wire_vxlan(kUplinkIp, kTunnelPort + 1)).err, 0);
    ASSERT_EQ(run_uplink(wire_vxlan(kNodeViaGwIp, kTunnelPort)).err, 0);
    ASSERT_NO_FATAL_FAILURE(set_tunnel(tunnel_ifindex_, 0));
    ASSERT_EQ(run_uplink(wire_vxlan(kUplinkIp, kTunnelPort)).err, 0);
    EXPECT_EQ(counter(SKIFF_FWD_FROM_TUNNEL, SKIFF_DIR_INGRESS), Count{});
    uint64_t total = 0;
    for (const auto& [k, c] : all_counters()) total += c.packets;
    EXPECT_EQ(total, 3u);
}

TEST_F(TunnelTest, FromTunnelWithoutTunnelMetadataIsDroppedAsSpoofed) {
    for (Ipv4 src : {kEncapPodIp, kNodeNeighIp, kRemoteNeighIp}) {
        Bytes in = ethernet(kTunnelMac, kTunnelMac, kEthPIp, ipv4_packet(spec(src, kDstIp)));
        RunResult r = test_run(from_tunnel_.get(), in, tunnel_ifindex_);
        ASSERT_EQ(r.err, 0);
        EXPECT_EQ(r.retval, kShot) << src.str();
    }
    EXPECT_EQ(counter(SKIFF_DROP_TUNNEL_SPOOF, SKIFF_DIR_INGRESS).packets, 3u);
    EXPECT_EQ(counter(SKIFF_FWD_LOCAL_POD, SKIFF_DIR_INGRESS).packets, 0u);
}

TEST_F(TunnelTest, FromTunnelMalformedFramesAreDropped) {
    Bytes good = ethernet(kTunnelMac, kTunnelMac, kEthPIp, ipv4_packet(spec(kEncapPodIp, kDstIp)));
    for (size_t cut : {size_t{10}, kEthHlen + 10}) {
        Bytes in(good.begin(), good.begin() + static_cast<long>(cut));
        RunResult r = test_run(from_tunnel_.get(), in, tunnel_ifindex_);
        if (r.err == -EINVAL) continue;  // too short for BPF_PROG_TEST_RUN itself
        EXPECT_EQ(r.retval, kShot) << cut;
    }
    EXPECT_EQ(counter(SKIFF_FWD_LOCAL_POD, SKIFF_DIR_INGRESS).packets, 0u);
}

}  // namespace
}  // namespace skiff::bpftest::remote
