// Service features under BPF_PROG_TEST_RUN, part 2 (part 1, and the list,
// in service_features_test.cc; the fixture in service_features_env.h):
//  4. hairpin: a pod reaching itself through a service is source-NATed to
//     SKIFF_HAIRPIN_ADDR;
//  5. NodePort on from_uplink: remote backends are source-NATed to the node
//     IP (skiff_config), local ones are not; replies go out by FIB lookup;
//  6. SKIFF_CT_F_REPLIED on both conntrack entries after the first reply;
//  7. socket LB (bpf/sock.c), if the kernel can test_run cgroup/sock_addr.
//
// Maps are filled directly. Output frames are compared byte for byte with
// frames the test builds itself, checksums recomputed from scratch.
// BPF_PROG_TEST_RUN reports the verdict but does not perform a redirect.
#include <sys/socket.h>

#include "datapath/socklb.h"
#include "service_features_env.h"

namespace skiff::bpftest::features {
namespace {

// =============================================================================
// 4. Hairpin
// =============================================================================

TEST_F(ServiceFeatureTest, HairpinToItselfIsSourceNatedToTheHairpinAddress) {
    ASSERT_OK(maps_.set_backend(kIdA, kPodA, kBport, kTcp));
    ASSERT_OK(fmaps_.set_frontend(kVip, kVport, kTcp, {kIdA}, kRevNat, 0));
    const uint16_t cport = 40000;
    const TestVeth& a = net_->src;

    Bytes syn =
        pod_frame(a, kPodA, kVip, kTcp, tcp_segment(kPodA, kVip, cport, kVport, 1, 0, kTcpSyn, {}, pattern(20)));
    RunResult r = run_pod(syn);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, kRedirect) << "back into A's own veth";
    ASSERT_EQ(r.data.size(), syn.size());
    expect_checksums(r.data);
    EXPECT_EQ(frame_saddr(r.data).str(), "169.254.42.1");
    EXPECT_EQ(frame_daddr(r.data).str(), kPodA.str());
    EXPECT_EQ(hex(r.data), hex(rewritten(syn, a.pod.mac, a.host.mac, 1, kHairpin, cport, kPodA, kBport)));

    auto fwd = maps_.ct(ct_key(kPodA, kVip, cport, kVport, kTcp, SKIFF_CT_FORWARD));
    ASSERT_TRUE(fwd.has_value()) << maps_.ct_dump();
    EXPECT_EQ(fwd->flags & (SKIFF_CT_F_SNAT | SKIFF_CT_F_SYN), SKIFF_CT_F_SNAT | SKIFF_CT_F_SYN);
    EXPECT_EQ(Ipv4::from_be(fwd->snat_addr).str(), kHairpin.str());
    EXPECT_EQ(ntohs(fwd->snat_port), cport);
    EXPECT_EQ(Ipv4::from_be(fwd->nat_addr).str(), kPodA.str());
    EXPECT_EQ(ntohs(fwd->nat_port), kBport);
    const skiff_ct_key rkey = ct_key(kPodA, kHairpin, kBport, cport, kTcp, SKIFF_CT_REPLY);
    auto rev = maps_.ct(rkey);
    ASSERT_TRUE(rev.has_value()) << "REPLY keyed {pod, 169.254.42.1, bport, cport}" << maps_.ct_dump();
    EXPECT_TRUE(rev->flags & SKIFF_CT_F_SNAT);
    EXPECT_EQ(Ipv4::from_be(rev->nat_addr).str(), kVip.str());
    EXPECT_EQ(ntohs(rev->nat_port), kVport);
    EXPECT_EQ(Ipv4::from_be(rev->snat_addr).str(), kPodA.str());
    EXPECT_EQ(ntohs(rev->snat_port), cport);
    EXPECT_EQ(maps_.ct_all().size(), 2u) << maps_.ct_dump();
    EXPECT_FALSE(fwd->flags & SKIFF_CT_F_REPLIED);
    EXPECT_FALSE(rev->flags & SKIFF_CT_F_REPLIED);

