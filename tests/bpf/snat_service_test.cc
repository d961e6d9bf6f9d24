// Masquerade of service traffic under BPF_PROG_TEST_RUN (bpf/from_pod.c,
// bpf/from_uplink.c, bpf/lib/service.h, bpf/lib/snat.h): a pod connects to
// a ClusterIP whose backend is outside the pod network and not exempt from
// masquerade, e.g. the `kubernetes` Service whose endpoint is the API server
// on a node that does not run skiff (it has no route back to pod
// addresses). The connection must leave like one sent straight to the
// backend: DNATed to the backend, then masqueraded to the node's address
// with a NAT port, routed out by FIB. The backend's reply, to node:NAT
// port on the uplink, is translated back to the pod (masquerade) and to
// the frontend (service), in that order; ICMP errors likewise.
//  1. TCP and UDP both ways, the established flow, the frontend's port
//     kept or a range port when another flow holds the tuple;
//  2. ICMP errors about such a connection: the quote names the frontend;
//  3. not masqueraded: a backend that is a pod (this node, another node),
//     masquerade off, a backend in a no-masquerade CIDR or on a node.
//
// The API server here is 192.168.1.200:6443 (snat_env.h's outside host: on
// the uplink's subnet, neighbour known, so the FIB answers with its MAC).
// The fixture is SnatTest (snat_env.h) with the service maps opened too.
#include <tuple>

#include "snat_env.h"

namespace skiff::bpftest::snat {
namespace {

inline const Ipv4 kApiVip(0x0a600001);     // 10.96.0.1: the `kubernetes` ClusterIP
inline const Ipv4 kDnsVip(0x0a60000a);     // 10.96.0.10: a UDP service
inline const Ipv4 kPodVip(0x0a600014);     // 10.96.0.20: backed by pods
inline const Ipv4 kApiServer = kOutside;   // 192.168.1.200
inline const Ipv4 kDnsServer = kOutside2;  // 192.168.1.201
constexpr uint16_t kApiVport = 443, kApiPort = 6443, kDnsPort = 53, kPodVport = 80, kPodPort = 8080;
constexpr uint32_t kIdApi = 1, kIdDns = 2, kIdLocalPod = 3, kIdRemotePod = 4, kIdNoMasq = 5, kIdNode = 6;
constexpr uint16_t kApiRevNat = 11, kDnsRevNat = 12, kPodRevNat = 13;

class SnatServiceTest : public SnatTest {
protected:
    void SetUp() override {
        ASSERT_NO_FATAL_FAILURE(SnatTest::SetUp());
        ASSERT_OK(svc_.open(pins_.path()));
        ASSERT_OK(svc_.set_backend(kIdApi, kApiServer, kApiPort, kTcp));
        ASSERT_OK(svc_.set_service(kApiVip, kApiVport, kTcp, {kIdApi}, kApiRevNat));
        ASSERT_OK(svc_.set_backend(kIdDns, kDnsServer, kDnsPort, kUdp));
        ASSERT_OK(svc_.set_service(kDnsVip, kDnsPort, kUdp, {kIdDns}, kDnsRevNat));
    }
    void TearDown() override {
        svc_.close();
        SnatTest::TearDown();
    }

    // kPodVip:80/TCP backed by one backend: be:port.
    void pod_service(uint32_t id, Ipv4 be, uint16_t port = kPodPort) {
        ASSERT_OK(svc_.set_backend(id, be, port, kTcp));
        ASSERT_OK(svc_.set_service(kPodVip, kPodVport, kTcp, {id}, kPodRevNat));
    }

