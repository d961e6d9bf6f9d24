// ADD (and CHECK/DEL/GC after it) through run_plugin() with fakes. ADD opens
// CNI_NETNS and refuses the plugin's own namespace, so these tests hold a
// throw-away namespace made by a child in a new user namespace (no
// privileges needed); they skip where the kernel forbids that.
#include <algorithm>

#include <gtest/gtest.h>

#include "cni/plugin.h"
#include "test_support.h"

namespace skiff::cni {
namespace {

using nlohmann::json;
using namespace skiff_test;

class PluginAddTest : public PluginFixture {
protected:
    ScopedNetns ns;
    const std::string veth = host_veth_name("skiffnet", "ctr1", "eth0");

    void SetUp() override {
        PluginFixture::SetUp();
        if (!ns.available()) GTEST_SKIP() << "cannot create a network namespace (user namespaces unavailable)";
    }

    PluginOutput add(const json& c, const std::string& cid = "ctr1", const std::string& ifname = "eth0") {
        return run("ADD", c, cid, ifname, ns.path());
    }
    json add_ok(const json& c, const std::string& cid = "ctr1", const std::string& ifname = "eth0") {
        auto out = add(c, cid, ifname);
        EXPECT_EQ(out.exit_code, 0) << out.stdout_text;
        json j = json::parse(out.stdout_text, nullptr, false);
        EXPECT_TRUE(j.is_object()) << out.stdout_text;
        return j;
    }
    void expect_nothing_left() {
        EXPECT_TRUE(alloc().leases()->empty()) << "lease leaked";
        EXPECT_TRUE(store().list()->empty()) << "attachment state leaked";
        EXPECT_TRUE(dp.endpoints.empty()) << "endpoint entry leaked";
        EXPECT_TRUE(pn.links.empty()) << "veth leaked";
        EXPECT_TRUE(pn.pod_ifnames.empty());
    }
};

TEST_F(PluginAddTest, ResultAndSideEffects) {
    json r = add_ok(conf());
    EXPECT_EQ(r["cniVersion"], "1.1.0");
    ASSERT_EQ(r["interfaces"].size(), 2u) << r.dump();
    EXPECT_EQ(r["interfaces"][0], json({{"name", veth}, {"mac", "02:00:00:00:00:64"}, {"mtu", 1500}}));
    EXPECT_EQ(r["interfaces"][1],
              json({{"name", "eth0"}, {"mac", "0a:00:00:00:00:64"}, {"mtu", 1500}, {"sandbox", ns.path()}}));
    EXPECT_EQ(r["ips"], json::parse(R"([{"address":"10.244.1.2/32","gateway":"169.254.1.1","interface":1}])"));
    EXPECT_EQ(r["routes"], json::parse(R"([{"dst":"0.0.0.0/0","gw":"169.254.1.1"}])"));
    EXPECT_EQ(r["dns"], json::object());

    auto leases = alloc().leases();
    ASSERT_TRUE(leases.ok());
    EXPECT_EQ(*leases, (std::map<Ipv4, ipam::Owner>{{ip("10.244.1.2"), {"ctr1", "eth0"}}}));
    ASSERT_EQ(dp.endpoints.count(ip("10.244.1.2")), 1u);
    const auto& ep = dp.endpoints[ip("10.244.1.2")];
    EXPECT_EQ(ep.ifindex, 100u);
    EXPECT_EQ(ep.flags, static_cast<uint32_t>(SKIFF_EP_F_LOCAL));
    EXPECT_EQ(mac_str({ep.host_mac[0], ep.host_mac[1], ep.host_mac[2], ep.host_mac[3], ep.host_mac[4], ep.host_mac[5]}),
              "02:00:00:00:00:64");
    EXPECT_EQ(mac_str({ep.pod_mac[0], ep.pod_mac[1], ep.pod_mac[2], ep.pod_mac[3], ep.pod_mac[4], ep.pod_mac[5]}),
              "0a:00:00:00:00:64");
    EXPECT_EQ(dp.attached, std::set<int>{100});
    EXPECT_GE(dp.load_calls, 1);

    ASSERT_EQ(pn.links.count(veth), 1u);
    const auto& l = pn.links[veth];
    EXPECT_EQ(l.alias, "skiff:skiffnet/ctr1/eth0");
    EXPECT_EQ(l.ifname, "eth0");
    EXPECT_EQ(l.ip, ip("10.244.1.2"));
    EXPECT_EQ(l.mtu, 1500u);
    EXPECT_EQ(veth.size(), 15u);
    EXPECT_EQ(veth.rfind("skf", 0), 0u);

    auto st = store().load("ctr1", "eth0");
    ASSERT_TRUE(st.ok() && st->has_value());
    EXPECT_EQ((*st)->phase, "ready");
    EXPECT_EQ((*st)->ip, "10.244.1.2");
    EXPECT_EQ((*st)->host_veth, veth);
    EXPECT_EQ((*st)->netns, ns.path());
    EXPECT_FALSE((*st)->ipam_delegated);
}

TEST_F(PluginAddTest, ResultInOlderVersions) {
    const char* versions[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0"};
    int n = 0;
    for (const char* v : versions) {
        SCOPED_TRACE(v);
        const std::string cid = "ctr" + std::to_string(++n);
        json r = add_ok(conf(v), cid);
        const bool v1 = std::string(v) >= "1.0.0";
        EXPECT_EQ(r["cniVersion"], v);
        ASSERT_EQ(r["ips"].size(), 1u);
        EXPECT_EQ(r["ips"][0].contains("version"), !v1);
        if (!v1) {
            EXPECT_EQ(r["ips"][0]["version"], "4");
        }
        EXPECT_EQ(r["ips"][0]["interface"], 1) << "podman/containerd need the interface index";
        EXPECT_EQ(r["interfaces"][1]["sandbox"], ns.path());
        EXPECT_TRUE(r["interfaces"][1].contains("mac"));
        EXPECT_EQ(r["interfaces"][1].contains("mtu"), v1);
        // each container in its own "netns" slot: free the ifname again for the next round
        pn.pod_ifnames.clear();
    }
    EXPECT_EQ(alloc().leases()->size(), 4u);
}

TEST_F(PluginAddTest, MtuDnsAndK8sArgs) {
    json c = conf();
    c["mtu"] = 1400;
    c["dns"] = {{"nameservers", {"10.96.0.10"}}, {"search", {"default.svc.cluster.local"}}};
    extra_env["CNI_ARGS"] = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_UID=u-1";
    json r = add_ok(c);
    EXPECT_EQ(r["interfaces"][1]["mtu"], 1400);
    EXPECT_EQ(r["dns"], c["dns"]);
    EXPECT_EQ(pn.links[veth].mtu, 1400u);
    auto st = store().load("ctr1", "eth0");
    ASSERT_TRUE(st.ok() && st->has_value());
    EXPECT_EQ((*st)->pod_namespace, "default");
    EXPECT_EQ((*st)->pod_name, "web-0");
    EXPECT_EQ((*st)->pod_uid, "u-1");
}

TEST_F(PluginAddTest, PrevResultIsMergedWithShiftedIndices) {
    json c = conf("0.4.0");
    c["prevResult"] = json::parse(R"({"cniVersion":"0.4.0",
        "interfaces":[{"name":"lo0","sandbox":"/x"},{"name":"bond0"}],
        "ips":[{"version":"4","address":"192.168.5.5/24","interface":0}],
        "routes":[{"dst":"192.168.0.0/16"}],
        "dns":{"nameservers":["1.1.1.1"]}})");
    json r = add_ok(c);
    ASSERT_EQ(r["interfaces"].size(), 4u) << r.dump();
    EXPECT_EQ(r["interfaces"][0]["name"], "lo0");
    EXPECT_EQ(r["interfaces"][2]["name"], veth);
    EXPECT_EQ(r["interfaces"][3]["name"], "eth0");
    ASSERT_EQ(r["ips"].size(), 2u);
    EXPECT_EQ(r["ips"][0]["address"], "192.168.5.5/24");
    EXPECT_EQ(r["ips"][0]["interface"], 0);
    EXPECT_EQ(r["ips"][1]["address"], "10.244.1.2/32");
    EXPECT_EQ(r["ips"][1]["interface"], 3);
    EXPECT_EQ(r["routes"].size(), 2u);
    EXPECT_EQ(r["dns"]["nameservers"][0], "1.1.1.1");
}

TEST_F(PluginAddTest, ExistingIfnameIsRejected) {
    add_ok(conf());
    auto j = expect_cni_error(add(conf(), "ctr2", "eth0"), kInvalidEnv);
    EXPECT_NE(j["msg"].get<std::string>().find("eth0"), std::string::npos);
    EXPECT_EQ(alloc().leases()->size(), 1u) << "the refused ADD must not lease";
    // Another interface name in the same namespace is fine and gets another address.
    json r = add_ok(conf(), "ctr1", "net1");
    EXPECT_EQ(r["ips"][0]["address"], "10.244.1.3/32");
}

TEST_F(PluginAddTest, ExhaustedPoolIsTryAgain) {
    auto a = alloc("10.244.1.0/30");
    ASSERT_TRUE(a.allocate({"other", "eth0"}).ok());
    auto out = add(conf("1.1.0", "10.244.1.0/30"));
    expect_cni_error(out, kTryAgain);
    EXPECT_EQ(out.exit_code, kTryAgain);
    EXPECT_EQ(a.leases()->size(), 1u);
    EXPECT_TRUE(pn.links.empty());
    EXPECT_TRUE(dp.endpoints.empty());
}

TEST_F(PluginAddTest, DatapathNotLoadedLeavesNothing) {
    dp.fail_load = true;
    expect_cni_error(add(conf()), kInternal);
    expect_nothing_left();
}

TEST_F(PluginAddTest, SetupFailureRollsBack) {
    pn.fail_setup = true;
    auto out = add(conf());
    expect_cni_error(out, kInternal);
    EXPECT_EQ(out.exit_code, 1);
    expect_nothing_left();
}

TEST_F(PluginAddTest, AttachFailureRollsBack) {
    dp.fail_attach = true;
    expect_cni_error(add(conf()), kInternal);
    expect_nothing_left();
    EXPECT_EQ(std::count(pn.torn_down.begin(), pn.torn_down.end(), veth), 1);
}

TEST_F(PluginAddTest, EndpointFailureRollsBack) {
    dp.fail_upsert = true;
    expect_cni_error(add(conf()), kInternal);
    expect_nothing_left();
}

TEST_F(PluginAddTest, InjectedFaultsRollBack) {
#ifndef SKIFF_TEST_HOOKS
    FAIL() << "skiff_cni was built without the test hooks, so it has no Deps::fault: "
              "configure with -DSKIFF_TEST_HOOKS=ON (./dev.sh test does)";
#else
    for (std::string point : {"after-ipam", "after-veth", "after-attach", "after-endpoint"}) {
        SCOPED_TRACE(point);
        deps.fault = [point](const char* p) { return point == p; };
        expect_cni_error(add(conf()), kInternal);
        expect_nothing_left();
    }
    deps.fault = nullptr;
    add_ok(conf());
    EXPECT_EQ(alloc().leases()->size(), 1u);
#endif
}

TEST_F(PluginAddTest, AddThenDelLeavesNothing) {
    add_ok(conf());
    expect_success(run("DEL", conf()));  // no CNI_NETNS, no prevResult
    expect_nothing_left();
    expect_success(run("DEL", conf()));
    // The address is not reused at once, but the pool has room again.
    json r = add_ok(conf(), "ctr2");
    EXPECT_EQ(r["ips"][0]["address"], "10.244.1.3/32");
}

TEST_F(PluginAddTest, RetriedAddAfterDelGetsFreshState) {
    add_ok(conf());
    expect_success(run("DEL", conf(), "ctr1", "eth0", ns.path()));
    json r = add_ok(conf());
    EXPECT_EQ(r["ips"][0]["address"], "10.244.1.3/32");
    EXPECT_EQ(alloc().leases()->size(), 1u);
    EXPECT_EQ(dp.endpoints.size(), 1u);
}

TEST_F(PluginAddTest, CheckAfterAdd) {
    json r = add_ok(conf("1.0.0"));
    json c = conf("1.0.0");
    c["prevResult"] = r;
    expect_success(run("CHECK", c, "ctr1", "eth0", ns.path()));

    // Each piece CHECK is meant to verify, broken one at a time.
    auto ep = dp.endpoints[ip("10.244.1.2")];
    dp.endpoints.erase(ip("10.244.1.2"));
    expect_cni_error(run("CHECK", c, "ctr1", "eth0", ns.path()), kInternal);
    auto wrong = ep;
    wrong.ifindex = 999;
    dp.endpoints[ip("10.244.1.2")] = wrong;
    expect_cni_error(run("CHECK", c, "ctr1", "eth0", ns.path()), kInternal);
    dp.endpoints[ip("10.244.1.2")] = ep;
    expect_success(run("CHECK", c, "ctr1", "eth0", ns.path()));

    dp.attached.clear();
    expect_cni_error(run("CHECK", c, "ctr1", "eth0", ns.path()), kInternal);
    dp.attached.insert(ep.ifindex);

    pn.pod_ifnames.clear();
    expect_cni_error(run("CHECK", c, "ctr1", "eth0", ns.path()), kInternal);
}

TEST_F(PluginAddTest, GcKeepsValidAttachment) {
    add_ok(conf(), "keep");
    add_ok(conf(), "drop", "net1");
    json c = conf();
    c["cni.dev/valid-attachments"] = {{{"containerID", "keep"}, {"ifname", "eth0"}}};
    expect_success(run("GC", c));
    auto leases = alloc().leases();
    ASSERT_TRUE(leases.ok());
    EXPECT_EQ(*leases, (std::map<Ipv4, ipam::Owner>{{ip("10.244.1.2"), {"keep", "eth0"}}}));
    EXPECT_EQ(dp.endpoints.size(), 1u);
    EXPECT_EQ(dp.endpoints.count(ip("10.244.1.2")), 1u);
    EXPECT_EQ(pn.links.size(), 1u);
    EXPECT_EQ(pn.links.count(host_veth_name("skiffnet", "keep", "eth0")), 1u);
    expect_success(run("GC", conf()));
    expect_nothing_left();
}

TEST_F(PluginAddTest, DelegatedIpam) {
    json c = conf();
    c.erase("podCIDR");
    c["ipam"] = {{"type", "host-local"}, {"subnet", "10.250.0.0/24"}};
    delegate_add_result = json::parse(R"({"cniVersion":"1.0.0",
        "ips":[{"address":"fd00::9/64"},{"address":"10.250.0.9/24","gateway":"10.250.0.1"}]})");
    json r = add_ok(c);
    EXPECT_EQ(r["ips"][0]["address"], "10.250.0.9/32");
    EXPECT_EQ(dp.endpoints.count(ip("10.250.0.9")), 1u);
    EXPECT_EQ(delegate_calls, std::vector<std::string>{"host-local ADD"});
    auto st = store().load("ctr1", "eth0");
    ASSERT_TRUE(st.ok() && st->has_value());
    EXPECT_TRUE((*st)->ipam_delegated);

    expect_success(run("DEL", c));
    EXPECT_EQ(delegate_calls.back(), "host-local DEL");
    EXPECT_TRUE(dp.endpoints.empty());
    EXPECT_TRUE(pn.links.empty());
}

TEST_F(PluginAddTest, DelegatedIpamWithoutIpv4IsGivenBack) {
    json c = conf();
    c["ipam"] = {{"type", "host-local"}};
    delegate_add_result = json::parse(R"({"cniVersion":"1.0.0","ips":[{"address":"fd00::9/64"}]})");
    expect_cni_error(add(c), kInternal);
    EXPECT_EQ(delegate_calls, (std::vector<std::string>{"host-local ADD", "host-local DEL"}));
    EXPECT_TRUE(pn.links.empty());
    EXPECT_TRUE(dp.endpoints.empty());
}

TEST_F(PluginAddTest, DelegatedIpamErrorIsPassedThrough) {
    json c = conf();
    c["ipam"] = {{"type", "host-local"}};
    delegate_fails = true;
    expect_cni_error(add(c), kInternal);
    EXPECT_TRUE(pn.links.empty());
}

}  // namespace
}  // namespace skiff::cni