    // A answers (as the server) to 169.254.42.1: it must see VIP:80 -> A:cport.
    Bytes reply = pod_frame(a, kPodA, kHairpin, kTcp,
                            tcp_segment(kPodA, kHairpin, kBport, cport, 9, 2, kTcpSyn | kTcpAck, {}, pattern(7)));
    RunResult rr = run_pod(reply);
    ASSERT_EQ(rr.err, 0);
    EXPECT_EQ(rr.retval, kRedirect);
    ASSERT_EQ(rr.data.size(), reply.size());
    expect_checksums(rr.data);
    EXPECT_EQ(hex(rr.data), hex(rewritten(reply, a.pod.mac, a.host.mac, 1, kVip, kVport, kPodA, cport)));
    EXPECT_TRUE(maps_.ct(rkey)->flags & SKIFF_CT_F_REPLIED);
    EXPECT_TRUE(maps_.ct(ct_key(kPodA, kVip, cport, kVport, kTcp, SKIFF_CT_FORWARD))->flags & SKIFF_CT_F_REPLIED);

    // The connection goes on the same way.
    Bytes ack =
        pod_frame(a, kPodA, kVip, kTcp, tcp_segment(kPodA, kVip, cport, kVport, 2, 10, kTcpAck, {}, pattern(3)));
    RunResult ra = run_pod(ack);
    ASSERT_EQ(ra.err, 0);
    EXPECT_EQ(ra.retval, kRedirect);
    EXPECT_EQ(hex(ra.data), hex(rewritten(ack, a.pod.mac, a.host.mac, 1, kHairpin, cport, kPodA, kBport)));
    expect_counters({{{SKIFF_SVC_NEW, SKIFF_DIR_EGRESS}, Count{1, syn.size()}},
                     {{SKIFF_SVC_REPLY, SKIFF_DIR_EGRESS}, Count{1, reply.size()}},
                     {{SKIFF_SVC_ESTABLISHED, SKIFF_DIR_EGRESS}, Count{1, ack.size()}},
                     {{SKIFF_FWD_LOCAL_POD, SKIFF_DIR_EGRESS}, Count{3, syn.size() + reply.size() + ack.size()}}});
}

TEST_F(ServiceFeatureTest, OtherPodsReachingTheSameBackendAreNotSourceNated) {
    ASSERT_OK(maps_.set_backend(kIdA, kPodA, kBport, kTcp));
    ASSERT_OK(fmaps_.set_frontend(kVip, kVport, kTcp, {kIdA}, kRevNat, 0));
    // B -> VIP from B's veth: DNAT to A only.
    Bytes in = pod_frame(net_->dst, kPodB, kVip, kTcp, tcp_segment(kPodB, kVip, 40000, kVport, 1, 0, kTcpSyn, {}, {}));
    RunResult r = run_pod(in, net_->dst.host.ifindex);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, kRedirect);
    EXPECT_EQ(hex(r.data), hex(rewritten(in, net_->src.pod.mac, net_->src.host.mac, 1, kPodB, 40000, kPodA, kBport)));
    auto fwd = maps_.ct(ct_key(kPodB, kVip, 40000, kVport, kTcp, SKIFF_CT_FORWARD));
    ASSERT_TRUE(fwd.has_value());
    EXPECT_FALSE(fwd->flags & SKIFF_CT_F_SNAT);
}

// =============================================================================
// 6. REPLIED
// =============================================================================

