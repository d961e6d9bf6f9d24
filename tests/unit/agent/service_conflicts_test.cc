// Services claiming one frontend (userspace/agent/services.cc): what is
// programmed keeps it, then the older by metadata.creationTimestamp wins,
// then namespace/name; the others are skipped whole and reported. A
// newcomer must never take a frontend away from a live service.
#include "agent/services.h"

#include <netinet/in.h>

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "object_store.h"

namespace skiff::agent {
namespace {

using nlohmann::json;

Ipv4 ip(const char* s) { return *Ipv4::parse(s); }
L4Addr tcp(const char* a, uint16_t port) { return L4Addr{ip(a), port, IPPROTO_TCP}; }

const char* kVip = "10.96.0.10";

json service(const std::string& name, const char* created, std::vector<int> ports = {80}) {
    json ps = json::array();
    for (int p : ports) ps.push_back({{"name", "p" + std::to_string(p)}, {"port", p}, {"protocol", "TCP"}});
    json meta = {{"namespace", "default"}, {"name", name}};
    if (created) meta["creationTimestamp"] = created;
    return {
        {"kind", "Service"}, {"metadata", meta}, {"spec", {{"type", "ClusterIP"}, {"clusterIP", kVip}, {"ports", ps}}}};
}

json slice(const std::string& svc, const char* addr) {
    return {{"kind", "EndpointSlice"},
            {"metadata",
             {{"namespace", "default"}, {"name", svc + "-1"}, {"labels", {{"kubernetes.io/service-name", svc}}}}},
            {"addressType", "IPv4"},
            {"endpoints", {{{"addresses", {addr}}}}},
            {"ports", {{{"name", "p80"}, {"port", 8080}, {"protocol", "TCP"}}}}};
}

std::string owner(const ServicePlanner& p, const L4Addr& fe) {
    auto it = p.owners().find(fe);
    return it == p.owners().end() ? "" : it->second;
}

std::string joined(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += "\n  " + s;
    return out;
}

size_t problems_naming(const std::vector<std::string>& v, const std::string& a, const std::string& b) {
    size_t n = 0;
    for (const auto& s : v) n += s.find(a) != std::string::npos && s.find(b) != std::string::npos;
    return n;
}

TEST(CreationTimeTest, ParsesRfc3339AsTheApiServerWritesIt) {
    auto t = [](const char* s) { return creation_time(json{{"metadata", {{"creationTimestamp", s}}}}); };
    EXPECT_EQ(t("1970-01-01T00:00:00Z"), 0);
    EXPECT_EQ(t("1970-01-02T00:00:01Z"), int64_t{86401} * 1000000);
    EXPECT_EQ(t("2000-03-01T00:00:00Z"), int64_t{951868800} * 1000000);  // after a leap day
    EXPECT_EQ(t("2024-05-01T10:00:00.5Z"), *t("2024-05-01T10:00:00Z") + 500000);
    EXPECT_EQ(t("2024-05-01T12:00:00+02:00"), t("2024-05-01T10:00:00Z"));
    EXPECT_EQ(t("2024-05-01T08:30:00-01:30"), t("2024-05-01T10:00:00Z"));
    EXPECT_LT(*t("1969-12-31T23:59:59Z"), 0);
    for (const char* bad : {"", "yesterday", "2024-05-01", "2024-05-01T10:00:00", "2024-13-01T10:00:00Z",
                            "2024-05-01T10:00:00Zjunk", "2024-05-01T10:00:00.Z", "2024-05-01 10:00:00Z"})
        EXPECT_EQ(t(bad), std::nullopt) << bad;
    EXPECT_EQ(creation_time(json{{"metadata", {{"creationTimestamp", 5}}}}), std::nullopt);
    EXPECT_EQ(creation_time(json{{"metadata", "x"}}), std::nullopt);
    EXPECT_EQ(creation_time(json::object()), std::nullopt);
}

// The hardening issue's case: duplicates of a live service, created later
// and sorting first by name, used to replace it (its connections reset,
// new ones refused) for as long as they existed.
TEST(ServiceConflictTest, ProgrammedServiceKeepsItsFrontendWhenDuplicatesSortingFirstAppear) {
    Objects o;
    o.services["live"] = service("zz-live", "2024-01-01T00:00:00Z");
    o.slices["live"] = slice("zz-live", "10.244.1.5");
    ServicePlanner p;
    const NodeContext node{};
    PlanDelta first = p.update(o.snapshot(), node);
    ASSERT_EQ(first.upserts.size(), 1u);
    const L4Addr fe = tcp(kVip, 80);
    ASSERT_EQ(owner(p, fe), "default/zz-live");

    o.services["d1"] = service("aa-dup1", "2024-06-01T00:00:00Z");
    o.services["d2"] = service("aa-dup2", "2024-06-01T00:00:00Z");
    // Even a duplicate claiming to be older does not take a held frontend.
    o.services["d3"] = service("aa-dup3", "2023-01-01T00:00:00Z");
    PlanDelta d = p.update(o.snapshot(), node);
    EXPECT_TRUE(d.empty()) << "the live service's frontend was rewritten";
    EXPECT_EQ(owner(p, fe), "default/zz-live");
    ServicePlan plan = p.plan();
    ASSERT_EQ(plan.ports.size(), 1u);
    EXPECT_EQ(plan.ports[0].name, "default/zz-live:p80");
    EXPECT_EQ(plan.ports[0].backends, (std::vector<L4Addr>{tcp("10.244.1.5", 8080)}));
    EXPECT_EQ(p.conflicts(), 3u);
    ASSERT_EQ(plan.problems.size(), 3u) << joined(plan.problems);
    for (const char* dup : {"default/aa-dup1", "default/aa-dup2"})
        EXPECT_EQ(problems_naming(plan.problems, std::string("Service ") + dup,
                                  "10.96.0.10:80/tcp is already used by default/zz-live, which is older"),
                  1u)
            << dup << joined(plan.problems);
    EXPECT_EQ(
        problems_naming(plan.problems, "Service default/aa-dup3", "already used by default/zz-live, which holds it"),
        1u)
        << joined(plan.problems);
    // The same as planning from scratch with what is held.
    EXPECT_EQ(plan.ports, plan_services(o.snapshot(), node, p.owners()).ports);

    // The live service's endpoints change meanwhile: it is re-planned and keeps it.
    o.slices["live"] = slice("zz-live", "10.244.1.6");
    d = p.update(o.snapshot(), node);
    ASSERT_EQ(d.upserts.size(), 1u);
    EXPECT_EQ(d.upserts[0].name, "default/zz-live:p80");
    EXPECT_TRUE(d.removed.empty());

    // The duplicates go: nothing to write, nothing to report.
    o.services.erase("d1");
    o.services.erase("d2");
    o.services.erase("d3");
    EXPECT_TRUE(p.update(o.snapshot(), node).empty());
    EXPECT_TRUE(p.problems().empty()) << joined(p.problems());
    EXPECT_EQ(p.conflicts(), 0u);
}

TEST(ServiceConflictTest, WithoutAHolderTheOlderCreationTimestampWins) {
    Objects o;
    o.services["a"] = service("aa-new", "2024-06-01T00:00:00Z");
    o.services["b"] = service("bb-old", "2024-01-01T12:00:00+02:00");
    o.services["c"] = service("cc-undated", nullptr);  // comes after any dated one
    o.slices["b"] = slice("bb-old", "10.244.1.5");
    ClusterSpec spec = o.snapshot();
    ServicePlan plan = plan_services(spec);
    ASSERT_EQ(plan.ports.size(), 1u);
    EXPECT_EQ(plan.ports[0].name, "default/bb-old:p80");
    EXPECT_EQ(problems_naming(plan.problems, "Service default/aa-new", "default/bb-old, which is older"), 1u)
        << joined(plan.problems);
    EXPECT_EQ(problems_naming(plan.problems, "Service default/cc-undated", "default/bb-old, which is older"), 1u)
        << joined(plan.problems);
    // The order the objects come in does not matter, nor incremental planning.
    ServicePlanner p;
    p.update(spec, {});
    EXPECT_EQ(owner(p, tcp(kVip, 80)), "default/bb-old");
}

TEST(ServiceConflictTest, SameOrNoCreationTimestampFallsBackToNamespaceName) {
    Objects o;
    o.services["b"] = service("bb", "2024-01-01T00:00:00Z");
    o.services["a"] = service("aa", "2024-01-01T00:00:00Z");
    ServicePlan plan = plan_services(o.snapshot());
    ASSERT_EQ(plan.ports.size(), 1u);
    EXPECT_EQ(plan.ports[0].name, "default/aa:p80");
    EXPECT_EQ(problems_naming(plan.problems, "Service default/bb", "default/aa, which comes first by name"), 1u)
        << joined(plan.problems);

    Objects u;
    u.services["b"] = service("bb", nullptr);
    u.services["a"] = service("aa", nullptr);
    plan = plan_services(u.snapshot());
    ASSERT_EQ(plan.ports.size(), 1u);
    EXPECT_EQ(plan.ports[0].name, "default/aa:p80");
}

TEST(ServiceConflictTest, WhenTheHolderGoesTheNextClaimantTakesOverAndThenHoldsIt) {
    Objects o;
    o.services["live"] = service("mm-live", "2024-01-01T00:00:00Z");
    ServicePlanner p;
    p.update(o.snapshot(), {});
    o.services["x"] = service("aa-young", "2024-09-01T00:00:00Z");
    o.services["y"] = service("zz-older", "2024-03-01T00:00:00Z");
    EXPECT_TRUE(p.update(o.snapshot(), {}).empty());
    const L4Addr fe = tcp(kVip, 80);
    EXPECT_EQ(owner(p, fe), "default/mm-live");

    o.services.erase("live");
    PlanDelta d = p.update(o.snapshot(), {});
    ASSERT_EQ(d.upserts.size(), 1u) << "the frontend must pass on, not go";
    EXPECT_TRUE(d.removed.empty());
    EXPECT_EQ(d.upserts[0].name, "default/zz-older:p80");  // older beats the name
    EXPECT_EQ(owner(p, fe), "default/zz-older");
    ASSERT_EQ(p.problems().size(), 1u);
    EXPECT_NE(p.problems()[0].find("default/aa-young"), std::string::npos) << p.problems()[0];

    // The first holder comes back, older than anyone: the frontend stays
    // where it is programmed now.
    o.services["live"] = service("mm-live", "2024-01-01T00:00:00Z");
    EXPECT_TRUE(p.update(o.snapshot(), {}).empty());
    EXPECT_EQ(owner(p, fe), "default/zz-older");
    EXPECT_EQ(p.conflicts(), 2u);
    ASSERT_EQ(p.problems().size(), 2u);
    EXPECT_NE(p.problems()[1].find("Service default/mm-live: frontend 10.96.0.10:80/tcp is already used by "
                                   "default/zz-older, which holds it: skipped"),
              std::string::npos)
        << p.problems()[1];
    EXPECT_EQ(p.plan().ports, plan_services(o.snapshot(), {}, p.owners()).ports);
}

TEST(ServiceConflictTest, AHolderThatNowAlsoClaimsAnotherHoldersFrontendDoesNotTakeIt) {
    Objects o;
    json a = service("aa", "2024-06-01T00:00:00Z", {80});
    json b = service("bb", "2024-06-01T00:00:00Z", {81});
    o.services["a"] = a;
    o.services["b"] = b;
    ServicePlanner p;
    p.update(o.snapshot(), {});
    ASSERT_EQ(p.frontends(), 2u);
    // aa (first by name) now asks for 81 as well: bb holds it, so aa, which
    // gets all its frontends or none, is skipped and 80 goes.
    o.services["a"] = service("aa", "2024-06-01T00:00:00Z", {80, 81});
    PlanDelta d = p.update(o.snapshot(), {});
    EXPECT_TRUE(d.upserts.empty());
    ASSERT_EQ(d.removed.size(), 1u);
    EXPECT_EQ(d.removed[0], tcp(kVip, 80));
    EXPECT_EQ(owner(p, tcp(kVip, 81)), "default/bb");
    ASSERT_EQ(p.problems().size(), 1u);
    EXPECT_NE(p.problems()[0].find("already used by default/bb, which holds it"), std::string::npos) << p.problems()[0];
}

}  // namespace
}  // namespace skiff::agent
