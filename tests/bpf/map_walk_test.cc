// datapath::for_each_entry() on real kernel maps: hash maps and LPM tries are
// read in batches (BPF_MAP_LOOKUP_BATCH), a map type without batch lookups
// key by key; every entry is seen exactly once either way. And the agent's conntrack GC
// through that walk, on the datapath's own pinned skiff_ct.
#include <netinet/in.h>

#include <map>
#include <set>
#include <tuple>
#include <vector>

#include "agent/ct_gc.h"
#include "agent/kernel_tables.h"
#include "datapath/maps.h"
#include "bpf_test_env.h"

namespace skiff::bpftest {
namespace {

constexpr uint64_t kSecond = 1000000000ull;

UniqueFd create_map(bpf_map_type type, uint32_t key_size, uint32_t value_size, uint32_t max, uint32_t flags = 0) {
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = flags);
    return UniqueFd(bpf_map_create(type, "skiff_walk_test", key_size, value_size, max, &opts));
}

skiff_ct_key ct_key_n(uint32_t n, uint8_t dir) {
    skiff_ct_key k{};
    k.saddr = htonl(0x0af40000u | (n >> 8));  // 10.244.x.y
    k.daddr = htonl(0x0a600001u);             // 10.96.0.1
    k.sport = htons(static_cast<uint16_t>(1024 + (n & 0xff)));
    k.dport = htons(80);
    k.proto = IPPROTO_TCP;
    k.dir = dir;
    return k;
}

std::tuple<uint32_t, uint32_t, uint16_t, uint16_t, uint8_t, uint8_t> tie_of(const skiff_ct_key& k) {
    return {k.saddr, k.daddr, k.sport, k.dport, k.proto, k.dir};
}

// More entries than one batch holds (512): several batch calls, each
// resuming where the last stopped.
TEST(MapWalkTest, HashMapBatchesSeeEveryEntryOnceWithItsValue) {
    for (bpf_map_type type : {BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH}) {
        constexpr uint32_t kEntries = 5000;
        UniqueFd fd = create_map(type, sizeof(skiff_ct_key), sizeof(skiff_ct_value), 16384);
        ASSERT_TRUE(fd.valid()) << "map type " << type << ": " << strerror(errno);
        for (uint32_t i = 0; i < kEntries; ++i) {
            skiff_ct_key k = ct_key_n(i, SKIFF_CT_FORWARD);
            skiff_ct_value v{};
            v.packets = i;
            ASSERT_EQ(bpf_map_update_elem(fd.get(), &k, &v, BPF_NOEXIST), 0) << i;
        }
        {
            // This walk is the batched one: the kernel has batch lookups here.
            // A batch holds whole hash buckets only, so it may stop short of
            // the 16 asked for when the next bucket does not fit.
            std::vector<skiff_ct_key> k(16);
            std::vector<skiff_ct_value> v(16);
            uint32_t count = 16, out = 0;
            ASSERT_EQ(bpf_map_lookup_batch(fd.get(), nullptr, &out, k.data(), v.data(), &count, nullptr), 0)
                << "map type " << type << ": " << strerror(errno);
            EXPECT_GT(count, 0u);
            EXPECT_LE(count, 16u);
        }
        std::set<std::tuple<uint32_t, uint32_t, uint16_t, uint16_t, uint8_t, uint8_t>> seen;
        uint32_t calls = 0, wrong = 0;
        ASSERT_OK((
            datapath::for_each_entry<skiff_ct_key, skiff_ct_value>(fd.get(), "test", [&](const auto& k, const auto& v) {
                ++calls;
                seen.insert(tie_of(k));
                if (tie_of(ct_key_n(static_cast<uint32_t>(v.packets), SKIFF_CT_FORWARD)) != tie_of(k)) ++wrong;
            })));
        EXPECT_EQ(calls, kEntries) << "map type " << type << ": an entry seen twice or missed";
        EXPECT_EQ(seen.size(), kEntries) << "map type " << type;
        EXPECT_EQ(wrong, 0u) << "map type " << type << ": a value paired with another entry's key";
    }
}

TEST(MapWalkTest, EmptyMapCallsNothing) {
    UniqueFd fd = create_map(BPF_MAP_TYPE_HASH, sizeof(skiff_ct_key), sizeof(skiff_ct_value), 64);
    ASSERT_TRUE(fd.valid()) << strerror(errno);
    int calls = 0;
    ASSERT_OK((datapath::for_each_entry<skiff_ct_key, skiff_ct_value>(fd.get(), "test",
                                                                      [&](const auto&, const auto&) { ++calls; })));
    EXPECT_EQ(calls, 0);
}

// The nodes and no-masquerade maps are LPM tries: walked whole.
TEST(MapWalkTest, LpmTrieIsWalkedWhole) {
    UniqueFd fd = create_map(BPF_MAP_TYPE_LPM_TRIE, sizeof(skiff_node_key), sizeof(uint32_t), 256, BPF_F_NO_PREALLOC);
    ASSERT_TRUE(fd.valid()) << strerror(errno);
    std::map<uint32_t, uint32_t> want;
    for (uint32_t i = 0; i < 100; ++i) {
        skiff_node_key k{24, htonl(0x0af40000u | (i << 8))};
        uint32_t v = i * 7;
        ASSERT_EQ(bpf_map_update_elem(fd.get(), &k, &v, BPF_ANY), 0) << i;
        want[k.ip] = v;
    }
    std::map<uint32_t, uint32_t> got;
    int calls = 0;
    ASSERT_OK((datapath::for_each_entry<skiff_node_key, uint32_t>(fd.get(), "test", [&](const auto& k, uint32_t v) {
        ++calls;
        got[k.ip] = v;
    })));
    EXPECT_EQ(calls, 100);
    EXPECT_EQ(got, want);
}

// A map type without batch lookups (a device hash map: keys to ifindexes,
// here all the loopback): the first batch call fails, the walk goes key by
// key and still sees every entry.
TEST(MapWalkTest, MapWithoutBatchLookupIsWalkedKeyByKey) {
    UniqueFd fd = create_map(BPF_MAP_TYPE_DEVMAP_HASH, sizeof(uint32_t), sizeof(uint32_t), 64);
    ASSERT_TRUE(fd.valid()) << strerror(errno);
    const uint32_t lo = 1;
    for (uint32_t k = 100; k < 140; ++k) ASSERT_EQ(bpf_map_update_elem(fd.get(), &k, &lo, BPF_ANY), 0) << k;
    uint32_t keys[4] = {}, vals[4] = {}, count = 4, out = 0;
    ASSERT_NE(bpf_map_lookup_batch(fd.get(), nullptr, &out, keys, vals, &count, nullptr), 0)
        << "this kernel has batch lookups for device hash maps: pick another type for the fallback";
    EXPECT_TRUE(errno == datapath::kErrNotSupp || errno == EINVAL || errno == EOPNOTSUPP) << strerror(errno);
    std::set<uint32_t> seen;
    int calls = 0, wrong = 0;
    ASSERT_OK((datapath::for_each_entry<uint32_t, uint32_t>(fd.get(), "test", [&](uint32_t k, uint32_t v) {
        ++calls;
        seen.insert(k);
        if (v != lo) ++wrong;
    })));
    EXPECT_EQ(calls, 40);
    EXPECT_EQ(seen.size(), 40u);
    EXPECT_EQ(wrong, 0);
}

// The conntrack GC through the batched walk, on the pinned skiff_ct the
// programs use: more connections than one batch; expired pairs go, both
// halves; live ones (fresh, or with one half fresh) stay, both halves.
class CtGcOnMapTest : public BpfProgramTest {
protected:
    void SetUp() override {
        ASSERT_NO_FATAL_FAILURE(enter_test_net());
        ASSERT_NO_FATAL_FAILURE(load_pinned());
    }
};

TEST_F(CtGcOnMapTest, ExpiredConnectionsGoBothHalvesLiveOnesStay) {
    auto opened = datapath::open_pinned_map(pins_.path(), SKIFF_MAP_CT);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    UniqueFd ct = std::move(opened).value();
    constexpr uint32_t kConns = 3000;  // 6000 entries
    constexpr uint32_t kBackend = 7;
    const uint64_t now = 1000 * kSecond;
    const uint32_t backend_ip = htonl(0x0af40509u);
    auto reply_of = [&](const skiff_ct_key& f) {
        skiff_ct_key r{};
        r.saddr = backend_ip;
        r.sport = htons(8080);
        r.daddr = f.saddr;
        r.dport = f.sport;
        r.proto = f.proto;
        r.dir = SKIFF_CT_REPLY;
        return r;
    };
    // i % 3: 0 expired (closing, idle 100 s), 1 live, 2 closing with only
    // the reply half idle (the forward half seen now: the pair is live).
    for (uint32_t i = 0; i < kConns; ++i) {
        skiff_ct_key f = ct_key_n(i, SKIFF_CT_FORWARD), r = reply_of(f);
        skiff_ct_value fv{}, rv{};
        fv.backend_id = rv.backend_id = kBackend;
        fv.nat_addr = backend_ip;
        fv.nat_port = htons(8080);
        rv.snat_addr = f.saddr;
        rv.snat_port = f.sport;
        rv.nat_addr = f.daddr;
        rv.nat_port = f.dport;
        fv.flags = rv.flags = SKIFF_CT_F_SYN | SKIFF_CT_F_REPLIED | (i % 3 != 1 ? SKIFF_CT_F_CLOSING : 0);
        fv.last_seen_ns = i % 3 == 0 ? now - 100 * kSecond : now;
        rv.last_seen_ns = i % 3 == 1 ? now : now - 100 * kSecond;
        ASSERT_EQ(bpf_map_update_elem(ct.get(), &f, &fv, BPF_NOEXIST), 0) << i;
        ASSERT_EQ(bpf_map_update_elem(ct.get(), &r, &rv, BPF_NOEXIST), 0) << i;
    }
    auto table = agent::make_bpf_ct_table(pins_.path());
    std::map<uint32_t, skiff_l4_addr> backends{{kBackend, skiff_l4_addr{backend_ip, htons(8080), IPPROTO_TCP, 0}}};
    auto st = agent::ct_gc(*table, agent::CtTimeouts{}, now, backends);
    ASSERT_TRUE(st.ok()) << st.error().message;
    EXPECT_EQ(st->scanned, 2u * kConns);
    EXPECT_EQ(st->expired, 2u * kConns / 3);
    EXPECT_EQ(st->stale_backend, 0u);
    uint32_t wrong = 0;
    for (uint32_t i = 0; i < kConns; ++i) {
        skiff_ct_key f = ct_key_n(i, SKIFF_CT_FORWARD), r = reply_of(f);
        skiff_ct_value v{};
        bool want = i % 3 != 0;
        if ((bpf_map_lookup_elem(ct.get(), &f, &v) == 0) != want) ++wrong;
        if ((bpf_map_lookup_elem(ct.get(), &r, &v) == 0) != want) ++wrong;
    }
    EXPECT_EQ(wrong, 0u);
}

}  // namespace
}  // namespace skiff::bpftest