TEST_F(ServiceFeatureTest, FirstReplySetsRepliedOnBothEntries) {
    ASSERT_OK(maps_.set_backend(11, kPodB, 5300, kUdp));
    ASSERT_OK(fmaps_.set_frontend(kVip, kVport, kTcp, {kIdB}, kRevNat, 0));
    ASSERT_OK(fmaps_.set_frontend(kVip, kVport, kUdp, {11}, 8, 0));
    for (uint8_t proto : {kTcp, kUdp}) {
        SCOPED_TRACE(proto == kTcp ? "tcp" : "udp");
        const uint16_t cport = 45000, bport = proto == kTcp ? kBport : 5300;
        Bytes req = from_a(kVip, kVport, cport, proto, kTcpSyn, 10);
        RunResult r = run_pod(req);
        ASSERT_EQ(r.retval, kRedirect);
        const skiff_ct_key fkey = ct_key(kPodA, kVip, cport, kVport, proto, SKIFF_CT_FORWARD);
        const skiff_ct_key rkey = ct_key(kPodB, kPodA, bport, cport, proto, SKIFF_CT_REPLY);
        ASSERT_TRUE(maps_.ct(fkey).has_value() && maps_.ct(rkey).has_value()) << maps_.ct_dump();
        EXPECT_FALSE(maps_.ct(fkey)->flags & SKIFF_CT_F_REPLIED) << "not before a reply";
        EXPECT_FALSE(maps_.ct(rkey)->flags & SKIFF_CT_F_REPLIED);

        // More requests do not set it either.
        Bytes more = from_a(kVip, kVport, cport, proto, kTcpAck, 5);
        ASSERT_EQ(run_pod(more).retval, kRedirect);
        EXPECT_FALSE(maps_.ct(fkey)->flags & SKIFF_CT_F_REPLIED);

        Bytes reply = pod_frame(net_->dst, kPodB, kPodA, proto,
                                proto == kTcp ? tcp_segment(kPodB, kPodA, bport, cport, 5, 6, kTcpSyn | kTcpAck, {}, {})
                                              : udp(kPodB, kPodA, bport, cport, pattern(12)));
        RunResult rr = run_pod(reply, net_->dst.host.ifindex);
        ASSERT_EQ(rr.err, 0);
        EXPECT_EQ(rr.retval, kRedirect);
        EXPECT_EQ(hex(rr.data),
                  hex(rewritten(reply, net_->src.pod.mac, net_->src.host.mac, 1, kVip, kVport, kPodA, cport)));
        auto fwd = maps_.ct(fkey);
        auto rev = maps_.ct(rkey);
        ASSERT_TRUE(fwd && rev);
        EXPECT_TRUE(rev->flags & SKIFF_CT_F_REPLIED) << describe(*rev);
        EXPECT_TRUE(fwd->flags & SKIFF_CT_F_REPLIED) << describe(*fwd);
        EXPECT_FALSE(fwd->flags & SKIFF_CT_F_SNAT);
        EXPECT_EQ(fwd->packets, 2u) << "the reply is not counted on the FORWARD entry";
        EXPECT_EQ(rev->packets, 1u);
    }
    EXPECT_EQ(maps_.ct_all().size(), 4u) << maps_.ct_dump();
}

// =============================================================================
// 5. NodePort on the uplink
// =============================================================================

class ServiceFeatureNodePortTest : public ServiceFeatureTest {
protected:
    void SetUp() override {
        ServiceFeatureTest::SetUp();
        if (HasFatalFailure()) return;
        // FIB lookups on ingress need forwarding on the ingress device.
        ASSERT_OK(fwd_uplink_.enable("skt-upl-h"));
        ASSERT_OK(fwd_dst_.enable("skt-dst-h"));
        skiff_config cfg{};
        cfg.node_ip = kUplinkIp.be();
        cfg.nat_port_min = 61000;  // the agent always sets a range
        cfg.nat_port_max = 65535;
        set_cluster_range(cfg, kClusterRange);
        ASSERT_OK(fmaps_.set_config(cfg));
    }

    Bytes outside_syn(Ipv4 client, uint16_t cport, uint8_t flags = kTcpSyn, size_t payload = 16) const {
        return wire(kOutsideMac, client, kUplinkIp, kTcp,
                    tcp_segment(client, kUplinkIp, cport, kNodePort, 100, 0, flags, {}, pattern(payload)));
    }

    ForwardingOn fwd_uplink_, fwd_dst_;
};