    // Sends in (pod -> frontend) and expects it DNATed to be:bport and
    // masqueraded: source = the node, out of the uplink to next_hop_mac,
    // TTL - 1, checksums valid. Returns the NAT port, 0 on failure.
    uint16_t send_to_service(const Bytes& in, Ipv4 pod, Ipv4 be, uint16_t bport, Bytes* out = nullptr,
                             const MacAddr& next_hop_mac = kSnatOutsideMac) {
        RunResult r = run_pod(in, pod);
        EXPECT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_EQ(r.retval, kRedirect) << describe(counters()) << maps_.dump();
        EXPECT_EQ(r.data.size(), in.size());
        if (r.err != 0 || r.data.size() != in.size()) return 0;
        expect_valid(r.data);
        EXPECT_EQ(frame_saddr(r.data).str(), kNode.str()) << "source: the node";
        EXPECT_EQ(frame_daddr(r.data).str(), be.str()) << "destination: the backend";
        EXPECT_EQ(frame_dport(r.data), bport);
        const uint16_t nat = frame_sport(r.data);
        EXPECT_EQ(hex(r.data), hex(rewritten(in, next_hop_mac, uplink_mac(), 1, kNode, nat, be, bport)));
        if (out) *out = r.data;
        return nat;
    }

    // A reply from be:bport to node:nat, expected delivered into pod from
    // the frontend vip:vport to pod:pod_port, checksums valid.
    void expect_service_reply(const Bytes& reply, Ipv4 pod, uint16_t pod_port, Ipv4 vip, uint16_t vport) {
        RunResult r = run_uplink(reply);
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_EQ(r.retval, kRedirect) << describe(counters()) << maps_.dump() << svc_.ct_dump();
        ASSERT_EQ(r.data.size(), reply.size());
        expect_valid(r.data);
        EXPECT_EQ(frame_saddr(r.data).str(), vip.str()) << "source: the frontend";
        EXPECT_EQ(frame_sport(r.data), vport);
        EXPECT_EQ(frame_daddr(r.data).str(), pod.str()) << "destination: the pod";
        EXPECT_EQ(frame_dport(r.data), pod_port);
        const TestVeth& v = veth_of(pod);
        EXPECT_EQ(hex(r.data), hex(rewritten(reply, v.pod.mac, v.host.mac, 1, vip, vport, pod, pod_port)));
    }

    // Sends in (pod -> frontend) and expects it DNATed to be:bport with
    // the pod's source kept, verdict verdict, and no masquerade entry.
    RunResult send_unmasqueraded(const Bytes& in, Ipv4 pod, Ipv4 be, uint16_t bport, uint32_t verdict) {
        RunResult r = run_pod(in, pod);
        EXPECT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_EQ(r.retval, verdict) << describe(counters());
        EXPECT_EQ(r.data.size(), in.size());
        if (r.data.size() != in.size()) return r;
        const size_t hlen = (r.data[kEthHlen] & 0xfu) * 4u;
        EXPECT_TRUE(checksum_verifies(&r.data[kEthHlen], hlen)) << "IPv4 header checksum";
        EXPECT_TRUE(l4_checksum_verifies(r.data)) << "transport checksum";
        EXPECT_EQ(frame_saddr(r.data).str(), pod.str()) << "source must stay the pod's";
        EXPECT_EQ(frame_sport(r.data), frame_sport(in));
        EXPECT_EQ(frame_daddr(r.data).str(), be.str()) << "DNATed to the backend";
        EXPECT_EQ(frame_dport(r.data), bport);
        EXPECT_EQ(maps_.all().size(), 0u) << "no masquerade entry" << maps_.dump();
        return r;
    }

