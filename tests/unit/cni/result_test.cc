// CNI result model: serialising per version, parsing any version, merging
// with prevResult, error JSON (DESIGN.md section 6, items 2, 4 and 5).
#include "cni/result.h"

#include <gtest/gtest.h>

#include "cni/version.h"

namespace skiff::cni {
namespace {

using nlohmann::json;

CniResultModel sample() {
    CniResultModel m;
    m.interfaces.push_back({"skf0123456789ab", "02:00:00:00:00:01", 1450, ""});
    m.interfaces.push_back({"eth0", "0a:00:00:00:00:01", 1450, "/var/run/netns/pod1"});
    m.ips.push_back({"10.244.1.2/32", "169.254.1.1", 1});
    m.routes.push_back({"0.0.0.0/0", "169.254.1.1", 1400, 1360, 10, 100, 0});
    m.routes.push_back({"10.96.0.0/12", "", {}, {}, {}, {}, {}});
    m.dns = {{"nameservers", {"10.96.0.10"}}};
    return m;
}

class ResultToJson : public ::testing::TestWithParam<std::string> {};

TEST_P(ResultToJson, ShapeFollowsVersion) {
    const std::string v = GetParam();
    const bool v1 = v == "1.0.0" || v == "1.1.0";
    const bool v11 = v == "1.1.0";
    json j = result_to_json(sample(), v);

    EXPECT_EQ(j["cniVersion"], v);
    ASSERT_EQ(j["interfaces"].size(), 2u);
    EXPECT_EQ(j["interfaces"][0]["name"], "skf0123456789ab");
    EXPECT_EQ(j["interfaces"][0]["mac"], "02:00:00:00:00:01");
    EXPECT_FALSE(j["interfaces"][0].contains("sandbox")) << "host interface has no sandbox";
    EXPECT_EQ(j["interfaces"][1]["name"], "eth0");
    EXPECT_EQ(j["interfaces"][1]["mac"], "0a:00:00:00:00:01");
    EXPECT_EQ(j["interfaces"][1]["sandbox"], "/var/run/netns/pod1");
    for (const auto& i : j["interfaces"]) {
        EXPECT_EQ(i.contains("mtu"), v1) << v << ": " << i.dump();
        if (v1) {
            EXPECT_EQ(i["mtu"], 1450);
        }
    }

    ASSERT_EQ(j["ips"].size(), 1u);
    const auto& ipj = j["ips"][0];
    EXPECT_EQ(ipj["address"], "10.244.1.2/32");
    EXPECT_EQ(ipj["gateway"], "169.254.1.1");
    EXPECT_EQ(ipj["interface"], 1);
    EXPECT_EQ(ipj.contains("version"), !v1) << v << ": " << ipj.dump();
    if (!v1) {
        EXPECT_EQ(ipj["version"], "4");
    }

    ASSERT_EQ(j["routes"].size(), 2u);
    const auto& r0 = j["routes"][0];
    EXPECT_EQ(r0["dst"], "0.0.0.0/0");
    EXPECT_EQ(r0["gw"], "169.254.1.1");
    for (const char* k : {"mtu", "advmss", "priority", "table", "scope"})
        EXPECT_EQ(r0.contains(k), v11) << v << ": route field " << k;
    if (v11) {
        EXPECT_EQ(r0["mtu"], 1400);
        EXPECT_EQ(r0["advmss"], 1360);
        EXPECT_EQ(r0["priority"], 10);
        EXPECT_EQ(r0["table"], 100);
        EXPECT_EQ(r0["scope"], 0);
    }
    EXPECT_EQ(j["routes"][1], json({{"dst", "10.96.0.0/12"}})) << "no gw key when there is no gateway";
    EXPECT_EQ(j["dns"], sample().dns);
}

INSTANTIATE_TEST_SUITE_P(AllVersions, ResultToJson, ::testing::Values("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"),
                         [](const auto& info) {
                             std::string s = info.param;
                             for (auto& c : s)
                                 if (c == '.') c = '_';
                             return "v" + s;
                         });

TEST(ResultToJsonExtra, OptionalFieldsOmittedAndIpv6Version) {
    CniResultModel m;
    m.interfaces.push_back({"eth0", "", std::nullopt, ""});
    m.ips.push_back({"fd00::5/128", "", std::nullopt});
    m.dns = json();  // not an object
    json j = result_to_json(m, "0.4.0");
    EXPECT_EQ(j["interfaces"][0], json({{"name", "eth0"}}));
    EXPECT_EQ(j["ips"][0], json({{"version", "6"}, {"address", "fd00::5/128"}}));
    EXPECT_EQ(j["routes"], json::array());
    EXPECT_EQ(j["dns"], json::object());
    EXPECT_EQ(result_to_json(m, "1.1.0")["ips"][0], json({{"address", "fd00::5/128"}}));
}

TEST(ParseResult, Version031Input) {
    json in = json::parse(R"({
      "cniVersion": "0.3.1",
      "interfaces": [{"name": "br0", "mac": "aa:bb:cc:dd:ee:ff"},
                     {"name": "eth0", "mac": "0a:58:0a:f4:01:05", "sandbox": "/proc/42/ns/net"}],
      "ips": [{"version": "4", "address": "10.244.1.5/24", "gateway": "10.244.1.1", "interface": 1}],
      "routes": [{"dst": "0.0.0.0/0"}],
      "dns": {"nameservers": ["1.1.1.1"]}
    })");
    auto r = parse_result(in);
    ASSERT_TRUE(r.ok()) << r.error().msg;
    ASSERT_EQ(r->interfaces.size(), 2u);
    EXPECT_EQ(r->interfaces[0].name, "br0");
    EXPECT_EQ(r->interfaces[0].mac, "aa:bb:cc:dd:ee:ff");
    EXPECT_EQ(r->interfaces[0].sandbox, "");
    EXPECT_EQ(r->interfaces[1].sandbox, "/proc/42/ns/net");
    EXPECT_FALSE(r->interfaces[1].mtu.has_value());
    ASSERT_EQ(r->ips.size(), 1u);
    EXPECT_EQ(r->ips[0].address, "10.244.1.5/24");
    EXPECT_EQ(r->ips[0].gateway, "10.244.1.1");
    EXPECT_EQ(r->ips[0].interface, std::optional<int>(1));
    ASSERT_EQ(r->routes.size(), 1u);
    EXPECT_EQ(r->routes[0].dst, "0.0.0.0/0");
    EXPECT_EQ(r->routes[0].gw, "");
    EXPECT_EQ(r->dns["nameservers"][0], "1.1.1.1");

