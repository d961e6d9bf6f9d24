// The FIB answer cache toward other nodes (skiff_nexthops, bpf/lib/nexthop.h)
// under BPF_PROG_TEST_RUN, on remote_env.h's underlay:
//  - a resolved answer is stored, keyed by pod and node: egress device,
//    MACs, and the path MTU the FIB reported (0: none);
//  - while it holds, packets are sent by it without asking the FIB: shown
//    by entries written with a MAC no neighbour has;
//  - an expired entry, or a packet longer than its MTU (or any packet but
//    a GSO one when it has none), asks the FIB and refreshes it;
//  - unresolved neighbours, FIB misses and traced packets are not cached,
//    and TTL expiry is still the stack's.
// Entries are written with an expiry far ahead or long past, so no
// assertion depends on how much time passes between runs.
#include <bpf/bpf.h>

#include <limits>
#include <optional>

#include "remote_env.h"

namespace skiff::bpftest::remote {
namespace {

// A MAC no neighbour of the underlay has: a packet carrying it was sent by
// a cache entry written by the test, not by the FIB.
const MacAddr kCachedMac{0x02, 0xca, 0xce, 0x00, 0x00, 0x01};
constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

class NexthopCacheTest : public RemoteTest {
protected:
    void SetUp() override {
        ASSERT_NO_FATAL_FAILURE(RemoteTest::SetUp());
        auto fd = datapath::open_pinned_map(pins_.path(), SKIFF_MAP_NEXTHOPS);
        ASSERT_TRUE(fd.ok()) << fd.error().message;
        nexthops_ = std::move(fd).value();
    }
    void TearDown() override {
        nexthops_ = UniqueFd();
        RemoteTest::TearDown();
    }

    static skiff_nexthop_key key(Ipv4 saddr, Ipv4 node_ip) { return {saddr.be(), node_ip.be()}; }

    // The entry, if there is one.
    std::optional<skiff_nexthop> entry(Ipv4 saddr, Ipv4 node_ip) {
        skiff_nexthop v{};
        skiff_nexthop_key k = key(saddr, node_ip);
        if (bpf_map_lookup_elem(nexthops_.get(), &k, &v) != 0) return std::nullopt;
        return v;
    }

    void write(Ipv4 saddr, Ipv4 node_ip, const skiff_nexthop& nh) {
        skiff_nexthop_key k = key(saddr, node_ip);
        ASSERT_EQ(bpf_map_update_elem(nexthops_.get(), &k, &nh, BPF_ANY), 0) << std::strerror(errno);
    }

    // An answer toward the uplink with kCachedMac as next hop.
    skiff_nexthop cached(uint64_t expires, uint32_t mtu) const {
        skiff_nexthop nh{};
        nh.expires = expires;
        nh.ifindex = static_cast<uint32_t>(uplink_->host.ifindex);
        nh.mtu = mtu;
        std::memcpy(nh.smac, uplink_->host.mac.data(), 6);
        std::memcpy(nh.dmac, kCachedMac.data(), 6);
        return nh;
    }

    // The FIB's answer for kPodIp -> kNodeNeighIp, as cached.
    void expect_fib_answer(const skiff_nexthop& nh, uint32_t mtu) {
        EXPECT_EQ(nh.ifindex, static_cast<uint32_t>(uplink_->host.ifindex));
        EXPECT_EQ(hex(nh.smac, 6), hex(uplink_->host.mac));
        EXPECT_EQ(hex(nh.dmac, 6), hex(kNodeNeighMac));
        EXPECT_EQ(nh.mtu, mtu);
    }

    Bytes pod_frame(size_t icmp_payload, uint8_t ttl = 64) const {
        return from_pod_frame(rn_->pod, spec(kPodIp, kRemoteNeighIp, ttl, IPPROTO_ICMP, icmp_payload));
    }

    // Sent toward the node with dst_mac as next hop.
    void expect_sent(const Bytes& in, const MacAddr& dst_mac) {
        RunResult r = run_pod(in);
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
        ASSERT_EQ(r.retval, kRedirect);
        expect_to_node(in, r.data, dst_mac);
    }

