// Masquerade (SNAT) under BPF_PROG_TEST_RUN (bpf/lib/snat.h):
//  1. from_pod: a flow to a destination outside the no-masquerade set gets
//     the node's address as source and is routed out by FIB lookup; the
//     pod's own port is kept when its reply tuple is free (and no socket of
//     the node's would take it: snat_socket_test.cc), else a port of the
//     configured range is claimed; both skiff_snat entries (EGRESS and
//     INGRESS) are created;
//  2. ports: own ports kept (ephemeral ones too), two pods with the same
//     port, UDP with and without a checksum, ICMP echo identifiers, range
//     exhaustion;
//  3. destinations never translated (skiff_nomasq, the node itself) and the
//     MASQUERADE flag off;
//  4. from_uplink: replies translated back into the pod (TCP, UDP, ICMP
//     echo reply);
//  5. from_uplink: ICMP errors about a translated flow (fragmentation
//     needed, time exceeded, port unreachable), quoted header included;
//  6. robustness: established flows, two CPUs racing on one new flow,
//     truncated ICMP errors, pre-claimed tuples;
//  7. what fwd_fib() does not send (TTL expiring, FIB miss) and fragments.
// 1-3 are here, 4-7 in snat_reply_test.cc, the node's own flows (the
// uplink's egress) in snat_node_test.cc; the fixture (SnatTest) is in
// snat_env.h.
//
// The outside hosts are 192.168.1.200/.201 with neighbour entries (see
// snat_env.h), so translated packets get the FIB's MACs. A pod keeps any
// port whose reply tuple is free, inside the node's ephemeral range
// (32768-60999) too: a test that needs a range port first makes the own
// tuple unavailable, mostly by a flow of the other pod from the same port
// to the same destination (the "holder").
//
// Maps are filled directly (one pin dir per test: fresh maps). Output
// frames are compared byte for byte with frames the test builds itself,
// checksums recomputed from scratch. BPF_PROG_TEST_RUN reports the verdict
// but does not perform a redirect.
//
// Tests marked "BUG:" fail on purpose: they describe a production bug.
#include <set>

#include "snat_env.h"