    // And back out as 0.3.1 it keeps the version marker.
    json out = result_to_json(*r, "0.3.1");
    EXPECT_EQ(out["ips"][0]["version"], "4");
    EXPECT_EQ(out["ips"][0]["interface"], 1);
}

TEST(ParseResult, Version110InputRoundTrips) {
    json in = result_to_json(sample(), "1.1.0");
    auto r = parse_result(in);
    ASSERT_TRUE(r.ok()) << r.error().msg;
    EXPECT_EQ(r->interfaces[1].mtu, std::optional<int>(1450));
    EXPECT_EQ(r->routes[0].mtu, std::optional<int>(1400));
    EXPECT_EQ(r->routes[0].advmss, std::optional<int>(1360));
    EXPECT_EQ(r->routes[0].priority, std::optional<int>(10));
    EXPECT_EQ(r->routes[0].table, std::optional<int>(100));
    EXPECT_EQ(r->routes[0].scope, std::optional<int>(0));
    EXPECT_FALSE(r->routes[1].mtu.has_value());
    EXPECT_EQ(result_to_json(*r, "1.1.0"), in);
}

TEST(ParseResult, EmptyAndNullSectionsAreFine) {
    auto r = parse_result(json{{"cniVersion", "1.0.0"}, {"interfaces", nullptr}, {"ips", json::array()}});
    ASSERT_TRUE(r.ok()) << r.error().msg;
    EXPECT_TRUE(r->interfaces.empty());
    EXPECT_TRUE(r->ips.empty());
    EXPECT_TRUE(r->routes.empty());
    EXPECT_EQ(r->dns, json::object());
}

TEST(ParseResult, MalformedInputsAreCode6) {
    const char* bad[] = {
        R"([])",
        R"("x")",
        R"({"interfaces": "eth0"})",
        R"({"interfaces": [1]})",
        R"({"ips": {}})",
        R"({"ips": [{"gateway": "10.0.0.1"}]})",
        R"({"ips": [{"address": 5}]})",
        R"({"ips": ["10.0.0.1/32"]})",
        R"({"routes": "default"})",
        R"({"routes": [{"gw": "10.0.0.1"}]})",
    };
    for (const char* b : bad) {
        auto r = parse_result(json::parse(b));
        ASSERT_FALSE(r.ok()) << b;
        EXPECT_EQ(r.error().code, kDecodeFailure) << b;
    }
}

TEST(MergeResults, ShiftsOurInterfaceIndices) {
    CniResultModel prev;
    prev.interfaces.push_back({"bond0", "", std::nullopt, ""});
    prev.interfaces.push_back({"net0", "", std::nullopt, "/proc/1/ns/net"});
    prev.interfaces.push_back({"lo", "", std::nullopt, "/proc/1/ns/net"});
    prev.ips.push_back({"192.168.0.9/24", "", 1});
    prev.routes.push_back({"192.168.0.0/16", "", {}, {}, {}, {}, {}});

    CniResultModel ours = sample();
    ours.ips.push_back({"10.244.1.3/32", "", std::nullopt});
    auto m = merge_results(prev, ours);
    ASSERT_EQ(m.interfaces.size(), 5u);
    EXPECT_EQ(m.interfaces[0].name, "bond0");
    EXPECT_EQ(m.interfaces[3].name, "skf0123456789ab");
    EXPECT_EQ(m.interfaces[4].name, "eth0");
    ASSERT_EQ(m.ips.size(), 3u);
    EXPECT_EQ(m.ips[0].interface, std::optional<int>(1)) << "prev's indices are untouched";
    EXPECT_EQ(m.ips[1].address, "10.244.1.2/32");
    EXPECT_EQ(m.ips[1].interface, std::optional<int>(4));
    EXPECT_EQ(m.interfaces[*m.ips[1].interface].name, "eth0");
    EXPECT_FALSE(m.ips[2].interface.has_value());
    ASSERT_EQ(m.routes.size(), 3u);
    EXPECT_EQ(m.routes[0].dst, "192.168.0.0/16");
    EXPECT_EQ(m.routes[1].dst, "0.0.0.0/0");
    EXPECT_EQ(m.dns, sample().dns) << "prev had no DNS: ours is used";
}

TEST(MergeResults, EmptyPrevKeepsIndicesAndPrevDnsWins) {
    auto m = merge_results(CniResultModel{}, sample());
    EXPECT_EQ(m.ips[0].interface, std::optional<int>(1));
    EXPECT_EQ(m.interfaces.size(), 2u);

    CniResultModel prev;
    prev.dns = {{"nameservers", {"8.8.8.8"}}};
    auto m2 = merge_results(prev, sample());
    EXPECT_EQ(m2.dns["nameservers"][0], "8.8.8.8");
}

TEST(ErrorToJson, Shape) {
    json j = error_to_json(CniError{kTryAgain, "pool exhausted", "10.244.1.0/24"}, "0.4.0");
    EXPECT_EQ(j,
              json({{"cniVersion", "0.4.0"}, {"code", 11}, {"msg", "pool exhausted"}, {"details", "10.244.1.0/24"}}));
    json k = error_to_json(CniError{kInvalidEnv, "CNI_IFNAME missing", ""}, "");
    EXPECT_EQ(k, json({{"cniVersion", "1.1.0"}, {"code", 4}, {"msg", "CNI_IFNAME missing"}}));
    EXPECT_FALSE(k.contains("details"));
}

}  // namespace
}  // namespace skiff::cni