    ServiceMaps svc_;
};

using SnatServiceReplyTest = SnatServiceTest;
using SnatServiceExemptTest = SnatServiceTest;

// =============================================================================
// 1. Both ways
// =============================================================================

TEST_F(SnatServiceTest, TcpToAClusterIpWithABackendOutsideThePodNetworkLeavesFromTheNode) {
    Bytes syn = tcp_from(kPodA, kApiVip, 40000, kApiVport);
    ASSERT_EQ(syn.size(), 54u);
    const uint16_t nat = send_to_service(syn, kPodA, kApiServer, kApiPort);
    EXPECT_EQ(nat, 40000) << "own port kept: its reply tuple is free";
    expect_flow(kPodA, 40000, kApiServer, kApiPort, kTcp, nat, 1, 54);
    EXPECT_EQ(maps_.all().size(), 2u) << maps_.dump();
    // The service connection is tracked as for any backend: its REPLY entry
    // is keyed by the backend's answer to the pod.
    auto rev = svc_.ct(ct_key(kApiServer, kPodA, kApiPort, 40000, kTcp, SKIFF_CT_REPLY));
    ASSERT_TRUE(rev.has_value()) << svc_.ct_dump();
    EXPECT_EQ(Ipv4::from_be(rev->nat_addr).str(), kApiVip.str());
    EXPECT_EQ(ntohs(rev->nat_port), kApiVport);
    EXPECT_EQ(rev->flags & SKIFF_CT_F_SNAT, 0) << "the masquerade is the SNAT table's";
    expect_counters({{{SKIFF_SVC_NEW, SKIFF_DIR_EGRESS}, Count{1, 54}},
                     {{SKIFF_SNAT_NEW, SKIFF_DIR_EGRESS}, Count{1, 54}},
                     {{SKIFF_FWD_FIB, SKIFF_DIR_EGRESS}, Count{1, 54}}});

    // The API server answers the node; the pod sees the ClusterIP answer.
    Bytes syn_ack = wire(kSnatOutsideMac, kApiServer, kNode, kTcp,
                         tcp_segment(kApiServer, kNode, kApiPort, nat, 777, 0x11223345, kTcpSyn | kTcpAck,
                                     {0x02, 0x04, 0x05, 0xb4}, {}));
    ASSERT_NO_FATAL_FAILURE(expect_service_reply(syn_ack, kPodA, 40000, kApiVip, kApiVport));
    rev = svc_.ct(ct_key(kApiServer, kPodA, kApiPort, 40000, kTcp, SKIFF_CT_REPLY));
    ASSERT_TRUE(rev.has_value());
    EXPECT_NE(rev->flags & SKIFF_CT_F_REPLIED, 0) << "the reply reached the connection's entry";
    EXPECT_EQ(rev->packets, 1u);
    auto ig = maps_.get(ingress_key(kApiServer, kApiPort, nat, kTcp));
    ASSERT_TRUE(ig.has_value());
    EXPECT_EQ(ig->packets, 1u);
    EXPECT_EQ(counter(SKIFF_SNAT_INGRESS_XLATE, SKIFF_DIR_INGRESS), (Count{1, 58}));
    EXPECT_EQ(counter(SKIFF_SVC_REPLY, SKIFF_DIR_INGRESS), (Count{1, 58}));
    EXPECT_EQ(counter(SKIFF_FWD_LOCAL_POD, SKIFF_DIR_INGRESS), (Count{1, 58}));

    // The pod's next segment: the same backend and NAT port, no new entry.
    Bytes ack = tcp_from(kPodA, kApiVip, 40000, kApiVport, kTcpAck | kTcpPsh, 100);
    EXPECT_EQ(send_to_service(ack, kPodA, kApiServer, kApiPort), nat);
    EXPECT_EQ(maps_.all().size(), 2u) << maps_.dump();
    EXPECT_EQ(counter(SKIFF_SVC_ESTABLISHED, SKIFF_DIR_EGRESS).packets, 1u);
    EXPECT_EQ(counter(SKIFF_SNAT_EGRESS_XLATE, SKIFF_DIR_EGRESS).packets, 1u);
    Bytes data = wire(
        kSnatOutsideMac, kApiServer, kNode, kTcp,
        tcp_segment(kApiServer, kNode, kApiPort, nat, 778, 0x11223345 + 100, kTcpAck | kTcpPsh, {}, pattern(300, 4)));
    ASSERT_NO_FATAL_FAILURE(expect_service_reply(data, kPodA, 40000, kApiVip, kApiVport));
}

TEST_F(SnatServiceTest, UdpToAClusterIpWithABackendOutsideThePodNetworkIsMasqueradedBothWays) {
    Bytes q = udp_from(kPodB, kDnsVip, 50000, kDnsPort, 40);
    const uint16_t nat = send_to_service(q, kPodB, kDnsServer, kDnsPort, nullptr, kSnatOutside2Mac);
    EXPECT_EQ(nat, 50000);
    expect_flow(kPodB, 50000, kDnsServer, kDnsPort, kUdp, nat, 1, q.size());
    Bytes answer = wire(kSnatOutside2Mac, kDnsServer, kNode, kUdp, udp(kDnsServer, kNode, kDnsPort, nat, pattern(90)));
    ASSERT_NO_FATAL_FAILURE(expect_service_reply(answer, kPodB, 50000, kDnsVip, kDnsPort));
    // Without a UDP checksum: it stays without one.
    Bytes u = udp(kDnsServer, kNode, kDnsPort, nat, pattern(12));
    put16(&u[kUdpCheck], 0);
    RunResult r = run_uplink(wire(kSnatOutside2Mac, kDnsServer, kNode, kUdp, u));
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, kRedirect);
    EXPECT_EQ(get16(&r.data[l4_offset(r.data) + kUdpCheck]), 0);
    EXPECT_EQ(frame_saddr(r.data).str(), kDnsVip.str());
    EXPECT_EQ(frame_daddr(r.data).str(), kPodB.str());
    EXPECT_EQ(counter(SKIFF_SVC_REPLY, SKIFF_DIR_INGRESS).packets, 2u) << describe(counters());
}

TEST_F(SnatServiceReplyTest, RangePortServiceFlowAndDirectFlowToTheBackendGetTheirOwnReplies) {
    // Pod B talks to the API server directly from 40000 (masquerade keeps
    // the port); pod A through the ClusterIP from 40000 needs a range port.
    ASSERT_EQ(send_out(tcp_from(kPodB, kApiServer, 40000, kApiPort), kPodB), 40000);
    const uint16_t nat = send_to_service(tcp_from(kPodA, kApiVip, 40000, kApiVport), kPodA, kApiServer, kApiPort);
    EXPECT_GE(nat, kNatMin);
    EXPECT_LE(nat, kNatMax);
    expect_flow(kPodA, 40000, kApiServer, kApiPort, kTcp, nat, 1, 54);
    expect_consistent_pairs();
    auto syn_ack = [&](uint16_t dport) {
        return wire(kSnatOutsideMac, kApiServer, kNode, kTcp,
                    tcp_segment(kApiServer, kNode, kApiPort, dport, 5, 0x11223345, kTcpSyn | kTcpAck, {}, {}));
    };
    ASSERT_NO_FATAL_FAILURE(expect_service_reply(syn_ack(nat), kPodA, 40000, kApiVip, kApiVport));
    // The direct flow's reply keeps the API server as source.
    ASSERT_NO_FATAL_FAILURE(expect_reply_into_pod(syn_ack(40000), kPodB, 40000));
    EXPECT_EQ(counter(SKIFF_SVC_REPLY, SKIFF_DIR_INGRESS).packets, 1u) << describe(counters());
    EXPECT_EQ(counter(SKIFF_SNAT_INGRESS_XLATE, SKIFF_DIR_INGRESS).packets, 2u) << describe(counters());
}

// =============================================================================
// 2. ICMP errors
// =============================================================================

TEST_F(SnatServiceReplyTest, FragmentationNeededAboutAServiceFlowQuotesTheFrontend) {
    Bytes out;
    const uint16_t nat = send_to_service(tcp_from(kPodA, kApiVip, 40000, kApiVport, kTcpAck | kTcpPsh, 1200), kPodA,
                                         kApiServer, kApiPort, &out);
    ASSERT_EQ(nat, 40000);
    const Bytes quoted = ip_packet_of(out);  // node:nat -> API server:6443
    for (size_t qlen : {size_t{28}, quoted.size()}) {
        SCOPED_TRACE("quote " + std::to_string(qlen) + " bytes");
        Bytes err = icmp_error(3, 4, 1280, Bytes(quoted.begin(), quoted.begin() + static_cast<long>(qlen)));
        RunResult r = run_uplink(err);
        ASSERT_EQ(r.err, 0);
        EXPECT_EQ(r.retval, kRedirect) << describe(counters());
        ASSERT_EQ(r.data.size(), err.size());
        const Bytes& o = r.data;
        const size_t inner = l4_offset(o) + 8;
        EXPECT_TRUE(checksum_verifies(&o[kEthHlen], 20)) << "outer IPv4 checksum";
        EXPECT_TRUE(icmp_checksum_verifies(o)) << "ICMP checksum";
        EXPECT_TRUE(checksum_verifies(&o[inner], 20)) << "quoted IPv4 header checksum";
        EXPECT_EQ(frame_saddr(o).str(), kRouter.str()) << "outer source untouched";
        EXPECT_EQ(frame_daddr(o).str(), kPodA.str());
        EXPECT_EQ(Ipv4(get32(&o[inner + kIpSaddr])).str(), kPodA.str()) << "quoted source: the pod";
        EXPECT_EQ(get16(&o[inner + 20]), 40000);
        EXPECT_EQ(Ipv4(get32(&o[inner + kIpDaddr])).str(), kApiVip.str()) << "quoted destination: the frontend";
        EXPECT_EQ(get16(&o[inner + 22]), kApiVport);
        Bytes want = icmp_error_to_pod(err, *veth_a_, kPodA, 40000);
        put32(&want[inner + kIpDaddr], kApiVip.value());
        ipv4_fix_checksum(&want[inner]);
        put16(&want[inner + 22], kApiVport);
        icmp_fix_checksum(want);
        EXPECT_EQ(hex(o), hex(want));
    }
    EXPECT_EQ(counter(SKIFF_SNAT_ICMP_ERROR, SKIFF_DIR_INGRESS).packets, 2u) << describe(counters());
    EXPECT_EQ(counter(SKIFF_SVC_REPLY, SKIFF_DIR_INGRESS).packets, 2u) << describe(counters());
}

TEST_F(SnatServiceReplyTest, IcmpErrorAboutADirectFlowToTheBackendKeepsItsQuote) {
    // The backend reached straight, not through its ClusterIP: the quote
    // names the API server, as for any masqueraded flow.
    Bytes out;
    ASSERT_EQ(send_out(tcp_from(kPodA, kApiServer, 40001, kApiPort), kPodA, kSnatOutsideMac, &out), 40001);
    const Bytes quoted = ip_packet_of(out);
    expect_error_into_pod(icmp_error(3, 4, 1280, Bytes(quoted.begin(), quoted.begin() + 28)), kPodA, 40001);
    EXPECT_EQ(counter(SKIFF_SVC_REPLY, SKIFF_DIR_INGRESS).packets, 0u) << describe(counters());
}

// =============================================================================
// 3. Not masqueraded
// =============================================================================

TEST_F(SnatServiceExemptTest, PodBackendsKeepThePodsSourceEvenWithoutTheClusterCidrExempt) {
    // Without the cluster CIDR in skiff_nomasq only the pod network lookup
    // keeps pod backends from being masqueraded.
    for (bool cluster_exempt : {true, false}) {
        SCOPED_TRACE(cluster_exempt ? "cluster CIDR exempt" : "cluster CIDR not exempt");
        if (!cluster_exempt) ASSERT_OK(maps_.del_nomasq(kClusterCidr));
        // A pod on this node: straight into it.
        ASSERT_NO_FATAL_FAILURE(pod_service(kIdLocalPod, kPodB));
        Bytes in = tcp_from(kPodA, kPodVip, cluster_exempt ? 41000 : 41001, kPodVport);
        RunResult r = send_unmasqueraded(in, kPodA, kPodB, kPodPort, kRedirect);
        EXPECT_EQ(hex(r.data),
                  hex(rewritten(in, veth_b_->pod.mac, veth_b_->host.mac, 1, kPodA, frame_sport(in), kPodB, kPodPort)));
        // A pod on another node: routed to that node, source kept.
        ASSERT_OK(svc_.clear_ct());
        ASSERT_NO_FATAL_FAILURE(pod_service(kIdRemotePod, kRemotePod));
        in = tcp_from(kPodA, kPodVip, cluster_exempt ? 42000 : 42001, kPodVport);
        r = send_unmasqueraded(in, kPodA, kRemotePod, kPodPort, kRedirect);
        EXPECT_EQ(hex(r.data),
                  hex(rewritten(in, kNodeNeighMac, uplink_mac(), 1, kPodA, frame_sport(in), kRemotePod, kPodPort)));
        ASSERT_OK(svc_.clear_ct());
    }
    const Counters c = counters();
    EXPECT_EQ(counter(SKIFF_FWD_LOCAL_POD, SKIFF_DIR_EGRESS).packets, 2u) << describe(c);
    EXPECT_EQ(counter(SKIFF_FWD_REMOTE_NODE, SKIFF_DIR_EGRESS).packets, 2u) << describe(c);
    EXPECT_EQ(counter(SKIFF_SNAT_NEW, SKIFF_DIR_EGRESS).packets, 0u) << describe(c);
}

TEST_F(SnatServiceExemptTest, MasqueradeOffLeavesTheServiceFlowWithThePodsSource) {
    ASSERT_OK(maps_.set_config(config(0)));
    send_unmasqueraded(tcp_from(kPodA, kApiVip, 40000, kApiVport), kPodA, kApiServer, kApiPort, kOk);
    send_unmasqueraded(udp_from(kPodA, kDnsVip, 50000, kDnsPort), kPodA, kDnsServer, kDnsPort, kOk);
    EXPECT_EQ(counter(SKIFF_SVC_NEW, SKIFF_DIR_EGRESS).packets, 2u) << describe(counters());
    EXPECT_EQ(counter(SKIFF_FWD_STACK, SKIFF_DIR_EGRESS).packets, 2u) << describe(counters());
    // A reply to the node's address is not a masqueraded one: the stack's.
    expect_uplink_untouched(wire(kSnatOutsideMac, kApiServer, kNode, kTcp,
                                 tcp_segment(kApiServer, kNode, kApiPort, 40000, 5, 1, kTcpSyn | kTcpAck, {}, {})));
}

TEST_F(SnatServiceExemptTest, BackendsInANoMasqueradeCidrOrOnANodeKeepThePodsSource) {
    ASSERT_OK(maps_.add_nomasq(kExtraNoMasq));
    uint16_t sport = 43000;
    // {what, service backend id, backend}
    for (const auto& [what, id, be] : {std::tuple{"a nonMasqueradeCIDR", kIdNoMasq, kInExtraNoMasq},
                                       std::tuple{"another node's address (host network)", kIdNode, kOtherNode}}) {
        SCOPED_TRACE(what);
        ASSERT_NO_FATAL_FAILURE(pod_service(id, be, kApiPort));
        send_unmasqueraded(tcp_from(kPodA, kPodVip, sport++, kPodVport), kPodA, be, kApiPort, kOk);
    }
    EXPECT_EQ(counter(SKIFF_SNAT_NEW, SKIFF_DIR_EGRESS).packets, 0u) << describe(counters());
}

}  // namespace
}  // namespace skiff::bpftest::snat
