// run_plugin() with fake datapath and pod network: VERSION, error output,
// version gating, DEL, GC, STATUS and the CHECK paths that need no netns
// (DESIGN.md section 6, items 1, 2, 8 and 10).
#include "cni/plugin.h"

#include <fstream>

#include <gtest/gtest.h>

#include "cni/state.h"
#include "ipam/allocator.h"
#include "test_support.h"

namespace skiff::cni {
namespace {

using nlohmann::json;
using namespace skiff_test;

class PluginTest : public PluginFixture {};

// ---- VERSION ----

TEST_F(PluginTest, VersionWithoutStdin) {
    auto out = run("VERSION", std::string());
    ASSERT_EQ(out.exit_code, 0) << out.stdout_text;
    json j = json::parse(out.stdout_text);
    EXPECT_EQ(j["cniVersion"], "1.1.0");
    EXPECT_EQ(j["supportedVersions"], json({"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}));
    EXPECT_EQ(dp.load_calls, 0);
}

TEST_F(PluginTest, VersionAnswersInTheRequestedVersion) {
    auto out = run("VERSION", std::string(R"({"cniVersion":"0.4.0"})"));
    ASSERT_EQ(out.exit_code, 0);
    json j = json::parse(out.stdout_text);
    EXPECT_EQ(j["cniVersion"], "0.4.0");
    EXPECT_EQ(j["supportedVersions"].size(), 5u);
    // A full config is fine too; an unknown version falls back to ours.
    out = run("VERSION", std::string(R"({"cniVersion":"0.2.0","name":"x"})"));
    ASSERT_EQ(out.exit_code, 0);
    EXPECT_EQ(json::parse(out.stdout_text)["cniVersion"], "1.1.0");
}

TEST_F(PluginTest, VersionWithUndecodableStdin) {
    auto j = expect_cni_error(run("VERSION", std::string("{nope")), kDecodeFailure);
    EXPECT_EQ(j["cniVersion"], "1.1.0");
}

// ---- error output ----

TEST_F(PluginTest, MissingCommandAnswersInConfigVersion) {
    FakeEnv e;
    auto out = run_plugin(e.getenv(), conf("0.4.0").dump(), deps);
    auto j = expect_cni_error(out, kInvalidEnv);
    EXPECT_EQ(j["cniVersion"], "0.4.0");
    EXPECT_EQ(out.exit_code, kInvalidEnv);
}

TEST_F(PluginTest, BadEnvironmentErrors) {
    expect_cni_error(run("ADD", conf(), "ctr1", "eth0", ""), kInvalidEnv);  // no CNI_NETNS
    expect_cni_error(run("ADD", conf(), "ctr/1", "eth0", "/proc/self/ns/net"), kInvalidEnv);
    expect_cni_error(run("DEL", conf(), "ctr1", std::string(16, 'x')), kInvalidEnv);
    expect_cni_error(run("DEL", conf(), "ctr1", ".."), kInvalidEnv);
    expect_cni_error(run("CHECK", conf(), "ctr1", "eth0", "relative/ns"), kInvalidEnv);
    expect_cni_error(run("FROB", conf()), kInvalidEnv);
}

TEST_F(PluginTest, BadConfigErrors) {
    auto j = expect_cni_error(run("DEL", std::string("{\"cniVersion\": ")), kDecodeFailure);
    EXPECT_EQ(j["cniVersion"], "1.1.0");
    expect_cni_error(run("DEL", std::string()), kDecodeFailure);
    expect_cni_error(run("STATUS", conf("0.2.0")), kIncompatibleVersion);
    json bad = conf();
    bad["podCIDR"] = "10.244.1.7/24";
    expect_cni_error(run("DEL", bad), kInvalidConfig);
    bad = conf();
    bad["podCIDR"] = "fd00::/64";
    expect_cni_error(run("GC", bad), kUnsupportedField);
    bad = conf();
    bad["stateDir"] = "/var/lib/skiff/../../etc";
    expect_cni_error(run("DEL", bad), kInvalidConfig);
    EXPECT_EQ(dp.load_calls, 0);
    EXPECT_TRUE(pn.torn_down.empty());
}

// Regression: config-validation errors used to answer "cniVersion":"1.1.0"
// whatever the config said. The CNI spec (Error result) wants "the same
// value as provided by the configuration" when it is readable and supported.
TEST_F(PluginTest, ConfigErrorsAnswerInTheConfigVersion) {
    for (const char* v : {"0.3.1", "0.4.0", "1.0.0"}) {
        SCOPED_TRACE(v);
        json bad = conf(v);
        bad["podCIDR"] = "10.244.1.7/24";
        auto j = expect_cni_error(run("DEL", bad), kInvalidConfig);
        EXPECT_EQ(j["cniVersion"], std::string(v));
        bad = conf(v);
        bad["mtu"] = "big";
        j = expect_cni_error(run("ADD", bad, "ctr1", "eth0", "/proc/self/ns/net"), kInvalidConfig);
        EXPECT_EQ(j["cniVersion"], std::string(v));
    }
}

TEST_F(PluginTest, UnknownCniArgsWithoutIgnoreUnknown) {
    FakeEnv e;
    e.vars = {{"CNI_COMMAND", "DEL"}, {"CNI_CONTAINERID", "c1"}, {"CNI_IFNAME", "eth0"}, {"CNI_ARGS", "FOO=1"}};
    expect_cni_error(run_plugin(e.getenv(), conf().dump(), deps), kUnsupportedField);
    e.vars["CNI_ARGS"] = "IgnoreUnknown=1;FOO=1;K8S_POD_NAME=web";
    auto out = run_plugin(e.getenv(), conf().dump(), deps);
    EXPECT_EQ(out.exit_code, 0) << out.stdout_text;
}

TEST_F(PluginTest, CommandsGatedByVersion) {
    for (const char* v : {"0.3.0", "0.3.1", "0.4.0", "1.0.0"}) {
        SCOPED_TRACE(v);
        auto j = expect_cni_error(run("GC", conf(v)), kIncompatibleVersion);
        EXPECT_EQ(j["cniVersion"], std::string(v));
        j = expect_cni_error(run("STATUS", conf(v)), kIncompatibleVersion);
        EXPECT_EQ(j["cniVersion"], std::string(v));
    }
    for (const char* v : {"0.3.0", "0.3.1"}) {
        json c = conf(v);
        c["prevResult"] = {{"cniVersion", v}, {"ips", json::array()}};
        auto j = expect_cni_error(run("CHECK", c, "ctr1", "eth0", "/proc/self/ns/net"), kIncompatibleVersion);
        EXPECT_EQ(j["cniVersion"], std::string(v));
    }
    EXPECT_EQ(dp.load_calls, 0);
}

// ---- ADD: paths that fail before any netns work ----

TEST_F(PluginTest, AddRejectsMissingNetns) {
    auto j = expect_cni_error(run("ADD", conf(), "ctr1", "eth0", tmp.sub("no-such-netns")), kUnknownContainer);
    EXPECT_EQ(j["cniVersion"], "1.1.0");
    EXPECT_TRUE(alloc().leases()->empty());
}

TEST_F(PluginTest, AddRejectsOwnNetns) {
    expect_cni_error(run("ADD", conf("0.3.1"), "ctr1", "eth0", "/proc/self/ns/net"), kInvalidEnv);
    expect_cni_error(run("ADD", conf(), "ctr1", "eth0", "/proc/thread-self/ns/net"), kInvalidEnv);
    EXPECT_TRUE(alloc().leases()->empty());
    EXPECT_TRUE(pn.links.empty());
    EXPECT_TRUE(dp.endpoints.empty());
}

TEST_F(PluginTest, AddRejectsFileThatIsNoNetns) {
    std::string f = tmp.sub("not-a-netns");
    std::ofstream(f) << "x";
    expect_cni_error(run("ADD", conf(), "ctr1", "eth0", f), kInvalidEnv);
    EXPECT_TRUE(alloc().leases()->empty());
}

TEST_F(PluginTest, AddRejectsMalformedPrevResult) {
    json c = conf();
    c["prevResult"] = {{"ips", "10.0.0.1"}};
    expect_cni_error(run("ADD", c, "ctr1", "eth0", "/proc/self/ns/net"), kDecodeFailure);
}

// ---- CHECK without a netns ----

TEST_F(PluginTest, CheckNeedsPrevResult) {
    auto j = expect_cni_error(run("CHECK", conf("1.0.0"), "ctr1", "eth0", "/proc/self/ns/net"), kInvalidConfig);
    EXPECT_EQ(j["cniVersion"], "1.0.0");
}

TEST_F(PluginTest, CheckFailsWithoutMatchingAttachment) {
    json c = conf("0.4.0");
    c["prevResult"] = {{"cniVersion", "0.4.0"}, {"ips", {{{"version", "4"}, {"address", "10.244.1.2/32"}}}}};
    expect_cni_error(run("CHECK", c, "ctr1", "eth0", "/proc/self/ns/net"), kInternal);  // no state at all

    AttachmentState st{"ctr1", "eth0", "/proc/self/ns/net", "skfx", "10.244.1.2", false, "", "", "", "adding"};
    ASSERT_TRUE(store().save(st).ok());
    expect_cni_error(run("CHECK", c, "ctr1", "eth0", "/proc/self/ns/net"), kInternal);  // ADD unfinished

    st.phase = "ready";
    st.ip = "10.244.1.9";
    ASSERT_TRUE(store().save(st).ok());
    expect_cni_error(run("CHECK", c, "ctr1", "eth0", "/proc/self/ns/net"), kInternal);  // IP not in prevResult
}

// ---- DEL ----

TEST_F(PluginTest, DelWithoutPriorAddSucceedsAndIsIdempotent) {
    for (const char* v : {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}) {
        SCOPED_TRACE(v);
        expect_success(run("DEL", conf(v)));
        expect_success(run("DEL", conf(v), "ctr1", "eth0", tmp.sub("gone-netns")));
        json c = conf(v);
        c["prevResult"] = {{"cniVersion", v}, {"ips", {{{"address", "10.244.1.77/32"}}}}};
        expect_success(run("DEL", c));
    }
    EXPECT_TRUE(dp.endpoints.empty());
    EXPECT_TRUE(alloc().leases()->empty());
}

TEST_F(PluginTest, DelReleasesLeaseEndpointAndVeth) {
    auto a = alloc();
    auto mine = a.allocate({"ctr1", "eth0"});
    auto other = a.allocate({"ctr2", "eth0"});
    ASSERT_TRUE(mine.ok() && other.ok());
    const std::string veth = host_veth_name("skiffnet", "ctr1", "eth0");
    const std::string veth2 = host_veth_name("skiffnet", "ctr2", "eth0");
    pn.add_link(veth, host_veth_alias("skiffnet", "ctr1", "eth0"), 10);
    pn.add_link(veth2, host_veth_alias("skiffnet", "ctr2", "eth0"), 11);
    dp.endpoints[*mine] = endpoint_info(10);
    dp.endpoints[*other] = endpoint_info(11);

    expect_success(run("DEL", conf()));
    auto leases = a.leases();
    ASSERT_TRUE(leases.ok());
    EXPECT_EQ(leases->size(), 1u);
    EXPECT_EQ(leases->count(*other), 1u);
    EXPECT_EQ(dp.endpoints.count(*mine), 0u);
    EXPECT_EQ(dp.endpoints.count(*other), 1u);
    EXPECT_EQ(pn.links.count(veth), 0u);
    EXPECT_EQ(pn.links.count(veth2), 1u);
    EXPECT_EQ(dp.pin_paths.back(), "/sys/fs/bpf/skiff-unit");

    // Again: nothing left to do, still success, nothing else touched.
    expect_success(run("DEL", conf()));
    EXPECT_EQ(a.leases()->size(), 1u);
    EXPECT_EQ(dp.endpoints.size(), 1u);
    EXPECT_EQ(pn.links.size(), 1u);
}

TEST_F(PluginTest, DelUsesStateAndOnlyRemovesItsOwnEndpoint) {
    // ctr1's veth is gone and its endpoint points at a dead ifindex: stale, remove.
    ASSERT_TRUE(store().save({"ctr1", "eth0", "/x", "skfa", "10.244.1.7", false, "", "", "", "ready"}).ok());
    dp.endpoints[ip("10.244.1.7")] = endpoint_info(55);
    // ctr3's recorded IP now belongs to a live pod behind another veth: keep.
    ASSERT_TRUE(store().save({"ctr3", "eth0", "/x", "skfb", "10.244.1.8", false, "", "", "", "ready"}).ok());
    pn.add_link("skfother", host_veth_alias("skiffnet", "ctr4", "eth0"), 11);
    dp.endpoints[ip("10.244.1.8")] = endpoint_info(11);

    expect_success(run("DEL", conf(), "ctr1", "eth0"));
    EXPECT_EQ(dp.endpoints.count(ip("10.244.1.7")), 0u);
    EXPECT_FALSE(store().load("ctr1", "eth0")->has_value()) << "state removed";

    expect_success(run("DEL", conf(), "ctr3", "eth0"));
    EXPECT_EQ(dp.endpoints.count(ip("10.244.1.8")), 1u) << "another pod's endpoint must survive";
    EXPECT_FALSE(store().load("ctr3", "eth0")->has_value());
    EXPECT_EQ(pn.links.count("skfother"), 1u);
}

TEST_F(PluginTest, DelUsesPrevResultAsHint) {
    dp.endpoints[ip("10.244.1.40")] = endpoint_info(77);  // device gone
    json c = conf("0.3.1");
    c["prevResult"] = {{"cniVersion", "0.3.1"},
                       {"ips", {{{"version", "4"}, {"address", "10.244.1.40/32"}, {"interface", 1}}}}};
    expect_success(run("DEL", c));
    EXPECT_TRUE(dp.endpoints.empty());
}

TEST_F(PluginTest, DelWithDelegatedIpamCallsThePlugin) {
    json c = conf();
    c.erase("podCIDR");
    c["ipam"] = {{"type", "host-local"}, {"subnet", "10.244.1.0/24"}};
    expect_success(run("DEL", c));
    EXPECT_EQ(delegate_calls, std::vector<std::string>{"host-local DEL"});
}

// ---- GC ----

TEST_F(PluginTest, GcRemovesEverythingNotValid) {
    auto a = alloc();
    auto keep = a.allocate({"keep", "eth0"});
    auto gone = a.allocate({"gone", "eth0"});
    auto orphan = a.allocate({"orphan", "net1"});  // lease without state
    ASSERT_TRUE(keep.ok() && gone.ok() && orphan.ok());
    const auto vk = host_veth_name("skiffnet", "keep", "eth0");
    const auto vg = host_veth_name("skiffnet", "gone", "eth0");
    ASSERT_TRUE(store().save({"keep", "eth0", "/x", vk, keep->str(), false, "", "", "", "ready"}).ok());
    ASSERT_TRUE(store().save({"gone", "eth0", "/x", vg, gone->str(), false, "", "", "", "ready"}).ok());
    pn.add_link(vk, host_veth_alias("skiffnet", "keep", "eth0"), 10);
    pn.add_link(vg, host_veth_alias("skiffnet", "gone", "eth0"), 11);
    pn.add_link("skfkilled", host_veth_alias("skiffnet", "killed", "eth0"), 12);  // ADD killed before state
    pn.add_link("skfothernet", host_veth_alias("othernet", "gone", "eth0"), 13);  // another network's
    pn.add_link("uplink0", "", 2);
    dp.endpoints[*keep] = endpoint_info(10);
    dp.endpoints[*gone] = endpoint_info(11);
    dp.endpoints[ip("10.244.1.200")] = endpoint_info(14);  // no lease
    dp.endpoints[ip("10.244.9.5")] = endpoint_info(15);    // outside our PodCIDR

    json c = conf();
    c["cni.dev/valid-attachments"] = {{{"containerID", "keep"}, {"ifname", "eth0"}},
                                      {{"containerID", "elsewhere"}, {"ifname", "eth0"}}};
    expect_success(run("GC", c));

    auto leases = a.leases();
    ASSERT_TRUE(leases.ok());
    EXPECT_EQ(*leases, (std::map<Ipv4, ipam::Owner>{{*keep, {"keep", "eth0"}}}));
    auto states = store().list();
    ASSERT_TRUE(states.ok());
    ASSERT_EQ(states->size(), 1u);
    EXPECT_EQ((*states)[0].container_id, "keep");
    EXPECT_EQ(pn.links.count(vk), 1u);
    EXPECT_EQ(pn.links.count(vg), 0u);
    EXPECT_EQ(pn.links.count("skfkilled"), 0u);
    EXPECT_EQ(pn.links.count("skfothernet"), 1u);
    EXPECT_EQ(pn.links.count("uplink0"), 1u);
    std::set<Ipv4> eps;
    for (const auto& [k, v] : dp.endpoints) eps.insert(k);
    EXPECT_EQ(eps, (std::set<Ipv4>{*keep, ip("10.244.9.5")}));

    // A second GC with the same list changes nothing.
    expect_success(run("GC", c));
    EXPECT_EQ(a.leases()->size(), 1u);
    EXPECT_EQ(dp.endpoints.size(), 2u);
}

TEST_F(PluginTest, GcWithoutValidListRemovesAll) {
    auto a = alloc();
    ASSERT_TRUE(a.allocate({"c1", "eth0"}).ok());
    ASSERT_TRUE(store().save({"c1", "eth0", "/x", "skfc1", "10.244.1.2", false, "", "", "", "ready"}).ok());
    expect_success(run("GC", conf()));
    EXPECT_TRUE(a.leases()->empty());
    EXPECT_TRUE(store().list()->empty());
    expect_success(run("GC", conf()));  // and on an empty node
}

TEST_F(PluginTest, GcWithDelegatedIpamContinuesPastPluginErrors) {
    json c = conf();
    c["ipam"] = {{"type", "host-local"}};
    delegate_fails = true;
    expect_success(run("GC", c));
    EXPECT_EQ(delegate_calls, std::vector<std::string>{"host-local GC"});
}

// ---- STATUS ----

TEST_F(PluginTest, StatusReady) {
    expect_success(run("STATUS", conf()));
    EXPECT_EQ(dp.load_calls, 1);
    EXPECT_EQ(dp.pin_paths, std::vector<std::string>{"/sys/fs/bpf/skiff-unit"});
}

TEST_F(PluginTest, StatusNotReadyWhenDatapathMissing) {
    dp.fail_load = true;
    auto j = expect_cni_error(run("STATUS", conf()), kNotAvailable);
    EXPECT_EQ(j["cniVersion"], "1.1.0");
}

TEST_F(PluginTest, StatusNotReadyWhenPoolExhausted) {
    const char* range = "10.244.1.0/29";  // 5 addresses
    auto a = alloc(range);
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(a.allocate({"c" + std::to_string(i), "eth0"}).ok());
    expect_success(run("STATUS", conf("1.1.0", range)));
    ASSERT_TRUE(a.allocate({"c4", "eth0"}).ok());
    expect_cni_error(run("STATUS", conf("1.1.0", range)), kNotAvailable);
    ASSERT_TRUE(a.release({"c0", "eth0"}).ok());
    expect_success(run("STATUS", conf("1.1.0", range)));
}

TEST_F(PluginTest, StatusSlash30) {
    auto a = alloc("10.244.1.0/30");
    ASSERT_TRUE(a.allocate({"c1", "eth0"}).ok());
    expect_cni_error(run("STATUS", conf("1.1.0", "10.244.1.0/30")), kNotAvailable);
}

TEST_F(PluginTest, StatusWithDelegatedIpamChecksOnlyTheDatapath) {
    json c = conf();
    c.erase("podCIDR");
    c["ipam"] = {{"type", "host-local"}};
    expect_success(run("STATUS", c));
    dp.fail_load = true;
    expect_cni_error(run("STATUS", c), kNotAvailable);
}

}  // namespace
}  // namespace skiff::cni
