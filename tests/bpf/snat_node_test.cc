// The node's own flows in the masquerade table, under BPF_PROG_TEST_RUN
// (bpf/to_uplink.c, snat_node_egress() and snat_ingress() in
// bpf/lib/snat.h):
//  1. to_uplink (the uplink's egress): a packet of the node's to a
//     masqueraded destination leaves as sent, its flow entered like a pod's
//     with its port kept; replies reach the stack untouched (from_uplink);
//  2. a pod flow holding the node's tuple: the node's new flow leaves from
//     a range port (checksums kept valid), replies and ICMP errors are
//     moved back; a node flow holding a tuple: pods get range ports;
//  3. limits: range exhausted (drop), table full (untracked);
//  4. the TCP life cycle: a SYN on a CLOSING entry reopens it.
// What to_uplink must leave alone (exempt destinations, other sources,
// packets skiff forwarded, trace mode) is in snat_mark_test.cc; the
// fixture (SnatTest) in snat_env.h. The node's packets are built as its
// stack sends them: uplink MAC -> next hop, TTL 64.
#include <algorithm>
#include <initializer_list>

#include "snat_env.h"

namespace skiff::bpftest::snat {
namespace {

// A flow of each protocol to outside (destination port 80, 53, none).
struct NodeFlow {
    uint8_t proto;
    uint16_t dport;  // 0 for ICMP echo
};
const NodeFlow kFlows[] = {{kTcp, 80}, {kUdp, 53}, {kIcmp, 0}};

std::string proto_name(uint8_t proto) { return proto == kTcp ? "tcp" : proto == kUdp ? "udp" : "icmp"; }

// f with its source (dst: destination) port, or its echo identifier, set
// to port, checksums recomputed from scratch.
Bytes with_port(const Bytes& f, bool dst, uint16_t port) {
    Bytes g = f;
    const size_t off = l4_offset(g);
    if (g[kEthHlen + kIpProto] == kIcmp) {
        put16(&g[off + kIcmpId], port);
        icmp_fix_checksum(g);
    } else {
        put16(&g[off + (dst ? 2 : 0)], port);
        l4_fix_checksum(g);
    }
    return g;
}

uint16_t sport_of(const Bytes& f) {
    return f[kEthHlen + kIpProto] == kIcmp ? get16(&f[l4_offset(f) + kIcmpId]) : frame_sport(f);
}

class SnatNodeTest : public SnatTest {
protected:
    // The node's packet of flow fl from port, the n-th of its flow.
    Bytes node_packet(const NodeFlow& fl, uint16_t port, Ipv4 dst = kOutside, int n = 0) const {
        if (fl.proto == kTcp) return node_tcp(dst, port, fl.dport, n ? kTcpAck | kTcpPsh : kTcpSyn, n ? 100 : 0);
        if (fl.proto == kUdp) return node_udp(dst, port, fl.dport, 24 + static_cast<size_t>(n));
        return node_ping(dst, port, static_cast<uint16_t>(1 + n));
    }
    Bytes pod_packet(const NodeFlow& fl, Ipv4 pod, uint16_t port, Ipv4 dst = kOutside) const {
        if (fl.proto == kTcp) return tcp_from(pod, dst, port, fl.dport);
        if (fl.proto == kUdp) return udp_from(pod, dst, port, fl.dport);
        return ping_from(pod, dst, port);
    }
    // What dst sends back to the node's port (echo identifier) `to`.
    Bytes reply(const NodeFlow& fl, uint16_t to, Ipv4 dst = kOutside) const {
        if (fl.proto == kTcp)
            return wire(kSnatOutsideMac, dst, kNode, kTcp,
                        tcp_segment(dst, kNode, fl.dport, to, 77, 0x01020305, kTcpSyn | kTcpAck, {}, {}));
        if (fl.proto == kUdp)
            return wire(kSnatOutsideMac, dst, kNode, kUdp, udp(dst, kNode, fl.dport, to, pattern(30)));
        return wire(kSnatOutsideMac, dst, kNode, kIcmp, icmp_echo_reply(to, 1, pattern(40, 11)));
    }

