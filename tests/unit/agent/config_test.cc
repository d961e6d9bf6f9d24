// skiff-agent's configuration file (userspace/agent/config.cc).
#include "agent/config.h"

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace skiff::agent {
namespace {

using nlohmann::json;

// A complete, valid configuration; tests change one thing at a time.
json base() {
    return json{{"nodeName", "node-a"},
                {"nodeIP", "192.168.50.10"},
                {"uplink", "eth0"},
                {"clusterCIDR", "10.244.0.0/16"},
                {"source", json::object({{"file", "/etc/skiff/cluster.json"}})}};
}

Result<AgentConfig> parse(const json& j) { return parse_agent_config(j.dump()); }

// Expect a rejection whose message names `key`.
void expect_rejected(const json& j, const std::string& key) {
    auto c = parse(j);
    ASSERT_FALSE(c.ok()) << "accepted: " << j.dump();
    EXPECT_EQ(c.error().code, EINVAL) << j.dump();
    EXPECT_NE(c.error().message.find(key), std::string::npos)
        << "message '" << c.error().message << "' does not name " << key << " for " << j.dump();
}

TEST(AgentConfigTest, MinimalConfigGetsDefaults) {
    auto c = parse(base());
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->node_name, "node-a");
    EXPECT_EQ(c->node_ip, *Ipv4::parse("192.168.50.10"));
    EXPECT_EQ(c->uplink, "eth0");
    EXPECT_EQ(c->cluster_cidr, *Ipv4Prefix::parse("10.244.0.0/16"));
    EXPECT_EQ(c->pin_path, "/sys/fs/bpf/skiff");
    EXPECT_EQ(c->state_dir, "/var/lib/skiff");
    EXPECT_EQ(c->cni_conf_dir, "/etc/cni/net.d");
    EXPECT_EQ(c->listen, "127.0.0.1:9964");
    EXPECT_EQ(c->mtu, 0u);  // derived from the uplink at start (node_datapath)
    EXPECT_EQ(c->resync_seconds, 30u);
    ASSERT_TRUE(c->file_source.has_value());
    EXPECT_EQ(*c->file_source, "/etc/skiff/cluster.json");
    EXPECT_FALSE(c->etcd_source.has_value());
}

TEST(AgentConfigTest, AllOptionalKeys) {
    json j = base();
    j["pinPath"] = "/run/skiff/bpf";
    j["stateDir"] = "/run/skiff/state";
    j["cniConfDir"] = "/run/cni";
    j["listen"] = "0.0.0.0:9000";
    j["mtu"] = 9000;
    j["resyncSeconds"] = 5;
    auto c = parse(j);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->pin_path, "/run/skiff/bpf");
    EXPECT_EQ(c->state_dir, "/run/skiff/state");
    EXPECT_EQ(c->cni_conf_dir, "/run/cni");
    EXPECT_EQ(c->listen, "0.0.0.0:9000");
    EXPECT_EQ(c->mtu, 9000u);
    EXPECT_EQ(c->resync_seconds, 5u);
}

TEST(AgentConfigTest, NullOptionalKeysKeepDefaults) {
    json j = base();
    j["pinPath"] = nullptr;
    j["listen"] = nullptr;
    auto c = parse(j);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->pin_path, "/sys/fs/bpf/skiff");
    EXPECT_EQ(c->listen, "127.0.0.1:9964");
}

TEST(AgentConfigTest, MaxObjects) {
    auto c = parse(base());
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->max_objects, 50000u);
    json j = base();
    j["maxObjects"] = 200000;
    c = parse(j);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->max_objects, 200000u);
    for (json bad : {json(0), json(-1), json(10000001), json("5"), json(1.5)}) {
        j["maxObjects"] = bad;
        expect_rejected(j, "maxObjects");
    }
}

TEST(AgentConfigTest, NotAJsonObject) {
    for (const char* text : {"", "{", "not json", "[]", "42", "\"x\"", "null"}) {
        auto c = parse_agent_config(text);
        ASSERT_FALSE(c.ok()) << text;
        EXPECT_EQ(c.error().code, EINVAL);
        EXPECT_NE(c.error().message.find("agent config"), std::string::npos) << c.error().message;
    }
}

