// decode_stdin / parse_netconf / name rules (DESIGN.md section 6, items 2 and 3).
#include "cni/config.h"

#include <gtest/gtest.h>

#include "cni/version.h"

namespace skiff::cni {
namespace {

using nlohmann::json;

json base() { return {{"cniVersion", "1.1.0"}, {"name", "skiffnet"}, {"type", "skiff"}, {"podCIDR", "10.244.1.0/24"}}; }

CniResult<NetConf> parse_bytes(const std::string& s) { return parse_netconf(decode_stdin(s)); }
CniResult<NetConf> parse(const json& j) { return parse_bytes(j.dump()); }

// Parses base() with key set to value; expects failure with code.
void expect_code(const char* key, const json& value, int code) {
    json j = base();
    j[key] = value;
    auto r = parse(j);
    ASSERT_FALSE(r.ok()) << key << "=" << value.dump() << " was accepted";
    EXPECT_EQ(r.error().code, code) << key << "=" << value.dump() << ": " << r.error().msg;
    EXPECT_FALSE(r.error().msg.empty());
}

void expect_ok(const char* key, const json& value) {
    json j = base();
    j[key] = value;
    auto r = parse(j);
    EXPECT_TRUE(r.ok()) << key << "=" << value.dump() << ": " << (r.ok() ? "" : r.error().msg);
}

TEST(ParseNetconf, MinimalConfigGetsDefaults) {
    auto r = parse(base());
    ASSERT_TRUE(r.ok()) << r.error().msg;
    EXPECT_EQ(r->cni_version, "1.1.0");
    EXPECT_EQ(r->name, "skiffnet");
    EXPECT_EQ(r->type, "skiff");
    ASSERT_TRUE(r->pod_cidr.has_value());
    EXPECT_EQ(r->pod_cidr->str(), "10.244.1.0/24");
    EXPECT_FALSE(r->cluster_cidr.has_value());
    EXPECT_EQ(r->mtu, 1500u);
    EXPECT_EQ(r->pin_path, "/sys/fs/bpf/skiff");
    EXPECT_EQ(r->state_dir, "/var/lib/skiff");
    EXPECT_EQ(r->log_file, "");
    EXPECT_TRUE(r->ipam.is_null());
    EXPECT_FALSE(r->delegated_ipam());
    EXPECT_TRUE(r->dns.is_null());
    EXPECT_TRUE(r->prev_result.is_null());
    EXPECT_TRUE(r->valid_attachments.empty());
    EXPECT_EQ(r->raw, base());
}

TEST(ParseNetconf, EveryKeyIsRead) {
    json j = base();
    j["clusterCIDR"] = "10.244.0.0/16";
    j["mtu"] = 9000;
    j["pinPath"] = "/sys/fs/bpf/node-a";
    j["stateDir"] = "/run/skiff-a";
    j["logFile"] = "/var/log/skiff.log";
    j["ipam"] = {{"type", "host-local"}, {"subnet", "10.244.1.0/24"}};
    j["dns"] = {{"nameservers", {"10.96.0.10"}}, {"search", {"svc.cluster.local"}}};
    j["prevResult"] = {{"cniVersion", "1.1.0"}, {"interfaces", json::array()}};
    j["cni.dev/valid-attachments"] = {{{"containerID", "c1"}, {"ifname", "eth0"}},
                                      {{"containerID", "c2"}, {"ifname", "net1"}}};
    auto r = parse(j);
    ASSERT_TRUE(r.ok()) << r.error().msg;
    EXPECT_EQ(r->cluster_cidr->str(), "10.244.0.0/16");
    EXPECT_EQ(r->mtu, 9000u);
    EXPECT_EQ(r->pin_path, "/sys/fs/bpf/node-a");
    EXPECT_EQ(r->state_dir, "/run/skiff-a");
    EXPECT_EQ(r->log_file, "/var/log/skiff.log");
    EXPECT_TRUE(r->delegated_ipam());
    EXPECT_EQ(r->ipam_type(), "host-local");
    EXPECT_EQ(r->dns["nameservers"][0], "10.96.0.10");
    EXPECT_EQ(r->prev_result["cniVersion"], "1.1.0");
    ASSERT_EQ(r->valid_attachments.size(), 2u);
    EXPECT_EQ(r->valid_attachments[0].container_id, "c1");
    EXPECT_EQ(r->valid_attachments[0].ifname, "eth0");
    EXPECT_EQ(r->valid_attachments[1].container_id, "c2");
    EXPECT_EQ(r->valid_attachments[1].ifname, "net1");
}

TEST(ParseNetconf, LegacyAttachmentsKeyIsAccepted) {
    json j = base();
    j["cni.dev/attachments"] = {{{"containerID", "c9"}, {"ifname", "eth0"}}};
    auto r = parse(j);
    ASSERT_TRUE(r.ok()) << r.error().msg;
    ASSERT_EQ(r->valid_attachments.size(), 1u);
    EXPECT_EQ(r->valid_attachments[0].container_id, "c9");
}

TEST(ParseNetconf, NullIsAWrongTypeNotTheDefault) {
    for (const char* key :
         {"mtu", "dns", "prevResult", "ipam", "logFile", "stateDir", "pinPath", "podCIDR", "clusterCIDR",
          "requireAgent", "type", "cni.dev/valid-attachments", "cni.dev/attachments"}) {
        json j = base();
        j[key] = nullptr;
        auto r = parse(j);
        ASSERT_FALSE(r.ok()) << key;
        EXPECT_EQ(r.error().code, kInvalidConfig) << key;
        EXPECT_NE(r.error().msg.find(key), std::string::npos) << r.error().msg;
    }
}

TEST(ParseNetconf, ControlCharactersInPathsAreRefused) {
    for (const char* key : {"stateDir", "pinPath", "logFile"})
        for (const std::string& bad : {std::string("/tmp/a\nb"), std::string("/tmp/a\0b", 8), std::string("/tmp/\x7f"),
                                       std::string("/tmp/a\rb")}) {
            json j = base();
            j[key] = bad;
            auto r = parse(j);
            ASSERT_FALSE(r.ok()) << key;
            EXPECT_EQ(r.error().code, kInvalidConfig);
            EXPECT_NE(r.error().msg.find("control character"), std::string::npos) << r.error().msg;
        }
}

TEST(ParseNetconf, IpamTypeOfThePluginItselfIsALoop) {
    json j = base();
    j["ipam"] = {{"type", "skiff"}};
    auto r = parse(j);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, kInvalidConfig);
    EXPECT_NE(r.error().msg.find("loop"), std::string::npos);
}

TEST(ParseNetconf, WrongTypesAreConfigErrors) {
    expect_code("podCIDR", 5, kInvalidConfig);
    expect_code("clusterCIDR", json::array(), kInvalidConfig);
    expect_code("mtu", "1500", kInvalidConfig);
    expect_code("mtu", 1500.5, kInvalidConfig);
    expect_code("mtu", true, kInvalidConfig);
    expect_code("pinPath", 1, kInvalidConfig);
    expect_code("stateDir", true, kInvalidConfig);
    expect_code("logFile", json::object(), kInvalidConfig);
    expect_code("ipam", "host-local", kInvalidConfig);
    expect_code("ipam", json::object(), kInvalidConfig);  // no type
    expect_code("ipam", {{"type", 3}}, kInvalidConfig);
    expect_code("ipam", {{"type", "../../bin/sh"}}, kInvalidConfig);
    expect_code("ipam", {{"type", "sub/plugin"}}, kInvalidConfig);
    expect_code("dns", json::array({"10.0.0.10"}), kInvalidConfig);
    expect_code("prevResult", "x", kInvalidConfig);
    expect_code("cni.dev/valid-attachments", json::object(), kInvalidConfig);
    expect_code("cni.dev/valid-attachments", json::array({"c1"}), kInvalidConfig);
    expect_code("cni.dev/valid-attachments", json::array({{{"containerID", "c1"}}}), kInvalidConfig);
    expect_code("cni.dev/valid-attachments", json::array({{{"containerID", 1}, {"ifname", "eth0"}}}), kInvalidConfig);
    expect_code("cni.dev/attachments", "c1", kInvalidConfig);
    expect_code("name", 5, kInvalidConfig);
    expect_code("type", 5, kInvalidConfig);
    expect_code("cniVersion", 1.1, kInvalidConfig);
}

TEST(ParseNetconf, MtuRange) {
    expect_code("mtu", 67, kInvalidConfig);
    expect_code("mtu", 65536, kInvalidConfig);
    expect_code("mtu", -1, kInvalidConfig);
    expect_code("mtu", 0, kInvalidConfig);
    expect_code("mtu", 18446744073709551615ull, kInvalidConfig);
    expect_ok("mtu", 68);
    expect_ok("mtu", 65535);
}

TEST(ParseNetconf, InvalidCidrs) {
    for (const char* key : {"podCIDR", "clusterCIDR"}) {
        SCOPED_TRACE(key);
        expect_code(key, "10.244.1.1/24", kInvalidConfig);  // host bits
        expect_code(key, "10.244.1.0/33", kInvalidConfig);  // length
        expect_code(key, "10.244.1.0/-1", kInvalidConfig);
        expect_code(key, "10.244.1.0/", kInvalidConfig);
        expect_code(key, "10.244.1.0", kInvalidConfig);  // no length
        expect_code(key, "garbage", kInvalidConfig);
        expect_code(key, "256.0.0.0/8", kInvalidConfig);
        expect_code(key, "10.244.1/24", kInvalidConfig);
        expect_code(key, "010.244.1.0/24", kInvalidConfig);  // octal-looking
        expect_code(key, "10.244.1.0/24 ", kInvalidConfig);
        expect_code(key, "10.244.1.0/2x", kInvalidConfig);
    }
}

TEST(ParseNetconf, Ipv6IsUnsupportedField) {
    expect_code("podCIDR", "fd00:10:244:1::/64", kUnsupportedField);
    json j = base();
    j["clusterCIDR"] = "fd00::/48";
    auto r = parse(j);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, kUnsupportedField);
}