    // A packet of the node's expected to leave as sent.
    void expect_node_passes(const Bytes& in) {
        RunResult r = run_to_uplink(in);
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_EQ(r.retval, kOk) << describe(counters());
        EXPECT_EQ(hex(r.data), hex(in)) << "must leave as sent";
        EXPECT_EQ(r.ctx.mark, 0u);
    }
    // A packet of the node's expected to leave from another port (echo
    // identifier) of the range, nothing else changed, checksums valid.
    // Returns that port, 0 on failure.
    uint16_t node_moved(const Bytes& in, Bytes* out = nullptr) {
        RunResult r = run_to_uplink(in);
        EXPECT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_EQ(r.retval, kOk) << describe(counters()) << maps_.dump();
        EXPECT_EQ(r.data.size(), in.size());
        if (r.err != 0 || r.retval != kOk || r.data.size() != in.size()) return 0;
        expect_valid(r.data);
        const uint16_t port = sport_of(r.data);
        EXPECT_NE(port, sport_of(in)) << "not moved";
        EXPECT_GE(port, kNatMin);
        EXPECT_LE(port, kNatMax);
        EXPECT_EQ(hex(r.data), hex(with_port(in, false, port)));
        if (out) *out = r.data;
        return port;
    }
    // A reply expected to reach the node's stack with destination port
    // (echo identifier) node_port, nothing else changed.
    void expect_reply_to_node(const Bytes& in, uint16_t node_port) {
        RunResult r = run_uplink(in);
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_EQ(r.retval, kOk) << describe(counters());
        ASSERT_EQ(r.data.size(), in.size());
        expect_valid(r.data);
        EXPECT_EQ(hex(r.data), hex(with_port(in, true, node_port)));
    }
    // After a node flow and a pod flow of each of kFlows on one tuple: their
    // entries (a pair each, nothing else) and the packets each counter
    // {reason, dir, packets} counted.
    struct Packets {
        uint32_t reason, dir;
        uint64_t packets;
    };
    void expect_node_and_pod_flows(std::initializer_list<Packets> want) {
        expect_consistent_pairs();
        EXPECT_EQ(maps_.all().size(), 12u) << maps_.dump();
        for (const Packets& w : want)
            EXPECT_EQ(counter(w.reason, w.dir).packets, w.packets)
                << datapath::reason_name(w.reason) << "/" << datapath::dir_name(w.dir);
    }
};

// =============================================================================
// 1. The node's flow, its port kept
// =============================================================================

TEST_F(SnatNodeTest, NodeFlowLeavesAsSentAndIsEnteredWithItsPort) {
    // Port 45000 lies in the node's ephemeral range: the node's own, kept.
    uint64_t out_bytes[2] = {}, in_bytes = 0;
    for (const auto& fl : kFlows) {
        SCOPED_TRACE(proto_name(fl.proto));
        const Bytes first = node_packet(fl, 45000), next = node_packet(fl, 45000, kOutside, 1);
        ASSERT_NO_FATAL_FAILURE(expect_node_passes(first));
        expect_flow(kNode, 45000, kOutside, fl.dport, fl.proto, 45000, 1, first.size());
        ASSERT_NO_FATAL_FAILURE(expect_node_passes(next));
        expect_flow(kNode, 45000, kOutside, fl.dport, fl.proto, 45000, 2, first.size() + next.size());
        out_bytes[0] += first.size();
        out_bytes[1] += next.size();

        const Bytes back = reply(fl, 45000);
        ASSERT_NO_FATAL_FAILURE(expect_reply_to_node(back, 45000));
        in_bytes += back.size();
        auto ig = maps_.get(ingress_key(kOutside, fl.dport, 45000, fl.proto));
        ASSERT_TRUE(ig);
        EXPECT_EQ(ig->packets, 1u);
        EXPECT_EQ(ig->bytes, back.size());
    }
    expect_consistent_pairs();
    EXPECT_EQ(maps_.all().size(), 6u) << maps_.dump();
    expect_counters({{{SKIFF_SNAT_NODE_NEW, SKIFF_DIR_EGRESS}, Count{3, out_bytes[0]}},
                     {{SKIFF_SNAT_NODE, SKIFF_DIR_EGRESS}, Count{3, out_bytes[1]}},
                     {{SKIFF_SNAT_NODE, SKIFF_DIR_INGRESS}, Count{3, in_bytes}},
                     {{SKIFF_FWD_STACK, SKIFF_DIR_INGRESS}, Count{3, in_bytes}}});
}

TEST_F(SnatNodeTest, NodeEchoIsTrackedByItsIdentifier) {
    // Sequence numbers change, the identifier is the flow.
    for (uint16_t seq = 1; seq <= 3; ++seq) {
        ASSERT_NO_FATAL_FAILURE(expect_node_passes(node_ping(kOutside, 0x4242, seq)));
    }
    auto eg = maps_.get(ct_key(kNode, kOutside, 0x4242, 0, kIcmp, SKIFF_SNAT_EGRESS));
    ASSERT_TRUE(eg) << maps_.dump();
    EXPECT_EQ(ntohs(eg->port), 0x4242);
    EXPECT_EQ(eg->packets, 3u);
    auto ig = maps_.get(ct_key(kOutside, kNode, 0, 0x4242, kIcmp, SKIFF_SNAT_INGRESS));
    ASSERT_TRUE(ig) << maps_.dump();
    EXPECT_EQ(ig->addr, kNode.be());
    EXPECT_EQ(ntohs(ig->port), 0x4242);
    EXPECT_EQ(maps_.all().size(), 2u) << maps_.dump();
    EXPECT_EQ(counter(SKIFF_SNAT_NODE_NEW).packets, 1u);
    EXPECT_EQ(counter(SKIFF_SNAT_NODE).packets, 2u);
    // An echo request from outside to the node with that identifier is not
    // a reply: the stack's, untouched and not counted as the flow's.
    expect_uplink_untouched(wire(kSnatOutsideMac, kOutside, kNode, kIcmp, icmp_echo(0x4242, 9, pattern(8))));
    EXPECT_EQ(counter(SKIFF_SNAT_NODE, SKIFF_DIR_INGRESS).packets, 0u);
    ASSERT_NO_FATAL_FAILURE(expect_reply_to_node(
        wire(kSnatOutsideMac, kOutside, kNode, kIcmp, icmp_echo_reply(0x4242, 3, pattern(40))), 0x4242));
    EXPECT_EQ(counter(SKIFF_SNAT_NODE, SKIFF_DIR_INGRESS).packets, 1u);
}

TEST_F(SnatNodeTest, OnlyAFlowsFirstPacketEntersTheTable) {
    // The node answering as a server (SYN-ACK of a listener, RST to a stray
    // segment) or a connection older than the program: not entered, not
    // counted. A flood of spoofed SYNs to a node port cannot fill the table.
    for (uint8_t flags : {uint8_t(kTcpSyn | kTcpAck), uint8_t(kTcpRst), uint8_t(kTcpRst | kTcpAck), uint8_t(kTcpAck),
                          uint8_t(kTcpAck | kTcpPsh), uint8_t(kTcpFin | kTcpAck)}) {
        SCOPED_TRACE("flags " + std::to_string(flags));
        ASSERT_NO_FATAL_FAILURE(expect_node_passes(node_tcp(kOutside, 22, 40000, flags, flags & kTcpPsh ? 100 : 0)));
    }
    EXPECT_EQ(maps_.all().size(), 0u) << maps_.dump();
    expect_counters({});
    // The SYN of a connection the node opens does.
    ASSERT_NO_FATAL_FAILURE(expect_node_passes(node_tcp(kOutside, 40001, 443, kTcpSyn)));
    EXPECT_EQ(maps_.all().size(), 2u) << maps_.dump();
    EXPECT_EQ(counter(SKIFF_SNAT_NODE_NEW).packets, 1u);
}

// =============================================================================
// 2. Node and pod flows on one tuple
// =============================================================================

TEST_F(SnatNodeTest, PodFlowHoldingTheTupleMovesTheNodesNewFlow) {
    for (const auto& fl : kFlows) {
        SCOPED_TRACE(proto_name(fl.proto));
        // Pod A's flow from 45000 holds {outside, node, dport, 45000}.
        ASSERT_EQ(send_out(pod_packet(fl, kPodA, 45000), kPodA), 45000);
        const Count moved_before = counter(SKIFF_SNAT_NODE_MOVED);

        const Bytes first = node_packet(fl, 45000);
        const uint16_t moved = node_moved(first);
        ASSERT_NE(moved, 0);
        EXPECT_EQ(counter(SKIFF_SNAT_NODE_MOVED).packets, moved_before.packets + 1);
        expect_flow(kNode, 45000, kOutside, fl.dport, fl.proto, moved, 1, first.size());
        auto pods = maps_.get(ingress_key(kOutside, fl.dport, 45000, fl.proto));
        ASSERT_TRUE(pods);
        EXPECT_EQ(pods->addr, kPodA.be()) << "the pod's entry is left alone";

        // The flow's later packets: the same port.
        const Count node_before = counter(SKIFF_SNAT_NODE);
        for (int n = 1; n <= 2; ++n) {
            EXPECT_EQ(node_moved(node_packet(fl, 45000, kOutside, n)), moved);
        }
        EXPECT_EQ(counter(SKIFF_SNAT_NODE).packets, node_before.packets + 2);

        // Replies: to the moved port, back to the node's 45000 (the stack);
        // to 45000, into the pod.
        const Count in_before = counter(SKIFF_SNAT_NODE, SKIFF_DIR_INGRESS);
        ASSERT_NO_FATAL_FAILURE(expect_reply_to_node(reply(fl, moved), 45000));
        EXPECT_EQ(counter(SKIFF_SNAT_NODE, SKIFF_DIR_INGRESS).packets, in_before.packets + 1);
        expect_reply_into_pod(reply(fl, 45000), kPodA, 45000);
    }
    expect_node_and_pod_flows({{SKIFF_SNAT_NODE_MOVED, SKIFF_DIR_EGRESS, 3},
                               {SKIFF_SNAT_NODE_NEW, SKIFF_DIR_EGRESS, 0},
                               {SKIFF_SNAT_INGRESS_XLATE, SKIFF_DIR_INGRESS, 3}});
}

TEST_F(SnatNodeTest, NodeFlowHoldingTheTupleGivesPodsARangePort) {
    for (const auto& fl : kFlows) {
        SCOPED_TRACE(proto_name(fl.proto));
        ASSERT_NO_FATAL_FAILURE(expect_node_passes(node_packet(fl, 45000)));
        // Pods never take a tuple of the node's flows.
        const uint16_t nat = send_out(pod_packet(fl, kPodA, 45000), kPodA);
        EXPECT_GE(nat, kNatMin);
        EXPECT_LE(nat, kNatMax);
        expect_flow(kPodA, 45000, kOutside, fl.dport, fl.proto, nat, 1, pod_packet(fl, kPodA, 45000).size());
        // Replies: to the pod's port, into the pod; to 45000, the node's.
        expect_reply_into_pod(reply(fl, nat), kPodA, 45000);
        ASSERT_NO_FATAL_FAILURE(expect_reply_to_node(reply(fl, 45000), 45000));
        // The node's flow is still there and still keeps its port.
        ASSERT_NO_FATAL_FAILURE(expect_node_passes(node_packet(fl, 45000, kOutside, 1)));
    }
    expect_node_and_pod_flows({{SKIFF_SNAT_NODE_NEW, SKIFF_DIR_EGRESS, 3},
                               {SKIFF_SNAT_NODE, SKIFF_DIR_EGRESS, 3},
                               {SKIFF_SNAT_NODE, SKIFF_DIR_INGRESS, 3}});
}

TEST_F(SnatNodeTest, IcmpErrorAboutAMovedNodeFlowGetsItsPortBack) {
    // A router's "fragmentation needed" about the moved flow: the quote
    // carries the range port, the node's stack must see its own (PMTU).
    ASSERT_EQ(send_out(tcp_from(kPodA, kOutside, 45000, 80), kPodA), 45000);
    const uint16_t moved = node_moved(node_tcp(kOutside, 45000, 80, kTcpSyn));
    ASSERT_NE(moved, 0);
    Bytes out;
    ASSERT_EQ(node_moved(node_tcp(kOutside, 45000, 80, kTcpAck | kTcpPsh, 1000), &out), moved);
    const Bytes quoted = ip_packet_of(out);
    for (size_t qlen : {size_t{28}, quoted.size()}) {
        SCOPED_TRACE("quote " + std::to_string(qlen) + " bytes");
        Bytes err = icmp_error(3, 4, 1280, Bytes(quoted.begin(), quoted.begin() + static_cast<long>(qlen)));
        RunResult r = run_uplink(err);
        ASSERT_EQ(r.err, 0);
        EXPECT_EQ(r.retval, kOk) << "the node's: to the stack";
        ASSERT_EQ(r.data.size(), err.size());
        Bytes want = err;
        const size_t inner = l4_offset(want) + 8;
        put16(&want[inner + 20], 45000);
        icmp_fix_checksum(want);
        EXPECT_EQ(hex(r.data), hex(want)) << "only the quoted port changes (and the ICMP checksum)";
        EXPECT_TRUE(icmp_checksum_verifies(r.data));
    }
    EXPECT_EQ(counter(SKIFF_SNAT_ICMP_ERROR, SKIFF_DIR_INGRESS).packets, 2u) << describe(counters());
    EXPECT_EQ(counter(SKIFF_FWD_STACK, SKIFF_DIR_INGRESS).packets, 2u) << describe(counters());
}

// =============================================================================
// 3. Limits
// =============================================================================

TEST_F(SnatNodeTest, NodeFlowIsDroppedWhenItsTupleIsHeldAndNoRangePortIsLeft) {
    ASSERT_OK(maps_.set_config(config(SKIFF_CFG_F_MASQUERADE, 61000, 61001)));
    // Pod A holds 45000 and 45001, pod B's flows from them both range ports.
    for (uint16_t p : {uint16_t{45000}, uint16_t{45001}}) {
        ASSERT_EQ(send_out(tcp_from(kPodA, kOutside, p, 80), kPodA), p);
        const uint16_t nat = send_out(tcp_from(kPodB, kOutside, p, 80), kPodB);
        ASSERT_TRUE(nat == 61000 || nat == 61001) << nat;
    }
    ASSERT_EQ(maps_.all().size(), 8u) << maps_.dump();
    const Counters before = counters();

    const Bytes in = node_tcp(kOutside, 45000, 80);
    RunResult r = run_to_uplink(in);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, kShot);
    Counters want = before;
    want[{SKIFF_DROP_NAT_NO_PORT, SKIFF_DIR_EGRESS}] = Count{1, in.size()};
    expect_counters(want);
    EXPECT_EQ(maps_.all().size(), 8u) << "a failed claim leaves nothing behind" << maps_.dump();

