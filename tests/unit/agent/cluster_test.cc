// The agent's view of the cluster: parse_kube_list and plan_nodes
// (userspace/agent/cluster.cc).
#include "agent/cluster.h"

#include <algorithm>
#include <exception>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cluster_builders.h"

namespace skiff::agent {
namespace {

using namespace testbed;

// ---------------------------------------------------------------- parse_kube_list

TEST(KubeListTest, MixedListSortsItemsByKind) {
    const char* text = R"({
      "apiVersion": "v1", "kind": "List",
      "items": [
        {"kind": "Node", "metadata": {"name": "node-a"},
         "spec": {"podCIDR": "10.244.1.0/24"},
         "status": {"addresses": [{"type": "InternalIP", "address": "192.168.50.11"}]}},
        {"kind": "Service", "metadata": {"name": "web", "namespace": "default"}},
        {"kind": "EndpointSlice", "metadata": {"name": "web-abc"}},
        {"kind": "Pod", "metadata": {"name": "ignored"}},
        {"metadata": {"name": "no-kind-in-a-List"}},
        {"kind": "Node", "metadata": {"name": "node-b"},
         "spec": {"podCIDRs": ["10.244.2.0/24"]},
         "status": {"addresses": [{"type": "InternalIP", "address": "192.168.50.12"}]}},
        {"kind": "Service", "metadata": {"name": "db", "namespace": "default"}}
      ]})";
    auto c = parse_kube_list(text);
    ASSERT_TRUE(c.ok()) << c.error().message;
    ASSERT_EQ(c->nodes.size(), 2u);
    EXPECT_EQ(c->nodes[0], (NodeSpec{"node-a", ip("192.168.50.11"), {"10.244.1.0/24"}}));
    EXPECT_EQ(c->nodes[1], (NodeSpec{"node-b", ip("192.168.50.12"), {"10.244.2.0/24"}}));
    ASSERT_EQ(c->services.size(), 2u);
    ASSERT_NE(c->services.find("default/web"), nullptr);
    EXPECT_EQ((**c->services.find("default/web"))["metadata"]["name"], "web");
    ASSERT_NE(c->services.find("default/db"), nullptr);
    ASSERT_EQ(c->endpoint_slices.size(), 1u);
    ASSERT_NE(c->endpoint_slices.find("default/web-abc"), nullptr);  // namespace defaults to "default"
    EXPECT_TRUE(c->problems.empty());
}

TEST(KubeListTest, ObjectListedTwiceKeepsFirstAndSaysSo) {
    const char* text = R"({"kind": "List", "items": [
        {"kind": "Service", "metadata": {"name": "web", "namespace": "shop"}, "spec": {"clusterIP": "10.96.0.1"}},
        {"kind": "Service", "metadata": {"name": "web", "namespace": "shop"}, "spec": {"clusterIP": "10.96.0.2"}},
        {"kind": "Service", "metadata": {"name": "web", "namespace": "other"}, "spec": {"clusterIP": "10.96.0.3"}}]})";
    auto c = parse_kube_list(text);
    ASSERT_TRUE(c.ok()) << c.error().message;
    ASSERT_EQ(c->services.size(), 2u);
    EXPECT_EQ((**c->services.find("shop/web"))["spec"]["clusterIP"], "10.96.0.1");
    ASSERT_EQ(c->problems.size(), 1u);
    EXPECT_NE(c->problems[0].find("Service shop/web is listed more than once"), std::string::npos) << c->problems[0];
}

TEST(ObjectSetTest, ReuseUnchangedKeepsPointersOfEqualObjectsOnly) {
    ObjectSet before, after;
    before.add(nlohmann::json{{"metadata", {{"name", "a"}}}, {"v", 1}});
    before.add(nlohmann::json{{"metadata", {{"name", "b"}}}, {"v", 1}});
    before.add(nlohmann::json{{"metadata", {{"name", "gone"}}}});
    after.add(nlohmann::json{{"metadata", {{"name", "a"}}}, {"v", 1}});  // equal
    after.add(nlohmann::json{{"metadata", {{"name", "b"}}}, {"v", 2}});  // changed
    after.add(nlohmann::json{{"metadata", {{"name", "new"}}}});
    after.reuse_unchanged(before);
    EXPECT_EQ(*after.find("default/a"), *before.find("default/a"));
    EXPECT_NE(*after.find("default/b"), *before.find("default/b"));
    EXPECT_EQ((**after.find("default/b"))["v"], 2);
    EXPECT_EQ(after.find("default/gone"), nullptr);
    ASSERT_NE(after.find("default/new"), nullptr);
}

