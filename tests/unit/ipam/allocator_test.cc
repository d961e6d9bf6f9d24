// Built-in IPAM allocator (DESIGN.md section 6, items 7 and 11).
#include "ipam/allocator.h"

#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "test_support.h"

namespace skiff::ipam {
namespace {

using skiff_test::ip;
using skiff_test::TempDir;

Ipv4Prefix pfx(const char* s) { return *Ipv4Prefix::parse(s); }

// The owner of ip's lease, if it has one, from the allocator's leases().
std::optional<Owner> owner_of(Allocator& a, Ipv4 ip) {
    auto l = a.leases();
    EXPECT_TRUE(l.ok()) << l.error().message;
    if (!l) return std::nullopt;
    auto it = l->find(ip);
    if (it == l->end()) return std::nullopt;
    return it->second;
}

void write(const std::string& path, const std::string& content) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << content;
}

class AllocatorTest : public ::testing::Test {
protected:
    TempDir tmp;
    std::string dir = tmp.sub("ipam");

    Allocator open(const char* range) {
        auto a = Allocator::open(dir, pfx(range));
        if (!a) throw std::runtime_error(a.error().message);
        return std::move(*a);
    }
};

TEST_F(AllocatorTest, RangeBounds) {
    auto a24 = open("10.244.1.0/24");
    EXPECT_EQ(a24.first(), ip("10.244.1.2"));
    EXPECT_EQ(a24.last(), ip("10.244.1.254"));
    EXPECT_EQ(a24.capacity(), 253u);
    auto a30 = Allocator::open(tmp.sub("p30"), pfx("10.0.0.4/30"));
    ASSERT_TRUE(a30.ok());
    EXPECT_EQ(a30->first(), ip("10.0.0.6"));
    EXPECT_EQ(a30->last(), ip("10.0.0.6"));
    EXPECT_EQ(a30->capacity(), 1u);
    for (const char* small : {"10.0.0.0/31", "10.0.0.1/32"}) {
        auto a = Allocator::open(tmp.sub("small"), *Ipv4Prefix::parse(small, true));
        ASSERT_FALSE(a.ok()) << small;
        EXPECT_EQ(a.error().code, EINVAL);
    }
}

TEST_F(AllocatorTest, OpenCreatesDirectory) {
    auto a = Allocator::open(tmp.sub("deep/er/ipam"), pfx("10.0.0.0/29"));
    ASSERT_TRUE(a.ok()) << a.error().message;
    EXPECT_TRUE(std::filesystem::is_directory(tmp.sub("deep/er/ipam")));
}

TEST_F(AllocatorTest, AllocateReleaseAndLeases) {
    auto a = open("10.244.1.0/24");
    auto x = a.allocate({"c1", "eth0"});
    ASSERT_TRUE(x.ok()) << x.error().message;
    EXPECT_EQ(*x, ip("10.244.1.2"));
    auto y = a.allocate({"c2", "eth0"});
    ASSERT_TRUE(y.ok());
    EXPECT_EQ(*y, ip("10.244.1.3"));
    auto z = a.allocate({"c1", "net1"});  // same container, other interface
    ASSERT_TRUE(z.ok());
    EXPECT_EQ(*z, ip("10.244.1.4"));

    auto l = a.leases();
    ASSERT_TRUE(l.ok());
    std::map<Ipv4, Owner> want = {
        {ip("10.244.1.2"), {"c1", "eth0"}}, {ip("10.244.1.3"), {"c2", "eth0"}}, {ip("10.244.1.4"), {"c1", "net1"}}};
    EXPECT_EQ(*l, want);
    EXPECT_EQ(owner_of(a, ip("10.244.1.3")), std::optional<Owner>(Owner{"c2", "eth0"}));
    EXPECT_FALSE(owner_of(a, ip("10.244.1.9")).has_value());

    auto rel = a.release({"c1", "eth0"});
    ASSERT_TRUE(rel.ok());
    EXPECT_EQ(*rel, std::vector<Ipv4>{ip("10.244.1.2")});
    l = a.leases();
    ASSERT_TRUE(l.ok());
    EXPECT_EQ(l->size(), 2u);
    EXPECT_EQ(l->count(ip("10.244.1.2")), 0u);
    EXPECT_FALSE(std::filesystem::exists(dir + "/10.244.1.2"));

    // Releasing again, or an owner that never had a lease, is fine.
    rel = a.release({"c1", "eth0"});
    ASSERT_TRUE(rel.ok());
    EXPECT_TRUE(rel->empty());
    EXPECT_TRUE(a.release({"nobody", "eth0"}).ok());

    ASSERT_TRUE(a.release_ip(ip("10.244.1.3")).ok());
    EXPECT_TRUE(a.release_ip(ip("10.244.1.3")).ok());
    l = a.leases();
    ASSERT_TRUE(l.ok());
    EXPECT_EQ(l->size(), 1u);
    EXPECT_EQ(l->begin()->first, ip("10.244.1.4"));
}

TEST_F(AllocatorTest, AllocateIsIdempotentPerOwner) {
    auto a = open("10.244.1.0/24");
    auto first = a.allocate({"c1", "eth0"});
    ASSERT_TRUE(first.ok());
    ASSERT_TRUE(a.allocate({"c2", "eth0"}).ok());
    for (int i = 0; i < 3; ++i) {
        auto again = a.allocate({"c1", "eth0"});
        ASSERT_TRUE(again.ok());
        EXPECT_EQ(*again, *first);
    }
    // A separate Allocator object (another plugin process) sees the lease.
    auto b = open("10.244.1.0/24");
    auto other = b.allocate({"c1", "eth0"});
    ASSERT_TRUE(other.ok());
    EXPECT_EQ(*other, *first);
    EXPECT_EQ(b.leases()->size(), 2u);
}

TEST_F(AllocatorTest, ExhaustionNeverUsesReservedAddresses) {
    auto a = open("10.0.0.8/29");
    std::set<Ipv4> got;
    for (int i = 0; i < 5; ++i) {
        auto r = a.allocate({"c" + std::to_string(i), "eth0"});
        ASSERT_TRUE(r.ok()) << i << ": " << r.error().message;
        got.insert(*r);
    }
    EXPECT_EQ(got,
              (std::set<Ipv4>{ip("10.0.0.10"), ip("10.0.0.11"), ip("10.0.0.12"), ip("10.0.0.13"), ip("10.0.0.14")}));
    auto full = a.allocate({"c99", "eth0"});
    ASSERT_FALSE(full.ok());
    EXPECT_EQ(full.error().code, ENOSPC);
    EXPECT_EQ(a.leases()->size(), 5u);

    // Releasing one makes room again, and that is the address handed out.
    ASSERT_TRUE(a.release({"c2", "eth0"}).ok());
    auto again = a.allocate({"c99", "eth0"});
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, ip("10.0.0.12"));
}