TEST_F(ServiceFeatureNodePortTest, RemoteBackendIsSourceNatedAndRouted) {
    ASSERT_OK(maps_.set_backend(kIdRemote, kRemotePod, kBport, kTcp));
    ASSERT_OK(fmaps_.set_frontend(kUplinkIp, kNodePort, kTcp, {kIdRemote}, kNodePortRevNat, 0));
    const uint16_t cport = 40000;

    Bytes in = outside_syn(kOutside, cport);
    RunResult r = run_uplink(in);
    ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
    EXPECT_EQ(r.retval, kRedirect) << describe(counters());
    ASSERT_EQ(r.data.size(), in.size());
    expect_checksums(r.data);
    // Out of the uplink to the node owning 10.244.1.0/24, MACs from the FIB.
    EXPECT_EQ(hex(r.data),
              hex(rewritten(in, kNodeNeighMac, uplink_->host.mac, 1, kUplinkIp, cport, kRemotePod, kBport)));

    const skiff_ct_key fkey = ct_key(kOutside, kUplinkIp, cport, kNodePort, kTcp, SKIFF_CT_FORWARD);
    auto fwd = maps_.ct(fkey);
    ASSERT_TRUE(fwd.has_value()) << maps_.ct_dump();
    EXPECT_TRUE(fwd->flags & SKIFF_CT_F_SNAT);
    EXPECT_EQ(Ipv4::from_be(fwd->snat_addr).str(), kUplinkIp.str());
    EXPECT_EQ(Ipv4::from_be(fwd->nat_addr).str(), kRemotePod.str());
    EXPECT_EQ(ntohs(fwd->nat_port), kBport);
    EXPECT_EQ(fwd->backend_id, kIdRemote);
    EXPECT_EQ(fwd->revnat_id, kNodePortRevNat);
    const skiff_ct_key rkey = ct_key(kRemotePod, kUplinkIp, kBport, ntohs(fwd->snat_port), kTcp, SKIFF_CT_REPLY);
    auto rev = maps_.ct(rkey);
    ASSERT_TRUE(rev.has_value()) << maps_.ct_dump();
    EXPECT_TRUE(rev->flags & SKIFF_CT_F_SNAT);
    EXPECT_EQ(Ipv4::from_be(rev->nat_addr).str(), kUplinkIp.str());
    EXPECT_EQ(ntohs(rev->nat_port), kNodePort);
    EXPECT_EQ(Ipv4::from_be(rev->snat_addr).str(), kOutside.str());
    EXPECT_EQ(ntohs(rev->snat_port), cport);
    expect_counters({{{SKIFF_SVC_NEW, SKIFF_DIR_INGRESS}, Count{1, in.size()}},
                     {{SKIFF_FWD_REMOTE_NODE, SKIFF_DIR_INGRESS}, Count{1, in.size()}}});

    // The backend answers (via its node) to node_ip: back to the client,
    // from node_ip:30080, routed by FIB (no neighbour entry for the client:
    // bpf_redirect_neigh, MACs left for it to fill in).
    Bytes reply = wire(
        kNodeNeighMac, kRemotePod, kUplinkIp, kTcp,
        tcp_segment(kRemotePod, kUplinkIp, kBport, ntohs(fwd->snat_port), 500, 101, kTcpSyn | kTcpAck, {}, pattern(9)),
        63);
    const Counters before = counters();
    RunResult rr = run_uplink(reply);
    ASSERT_EQ(rr.err, 0);
    EXPECT_EQ(rr.retval, kRedirect) << describe(counters());
    ASSERT_EQ(rr.data.size(), reply.size());
    expect_checksums(rr.data);
    EXPECT_EQ(hex(rr.data),
              hex(rewritten(reply, uplink_->host.mac, kNodeNeighMac, 1, kUplinkIp, kNodePort, kOutside, cport)));
    const Counters after = counters();
    EXPECT_EQ(after.at({SKIFF_SVC_REPLY, SKIFF_DIR_INGRESS}), (Count{1, reply.size()})) << describe(after);
    EXPECT_EQ(after.at({SKIFF_FWD_FIB, SKIFF_DIR_INGRESS}), (Count{1, reply.size()})) << describe(after);
    EXPECT_EQ(after.size(), before.size() + 2) << describe(after);
    EXPECT_TRUE(maps_.ct(rkey)->flags & SKIFF_CT_F_REPLIED);
    EXPECT_TRUE(maps_.ct(fkey)->flags & SKIFF_CT_F_REPLIED);

    // The client's next segment: the same translation (established).
    Bytes ack = outside_syn(kOutside, cport, kTcpAck, 40);
    RunResult ra = run_uplink(ack);
    ASSERT_EQ(ra.err, 0);
    EXPECT_EQ(ra.retval, kRedirect);
    EXPECT_EQ(hex(ra.data),
              hex(rewritten(ack, kNodeNeighMac, uplink_->host.mac, 1, kUplinkIp, cport, kRemotePod, kBport)));
    EXPECT_EQ(counter(SKIFF_SVC_ESTABLISHED, SKIFF_DIR_INGRESS).packets, 1u);
    EXPECT_EQ(maps_.ct_all().size(), 2u) << maps_.ct_dump();
}