TEST(ParseNetconf, PodCidrSizeLimits) {
    expect_code("podCIDR", "10.244.1.0/31", kInvalidConfig);
    expect_code("podCIDR", "10.244.1.1/32", kInvalidConfig);
    expect_ok("podCIDR", "10.244.1.0/30");
    expect_ok("podCIDR", "10.0.0.0/8");
}

TEST(ParseNetconf, PodCidrMustBeInsideClusterCidr) {
    json j = base();
    j["clusterCIDR"] = "10.245.0.0/16";
    auto r = parse(j);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, kInvalidConfig);

    j["clusterCIDR"] = "10.244.1.0/25";  // smaller than the pod CIDR
    r = parse(j);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, kInvalidConfig);

    j["clusterCIDR"] = "10.244.1.0/24";  // equal is fine
    EXPECT_TRUE(parse(j).ok());
    j["clusterCIDR"] = "10.0.0.0/8";
    EXPECT_TRUE(parse(j).ok());
}

TEST(ParseNetconf, PodCidrRequiredUnlessIpamDelegated) {
    json j = base();
    j.erase("podCIDR");
    auto r = parse(j);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, kInvalidConfig);
    j["podCIDR"] = "";
    r = parse(j);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, kInvalidConfig);
    j["ipam"] = {{"type", "host-local"}};
    r = parse(j);
    ASSERT_TRUE(r.ok()) << r.error().msg;
    EXPECT_FALSE(r->pod_cidr.has_value());
}