TEST_F(AllocatorTest, Slash30HasOneAddress) {
    auto a = open("192.168.7.0/30");
    auto r = a.allocate({"c1", "eth0"});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, ip("192.168.7.2"));
    auto r2 = a.allocate({"c2", "eth0"});
    ASSERT_FALSE(r2.ok());
    EXPECT_EQ(r2.error().code, ENOSPC);
}

TEST_F(AllocatorTest, RoundRobinDoesNotReuseAtOnce) {
    auto a = open("10.0.0.0/28");
    ASSERT_EQ(*a.allocate({"a", "eth0"}), ip("10.0.0.2"));
    ASSERT_EQ(*a.allocate({"b", "eth0"}), ip("10.0.0.3"));
    ASSERT_TRUE(a.release({"b", "eth0"}).ok());
    ASSERT_TRUE(a.release({"a", "eth0"}).ok());
    auto c = a.allocate({"c", "eth0"});
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(*c, ip("10.0.0.4"));
    // The cursor survives in the directory, for the next process.
    auto b2 = open("10.0.0.0/28");
    EXPECT_EQ(*b2.allocate({"d", "eth0"}), ip("10.0.0.5"));
}

TEST_F(AllocatorTest, WrapsAroundAtTheEnd) {
    auto a = open("10.0.0.0/29");  // .2 .. .6
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(a.allocate({"c" + std::to_string(i), "eth0"}).ok());
    ASSERT_TRUE(a.release({"c0", "eth0"}).ok());  // .2
    ASSERT_TRUE(a.release({"c3", "eth0"}).ok());  // .5
    auto n = a.allocate({"n", "eth0"});
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(*n, ip("10.0.0.2")) << "after .6 the search wraps to the start";
    auto m = a.allocate({"m", "eth0"});
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(*m, ip("10.0.0.5"));
}

TEST_F(AllocatorTest, BadCursorIsIgnored) {
    auto a = open("10.0.0.0/29");
    for (const char* cursor : {"garbage", "10.9.9.9", "10.0.0.0", "10.0.0.7", ""}) {
        write(dir + "/last_reserved_ip", cursor);
        auto r = a.allocate({"c", "eth0"});
        ASSERT_TRUE(r.ok()) << cursor;
        EXPECT_EQ(*r, ip("10.0.0.2")) << "cursor '" << cursor << "'";
        ASSERT_TRUE(a.release({"c", "eth0"}).ok());
    }
}