TEST(KubeListTest, NodeListWithoutPerItemKind) {
    const char* text = R"({
      "kind": "NodeList",
      "items": [
        {"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.1.0/24"},
         "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}},
        {"metadata": {"name": "n2"}, "spec": {"podCIDR": "10.244.2.0/24"},
         "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}}
      ]})";
    auto c = parse_kube_list(text);
    ASSERT_TRUE(c.ok()) << c.error().message;
    ASSERT_EQ(c->nodes.size(), 2u);
    EXPECT_EQ(c->nodes[0].name, "n1");
    EXPECT_EQ(c->nodes[1].name, "n2");
    EXPECT_EQ(c->nodes[1].ip, ip("10.0.0.2"));
    EXPECT_TRUE(c->services.empty());
    EXPECT_TRUE(c->endpoint_slices.empty());
}

TEST(KubeListTest, ItemsWithoutKindInAPlainListAreIgnored) {
    auto c = parse_kube_list(R"({"kind": "List", "items": [{"metadata": {"name": "n1"}}]})");
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_TRUE(c->nodes.empty());
}

TEST(KubeListTest, PodCIDRsPreferredOverPodCIDR) {
    const char* text = R"({"kind": "NodeList", "items": [
      {"metadata": {"name": "both"},
       "spec": {"podCIDR": "10.244.9.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"]}},
      {"metadata": {"name": "single"}, "spec": {"podCIDR": "10.244.2.0/24"}},
      {"metadata": {"name": "empty-list"}, "spec": {"podCIDR": "10.244.3.0/24", "podCIDRs": []}},
      {"metadata": {"name": "none"}, "spec": {}},
      {"metadata": {"name": "junk"}, "spec": {"podCIDRs": [5, "10.244.4.0/24", null]}}
    ]})";
    auto c = parse_kube_list(text);
    ASSERT_TRUE(c.ok()) << c.error().message;
    ASSERT_EQ(c->nodes.size(), 5u);
    EXPECT_EQ(c->nodes[0].pod_cidrs, (std::vector<std::string>{"10.244.1.0/24", "fd00:10:244:1::/64"}));
    EXPECT_EQ(c->nodes[1].pod_cidrs, (std::vector<std::string>{"10.244.2.0/24"}));
    EXPECT_EQ(c->nodes[2].pod_cidrs, (std::vector<std::string>{"10.244.3.0/24"}));
    EXPECT_TRUE(c->nodes[3].pod_cidrs.empty());
    EXPECT_EQ(c->nodes[4].pod_cidrs, (std::vector<std::string>{"10.244.4.0/24"}));
}

TEST(KubeListTest, InternalIPChosenOverHostnameAndExternalIP) {
    const char* text = R"({"kind": "NodeList", "items": [
      {"metadata": {"name": "a"}, "status": {"addresses": [
        {"type": "Hostname", "address": "a.example"},
        {"type": "ExternalIP", "address": "203.0.113.5"},
        {"type": "InternalIP", "address": "192.168.50.11"}]}},
      {"metadata": {"name": "external-only"}, "status": {"addresses": [
        {"type": "ExternalIP", "address": "203.0.113.6"},
        {"type": "Hostname", "address": "10.0.0.9"}]}},
      {"metadata": {"name": "v6-then-v4"}, "status": {"addresses": [
        {"type": "InternalIP", "address": "fd00::12"},
        {"type": "InternalIP", "address": "192.168.50.12"}]}},
      {"metadata": {"name": "no-status"}}
    ]})";
    auto c = parse_kube_list(text);
    ASSERT_TRUE(c.ok()) << c.error().message;
    ASSERT_EQ(c->nodes.size(), 4u);
    EXPECT_EQ(c->nodes[0].ip, ip("192.168.50.11"));
    EXPECT_FALSE(c->nodes[1].ip.has_value());
    EXPECT_EQ(c->nodes[2].ip, ip("192.168.50.12"));
    EXPECT_FALSE(c->nodes[3].ip.has_value());
}

