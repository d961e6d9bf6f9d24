// What the uplink's egress program (bpf/to_uplink.c) must leave alone, and
// the mark that tells it skiff forwarded a packet (SKIFF_FORWARDED_MARK,
// set by skiff_redirect()/skiff_redirect_neigh() in bpf/lib/redirect.h):
//  1. the node's traffic outside the masquerade's scope: exempt
//     destinations, masquerade off, other sources, non-echo ICMP, frames
//     without ports: untouched, no entries, no counters;
//  2. packets with the forwarded mark pass untouched and uncounted and
//     leave without it; from_pod marks what it redirects out of a device
//     (masqueraded, to another node), not what goes into a pod or to the
//     stack;
//  3. trace mode (SKIFF_TRACE_MARK, skiffctl trace): the mark stays, no
//     state or counter changes, the verdict lands in skiff_trace.
// The node's tracked flows are in snat_node_test.cc; the fixture in
// snat_env.h. BPF_PROG_TEST_RUN takes skb->mark from ctx_in and reports it
// back in ctx_out (RunResult::ctx).
#include "snat_env.h"

namespace skiff::bpftest::snat {
namespace {

using SnatMarkTest = SnatTest;

const Ipv4 kNotNode(0xc0a80163);  // 192.168.1.99: another address on the uplink's subnet

// =============================================================================
// 1. Out of scope
// =============================================================================

TEST_F(SnatMarkTest, NodeTrafficOutsideTheMasqueradeIsLeftAlone) {
    ASSERT_OK(maps_.add_nomasq(kExtraNoMasq));
    std::vector<std::pair<std::string, Bytes>> cases;
    for (const auto& [what, dst] :
         {std::pair{"a pod on another node", kRemotePod}, std::pair{"cluster CIDR without a node", kClusterNoNode},
          std::pair{"another node", kOtherNode}, std::pair{"a nonMasqueradeCIDR", kInExtraNoMasq}}) {
        cases.push_back({std::string(what) + " tcp", node_tcp(dst, 45000, 80)});
        cases.push_back({std::string(what) + " udp", node_udp(dst, 45000, 53)});
        cases.push_back({std::string(what) + " ping", node_ping(dst, 45000)});
    }
    // Sources that are not the node's address (as the stack may forward).
    cases.push_back(
        {"another source", node_frame(kOutside, kTcp, tcp(kNotNode, kOutside, 45000, 80, 1, kTcpSyn, {}), kNotNode)});
    cases.push_back({"a pod's source", node_frame(kOutside, kUdp, udp(kPodA, kOutside, 45000, 53, pattern(8)), kPodA)});
    // ICMP that is not an echo request: no identifier to track.
    cases.push_back({"echo reply", node_frame(kOutside, kIcmp, icmp_echo_reply(45000, 1, pattern(8)))});
    Bytes quote = ipv4_packet(ipv4_spec(kOutside, kNode, kUdp, udp(kOutside, kNode, 53, 45000, pattern(8))));
    cases.push_back({"port unreachable", node_frame(kOutside, kIcmp, icmp_error_msg(3, 3, 0, quote))});
    cases.push_back({"time exceeded", node_frame(kOutside, kIcmp, icmp_error_msg(11, 0, 0, quote))});
    // No ports: a later fragment, another protocol, not IPv4.
    Ipv4Spec tail = ipv4_spec(kNode, kOutside, kUdp, pattern(64));
    tail.frag_off = 185;
    cases.push_back({"later fragment", ethernet(kSnatOutsideMac, uplink_mac(), kEthPIp, ipv4_packet(tail))});
    cases.push_back({"GRE", node_frame(kOutside, 47, pattern(24))});
    cases.push_back({"ARP", ethernet(kSnatOutsideMac, uplink_mac(), kEthPArp, pattern(28))});
    cases.push_back({"IPv6", ethernet(kSnatOutsideMac, uplink_mac(), kEthPIpv6, pattern(60))});

    auto expect_alone = [&](const std::string& what, const Bytes& in) {
        SCOPED_TRACE(what);
        RunResult r = run_to_uplink(in);
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_EQ(r.retval, kOk);
        EXPECT_EQ(hex(r.data), hex(in)) << "must leave as sent";
        EXPECT_EQ(r.ctx.mark, 0u);
    };
    for (const auto& [what, in] : cases) expect_alone(what, in);
    // Masquerade off, or no node address yet: nothing is the node's flow.
    ASSERT_OK(maps_.set_config(config(0)));
    for (const Bytes& in : {node_tcp(kOutside, 45000, 80), node_udp(kOutside, 45000, 53), node_ping(kOutside, 7)})
        expect_alone("masquerade off", in);
    skiff_config no_ip = config();
    no_ip.node_ip = 0;
    ASSERT_OK(maps_.set_config(no_ip));
    expect_alone("no node address", node_tcp(kOutside, 45000, 80));

    EXPECT_EQ(maps_.all().size(), 0u) << maps_.dump();
    expect_counters({});
    // The check itself: with masquerade on, the same node packet is tracked.
    ASSERT_OK(maps_.set_config(config()));
    RunResult r = run_to_uplink(node_tcp(kOutside, 45000, 80));
    EXPECT_EQ(r.retval, kOk);
    EXPECT_EQ(maps_.all().size(), 2u) << maps_.dump();
    EXPECT_EQ(counter(SKIFF_SNAT_NODE_NEW).packets, 1u);
}

TEST_F(SnatMarkTest, TheTunnelsOuterPacketsAreNotNodeFlows) {
    // Even toward a destination masquerade covers: VXLAN's outer packets
    // (the node's address to the tunnel port, a source port per inner
    // flow) are skiff's own and answer nothing.
    skiff_config c = config();
    c.tunnel_port = htons(8472);
    ASSERT_OK(maps_.set_config(c));
    for (uint16_t sport : {41000, 41001, 52000}) {
        Bytes in = node_udp(kOutside, sport, 8472);
        RunResult r = run_to_uplink(in);
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_EQ(r.retval, kOk);
        EXPECT_EQ(hex(r.data), hex(in));
    }
    EXPECT_EQ(maps_.all().size(), 0u) << maps_.dump();
    expect_counters({});
    // Another port is a node flow like any other.
    ASSERT_EQ(run_to_uplink(node_udp(kOutside, 41000, 8473)).retval, kOk);
    EXPECT_EQ(maps_.all().size(), 2u) << maps_.dump();
}

// =============================================================================
// 2. The forwarded mark
// =============================================================================

TEST_F(SnatMarkTest, ForwardedPacketsPassUntouchedUncountedAndLoseTheMark) {
    // Frames the uplink's egress would otherwise judge: a new node flow, a
    // flow whose tuple a pod holds (would be moved), malformed, not IPv4.
    ASSERT_EQ(send_out(tcp_from(kPodA, kOutside, 45001, 80), kPodA), 45001);
    const size_t entries = maps_.all().size();
    const Counters before = counters();
    Bytes broken = node_tcp(kOutside, 45002, 80);
    broken[kEthHlen] = 0x44;  // IHL 4
    for (const Bytes& in : {node_tcp(kOutside, 45000, 80), node_tcp(kOutside, 45001, 80), broken,
                            ethernet(kSnatOutsideMac, uplink_mac(), kEthPArp, pattern(28))}) {
        RunResult r = run_to_uplink(in, SKIFF_FORWARDED_MARK);
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_EQ(r.retval, kOk);
        EXPECT_EQ(hex(r.data), hex(in)) << "must leave as sent";
        EXPECT_EQ(r.ctx.mark, 0u) << "the mark is cleared";
    }
    EXPECT_EQ(maps_.all().size(), entries) << maps_.dump();
    EXPECT_EQ(describe(counters()), describe(before));

    // Without the mark the first is the node's new flow; another mark (a
    // firewall's, say) is not skiff's: judged too, and kept.
    RunResult r = run_to_uplink(node_tcp(kOutside, 45000, 80));
    EXPECT_EQ(r.retval, kOk);
    r = run_to_uplink(node_tcp(kOutside, 45003, 80), 0x4000);
    EXPECT_EQ(r.retval, kOk);
    EXPECT_EQ(r.ctx.mark, 0x4000u);
    EXPECT_EQ(counter(SKIFF_SNAT_NODE_NEW).packets, 2u);
    EXPECT_EQ(maps_.all().size(), entries + 4) << maps_.dump();
}

TEST_F(SnatMarkTest, FromPodMarksWhatItRedirectsOutOfADevice) {
    // 10.244.6.0/24 on a node whose MAC is not known: bpf_redirect_neigh.
    ASSERT_OK(nodes_->upsert(Ipv4Prefix(Ipv4(0x0af40600), 24), node(kNodeNoNeighIp)));
    struct Case {
        const char* what;
        Bytes in;
        uint32_t verdict, reason, mark;
    };
    const std::vector<Case> cases = {
        {"masqueraded", tcp_from(kPodA, kOutside, 45000, 80), kRedirect, SKIFF_FWD_FIB, SKIFF_FORWARDED_MARK},
        {"to another node", tcp_from(kPodA, kRemotePod, 45000, 80), kRedirect, SKIFF_FWD_REMOTE_NODE,
         SKIFF_FORWARDED_MARK},
        {"to a node, neighbour unknown", tcp_from(kPodA, Ipv4(0x0af40605), 45000, 80), kRedirect, SKIFF_FWD_REMOTE_NODE,
         SKIFF_FORWARDED_MARK},
        {"into a local pod", tcp_from(kPodA, kPodB, 45000, 80), kRedirect, SKIFF_FWD_LOCAL_POD, 0},
        {"to the stack", tcp_from(kPodA, kClusterNoNode, 45000, 80), kOk, SKIFF_FWD_STACK, 0},
    };
    Bytes masqueraded;
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        const Count before = counter(c.reason);
        RunResult r = run_pod(c.in, kPodA);
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_EQ(r.retval, c.verdict) << describe(counters());
        EXPECT_EQ(counter(c.reason).packets, before.packets + 1) << describe(counters());
        EXPECT_EQ(r.ctx.mark, c.mark);
        if (masqueraded.empty()) masqueraded = r.data;
    }
    // The masqueraded packet (its source now the node's address, its port
    // 45000) reaching the uplink's egress: skiff's, left alone.
    ASSERT_EQ(frame_saddr(masqueraded).str(), kNode.str());
    const auto entries = maps_.all().size();
    const Counters before = counters();
    RunResult r = run_to_uplink(masqueraded, SKIFF_FORWARDED_MARK);
    EXPECT_EQ(r.retval, kOk);
    EXPECT_EQ(hex(r.data), hex(masqueraded));
    EXPECT_EQ(r.ctx.mark, 0u);
    EXPECT_EQ(maps_.all().size(), entries) << maps_.dump();
    EXPECT_EQ(describe(counters()), describe(before));
    // Without the mark it would pass for a node flow on the pod's tuple,
    // and be moved off it.
    r = run_to_uplink(masqueraded);
    EXPECT_EQ(r.retval, kOk);
    EXPECT_NE(frame_sport(r.data), 45000);
    EXPECT_EQ(counter(SKIFF_SNAT_NODE_MOVED).packets, 1u);
}

// =============================================================================
// 3. Trace mode
// =============================================================================

TEST_F(SnatMarkTest, TraceModeKeepsItsMarkAndChangesNothing) {
    auto expect_traced = [&](const RunResult& r, uint32_t action, uint32_t reason, bool is_new) {
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_EQ(r.retval, action);
        EXPECT_EQ(r.ctx.mark, SKIFF_TRACE_MARK) << "not turned into the forwarded mark";
        const skiff_trace_result t = maps_.trace();
        EXPECT_EQ(t.reason, reason) << datapath::reason_name(t.reason);
        EXPECT_EQ(t.action, static_cast<int32_t>(action));
        EXPECT_EQ((t.flags & SKIFF_TRACE_F_NEW) != 0, is_new);
    };
    // A pod's new masqueraded flow: would be redirected out of the uplink.
    Bytes pod = tcp_from(kPodA, kOutside, 45000, 80);
    RunResult r = run_pod(pod, kPodA, SKIFF_TRACE_MARK);
    expect_traced(r, kRedirect, SKIFF_FWD_FIB, true);
    EXPECT_EQ(maps_.trace().redirect_ifindex, static_cast<uint32_t>(uplink_->host.ifindex));
    EXPECT_EQ(frame_saddr(r.data).str(), kNode.str()) << "the verdict's packet, translated";
    // The node's new flow.
    const Bytes node = node_tcp(kOutside, 45001, 80);
    r = run_to_uplink(node, SKIFF_TRACE_MARK);
    expect_traced(r, kOk, SKIFF_SNAT_NODE_NEW, true);
    EXPECT_EQ(hex(r.data), hex(node));
    // A node packet out of scope: the stack's, traced as such.
    r = run_to_uplink(node_tcp(kOtherNode, 45001, 80), SKIFF_TRACE_MARK);
    expect_traced(r, kOk, SKIFF_FWD_STACK, false);
    EXPECT_EQ(maps_.all().size(), 0u) << "trace mode creates no state" << maps_.dump();
    expect_counters({});

    // Real flows now: the pod's from 45000, the node's from 45001.
    ASSERT_EQ(send_out(pod, kPodA), 45000);
    ASSERT_EQ(run_to_uplink(node).retval, kOk);
    const auto state = maps_.dump();
    const Counters before = counters();
    // A traced packet of the node's flow: seen, its entry not touched.
    r = run_to_uplink(node_tcp(kOutside, 45001, 80, kTcpFin | kTcpAck), SKIFF_TRACE_MARK);
    expect_traced(r, kOk, SKIFF_SNAT_NODE, false);
    // A traced new node flow on the pod's tuple: would be moved (the
    // packet shows it), no port is taken.
    r = run_to_uplink(node_tcp(kOutside, 45000, 80), SKIFF_TRACE_MARK);
    expect_traced(r, kOk, SKIFF_SNAT_NODE_MOVED, true);
    EXPECT_GE(frame_sport(r.data), kNatMin);
    EXPECT_LE(frame_sport(r.data), kNatMax);
    // A traced reply to the node's flow.
    r = run_uplink_marked(
        wire(kSnatOutsideMac, kOutside, kNode, kTcp, tcp_segment(kOutside, kNode, 80, 45001, 5, 6, kTcpRst, {}, {})),
        SKIFF_TRACE_MARK);
    expect_traced(r, kOk, SKIFF_FWD_STACK, false);
    EXPECT_EQ(maps_.dump(), state) << "entries, their counts and flags unchanged";
    EXPECT_EQ(describe(counters()), describe(before));
}

}  // namespace
}  // namespace skiff::bpftest::snat