TEST(AgentConfigTest, RequiredKeys) {
    for (const char* key : {"nodeName", "nodeIP", "uplink", "clusterCIDR", "source"}) {
        json j = base();
        j.erase(key);
        expect_rejected(j, key);
    }
}

TEST(AgentConfigTest, RequiredStringsMustBeNonEmptyStrings) {
    for (const char* key : {"nodeName", "nodeIP", "uplink", "clusterCIDR"}) {
        for (const json& bad : {json(""), json(42), json(true), json(nullptr), json::array({"x"}), json::object()}) {
            json j = base();
            j[key] = bad;
            expect_rejected(j, key);
        }
    }
}

TEST(AgentConfigTest, InvalidNodeIP) {
    for (const char* v : {"192.168.50", "192.168.50.256", "192.168.050.10", "fd00::1", "192.168.50.10/24",
                          " 192.168.50.10", "node-a"}) {
        json j = base();
        j["nodeIP"] = v;
        expect_rejected(j, "nodeIP");
    }
}

TEST(AgentConfigTest, InvalidClusterCIDR) {
    for (const char* v : {"10.244.0.0", "10.244.0.0/33", "10.244.0.1/16", "10.244.0.0/-1", "10.244.0.0/", "fd00::/64",
                          "10.244.0.0/016"}) {
        json j = base();
        j["clusterCIDR"] = v;
        expect_rejected(j, "clusterCIDR");
    }
}

TEST(AgentConfigTest, PathsMustBeAbsoluteStrings) {
    for (const char* key : {"pinPath", "stateDir", "cniConfDir"}) {
        for (const json& bad : {json("relative/dir"), json("./x"), json(""), json(7), json(false)}) {
            json j = base();
            j[key] = bad;
            expect_rejected(j, key);
        }
    }
}

TEST(AgentConfigTest, ListenMustBeAString) {
    json j = base();
    j["listen"] = 9964;
    expect_rejected(j, "listen");
    j["listen"] = "127.0.0.1:1234";  // not a path: no absolute-path rule
    EXPECT_TRUE(parse(j).ok());
}

TEST(AgentConfigTest, MtuBounds) {
    for (unsigned ok : {68u, 1280u, 1500u, 9000u, 65535u}) {
        json j = base();
        j["mtu"] = ok;
        auto c = parse(j);
        ASSERT_TRUE(c.ok()) << ok << ": " << c.error().message;
        EXPECT_EQ(c->mtu, ok);
    }
    for (const json& bad : {json(0), json(67), json(65536), json(-1500), json(1500.5), json(1500.0), json("1500"),
                            json(nullptr), json(true)}) {
        json j = base();
        j["mtu"] = bad;
        expect_rejected(j, "mtu");
    }
}

TEST(AgentConfigTest, ResyncSecondsBounds) {
    for (unsigned ok : {1u, 30u, 3600u}) {
        json j = base();
        j["resyncSeconds"] = ok;
        auto c = parse(j);
        ASSERT_TRUE(c.ok()) << ok << ": " << c.error().message;
        EXPECT_EQ(c->resync_seconds, ok);
    }
    for (const json& bad : {json(0), json(-5), json(2.5), json("30"), json(nullptr)}) {
        json j = base();
        j["resyncSeconds"] = bad;
        expect_rejected(j, "resyncSeconds");
    }
}

// Regression (fixed): values beyond 32 bits are truncated by get<unsigned>() before the
// range check, so mtu 2^32+1500 is accepted as 1500 and resyncSeconds
// 2^32+1 as 1 instead of being rejected as out of range.
TEST(AgentConfigTest, NumbersBeyond32BitsAreRejectedNotTruncated) {
    json j = base();
    j["mtu"] = (uint64_t{1} << 32) + 1500;
    auto c = parse(j);
    EXPECT_FALSE(c.ok()) << "mtu 4294968796 accepted as " << (c.ok() ? c->mtu : 0);
    j = base();
    j["resyncSeconds"] = (uint64_t{1} << 32) + 1;
    c = parse(j);
    EXPECT_FALSE(c.ok()) << "resyncSeconds 4294967297 accepted as " << (c.ok() ? c->resync_seconds : 0);
}