TEST(ParseNetconf, PathsMustBeAbsoluteWithoutDotDot) {
    for (const char* key : {"pinPath", "stateDir", "logFile"}) {
        SCOPED_TRACE(key);
        expect_code(key, "var/lib/skiff", kInvalidConfig);
        expect_code(key, "./skiff", kInvalidConfig);
        expect_code(key, "../skiff", kInvalidConfig);
        expect_code(key, "/var/lib/../../etc", kInvalidConfig);
        expect_code(key, "/var/lib/skiff/..", kInvalidConfig);
        expect_code(key, "/..", kInvalidConfig);
        expect_code(key, "/" + std::string(1100, 'a'), kInvalidConfig);
        expect_ok(key, "/var/lib/skiff..x/a..b");  // '..' inside a name is fine
    }
    expect_code("pinPath", "", kInvalidConfig);
    expect_code("stateDir", "", kInvalidConfig);
    expect_ok("logFile", "");  // empty log file: stderr
}

TEST(ParseNetconf, UnsupportedVersionIsCode1) {
    for (const char* v : {"0.1.0", "0.2.0", "0.4.1", "1.0", "1.2.0", "2.0.0", "", "latest"}) {
        SCOPED_TRACE(v);
        expect_code("cniVersion", v, kIncompatibleVersion);
    }
    for (auto v : kSupportedVersions) expect_ok("cniVersion", std::string(v));
    json j = base();
    j.erase("cniVersion");
    auto r = parse(j);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, kInvalidConfig);
}

