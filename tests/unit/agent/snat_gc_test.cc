// Masquerade garbage collection: snat_gc (userspace/agent/snat_gc.cc)
// against an in-memory SnatTable holding entry pairs as the datapath
// writes them (bpf/lib/snat.h).
#include "agent/snat_gc.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "fake_gc_tables.h"

namespace skiff::agent {
namespace {

constexpr uint64_t kSec = 1000000000ull;

using fakes::FakeSnatTable;

const uint32_t kPod = htonl(0x0af4010au);   // 10.244.1.10
const uint32_t kNode = htonl(0xc0a8010bu);  // 192.168.1.11
const uint32_t kDst = htonl(0x08080808u);   // 8.8.8.8

struct Flow {
    skiff_ct_key eg, in;
    skiff_nat_value egv, inv;
};

// src:sport -> 8.8.8.8:dport translated to the node's nat_port; both
// entries last seen idle_s seconds ago; `answered` gives the ingress entry
// packets.
Flow flow(uint64_t now, uint8_t proto, uint16_t sport, uint16_t nat_port, uint64_t idle_s, bool answered,
          uint8_t flags = 0, uint32_t src = kPod, uint16_t dport = 443) {
    Flow f;
    f.eg = skiff_ct_key{src, kDst, htons(sport), htons(dport), proto, SKIFF_SNAT_EGRESS, 0};
    f.in = skiff_ct_key{kDst, kNode, htons(dport), htons(nat_port), proto, SKIFF_SNAT_INGRESS, 0};
    const uint64_t last = now - idle_s * kSec;
    f.egv = skiff_nat_value{last - kSec, last, 5, 500, kNode, htons(nat_port), flags, 0};
    f.inv = skiff_nat_value{last - kSec, last, answered ? 4u : 0u, answered ? 400u : 0u, src, htons(sport), flags, 0};
    return f;
}

class SnatGcTest : public ::testing::Test {
protected:
    FakeSnatTable t;
    CtTimeouts to;  // established 21600, syn 60, closing 10, udp 60
    const uint64_t now = 500000 * kSec;