TEST(AgentConfigTest, SourceMustBeAnObjectWithFileOrEtcd) {
    for (const json& bad :
         {json("/etc/skiff/cluster.json"), json(nullptr), json::array(), json::object(), json{{"kube", "x"}}}) {
        json j = base();
        j["source"] = bad;
        expect_rejected(j, "source");
    }
}

TEST(AgentConfigTest, FileSourceMustBeANonEmptyString) {
    for (const json& bad : {json(""), json(1), json(nullptr), json::array({"/x"})}) {
        json j = base();
        j["source"] = json::object();
        j["source"]["file"] = bad;
        expect_rejected(j, "source.file");
    }
}

TEST(AgentConfigTest, EtcdSource) {
    json j = base();
    j["source"] = json::object();
    j["source"]["etcd"]["endpoints"] = json::array({"http://10.0.0.1:2379", "http://10.0.0.2:2379"});
    auto c = parse(j);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_FALSE(c->file_source.has_value());
    ASSERT_TRUE(c->etcd_source.has_value());
    EXPECT_EQ(c->etcd_source->endpoints, (std::vector<std::string>{"http://10.0.0.1:2379", "http://10.0.0.2:2379"}));
    EXPECT_EQ(c->etcd_source->prefix, "/skiff");

    j["source"]["etcd"]["prefix"] = "/clusters/blue";
    c = parse(j);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->etcd_source->prefix, "/clusters/blue");
}

TEST(AgentConfigTest, EtcdSourceValidation) {
    const json bads[] = {
        json("http://10.0.0.1:2379"),                                               // not an object
        json::object(),                                                             // no endpoints
        json{{"endpoints", json::array()}},                                         // empty
        json{{"endpoints", "http://10.0.0.1:2379"}},                                // not a list
        json{{"endpoints", json::array({"http://10.0.0.1:2379", 2379})}},           // non-string
        json{{"endpoints", json::array({"http://10.0.0.1:2379"})}, {"prefix", 5}},  // prefix not a string
    };
    for (const auto& e : bads) {
        json j = base();
        j["source"] = json::object();
        j["source"]["etcd"] = e;
        expect_rejected(j, "source.etcd");
    }
}

TEST(AgentConfigTest, LoadFromMissingFileFails) {
    auto c = load_agent_config("/nonexistent/skiff-agent-unit-test.json");
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code, ENOENT);
}

}  // namespace
}  // namespace skiff::agent

namespace skiff::agent {
namespace {

json kube_base() { return json{{"clusterCIDR", "10.244.0.0/16"}, {"source", {{"kubernetes", json::object()}}}}; }

TEST(AgentConfigKubernetesTest, NodeFromTheEnvironmentAndTheApi) {
    ::setenv("NODE_NAME", "node-from-env", 1);
    auto c = parse(kube_base());
    ::unsetenv("NODE_NAME");
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->node_name, "node-from-env");
    EXPECT_FALSE(c->node_ip_known);  // learned from the Node's InternalIP at start
    EXPECT_EQ(c->uplink, "");        // the device holding it
    ASSERT_TRUE(c->kubernetes_source);
    EXPECT_EQ(c->kubernetes_source->kubeconfig, "");  // in-cluster
}

TEST(AgentConfigKubernetesTest, ExplicitKeysWin) {
    ::setenv("NODE_NAME", "node-from-env", 1);
    json j = kube_base();
    j["nodeName"] = "node-a";
    j["nodeIP"] = "192.168.1.11";
    j["uplink"] = "eth0";
    j["source"]["kubernetes"] = {{"kubeconfig", "/etc/skiff/kubeconfig"}, {"context", "c1"}};
    auto c = parse(j);
    ::unsetenv("NODE_NAME");
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->node_name, "node-a");
    EXPECT_TRUE(c->node_ip_known);
    EXPECT_EQ(c->node_ip.str(), "192.168.1.11");
    EXPECT_EQ(c->uplink, "eth0");
    EXPECT_EQ(c->kubernetes_source->kubeconfig, "/etc/skiff/kubeconfig");
    EXPECT_EQ(c->kubernetes_source->context, "c1");
}