TEST(KubeListTest, EmptyItems) {
    auto c = parse_kube_list(R"({"kind": "List", "items": []})");
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_TRUE(c->nodes.empty());
    EXPECT_TRUE(c->services.empty());
}

TEST(KubeListTest, NotJson) {
    for (const char* text : {"", "{", "kind: List\nitems: []\n", "{\"items\": [}"}) {
        auto c = parse_kube_list(text);
        ASSERT_FALSE(c.ok()) << text;
        EXPECT_EQ(c.error().code, EINVAL);
        EXPECT_NE(c.error().message.find("JSON"), std::string::npos) << c.error().message;
    }
}

TEST(KubeListTest, NoItemsArray) {
    for (const char* text :
         {R"({"kind": "List"})", R"({"kind": "List", "items": {}})", R"({"items": null})", "[]", "\"items\"", "17"}) {
        auto c = parse_kube_list(text);
        ASSERT_FALSE(c.ok()) << text;
        EXPECT_EQ(c.error().code, EINVAL);
        EXPECT_NE(c.error().message.find("items"), std::string::npos) << c.error().message;
    }
}

TEST(KubeListTest, ItemNotAnObject) {
    for (const char* text : {R"({"kind": "List", "items": [{"kind": "Node"}, 5]})",
                             R"({"kind": "NodeList", "items": ["node-a"]})", R"({"items": [null]})"}) {
        auto c = parse_kube_list(text);
        ASSERT_FALSE(c.ok()) << text;
        EXPECT_EQ(c.error().code, EINVAL);
        EXPECT_NE(c.error().message.find("not an object"), std::string::npos) << c.error().message;
    }
}

// Regression (fixed): parse_kube_list uses nlohmann's json::value("kind"/"type", default),
// which throws json::type_error when the key is present but not a string.
// Malformed source content then escapes as an exception instead of an
// Error (or a skipped item); in the agent it propagates out of
// FileSource::poll() / Agent::tick() and terminates the process.
TEST(KubeListTest, NonStringKindOrAddressTypeDoesNotThrow) {
    const char* texts[] = {
        R"({"kind": "List", "items": [{"kind": 5, "metadata": {"name": "x"}}]})",
        R"({"kind": ["NodeList"], "items": [{"metadata": {"name": "x"}}]})",
        R"({"kind": "NodeList", "items": [{"metadata": {"name": "x"}, "status": {"addresses": [
              {"type": 1, "address": "10.0.0.1"}, {"type": "InternalIP", "address": "10.0.0.2"}]}}]})",
    };
    for (const char* text : texts) {
        try {
            auto c = parse_kube_list(text);
            if (c.ok()) {
                for (const auto& n : c->nodes) {
                    if (n.ip) {
                        EXPECT_EQ(*n.ip, ip("10.0.0.2")) << text;
                    }
                }
            }
        } catch (const std::exception& e) {
            ADD_FAILURE() << "parse_kube_list threw " << e.what() << " for " << text;
        }
    }
}

// ---------------------------------------------------------------- plan_nodes

const Ipv4Prefix kCluster = pfx("10.244.0.0/16");

const NodeRoute* route_for(const Plan& p, const char* cidr) {
    for (const auto& r : p.routes)
        if (r.pod_cidr == pfx(cidr)) return &r;
    return nullptr;
}

std::string all_problems(const Plan& p) {
    std::string s;
    for (const auto& x : p.problems) s += x + "\n";
    return s;
}

bool any_problem_mentions(const Plan& p, const std::vector<std::string>& words) {
    return std::any_of(p.problems.begin(), p.problems.end(), [&](const std::string& s) {
        return std::all_of(words.begin(), words.end(),
                           [&](const std::string& w) { return s.find(w) != std::string::npos; });
    });
}

std::vector<std::string> route_nodes(const Plan& p) {
    std::vector<std::string> out;
    for (const auto& r : p.routes) out.push_back(r.node);
    return out;
}

