// DEL takes the host veth out of service at once and deletes it in
// Deps::background (off DEL's critical path); everything else DEL removes
// is gone when it returns. ADD, its rollback and GC still delete at once.
#include <functional>

#include <gtest/gtest.h>

#include "cni/plugin.h"
#include "test_support.h"

namespace skiff::cni {
namespace {

using nlohmann::json;
using namespace skiff_test;

class CniDelTest : public PluginFixture {
protected:
    const std::string veth = host_veth_name("skiffnet", "ctr1", "eth0");
    std::vector<std::function<void()>> jobs;  // started, not run yet
    // What had been released when DEL started its job.
    size_t leases_at_spawn = 99, states_at_spawn = 99, endpoints_at_spawn = 99;
    bool background_fails = false;

    void SetUp() override {
        PluginFixture::SetUp();
        deps.background = [this](const std::function<void()>& job) -> Status {
            if (background_fails) return Error{EAGAIN, "fake: cannot fork"};
            leases_at_spawn = alloc().leases()->size();
            states_at_spawn = store().list()->size();
            endpoints_at_spawn = dp.endpoints.size();
            jobs.push_back(job);
            return skiff::ok();
        };
    }

    // ctr1/eth0 as a finished ADD leaves it: lease, state, endpoint, veth #10.
    Ipv4 attached() {
        auto a = alloc().allocate({"ctr1", "eth0"});
        EXPECT_TRUE(a.ok());
        EXPECT_TRUE(store().save({"ctr1", "eth0", "/x", veth, a->str(), false, "", "", "", "ready"}).ok());
        pn.add_link(veth, host_veth_alias("skiffnet", "ctr1", "eth0"), 10);
        dp.endpoints[*a] = endpoint_info(10);
        return *a;
    }

    void run_jobs() {
        auto js = std::move(jobs);
        jobs.clear();
        for (auto& j : js) j();
    }
};

TEST_F(CniDelTest, VethGoesDownNowAndIsDeletedInTheBackground) {
    attached();
    expect_success(run("DEL", conf()));
    EXPECT_TRUE(alloc().leases()->empty());
    EXPECT_TRUE(store().list()->empty());
    EXPECT_TRUE(dp.endpoints.empty());
    ASSERT_EQ(jobs.size(), 1u);
    // Pending: still there, but down (no routes, no neighbour, no carrier).
    EXPECT_EQ(pn.links.count(veth), 1u);
    EXPECT_EQ(pn.down, std::set<int>{10});
    // The job starts last: nothing else (no lock, no state) is left to it.
    EXPECT_EQ(leases_at_spawn, 0u);
    EXPECT_EQ(states_at_spawn, 0u);
    EXPECT_EQ(endpoints_at_spawn, 0u);
    run_jobs();
    EXPECT_TRUE(pn.links.empty());
}

TEST_F(CniDelTest, DelAgainWhilePendingSucceeds) {
    attached();
    expect_success(run("DEL", conf()));
    expect_success(run("DEL", conf()));
    run_jobs();
    EXPECT_TRUE(pn.links.empty());
    expect_success(run("DEL", conf()));
    EXPECT_TRUE(jobs.empty()) << "nothing left to delete";
}

TEST_F(CniDelTest, VethAlreadyGoneStartsNoJob) {
    attached();
    pn.links.clear();  // the runtime deleted the pod's netns first
    expect_success(run("DEL", conf()));
    EXPECT_TRUE(jobs.empty());
    EXPECT_TRUE(alloc().leases()->empty());
    EXPECT_TRUE(dp.endpoints.empty());
}

TEST_F(CniDelTest, NoBackgroundProcessMeansDeleteNow) {
    attached();
    background_fails = true;
    expect_success(run("DEL", conf()));
    EXPECT_TRUE(pn.links.empty());
    EXPECT_TRUE(alloc().leases()->empty());
}

TEST_F(CniDelTest, SetDownFailureMeansDeleteNow) {
    attached();
    pn.fail_set_down = true;
    expect_success(run("DEL", conf()));
    EXPECT_TRUE(jobs.empty());
    EXPECT_TRUE(pn.links.empty());
}

TEST_F(CniDelTest, BackgroundJobDeletesByIfindexNotByName) {
    attached();
    expect_success(run("DEL", conf()));
    // Before the job runs, a new veth of the same name (a later ADD of the
    // same attachment) replaced the old one.
    pn.add_link(veth, host_veth_alias("skiffnet", "ctr1", "eth0"), 11);
    run_jobs();
    ASSERT_EQ(pn.links.count(veth), 1u);
    EXPECT_EQ(pn.links[veth].ifindex, 11);
}

TEST_F(CniDelTest, GcDeletesNow) {
    attached();
    json c = conf();
    c["cni.dev/valid-attachments"] = json::array();
    expect_success(run("GC", c));
    EXPECT_TRUE(jobs.empty());
    EXPECT_TRUE(pn.links.empty());
}

class CniDelAddTest : public CniDelTest {
protected:
    ScopedNetns ns;
    void SetUp() override {
        CniDelTest::SetUp();
        if (!ns.available()) GTEST_SKIP() << "cannot create a network namespace (user namespaces unavailable)";
    }
    PluginOutput add(const std::string& cid = "ctr1") { return run("ADD", conf(), cid, "eth0", ns.path()); }
    PluginOutput del() { return run("DEL", conf(), "ctr1", "eth0", ns.path()); }
};

TEST_F(CniDelAddTest, AddWhileTheDeleteIsPendingGetsAFreshVeth) {
    ASSERT_EQ(add().exit_code, 0);
    const int old_ifindex = pn.links[veth].ifindex;
    expect_success(del());
    ASSERT_EQ(jobs.size(), 1u);
    // The old pair still holds eth0 in the pod: ADD removes it (it is down).
    auto out = add();
    ASSERT_EQ(out.exit_code, 0) << out.stdout_text;
    ASSERT_EQ(pn.links.count(veth), 1u);
    const int new_ifindex = pn.links[veth].ifindex;
    EXPECT_NE(new_ifindex, old_ifindex);
    run_jobs();  // the old job runs late: the new veth stays
    ASSERT_EQ(pn.links.count(veth), 1u);
    EXPECT_EQ(pn.links[veth].ifindex, new_ifindex);
    ASSERT_EQ(dp.endpoints.size(), 1u);
    EXPECT_EQ(dp.endpoints.begin()->second.ifindex, static_cast<uint32_t>(new_ifindex));
    EXPECT_EQ(alloc().leases()->size(), 1u);
}

TEST_F(CniDelAddTest, AddOfALiveAttachmentStillFails) {
    ASSERT_EQ(add().exit_code, 0);
    const int ifindex = pn.links[veth].ifindex;
    expect_cni_error(add(), kInvalidEnv);  // eth0 exists and its veth is up: not ours to remove
    ASSERT_EQ(pn.links.count(veth), 1u);
    EXPECT_EQ(pn.links[veth].ifindex, ifindex);
    EXPECT_EQ(alloc().leases()->size(), 1u);
}

TEST_F(CniDelAddTest, FailedAddRollsBackNow) {
    dp.fail_attach = true;
    expect_cni_error(add(), kInternal);
    EXPECT_TRUE(jobs.empty());
    EXPECT_TRUE(pn.links.empty());
    EXPECT_TRUE(alloc().leases()->empty());
}

}  // namespace
}  // namespace skiff::cni
