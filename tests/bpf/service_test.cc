// Service load-balancing under BPF_PROG_TEST_RUN: DNAT of connections to a
// frontend {VIP, port, proto} onto a backend (from_pod), conntrack state,
// reverse translation of the backends' replies (from_pod at a local
// backend's host veth, from_uplink for remote backends), and what must be
// left alone (non-service traffic, later fragments, truncated headers).
//
// The service maps are filled directly with bpf_map_update_elem (no agent).
// Every translated frame is compared byte for byte with the frame the test
// builds itself, with IPv4 and TCP/UDP checksums recomputed from scratch over
// the pseudo header (the input checksums are correct, so whatever checksum
// state BPF_PROG_TEST_RUN gives the skb, the output must carry the full,
// correct checksum).
//
// Tests marked "BUG:" fail on purpose: they describe a production bug.
#include <map>

#include "service_env.h"

namespace skiff::bpftest::service {
namespace {

// --- 1. new TCP connection ---------------------------------------------------

TEST_F(ServiceTest, NewTcpConnectionIsDnatedToTheBackend) {
    ASSERT_NO_FATAL_FAILURE(one_backend(kTcp));
    Bytes in = client(kVip, kVport, 40000, kTcp, kSyn, 64, 0x5a);
    RunResult r = run_pod(in);
    ASSERT_NO_FATAL_FAILURE(expect_dnat(in, r, net_->dst, kBackendIp, kBport));
    // The payload itself is untouched (expect_dnat compares everything; say it once more).
    const size_t pay = l4_offset(in) + 20;
    EXPECT_EQ(hex(&r.data[pay], in.size() - pay), hex(&in[pay], in.size() - pay));

    auto fwd = maps_.ct(ct_key(kClientIp, kVip, 40000, kVport, kTcp, SKIFF_CT_FORWARD));
    ASSERT_TRUE(fwd.has_value()) << maps_.ct_dump();
    EXPECT_EQ(fwd->backend_id, kBeId);
    EXPECT_EQ(Ipv4::from_be(fwd->nat_addr).str(), kBackendIp.str());
    EXPECT_EQ(ntohs(fwd->nat_port), kBport);
    EXPECT_EQ(fwd->revnat_id, kRevNat);
    EXPECT_EQ(fwd->packets, 1u);
    EXPECT_EQ(fwd->bytes, in.size());
    EXPECT_TRUE(fwd->flags & SKIFF_CT_F_SYN);
    EXPECT_FALSE(fwd->flags & SKIFF_CT_F_CLOSING);
    EXPECT_NE(fwd->created_ns, 0u);
    EXPECT_EQ(fwd->last_seen_ns, fwd->created_ns);

    auto rev = maps_.ct(ct_key(kBackendIp, kClientIp, kBport, 40000, kTcp, SKIFF_CT_REPLY));
    ASSERT_TRUE(rev.has_value()) << maps_.ct_dump();
    EXPECT_EQ(Ipv4::from_be(rev->nat_addr).str(), kVip.str());
    EXPECT_EQ(ntohs(rev->nat_port), kVport);
    EXPECT_EQ(rev->revnat_id, kRevNat);
    EXPECT_EQ(rev->packets, 0u);
    EXPECT_EQ(maps_.ct_all().size(), 2u) << maps_.ct_dump();

    expect_counters({{{SKIFF_SVC_NEW, SKIFF_DIR_EGRESS}, Count{1, in.size()}},
                     {{SKIFF_FWD_LOCAL_POD, SKIFF_DIR_EGRESS}, Count{1, in.size()}}});
}

TEST_F(ServiceTest, NewTcpConnectionWithIpOptionsAndTtlEdges) {
    // IP options move the transport header; TTL 2 is the lowest that is
    // still forwarded. The checksums must come out right in every case.
    ASSERT_NO_FATAL_FAILURE(one_backend(kTcp));
    uint16_t sport = 41000;
    for (uint8_t ttl : {2, 64, 255}) {
        for (size_t opts : {0u, 4u, 12u, 40u}) {
            SCOPED_TRACE("ttl " + std::to_string(ttl) + " options " + std::to_string(opts));
            Ipv4Spec s;
            s.src = kClientIp;
            s.dst = kVip;
            s.ttl = ttl;
            s.protocol = kTcp;
            s.options = Bytes(opts, 1);  // NOPs
            s.l4 = tcp(kClientIp, kVip, ++sport, kVport, 7, kSyn, pattern(33, ttl));
            Bytes in = ethernet(net_->src.host.mac, net_->src.pod.mac, kEthPIp, ipv4_packet(s));
            RunResult r = run_pod(in);
            ASSERT_NO_FATAL_FAILURE(expect_dnat(in, r, net_->dst, kBackendIp, kBport));
        }
    }
    EXPECT_EQ(counter(SKIFF_SVC_NEW).packets, 12u);
}

TEST_F(ServiceTest, DnatChecksumsForRandomPorts) {
    // Different client ports and payloads give all kinds of input
    // checksums; the incrementally updated result must always equal a
    // full recomputation.
    ASSERT_NO_FATAL_FAILURE(one_backend(kTcp));
    ASSERT_OK(maps_.set_backend(9, Ipv4(0xfffffffe), 0xffff, kTcp));  // extreme values
    ASSERT_OK(maps_.set_service(kOtherVip, 0xfffe, kTcp, {9}));
    ASSERT_OK(endpoints_->upsert(Ipv4(0xfffffffe), endpoint(net_->dst)));
    for (int i = 0; i < 300; ++i) {
        const bool other = i % 2;
        const uint16_t sport = static_cast<uint16_t>(1 + i * 211);
        SCOPED_TRACE("case " + std::to_string(i));
        Bytes in = client(other ? kOtherVip : kVip, other ? 0xfffe : kVport, sport, kTcp, kPshAck,
                          static_cast<size_t>(i % 37), static_cast<uint8_t>(i));
        RunResult r = run_pod(in);
        if (other)
            ASSERT_NO_FATAL_FAILURE(expect_dnat(in, r, net_->dst, Ipv4(0xfffffffe), 0xffff));
        else
            ASSERT_NO_FATAL_FAILURE(expect_dnat(in, r, net_->dst, kBackendIp, kBport));
    }
}

// --- 2. UDP ------------------------------------------------------------------

TEST_F(ServiceTest, NewUdpFlowIsDnatedWithItsChecksumUpdated) {
    ASSERT_NO_FATAL_FAILURE(one_backend(kUdp));
    Bytes in = client(kVip, kVport, 5353, kUdp, 0, 48, 0x21);
    ASSERT_NE(get16(&in[l4_offset(in) + kUdpCheck]), 0);
    RunResult r = run_pod(in);
    ASSERT_NO_FATAL_FAILURE(expect_dnat(in, r, net_->dst, kBackendIp, kBport));
    EXPECT_NE(get16(&r.data[l4_offset(r.data) + kUdpCheck]), 0);

    auto fwd = maps_.ct(ct_key(kClientIp, kVip, 5353, kVport, kUdp, SKIFF_CT_FORWARD));
    ASSERT_TRUE(fwd.has_value()) << maps_.ct_dump();
    EXPECT_EQ(fwd->backend_id, kBeId);
    EXPECT_EQ(Ipv4::from_be(fwd->nat_addr).str(), kBackendIp.str());
    EXPECT_EQ(ntohs(fwd->nat_port), kBport);
    EXPECT_EQ(fwd->flags, 0);
    auto rev = maps_.ct(ct_key(kBackendIp, kClientIp, kBport, 5353, kUdp, SKIFF_CT_REPLY));
    ASSERT_TRUE(rev.has_value()) << maps_.ct_dump();
    EXPECT_EQ(Ipv4::from_be(rev->nat_addr).str(), kVip.str());
    EXPECT_EQ(ntohs(rev->nat_port), kVport);
    EXPECT_EQ(maps_.ct_all().size(), 2u) << maps_.ct_dump();
    expect_counters({{{SKIFF_SVC_NEW, SKIFF_DIR_EGRESS}, Count{1, in.size()}},
                     {{SKIFF_FWD_LOCAL_POD, SKIFF_DIR_EGRESS}, Count{1, in.size()}}});
}

// 42 bytes in all: fewer than the 14 L4 bytes the programs read in place
// follow the IP header, so its ports are read by the helper instead.
TEST_F(ServiceTest, UdpDatagramWithoutPayloadIsDnated) {
    ASSERT_NO_FATAL_FAILURE(one_backend(kUdp));
    Bytes in = client(kVip, kVport, 5353, kUdp, 0, 0);
    ASSERT_EQ(in.size(), 42u);
    RunResult r = run_pod(in);
    ASSERT_NO_FATAL_FAILURE(expect_dnat(in, r, net_->dst, kBackendIp, kBport));
    EXPECT_EQ(counter(SKIFF_SVC_NEW).packets, 1u);
}

TEST_F(ServiceTest, UdpWithoutChecksumKeepsZero) {
    ASSERT_NO_FATAL_FAILURE(one_backend(kUdp));
    Bytes in = client(kVip, kVport, 5353, kUdp, 0, 48, 0x21);
    put16(&in[l4_offset(in) + kUdpCheck], 0);  // "no checksum"
    RunResult r = run_pod(in);
    ASSERT_NO_FATAL_FAILURE(expect_dnat(in, r, net_->dst, kBackendIp, kBport));
    EXPECT_EQ(get16(&r.data[l4_offset(r.data) + kUdpCheck]), 0) << "a zero UDP checksum must stay zero";
    EXPECT_EQ(counter(SKIFF_SVC_NEW).packets, 1u);
}

TEST_F(ServiceTest, UdpChecksumThatBecomesZeroIsSentAsAllOnes) {
    // Find a payload for which the translated datagram's checksum computes
    // to 0: it must be sent as 0xffff, never as 0 ("no checksum").
    ASSERT_NO_FATAL_FAILURE(one_backend(kUdp));
    Bytes in;
    for (uint32_t x = 0; x <= 0xffff; ++x) {
        Bytes payload = pattern(8, 3);
        put16(&payload[0], static_cast<uint16_t>(x));
        Bytes cand = frame(net_->src, kClientIp, kVip, kUdp, udp(kClientIp, kVip, 5353, kVport, payload));
        Bytes out = expected_translated(cand, net_->dst, kClientIp, 5353, kBackendIp, kBport);
        if (get16(&out[l4_offset(out) + kUdpCheck]) == 0xffff) {
            in = cand;
            break;
        }
    }
    ASSERT_FALSE(in.empty()) << "no payload gives a zero checksum";
    RunResult r = run_pod(in);
    ASSERT_NO_FATAL_FAILURE(expect_dnat(in, r, net_->dst, kBackendIp, kBport));
    EXPECT_EQ(get16(&r.data[l4_offset(r.data) + kUdpCheck]), 0xffff);
}

TEST_F(ServiceTest, TcpAndUdpFrontendsOnTheSamePortAreSeparate) {
    ASSERT_OK(maps_.set_backend(kBeId, kBackendIp, kBport, kTcp));
    ASSERT_OK(maps_.set_backend(kBe2Id, kBackend2Ip, 5300, kUdp));
    ASSERT_OK(maps_.set_service(kVip, kVport, kTcp, {kBeId}));
    ASSERT_OK(maps_.set_service(kVip, kVport, kUdp, {kBe2Id}));
    Bytes t = client(kVip, kVport, 40000, kTcp, kSyn);
    Bytes u = client(kVip, kVport, 40000, kUdp, 0, 10);
    ASSERT_NO_FATAL_FAILURE(expect_dnat(t, run_pod(t), net_->dst, kBackendIp, kBport));
    ASSERT_NO_FATAL_FAILURE(expect_dnat(u, run_pod(u), net_->other, kBackend2Ip, 5300));
    EXPECT_EQ(maps_.ct_all().size(), 4u) << maps_.ct_dump();
}

// --- 3. established ----------------------------------------------------------

TEST_F(ServiceTest, EstablishedFlowStaysOnItsBackend) {
    ASSERT_NO_FATAL_FAILURE(two_backends(kTcp));
    const uint16_t sport = 45678;
    Bytes syn = client(kVip, kVport, sport, kTcp, kSyn);
    RunResult first = run_pod(syn);
    ASSERT_EQ(first.err, 0);
    ASSERT_EQ(first.retval, kRedirect);
    const Ipv4 chosen = frame_daddr(first.data);
    ASSERT_TRUE(chosen == kBackendIp || chosen == kBackend2Ip) << chosen.str();
    const TestVeth& veth = chosen == kBackendIp ? net_->dst : net_->other;
    const uint32_t chosen_id = chosen == kBackendIp ? kBeId : kBe2Id;
    const skiff_ct_key fkey = ct_key(kClientIp, kVip, sport, kVport, kTcp, SKIFF_CT_FORWARD);
    auto before = maps_.ct(fkey);
    ASSERT_TRUE(before.has_value()) << maps_.ct_dump();
    EXPECT_EQ(before->backend_id, chosen_id);

    uint64_t bytes = syn.size();
    const int kPackets = 50;
    for (int i = 0; i < kPackets; ++i) {
        SCOPED_TRACE("packet " + std::to_string(i));
        Bytes in = client(kVip, kVport, sport, kTcp, kPshAck, static_cast<size_t>(i), static_cast<uint8_t>(i));
        RunResult r = run_pod(in);
        ASSERT_NO_FATAL_FAILURE(expect_dnat(in, r, veth, chosen, kBport));
        bytes += in.size();
    }
    auto after = maps_.ct(fkey);
    ASSERT_TRUE(after.has_value());
    EXPECT_EQ(after->backend_id, chosen_id);
    EXPECT_EQ(after->packets, 1u + kPackets);
    EXPECT_EQ(after->bytes, bytes);
    EXPECT_EQ(after->created_ns, before->created_ns);
    EXPECT_GE(after->last_seen_ns, before->last_seen_ns);
    EXPECT_FALSE(after->flags & SKIFF_CT_F_CLOSING);
    EXPECT_EQ(maps_.ct_all().size(), 2u) << "no new entries for an established flow" << maps_.ct_dump();

    EXPECT_EQ(counter(SKIFF_SVC_NEW).packets, 1u);
    EXPECT_EQ(counter(SKIFF_SVC_ESTABLISHED), (Count{kPackets, bytes - syn.size()}));
    EXPECT_EQ(counter(SKIFF_FWD_LOCAL_POD).packets, 1u + kPackets);

    // A FIN marks the entry closing (and still goes to the same backend).
    Bytes fin = client(kVip, kVport, sport, kTcp, kFinAck);
    ASSERT_NO_FATAL_FAILURE(expect_dnat(fin, run_pod(fin), veth, chosen, kBport));
    auto closing = maps_.ct(fkey);
    ASSERT_TRUE(closing.has_value());
    EXPECT_TRUE(closing->flags & SKIFF_CT_F_CLOSING);
}

TEST_F(ServiceTest, ServiceWithoutBackendsKeepsEstablishedFlows) {
    // Graceful: the frontend lost all its backends (count 0), but the
    // backend of a tracked connection still exists (e.g. terminating).
    ASSERT_NO_FATAL_FAILURE(one_backend(kTcp));
    Bytes syn = client(kVip, kVport, 40000);
    ASSERT_NO_FATAL_FAILURE(expect_dnat(syn, run_pod(syn), net_->dst, kBackendIp, kBport));
    ASSERT_OK(maps_.set_service(kVip, kVport, kTcp, {}));
    Bytes ack = client(kVip, kVport, 40000, kTcp, kAck, 10);
    ASSERT_NO_FATAL_FAILURE(expect_dnat(ack, run_pod(ack), net_->dst, kBackendIp, kBport));
    EXPECT_EQ(counter(SKIFF_SVC_ESTABLISHED).packets, 1u);
}

// --- 4. spread -----------------------------------------------------------------

TEST_F(ServiceTest, NewFlowsAreSpreadOverBackends) {
    ASSERT_NO_FATAL_FAILURE(two_backends(kTcp));
    const int kFlows = 400;
    std::map<std::string, int> hits;
    for (int i = 0; i < kFlows; ++i) {
        const uint16_t sport = static_cast<uint16_t>(20000 + i);
        Bytes in = client(kVip, kVport, sport);
        RunResult r = run_pod(in);
        ASSERT_EQ(r.err, 0);
        ASSERT_EQ(r.retval, kRedirect) << "flow " << i;
        const Ipv4 be = frame_daddr(r.data);
        ASSERT_TRUE(be == kBackendIp || be == kBackend2Ip) << be.str();
        ASSERT_NO_FATAL_FAILURE(expect_dnat(in, r, be == kBackendIp ? net_->dst : net_->other, be, kBport));
        ++hits[be.str()];
        // The conntrack choice is the one the packet got.
        auto fwd = maps_.ct(ct_key(kClientIp, kVip, sport, kVport, kTcp, SKIFF_CT_FORWARD));
        ASSERT_TRUE(fwd.has_value());
        EXPECT_EQ(Ipv4::from_be(fwd->nat_addr).str(), be.str());
        EXPECT_EQ(fwd->backend_id, be == kBackendIp ? kBeId : kBe2Id);
        ASSERT_TRUE(maps_.ct(ct_key(be, kClientIp, kBport, sport, kTcp, SKIFF_CT_REPLY)).has_value());
    }
    std::printf("  [info] spread over 2 backends: %s %d, %s %d\n", kBackendIp.str().c_str(), hits[kBackendIp.str()],
                kBackend2Ip.str().c_str(), hits[kBackend2Ip.str()]);
    EXPECT_GT(hits[kBackendIp.str()], 100);
    EXPECT_GT(hits[kBackend2Ip.str()], 100);
    EXPECT_EQ(maps_.ct_all().size(), 2u * kFlows);
    EXPECT_EQ(counter(SKIFF_SVC_NEW).packets, static_cast<uint64_t>(kFlows));
}

// --- 5. reply from a local backend -----------------------------------------------

TEST_F(ServiceTest, ReplyFromLocalBackendIsTranslatedBackToTheVip) {
    for (uint8_t proto : {kTcp, kUdp}) {
        SCOPED_TRACE(proto == kTcp ? "tcp" : "udp");
        ASSERT_NO_FATAL_FAILURE(one_backend(proto));
        const uint16_t sport = proto == kTcp ? 40000 : 40001;
        Bytes req = client(kVip, kVport, sport, proto, kSyn, 20);
        ASSERT_NO_FATAL_FAILURE(expect_dnat(req, run_pod(req), net_->dst, kBackendIp, kBport));

        // B answers from its own veth: B:8080 -> A:sport.
        Bytes reply = frame(net_->dst, kBackendIp, kClientIp, proto,
                            l4(proto, kBackendIp, kClientIp, kBport, sport, kSynAck, pattern(77, 9)));
        const Counters before = counters();
        RunResult r = run_pod(reply, net_->dst.host.ifindex);
        ASSERT_NO_FATAL_FAILURE(expect_snat(reply, r, net_->src, kVip, kVport));

        auto rev = maps_.ct(ct_key(kBackendIp, kClientIp, kBport, sport, proto, SKIFF_CT_REPLY));
        ASSERT_TRUE(rev.has_value()) << maps_.ct_dump();
        EXPECT_EQ(rev->packets, 1u);
        EXPECT_EQ(rev->bytes, reply.size());
        const Counters after = counters();
        EXPECT_EQ(packets_delta(before, after, SKIFF_SVC_REPLY), 1u);
        EXPECT_EQ(packets_delta(before, after, SKIFF_FWD_LOCAL_POD), 1u);
        EXPECT_EQ(packets_delta(before, after, SKIFF_SVC_NEW), 0u) << "a reply is not a new connection";
        EXPECT_EQ(packets_delta(before, after, SKIFF_SVC_ESTABLISHED), 0u);
    }
    EXPECT_EQ(counter(SKIFF_SVC_REPLY).packets, 2u);
}

TEST_F(ServiceTest, TrafficFromBackendWithoutReplyEntryIsNotTranslated) {
    // B -> A from a port that is not a tracked connection's: plain routing.
    ASSERT_NO_FATAL_FAILURE(one_backend(kTcp));
    Bytes req = client(kVip, kVport, 40000);
    ASSERT_NO_FATAL_FAILURE(expect_dnat(req, run_pod(req), net_->dst, kBackendIp, kBport));
    Bytes other =
        frame(net_->dst, kBackendIp, kClientIp, kTcp, tcp(kBackendIp, kClientIp, 8081, 40000, 1, kSynAck, {}));
    RunResult r = run_pod(other, net_->dst.host.ifindex);
    ASSERT_NO_FATAL_FAILURE(expect_snat(other, r, net_->src, kBackendIp, 8081));  // i.e. unchanged
    EXPECT_EQ(counter(SKIFF_SVC_REPLY).packets, 0u);
}

// --- 6. reply from a remote backend, on the uplink --------------------------------

class ServiceUplinkTest : public ServiceTest {
protected:
    void SetUp() override {
        ASSERT_NO_FATAL_FAILURE(enter_remote_net());
        ServiceTest::SetUp();
    }
    Bytes wire(Ipv4 src, Ipv4 dst, uint8_t proto, const Bytes& l4, uint8_t ttl = 63) const {
        return eth_from_wire(*uplink_, kNodeNeighMac, ipv4_packet(ipv4_spec(src, dst, proto, l4, ttl)));
    }
};

TEST_F(ServiceUplinkTest, ReplyFromRemoteBackendIsTranslatedAndDelivered) {
    for (uint8_t proto : {kTcp, kUdp}) {
        SCOPED_TRACE(proto == kTcp ? "tcp" : "udp");
        const uint16_t cport = 40000, vport = 443, bport = 8443;
        skiff_ct_value rv{};
        rv.backend_id = 3;
        rv.nat_addr = kVip.be();
        rv.nat_port = htons(vport);
        rv.revnat_id = kRevNat;
        ASSERT_OK(maps_.put_ct(ct_key(kRemoteBeIp, kClientIp, bport, cport, proto, SKIFF_CT_REPLY), rv));

        Bytes in = wire(kRemoteBeIp, kClientIp, proto,
                        l4(proto, kRemoteBeIp, kClientIp, bport, cport, kSynAck, pattern(100, proto)));
        RunResult r = run_uplink(in);
        ASSERT_NO_FATAL_FAILURE(expect_snat(in, r, net_->src, kVip, vport));
        auto rev = maps_.ct(ct_key(kRemoteBeIp, kClientIp, bport, cport, proto, SKIFF_CT_REPLY));
        ASSERT_TRUE(rev.has_value());
        EXPECT_EQ(rev->packets, 1u);
        EXPECT_EQ(rev->bytes, in.size());
    }
    EXPECT_EQ(counter(SKIFF_SVC_REPLY, SKIFF_DIR_INGRESS).packets, 2u);
    EXPECT_EQ(counter(SKIFF_FWD_LOCAL_POD, SKIFF_DIR_INGRESS).packets, 2u);
    EXPECT_EQ(counter(SKIFF_SVC_REPLY, SKIFF_DIR_EGRESS).packets, 0u);
    EXPECT_EQ(maps_.ct_all().size(), 2u) << "the uplink creates no entries" << maps_.ct_dump();
}

TEST_F(ServiceUplinkTest, UntrackedTrafficFromRemoteBackendIsOnlyRouted) {
    skiff_ct_value rv{};
    rv.nat_addr = kVip.be();
    rv.nat_port = htons(443);
    ASSERT_OK(maps_.put_ct(ct_key(kRemoteBeIp, kClientIp, 8443, 40000, kTcp, SKIFF_CT_REPLY), rv));
    // Another client port, and a FORWARD-direction entry's tuple: no match.
    Bytes a = wire(kRemoteBeIp, kClientIp, kTcp, tcp(kRemoteBeIp, kClientIp, 8443, 40001, 1, kAck, {}));
    Bytes b = wire(kRemoteBeIp, kClientIp, kUdp, udp(kRemoteBeIp, kClientIp, 8443, 40000, {}));
    for (const Bytes* in : {&a, &b}) {
        RunResult r = run_uplink(*in);
        ASSERT_NO_FATAL_FAILURE(expect_snat(*in, r, net_->src, kRemoteBeIp, 8443));  // unchanged addresses
    }
    expect_counters({{{SKIFF_FWD_LOCAL_POD, SKIFF_DIR_INGRESS}, Count{2, a.size() + b.size()}}});
}

// --- 7. backend removed ------------------------------------------------------------

TEST_F(ServiceTest, FlowWhoseBackendWasRemovedMovesToALiveBackend) {
    // Backend 1 (B) is gone from both backends and the service's slots;
    // the service now has only backend 2 (C). A stale FORWARD entry still
    // points at 1.
    ASSERT_OK(maps_.set_backend(kBe2Id, kBackend2Ip, kBport, kTcp));
    ASSERT_OK(maps_.set_service(kVip, kVport, kTcp, {kBe2Id}, kRevNat));
    const uint16_t sport = 43210;
    const skiff_ct_key fkey = ct_key(kClientIp, kVip, sport, kVport, kTcp, SKIFF_CT_FORWARD);
    skiff_ct_value stale{};
    stale.created_ns = stale.last_seen_ns = 1;
    stale.packets = 10;
    stale.bytes = 1000;
    stale.backend_id = kBeId;
    stale.nat_addr = kBackendIp.be();
    stale.nat_port = htons(kBport);
    stale.revnat_id = kRevNat;
    ASSERT_OK(maps_.put_ct(fkey, stale));

    Bytes in = client(kVip, kVport, sport, kTcp, kPshAck, 30);
    RunResult r = run_pod(in);
    ASSERT_NO_FATAL_FAILURE(expect_dnat(in, r, net_->other, kBackend2Ip, kBport));
    auto fwd = maps_.ct(fkey);
    ASSERT_TRUE(fwd.has_value()) << maps_.ct_dump();
    EXPECT_EQ(fwd->backend_id, kBe2Id);
    EXPECT_EQ(Ipv4::from_be(fwd->nat_addr).str(), kBackend2Ip.str());
    EXPECT_EQ(ntohs(fwd->nat_port), kBport);
    EXPECT_EQ(fwd->packets, 1u) << "a new entry, not the stale one";
    EXPECT_GT(fwd->created_ns, 1u);
    auto rev = maps_.ct(ct_key(kBackend2Ip, kClientIp, kBport, sport, kTcp, SKIFF_CT_REPLY));
    ASSERT_TRUE(rev.has_value()) << maps_.ct_dump();
    EXPECT_EQ(Ipv4::from_be(rev->nat_addr).str(), kVip.str());
    EXPECT_EQ(ntohs(rev->nat_port), kVport);
    expect_counters({{{SKIFF_SVC_NEW, SKIFF_DIR_EGRESS}, Count{1, in.size()}},
                     {{SKIFF_FWD_LOCAL_POD, SKIFF_DIR_EGRESS}, Count{1, in.size()}}});

    // And the flow then stays there.
    Bytes next = client(kVip, kVport, sport, kTcp, kAck, 3);
    ASSERT_NO_FATAL_FAILURE(expect_dnat(next, run_pod(next), net_->other, kBackend2Ip, kBport));
    EXPECT_EQ(counter(SKIFF_SVC_ESTABLISHED).packets, 1u);
}

// --- 8. no backends ------------------------------------------------------------------

// The packet was not sent to any backend: dropped, or (a reject) sent back
// to the client. Never a ct FORWARD entry.
void expect_not_to_a_backend(const RunResult& r, const ServiceMaps& maps) {
    ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
    EXPECT_TRUE(r.retval == kShot || r.retval == kRedirect) << "retval " << r.retval;
    if (r.retval == kRedirect) {
        ASSERT_GE(r.data.size(), kEthHlen + 20);
        EXPECT_EQ(frame_daddr(r.data).str(), kClientIp.str()) << "a redirect must be an answer to the client";
        EXPECT_NE(frame_daddr(r.data).str(), kBackendIp.str());
    }
    for (const auto& [k, v] : maps.ct_all())
        EXPECT_NE(k.dir, SKIFF_CT_FORWARD) << "no connection may be tracked: " << describe(k);
}

TEST_F(ServiceTest, ServiceWithoutBackendsSendsNothingToABackend) {
    ASSERT_OK(maps_.set_backend(kBeId, kBackendIp, kBport, kTcp));  // exists, but not in the service
    ASSERT_OK(maps_.set_service(kVip, kVport, kTcp, {}));
    ASSERT_OK(maps_.set_service(kVip, kVport, kUdp, {}));
    Bytes t = client(kVip, kVport, 40000, kTcp, kSyn, 10);
    Bytes u = client(kVip, kVport, 40000, kUdp, 0, 10);
    for (const Bytes* in : {&t, &u}) {
        RunResult r = run_pod(*in);
        ASSERT_NO_FATAL_FAILURE(expect_not_to_a_backend(r, maps_));
    }
    EXPECT_EQ(counter(SKIFF_DROP_NO_BACKEND).packets, 2u) << describe(counters());
    EXPECT_EQ(counter(SKIFF_SVC_NEW).packets, 0u);
    EXPECT_EQ(maps_.ct_all().size(), 0u) << maps_.ct_dump();
}

TEST_F(ServiceTest, ServiceWhoseSlotPointsToAMissingBackendSendsNothingToABackend) {
    // Maps mid-update: the slot names backend 1, which is not (yet) there.
    ASSERT_OK(maps_.set_service(kVip, kVport, kTcp, {kBeId}));
    Bytes t = client(kVip, kVport, 40000, kTcp, kSyn, 10);
    RunResult r = run_pod(t);
    ASSERT_NO_FATAL_FAILURE(expect_not_to_a_backend(r, maps_));
    EXPECT_EQ(counter(SKIFF_DROP_NO_BACKEND).packets, 1u) << describe(counters());
    EXPECT_EQ(maps_.ct_all().size(), 0u) << maps_.ct_dump();
}

// --- 9. not a service ------------------------------------------------------------------

TEST_F(ServiceTest, NonServiceTrafficIsUntouchedAndUntracked) {
    ASSERT_NO_FATAL_FAILURE(one_backend(kTcp));
    // Straight to the backend pod: routed, not translated.
    Bytes direct = client(kBackendIp, kBport, 40000, kTcp, kSyn, 10);
    RunResult r = run_pod(direct);
    ASSERT_NO_FATAL_FAILURE(expect_dnat(direct, r, net_->dst, kBackendIp, kBport));  // = plain forward
    // The VIP on a port, or with a protocol, it does not serve; another VIP.
    Bytes wrong_port = client(kVip, 81, 40000);
    Bytes wrong_proto = client(kVip, kVport, 40000, kUdp, 0, 10);
    Bytes other_vip = client(kOtherVip, kVport, 40000);
    Bytes icmp = ethernet(net_->src.host.mac, net_->src.pod.mac, kEthPIp, [&] {
        Ipv4Spec s;
        s.src = kClientIp;
        s.dst = kVip;
        s.l4 = icmp_echo(1, 2, pattern(16));
        return ipv4_packet(s);
    }());
    uint64_t bytes = 0;
    for (const Bytes* in : {&wrong_port, &wrong_proto, &other_vip, &icmp}) {
        RunResult s = run_pod(*in);
        ASSERT_EQ(s.err, 0);
        EXPECT_EQ(s.retval, kOk);
        EXPECT_EQ(hex(s.data), hex(*in)) << "must go to the stack untouched";
        bytes += in->size();
    }
    expect_no_ct();
    expect_counters({{{SKIFF_FWD_LOCAL_POD, SKIFF_DIR_EGRESS}, Count{1, direct.size()}},
                     {{SKIFF_FWD_STACK, SKIFF_DIR_EGRESS}, Count{4, bytes}}});
}

// --- 10. fragments -----------------------------------------------------------------------

TEST_F(ServiceTest, NonFirstFragmentToAVipIsNotTranslated) {
    ASSERT_NO_FATAL_FAILURE(one_backend(kTcp));
    ASSERT_NO_FATAL_FAILURE(one_backend(kUdp));
    uint64_t bytes = 0;
    int n = 0;
    for (uint8_t proto : {kTcp, kUdp}) {
        for (uint16_t frag : {0x0001 /* offset 8 */, 0x2001 /* MF */, 0x00b9, 0x1fff}) {
            SCOPED_TRACE("proto " + std::to_string(proto) + " frag_off " + std::to_string(frag));
            // The fragment's data begins with bytes that look like the
            // ports of a connection to VIP:80.
            Bytes data = pattern(40, static_cast<uint8_t>(frag));
            put16(&data[0], 40000);
            put16(&data[2], kVport);
            Ipv4Spec s;
            s.src = kClientIp;
            s.dst = kVip;
            s.protocol = proto;
            s.frag_off = frag;
            s.l4 = data;
            Bytes in = ethernet(net_->src.host.mac, net_->src.pod.mac, kEthPIp, ipv4_packet(s));
            RunResult r = run_pod(in);
            ASSERT_EQ(r.err, 0);
            EXPECT_EQ(r.retval, kOk);
            EXPECT_EQ(hex(r.data), hex(in)) << "a later fragment must not be rewritten";
            bytes += in.size();
            ++n;
        }
    }
    expect_no_ct();
    expect_counters({{{SKIFF_FWD_STACK, SKIFF_DIR_EGRESS}, Count{static_cast<uint64_t>(n), bytes}}});
}

// --- 11. truncated transport headers -------------------------------------------------------

TEST_F(ServiceTest, TruncatedTcpHeaderToAVipIsNotTranslated) {
    // The frame ends inside the TCP header: ports present (4..13 bytes),
    // the flags byte (13) is beyond the frame.
    ASSERT_NO_FATAL_FAILURE(one_backend(kTcp));
    for (size_t len = 4; len <= 13; ++len) {
        SCOPED_TRACE("tcp header of " + std::to_string(len) + " bytes");
        Bytes full = tcp(kClientIp, kVip, 40000, kVport, 1, kSyn, {});
        Bytes cut(full.begin(), full.begin() + static_cast<long>(len));
        Bytes in = frame(net_->src, kClientIp, kVip, kTcp, cut);
        RunResult r = run_pod(in);
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_NE(r.retval, kRedirect);
        if (r.retval == kOk) {
            EXPECT_EQ(hex(r.data), hex(in));
        }
    }
    expect_no_ct();
    EXPECT_EQ(counter(SKIFF_SVC_NEW).packets, 0u) << describe(counters());
}

// Regression (fixed): bpf/lib/l4.h l4_load() (lines 34-53) only checks that the ports (and,
// for TCP, the flags byte 13) can be read from the skb; it never checks that
// the transport header is complete, nor that it lies inside the IPv4 packet
// (ip->tot_len). nat_rewrite() (bpf/lib/nat.h) then needs the checksum field
// at offset 16 (TCP) / 6 (UDP). So a TCP header cut after 14..17 bytes, or a
// UDP header cut after 4..7 bytes, passes l4_load(), svc_forward() creates
// the FORWARD and REPLY conntrack entries (ct_create() runs before the
// rewrite), and only then bpf_l4_csum_replace() fails: the packet is dropped
// as SKIFF_DROP_CSUM while both entries stay behind (state created by
// packets that are never delivered). A TCP header of 18 or 19 bytes is even
// translated and delivered to the backend.
// Suggested fix, in l4_load() after computing l4->off:
//     __u32 need = ip->protocol == IPPROTO_TCP ? sizeof(struct tcphdr) : sizeof(struct udphdr);
//     if (l4->off + need > ETH_HLEN + (__u32)bpf_ntohs(ip->tot_len))
//             return 1;
// (ipv4_header() already guarantees tot_len <= skb->len - ETH_HLEN, so the
// whole header, checksum included, is then inside the skb and the packet.)
TEST_F(ServiceTest, IncompleteTransportHeaderToAVipCreatesNoConntrackState) {
    ASSERT_NO_FATAL_FAILURE(one_backend(kTcp));
    ASSERT_NO_FATAL_FAILURE(one_backend(kUdp));
    struct Case {
        uint8_t proto;
        size_t len;
    };
    std::vector<Case> cases;
    for (size_t len = 14; len <= 19; ++len) cases.push_back({kTcp, len});
    for (size_t len = 4; len <= 7; ++len) cases.push_back({kUdp, len});
    uint16_t sport = 40000;
    for (const auto& c : cases) {
        SCOPED_TRACE(std::string(c.proto == kTcp ? "tcp" : "udp") + " header of " + std::to_string(c.len) + " bytes");
        ++sport;  // a new flow each time: every case must not create state
        Bytes full = l4(c.proto, kClientIp, kVip, sport, kVport, kSyn, {});
        Bytes cut(full.begin(), full.begin() + static_cast<long>(c.len));
        Bytes in = frame(net_->src, kClientIp, kVip, c.proto, cut);
        const Counters before = counters();
        RunResult r = run_pod(in);
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_NE(r.retval, kRedirect) << "an incomplete header must not be translated and delivered";
        EXPECT_FALSE(maps_.ct(ct_key(kClientIp, kVip, sport, kVport, c.proto, SKIFF_CT_FORWARD)).has_value())
            << maps_.ct_dump();
        EXPECT_FALSE(maps_.ct(ct_key(kBackendIp, kClientIp, kBport, sport, c.proto, SKIFF_CT_REPLY)).has_value())
            << maps_.ct_dump();
        EXPECT_EQ(packets_delta(before, counters(), SKIFF_DROP_CSUM), 0u)
            << "a malformed packet is not a checksum failure: " << describe(counters());
    }
}

// Regression (fixed): same root cause as above (bpf/lib/l4.h l4_load(), lines 44 and 50 read
// with bpf_skb_load_bytes(), bounded by skb->len, not by ip->tot_len). A
// short IPv4 packet in a frame with Ethernet padding (any frame below the
// 60-byte minimum on a real wire; tc ingress runs before ip_rcv() trims it)
// whose TCP header is cut after the ports (tot_len = 20 + 4) is handled as a
// complete SYN: the flags and the checksum are taken from the padding, the
// packet is DNATed (its "checksum" update lands in the padding), delivered to
// the backend and tracked. The same packet without padding is correctly left
// alone (TruncatedTcpHeaderToAVipIsNotTranslated). The fix above (bound the
// header by tot_len) fixes this too.
TEST_F(ServiceTest, TransportHeaderCutShortInsideEthernetPaddingIsNotTranslated) {
    ASSERT_NO_FATAL_FAILURE(one_backend(kTcp));
    ASSERT_NO_FATAL_FAILURE(one_backend(kUdp));
    for (uint8_t proto : {kTcp, kUdp}) {
        SCOPED_TRACE(proto == kTcp ? "tcp" : "udp");
        Bytes full = l4(proto, kClientIp, kVip, 40000, kVport, kSyn, {});
        Bytes cut(full.begin(), full.begin() + 4);  // ports only
        Bytes in = frame(net_->src, kClientIp, kVip, proto, cut);
        ASSERT_EQ(get16(&in[kEthHlen + kIpTotLen]), 24);
        // Padding as a peer might send it: here it even looks like the
        // rest of a real header (SYN flags, a checksum).
        in.insert(in.end(), full.begin() + 4, full.end());
        in.resize(60, 0);
        RunResult r = run_pod(in);
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_NE(r.retval, kRedirect) << "a 4-byte transport header must not be translated and delivered";
        if (r.retval == kOk) {
            EXPECT_EQ(hex(r.data), hex(in));
        }
    }
    expect_no_ct();
    EXPECT_EQ(counter(SKIFF_SVC_NEW).packets, 0u) << describe(counters());
}

}  // namespace
}  // namespace skiff::bpftest::service