// Plans `spec` as node `self` with 10.244.1.0/24 programmed toward
// `next_hop`: one route, `winner`'s, and a problem naming `winner` and `loser`.
Plan expect_claim_won(const ClusterSpec& spec, const std::string& self, const char* next_hop, const std::string& winner,
                      const std::string& loser) {
    Plan p = plan_nodes(spec, self, kCluster, {{pfx("10.244.1.0/24"), ip(next_hop)}});
    EXPECT_EQ(route_nodes(p), std::vector<std::string>{winner}) << all_problems(p);
    EXPECT_TRUE(any_problem_mentions(p, {winner, loser})) << all_problems(p);
    return p;
}

TEST(PlanNodesTest, EmptyCluster) {
    Plan p = plan_nodes(ClusterSpec{}, "node-a", kCluster, {});
    EXPECT_TRUE(p.routes.empty());
    EXPECT_TRUE(p.problems.empty());
    EXPECT_FALSE(p.local_pod_cidr.has_value());
}

TEST(PlanNodesTest, LocalFlagAndLocalPodCidr) {
    auto spec =
        cluster({node("node-a", "192.168.50.11", {"10.244.1.0/24"}), node("node-b", "192.168.50.12", {"10.244.2.0/24"}),
                 node("node-c", "192.168.50.13", {"10.244.3.0/24"})});
    Plan p = plan_nodes(spec, "node-b", kCluster, {});
    EXPECT_TRUE(p.problems.empty()) << all_problems(p);
    ASSERT_EQ(p.routes.size(), 3u);
    ASSERT_TRUE(p.local_pod_cidr.has_value());
    EXPECT_EQ(*p.local_pod_cidr, pfx("10.244.2.0/24"));
    for (const auto& r : p.routes) EXPECT_EQ(r.local, r.node == "node-b") << r.node;
    const NodeRoute* c = route_for(p, "10.244.3.0/24");
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->node, "node-c");
    EXPECT_EQ(c->node_ip, ip("192.168.50.13"));

    // A node name that is not in the cluster: nothing is local.
    Plan q = plan_nodes(spec, "node-z", kCluster, {});
    EXPECT_EQ(q.routes.size(), 3u);
    EXPECT_FALSE(q.local_pod_cidr.has_value());
    for (const auto& r : q.routes) EXPECT_FALSE(r.local);
}

TEST(PlanNodesTest, NodeWithSeveralIpv4Cidrs) {
    auto spec = cluster({node("node-a", "192.168.50.11", {"10.244.1.0/24", "10.244.101.0/24"})});
    Plan p = plan_nodes(spec, "node-a", kCluster, {});
    EXPECT_TRUE(p.problems.empty()) << all_problems(p);
    ASSERT_EQ(p.routes.size(), 2u);
    EXPECT_EQ(p.local_pod_cidr, pfx("10.244.1.0/24"));
}

TEST(PlanNodesTest, NodeWithoutAddressIsSkippedWithAProblem) {
    auto spec =
        cluster({node("node-a", "192.168.50.11", {"10.244.1.0/24"}), node("node-noip", nullptr, {"10.244.2.0/24"})});
    Plan p = plan_nodes(spec, "node-noip", kCluster, {});
    ASSERT_EQ(p.routes.size(), 1u);
    EXPECT_EQ(p.routes[0].node, "node-a");
    EXPECT_FALSE(p.local_pod_cidr.has_value());
    ASSERT_EQ(p.problems.size(), 1u);
    EXPECT_NE(p.problems[0].find("node-noip"), std::string::npos) << p.problems[0];
}

TEST(PlanNodesTest, NodeWithoutNameIsSkippedWithAProblem) {
    auto spec = cluster({node("", "192.168.50.11", {"10.244.1.0/24"})});
    Plan p = plan_nodes(spec, "", kCluster, {});
    EXPECT_TRUE(p.routes.empty());
    EXPECT_EQ(p.problems.size(), 1u);
    EXPECT_FALSE(p.local_pod_cidr.has_value());
}

TEST(PlanNodesTest, InvalidCidrIsSkippedOthersKept) {
    auto spec = cluster({node("node-a", "192.168.50.11", {"garbage", "10.244.1.1/24", "10.244.5.0/24"})});
    Plan p = plan_nodes(spec, "node-a", kCluster, {});
    ASSERT_EQ(p.routes.size(), 1u);
    EXPECT_EQ(p.routes[0].pod_cidr, pfx("10.244.5.0/24"));
    EXPECT_EQ(p.local_pod_cidr, pfx("10.244.5.0/24"));
    ASSERT_EQ(p.problems.size(), 2u) << all_problems(p);
    EXPECT_TRUE(any_problem_mentions(p, {"node-a", "garbage"})) << all_problems(p);
    EXPECT_TRUE(any_problem_mentions(p, {"node-a", "10.244.1.1/24"})) << all_problems(p);
}

