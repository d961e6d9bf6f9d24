// Per-attachment state on disk (DESIGN.md section 2, last item).
#include "cni/state.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "test_support.h"

namespace skiff::cni {
namespace {

using skiff_test::TempDir;

// The network's directory: the one its IPAM leases are kept in.
std::string network_dir(const StateStore& s) { return std::filesystem::path(s.ipam_dir()).parent_path().string(); }

AttachmentState make(const std::string& cid, const std::string& ifname, const std::string& ip) {
    return {cid, ifname, "/var/run/netns/" + cid, "skf" + cid, ip, false, "ns", "pod-" + cid, "uid-" + cid, "ready"};
}

class StateStoreTest : public ::testing::Test {
protected:
    TempDir tmp;
    StateStore store{tmp.path(), "skiffnet"};
    std::string attach_dir() const { return tmp.path() + "/networks/skiffnet/attachments"; }
};

TEST_F(StateStoreTest, Layout) {
    EXPECT_EQ(network_dir(store), tmp.path() + "/networks/skiffnet");
    EXPECT_EQ(store.ipam_dir(), tmp.path() + "/networks/skiffnet/ipam");
}

TEST_F(StateStoreTest, SaveLoadRemove) {
    auto missing = store.load("c1", "eth0");
    ASSERT_TRUE(missing.ok());
    EXPECT_FALSE(missing->has_value());

    auto a = make("c1", "eth0", "10.244.1.2");
    a.ipam_delegated = true;
    a.phase = "adding";
    ASSERT_TRUE(store.save(a).ok());
    auto got = store.load("c1", "eth0");
    ASSERT_TRUE(got.ok() && got->has_value());
    const auto& g = **got;
    EXPECT_EQ(g.container_id, "c1");
    EXPECT_EQ(g.ifname, "eth0");
    EXPECT_EQ(g.netns, "/var/run/netns/c1");
    EXPECT_EQ(g.host_veth, "skfc1");
    EXPECT_EQ(g.ip, "10.244.1.2");
    EXPECT_TRUE(g.ipam_delegated);
    EXPECT_EQ(g.pod_namespace, "ns");
    EXPECT_EQ(g.pod_name, "pod-c1");
    EXPECT_EQ(g.pod_uid, "uid-c1");
    EXPECT_EQ(g.phase, "adding");

    a.phase = "ready";  // overwrite in place
    ASSERT_TRUE(store.save(a).ok());
    EXPECT_EQ((*store.load("c1", "eth0"))->phase, "ready");

    ASSERT_TRUE(store.remove("c1", "eth0").ok());
    EXPECT_FALSE(store.load("c1", "eth0")->has_value());
    EXPECT_TRUE(store.remove("c1", "eth0").ok()) << "removing twice is fine";
}

TEST_F(StateStoreTest, ListSkipsJunk) {
    auto empty = store.list();
    ASSERT_TRUE(empty.ok()) << "a missing directory is an empty list";
    EXPECT_TRUE(empty->empty());

    ASSERT_TRUE(store.save(make("c1", "eth0", "10.244.1.2")).ok());
    ASSERT_TRUE(store.save(make("c2", "net1", "10.244.1.3")).ok());
    std::ofstream(attach_dir() + "/c3:eth0.json.tmp.1.2") << "{}";  // killed writer
    std::ofstream(attach_dir() + "/broken:eth0.json") << "{not json";
    std::ofstream(attach_dir() + "/empty:eth0.json") << R"({"ip":"10.0.0.1"})";
    std::ofstream(attach_dir() + "/notes.txt") << "hello";
    auto l = store.list();
    ASSERT_TRUE(l.ok());
    std::set<std::pair<std::string, std::string>> got;
    for (const auto& a : *l) got.insert({a.container_id, a.ifname});
    EXPECT_EQ(got, (std::set<std::pair<std::string, std::string>>{{"c1", "eth0"}, {"c2", "net1"}}));

    auto broken = store.load("broken", "eth0");
    ASSERT_TRUE(broken.ok());
    EXPECT_FALSE(broken->has_value());
}

TEST_F(StateStoreTest, NoTemporaryFilesLeft) {
    ASSERT_TRUE(store.save(make("c1", "eth0", "10.244.1.2")).ok());
    for (const auto& e : std::filesystem::directory_iterator(attach_dir()))
        EXPECT_EQ(e.path().filename().string(), "c1:eth0.json");
}

// Regression: state files were named "<cid>_<ifname>.json", and '_' is legal
// in both container IDs and interface names, so ("a_b","c") and ("a","b_c")
// shared one file. The separator is now ':', valid in neither.
TEST_F(StateStoreTest, DistinctAttachmentsDoNotShareAFile) {
    ASSERT_TRUE(store.save(make("a_b", "c", "10.244.1.2")).ok());
    ASSERT_TRUE(store.save(make("a", "b_c", "10.244.1.3")).ok());
    auto first = store.load("a_b", "c");
    ASSERT_TRUE(first.ok() && first->has_value());
    EXPECT_EQ((*first)->container_id, "a_b");
    EXPECT_EQ((*first)->ip, "10.244.1.2");
    EXPECT_EQ(store.list()->size(), 2u);
    ASSERT_TRUE(store.remove("a", "b_c").ok());
    EXPECT_TRUE(store.load("a_b", "c")->has_value()) << "removing one attachment dropped another's state";
}

}  // namespace
}  // namespace skiff::cni
