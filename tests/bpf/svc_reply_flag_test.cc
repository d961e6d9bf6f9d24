// SKIFF_EP_F_NO_SVC_REPLY under BPF_PROG_TEST_RUN: the plugin writes a new
// pod's endpoint entry with it, and that pod's packets skip the lookup for a
// service REPLY entry (none can match them). from_pod clears it when it makes
// a REPLY entry keyed by the pod (the pod became a backend), so the pod's
// replies are translated from then on. Entries without the flag, written
// before it existed, always look.
#include "service_env.h"

namespace skiff::bpftest::service {
namespace {

constexpr uint32_t kNewPod = SKIFF_EP_F_LOCAL | SKIFF_EP_F_NO_SVC_REPLY;

class NoSvcReplyTest : public ServiceTest {
protected:
    void SetUp() override {
        ASSERT_NO_FATAL_FAILURE(ServiceTest::SetUp());
        // As the plugin writes them for new pods.
        ASSERT_OK(endpoints_->upsert(kClientIp, endpoint(net_->src, kNewPod)));
        ASSERT_OK(endpoints_->upsert(kBackendIp, endpoint(net_->dst, kNewPod)));
    }

    uint32_t flags_of(Ipv4 ip) {
        auto e = endpoints_->lookup(ip);
        EXPECT_TRUE(e.ok() && e->has_value()) << ip.str();
        return e.ok() && e->has_value() ? (*e)->flags : 0;
    }

    // B:bport -> A:sport, from B's veth.
    Bytes from_backend(uint8_t proto, uint16_t bport, uint16_t sport) const {
        return frame(net_->dst, kBackendIp, kClientIp, proto,
                     l4(proto, kBackendIp, kClientIp, bport, sport, kSynAck, pattern(40, 3)));
    }
};

TEST_F(NoSvcReplyTest, ANewConnectionClearsTheBackendsFlagAndItsReplyIsTranslated) {
    for (uint8_t proto : {kTcp, kUdp}) {
        SCOPED_TRACE(proto == kTcp ? "tcp" : "udp");
        ASSERT_OK(endpoints_->upsert(kBackendIp, endpoint(net_->dst, kNewPod)));
        ASSERT_NO_FATAL_FAILURE(one_backend(proto));
        const uint16_t sport = proto == kTcp ? 40000 : 40001;
        Bytes req = client(kVip, kVport, sport, proto, kSyn, 20);
        ASSERT_NO_FATAL_FAILURE(expect_dnat(req, run_pod(req), net_->dst, kBackendIp, kBport));
        EXPECT_EQ(flags_of(kBackendIp), SKIFF_EP_F_LOCAL) << "the backend's flag is cleared";
        EXPECT_EQ(flags_of(kClientIp), kNewPod) << "the client's stays";

        Bytes reply = from_backend(proto, kBport, sport);
        const Counters before = counters();
        RunResult r = run_pod(reply, net_->dst.host.ifindex);
        ASSERT_NO_FATAL_FAILURE(expect_snat(reply, r, net_->src, kVip, kVport));
        EXPECT_EQ(packets_delta(before, counters(), SKIFF_SVC_REPLY), 1u);
    }
}

TEST_F(NoSvcReplyTest, APodThatBacksNoServiceSkipsTheReplyLookup) {
    // A REPLY entry keyed by B that the datapath did not make for B (a
    // stale one of an earlier pod with B's address looks like this).
    skiff_ct_value rv{};
    rv.backend_id = kBeId;
    rv.nat_addr = kVip.be();
    rv.nat_port = htons(kVport);
    rv.snat_addr = kClientIp.be();
    rv.snat_port = htons(40000);
    rv.revnat_id = kRevNat;
    ASSERT_OK(maps_.put_ct(ct_key(kBackendIp, kClientIp, kBport, 40000, kTcp, SKIFF_CT_REPLY), rv));

    Bytes pkt = from_backend(kTcp, kBport, 40000);
    RunResult r = run_pod(pkt, net_->dst.host.ifindex);
    ASSERT_NO_FATAL_FAILURE(expect_snat(pkt, r, net_->src, kBackendIp, kBport));  // i.e. unchanged
    EXPECT_EQ(counter(SKIFF_SVC_REPLY).packets, 0u);
    EXPECT_EQ(counter(SKIFF_FWD_LOCAL_POD).packets, 1u);

    // The same entry and packet, B's entry without the flag: looked up.
    ASSERT_OK(endpoints_->upsert(kBackendIp, endpoint(net_->dst)));
    r = run_pod(pkt, net_->dst.host.ifindex);
    ASSERT_NO_FATAL_FAILURE(expect_snat(pkt, r, net_->src, kVip, kVport));
    EXPECT_EQ(counter(SKIFF_SVC_REPLY).packets, 1u);
}

}  // namespace
}  // namespace skiff::bpftest::service
