// The agent's GC schedule: GcScheduler (userspace/agent/gc_scheduler.cc)
// over in-memory tables, with the clock passed in (no sleeps, no timing).
#include "agent/gc_scheduler.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>

#include <gtest/gtest.h>

#include "fake_gc_tables.h"

namespace skiff::agent {
namespace {

using fakes::expect_kept_and_gone;
using fakes::FakeCtTable;
using fakes::FakeSnatTable;
using namespace std::chrono_literals;

constexpr uint64_t kSec = 1000000000ull;
constexpr unsigned kInterval = 10;

class GcSchedulerTest : public ::testing::Test {
protected:
    FakeCtTable ct;
    FakeSnatTable snat;
    CtTimeouts to;  // udp 60 s
    std::map<uint32_t, skiff_l4_addr> backends{{1, skiff_l4_addr{htonl(0x0af40201u), htons(53), IPPROTO_UDP, 0}}};
    const uint64_t mono = 1000000 * kSec;
    const GcScheduler::Clock::time_point t0 = GcScheduler::Clock::time_point{} + 1000s;
    std::optional<CtDatapathCounts> counts = CtDatapathCounts{};

    GcScheduler make(bool with_snat = true) {
        return GcScheduler(to, kInterval, ct, with_snat ? &snat : nullptr, [this] { return counts; });
    }
    // A UDP flow to a service, last seen idle_s ago; its reply half is absent.
    skiff_ct_key conn(uint16_t sport, uint64_t idle_s) {
        skiff_ct_key k{};
        k.saddr = htonl(0x0af40101u);
        k.daddr = htonl(0x0a600001u);
        k.sport = htons(sport);
        k.dport = htons(53);
        k.proto = IPPROTO_UDP;
        k.dir = SKIFF_CT_FORWARD;
        skiff_ct_value v{};
        v.last_seen_ns = mono - idle_s * kSec;
        v.packets = 1;
        v.backend_id = 1;
        ct.entries[k] = v;
        return k;
    }
    // A masqueraded UDP flow's two entries, last seen idle_s ago.
    skiff_ct_key nat(uint16_t sport, uint64_t idle_s) {
        const uint32_t pod = htonl(0x0af4010au), node = htonl(0xc0a8010bu), dst = htonl(0x08080808u);
        const uint16_t nat_port = htons(static_cast<uint16_t>(sport + 20000));
        skiff_ct_key eg{pod, dst, htons(sport), htons(53), IPPROTO_UDP, SKIFF_SNAT_EGRESS, 0};
        skiff_ct_key in{dst, node, htons(53), nat_port, IPPROTO_UDP, SKIFF_SNAT_INGRESS, 0};
        const uint64_t last = mono - idle_s * kSec;
        snat.entries[eg] = skiff_nat_value{last - kSec, last, 1, 100, node, nat_port, 0, 0};
        snat.entries[in] = skiff_nat_value{last - kSec, last, 1, 100, pod, htons(sport), 0, 0};
        return eg;
    }
    static AgentStats report(const GcScheduler& g) {
        AgentStats s;
        g.report(s);
        return s;
    }
    // What the report says of conntrack: {gc passes, expired, entries}.
    static std::array<uint64_t, 3> ct_counts(const GcScheduler& g) {
        auto s = report(g);
        return {s.gc_passes, s.ct_expired, s.ct_entries};
    }
};

TEST_F(GcSchedulerTest, TheFirstTickCollectsBothTables) {
    auto old_conn = conn(1000, 120);
    auto live_conn = conn(1001, 5);
    auto old_nat = nat(2000, 120);
    auto live_nat = nat(2001, 5);
    auto g = make();
    g.tick(t0, mono, backends);
    expect_kept_and_gone(ct, {live_conn}, {old_conn});
    expect_kept_and_gone(snat, {live_nat}, {old_nat});
    EXPECT_EQ(snat.entries.size(), 2u);
    EXPECT_FALSE(g.pass_under_way());
    EXPECT_EQ(ct_counts(g), (std::array<uint64_t, 3>{1, 1, 1}));
    EXPECT_GE(report(g).snat_expired, 1u);
    EXPECT_EQ(report(g).snat_flows, 1u);
}

TEST_F(GcSchedulerTest, NoPassStartsBeforeTheInterval) {
    auto g = make();
    g.tick(t0, mono, backends);
    ASSERT_EQ(report(g).gc_passes, 1u);
    auto k = conn(1000, 120);
    auto n = nat(2000, 120);
    g.tick(t0 + std::chrono::seconds(kInterval) - 1ms, mono, backends);
    EXPECT_TRUE(ct.has(k));
    EXPECT_TRUE(snat.has(n));
    EXPECT_EQ(ct.sweeps, 1);
    EXPECT_EQ(report(g).gc_passes, 1u);
    g.tick(t0 + std::chrono::seconds(kInterval), mono, backends);
    EXPECT_FALSE(ct.has(k));
    EXPECT_FALSE(snat.has(n));
    EXPECT_EQ(report(g).gc_passes, 2u);
}

TEST_F(GcSchedulerTest, AGoneBackendsConnectionsGoHoweverFresh) {
    auto k = conn(1000, 1);
    auto g = make(false);
    backends.clear();
    g.tick(t0, mono, backends);
    EXPECT_FALSE(ct.has(k));
    EXPECT_EQ(report(g).ct_stale, 1u);
    EXPECT_EQ(report(g).ct_expired, 0u);
}

TEST_F(GcSchedulerTest, AFailedWalkIsAPassAndWaitsForTheNextInterval) {
    auto k = conn(1000, 120);
    ct.fail = true;
    auto g = make(false);
    g.tick(t0, mono, backends);
    EXPECT_TRUE(ct.has(k));
    EXPECT_FALSE(g.pass_under_way());
    EXPECT_EQ(report(g).gc_passes, 1u);
    ct.fail = false;
    g.tick(t0 + 1s, mono, backends);
    EXPECT_EQ(ct.sweeps, 1);
    g.tick(t0 + std::chrono::seconds(kInterval), mono, backends);
    EXPECT_FALSE(ct.has(k));
    EXPECT_EQ(report(g).gc_passes, 2u);
}

TEST_F(GcSchedulerTest, AFailedMasqueradeListStillCollectsConntrack) {
    auto k = conn(1000, 120);
    auto n = nat(2000, 120);
    snat.fail = true;
    auto g = make();
    g.tick(t0, mono, backends);
    EXPECT_FALSE(ct.has(k));
    EXPECT_TRUE(snat.has(n));
    EXPECT_EQ(report(g).snat_expired, 0u);
    EXPECT_EQ(report(g).ct_expired, 1u);
}

TEST_F(GcSchedulerTest, APassOverManyCandidatesGoesOnOverTicksAndStartsNoOther) {
    for (uint16_t p = 0; p < 1000; ++p) conn(static_cast<uint16_t>(10000 + p), 120);
    auto g = make(false);
    int ticks = 0;
    // Every tick past the interval, as on a machine too slow for a slice.
    for (auto now = t0; ticks == 0 || g.pass_under_way(); now += std::chrono::seconds(kInterval)) {
        g.tick(now, mono, backends);
        ASSERT_LE(++ticks, 4) << "each tick judges at least 256 candidates";
    }
    EXPECT_EQ(ct.sweeps, 1);
    EXPECT_TRUE(ct.entries.empty());
    EXPECT_EQ(ct_counts(g), (std::array<uint64_t, 3>{1, 1000, 0}));
}

TEST_F(GcSchedulerTest, EvictionsAreWhatTheDatapathsCountersLeaveUnexplained) {
    conn(1000, 1);
    conn(1001, 1);
    conn(1002, 120);
    counts = CtDatapathCounts{100, 0};
    auto g = make(false);
    g.tick(t0, mono, backends);  // the base: 3 present
    EXPECT_EQ(report(g).ct_evicted, 0u);
    // Since: 50 inserted, 10 removed by the datapath, 1 by the agent; 2
    // present now besides the 4 added below, so 6: 50 - 10 - 1 - (6 - 3).
    conn(1003, 1);
    conn(1004, 1);
    conn(1005, 1);
    conn(1006, 1);
    counts = CtDatapathCounts{150, 10};
    g.tick(t0 + std::chrono::seconds(kInterval), mono, backends);
    EXPECT_EQ(report(g).ct_evicted, 36u);
}

TEST_F(GcSchedulerTest, WithoutTheDatapathsCountersNothingIsCalledEvicted) {
    conn(1000, 1);
    counts.reset();
    auto g = make(false);
    g.tick(t0, mono, backends);
    for (int i = 0; i < 5; ++i) conn(static_cast<uint16_t>(2000 + i), 1);
    g.tick(t0 + std::chrono::seconds(kInterval), mono, backends);
    EXPECT_EQ(report(g).ct_evicted, 0u);
    EXPECT_EQ(report(g).gc_passes, 2u);
}

}  // namespace
}  // namespace skiff::agent