    UniqueFd nexthops_;
};

TEST_F(NexthopCacheTest, ResolvedAnswerIsCachedWithThePathMtu) {
    ASSERT_FALSE(entry(kPodIp, kNodeNeighIp));
    ASSERT_NO_FATAL_FAILURE(expect_sent(pod_icmp(kRemoteNeighIp), kNodeNeighMac));
    auto got = entry(kPodIp, kNodeNeighIp);
    ASSERT_TRUE(got);
    EXPECT_NE(got->expires, 0u);
    expect_fib_answer(*got, 1500);
}

TEST_F(NexthopCacheTest, PacketsAreSentByAnEntryThatHoldsWithoutTheFib) {
    ASSERT_NO_FATAL_FAILURE(write(kPodIp, kNodeNeighIp, cached(kNever, 1500)));
    Bytes in = pod_frame(1500 - 28);  // exactly the MTU
    ASSERT_NO_FATAL_FAILURE(expect_sent(in, kCachedMac));
    ASSERT_NO_FATAL_FAILURE(expect_sent(pod_frame(56), kCachedMac));
    // Other pods and other nodes have entries of their own.
    Bytes other = from_pod_frame(rn_->pod, spec(kPodIp, kRemoteViaGwIp));
    RunResult r = run_pod(other);
    ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
    EXPECT_EQ(r.retval, kRedirect);
    expect_to_node(other, r.data, kGatewayMac);
    expect_only(SKIFF_FWD_REMOTE_NODE, SKIFF_DIR_EGRESS, 3, in.size() + pod_frame(56).size() + other.size());
}

TEST_F(NexthopCacheTest, ExpiredEntryAsksTheFibAndIsRefreshed) {
    ASSERT_NO_FATAL_FAILURE(write(kPodIp, kNodeNeighIp, cached(1, 1500)));
    ASSERT_NO_FATAL_FAILURE(expect_sent(pod_icmp(kRemoteNeighIp), kNodeNeighMac));
    auto got = entry(kPodIp, kNodeNeighIp);
    ASSERT_TRUE(got);
    EXPECT_GT(got->expires, 1u) << "not refreshed";
    expect_fib_answer(*got, 1500);
}

TEST_F(NexthopCacheTest, PacketLongerThanTheCachedMtuAsksTheFib) {
    ASSERT_NO_FATAL_FAILURE(write(kPodIp, kNodeNeighIp, cached(kNever, 200)));
    ASSERT_NO_FATAL_FAILURE(expect_sent(pod_frame(200 - 28), kCachedMac));
    ASSERT_NO_FATAL_FAILURE(expect_sent(pod_frame(201 - 28), kNodeNeighMac));
    auto got = entry(kPodIp, kNodeNeighIp);
    ASSERT_TRUE(got);
    EXPECT_NE(got->expires, kNever) << "not refreshed";
    expect_fib_answer(*got, 1500);

    // Longer than the path's MTU too: the FIB says so, the stack answers.
    ASSERT_NO_FATAL_FAILURE(write(kPodIp, kNodeNeighIp, cached(kNever, 1500)));
    Bytes big = pod_frame(1501 - 28);
    RunResult r = run_pod(big);
    ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
    EXPECT_EQ(r.retval, kOk);
    EXPECT_EQ(hex(r.data), hex(big));
}

// A GSO packet's lookup is made without its length (see remote_test.cc):
// the entry has the MTU the kernel reports anyway (this kernel does), or 0
// where it reports none. An entry without an MTU serves GSO packets only.
TEST_F(NexthopCacheTest, EntryWithoutAnMtuServesOnlyGsoPackets) {
    const uint32_t mss = 1448;
    Bytes gso = from_pod_frame(rn_->pod, spec(kPodIp, kRemoteNeighIp, 64, IPPROTO_TCP, 2 * mss));
    RunResult r = test_run_gso(from_pod_.get(), gso, rn_->pod.host.ifindex, mss, 2);
    ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
    ASSERT_EQ(r.retval, kRedirect);
    auto got = entry(kPodIp, kNodeNeighIp);
    ASSERT_TRUE(got);
    expect_fib_answer(*got, got->mtu == 0 ? 0 : 1500);

    ASSERT_NO_FATAL_FAILURE(write(kPodIp, kNodeNeighIp, cached(kNever, 0)));
    r = test_run_gso(from_pod_.get(), gso, rn_->pod.host.ifindex, mss, 2);
    ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
    ASSERT_EQ(r.retval, kRedirect);
    expect_to_node(gso, r.data, kCachedMac);
    ASSERT_NO_FATAL_FAILURE(expect_sent(pod_frame(56), kNodeNeighMac));
}

TEST_F(NexthopCacheTest, UnresolvedNeighbourAndFibMissAreNotCached) {
    for (Ipv4 dst : {kRemoteNoNeighIp, kRemoteNoRouteIp}) {
        RunResult r = run_pod(pod_icmp(dst));
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
    }
    EXPECT_FALSE(entry(kPodIp, kNodeNoNeighIp));
    EXPECT_FALSE(entry(kPodIp, kNodeNoRouteIp));
    expect_counters({{{SKIFF_FWD_REMOTE_NODE, SKIFF_DIR_EGRESS}, Count{1, pod_icmp(kRemoteNoNeighIp).size()}},
                     {{SKIFF_FWD_FIB_MISS, SKIFF_DIR_EGRESS}, Count{1, pod_icmp(kRemoteNoRouteIp).size()}}});
}

TEST_F(NexthopCacheTest, TtlExpiringGoesToTheStackWhateverTheEntry) {
    ASSERT_NO_FATAL_FAILURE(write(kPodIp, kNodeNeighIp, cached(kNever, 1500)));
    for (uint8_t ttl : {1, 0}) {
        Bytes in = pod_icmp(kRemoteNeighIp, ttl);
        RunResult r = run_pod(in);
        ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
        EXPECT_EQ(r.retval, kOk);
        EXPECT_EQ(hex(r.data), hex(in));
    }
    expect_only(SKIFF_FWD_TTL_EXPIRED, SKIFF_DIR_EGRESS, 2, 2 * pod_icmp(kRemoteNeighIp).size());
}

// skiffctl trace shows what the FIB says now, and changes nothing.
TEST_F(NexthopCacheTest, TracedPacketsNeitherReadNorWriteTheCache) {
    __sk_buff ctx{};
    ctx.ifindex = static_cast<uint32_t>(rn_->pod.host.ifindex);
    ctx.mark = SKIFF_TRACE_MARK;
    Bytes in = pod_icmp(kRemoteNeighIp);
    RunResult r = test_run(from_pod_.get(), in, ctx);
    ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
    EXPECT_EQ(r.retval, kRedirect);
    EXPECT_FALSE(entry(kPodIp, kNodeNeighIp)) << "a traced packet wrote an entry";

    ASSERT_NO_FATAL_FAILURE(write(kPodIp, kNodeNeighIp, cached(kNever, 1500)));
    r = test_run(from_pod_.get(), in, ctx);
    ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
    EXPECT_EQ(r.retval, kRedirect);
    expect_to_node(in, r.data, kNodeNeighMac);
}

}  // namespace
}  // namespace skiff::bpftest::remote
