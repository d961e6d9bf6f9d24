// Conntrack garbage collection: ct_gc (userspace/agent/ct_gc.cc) against an
// in-memory CtTable.
#include "agent/ct_gc.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cstring>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fake_gc_tables.h"

namespace skiff::agent {
namespace {

constexpr uint64_t kSec = 1000000000ull;

using fakes::expect_kept_and_gone;
using fakes::FakeCtTable;

// Keys differ by client port so every entry is distinct.
skiff_ct_key ct_key(uint8_t proto, uint16_t sport, uint8_t dir = SKIFF_CT_FORWARD) {
    skiff_ct_key k{};
    k.saddr = htonl(0x0af40101u);  // 10.244.1.1
    k.daddr = htonl(0x0a600001u);  // 10.96.0.1
    k.sport = htons(sport);
    k.dport = htons(80);
    k.proto = proto;
    k.dir = dir;
    return k;
}

skiff_ct_value ct_val(uint32_t backend_id, uint64_t last_seen_ns, uint64_t packets, uint8_t flags) {
    skiff_ct_value v{};
    v.created_ns = last_seen_ns > 5 * kSec ? last_seen_ns - 5 * kSec : 0;
    v.last_seen_ns = last_seen_ns;
    v.packets = packets;
    v.bytes = packets * 100;
    v.backend_id = backend_id;
    v.flags = flags;
    return v;
}

class CtGcTest : public ::testing::Test {
protected:
    FakeCtTable t;
    CtTimeouts to;  // defaults: established 21600, syn 60, closing 10, udp 60
    std::map<uint32_t, skiff_l4_addr> backends{{1, skiff_l4_addr{htonl(0x0af40201u), htons(8080), IPPROTO_TCP, 0}},
                                               {2, skiff_l4_addr{htonl(0x0af40202u), htons(8080), IPPROTO_UDP, 0}}};
    const uint64_t now = 1000000 * kSec;

