// The pod network is looked up before the service frontends, under
// BPF_PROG_TEST_RUN (fixture: service_features_env.h).
//
// from_pod and from_uplink forward a packet for a pod (a local endpoint or
// another node's PodCIDR) right after the conntrack reply check, without
// the frontend and masquerade lookups: a pod's address is neither. The
// cluster's pod range in skiff_config decides which addresses are tried as
// pods first; with no range set every address is. Checked here:
//  - pod traffic is forwarded untranslated, with and without the range,
//    even when a (misconfigured) frontend claims the pod's address;
//  - outside the range the frontend is looked up first, so the range is
//    what orders the lookups;
//  - ClusterIP connections and their replies are translated with the
//    range set as without it.
#include "service_features_env.h"

namespace skiff::bpftest::features {
namespace {

// kClusterRange (10.244.0.0/16) holds every PodCIDR here; this one none.
const Ipv4Prefix kOtherRange(Ipv4(0x0af50000), 16);  // 10.245.0.0/16

skiff_config config_with_range(const Ipv4Prefix* range) {
    skiff_config c{};
    c.node_ip = kUplinkIp.be();
    if (range) set_cluster_range(c, *range);
    return c;
}

class PodNetworkTest : public ServiceFeatureTest {
protected:
    void SetUp() override {
        ServiceFeatureTest::SetUp();
        if (HasFatalFailure()) return;
        // bpf_fib_lookup() toward the other node needs forwarding on A's veth.
        ASSERT_OK(fwd_src_.enable("skt-src-h"));
    }

    // A -> dst:dport TCP data, as A sends it.
    Bytes data_from_a(Ipv4 dst, uint16_t dport, uint16_t sport) const {
        return from_a(dst, dport, sport, kTcp, kTcpAck | kTcpPsh, 32);
    }
    // remote pod -> dst:dport TCP data, as it arrives on the uplink.
    Bytes data_from_remote(Ipv4 dst, uint16_t dport, uint16_t sport) const {
        return wire(kNodeNeighMac, kRemotePod, dst, kTcp,
                    tcp_segment(kRemotePod, dst, sport, dport, 7, 9, kTcpAck | kTcpPsh, {}, pattern(32)));
    }

    ForwardingOn fwd_src_;
};

TEST_F(PodNetworkTest, PodTrafficIsForwardedUntranslatedWithOrWithoutTheRange) {
    // Frontends claiming a remote pod's and a local pod's address: invalid
    // (ClusterIPs come from the service range), and ignored for pods.
    ASSERT_OK(fmaps_.set_frontend(kRemotePod, kVport, kTcp, {kIdB}, kRevNat, 0));
    ASSERT_OK(fmaps_.set_frontend(kPodB, kVport, kTcp, {kIdC}, kNodePortRevNat, 0));
    for (const Ipv4Prefix* range : {&kClusterRange, static_cast<const Ipv4Prefix*>(nullptr)}) {
        SCOPED_TRACE(range ? "range " + range->str() : std::string("no range"));
        ASSERT_OK(fmaps_.set_config(config_with_range(range)));

        Bytes out = data_from_a(kRemotePod, kVport, 41000);
        RunResult r = run_pod(out);
        ASSERT_EQ(r.err, 0);
        EXPECT_EQ(r.retval, kRedirect);
        EXPECT_EQ(hex(r.data),
                  hex(rewritten(out, kNodeNeighMac, uplink_->host.mac, 1, kPodA, 41000, kRemotePod, kVport)))
            << "routed to the other node as it was sent";

        Bytes local = data_from_a(kPodB, kVport, 41001);
        r = run_pod(local);
        ASSERT_EQ(r.err, 0);
        EXPECT_EQ(r.retval, kRedirect);
        EXPECT_EQ(hex(r.data),
                  hex(rewritten(local, net_->dst.pod.mac, net_->dst.host.mac, 1, kPodA, 41001, kPodB, kVport)));

        Bytes in = data_from_remote(kPodB, kVport, 42000);
        r = test_run(from_uplink_.get(), in, uplink_->host.ifindex);
        ASSERT_EQ(r.err, 0);
        EXPECT_EQ(r.retval, kRedirect);
        EXPECT_EQ(hex(r.data),
                  hex(rewritten(in, net_->dst.pod.mac, net_->dst.host.mac, 1, kRemotePod, 42000, kPodB, kVport)));
        EXPECT_EQ(maps_.ct_all().size(), 0u) << maps_.ct_dump();
    }
    const Counters c = counters();
    EXPECT_EQ(counter(SKIFF_FWD_REMOTE_NODE, SKIFF_DIR_EGRESS).packets, 2u) << describe(c);
    EXPECT_EQ(counter(SKIFF_FWD_LOCAL_POD, SKIFF_DIR_EGRESS).packets, 2u) << describe(c);
    EXPECT_EQ(counter(SKIFF_FWD_LOCAL_POD, SKIFF_DIR_INGRESS).packets, 2u) << describe(c);
    EXPECT_EQ(c.size(), 3u) << "nothing translated: " << describe(c);
}

TEST_F(PodNetworkTest, OutsideTheRangeTheFrontendIsLookedUpFirst) {
    // The same frontend on the remote pod's address, with a range that does
    // not hold it: the packet is no pod's as far as the order goes.
    ASSERT_OK(fmaps_.set_frontend(kRemotePod, kVport, kTcp, {kIdB}, kRevNat, 0));
    ASSERT_OK(fmaps_.set_config(config_with_range(&kOtherRange)));
    Bytes syn = from_a(kRemotePod, kVport, 41000);
    RunResult r = run_pod(syn);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, kRedirect);
    EXPECT_EQ(hex(r.data), hex(rewritten(syn, net_->dst.pod.mac, net_->dst.host.mac, 1, kPodA, 41000, kPodB, kBport)));
    EXPECT_TRUE(maps_.ct(ct_key(kPodA, kRemotePod, 41000, kVport, kTcp, SKIFF_CT_FORWARD)).has_value())
        << maps_.ct_dump();
}

TEST_F(PodNetworkTest, ClusterIpIsTranslatedBothWaysWithTheRangeSet) {
    ASSERT_OK(fmaps_.set_config(config_with_range(&kClusterRange)));
    ASSERT_OK(fmaps_.set_frontend(kVip, kVport, kTcp, {kIdB}, kRevNat, 0));
    Bytes syn = from_a(kVip, kVport, 41000);
    RunResult r = run_pod(syn);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, kRedirect);
    EXPECT_EQ(hex(r.data), hex(rewritten(syn, net_->dst.pod.mac, net_->dst.host.mac, 1, kPodA, 41000, kPodB, kBport)));

    // B's answer, a pod's packet to a pod: the conntrack reply check comes
    // before the pod lookups, so it leaves as the VIP's.
    Bytes synack = pod_frame(net_->dst, kPodB, kPodA, kTcp,
                             tcp_segment(kPodB, kPodA, kBport, 41000, 5, 0x11223345, kTcpSyn | kTcpAck, {}, {}));
    r = run_pod(synack, net_->dst.host.ifindex);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, kRedirect);
    EXPECT_EQ(hex(r.data),
              hex(rewritten(synack, net_->src.pod.mac, net_->src.host.mac, 1, kVip, kVport, kPodA, 41000)));
}

}  // namespace
}  // namespace skiff::bpftest::features