TEST(PlanNodesTest, Ipv6CidrIgnoredSilently) {
    auto spec = cluster({node("node-a", "192.168.50.11", {"fd00:10:244:1::/64", "10.244.1.0/24"}),
                         node("node-v6only", "192.168.50.12", {"fd00:10:244:2::/64"})});
    Plan p = plan_nodes(spec, "node-a", kCluster, {});
    EXPECT_TRUE(p.problems.empty()) << all_problems(p);
    ASSERT_EQ(p.routes.size(), 1u);
    EXPECT_EQ(p.routes[0].pod_cidr, pfx("10.244.1.0/24"));
    EXPECT_EQ(p.local_pod_cidr, pfx("10.244.1.0/24"));
}

TEST(PlanNodesTest, OutsideClusterCidrIsSkipped) {
    auto spec = cluster(
        {node("node-out", "192.168.50.11", {"10.245.1.0/24"}), node("node-wide", "192.168.50.12", {"10.244.0.0/15"}),
         node("node-huge", "192.168.50.13", {"10.0.0.0/8"}), node("node-ok", "192.168.50.14", {"10.244.255.0/24"})});
    Plan p = plan_nodes(spec, "node-out", kCluster, {});
    ASSERT_EQ(p.routes.size(), 1u) << all_problems(p);
    EXPECT_EQ(p.routes[0].node, "node-ok");
    EXPECT_FALSE(p.local_pod_cidr.has_value());
    ASSERT_EQ(p.problems.size(), 3u) << all_problems(p);
    for (const char* n : {"node-out", "node-wide", "node-huge"})
        EXPECT_TRUE(any_problem_mentions(p, {n, "10.244.0.0/16"})) << n << "\n" << all_problems(p);
}

TEST(PlanNodesTest, OverlapWithoutCurrentStateNameOrderWins) {
    // Listed out of name order on purpose: the winner is by name, not position.
    auto spec =
        cluster({node("zeta", "192.168.50.26", {"10.244.1.0/24"}), node("alpha", "192.168.50.1", {"10.244.1.0/24"})});
    Plan p = plan_nodes(spec, "zeta", kCluster, {});
    ASSERT_EQ(p.routes.size(), 1u);
    EXPECT_EQ(p.routes[0].node, "alpha");
    EXPECT_EQ(p.routes[0].node_ip, ip("192.168.50.1"));
    EXPECT_FALSE(p.local_pod_cidr.has_value()) << "the local node lost its claim";
    ASSERT_EQ(p.problems.size(), 1u);
    EXPECT_TRUE(any_problem_mentions(p, {"zeta", "alpha", "10.244.1.0/24"})) << all_problems(p);
}

TEST(PlanNodesTest, PartialOverlapIsAlsoAConflict) {
    auto spec =
        cluster({node("b-wide", "192.168.50.2", {"10.244.0.0/23"}), node("a-narrow", "192.168.50.1", {"10.244.1.0/24"}),
                 node("c-elsewhere", "192.168.50.3", {"10.244.2.0/24"})});
    Plan p = plan_nodes(spec, "x", kCluster, {});
    ASSERT_EQ(p.routes.size(), 2u) << all_problems(p);
    EXPECT_NE(route_for(p, "10.244.1.0/24"), nullptr);
    EXPECT_NE(route_for(p, "10.244.2.0/24"), nullptr);
    EXPECT_EQ(route_for(p, "10.244.0.0/23"), nullptr);
    EXPECT_TRUE(any_problem_mentions(p, {"b-wide", "a-narrow", "10.244.0.0/23", "10.244.1.0/24"})) << all_problems(p);
}