TEST_F(ServiceFeatureNodePortTest, LocalBackendIsOnlyDestinationNated) {
    ASSERT_OK(fmaps_.set_frontend(kUplinkIp, kNodePort, kTcp, {kIdB}, kNodePortRevNat, 0));
    const uint16_t cport = 40000;
    Bytes in = outside_syn(kOutside, cport);
    RunResult r = run_uplink(in);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, kRedirect);
    expect_checksums(r.data);
    EXPECT_EQ(hex(r.data), hex(rewritten(in, net_->dst.pod.mac, net_->dst.host.mac, 1, kOutside, cport, kPodB, kBport)))
        << "the client's address is kept";
    auto fwd = maps_.ct(ct_key(kOutside, kUplinkIp, cport, kNodePort, kTcp, SKIFF_CT_FORWARD));
    ASSERT_TRUE(fwd.has_value()) << maps_.ct_dump();
    EXPECT_FALSE(fwd->flags & SKIFF_CT_F_SNAT);
    EXPECT_EQ(fwd->snat_addr, 0u);
    const skiff_ct_key rkey = ct_key(kPodB, kOutside, kBport, cport, kTcp, SKIFF_CT_REPLY);
    auto rev = maps_.ct(rkey);
    ASSERT_TRUE(rev.has_value()) << maps_.ct_dump();
    EXPECT_FALSE(rev->flags & SKIFF_CT_F_SNAT);
    expect_counters({{{SKIFF_SVC_NEW, SKIFF_DIR_INGRESS}, Count{1, in.size()}},
                     {{SKIFF_FWD_LOCAL_POD, SKIFF_DIR_INGRESS}, Count{1, in.size()}}});

    // B's reply leaves from node_ip:30080 by FIB (its source is now this
    // node's address: the stack would drop it as a martian).
    Bytes reply = pod_frame(net_->dst, kPodB, kOutside, kTcp,
                            tcp_segment(kPodB, kOutside, kBport, cport, 7, 101, kTcpSyn | kTcpAck, {}, {}));
    RunResult rr = run_pod(reply, net_->dst.host.ifindex);
    ASSERT_EQ(rr.err, 0);
    EXPECT_EQ(rr.retval, kRedirect) << describe(counters());
    expect_checksums(rr.data);
    EXPECT_EQ(hex(rr.data),
              hex(rewritten(reply, net_->dst.host.mac, net_->dst.pod.mac, 1, kUplinkIp, kNodePort, kOutside, cport)));
    EXPECT_EQ(counter(SKIFF_SVC_REPLY).packets, 1u);
    EXPECT_EQ(counter(SKIFF_FWD_FIB).packets, 1u) << describe(counters());
    EXPECT_TRUE(maps_.ct(rkey)->flags & SKIFF_CT_F_REPLIED);
}