    CtGcStats gc() {
        auto r = ct_gc(t, to, now, backends);
        if (!r) {
            ADD_FAILURE() << "ct_gc failed: " << r.error().message;
            return {};
        }
        return *r;
    }
    // An entry idle for `idle_s` seconds plus `extra_ns`.
    skiff_ct_key add(uint8_t proto, uint16_t sport, uint32_t backend, uint64_t idle_s, uint64_t packets, uint8_t flags,
                     int64_t extra_ns = 0, uint8_t dir = SKIFF_CT_FORWARD) {
        auto k = ct_key(proto, sport, dir);
        t.entries[k] = ct_val(backend, now - idle_s * kSec - extra_ns, packets, flags);
        return k;
    }
    // One pass: its stats are `want`, each of `kept` is still in the table
    // and each of `gone` is not.
    void expect_pass(const CtGcStats& want, std::initializer_list<skiff_ct_key> kept = {},
                     std::initializer_list<skiff_ct_key> gone = {}) {
        auto st = gc();
        EXPECT_EQ(st.scanned, want.scanned);
        EXPECT_EQ(st.expired, want.expired);
        EXPECT_EQ(st.stale_backend, want.stale_backend);
        expect_kept_and_gone(t, kept, gone);
    }
};

TEST_F(CtGcTest, DefaultTimeouts) {
    CtTimeouts d;
    // {established, syn, closing, udp}
    EXPECT_EQ((std::array{d.tcp_established, d.tcp_syn, d.tcp_closing, d.udp}),
              (std::array<uint32_t, 4>{21600, 60, 10, 60}));
}

TEST_F(CtGcTest, EmptyTable) {
    expect_pass({.scanned = 0, .expired = 0, .stale_backend = 0});
    EXPECT_EQ(t.sweeps, 1);
}

TEST_F(CtGcTest, StaleBackendDeletedEvenWhenFresh) {
    auto gone = add(IPPROTO_TCP, 1000, 3, 0, 10, 0);      // backend 3 was removed
    auto gone_udp = add(IPPROTO_UDP, 1001, 99, 0, 1, 0);  // never existed
    auto gone_rep = add(IPPROTO_TCP, 1002, 3, 0, 10, 0, 0, SKIFF_CT_REPLY);
    auto zero = add(IPPROTO_TCP, 1003, 0, 0, 10, 0);  // id 0 is never a backend
    auto kept = add(IPPROTO_TCP, 1004, 1, 0, 10, 0);
    auto kept_rep = add(IPPROTO_TCP, 1005, 1, 0, 10, 0, 0, SKIFF_CT_REPLY);
    expect_pass({.scanned = 6, .expired = 0, .stale_backend = 4}, {kept, kept_rep}, {gone, gone_udp, gone_rep, zero});
}

TEST_F(CtGcTest, StaleBackendCountedOnceEvenWhenAlsoExpired) {
    add(IPPROTO_UDP, 1000, 7, 1000, 1, 0);
    auto st = gc();
    EXPECT_EQ(st.stale_backend, 1u);
    EXPECT_EQ(st.expired, 0u);
    EXPECT_TRUE(t.entries.empty());
}

TEST_F(CtGcTest, NoBackendsAtAllPurgesEverything) {
    add(IPPROTO_TCP, 1000, 1, 0, 10, 0);
    add(IPPROTO_UDP, 1001, 2, 0, 10, 0);
    backends.clear();
    auto st = gc();
    EXPECT_EQ(st.stale_backend, 2u);
    EXPECT_TRUE(t.entries.empty());
}

TEST_F(CtGcTest, UdpIdleLongerThanUdpTimeoutDeleted) {
    auto old = add(IPPROTO_UDP, 1000, 2, 61, 5, 0);
    auto just_over = add(IPPROTO_UDP, 1001, 2, 60, 5, 0, 1);
    auto at_limit = add(IPPROTO_UDP, 1002, 2, 60, 5, 0);  // exactly 60 s: kept
    auto fresh = add(IPPROTO_UDP, 1003, 2, 59, 5, 0);
    expect_pass({.scanned = 4, .expired = 2, .stale_backend = 0}, {at_limit, fresh}, {old, just_over});
}

TEST_F(CtGcTest, UdpUsesUdpTimeoutNotTcpOnes) {
    to.udp = 30;
    // Idle 45 s: within every TCP timeout except closing, beyond udp.
    auto k = add(IPPROTO_UDP, 1000, 2, 45, 1, 0);
    // UDP never has TCP flags, but even if one were set it is not TCP.
    auto k2 = add(IPPROTO_UDP, 1001, 2, 20, 1, SKIFF_CT_F_CLOSING);
    expect_pass({.scanned = 2, .expired = 1, .stale_backend = 0}, {k2}, {k});
}

TEST_F(CtGcTest, TcpClosingUsesClosingTimeout) {
    auto old = add(IPPROTO_TCP, 1000, 1, 11, 40, SKIFF_CT_F_CLOSING | SKIFF_CT_F_SYN);
    auto fresh = add(IPPROTO_TCP, 1001, 1, 9, 40, SKIFF_CT_F_CLOSING | SKIFF_CT_F_SYN);
    // RST answering a SYN: closing wins over SYN-only.
    auto rst = add(IPPROTO_TCP, 1002, 1, 11, 1, SKIFF_CT_F_CLOSING | SKIFF_CT_F_SYN);
    expect_pass({.scanned = 3, .expired = 2, .stale_backend = 0}, {fresh}, {old, rst});
}

TEST_F(CtGcTest, TcpNeverAnsweredUsesSynTimeout) {
    auto syn_old = add(IPPROTO_TCP, 1000, 1, 61, 1, SKIFF_CT_F_SYN);
    auto syn_fresh = add(IPPROTO_TCP, 1001, 1, 59, 1, SKIFF_CT_F_SYN);
    // REPLY half of an unanswered connection: no REPLIED flag either.
    auto syn_rep = add(IPPROTO_TCP, 1002, 1, 61, 0, SKIFF_CT_F_SYN, 0, SKIFF_CT_REPLY);
    // Retransmitted SYNs, still unanswered: the SYN timeout, not 6 h.
    auto retrans = add(IPPROTO_TCP, 1003, 1, 61, 3, SKIFF_CT_F_SYN);
    // Answered: established, whatever the packet count.
    auto est = add(IPPROTO_TCP, 1004, 1, 61, 1, SKIFF_CT_F_SYN | SKIFF_CT_F_REPLIED);
    expect_pass({.scanned = 5, .expired = 3, .stale_backend = 0}, {syn_fresh, est}, {syn_old, syn_rep, retrans});
}

TEST_F(CtGcTest, ReplyEntryOfIdleEstablishedConnectionKept) {
    // Regression: the REPLY half of an answered connection used to be judged
    // by its own packet count (SYN-ACK only) and expired after tcp_syn while
    // the FORWARD half lived on; the backend's next reply then left
    // untranslated. Both halves now carry SKIFF_CT_F_REPLIED.
    auto fwd = add(IPPROTO_TCP, 1000, 1, 120, 2, SKIFF_CT_F_SYN | SKIFF_CT_F_REPLIED);
    auto rep = add(IPPROTO_TCP, 1000, 1, 120, 1, SKIFF_CT_F_SYN | SKIFF_CT_F_REPLIED, 0, SKIFF_CT_REPLY);
    auto st = gc();
    EXPECT_TRUE(t.has(fwd));
    EXPECT_TRUE(t.has(rep)) << "REPLY entry of an established connection expired after 120 s idle";
    EXPECT_EQ(st.expired, 0u);
}

TEST_F(CtGcTest, TcpEstablishedUsesEstablishedTimeout) {
    const uint8_t f = SKIFF_CT_F_SYN | SKIFF_CT_F_REPLIED;
    auto old = add(IPPROTO_TCP, 1000, 1, 21601, 100, f);
    auto at_limit = add(IPPROTO_TCP, 1001, 1, 21600, 100, f);
    auto idle_hour = add(IPPROTO_TCP, 1002, 1, 3600, 100, f);
    expect_pass({.scanned = 3, .expired = 1, .stale_backend = 0}, {at_limit, idle_hour}, {old});
}

TEST_F(CtGcTest, CustomTimeoutsHonoured) {
    to.tcp_established = 100;
    to.tcp_syn = 5;
    to.tcp_closing = 2;
    to.udp = 7;
    auto est = add(IPPROTO_TCP, 1000, 1, 101, 10, SKIFF_CT_F_REPLIED);
    auto est_keep = add(IPPROTO_TCP, 1001, 1, 99, 10, SKIFF_CT_F_REPLIED);
    auto syn = add(IPPROTO_TCP, 1002, 1, 6, 1, SKIFF_CT_F_SYN);
    auto syn_keep = add(IPPROTO_TCP, 1003, 1, 4, 1, SKIFF_CT_F_SYN);
    auto fin = add(IPPROTO_TCP, 1004, 1, 3, 10, SKIFF_CT_F_CLOSING);
    auto fin_keep = add(IPPROTO_TCP, 1005, 1, 1, 10, SKIFF_CT_F_CLOSING);
    auto u = add(IPPROTO_UDP, 1006, 2, 8, 10, 0);
    auto u_keep = add(IPPROTO_UDP, 1007, 2, 6, 10, 0);
    expect_pass({.scanned = 8, .expired = 4, .stale_backend = 0}, {est_keep, syn_keep, fin_keep, u_keep},
                {est, syn, fin, u});
}

TEST_F(CtGcTest, LastSeenInTheFutureIsKept) {
    // A packet seen after `now` was sampled (another CPU): not expired, and
    // no unsigned wrap-around.
    auto k = ct_key(IPPROTO_UDP, 1000);
    t.entries[k] = ct_val(2, now + 5 * kSec, 1, 0);
    auto st = gc();
    EXPECT_EQ(st.expired, 0u);
    EXPECT_TRUE(t.has(k));
}

TEST_F(CtGcTest, StatsOverAMixedTable) {
    add(IPPROTO_TCP, 1000, 1, 5, 100, SKIFF_CT_F_SYN);      // keep
    add(IPPROTO_TCP, 1001, 1, 30, 10, SKIFF_CT_F_CLOSING);  // expired
    add(IPPROTO_TCP, 1002, 1, 120, 1, SKIFF_CT_F_SYN);      // expired
    add(IPPROTO_TCP, 1003, 9, 1, 100, 0);                   // stale
    add(IPPROTO_UDP, 1004, 2, 120, 3, 0);                   // expired
    add(IPPROTO_UDP, 1005, 2, 1, 3, 0);                     // keep
    add(IPPROTO_UDP, 1006, 8, 1, 3, 0, 0, SKIFF_CT_REPLY);  // stale
    auto st = gc();
    EXPECT_EQ(st.scanned, 7u);
    EXPECT_EQ(st.expired, 3u);
    EXPECT_EQ(st.stale_backend, 2u);
    EXPECT_EQ(t.entries.size(), 2u);

    // A second pass over what is left finds nothing more to do.
    st = gc();
    EXPECT_EQ(st.scanned, 2u);
    EXPECT_EQ(st.expired, 0u);
    EXPECT_EQ(st.stale_backend, 0u);
}

TEST_F(CtGcTest, SweepErrorPropagates) {
    add(IPPROTO_TCP, 1000, 1, 0, 10, 0);
    t.fail = true;
    auto r = ct_gc(t, to, now, backends);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, EPERM);
    EXPECT_EQ(t.entries.size(), 1u);
}

// ---- a connection's two halves, as the datapath writes them ----

struct Conn {
    skiff_ct_key fk, rk;
    skiff_ct_value fv, rv;
};

// client 10.244.1.1:cport -> VIP 10.96.0.1:80, backend 10.244.2.1:8080;
// with snat, the client is translated to 192.168.1.11:snat_port.
Conn conn(uint16_t cport, uint32_t backend_id, uint64_t last_ns, uint8_t flags, uint16_t snat_port = 0) {
    Conn c;
    const uint32_t client = htonl(0x0af40101u), vip = htonl(0x0a600001u), be = htonl(0x0af40201u),
                   node = htonl(0xc0a8010bu);
    c.fk = skiff_ct_key{client, vip, htons(cport), htons(80), IPPROTO_TCP, SKIFF_CT_FORWARD, 0};
    c.fv = ct_val(backend_id, last_ns, 3, flags);
    c.fv.nat_addr = be;
    c.fv.nat_port = htons(8080);
    c.fv.snat_port = htons(cport);
    if (snat_port) {
        c.fv.flags |= SKIFF_CT_F_SNAT;
        c.fv.snat_addr = node;
        c.fv.snat_port = htons(snat_port);
    }
    c.rk = skiff_ct_key{
        be, snat_port ? node : client, htons(8080), htons(snat_port ? snat_port : cport), IPPROTO_TCP, SKIFF_CT_REPLY,
        0};
    c.rv = c.fv;
    c.rv.nat_addr = vip;
    c.rv.nat_port = htons(80);
    c.rv.snat_addr = client;
    c.rv.snat_port = htons(cport);
    return c;
}

class CtGcPairTest : public CtGcTest {
protected:
    Conn put(const Conn& c) {
        t.entries[c.fk] = c.fv;
        t.entries[c.rk] = c.rv;
        return c;
    }
};

TEST_F(CtGcPairTest, PartnerKeysPointAtEachOther) {
    for (uint16_t snat : {0, 61000}) {
        Conn c = conn(40000, 1, now, SKIFF_CT_F_REPLIED, snat);
        const skiff_ct_key pf = ct_partner(c.fk, c.fv), pr = ct_partner(c.rk, c.rv);
        EXPECT_EQ(std::memcmp(&c.rk, &pf, sizeof(c.rk)), 0) << "snat " << snat;
        EXPECT_EQ(std::memcmp(&c.fk, &pr, sizeof(c.fk)), 0) << "snat " << snat;
    }
}

TEST_F(CtGcPairTest, AHalfStillInUseKeepsBoth) {
    // The client closed 30 s ago; the backend is still sending (1 s ago).
    Conn c = conn(40000, 1, now - 30 * kSec, SKIFF_CT_F_REPLIED | SKIFF_CT_F_CLOSING);
    c.rv.last_seen_ns = now - kSec;
    put(c);
    expect_pass({.scanned = 2, .expired = 0, .stale_backend = 0}, {c.fk, c.rk});
}

TEST_F(CtGcPairTest, ClosingOnOneSideExpiresBothTogether) {
    // FIN seen by the backend's half only; both idle 11 s: closing timeout.
    Conn c = conn(40000, 1, now - 11 * kSec, SKIFF_CT_F_REPLIED);
    c.rv.flags |= SKIFF_CT_F_CLOSING;
    put(c);
    auto st = gc();
    EXPECT_EQ(st.expired, 2u);
    EXPECT_TRUE(t.entries.empty());
}

TEST_F(CtGcPairTest, TupleReusedAfterTheWalkIsKept) {
    // The walk sees a closed connection idle past its timeout; before the
    // agent deletes it, a new SYN on the same tuple revives the FORWARD half
    // and the backend's SYN-ACK the REPLY half (or only one of them).
    for (int revived : {0, 1, 2}) {
        SCOPED_TRACE("revived " + std::to_string(revived));
        t.entries.clear();
        Conn c = put(conn(40000, 1, now - 12 * kSec, SKIFF_CT_F_REPLIED | SKIFF_CT_F_CLOSING));
        t.after_walk = [&] {
            auto& v = t.entries[revived == 1 ? c.rk : c.fk];
            v.last_seen_ns = now;
            v.flags = SKIFF_CT_F_SYN;
            if (revived == 2) t.entries[c.rk].last_seen_ns = now;
        };
        expect_pass({.scanned = 2, .expired = 0, .stale_backend = 0}, {c.fk, c.rk});
    }
    t.after_walk = nullptr;
}

TEST_F(CtGcPairTest, AReplyEntryTakenOverByANewerConnectionStays) {
    // Client port 40000 through SNAT port 61000 expired; the REPLY tuple was
    // since written for another client's connection (ct_put replaces it).
    Conn old = conn(40000, 1, now - 30 * kSec, SKIFF_CT_F_REPLIED | SKIFF_CT_F_CLOSING, 61000);
    Conn newer = conn(40001, 1, now, SKIFF_CT_F_REPLIED, 61000);
    t.entries[old.fk] = old.fv;
    put(newer);
    ASSERT_EQ(std::memcmp(&old.rk, &newer.rk, sizeof(old.rk)), 0);
    expect_pass({.scanned = 3, .expired = 1, .stale_backend = 0}, {newer.fk, newer.rk}, {old.fk});
}

TEST_F(CtGcPairTest, BackendGoneTakesBothHalves) {
    Conn c = put(conn(40000, 9, now, SKIFF_CT_F_REPLIED));
    Conn keep = put(conn(40001, 1, now, SKIFF_CT_F_REPLIED));
    expect_pass({.scanned = 4, .expired = 0, .stale_backend = 2}, {keep.fk, keep.rk}, {c.fk, c.rk});
}

TEST(CtGcClockTest, MonotonicNsAdvances) {
    uint64_t a = monotonic_ns();
    uint64_t b = monotonic_ns();
    EXPECT_GT(a, 0u);
    EXPECT_GE(b, a);
}

}  // namespace
}  // namespace skiff::agent

