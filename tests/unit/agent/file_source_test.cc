// The file source (userspace/agent/file_source.cc): a kubectl List on disk,
// re-read when it changes.
#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "agent/source.h"

namespace skiff::agent {
namespace {

std::string node_list(const char* name, const char* addr, const char* cidr) {
    return std::string(R"({"kind": "NodeList", "items": [{"metadata": {"name": ")") + name +
           R"("}, "spec": {"podCIDR": ")" + cidr +
           R"("}, "status": {"addresses": [{"type": "InternalIP", "address": ")" + addr + R"("}]}}]})";
}

class FileSourceTest : public ::testing::Test {
protected:
    std::string tmp, path;
    int seq = 0;

    void SetUp() override {
        char tmpl[] = "/tmp/skiff-filesource-unit-XXXXXX";
        char* p = ::mkdtemp(tmpl);
        ASSERT_NE(p, nullptr);
        tmp = p;
        path = tmp + "/cluster.json";
    }
    void TearDown() override {
        std::error_code ec;
        if (!tmp.empty()) std::filesystem::remove_all(tmp, ec);
    }

    // What a careful writer (kubectl get ... > tmp && mv tmp file) does.
    void replace_atomically(const std::string& content) {
        std::string t = tmp + "/.cluster.json.tmp" + std::to_string(seq++);
        {
            std::ofstream f(t, std::ios::binary | std::ios::trunc);
            f << content;
        }
        ASSERT_EQ(std::rename(t.c_str(), path.c_str()), 0);
    }
    void write_in_place(const std::string& content) {
        std::ofstream f(path, std::ios::binary | std::ios::trunc);
        f << content;
    }

    // Polls and expects a snapshot.
    ClusterSpec expect_snapshot(Source& s) {
        auto r = s.poll();
        if (!r.ok()) {
            ADD_FAILURE() << "poll failed: " << r.error().message;
            return {};
        }
        if (!r->has_value()) {
            ADD_FAILURE() << "poll returned no snapshot";
            return {};
        }
        return **r;
    }
    void expect_unchanged(Source& s) {
        auto r = s.poll();
        ASSERT_TRUE(r.ok()) << r.error().message;
        EXPECT_FALSE(r->has_value()) << "unexpected snapshot";
    }
};

TEST_F(FileSourceTest, FirstPollReturnsSnapshotThenNothing) {
    replace_atomically(node_list("node-a", "192.168.50.11", "10.244.1.0/24"));
    auto s = make_file_source(path);
    EXPECT_NE(s->describe().find(path), std::string::npos) << s->describe();
    ClusterSpec c = expect_snapshot(*s);
    ASSERT_EQ(c.nodes.size(), 1u);
    EXPECT_EQ(c.nodes[0].name, "node-a");
    EXPECT_EQ(c.nodes[0].pod_cidrs, std::vector<std::string>{"10.244.1.0/24"});
    expect_unchanged(*s);
    expect_unchanged(*s);
}

TEST_F(FileSourceTest, AtomicReplaceGivesANewSnapshot) {
    replace_atomically(node_list("node-a", "192.168.50.11", "10.244.1.0/24"));
    auto s = make_file_source(path);
    expect_snapshot(*s);
    expect_unchanged(*s);
    replace_atomically(node_list("node-a", "192.168.50.11", "10.244.7.0/24"));
    ClusterSpec c = expect_snapshot(*s);
    ASSERT_EQ(c.nodes.size(), 1u);
    EXPECT_EQ(c.nodes[0].pod_cidrs, std::vector<std::string>{"10.244.7.0/24"});
    expect_unchanged(*s);
}

TEST_F(FileSourceTest, InPlaceRewriteGivesANewSnapshot) {
    write_in_place(node_list("node-a", "192.168.50.11", "10.244.1.0/24"));
    auto s = make_file_source(path);
    expect_snapshot(*s);
    // Same length, same inode: only the modification time tells. Step past
    // coarse file-system timestamp granularity.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    write_in_place(node_list("node-a", "192.168.50.11", "10.244.2.0/24"));
    ClusterSpec c = expect_snapshot(*s);
    ASSERT_EQ(c.nodes.size(), 1u);
    EXPECT_EQ(c.nodes[0].pod_cidrs, std::vector<std::string>{"10.244.2.0/24"});
}

TEST_F(FileSourceTest, MalformedContentIsAnErrorUntilFixed) {
    replace_atomically(node_list("node-a", "192.168.50.11", "10.244.1.0/24"));
    auto s = make_file_source(path);
    expect_snapshot(*s);

    replace_atomically("{\"kind\": \"NodeList\", \"items\": [");  // a half-written file
    auto r = s->poll();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, EINVAL);
    EXPECT_NE(r.error().message.find(path), std::string::npos) << r.error().message;
    // Still broken on the next poll: the error is not forgotten as "unchanged".
    r = s->poll();
    EXPECT_FALSE(r.ok());

    replace_atomically(R"({"kind": "NodeList"})");  // valid JSON, not a List
    r = s->poll();
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("items"), std::string::npos) << r.error().message;

    replace_atomically(node_list("node-b", "192.168.50.12", "10.244.2.0/24"));
    ClusterSpec c = expect_snapshot(*s);
    ASSERT_EQ(c.nodes.size(), 1u);
    EXPECT_EQ(c.nodes[0].name, "node-b");
    expect_unchanged(*s);
}

TEST_F(FileSourceTest, MalformedFirstContentThenFixed) {
    replace_atomically("not json at all");
    auto s = make_file_source(path);
    EXPECT_FALSE(s->poll().ok());
    replace_atomically(node_list("node-a", "192.168.50.11", "10.244.1.0/24"));
    ClusterSpec c = expect_snapshot(*s);
    EXPECT_EQ(c.nodes.size(), 1u);
}

TEST_F(FileSourceTest, MissingFileIsAnError) {
    auto s = make_file_source(path);
    auto r = s->poll();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ENOENT);
    EXPECT_NE(r.error().message.find(path), std::string::npos) << r.error().message;

    replace_atomically(node_list("node-a", "192.168.50.11", "10.244.1.0/24"));
    expect_snapshot(*s);

    // Removed after a good read: an error again, and the same content coming
    // back is a fresh snapshot.
    ASSERT_EQ(std::remove(path.c_str()), 0);
    r = s->poll();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ENOENT);
    replace_atomically(node_list("node-a", "192.168.50.11", "10.244.1.0/24"));
    expect_snapshot(*s);
}

TEST_F(FileSourceTest, DirectoryIsAnError) {
    std::filesystem::create_directory(path);
    auto s = make_file_source(path);
    EXPECT_FALSE(s->poll().ok());
}

// Regression (fixed): same root cause as KubeListTest.NonStringKindOrAddressTypeDoesNotThrow:
// a source file with a non-string "kind" makes poll() throw
// nlohmann::json::type_error instead of returning an error, so the agent
// (which calls poll() from Agent::tick() without a try) terminates instead of
// keeping its last good state.
TEST_F(FileSourceTest, NonStringKindIsAnErrorNotAnException) {
    replace_atomically(node_list("node-a", "192.168.50.11", "10.244.1.0/24"));
    auto s = make_file_source(path);
    expect_snapshot(*s);
    replace_atomically(R"({"kind": "List", "items": [{"kind": 42}]})");
    try {
        auto r = s->poll();
        (void)r;  // an error, or a snapshot without the bad item: either is fine
    } catch (const std::exception& e) {
        ADD_FAILURE() << "poll() threw: " << e.what();
    }
}

}  // namespace
}  // namespace skiff::agent