// Regression (fixed): NodePort SNAT keeps the client's source port. svc_forward()
// (bpf/lib/service.h) sets fwd.snat_port = l4->sport, so two outside
// clients that happen to use the same source port (common: ephemeral
// ranges overlap, clients behind different NATs) reach the same remote
// backend with the identical tuple node_ip:cport -> backend:bport. The
// backend sees one TCP connection (the second SYN hits an established
// socket), and the second connection's REPLY entry {backend, node_ip,
// bport, cport} overwrites the first (ct_create() inserts it with BPF_ANY):
// replies of the first connection are translated to the second client.
// (The same clash exists for hairpin: one pod port to two services backed by
// itself; kube-proxy avoids it through conntrack's source port remapping.)
// Suggested fix: allocate the SNAT source port: in svc_forward() when
// SKIFF_CT_F_SNAT is set, try rkey.dport = cport, then other ports (e.g.
// hash-derived in 32768..60999) until bpf_map_update_elem(&skiff_ct, &rkey,
// &rev, BPF_NOEXIST) succeeds (bounded tries, else -SKIFF_DROP_CT_FULL), store
// the chosen port in fwd.snat_port, and have svc_snat() rewrite the source
// port to it (it already does when snat_port differs from l4->sport).
TEST_F(ServiceFeatureNodePortTest, ClientsWithTheSameSourcePortGetDistinctTuples) {
    ASSERT_OK(maps_.set_backend(kIdRemote, kRemotePod, kBport, kTcp));
    ASSERT_OK(fmaps_.set_frontend(kUplinkIp, kNodePort, kTcp, {kIdRemote}, kNodePortRevNat, 0));
    const uint16_t cport = 40000;
    Bytes in1 = outside_syn(kOutside, cport);
    Bytes in2 = outside_syn(kOutside2, cport);
    RunResult r1 = run_uplink(in1);
    RunResult r2 = run_uplink(in2);
    ASSERT_EQ(r1.retval, kRedirect);
    ASSERT_EQ(r2.retval, kRedirect);
    expect_checksums(r1.data);
    expect_checksums(r2.data);
    auto tuple = [](const Bytes& f) {
        return frame_saddr(f).str() + ":" + std::to_string(frame_sport(f)) + " -> " + frame_daddr(f).str() + ":" +
               std::to_string(frame_dport(f));
    };
    EXPECT_NE(tuple(r1.data), tuple(r2.data)) << "two connections share one translated tuple";

    // Each reply must reach its own client.
    for (const auto* rc : {&r1, &r2}) {
        const Ipv4 want = rc == &r1 ? kOutside : kOutside2;
        SCOPED_TRACE("reply for " + want.str());
        Bytes reply = wire(
            kNodeNeighMac, kRemotePod, kUplinkIp, kTcp,
            tcp_segment(kRemotePod, kUplinkIp, kBport, frame_sport(rc->data), 500, 101, kTcpSyn | kTcpAck, {}, {}), 63);
        RunResult rr = run_uplink(reply);
        ASSERT_EQ(rr.err, 0);
        EXPECT_EQ(rr.retval, kRedirect);
        EXPECT_EQ(frame_daddr(rr.data).str(), want.str());
        EXPECT_EQ(frame_dport(rr.data), cport);
    }
}