TEST(ParseNetconf, UndecodableJsonIsCode6) {
    for (const char* s : {"", "{", "{\"cniVersion\":", "not json", "{\"a\":1,}", "[1,2,3]", "\"str\"", "42", "null"}) {
        SCOPED_TRACE(s);
        auto r = parse_bytes(s);
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().code, kDecodeFailure);
    }
}

TEST(ParseNetconf, OversizedJsonIsCode6) {
    json j = base();
    j["padding"] = std::string(kMaxConfigBytes, 'x');
    auto r = parse_bytes(j.dump());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, kDecodeFailure);

    // Just under the limit is fine.
    j["padding"] = "";
    std::string small = j.dump();
    j["padding"] = std::string(kMaxConfigBytes - small.size(), 'x');
    std::string exact = j.dump();
    ASSERT_EQ(exact.size(), kMaxConfigBytes);
    EXPECT_TRUE(parse_bytes(exact).ok());
}

std::string nested(int depth) {  // base() with an extra key whose value nests depth-1 more levels
    std::string s = base().dump();
    s.pop_back();
    s += ",\"args\":";
    for (int i = 1; i < depth; ++i) s += "[";
    s += "1";
    for (int i = 1; i < depth; ++i) s += "]";
    return s + "}";
}

TEST(ParseNetconf, DeepJsonIsCode6) {
    auto deep = parse_bytes(nested(kMaxConfigDepth + 1));
    ASSERT_FALSE(deep.ok());
    EXPECT_EQ(deep.error().code, kDecodeFailure);
    auto very_deep = parse_bytes(nested(100000));
    ASSERT_FALSE(very_deep.ok());
    EXPECT_EQ(very_deep.error().code, kDecodeFailure);
    EXPECT_TRUE(parse_bytes(nested(kMaxConfigDepth)).ok());

    // Brackets inside strings do not count.
    json j = base();
    j["args"] = std::string(200, '[') + "\\\"{" + std::string(200, '{');
    EXPECT_TRUE(parse(j).ok());
}