TEST_F(AllocatorTest, StrayFilesAreIgnored) {
    auto a = open("10.244.1.0/24");
    write(dir + "/10.244.1.2.tmp.1234.5678", "half-written\n");  // a killed writer's leftover
    write(dir + "/garbage", "whatever\n");
    write(dir + "/README", "");
    std::filesystem::create_directory(dir + "/10.244.1.3");  // not a regular file
    auto l = a.leases();
    ASSERT_TRUE(l.ok());
    EXPECT_TRUE(l->empty());
    auto r = a.allocate({"c1", "eth0"});
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(*r, ip("10.244.1.2"));
    EXPECT_TRUE(std::filesystem::exists(dir + "/garbage"));
    EXPECT_EQ(a.leases()->size(), 1u);
    // Every writer holds the lock: the killed one's temporary file is gone.
    EXPECT_FALSE(std::filesystem::exists(dir + "/10.244.1.2.tmp.1234.5678"));
}

TEST_F(AllocatorTest, WritesLeaveNoTemporaryFiles) {
    auto a = open("10.244.1.0/24");
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(a.allocate({"c" + std::to_string(i), "eth0"}).ok());
    ASSERT_TRUE(a.release({"c0", "eth0"}).ok());
    for (const auto& e : std::filesystem::directory_iterator(dir))
        EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

TEST_F(AllocatorTest, UnreadableLeaseIsNotHandedOutAgain) {
    auto a = open("10.244.1.0/24");
    write(dir + "/10.244.1.2", "");  // a lease file without an owner: keep away from it
    auto r = a.allocate({"c1", "eth0"});
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(*r, ip("10.244.1.3"));
}

TEST_F(AllocatorTest, LeaseFileFormat) {
    auto a = open("10.244.1.0/24");
    ASSERT_TRUE(a.allocate({"abc", "eth0"}).ok());
    std::ifstream f(dir + "/10.244.1.2");
    std::string content((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    EXPECT_EQ(content, "abc\neth0\n");
    // No temporary files are left behind.
    for (const auto& e : std::filesystem::directory_iterator(dir))
        EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

// Each thread plays one plugin process: its own Allocator on the same dir.
std::vector<Result<Ipv4>> allocate_concurrently(const std::string& dir, const char* range, int n) {
    std::vector<std::optional<Result<Ipv4>>> out(n);
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) {
        threads.emplace_back([&, i] {
            auto a = Allocator::open(dir, pfx(range));
            if (!a) {
                out[i].emplace(a.error());
                return;
            }
            out[i] = a->allocate({"ctr" + std::to_string(i), "eth0"});
        });
    }
    for (auto& t : threads) t.join();
    std::vector<Result<Ipv4>> res;
    for (auto& o : out) res.push_back(std::move(*o));
    return res;
}

TEST_F(AllocatorTest, ConcurrentAllocationsAreDistinct) {
    auto res = allocate_concurrently(dir, "10.244.1.0/24", 20);
    std::set<Ipv4> ips;
    for (size_t i = 0; i < res.size(); ++i) {
        ASSERT_TRUE(res[i].ok()) << i << ": " << res[i].error().message;
        EXPECT_TRUE(pfx("10.244.1.0/24").contains(*res[i]));
        EXPECT_GE(res[i]->value(), ip("10.244.1.2").value());
        EXPECT_LE(res[i]->value(), ip("10.244.1.254").value());
        ips.insert(*res[i]);
    }
    EXPECT_EQ(ips.size(), 20u);
    auto l = open("10.244.1.0/24").leases();
    ASSERT_TRUE(l.ok());
    ASSERT_EQ(l->size(), 20u);
    for (size_t i = 0; i < res.size(); ++i) EXPECT_EQ(l->at(*res[i]), (Owner{"ctr" + std::to_string(i), "eth0"}));
}

TEST_F(AllocatorTest, ConcurrentAllocationsOnAFullPool) {
    const char* range = "10.0.0.0/28";  // 13 usable addresses
    const int n = 13;
    auto res = allocate_concurrently(dir, range, n + 5);
    std::set<Ipv4> ips;
    int ok = 0, nospc = 0;
    for (const auto& r : res) {
        if (r.ok()) {
            ++ok;
            ips.insert(*r);
        } else if (r.error().code == ENOSPC) {
            ++nospc;
        } else {
            ADD_FAILURE() << "unexpected error: " << r.error().message;
        }
    }
    EXPECT_EQ(ok, n);
    EXPECT_EQ(nospc, 5);
    EXPECT_EQ(ips.size(), static_cast<size_t>(n));
    EXPECT_EQ(ips.count(ip("10.0.0.0")) + ips.count(ip("10.0.0.1")) + ips.count(ip("10.0.0.15")), 0u);
    EXPECT_EQ(open(range).leases()->size(), static_cast<size_t>(n));
}

}  // namespace
}  // namespace skiff::ipam
