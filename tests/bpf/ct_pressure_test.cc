// A full conntrack map, driven through the real program: more new service
// connections than skiff_ct can hold, while one established connection keeps
// exchanging packets. The map is LRU, so it must make room by evicting the
// least recently used entries: new connections keep being accepted (no
// drop-ct-full), the active connection keeps its entries and its backend,
// the oldest idle ones are the ones gone, and the datapath's entry accounting
// (inserted - removed - present) tells how many were evicted.
#include <arpa/inet.h>

#include "service_env.h"

namespace skiff::bpftest::service {
namespace {

constexpr int kFrontends = 4;                              // VIP:1000.. each with its own backend port,
constexpr uint16_t kFirstPort = 1000;                      // so reply tuples never collide across them
constexpr uint32_t kFillConns = SKIFF_CT_MAX / 2 * 3 / 2;  // 1.5x what fits (2 entries each)
constexpr uint32_t kTouchEvery = 256;                      // the live connection sends and gets a packet this often

class CtPressureTest : public ServiceTest {
protected:
    Bytes from_backend(const TestVeth& be, Ipv4 be_ip, uint16_t be_port, uint16_t client_port) const {
        return frame(be, be_ip, kClientIp, kTcp, l4(kTcp, be_ip, kClientIp, be_port, client_port, kAck, {}));
    }
    uint64_t entry_count(uint32_t reason) { return counter(reason, SKIFF_DIR_EGRESS).packets; }
};

TEST_F(CtPressureTest, FullMapEvictsIdleEntriesKeepsTheLiveConnectionAndCountsIt) {
    for (int f = 0; f < kFrontends; ++f) {
        uint32_t id = 10 + static_cast<uint32_t>(f);
        ASSERT_OK(maps_.set_backend(id, kBackendIp, static_cast<uint16_t>(9000 + f), kTcp));
        ASSERT_OK(maps_.set_service(kVip, static_cast<uint16_t>(kFirstPort + f), kTcp, {id}, kRevNat));
    }
    two_backends(kTcp);  // the live connection: VIP:80 over two backends

    // The live connection: SYN, then its backend is what conntrack chose.
    const uint16_t live_port = 40000;
    RunResult r = run_pod(client(kVip, kVport, live_port, kTcp, kSyn));
    ASSERT_EQ(r.err, 0);
    ASSERT_EQ(r.retval, kRedirect);
    auto fwd = maps_.ct(ct_key(kClientIp, kVip, live_port, kVport, kTcp, SKIFF_CT_FORWARD));
    ASSERT_TRUE(fwd.has_value());
    const uint32_t live_be = fwd->backend_id;
    const Ipv4 live_ip = live_be == kBeId ? kBackendIp : kBackend2Ip;
    const TestVeth& live_veth = live_be == kBeId ? net_->dst : net_->other;
    const Bytes live_out = client(kVip, kVport, live_port, kTcp, kAck, 32, 1);
    const Bytes live_back = from_backend(live_veth, live_ip, kBport, live_port);

    // Flood: new connections until the map has overflowed half again.
    uint32_t refused = 0, touched = 0;
    for (uint32_t i = 0; i < kFillConns; ++i) {
        uint16_t vport = static_cast<uint16_t>(kFirstPort + i % kFrontends);
        uint16_t sport = static_cast<uint16_t>(1024 + i / kFrontends);
        RunResult n = run_pod(client(kVip, vport, sport, kTcp, kSyn));
        if (n.err != 0 || n.retval != kRedirect) ++refused;
        if (i % kTouchEvery == 0) {
            RunResult a = run_pod(live_out);
            RunResult b = run_pod(live_back, live_veth.host.ifindex);
            if (a.retval == kRedirect && b.retval == kRedirect) ++touched;
        }
    }
    EXPECT_EQ(refused, 0u) << "new connections must get room by eviction, not be dropped";
    EXPECT_EQ(counter(SKIFF_DROP_CT_FULL).packets, 0u);
    EXPECT_EQ(touched, (kFillConns + kTouchEvery - 1) / kTouchEvery);

    // The live connection kept both entries and its backend.
    auto live_fwd = maps_.ct(ct_key(kClientIp, kVip, live_port, kVport, kTcp, SKIFF_CT_FORWARD));
    ASSERT_TRUE(live_fwd.has_value()) << "the live connection's forward entry was evicted";
    EXPECT_EQ(live_fwd->backend_id, live_be);
    EXPECT_TRUE(maps_.ct(ct_key(live_ip, kClientIp, kBport, live_port, kTcp, SKIFF_CT_REPLY)).has_value())
        << "the live connection's reply entry was evicted";
    Counters before = counters();
    r = run_pod(live_out);
    ASSERT_NO_FATAL_FAILURE(expect_dnat(live_out, r, live_veth, live_ip, kBport));
    EXPECT_EQ(packets_delta(before, counters(), SKIFF_SVC_ESTABLISHED), 1u);
    EXPECT_EQ(packets_delta(before, counters(), SKIFF_SVC_NEW), 0u);

    // The oldest idle connections are gone, the newest are there.
    for (uint32_t i : {0u, 1u, 2u, 3u}) {
        uint16_t vport = static_cast<uint16_t>(kFirstPort + i % kFrontends);
        uint16_t sport = static_cast<uint16_t>(1024 + i / kFrontends);
        EXPECT_FALSE(maps_.ct(ct_key(kClientIp, kVip, sport, vport, kTcp, SKIFF_CT_FORWARD)).has_value())
            << "connection " << i << " (among the oldest) survived";
    }
    uint32_t last = kFillConns - 1;
    EXPECT_TRUE(maps_
                    .ct(ct_key(kClientIp, kVip, static_cast<uint16_t>(1024 + last / kFrontends),
                               static_cast<uint16_t>(kFirstPort + last % kFrontends), kTcp, SKIFF_CT_FORWARD))
                    .has_value())
        << "the newest connection has no entry";

    // Counted: what was inserted and not removed, but is not there, was evicted.
    const uint64_t present = maps_.ct_all().size();
    const uint64_t inserted = entry_count(SKIFF_CT_ENTRY_INSERTED);
    const uint64_t removed = entry_count(SKIFF_CT_ENTRY_REMOVED);
    EXPECT_LE(present, uint64_t{SKIFF_CT_MAX});
    EXPECT_GE(present, uint64_t{SKIFF_CT_MAX} * 9 / 10) << "an LRU map under pressure stays nearly full";
    EXPECT_EQ(inserted, 2ull * (kFillConns + 1)) << "two entries per connection";
    EXPECT_EQ(removed, 0u);
    EXPECT_EQ(inserted - removed - present, 2ull * (kFillConns + 1) - present);
    EXPECT_GE(inserted - removed - present, 2ull * kFillConns - SKIFF_CT_MAX) << "at least the overflow was evicted";
}

// Without pressure the accounting explains every entry: inserted - removed
// equals what is there, including a flow moved off a removed backend
// (one entry removed, two inserted) and a reused reply tuple (replaced, not
// inserted again).
TEST_F(CtPressureTest, AccountingMatchesTheMapWithoutEvictions) {
    two_backends(kTcp);
    for (uint16_t p = 2000; p < 2100; ++p) ASSERT_EQ(run_pod(client(kVip, kVport, p, kTcp, kSyn)).retval, kRedirect);
    // Remove backend 2: its flows move on their next packet.
    ASSERT_OK(maps_.set_service(kVip, kVport, kTcp, {kBeId}, kRevNat));
    ASSERT_OK(maps_.delete_backend(kBe2Id));
    for (uint16_t p = 2000; p < 2100; ++p) ASSERT_EQ(run_pod(client(kVip, kVport, p, kTcp, kAck)).retval, kRedirect);
    const uint64_t inserted = entry_count(SKIFF_CT_ENTRY_INSERTED);
    const uint64_t removed = entry_count(SKIFF_CT_ENTRY_REMOVED);
    EXPECT_GT(removed, 0u) << "no flow was on backend 2 (random choice over 100 flows?)";
    EXPECT_EQ(inserted - removed, maps_.ct_all().size()) << maps_.ct_all().size();
}

// A new connection on the tuple of a closed one whose REPLY half is gone
// (evicted, or expired by the agent just as the tuple came back): the SYN
// puts the REPLY half back, so the backend's SYN-ACK is translated to the
// VIP instead of reaching the client from the backend's address.
TEST_F(CtPressureTest, ReusedTupleGetsItsReplyHalfBack) {
    one_backend(kTcp);
    const uint16_t sport = 40000;
    const skiff_ct_key fkey = ct_key(kClientIp, kVip, sport, kVport, kTcp, SKIFF_CT_FORWARD);
    const skiff_ct_key rkey = ct_key(kBackendIp, kClientIp, kBport, sport, kTcp, SKIFF_CT_REPLY);
    ASSERT_EQ(run_pod(client(kVip, kVport, sport, kTcp, kSyn)).retval, kRedirect);
    ASSERT_EQ(run_pod(client(kVip, kVport, sport, kTcp, kFinAck)).retval, kRedirect);
    ASSERT_TRUE(maps_.ct(fkey).has_value() && (maps_.ct(fkey)->flags & SKIFF_CT_F_CLOSING)) << maps_.ct_dump();
    ASSERT_OK(maps_.del_ct(rkey));

    Bytes syn = client(kVip, kVport, sport, kTcp, kSyn);
    ASSERT_NO_FATAL_FAILURE(expect_dnat(syn, run_pod(syn), net_->dst, kBackendIp, kBport));
    auto rev = maps_.ct(rkey);
    ASSERT_TRUE(rev.has_value()) << "no REPLY half after the SYN" << maps_.ct_dump();
    EXPECT_EQ(Ipv4::from_be(rev->nat_addr).str(), kVip.str());
    EXPECT_EQ(ntohs(rev->nat_port), kVport);
    EXPECT_EQ(Ipv4::from_be(rev->snat_addr).str(), kClientIp.str());
    EXPECT_EQ(ntohs(rev->snat_port), sport);
    EXPECT_EQ(rev->backend_id, kBeId);

    Bytes syn_ack =
        frame(net_->dst, kBackendIp, kClientIp, kTcp, l4(kTcp, kBackendIp, kClientIp, kBport, sport, kSynAck, {}));
    RunResult r = run_pod(syn_ack, net_->dst.host.ifindex);
    ASSERT_NO_FATAL_FAILURE(expect_snat(syn_ack, r, net_->src, kVip, kVport));
    EXPECT_EQ(maps_.ct_all().size(), 2u) << maps_.ct_dump();
}

}  // namespace
}  // namespace skiff::bpftest::service