TEST(DecodeStdin, DecodesOnceAndKeepsTheVersionErrorsAnswerIn) {
    auto in = decode_stdin(base().dump());
    EXPECT_TRUE(in.present);
    ASSERT_TRUE(in.decoded.ok());
    EXPECT_EQ(*in.decoded, base());
    EXPECT_EQ(in.version, "1.1.0");
    // The version only when it is a string naming a supported one.
    for (const json& v : {json("0.2.0"), json("1.1"), json(110), json(nullptr)}) {
        SCOPED_TRACE(v.dump());
        json j = base();
        j["cniVersion"] = v;
        auto bad = decode_stdin(j.dump());
        ASSERT_TRUE(bad.decoded.ok());
        EXPECT_EQ(bad.version, "");
    }
    EXPECT_EQ(decode_stdin(R"(["1.1.0"])").version, "");
    auto undecodable = decode_stdin(R"({"cniVersion":"1.1.0",)");
    EXPECT_TRUE(undecodable.present);
    ASSERT_FALSE(undecodable.decoded.ok());
    EXPECT_EQ(undecodable.decoded.error().code, kDecodeFailure);
    EXPECT_EQ(undecodable.version, "");
    auto none = decode_stdin("");
    EXPECT_FALSE(none.present);
    EXPECT_FALSE(none.decoded.ok());
}

TEST(ParseNetconf, BadNetworkNames) {
    for (const std::string& n : {std::string(""), std::string("-net"), std::string(".net"), std::string("_net"),
                                 std::string("net/a"), std::string("net work"), std::string(".."), std::string("a:b"),
                                 std::string("net\n"), std::string(1025, 'a')}) {
        SCOPED_TRACE(n);
        expect_code("name", n, kInvalidConfig);
    }
    expect_ok("name", "k8s-pod_network.1");
    expect_ok("name", std::string(1024, 'a'));
    json j = base();
    j.erase("name");
    auto r = parse(j);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, kInvalidConfig);
}

TEST(ConfigNames, ValidCniName) {
    EXPECT_TRUE(valid_cni_name("a"));
    EXPECT_TRUE(valid_cni_name("0abc"));
    EXPECT_TRUE(valid_cni_name("abc-DEF_1.2"));
    EXPECT_FALSE(valid_cni_name(""));
    EXPECT_FALSE(valid_cni_name("-a"));
    EXPECT_FALSE(valid_cni_name("a/b"));
    EXPECT_FALSE(valid_cni_name("a b"));
    EXPECT_FALSE(valid_cni_name("\xc3\xa9t\xc3\xa9"));
}

TEST(ConfigNames, IfnameProblem) {
    EXPECT_EQ(ifname_problem("eth0"), "");
    EXPECT_EQ(ifname_problem(std::string(15, 'a')), "");
    EXPECT_EQ(ifname_problem("a.b-c_d@e"), "");
    for (const std::string& bad :
         {std::string(""), std::string(16, 'a'), std::string("."), std::string(".."), std::string("a/b"),
          std::string("a:b"), std::string("a b"), std::string("a\tb"), std::string("eth0\n"), std::string("a\0b", 3)}) {
        SCOPED_TRACE(bad);
        EXPECT_NE(ifname_problem(bad), "");
    }
}

TEST(Version, CompareAndSupport) {
    EXPECT_EQ(version_compare("1.0.0", "1.0.0"), 0);
    EXPECT_LT(version_compare("0.4.0", "1.0.0"), 0);
    EXPECT_GT(version_compare("1.1.0", "1.0.0"), 0);
    EXPECT_GT(version_compare("0.10.0", "0.9.0"), 0);
    EXPECT_LT(version_compare("garbage", "0.1.0"), 0);
    EXPECT_TRUE(version_at_least("1.1.0", "1.1.0"));
    EXPECT_FALSE(version_at_least("1.0.0", "1.1.0"));
    EXPECT_TRUE(version_supported("0.3.0"));
    EXPECT_FALSE(version_supported("0.3.2"));
    EXPECT_EQ(kLatestVersion, "1.1.0");
}

}  // namespace
}  // namespace skiff::cni