namespace skiff::bpftest::snat {
namespace {

using SnatEgressTest = SnatTest;
using SnatPortTest = SnatTest;
using SnatExemptTest = SnatTest;

// =============================================================================
// 1. from_pod: translation, routing, entries, counters
// =============================================================================

TEST_F(SnatEgressTest, TcpSynKeepsItsOwnPortAndIsRoutedOutByFib) {
    // Its reply tuple is free: the pod keeps its port.
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

    expect_counters(
        {{{SKIFF_FWD_FIB, SKIFF_DIR_EGRESS}, Count{1, 54}}, {{SKIFF_SNAT_NEW, SKIFF_DIR_EGRESS}, Count{1, 54}}});
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

TEST_F(SnatPortTest, AnyFreeSourcePortIsKeptEphemeralOrNot) {
    // Pod A keeps every port it sends from: below, inside (32768-60999) and
    // above the node's ephemeral range, even a port of the NAT range (61005:
    // its tuple is free). Pod B, from the same ports to the same
    // destination, finds each tuple held: range ports, each handed out once
    // and never 61005 (pod A's).
    const std::vector<uint16_t> sports = {1024, 32767, 32768, 45000, 60999, 61005, 65535};
    auto frame = [&](Ipv4 pod, uint8_t proto, uint16_t sport) {
        return proto == kTcp   ? tcp_from(pod, kOutside, sport, 443)
               : proto == kUdp ? udp_from(pod, kOutside, sport, 443)
                               : ping_from(pod, kOutside, sport);
    };
    for (uint8_t proto : {kTcp, kUdp, kIcmp}) {
        std::set<uint16_t> range_ports;
        for (uint16_t sport : sports) {
            SCOPED_TRACE("proto " + std::to_string(proto) + " sport " + std::to_string(sport));
            Bytes in = frame(kPodA, proto, sport);
            EXPECT_EQ(send_out(in, kPodA), sport) << "own port kept";
            expect_flow(kPodA, sport, kOutside, 443, proto, sport, 1, in.size());
        }
        for (uint16_t sport : sports) {
            SCOPED_TRACE("pod B, proto " + std::to_string(proto) + " sport " + std::to_string(sport));
            Bytes in = frame(kPodB, proto, sport);
            const uint16_t nat = send_out(in, kPodB);
            EXPECT_GE(nat, kNatMin);
            EXPECT_LE(nat, kNatMax);
            EXPECT_NE(nat, 61005) << "pod A's own port";
            EXPECT_TRUE(range_ports.insert(nat).second) << "port " << nat << " handed out twice";
            expect_flow(kPodB, sport, kOutside, 443, proto, nat, 1, in.size());
        }
    }
    expect_consistent_pairs();
    EXPECT_EQ(maps_.all().size(), 3 * 2 * 2 * sports.size()) << maps_.dump();
    EXPECT_EQ(counter(SKIFF_SNAT_NEW, SKIFF_DIR_EGRESS).packets, 3 * 2 * sports.size());
    EXPECT_EQ(counter(SKIFF_FWD_FIB, SKIFF_DIR_EGRESS).packets, 3 * 2 * sports.size());
}

TEST_F(SnatPortTest, TwoPodsWithTheSameSourcePortGetDistinctPorts) {
    for (uint16_t sport : {uint16_t{30000}, uint16_t{45000}}) {
        SCOPED_TRACE("sport " + std::to_string(sport));
        const uint16_t a = send_out(tcp_from(kPodA, kOutside, sport, 80), kPodA);
        const uint16_t b = send_out(tcp_from(kPodB, kOutside, sport, 80), kPodB);
        ASSERT_NE(a, 0);
        ASSERT_NE(b, 0);
        EXPECT_NE(a, b) << "one reply tuple for two flows";
        EXPECT_EQ(a, sport) << "the first pod keeps its port";
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
    // 10 flows of pod B to one destination, each from a port whose own
    // tuple pod A holds (same port, same destination): all 10 range ports,
    // each once.
    auto fill = [&](Ipv4 dst, const MacAddr& mac) {
        std::set<uint16_t> got;
        for (uint16_t i = 0; i < 10; ++i) {
            const uint16_t sport = static_cast<uint16_t>(50000 + i);
            EXPECT_EQ(send_out(tcp_from(kPodA, dst, sport, 80), kPodA, mac), sport) << "the holder keeps its port";
            const uint16_t nat = send_out(tcp_from(kPodB, dst, sport, 80), kPodB, mac);
            EXPECT_TRUE(got.insert(nat).second) << "port " << nat << " twice";
        }
        return got;
    };
    std::set<uint16_t> want;
    for (uint16_t p = kNatMin; p <= kNatMax; ++p) want.insert(p);
    EXPECT_EQ(fill(kOutside, kSnatOutsideMac), want);
    expect_consistent_pairs();
    // The same pod ports to another destination: the range again.
    EXPECT_EQ(fill(kOutside2, kSnatOutside2Mac), want) << "NAT ports are per destination";
    expect_consistent_pairs();
    EXPECT_EQ(maps_.all().size(), 80u);
}

TEST_F(SnatPortTest, UdpWithAChecksumIsTranslatedWithAValidChecksum) {
    Bytes kept = udp_from(kPodA, kOutside, 5353, 53, 40);
    EXPECT_EQ(send_out(kept, kPodA), 5353);
    expect_flow(kPodA, 5353, kOutside, 53, kUdp, 5353, 1, kept.size());

    // Pod B from the same port: the tuple is pod A's, a range port (the
    // port rewritten too; send_out checks the checksum).
    Bytes moved = udp_from(kPodB, kOutside, 5353, 53, 41);
    Bytes out;
    const uint16_t nat = send_out(moved, kPodB, kSnatOutsideMac, &out);
    EXPECT_GE(nat, kNatMin);
    EXPECT_LE(nat, kNatMax);
    EXPECT_NE(get16(&out[l4_offset(out) + kUdpCheck]), 0) << "a UDP checksum is never turned into 'none'";
    expect_flow(kPodB, 5353, kOutside, 53, kUdp, nat, 1, moved.size());
    expect_consistent_pairs();
}

TEST_F(SnatPortTest, UdpWithoutAChecksumStaysWithoutOne) {
    // Pod A keeps port 50000 (only the address changes), pod B from the same
    // port gets a range port (the port changes too).
    for (Ipv4 pod : {kPodA, kPodB}) {
        SCOPED_TRACE(pod.str());
        Bytes in = udp_from(pod, kOutside, 50000, 53, 33, /*no_checksum=*/true);
        ASSERT_EQ(get16(&in[l4_offset(in) + kUdpCheck]), 0);
        Bytes out;
        const uint16_t nat = send_out(in, pod, kSnatOutsideMac, &out);
        ASSERT_FALSE(out.empty());
        EXPECT_EQ(get16(&out[l4_offset(out) + kUdpCheck]), 0) << "checksum 0 ('none') must stay 0";
        if (pod == kPodA) {
            EXPECT_EQ(nat, 50000);
        } else {
            EXPECT_GE(nat, kNatMin);
            EXPECT_LE(nat, kNatMax);
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
    const uint16_t sum =
        csum_fold(csum_add(pseudo_header_sum(kNode, kOutside, kUdp, probe.size()), probe.data(), probe.size()));
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
    // Pod A holds its own tuples from ports 45000-45002: pod B's flows from
    // the same ports need range ports.
    for (uint16_t p = 45000; p <= 45002; ++p) {
        ASSERT_EQ(send_out(tcp_from(kPodA, kOutside, p, 80), kPodA), p);
    }
    const uint16_t p1 = send_out(tcp_from(kPodB, kOutside, 45000, 80), kPodB);
    const uint16_t p2 = send_out(tcp_from(kPodB, kOutside, 45001, 80), kPodB);
    EXPECT_EQ((std::set<uint16_t>{p1, p2}), (std::set<uint16_t>{61000, 61001}));
    ASSERT_EQ(maps_.all().size(), 10u) << maps_.dump();

    // The third flow: no port left for this destination.
    Bytes third = tcp_from(kPodB, kOutside, 45002, 80);
    RunResult r = run_pod(third, kPodB);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, kShot);
    EXPECT_EQ(counter(SKIFF_DROP_NAT_NO_PORT, SKIFF_DIR_EGRESS), (Count{1, 54}));
    EXPECT_EQ(maps_.all().size(), 10u) << "a failed claim leaves nothing behind" << maps_.dump();
    // A flow whose own port is a range port another flow took: the same.
    r = run_pod(tcp_from(kPodA, kOutside, p1, 80), kPodA);
    EXPECT_EQ(r.retval, kShot);
    EXPECT_EQ(counter(SKIFF_DROP_NAT_NO_PORT, SKIFF_DIR_EGRESS).packets, 2u);

    // Existing flows keep translating, to the same ports.
    EXPECT_EQ(send_out(tcp_from(kPodB, kOutside, 45000, 80, kTcpAck, 10), kPodB), p1);
    EXPECT_EQ(send_out(tcp_from(kPodB, kOutside, 45001, 80, kTcpAck, 10), kPodB), p2);
    EXPECT_EQ(counter(SKIFF_SNAT_EGRESS_XLATE, SKIFF_DIR_EGRESS).packets, 2u);
    // And their replies come back.
    expect_reply_into_pod(wire(kSnatOutsideMac, kOutside, kNode, kTcp,
                               tcp_segment(kOutside, kNode, 80, p2, 5, 6, kTcpAck, {}, pattern(4))),
                          kPodB, 45001);
    // Still possible: a free own port, and range ports to another destination.
    EXPECT_EQ(send_out(tcp_from(kPodA, kOutside, 30000, 80), kPodA), 30000);
    EXPECT_EQ(send_out(tcp_from(kPodA, kOutside2, 45002, 80), kPodA, kSnatOutside2Mac), 45002);
    const uint16_t other = send_out(tcp_from(kPodB, kOutside2, 45002, 80), kPodB, kSnatOutside2Mac);
    EXPECT_TRUE(other == 61000 || other == 61001) << other;
    expect_consistent_pairs();
    EXPECT_EQ(maps_.all().size(), 16u) << maps_.dump();
}

TEST_F(SnatPortTest, ALastFreePortIsAlwaysFound) {
    // The flow's own tuple and all but one range port already claimed
    // toward this destination (by flows of some other pod): a new flow must
    // find the free one, wherever its random starting point (the range is
    // smaller than the tries).
    for (uint16_t free_port = kNatMin; free_port <= kNatMax; ++free_port) {
        SCOPED_TRACE("free port " + std::to_string(free_port));
        for (const auto& [k, v] : maps_.all()) ASSERT_OK(maps_.del(k));
        std::vector<uint16_t> held = {45000};  // the own tuple
        for (uint16_t p = kNatMin; p <= kNatMax; ++p) {
            if (p != free_port) held.push_back(p);
        }
        for (uint16_t p : held) {
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
        {"a pod on another node", kRemotePod, kRedirect},      // routed to its node, source kept
        {"cluster CIDR without a node", kClusterNoNode, kOk},  // the stack's
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

}  // namespace
}  // namespace skiff::bpftest::snat
