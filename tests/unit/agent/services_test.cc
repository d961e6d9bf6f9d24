// Planning service frontends and backends from Kubernetes Services and
// EndpointSlices: plan_services (userspace/agent/services.cc).
#include "agent/services.h"

#include <netinet/in.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace skiff::agent {
namespace {

using nlohmann::json;

Ipv4 ip(const char* s) { return *Ipv4::parse(s); }
L4Addr tcp(const char* a, uint16_t port) { return L4Addr{ip(a), port, IPPROTO_TCP}; }
L4Addr udp(const char* a, uint16_t port) { return L4Addr{ip(a), port, IPPROTO_UDP}; }

// A Service object; `ports` is its spec.ports.
json service(const std::string& ns, const std::string& name, const std::string& cluster_ip, json ports) {
    return json{{"kind", "Service"},
                {"metadata", {{"namespace", ns}, {"name", name}}},
                {"spec", {{"type", "ClusterIP"}, {"clusterIP", cluster_ip}, {"ports", std::move(ports)}}}};
}

json port(const std::string& name, json number, const char* protocol = nullptr) {
    json p{{"name", name}, {"port", std::move(number)}};
    if (protocol) p["protocol"] = protocol;
    return p;
}

// An endpoint; conditions that are not given are left out of the object.
json endpoint(const std::string& addr, std::optional<bool> ready = std::nullopt,
              std::optional<bool> serving = std::nullopt, std::optional<bool> terminating = std::nullopt) {
    json e{{"addresses", json::array({addr})}};
    json c = json::object();
    if (ready) c["ready"] = *ready;
    if (serving) c["serving"] = *serving;
    if (terminating) c["terminating"] = *terminating;
    if (!c.empty()) e["conditions"] = c;
    return e;
}

json slice(const std::string& ns, const std::string& name, const std::string& svc, json ports, json endpoints,
           const char* address_type = "IPv4") {
    json s{{"kind", "EndpointSlice"},
           {"metadata", {{"namespace", ns}, {"name", name}}},
           {"addressType", address_type},
           {"ports", std::move(ports)},
           {"endpoints", std::move(endpoints)}};
    if (!svc.empty()) s["metadata"]["labels"] = {{"kubernetes.io/service-name", svc}};
    return s;
}

ClusterSpec spec_of(std::vector<json> services, std::vector<json> slices = {}) {
    ClusterSpec c;
    for (auto& s : services) EXPECT_TRUE(c.services.add(std::move(s))) << "two services with one name";
    for (auto& s : slices) EXPECT_TRUE(c.endpoint_slices.add(std::move(s))) << "two slices with one name";
    return c;
}

const ServicePort* find(const ServicePlan& p, const L4Addr& fe) {
    for (const auto& sp : p.ports)
        if (sp.frontend == fe) return &sp;
    return nullptr;
}

bool has_problem(const ServicePlan& p, const std::string& a, const std::string& b = "") {
    for (const auto& s : p.problems)
        if (s.find(a) != std::string::npos && s.find(b) != std::string::npos) return true;
    return false;
}

std::string problems(const ServicePlan& p) {
    std::string out;
    for (const auto& s : p.problems) out += "\n  " + s;
    return out;
}

// The plan has one problem, naming both `a` and `b`, and one port, `name`.
void expect_one_problem_one_port(const ServicePlan& p, const std::string& a, const std::string& b,
                                 const std::string& name) {
    ASSERT_EQ(p.problems.size(), 1u) << problems(p);
    EXPECT_TRUE(has_problem(p, a, b)) << problems(p);
    ASSERT_EQ(p.ports.size(), 1u);
    EXPECT_EQ(p.ports[0].name, name);
}

// ---------------------------------------------------------------- basics

TEST(PlanServicesTest, L4AddrStr) {
    EXPECT_EQ(tcp("10.96.0.10", 53).str(), "10.96.0.10:53/tcp");
    EXPECT_EQ(udp("10.96.0.10", 53).str(), "10.96.0.10:53/udp");
}

TEST(PlanServicesTest, EmptySpecGivesEmptyPlan) {
    auto p = plan_services(ClusterSpec{});
    EXPECT_TRUE(p.ports.empty());
    EXPECT_TRUE(p.problems.empty());
}

TEST(PlanServicesTest, ClusterIPWithSeveralPortsAndProtocols) {
    auto spec = spec_of({service("kube-system", "dns", "10.96.0.10",
                                 {port("dns", 53, "UDP"), port("dns-tcp", 53, "TCP"), port("metrics", 9153)})},
                        {slice("kube-system", "dns-abc", "dns",
                               {port("dns", 5353, "UDP"), port("dns-tcp", 5353, "TCP"), port("metrics", 9153)},
                               {endpoint("10.244.1.5", true), endpoint("10.244.2.7", true)})});
    auto p = plan_services(spec);
    EXPECT_TRUE(p.problems.empty()) << problems(p);
    ASSERT_EQ(p.ports.size(), 3u);

    const ServicePort* dns = find(p, udp("10.96.0.10", 53));
    ASSERT_NE(dns, nullptr);
    EXPECT_EQ(dns->name, "kube-system/dns:dns");
    EXPECT_EQ(dns->backends, (std::vector<L4Addr>{udp("10.244.1.5", 5353), udp("10.244.2.7", 5353)}));
    EXPECT_TRUE(dns->terminating.empty());
    EXPECT_FALSE(dns->affinity);

    const ServicePort* dns_tcp = find(p, tcp("10.96.0.10", 53));
    ASSERT_NE(dns_tcp, nullptr);
    EXPECT_EQ(dns_tcp->name, "kube-system/dns:dns-tcp");
    EXPECT_EQ(dns_tcp->backends, (std::vector<L4Addr>{tcp("10.244.1.5", 5353), tcp("10.244.2.7", 5353)}));

    // No protocol on either side: TCP.
    const ServicePort* metrics = find(p, tcp("10.96.0.10", 9153));
    ASSERT_NE(metrics, nullptr);
    EXPECT_EQ(metrics->frontend.proto, IPPROTO_TCP);
    EXPECT_EQ(metrics->backends, (std::vector<L4Addr>{tcp("10.244.1.5", 9153), tcp("10.244.2.7", 9153)}));
}

TEST(PlanServicesTest, UnnamedSinglePort) {
    auto spec = spec_of({service("default", "web", "10.96.1.1", {{{"port", 80}, {"targetPort", 8080}}})},
                        {slice("default", "web-1", "web", {{{"port", 8080}}}, {endpoint("10.244.1.2")})});
    auto p = plan_services(spec);
    EXPECT_TRUE(p.problems.empty()) << problems(p);
    ASSERT_EQ(p.ports.size(), 1u);
    EXPECT_EQ(p.ports[0].name, "default/web:");
    EXPECT_EQ(p.ports[0].frontend, tcp("10.96.1.1", 80));
    EXPECT_EQ(p.ports[0].backends, (std::vector<L4Addr>{tcp("10.244.1.2", 8080)}));
}

TEST(PlanServicesTest, NamedTargetPortResolvedThroughSlicePortOfSameName) {
    // targetPort "http" is a container port name; the slice carries the
    // number it resolved to, under the service port's name.
    json svc = service("shop", "api", "10.96.2.2", {port("http", 80), port("grpc", 9000)});
    svc["spec"]["ports"][0]["targetPort"] = "http";
    svc["spec"]["ports"][1]["targetPort"] = "grpc";
    auto spec = spec_of(
        {svc}, {slice("shop", "api-x", "api", {port("grpc", 50051), port("http", 8080)}, {endpoint("10.244.3.3")})});
    auto p = plan_services(spec);
    EXPECT_TRUE(p.problems.empty()) << problems(p);
    ASSERT_EQ(p.ports.size(), 2u);
    const ServicePort* http = find(p, tcp("10.96.2.2", 80));
    const ServicePort* grpc = find(p, tcp("10.96.2.2", 9000));
    ASSERT_NE(http, nullptr);
    ASSERT_NE(grpc, nullptr);
    EXPECT_EQ(http->backends, (std::vector<L4Addr>{tcp("10.244.3.3", 8080)}));
    EXPECT_EQ(grpc->backends, (std::vector<L4Addr>{tcp("10.244.3.3", 50051)}));
}

TEST(PlanServicesTest, SlicePortMatchesByNameAndProtocol) {
    // The slice only has a UDP "dns" port: the TCP service port of the same
    // name has no target and so no backends.
    auto spec = spec_of({service("default", "dns", "10.96.0.10", {port("dns", 53, "TCP")})},
                        {slice("default", "dns-1", "dns", {port("dns", 53, "UDP")}, {endpoint("10.244.1.1")})});
    auto p = plan_services(spec);
    EXPECT_TRUE(p.problems.empty()) << problems(p);
    ASSERT_EQ(p.ports.size(), 1u);
    EXPECT_TRUE(p.ports[0].backends.empty());
    EXPECT_TRUE(p.ports[0].terminating.empty());
}

TEST(PlanServicesTest, ServiceWithoutSlicesHasFrontendButNoBackends) {
    auto p = plan_services(spec_of({service("default", "lonely", "10.96.3.3", {port("http", 80)})}));
    EXPECT_TRUE(p.problems.empty()) << problems(p);
    ASSERT_EQ(p.ports.size(), 1u);
    EXPECT_EQ(p.ports[0].frontend, tcp("10.96.3.3", 80));
    EXPECT_TRUE(p.ports[0].backends.empty());
}

TEST(PlanServicesTest, SliceOfAnotherNamespaceDoesNotMatch) {
    auto spec = spec_of({service("a", "web", "10.96.4.4", {port("http", 80)})},
                        {slice("b", "web-1", "web", {port("http", 8080)}, {endpoint("10.244.1.1")})});
    auto p = plan_services(spec);
    ASSERT_EQ(p.ports.size(), 1u);
    EXPECT_TRUE(p.ports[0].backends.empty());
}

TEST(PlanServicesTest, ClusterIPsListPreferredAndIPv6EntriesIgnored) {
    json svc = service("default", "dual", "10.96.5.5", {port("http", 80)});
    svc["spec"]["clusterIPs"] = {"fd00:10:96::5", "10.96.5.5"};
    auto p = plan_services(spec_of({svc}));
    EXPECT_TRUE(p.problems.empty()) << problems(p);
    ASSERT_EQ(p.ports.size(), 1u);
    EXPECT_EQ(p.ports[0].frontend, tcp("10.96.5.5", 80));
}

// ---------------------------------------------------------------- endpoint conditions

TEST(PlanServicesTest, EndpointConditions) {
    auto spec =
        spec_of({service("default", "web", "10.96.1.1", {port("http", 80)})},
                {slice("default", "web-1", "web", {port("http", 8080)},
                       {
                           endpoint("10.244.0.1"),                                     // no conditions: ready
                           endpoint("10.244.0.2", true),                               // ready
                           endpoint("10.244.0.3", false),                              // not ready, not serving
                           endpoint("10.244.0.4", false, true, true),                  // terminating, still serving
                           endpoint("10.244.0.5", false, false, true),                 // terminating, no longer serving
                           endpoint("10.244.0.6", std::nullopt, std::nullopt, false),  // ready missing
                           endpoint("10.244.0.7", true, true, false),                  // ready
                           endpoint("10.244.0.8", true, true, true),  // ready but terminating: not for new flows
                       })});
    auto p = plan_services(spec);
    EXPECT_TRUE(p.problems.empty()) << problems(p);
    ASSERT_EQ(p.ports.size(), 1u);
    EXPECT_EQ(p.ports[0].backends, (std::vector<L4Addr>{tcp("10.244.0.1", 8080), tcp("10.244.0.2", 8080),
                                                        tcp("10.244.0.6", 8080), tcp("10.244.0.7", 8080)}));
    EXPECT_EQ(p.ports[0].terminating, (std::vector<L4Addr>{tcp("10.244.0.4", 8080), tcp("10.244.0.8", 8080)}));
}

TEST(PlanServicesTest, EndpointWithoutAddressesIgnored) {
    json eps = json::array({endpoint("10.244.0.1"), json{{"addresses", json::array()}}, json::object(),
                            json{{"addresses", json::array({5})}}});
    auto spec = spec_of({service("default", "web", "10.96.1.1", {port("http", 80)})},
                        {slice("default", "web-1", "web", {port("http", 8080)}, eps)});
    auto p = plan_services(spec);
    EXPECT_TRUE(p.problems.empty()) << problems(p);
    ASSERT_EQ(p.ports.size(), 1u);
    EXPECT_EQ(p.ports[0].backends, (std::vector<L4Addr>{tcp("10.244.0.1", 8080)}));
}

// ---------------------------------------------------------------- several slices

TEST(PlanServicesTest, SlicesOfOneServiceMergedSortedAndDeduplicated) {
    auto spec =
        spec_of({service("default", "web", "10.96.1.1", {port("http", 80)})},
                {slice("default", "web-a", "web", {port("http", 8080)},
                       {endpoint("10.244.2.2"), endpoint("10.244.1.1"), endpoint("10.244.9.9", false, true, true)}),
                 slice("default", "web-b", "web", {port("http", 8080)},
                       {endpoint("10.244.3.3"), endpoint("10.244.1.1"), endpoint("10.244.9.9", false, true, true)}),
                 // Same address, different resolved port (pods mid-rollout): a distinct backend.
                 slice("default", "web-c", "web", {port("http", 8081)}, {endpoint("10.244.1.1")})});
    auto p = plan_services(spec);
    EXPECT_TRUE(p.problems.empty()) << problems(p);
    ASSERT_EQ(p.ports.size(), 1u);
    EXPECT_EQ(p.ports[0].backends, (std::vector<L4Addr>{tcp("10.244.1.1", 8080), tcp("10.244.1.1", 8081),
                                                        tcp("10.244.2.2", 8080), tcp("10.244.3.3", 8080)}));
    EXPECT_EQ(p.ports[0].terminating, (std::vector<L4Addr>{tcp("10.244.9.9", 8080)}));
}

TEST(PlanServicesTest, SlicesOfOtherAddressTypesIgnored) {
    auto spec =
        spec_of({service("default", "web", "10.96.1.1", {port("http", 80)})},
                {slice("default", "web-v4", "web", {port("http", 8080)}, {endpoint("10.244.1.1")}),
                 slice("default", "web-v6", "web", {port("http", 8080)}, {endpoint("fd00:10:244::1")}, "IPv6"),
                 slice("default", "web-fqdn", "web", {port("http", 8080)}, {endpoint("db.example.com")}, "FQDN")});
    auto p = plan_services(spec);
    EXPECT_TRUE(p.problems.empty()) << problems(p);
    ASSERT_EQ(p.ports.size(), 1u);
    EXPECT_EQ(p.ports[0].backends, (std::vector<L4Addr>{tcp("10.244.1.1", 8080)}));
}

// `bad` next to a good slice of Service default/web: one problem, naming
// both `a` and `b`, and nothing of `bad` among the backends.
void expect_bad_slice_ignored(json bad, const std::string& a, const std::string& b) {
    auto spec =
        spec_of({service("default", "web", "10.96.1.1", {port("http", 80)})},
                {std::move(bad), slice("default", "web-good", "web", {port("http", 8080)}, {endpoint("10.244.2.2")})});
    auto p = plan_services(spec);
    ASSERT_NO_FATAL_FAILURE(expect_one_problem_one_port(p, a, b, "default/web:http"));
    EXPECT_EQ(p.ports[0].backends, (std::vector<L4Addr>{tcp("10.244.2.2", 8080)}));
}

TEST(PlanServicesTest, SliceWithoutServiceNameLabelIsAProblem) {
    expect_bad_slice_ignored(slice("default", "orphan", "", {port("http", 8080)}, {endpoint("10.244.1.1")}),
                             "EndpointSlice default/orphan", "kubernetes.io/service-name");
}

TEST(PlanServicesTest, SliceWithInvalidAddressIsAProblemAndIgnoredWhole) {
    // Nothing of the bad slice, not even the valid addresses before the bad one.
    expect_bad_slice_ignored(slice("default", "web-bad", "web", {port("http", 8080)},
                                   {endpoint("10.244.1.1"), endpoint("10.244.1.300"), endpoint("10.244.1.3")}),
                             "EndpointSlice default/web-bad", "10.244.1.300");
}

TEST(PlanServicesTest, SliceWithInvalidPortIsAProblemAndIgnoredWhole) {
    expect_bad_slice_ignored(
        slice("default", "web-bad", "web", {port("http", 8080), port("x", 0)}, {endpoint("10.244.1.1")}),
        "EndpointSlice default/web-bad", "invalid port");
}

// ---------------------------------------------------------------- skipped services

TEST(PlanServicesTest, HeadlessAndExternalNameSkippedSilently) {
    json headless = service("default", "headless", "None", {port("http", 80)});
    json headless_ips = service("default", "headless2", "", {port("http", 80)});
    headless_ips["spec"]["clusterIPs"] = {"None"};
    json ext = service("default", "ext", "", {port("http", 80)});
    ext["spec"]["type"] = "ExternalName";
    ext["spec"]["externalName"] = "db.example.com";
    json no_ip = service("default", "pending", "", {port("http", 80)});
    auto spec =
        spec_of({headless, headless_ips, ext, no_ip, service("default", "web", "10.96.1.1", {port("http", 80)})},
                {slice("default", "headless-1", "headless", {port("http", 80)}, {endpoint("10.244.1.1")})});
    auto p = plan_services(spec);
    EXPECT_TRUE(p.problems.empty()) << problems(p);
    ASSERT_EQ(p.ports.size(), 1u);
    EXPECT_EQ(p.ports[0].name, "default/web:http");
}

TEST(PlanServicesTest, ExternalNameWithClusterIPStillSkipped) {
    json ext = service("default", "ext", "10.96.7.7", {port("http", 80)});
    ext["spec"]["type"] = "ExternalName";
    auto p = plan_services(spec_of({ext}));
    EXPECT_TRUE(p.ports.empty());
    EXPECT_TRUE(p.problems.empty()) << problems(p);
}

TEST(PlanServicesTest, InvalidClusterIPSkipsServiceWithProblem) {
    auto spec = spec_of({service("default", "bad", "10.96.1.300", {port("http", 80)}),
                         service("default", "good", "10.96.1.1", {port("http", 80)})});
    expect_one_problem_one_port(plan_services(spec), "Service default/bad", "10.96.1.300", "default/good:http");
}

TEST(PlanServicesTest, InvalidSecondClusterIPSkipsServiceWithProblem) {
    json svc = service("default", "bad", "10.96.1.1", {port("http", 80)});
    svc["spec"]["clusterIPs"] = {"10.96.1.1", "garbage"};
    auto p = plan_services(spec_of({svc}));
    EXPECT_TRUE(p.ports.empty());
    EXPECT_TRUE(has_problem(p, "Service default/bad", "garbage")) << problems(p);
}

struct BadPortCase {
    const char* label;
    json port;
};

class PlanServicesBadPortTest : public ::testing::TestWithParam<BadPortCase> {};

TEST_P(PlanServicesBadPortTest, WholeServiceSkippedWithProblem) {
    // A good port first: it must not be programmed alone.
    auto spec =
        spec_of({service("default", "bad", "10.96.1.1", {port("ok", 443), GetParam().port, port("also-ok", 8443)}),
                 service("default", "good", "10.96.1.2", {port("http", 80)})},
                {slice("default", "bad-1", "bad", {port("ok", 8443)}, {endpoint("10.244.1.1")})});
    expect_one_problem_one_port(plan_services(spec), "Service default/bad", "invalid port", "default/good:http");
}

INSTANTIATE_TEST_SUITE_P(Ports, PlanServicesBadPortTest,
                         ::testing::Values(BadPortCase{"Zero", json{{"name", "x"}, {"port", 0}}},
                                           BadPortCase{"TooLarge", json{{"name", "x"}, {"port", 70000}}},
                                           BadPortCase{"Negative", json{{"name", "x"}, {"port", -80}}},
                                           BadPortCase{"String", json{{"name", "x"}, {"port", "80"}}},
                                           BadPortCase{"Float", json{{"name", "x"}, {"port", 80.5}}},
                                           BadPortCase{"Missing", json{{"name", "x"}}},
                                           BadPortCase{"Sctp", json{{"name", "x"}, {"port", 80}, {"protocol", "SCTP"}}},
                                           BadPortCase{"LowercaseTcp",
                                                       json{{"name", "x"}, {"port", 80}, {"protocol", "tcp"}}}),
                         [](const auto& info) { return std::string(info.param.label); });

TEST(PlanServicesTest, PortBoundariesAccepted) {
    auto p = plan_services(spec_of({service("default", "edge", "10.96.1.1", {port("lo", 1), port("hi", 65535)})}));
    EXPECT_TRUE(p.problems.empty()) << problems(p);
    ASSERT_EQ(p.ports.size(), 2u);
    EXPECT_EQ(p.ports[0].frontend, tcp("10.96.1.1", 1));
    EXPECT_EQ(p.ports[1].frontend, tcp("10.96.1.1", 65535));
}

TEST(PlanServicesTest, DuplicateFrontendFirstByNamespaceNameWinsOtherSkippedWhole) {
    // "b/zz" and "a/web" both claim 10.96.1.1:80/tcp; "a/web" sorts first.
    // "b/zz" also has a port nobody else uses; it must not be programmed.
    auto spec =
        spec_of({service("b", "zz", "10.96.1.1", {port("http", 80), port("extra", 81)}),
                 service("a", "web", "10.96.1.1", {port("http", 80)})},
                {slice("a", "web-1", "web", {port("http", 8080)}, {endpoint("10.244.1.1")}),
                 slice("b", "zz-1", "zz", {port("http", 9090), port("extra", 9091)}, {endpoint("10.244.2.2")})});
    auto p = plan_services(spec);
    ASSERT_NO_FATAL_FAILURE(expect_one_problem_one_port(p, "Service b/zz", "a/web", "a/web:http"));
    EXPECT_TRUE(has_problem(p, "Service b/zz", "10.96.1.1:80/tcp")) << problems(p);
    EXPECT_EQ(p.ports[0].backends, (std::vector<L4Addr>{tcp("10.244.1.1", 8080)}));
    EXPECT_EQ(find(p, tcp("10.96.1.1", 81)), nullptr);
}

TEST(PlanServicesTest, SameVipDifferentPortOrProtocolIsNoClash) {
    auto spec = spec_of({service("default", "a", "10.96.1.1", {port("dns", 53, "UDP")}),
                         service("default", "b", "10.96.1.1", {port("dns", 53, "TCP")}),
                         service("default", "c", "10.96.1.1", {port("http", 80)})});
    auto p = plan_services(spec);
    EXPECT_TRUE(p.problems.empty()) << problems(p);
    EXPECT_EQ(p.ports.size(), 3u);
}

TEST(PlanServicesTest, DuplicateFrontendWithinOneServiceNotProgrammedTwice) {
    // Two ports of one service with the same port and protocol (the API
    // server rejects this, but the agent also reads files and etcd).
    // ServicePlan promises "no duplicates"; two entries for one frontend
    // would make ServiceSync program the same slots twice.
    auto spec =
        spec_of({service("default", "dup", "10.96.1.1", {port("a", 80), port("b", 80)})},
                {slice("default", "dup-1", "dup", {port("a", 8080), port("b", 9090)}, {endpoint("10.244.1.1")})});
    auto p = plan_services(spec);
    size_t n = 0;
    for (const auto& sp : p.ports) n += sp.frontend == tcp("10.96.1.1", 80);
    // Regression (fixed): plan_services checks a service's frontends only against other
    // services (`taken`), not against each other, so both ports end up in
    // plan.ports with the same frontend. Expected: the service skipped whole
    // with a problem (it has an invalid field).
    EXPECT_EQ(n, 0u) << "frontend 10.96.1.1:80/tcp planned " << n << " times";
    EXPECT_TRUE(has_problem(p, "Service default/dup")) << problems(p);
}

TEST(PlanServicesTest, TooManyBackendsSkipsService) {
    // kMaxBackendsPerService + 1 ready endpoints: 10.1.0.0 .. 10.1.255.255.
    static_assert(kMaxBackendsPerService + 1 == 65536);
    json eps = json::array();
    for (uint32_t i = 0; i <= kMaxBackendsPerService; ++i) eps.push_back(endpoint(Ipv4(0x0a010000u + i).str()));
    auto spec = spec_of({service("default", "huge", "10.96.1.1", {port("http", 80)}),
                         service("default", "small", "10.96.1.2", {port("http", 80)})},
                        {slice("default", "huge-1", "huge", {port("http", 8080)}, eps),
                         slice("default", "small-1", "small", {port("http", 8080)}, {endpoint("10.244.1.1")})});
    expect_one_problem_one_port(plan_services(spec), "Service default/huge", "65536", "default/small:http");
}

TEST(PlanServicesTest, ExactlyMaxBackendsAccepted) {
    // 65535 ready endpoints across two slices, plus duplicates that must not count.
    json a = json::array(), b = json::array();
    for (uint32_t i = 0; i < kMaxBackendsPerService; ++i)
        (i % 2 ? a : b).push_back(endpoint(Ipv4(0x0a010000u + i).str()));
    for (uint32_t i = 0; i < 100; ++i) b.push_back(endpoint(Ipv4(0x0a010000u + i).str()));
    auto spec = spec_of({service("default", "big", "10.96.1.1", {port("http", 80)})},
                        {slice("default", "big-a", "big", {port("http", 8080)}, a),
                         slice("default", "big-b", "big", {port("http", 8080)}, b)});
    auto p = plan_services(spec);
    EXPECT_TRUE(p.problems.empty()) << problems(p);
    ASSERT_EQ(p.ports.size(), 1u);
    EXPECT_EQ(p.ports[0].backends.size(), kMaxBackendsPerService);
    EXPECT_TRUE(std::is_sorted(p.ports[0].backends.begin(), p.ports[0].backends.end()));
}

TEST(PlanServicesTest, ResultsSortedByFrontend) {
    // Name order differs from frontend order.
    auto spec = spec_of({service("a", "z", "10.96.9.9", {port("http", 80)}),
                         service("b", "y", "10.96.0.2", {port("https", 443), port("http", 80)}),
                         service("c", "x", "10.96.0.10", {port("dns", 53, "UDP"), port("dns-tcp", 53)}),
                         service("d", "w", "10.96.0.2", {port("alt", 8080)})});
    auto p = plan_services(spec);
    EXPECT_TRUE(p.problems.empty()) << problems(p);
    std::vector<L4Addr> got;
    for (const auto& sp : p.ports) got.push_back(sp.frontend);
    EXPECT_EQ(got, (std::vector<L4Addr>{tcp("10.96.0.2", 80), tcp("10.96.0.2", 443), tcp("10.96.0.2", 8080),
                                        tcp("10.96.0.10", 53), udp("10.96.0.10", 53), tcp("10.96.9.9", 80)}));
}

TEST(PlanServicesTest, MissingNamespaceMeansDefault) {
    json svc = service("default", "web", "10.96.1.1", {port("http", 80)});
    svc["metadata"].erase("namespace");
    json sl = slice("default", "web-1", "web", {port("http", 8080)}, {endpoint("10.244.1.1")});
    sl["metadata"].erase("namespace");
    auto p = plan_services(spec_of({svc}, {sl}));
    EXPECT_TRUE(p.problems.empty()) << problems(p);
    ASSERT_EQ(p.ports.size(), 1u);
    EXPECT_EQ(p.ports[0].name, "default/web:http");
    EXPECT_EQ(p.ports[0].backends, (std::vector<L4Addr>{tcp("10.244.1.1", 8080)}));
}

TEST(PlanServicesTest, MalformedObjectsDoNotThrow) {
    ClusterSpec c;
    int n = 0;
    auto add = [&](ObjectSet& set, json j) {
        set.add("x/" + std::to_string(n++), std::make_shared<const json>(std::move(j)));
    };
    for (json j : {json::object(), json{{"spec", 5}}, json{{"metadata", "x"}, {"spec", {{"ports", 3}}}},
                   json{{"spec", {{"clusterIP", 7}, {"clusterIPs", {1, 2}}}}},
                   json{{"spec", {{"clusterIP", "10.96.1.1"}, {"ports", {7, "x"}}}}}})
        add(c.services, j);
    for (json j : {json::object(), json{{"metadata", {{"labels", {{"kubernetes.io/service-name", 5}}}}}},
                   json{{"metadata", {{"labels", {{"kubernetes.io/service-name", "web"}}}}},
                        {"endpoints", {{{"conditions", "x"}, {"addresses", {"10.244.1.1"}}}}},
                        {"ports", 3}}})
        add(c.endpoint_slices, j);
    EXPECT_NO_THROW({
        auto p = plan_services(c);
        (void)p;
    });
}

}  // namespace
}  // namespace skiff::agent