// Regression (fixed): a NodePort whose backend lies outside every PodCIDR (a hostNetwork
// pod on another node, an external endpoint) is source-NATed to node_ip and
// then handed to the stack: from_uplink_ipv4() (bpf/from_uplink.c) forwards
// translated new/established packets with how = FWD_TO_NODES only, and
// fwd_ipv4() finds neither a local endpoint nor a node for the backend, so
// it returns TC_ACT_OK. The kernel's ip_route_input() then sees an ingress
// packet whose source is the node's own address and drops it as a martian
// (fib_validate_source, the very reason replies use FWD_BY_FIB). NodePort
// services backed by hostNetwork pods on other nodes never connect.
// Suggested fix: in from_uplink_ipv4(), route service-translated packets
// with how = FWD_TO_NODES | FWD_BY_FIB (at least when the connection is
// SNATed: fwd_fib() leaves real FIB misses to the stack anyway).
TEST_F(ServiceFeatureNodePortTest, BackendOutsidePodCidrsIsRoutedNotHandedToTheStack) {
    // The backend: a hostNetwork pod on node 192.168.1.12 (neighbour known).
    ASSERT_OK(maps_.set_backend(kIdHostNet, kNodeNeighIp, kBport, kTcp));
    ASSERT_OK(fmaps_.set_frontend(kUplinkIp, kNodePort, kTcp, {kIdHostNet}, kNodePortRevNat, 0));
    Bytes in = outside_syn(kOutside, 40000);
    RunResult r = run_uplink(in);
    ASSERT_EQ(r.err, 0);
    ASSERT_GE(r.data.size(), kEthHlen + 20);
    auto fwd = maps_.ct(ct_key(kOutside, kUplinkIp, 40000, kNodePort, kTcp, SKIFF_CT_FORWARD));
    ASSERT_TRUE(fwd.has_value()) << maps_.ct_dump();
    EXPECT_TRUE(fwd->flags & SKIFF_CT_F_SNAT) << "a remote backend: replies must come back here";
    EXPECT_FALSE(r.retval == kOk && frame_saddr(r.data) == kUplinkIp)
        << "handed to the stack with this node's own address as source: dropped there as a martian ("
        << describe(counters()) << ")";
    EXPECT_EQ(r.retval, kRedirect);
    if (r.retval == kRedirect) {
        EXPECT_EQ(hex(r.data),
                  hex(rewritten(in, kNodeNeighMac, uplink_->host.mac, 1, kUplinkIp, 40000, kNodeNeighIp, kBport)));
    }
}

// =============================================================================
// 7. Socket LB
// =============================================================================

TEST_F(ServiceFeatureTest, SocketLbConnect4PointsTheSocketAtABackend) {
    auto progs = datapath::load_sock_programs(pins_.path());
    ASSERT_TRUE(progs.ok()) << progs.error().message;
    auto cookie = datapath::current_netns_cookie();
    ASSERT_TRUE(cookie.ok()) << cookie.error().message;
    skiff_config cfg{};
    cfg.netns_cookie = cookie.value();
    set_cluster_range(cfg, kClusterRange);
    ASSERT_OK(fmaps_.set_config(cfg));
    ASSERT_OK(fmaps_.set_frontend(kVip, kVport, kTcp, {kIdB}, kRevNat, 0));

    bpf_sock_addr in{}, out{};
    in.user_family = AF_INET;
    in.user_ip4 = kVip.be();
    in.user_port = htons(kVport);
    in.family = AF_INET;
    in.type = SOCK_STREAM;
    in.protocol = IPPROTO_TCP;
    bpf_test_run_opts o{};
    o.sz = sizeof(o);
    o.ctx_in = &in;
    o.ctx_size_in = sizeof(in);
    o.ctx_out = &out;
    o.ctx_size_out = sizeof(out);
    o.repeat = 1;
    int ret = bpf_prog_test_run_opts(progs.value().connect4.get(), &o);
    if (ret != 0) {
        const int e = ret < 0 ? -ret : errno;
        if (e == 524 /* ENOTSUPP */ || e == EOPNOTSUPP || e == EINVAL)
            GTEST_SKIP() << "kernel has no BPF_PROG_TEST_RUN for BPF_PROG_TYPE_CGROUP_SOCK_ADDR (errno " << e << ": "
                         << std::strerror(e) << ")";
        FAIL() << "test_run connect4: " << std::strerror(e);
    }
    EXPECT_EQ(o.retval, 1u);
    EXPECT_EQ(Ipv4::from_be(out.user_ip4).str(), kPodB.str());
    EXPECT_EQ(ntohs(static_cast<uint16_t>(out.user_port)), kBport);
}

}  // namespace
}  // namespace skiff::bpftest::features