    // A free tuple of its own still leaves as sent; to another destination
    // the range is free again.
    ASSERT_NO_FATAL_FAILURE(expect_node_passes(node_tcp(kOutside, 45002, 80)));
    ASSERT_EQ(send_out(tcp_from(kPodA, kOutside2, 45000, 80), kPodA, kSnatOutside2Mac), 45000);
    EXPECT_NE(node_moved(node_tcp(kOutside2, 45000, 80)), 0);
    expect_consistent_pairs();
}

TEST_F(SnatNodeTest, NodeFlowPassesUntrackedWhenTheTableIsFull) {
    // Fill skiff_snat to the brim with entries of a made-up destination.
    const uint32_t n = SKIFF_SNAT_MAX;
    std::vector<skiff_ct_key> keys(n);
    std::vector<skiff_nat_value> vals(n);
    for (uint32_t i = 0; i < n; ++i) {
        keys[i] = ct_key(Ipv4(0x0ac80000 + (i >> 16)), kNode, 80, static_cast<uint16_t>(i), kTcp, SKIFF_SNAT_INGRESS);
        vals[i].addr = kPodB.be();
        vals[i].port = htons(static_cast<uint16_t>(i));
    }
    for (uint32_t done = 0; done < n;) {
        uint32_t count = std::min<uint32_t>(n - done, 8192);
        LIBBPF_OPTS(bpf_map_batch_opts, opts);
        ASSERT_EQ(bpf_map_update_batch(maps_.snat_fd(), &keys[done], &vals[done], &count, &opts), 0)
            << "filled " << done << ": " << std::strerror(errno);
        done += count;
    }
    // Really full: one more is refused.
    skiff_ct_key extra = ct_key(Ipv4(0x0ac9c9c9), kNode, 80, 1, kTcp, SKIFF_SNAT_INGRESS);
    ASSERT_NE(bpf_map_update_elem(maps_.snat_fd(), &extra, &vals[0], BPF_NOEXIST), 0);

    // The node's new flow: sent as is, counted, not entered.
    const Bytes in = node_tcp(kOutside, 45000, 80);
    for (int i = 1; i <= 2; ++i) {
        ASSERT_NO_FATAL_FAILURE(expect_node_passes(in));
        EXPECT_EQ(counter(SKIFF_SNAT_NODE_UNTRACKED), (Count{static_cast<uint64_t>(i), i * in.size()}));
    }
    EXPECT_FALSE(maps_.get(egress_key(kNode, kOutside, 45000, 80, kTcp)));
    EXPECT_FALSE(maps_.get(ingress_key(kOutside, 80, 45000, kTcp)));
    // A pod's new flow finds no room either: dropped.
    RunResult r = run_pod(tcp_from(kPodA, kOutside, 45001, 80), kPodA);
    EXPECT_EQ(r.retval, kShot);
    EXPECT_EQ(counter(SKIFF_DROP_NAT_NO_PORT).packets, 1u);

    // Room for one flow (two entries): the node's is tracked again.
    ASSERT_OK(maps_.del(keys[0]));
    ASSERT_OK(maps_.del(keys[1]));
    ASSERT_NO_FATAL_FAILURE(expect_node_passes(in));
    EXPECT_EQ(counter(SKIFF_SNAT_NODE_NEW).packets, 1u);
    EXPECT_TRUE(maps_.get(egress_key(kNode, kOutside, 45000, 80, kTcp)));
    EXPECT_TRUE(maps_.get(ingress_key(kOutside, 80, 45000, kTcp)));
}

// =============================================================================
// 4. TCP life cycle
// =============================================================================

TEST_F(SnatNodeTest, SynOnAClosingEntryClearsClosing) {
    // A FIN or RST marks the entry closing (the agent expires it sooner); a
    // later SYN without FIN/RST is a new connection on the same tuple.
    struct Step {
        uint8_t flags;
        bool closing;
    };
    const std::vector<Step> steps = {
        {kTcpSyn, false},          {kTcpAck | kTcpPsh, false}, {kTcpFin | kTcpAck, true},
        {kTcpAck, true},           {kTcpSyn, false},           {kTcpRst, true},
        {kTcpSyn | kTcpRst, true}, {kTcpSyn | kTcpFin, true},  {kTcpSyn | kTcpAck, false},
    };
    // A pod's flow from 45000 and the node's from 45001.
    auto flags_of = [&](Ipv4 src, uint16_t sport) {
        auto eg = maps_.get(egress_key(src, kOutside, sport, 80, kTcp));
        return eg ? std::optional<uint8_t>(eg->flags) : std::nullopt;
    };
    for (const auto& s : steps) {
        SCOPED_TRACE("flags 0x" + hex(&s.flags, 1));
        EXPECT_EQ(send_out(tcp_from(kPodA, kOutside, 45000, 80, s.flags), kPodA), 45000);
        ASSERT_NO_FATAL_FAILURE(expect_node_passes(node_tcp(kOutside, 45001, 80, s.flags)));
        for (const auto& [src, sport] : {std::pair{kPodA, uint16_t{45000}}, std::pair{kNode, uint16_t{45001}}}) {
            auto f = flags_of(src, sport);
            ASSERT_TRUE(f) << src.str() << maps_.dump();
            EXPECT_EQ((*f & SKIFF_CT_F_CLOSING) != 0, s.closing) << src.str();
        }
    }
    // The reply direction's entry follows the replies the same way.
    auto reply_closing = [&](uint8_t flags) {
        expect_reply_to_node(
            wire(kSnatOutsideMac, kOutside, kNode, kTcp, tcp_segment(kOutside, kNode, 80, 45001, 5, 6, flags, {}, {})),
            45001);
        auto ig = maps_.get(ingress_key(kOutside, 80, 45001, kTcp));
        return ig && (ig->flags & SKIFF_CT_F_CLOSING) != 0;
    };
    EXPECT_TRUE(reply_closing(kTcpFin | kTcpAck));
    EXPECT_FALSE(reply_closing(kTcpSyn | kTcpAck));
    EXPECT_EQ(maps_.all().size(), 4u) << maps_.dump();
    EXPECT_EQ(counter(SKIFF_SNAT_NODE_NEW).packets, 1u) << "one flow all along";
}

}  // namespace
}  // namespace skiff::bpftest::snat