TEST(PlanNodesTest, ProgrammedClaimWinsOverNewcomerThatSortsFirst) {
    auto spec = cluster(
        {node("alpha-newcomer", "192.168.50.1", {"10.244.1.0/24"}), node("zeta", "192.168.50.26", {"10.244.1.0/24"})});
    Plan p = expect_claim_won(spec, "zeta", "192.168.50.26", "zeta", "alpha-newcomer");
    ASSERT_EQ(p.routes.size(), 1u);
    EXPECT_EQ(p.routes[0].node_ip, ip("192.168.50.26"));
    EXPECT_TRUE(p.routes[0].local);
    EXPECT_EQ(p.local_pod_cidr, pfx("10.244.1.0/24"));
    EXPECT_EQ(p.problems.size(), 1u);
}

TEST(PlanNodesTest, WithoutAProgrammedClaimTheOlderNodeWinsThenName) {
    auto spec = cluster({node("alpha-newer", "192.168.50.1", {"10.244.1.0/24"}),
                         node("zeta-older", "192.168.50.26", {"10.244.1.0/24"}),
                         node("beta-undated", "192.168.50.2", {"10.244.1.0/24"})});
    spec.nodes[0].created = 2000;
    spec.nodes[1].created = 1000;
    Plan p = plan_nodes(spec, "x", kCluster, {});
    ASSERT_EQ(p.routes.size(), 1u);
    EXPECT_EQ(p.routes[0].node, "zeta-older");
    EXPECT_EQ(p.conflicts, 2u);
    // Programmed beats older.
    std::map<Ipv4Prefix, Ipv4> current = {{pfx("10.244.1.0/24"), ip("192.168.50.1")}};
    p = plan_nodes(spec, "x", kCluster, current);
    ASSERT_EQ(p.routes.size(), 1u);
    EXPECT_EQ(p.routes[0].node, "alpha-newer");
    // From the List's creationTimestamp.
    auto parsed = parse_kube_list(R"({"kind": "List", "items": [
        {"kind": "Node", "metadata": {"name": "a", "creationTimestamp": "2024-05-01T10:00:00Z"}},
        {"kind": "Node", "metadata": {"name": "b"}}]})");
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(parsed->nodes[0].created,
              creation_time(nlohmann::json{{"metadata", {{"creationTimestamp", "2024-05-01T10:00:00Z"}}}}));
    EXPECT_TRUE(parsed->nodes[0].created.has_value());
    EXPECT_FALSE(parsed->nodes[1].created.has_value());
}

TEST(PlanNodesTest, ProgrammedNarrowClaimWinsOverWiderNewcomer) {
    auto spec = cluster(
        {node("alpha-newcomer", "192.168.50.1", {"10.244.0.0/23"}), node("zeta", "192.168.50.26", {"10.244.1.0/24"})});
    expect_claim_won(spec, "x", "192.168.50.26", "zeta", "alpha-newcomer");
}

TEST(PlanNodesTest, ProgrammedMeansSameCidrAndSameNextHop) {
    // The map holds the CIDR with another IP (zeta moved, or a stale entry):
    // neither claim is "programmed", so name order decides.
    auto spec =
        cluster({node("alpha", "192.168.50.1", {"10.244.1.0/24"}), node("zeta", "192.168.50.26", {"10.244.1.0/24"})});
    expect_claim_won(spec, "x", "192.168.50.99", "alpha", "zeta");
}

TEST(PlanNodesTest, EndToEndFromKubeList) {
    const char* text = R"({"kind": "NodeList", "items": [
      {"metadata": {"name": "node-a"}, "spec": {"podCIDRs": ["10.244.1.0/24", "fd00:1::/64"]},
       "status": {"addresses": [{"type": "InternalIP", "address": "192.168.50.11"}]}},
      {"metadata": {"name": "node-b"}, "spec": {"podCIDR": "10.244.2.0/24"},
       "status": {"addresses": [{"type": "Hostname", "address": "node-b"}]}}
    ]})";
    auto c = parse_kube_list(text);
    ASSERT_TRUE(c.ok()) << c.error().message;
    Plan p = plan_nodes(*c, "node-a", kCluster, {});
    ASSERT_EQ(p.routes.size(), 1u);
    EXPECT_EQ(p.local_pod_cidr, pfx("10.244.1.0/24"));
    ASSERT_EQ(p.problems.size(), 1u);
    EXPECT_NE(p.problems[0].find("node-b"), std::string::npos);
}

}  // namespace
}  // namespace skiff::agent
