// Planning services across snapshots: ServicePlanner
// (userspace/agent/services.cc). Whatever the history of snapshots, its plan
// must equal plan_services() on the latest one (given the frontends it held
// before), and its deltas, applied in
// turn, must rebuild that plan; a change must only touch what it changed.
#include "agent/services.h"

#include <netinet/in.h>

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "object_store.h"

namespace skiff::agent {
namespace {

using nlohmann::json;

Ipv4 ip(const std::string& s) { return *Ipv4::parse(s); }

json service(const std::string& name, const std::string& vip, std::vector<int> ports,
             const std::string& type = "ClusterIP") {
    json ps = json::array();
    for (int p : ports) ps.push_back({{"name", "p" + std::to_string(p)}, {"port", p}, {"nodePort", 30000 + p}});
    return {{"kind", "Service"},
            {"metadata", {{"namespace", "ns"}, {"name", name}}},
            {"spec", {{"type", type}, {"clusterIP", vip}, {"ports", ps}}}};
}

json slice(const std::string& name, const std::string& svc, std::vector<std::string> addrs, std::vector<int> ports) {
    json eps = json::array(), ps = json::array();
    for (const auto& a : addrs) eps.push_back({{"addresses", {a}}});
    for (int p : ports) ps.push_back({{"name", "p" + std::to_string(p)}, {"port", 8000 + p}});
    return {{"kind", "EndpointSlice"},
            {"metadata", {{"namespace", "ns"}, {"name", name}, {"labels", {{"kubernetes.io/service-name", svc}}}}},
            {"addressType", "IPv4"},
            {"endpoints", eps},
            {"ports", ps}};
}

// Applies a delta to a frontend -> port map, as ServiceSync would.
void apply_delta(std::map<L4Addr, ServicePort>& m, const PlanDelta& d) {
    for (const auto& fe : d.removed) EXPECT_EQ(m.erase(fe), 1u) << "removed twice or never added: " << fe.str();
    for (const auto& sp : d.upserts) m[sp.frontend] = sp;
}

std::vector<ServicePort> ports_of(const std::map<L4Addr, ServicePort>& m) {
    std::vector<ServicePort> v;
    for (const auto& [fe, sp] : m) v.push_back(sp);
    return v;
}

TEST(ServicePlannerTest, OneChangedSliceGivesADeltaOfItsFrontendOnly) {
    Objects o;
    for (int i = 0; i < 200; ++i) {
        std::string n = "s" + std::to_string(i);
        o.services[n] = service(n, "10.96.0." + std::to_string(i + 1), {80});
        o.slices[n] = slice(n + "-1", n, {"10.244.1." + std::to_string(i + 1)}, {80});
    }
    ServicePlanner p;
    NodeContext node{};
    PlanDelta first = p.update(o.snapshot(), node);
    EXPECT_EQ(first.upserts.size(), 200u);
    EXPECT_TRUE(first.removed.empty());
    // The same snapshot again: nothing.
    EXPECT_TRUE(p.update(o.snapshot(), node).empty());
    // One endpoint changes.
    o.slices["s7"] = slice("s7-1", "s7", {"10.244.9.9"}, {80});
    PlanDelta d = p.update(o.snapshot(), node);
    ASSERT_EQ(d.upserts.size(), 1u);
    EXPECT_TRUE(d.removed.empty());
    EXPECT_EQ(d.upserts[0].frontend, (L4Addr{ip("10.96.0.8"), 80, IPPROTO_TCP}));
    EXPECT_EQ(d.upserts[0].backends, (std::vector<L4Addr>{{ip("10.244.9.9"), 8080, IPPROTO_TCP}}));
    // One service goes.
    o.services.erase("s3");
    d = p.update(o.snapshot(), node);
    EXPECT_TRUE(d.upserts.empty());
    ASSERT_EQ(d.removed.size(), 1u);
    EXPECT_EQ(d.removed[0], (L4Addr{ip("10.96.0.4"), 80, IPPROTO_TCP}));
    EXPECT_EQ(p.frontends(), 199u);
}

TEST(ServicePlannerTest, FreedFrontendGoesToTheNextClaimantButHeldOnesStay) {
    Objects o;
    o.services["a"] = service("a", "10.96.0.1", {80, 81});
    o.services["b"] = service("b", "10.96.0.1", {81, 82});  // loses 81 to a: skipped whole
    o.services["c"] = service("c", "10.96.0.1", {82});      // gets 82 while b is out
    ServicePlanner p;
    std::map<L4Addr, ServicePort> m;
    apply_delta(m, p.update(o.snapshot(), {}));
    EXPECT_EQ(ports_of(m), plan_services(o.snapshot()).ports);
    ASSERT_EQ(m.size(), 3u);
    EXPECT_EQ(m.begin()->second.name, "ns/a:p80");
    ASSERT_EQ(p.problems().size(), 1u);
    EXPECT_NE(p.problems()[0].find("ns/b"), std::string::npos) << p.problems()[0];
    // a goes: b would now get 81 and 82 by name, but c holds 82, so c keeps
    // it and b stays out - a change to a reaches c, and leaves it alone.
    FrontendOwners held = p.owners();
    o.services.erase("a");
    apply_delta(m, p.update(o.snapshot(), {}));
    auto want = plan_services(o.snapshot(), {}, held);
    EXPECT_EQ(ports_of(m), want.ports);
    EXPECT_EQ(p.problems(), want.problems);
    ASSERT_EQ(m.size(), 1u);
    EXPECT_EQ(m.begin()->second.name, "ns/c:p82");
    ASSERT_EQ(p.problems().size(), 1u);
    EXPECT_NE(p.problems()[0].find("Service ns/b"), std::string::npos) << p.problems()[0];
    // c goes too: b takes both.
    held = p.owners();
    o.services.erase("c");
    apply_delta(m, p.update(o.snapshot(), {}));
    EXPECT_EQ(ports_of(m), plan_services(o.snapshot(), {}, held).ports);
    ASSERT_EQ(m.size(), 2u);
    EXPECT_EQ(m.begin()->second.name, "ns/b:p81");
    EXPECT_TRUE(p.problems().empty());
}

TEST(ServicePlannerTest, NodeContextChangeReplansNodePorts) {
    Objects o;
    o.services["w"] = service("w", "10.96.0.1", {80}, "NodePort");
    o.services["w"]["spec"]["externalTrafficPolicy"] = "Local";
    o.slices["w"] = slice("w-1", "w", {"10.244.1.5", "10.244.2.5"}, {80});
    ServicePlanner p;
    std::map<L4Addr, ServicePort> m;
    NodeContext n1{ip("192.168.1.11"), *Ipv4Prefix::parse("10.244.1.0/24")};
    apply_delta(m, p.update(o.snapshot(), n1));
    EXPECT_EQ(ports_of(m), plan_services(o.snapshot(), n1).ports);
    NodeContext n2{ip("192.168.1.12"), *Ipv4Prefix::parse("10.244.2.0/24")};
    apply_delta(m, p.update(o.snapshot(), n2));
    EXPECT_EQ(ports_of(m), plan_services(o.snapshot(), n2).ports);
    ASSERT_EQ(m.size(), 2u);
    EXPECT_EQ(m.rbegin()->first.ip, ip("192.168.1.12"));
    EXPECT_EQ(m.rbegin()->second.backends.size(), 1u);
}

TEST(ServicePlannerTest, SliceMovingBetweenServicesReplansBoth) {
    Objects o;
    o.services["a"] = service("a", "10.96.0.1", {80});
    o.services["b"] = service("b", "10.96.0.2", {80});
    o.slices["x"] = slice("x", "a", {"10.244.1.1"}, {80});
    ServicePlanner p;
    std::map<L4Addr, ServicePort> m;
    apply_delta(m, p.update(o.snapshot(), {}));
    o.slices["x"] = slice("x", "b", {"10.244.1.1"}, {80});  // relabelled
    PlanDelta d = p.update(o.snapshot(), {});
    EXPECT_EQ(d.upserts.size(), 2u);
    apply_delta(m, d);
    EXPECT_EQ(ports_of(m), plan_services(o.snapshot()).ports);
    EXPECT_TRUE(m.begin()->second.backends.empty());
    EXPECT_EQ(m.rbegin()->second.backends.size(), 1u);
}

TEST(ServicePlannerTest, ChangesFromAnotherBaseAreNotTrusted) {
    Objects o;
    o.services["a"] = service("a", "10.96.0.1", {80});
    ServicePlanner p;
    std::map<L4Addr, ServicePort> m;
    apply_delta(m, p.update(o.snapshot(), {}));  // generation 1
    o.services["b"] = service("b", "10.96.0.2", {80});
    ClusterSpec skipped = o.snapshot();  // generation 2: never shown to the planner
    (void)skipped;
    o.services["c"] = service("c", "10.96.0.3", {80});
    ClusterSpec now = o.snapshot();  // generation 3: changes since 2 name only c
    ASSERT_TRUE(now.changes && now.changes->since == 2);
    EXPECT_EQ(now.changes->services, (std::set<std::string>{"ns/c"}));
    apply_delta(m, p.update(now, {}));
    EXPECT_EQ(m.size(), 3u) << "b was lost: a list of changes against another snapshot was used";
    EXPECT_EQ(ports_of(m), plan_services(now).ports);
}

// Random histories over a small space of names, VIPs and ports, so clashes,
// skips, moves and removals happen often. Some services carry a
// creationTimestamp (a few equal), so every rung of the order is used.
TEST(ServicePlannerTest, RandomHistoriesMatchPlanningFromScratch) {
    std::mt19937 rng(20261121);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    for (int run = 0; run < 40; ++run) {
        Objects o;
        ServicePlanner p, by_pointer;  // with the source's list of changed keys, and comparing instead
        std::map<L4Addr, ServicePort> m, m2;
        NodeContext node{ip("192.168.1.11"), *Ipv4Prefix::parse("10.244.1.0/24")};
        for (int step = 0; step < 60; ++step) {
            int what = pick(10);
            std::string name = "s" + std::to_string(pick(8));
            if (what < 4) {
                std::vector<int> ports;
                for (int k = pick(3) + 1; k > 0; --k) ports.push_back(80 + pick(3));
                std::string vip = pick(12) == 0 ? "not-an-ip" : "10.96.0." + std::to_string(pick(4) + 1);
                o.services[name] = service(name, vip, ports, pick(3) == 0 ? "NodePort" : "ClusterIP");
                if (int t = pick(4); t > 0)
                    o.services[name]["metadata"]["creationTimestamp"] = "2024-0" + std::to_string(t) + "-01T00:00:00Z";
            } else if (what < 5) {
                o.services.erase(name);
            } else if (what < 8) {
                std::string sl = "e" + std::to_string(pick(10));
                std::vector<std::string> addrs;
                for (int k = pick(4); k > 0; --k)
                    addrs.push_back("10.244." + std::to_string(pick(2) + 1) + "." + std::to_string(pick(5) + 1));
                o.slices[sl] = slice(sl, name, addrs, {80 + pick(3)});
                if (pick(15) == 0) o.slices[sl]["ports"][0]["port"] = 0;  // invalid: skipped
            } else if (what < 9) {
                o.slices.erase("e" + std::to_string(pick(10)));
            } else {
                node.node_ip = ip(pick(2) ? "192.168.1.11" : "192.168.1.12");
            }
            ClusterSpec spec = o.snapshot();
            // What is programmed keeps its frontends: the plan from scratch
            // is given what the planner held before this step.
            FrontendOwners held = p.owners();
            ASSERT_EQ(held, by_pointer.owners()) << "run " << run << " step " << step;
            if (step > 0) {
                ASSERT_TRUE(spec.changes.has_value());
            }
            apply_delta(m, p.update(spec, node));
            ClusterSpec unnumbered = spec;
            unnumbered.generation = 0;
            unnumbered.changes.reset();
            apply_delta(m2, by_pointer.update(unnumbered, node));
            ServicePlan want = plan_services(spec, node, held);
            ASSERT_EQ(ports_of(m2), want.ports) << "run " << run << " step " << step;
            ASSERT_EQ(ports_of(m), want.ports) << "run " << run << " step " << step;
            ASSERT_EQ(p.plan().ports, want.ports) << "run " << run << " step " << step;
            ASSERT_EQ(p.problems(), want.problems) << "run " << run << " step " << step;
        }
    }
}

}  // namespace
}  // namespace skiff::agent
