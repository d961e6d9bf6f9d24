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
// 1-3 are here, 4-7 in snat_reply_test.cc; the fixture (SnatTest) is in
// snat_env.h.
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

}  // namespace
}  // namespace skiff::bpftest::snat