namespace skiff::agent {
namespace {

TEST(CtEvictionsTest, WhatInsertsLeaveUnexplainedIsEvicted) {
    CtAccount start{1000, 10, 50, 940};  // 1000 - 10 - 50 = 940: nothing evicted so far
    EXPECT_EQ(ct_evictions(start, start), 0u);
    // 500 more inserted, 20 removed by the datapath, 30 expired by the agent,
    // and the map holds 1300: 90 went without anyone removing them.
    EXPECT_EQ(ct_evictions(start, CtAccount{1500, 30, 80, 1300}), 90u);
    // A walk that raced inserts can count more than the counters explain.
    EXPECT_EQ(ct_evictions(start, CtAccount{1000, 10, 50, 945}), 0u);
}

// ---- a pass in steps (the agent runs one slice per tick) ----

TEST_F(CtGcPairTest, PassInStepsJudgesEachCandidateAsItIsAtItsStep) {
    // Ten closed connections, idle 30 s: twenty candidates.
    std::vector<Conn> cs;
    for (uint16_t i = 0; i < 10; ++i)
        cs.push_back(
            put(conn(static_cast<uint16_t>(41000 + i), 1, now - 30 * kSec, SKIFF_CT_F_REPLIED | SKIFF_CT_F_CLOSING)));
    auto pass = CtGcPass::start(t, to, now, backends);
    ASSERT_TRUE(pass.ok()) << pass.error().message;
    EXPECT_EQ(pass->stats().scanned, 20u);
    EXPECT_FALSE(pass->done());
    EXPECT_EQ(t.entries.size(), 20u) << "start() only walks";

    // The first step: three candidates, at most three connections gone.
    auto r = pass->step(t, to, now, backends, 3);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_FALSE(*r);
    const size_t after_first = t.entries.size();
    EXPECT_GE(after_first, 14u);
    EXPECT_LT(after_first, 20u);

    // Between steps the datapath sees new SYNs on every connection still
    // there (their tuples reused): those are live now and must stay.
    std::vector<skiff_ct_key> reused;
    for (auto& [k, v] : t.entries) {
        v.last_seen_ns = now;
        v.flags = SKIFF_CT_F_SYN;
        reused.push_back(k);
    }
    size_t steps = 1;
    for (bool done = false; !done; ++steps) {
        auto s = pass->step(t, to, now + kSec, backends, 3);
        ASSERT_TRUE(s.ok()) << s.error().message;
        done = *s;
        ASSERT_LT(steps, 20u) << "the pass never ends";
    }
    EXPECT_TRUE(pass->done());
    EXPECT_EQ(steps, 7u) << "twenty candidates three at a time";
    for (const auto& k : reused) EXPECT_TRUE(t.has(k)) << "a reused tuple's entry was deleted";
    EXPECT_EQ(t.entries.size(), after_first);
    EXPECT_EQ(pass->stats().expired, 20u - after_first) << "each deleted entry counted once";
}

TEST_F(CtGcPairTest, PassInStepsEndsLikeOneCall) {
    for (uint16_t i = 0; i < 6; ++i)
        put(conn(static_cast<uint16_t>(42000 + i), 1, now - 30 * kSec, SKIFF_CT_F_REPLIED | SKIFF_CT_F_CLOSING));
    for (uint16_t i = 0; i < 4; ++i) put(conn(static_cast<uint16_t>(43000 + i), 1, now - kSec, SKIFF_CT_F_REPLIED));
    put(conn(44000, 9, now, SKIFF_CT_F_REPLIED));  // its backend is gone
    auto pass = CtGcPass::start(t, to, now, backends);
    ASSERT_TRUE(pass.ok()) << pass.error().message;
    while (!pass->done()) ASSERT_TRUE(pass->step(t, to, now, backends, 1).ok());
    EXPECT_EQ(pass->stats().scanned, 22u);
    EXPECT_EQ(pass->stats().expired, 12u);
    EXPECT_EQ(pass->stats().stale_backend, 2u);
    EXPECT_EQ(t.entries.size(), 8u);
}

}  // namespace
}  // namespace skiff::agent