TEST(AgentConfigKubernetesTest, Rejected) {
    ::unsetenv("NODE_NAME");
    auto c = parse(kube_base());
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.error().message.find("NODE_NAME"), std::string::npos) << c.error().message;
    ::setenv("NODE_NAME", "n", 1);
    for (const json& k :
         {json("x"), json{{"kubeconfig", 5}}, json{{"kubeconfig", "relative/kc"}}, json{{"context", json::array()}}}) {
        json j = kube_base();
        j["source"]["kubernetes"] = k;
        EXPECT_FALSE(parse(j).ok()) << k.dump();
    }
    json both = kube_base();
    both["source"]["file"] = "/etc/skiff/cluster.json";
    EXPECT_FALSE(parse(both).ok());
    json bad_ip = kube_base();
    bad_ip["nodeIP"] = "not-an-ip";
    EXPECT_FALSE(parse(bad_ip).ok());
    ::unsetenv("NODE_NAME");
}

TEST(OverlayConfigTest, DefaultsAreNativeWithTheLinuxVxlanPort) {
    auto c = parse(base());
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->routing_mode, RoutingMode::Native);
    EXPECT_EQ(c->tunnel.port, 8472);
    EXPECT_EQ(c->tunnel.vni, 1u);
    EXPECT_EQ(c->tunnel.device, "skiff_vxlan");
}

TEST(OverlayConfigTest, ModesAndTunnelSettingsParse) {
    for (auto [name, mode] : {std::pair{"native", RoutingMode::Native}, std::pair{"vxlan", RoutingMode::Vxlan},
                              std::pair{"vxlan-cross-subnet", RoutingMode::VxlanCrossSubnet}}) {
        auto j = base();
        j["routingMode"] = name;
        j["tunnel"] = {{"port", 4789}, {"vni", 16777215}, {"device", "vx0"}};
        auto c = parse(j);
        ASSERT_TRUE(c.ok()) << c.error().message;
        EXPECT_EQ(c->routing_mode, mode);
        EXPECT_EQ(routing_mode_name(c->routing_mode), name);
        EXPECT_EQ(c->tunnel.port, 4789);
        EXPECT_EQ(c->tunnel.vni, 16777215u);
        EXPECT_EQ(c->tunnel.device, "vx0");
    }
}

TEST(OverlayConfigTest, BadModesAndTunnelSettingsAreRejected) {
    for (json bad : {json("VXLAN"), json("geneve"), json(""), json(1), json(nullptr)}) {
        auto j = base();
        j["routingMode"] = bad;
        expect_rejected(j, "routingMode");
    }
    for (json t : {json(8472), json({{"port", 0}}), json({{"port", 65536}}), json({{"port", "8472"}}),
                   json({{"port", -1}}), json({{"vni", 16777216}}), json({{"vni", -1}}), json({{"device", ""}}),
                   json({{"device", "a/b"}}), json({{"device", "sixteen-chars-xx"}}), json({{"device", "a b"}}),
                   json({{"device", 3}}), json({{"dstport", 8472}})}) {
        auto j = base();
        j["tunnel"] = t;
        expect_rejected(j, "tunnel");
    }
    // The tunnel's port must not be one masquerade hands out.
    auto j = base();
    j["tunnel"] = {{"port", 62000}};
    expect_rejected(j, "tunnel.port");
    j["masquerade"] = {{"portRange", "63000-64000"}};
    EXPECT_TRUE(parse(j).ok());
    j["masquerade"] = {{"enabled", false}, {"portRange", "61000-65535"}};
    EXPECT_TRUE(parse(j).ok());
}

}  // namespace
}  // namespace skiff::agent