    Flow put(const Flow& f) {
        t.entries[f.eg] = f.egv;
        t.entries[f.in] = f.inv;
        return f;
    }
    SnatGcStats gc() {
        auto r = snat_gc(t, to, now);
        if (!r) {
            ADD_FAILURE() << r.error().message;
            return {};
        }
        return *r;
    }
    void expect_both(const Flow& f, bool present) {
        EXPECT_EQ(t.has(f.eg), present);
        EXPECT_EQ(t.has(f.in), present);
    }
};

TEST_F(SnatGcTest, TimeoutsByProtocolAndTcpState) {
    struct Case {
        uint8_t proto;
        uint64_t idle_s;
        bool answered;
        uint8_t flags;
        bool expired;
    } cases[] = {
        {IPPROTO_TCP, 11, true, SKIFF_CT_F_CLOSING, true},
        {IPPROTO_TCP, 9, true, SKIFF_CT_F_CLOSING, false},
        {IPPROTO_TCP, 61, false, 0, true},
        {IPPROTO_TCP, 59, false, 0, false},
        {IPPROTO_TCP, 3600, true, 0, false},
        {IPPROTO_TCP, 21601, true, 0, true},
        {IPPROTO_UDP, 61, true, 0, true},
        {IPPROTO_UDP, 59, true, 0, false},
        {IPPROTO_ICMP, 61, true, 0, true},
        {IPPROTO_ICMP, 30, false, 0, false},
    };
    uint16_t port = 40000;
    std::vector<std::pair<Flow, bool>> flows;
    for (const auto& c : cases) {
        flows.emplace_back(put(flow(now, c.proto, port, port, c.idle_s, c.answered, c.flags)), c.expired);
        ++port;
    }
    auto st = gc();
    EXPECT_EQ(st.flows, flows.size());
    size_t want = 0;
    for (size_t i = 0; i < flows.size(); ++i) {
        SCOPED_TRACE("case " + std::to_string(i));
        expect_both(flows[i].first, !flows[i].second);
        want += flows[i].second;
    }
    EXPECT_EQ(st.expired, want);
    EXPECT_EQ(st.orphans, 0u);
}

TEST_F(SnatGcTest, AFlowLivesWhileEitherHalfIsSeen) {
    // The pod stopped sending 30 s ago, the destination still answers.
    Flow f = flow(now, IPPROTO_UDP, 40000, 40000, 90, true);
    f.inv.last_seen_ns = now - kSec;
    put(f);
    // A FIN seen only by the reply half makes the flow closing.
    Flow g = flow(now, IPPROTO_TCP, 40001, 40001, 11, true);
    g.inv.flags = SKIFF_CT_F_CLOSING;
    put(g);
    auto st = gc();
    expect_both(f, true);
    expect_both(g, false);
    EXPECT_EQ(st.expired, 1u);
}

TEST_F(SnatGcTest, AFlowRevivedAfterTheListingIsKept) {
    // Closed 12 s ago when listed; then the pod opens a new connection on
    // the same tuple (its SYN clears CLOSING), or the answer comes back.
    for (int revived : {0, 1}) {
        SCOPED_TRACE(revived ? "ingress half revived" : "egress half revived");
        t.entries.clear();
        Flow f = put(flow(now, IPPROTO_TCP, 40000, 40000, 12, true, SKIFF_CT_F_CLOSING));
        t.after_list = [&] {
            auto& v = t.entries[revived ? f.in : f.eg];
            v.last_seen_ns = now;
            v.flags = 0;
        };
        auto st = gc();
        EXPECT_EQ(st.expired, 0u);
        expect_both(f, true);
    }
}

TEST_F(SnatGcTest, NodeFlowsAreExpiredLikePodFlows) {
    // The node's own flow (to_uplink): source = the node, port kept.
    Flow node_old = put(flow(now, IPPROTO_TCP, 50000, 50000, 11, true, SKIFF_CT_F_CLOSING, kNode));
    Flow node_live = put(flow(now, IPPROTO_TCP, 50001, 61000, 5, true, 0, kNode));
    auto st = gc();
    expect_both(node_old, false);
    expect_both(node_live, true);
    EXPECT_EQ(st.flows, 2u);
    EXPECT_EQ(st.expired, 1u);
}

TEST_F(SnatGcTest, OrphanIngressEntriesGoOnceIdle) {
    Flow a = flow(now, IPPROTO_UDP, 40000, 61000, 11, false);
    Flow b = flow(now, IPPROTO_UDP, 40001, 61001, 5, false);
    t.entries[a.in] = a.inv;
    t.entries[b.in] = b.inv;
    auto st = gc();
    EXPECT_FALSE(t.has(a.in));
    EXPECT_TRUE(t.has(b.in));
    EXPECT_EQ(st.orphans, 1u);
    EXPECT_EQ(st.flows, 0u);
}

TEST_F(SnatGcTest, AnIngressEntryOfAnotherFlowIsNotTakenAlong) {
    // The reply tuple of an expired flow now points at another source (the
    // tuple was freed and claimed again): only the expired egress entry goes.
    Flow old = flow(now, IPPROTO_UDP, 40000, 61000, 90, true);
    Flow now_owner = flow(now, IPPROTO_UDP, 40001, 61000, 1, true, 0, htonl(0x0af4010bu));
    ASSERT_EQ(std::memcmp(&old.in, &now_owner.in, sizeof(old.in)), 0);
    t.entries[old.eg] = old.egv;
    put(now_owner);
    auto st = gc();
    EXPECT_FALSE(t.has(old.eg));
    expect_both(now_owner, true);
    EXPECT_EQ(st.expired, 1u);
}

TEST_F(SnatGcTest, ListErrorPropagates) {
    put(flow(now, IPPROTO_UDP, 40000, 40000, 90, true));
    t.fail = true;
    auto r = snat_gc(t, to, now);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, EPERM);
    EXPECT_EQ(t.entries.size(), 2u);
}

}  // namespace
}  // namespace skiff::agent
