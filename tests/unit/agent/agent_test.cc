// The agent's main loop (userspace/agent/agent.cc) with a scripted source
// and in-memory node map / route tables: reconcile on change, keep the last
// good state on source errors, health, metrics and the CNI conflist.
#include "agent/agent.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fixture.h"

namespace skiff::agent {
namespace {

using namespace testbed;

// The counters of reconcile passes: ok, failed, node map upserts and
// deletes, route upserts and deletes, and the node map's entries.
const std::vector<std::string> kPassCounters = {
    kOk, kErr, kMapUp, kMapDel, kRouteUp, kRouteDel, "skiff_map_entries{map=\"nodes\"}"};

std::vector<double> metric_values(const std::string& text, const std::vector<std::string>& series) {
    std::vector<double> out;
    for (const auto& s : series) out.push_back(metric(text, s));
    return out;
}

TEST_F(AgentTest, FirstSnapshotIsReconciled) {
    make_agent();
    script.snapshot(three_nodes());
    agent->tick();
    EXPECT_EQ(script.polls, 1);
    ASSERT_EQ(tables.entries.size(), 3u);
    EXPECT_EQ(tables.entries.at(pfx("10.244.1.0/24")).flags, static_cast<uint32_t>(SKIFF_NODE_F_LOCAL));
    EXPECT_EQ(tables.entries.at(pfx("10.244.1.0/24")).node_ip, ip("192.168.50.11").be());
    EXPECT_EQ(tables.entries.at(pfx("10.244.2.0/24")).flags, 0u);
    EXPECT_EQ(tables.routes, (std::map<Ipv4Prefix, RouteVia>{{pfx("10.244.2.0/24"), ip("192.168.50.12")},
                                                             {pfx("10.244.3.0/24"), ip("192.168.50.13")}}));
    EXPECT_TRUE(healthy(*agent));
}

TEST_F(AgentTest, UnchangedSourceAndNoResyncDueDoesNothing) {
    make_agent(3600);
    script.snapshot(three_nodes());
    agent->tick();
    int w = writes(), l = lists();
    for (int i = 0; i < 5; ++i) agent->tick();
    EXPECT_EQ(script.polls, 6);
    EXPECT_EQ(writes(), w);
    EXPECT_EQ(lists(), l) << "no reconcile pass at all while nothing changed";
    EXPECT_EQ(metric(agent->metrics_text(), kOk), 1);
}

TEST_F(AgentTest, ChangedSnapshotIsReconciled) {
    make_agent();
    script.snapshot(three_nodes());
    agent->tick();
    int u = tables.upserts, r = tables.replaces;
    script.snapshot(three_nodes("192.168.50.99"));
    agent->tick();
    EXPECT_EQ(tables.upserts, u + 1);
    EXPECT_EQ(tables.replaces, r + 1);
    EXPECT_EQ(tables.node_removes + tables.route_removes, 0);
    EXPECT_EQ(tables.routes.at(pfx("10.244.3.0/24")), ip("192.168.50.99"));

    // node-c leaves the cluster.
    script.snapshot(cluster(
        {node("node-a", "192.168.50.11", {"10.244.1.0/24"}), node("node-b", "192.168.50.12", {"10.244.2.0/24"})}));
    agent->tick();
    EXPECT_EQ(tables.entries.count(pfx("10.244.3.0/24")), 0u);
    EXPECT_EQ(tables.routes.count(pfx("10.244.3.0/24")), 0u);

    EXPECT_EQ(metric_values(agent->metrics_text(), kPassCounters), (std::vector<double>{3, 0, 4, 1, 3, 1, 2}));
}

TEST_F(AgentTest, IdenticalSnapshotReconcilesWithoutWrites) {
    make_agent();
    script.snapshot(three_nodes());
    agent->tick();
    int w = writes();
    script.snapshot(three_nodes());
    agent->tick();
    EXPECT_EQ(writes(), w);
    EXPECT_EQ(metric(agent->metrics_text(), kOk), 2);
}

TEST_F(AgentTest, ResyncRepairsDriftWhenDue) {
    make_agent(1);
    script.snapshot(three_nodes());
    agent->tick();
    ASSERT_EQ(tables.routes.size(), 2u);
    tables.routes.erase(pfx("10.244.2.0/24"));  // someone deleted our route
    agent->tick();                              // unchanged, resync not due yet
    EXPECT_EQ(tables.routes.count(pfx("10.244.2.0/24")), 0u);
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    agent->tick();  // unchanged, resync due
    EXPECT_EQ(tables.routes.count(pfx("10.244.2.0/24")), 1u);
    EXPECT_EQ(metric(agent->metrics_text(), kOk), 2);
}

TEST_F(AgentTest, SourceErrorKeepsLastGoodState) {
    make_agent();
    script.snapshot(three_nodes());
    agent->tick();
    auto entries = tables.entries.size();
    auto routes = tables.routes;
    script.fail("cluster.json: not valid JSON");
    script.fail("cluster.json: not valid JSON");
    agent->tick();
    agent->tick();
    EXPECT_EQ(tables.node_removes, 0);
    EXPECT_EQ(tables.route_removes, 0);
    EXPECT_EQ(tables.entries.size(), entries);
    EXPECT_EQ(tables.routes, routes);
    EXPECT_FALSE(healthy(*agent));
    json h = health("/healthz", 503);
    EXPECT_NE(h.value("sourceError", "").find("not valid JSON"), std::string::npos) << h.dump();
    EXPECT_EQ(h["podCIDR"], "10.244.1.0/24");
    EXPECT_EQ(metric(agent->metrics_text(), "skiff_agent_source_errors_total"), 2);

    // The source is readable again (and unchanged): healthy, nothing written.
    int w = writes();
    agent->tick();
    EXPECT_TRUE(healthy(*agent));
    EXPECT_EQ(health("/healthz", 200)["sourceError"], "");
    EXPECT_EQ(writes(), w);
    EXPECT_TRUE(std::filesystem::exists(conflist_path()));
}

// Regression (fixed): Agent::tick() falls through to reconcile(*last_good_) when poll()
// fails, so every failed poll (every 100 ms in main.cc) runs a full
// reconcile pass -- node map and route dumps, possible writes -- and counts
// it in skiff_agent_reconciles_total{result="ok"}, although agent.h says a
// pass reconciles only "when it changed or a resync is due" and "errors
// leave the programmed state untouched". resync_seconds is ignored while
// the source is broken.
TEST_F(AgentTest, SourceErrorDoesNotTriggerReconcileBeforeResync) {
    make_agent(3600);
    script.snapshot(three_nodes());
    agent->tick();
    int l = lists();
    tables.routes.erase(pfx("10.244.2.0/24"));  // drift, to make a pass visible
    script.fail("etcd unreachable");
    script.fail("etcd unreachable");
    agent->tick();
    agent->tick();
    EXPECT_EQ(lists(), l) << "reconcile passes ran on failed polls";
    EXPECT_EQ(metric(agent->metrics_text(), kOk), 1);
    EXPECT_EQ(tables.routes.count(pfx("10.244.2.0/24")), 0u) << "programmed state was touched on a source error";
}

TEST_F(AgentTest, SourceErrorBeforeFirstSnapshot) {
    make_agent();
    script.fail("open cluster.json: No such file or directory");
    agent->tick();
    EXPECT_EQ(writes(), 0);
    EXPECT_FALSE(healthy(*agent));
    json h = health("/healthz", 503);
    EXPECT_NE(h["sourceError"].get<std::string>().find("No such file"), std::string::npos);
    health("/readyz", 503);
    EXPECT_FALSE(std::filesystem::exists(conflist_path()));
    EXPECT_EQ(metric(agent->metrics_text(), kOk), 0);

    script.snapshot(three_nodes());
    agent->tick();
    EXPECT_TRUE(healthy(*agent));
    EXPECT_EQ(tables.entries.size(), 3u);
}

TEST_F(AgentTest, HealthBeforeAnyReconcile) {
    make_agent();
    EXPECT_FALSE(healthy(*agent));
    json h = health("/healthz", 503);
    EXPECT_EQ(h["reconciles"], 0);
    EXPECT_EQ(h["podCIDR"], "");
    EXPECT_EQ(h["node"], "node-a");
    health("/readyz", 503);
}

TEST_F(AgentTest, HealthFieldsAfterReconcile) {
    make_agent();
    ClusterSpec c = three_nodes();
    c.nodes.push_back(node("node-noip", nullptr, {"10.244.9.0/24"}));
    c.nodes.push_back(node("node-out", "192.168.50.20", {"10.99.0.0/24"}));
    script.snapshot(c);
    agent->tick();
    EXPECT_TRUE(healthy(*agent)) << "skipped objects do not make the agent unhealthy";
    json h = health("/healthz", 200);
    EXPECT_EQ(h["node"], "node-a");
    EXPECT_EQ(h["podCIDR"], "10.244.1.0/24");
    EXPECT_EQ(h["sourceError"], "");
    EXPECT_EQ(h["reconcileError"], "");
    EXPECT_EQ(h["reconciles"], 1);
    ASSERT_TRUE(h["skipped"].is_array());
    ASSERT_EQ(h["skipped"].size(), 2u);
    EXPECT_NE(h["skipped"][0].get<std::string>().find("node-noip"), std::string::npos) << h.dump();
    EXPECT_NE(h["skipped"][1].get<std::string>().find("node-out"), std::string::npos) << h.dump();
    health("/readyz", 200);
    EXPECT_EQ(metric(agent->metrics_text(), "skiff_agent_skipped_objects"), 2);
}

TEST_F(AgentTest, ReadyOnlyOnceLocalPodCidrIsKnown) {
    make_agent();
    script.snapshot(cluster({node("node-b", "192.168.50.12", {"10.244.2.0/24"}),
                             node("node-a", "192.168.50.11", {})}));  // no PodCIDR allocated yet
    agent->tick();
    EXPECT_TRUE(healthy(*agent));
    health("/healthz", 200);
    json r = health("/readyz", 503);
    EXPECT_EQ(r["podCIDR"], "");
    EXPECT_FALSE(std::filesystem::exists(conflist_path()));

    script.snapshot(three_nodes());
    agent->tick();
    EXPECT_EQ(health("/readyz", 200)["podCIDR"], "10.244.1.0/24");
    EXPECT_TRUE(std::filesystem::exists(conflist_path()));
}

TEST_F(AgentTest, UnknownPathIs404AndMetricsIs200) {
    make_agent();
    HttpResponse r = agent->handle_http("/nope");
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(agent->handle_http("/healthz/extra").status, 404);
    HttpResponse m = agent->handle_http("/metrics");
    EXPECT_EQ(m.status, 200);
    EXPECT_NE(m.content_type.find("text/plain"), std::string::npos);
    EXPECT_NE(m.body.find("# TYPE skiff_agent_reconciles_total counter"), std::string::npos) << m.body;
    EXPECT_EQ(metric(m.body, kOk), 0);
}

TEST_F(AgentTest, SyncFailureIsUnhealthyAndCounted) {
    make_agent();
    tables.fail_replace = true;
    script.snapshot(three_nodes());
    agent->tick();
    EXPECT_FALSE(healthy(*agent));
    json h = health("/healthz", 503);
    EXPECT_NE(h["reconcileError"].get<std::string>().find("unreachable"), std::string::npos) << h.dump();
    std::string m = agent->metrics_text();
    EXPECT_EQ(metric(m, kOk), 0);
    EXPECT_EQ(metric(m, kErr), 1);
    EXPECT_FALSE(std::filesystem::exists(conflist_path())) << "no conflist before the datapath is programmed";

    tables.fail_replace = false;
    script.snapshot(three_nodes());
    agent->tick();
    EXPECT_TRUE(healthy(*agent));
    EXPECT_EQ(health("/healthz", 200)["reconcileError"], "");
    EXPECT_EQ(tables.routes.size(), 2u);
    EXPECT_TRUE(std::filesystem::exists(conflist_path()));
    EXPECT_EQ(metric(agent->metrics_text(), kOk), 1);
}

TEST_F(AgentTest, MetricsCounters) {
    make_agent();
    script.snapshot(three_nodes());
    agent->tick();
    std::string m = agent->metrics_text();
    EXPECT_EQ(metric_values(m, kPassCounters), (std::vector<double>{1, 0, 3, 0, 2, 0, 3}));
    EXPECT_EQ(metric(m, "skiff_agent_source_errors_total"), 0);
    EXPECT_EQ(metric(m, "skiff_agent_reconcile_duration_seconds_count"), 1);
    EXPECT_GE(metric(m, "skiff_agent_reconcile_duration_seconds_sum"), 0);
    EXPECT_EQ(m.find("skiff_datapath_packets_total"), std::string::npos) << "no metrics map pinned";

    script.snapshot(three_nodes());
    agent->tick();
    m = agent->metrics_text();
    EXPECT_EQ(metric(m, kOk), 2);
    EXPECT_EQ(metric(m, kMapUp), 3) << "an unchanged pass writes nothing";
    EXPECT_EQ(metric(m, kRouteUp), 2);
    EXPECT_EQ(metric(m, "skiff_agent_reconcile_duration_seconds_count"), 2);
}

ClusterSpec with_services(ClusterSpec c, int n) {
    for (int i = 0; i < n; ++i)
        c.services.add(json{{"kind", "Service"},
                            {"metadata", {{"namespace", "flood"}, {"name", "s" + std::to_string(i)}}},
                            {"spec", {{"clusterIP", "None"}}}});
    return c;
}

// A snapshot with more objects than maxObjects is not applied: what is
// programmed stays, health and metrics say why, and one under the limit is
// applied again.
TEST_F(AgentTest, SnapshotOverMaxObjectsIsRefusedAndTheStateKept) {
    AgentConfig c = config(1);
    c.max_objects = 6;
    make_agent_with(c);
    script.snapshot(with_services(three_nodes(), 3));  // 6: at the limit, taken
    agent->tick();
    ASSERT_TRUE(healthy(*agent));
    auto node_ips = [&] {
        std::map<Ipv4Prefix, std::pair<uint32_t, uint32_t>> out;
        for (const auto& [cidr, info] : tables.entries) out[cidr] = {info.node_ip, info.flags};
        return out;
    };
    auto entries = node_ips();
    auto routes = tables.routes;
    int w = writes();

    // node-c moves and the services grow past the limit: nothing of it is applied.
    script.snapshot(with_services(three_nodes("192.168.50.99"), 4));
    agent->tick();
    EXPECT_EQ(writes(), w) << "a snapshot over maxObjects was applied";
    EXPECT_EQ(node_ips(), entries);
    EXPECT_EQ(tables.routes, routes);
    EXPECT_FALSE(healthy(*agent));
    json h = health("/healthz", 503);
    const std::string why = h.value("objectLimitError", "");
    EXPECT_NE(why.find("7 objects"), std::string::npos) << h.dump();
    EXPECT_NE(why.find("maxObjects 6"), std::string::npos) << h.dump();
    EXPECT_NE(why.find("not applied"), std::string::npos) << h.dump();
    EXPECT_EQ(h["objects"], 7);
    EXPECT_EQ(h["maxObjects"], 6);
    EXPECT_EQ(h["podCIDR"], "10.244.1.0/24") << "the programmed state is still reported";
    std::string m = agent->metrics_text();
    EXPECT_EQ(metric(m, "skiff_agent_source_over_limit"), 1);
    EXPECT_EQ(metric(m, "skiff_agent_snapshots_refused_total"), 1);
    EXPECT_EQ(metric(m, "skiff_agent_source_objects"), 7);
    EXPECT_EQ(metric(m, "skiff_agent_max_objects"), 6);

    // A resync meanwhile repairs drift from the last snapshot taken.
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    tables.routes.erase(pfx("10.244.2.0/24"));
    agent->tick();  // unchanged source, resync due
    EXPECT_EQ(tables.routes, routes) << "the resync must use the last snapshot taken";
    EXPECT_EQ(node_ips(), entries);
    health("/healthz", 503);

    // Back under the limit: applied, healthy again.
    script.snapshot(with_services(three_nodes("192.168.50.99"), 2));
    agent->tick();
    EXPECT_TRUE(healthy(*agent));
    h = health("/healthz", 200);
    EXPECT_EQ(h["objectLimitError"], "");
    EXPECT_EQ(h["objects"], 5);
    EXPECT_EQ(tables.routes[pfx("10.244.3.0/24")], ip("192.168.50.99"));
    m = agent->metrics_text();
    EXPECT_EQ(metric(m, "skiff_agent_source_over_limit"), 0);
    EXPECT_EQ(metric(m, "skiff_agent_snapshots_refused_total"), 1);
}

TEST_F(AgentTest, ShrinkingALotGivesMemoryBack) {
    make_agent();
    script.snapshot(with_services(three_nodes(), 3000));
    agent->tick();
    EXPECT_EQ(metric(agent->metrics_text(), "skiff_agent_memory_trims_total"), 0);
    script.snapshot(with_services(three_nodes(), 2000));  // not by half: kept
    agent->tick();
    EXPECT_EQ(metric(agent->metrics_text(), "skiff_agent_memory_trims_total"), 0);
    script.snapshot(three_nodes());
    agent->tick();
    EXPECT_EQ(metric(agent->metrics_text(), "skiff_agent_memory_trims_total"), 1);
    script.snapshot(three_nodes());
    agent->tick();
    EXPECT_EQ(metric(agent->metrics_text(), "skiff_agent_memory_trims_total"), 1) << "only after a shrink";
}

TEST_F(AgentTest, ConflistContent) {
    make_agent();
    script.snapshot(three_nodes());
    agent->tick();
    std::ifstream f(conflist_path());
    ASSERT_TRUE(f.good()) << conflist_path();
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    json j = json::parse(text, nullptr, false);
    ASSERT_TRUE(j.is_object()) << text;
    EXPECT_EQ(j["cniVersion"], "1.0.0");
    EXPECT_EQ(j["name"], "skiff");
    ASSERT_TRUE(j["plugins"].is_array());
    ASSERT_EQ(j["plugins"].size(), 1u);
    const json& p = j["plugins"][0];
    EXPECT_EQ(p["type"], "skiff");
    EXPECT_EQ(p["podCIDR"], "10.244.1.0/24");
    EXPECT_EQ(p["clusterCIDR"], "10.244.0.0/16");
    EXPECT_EQ(p["pinPath"], tmp + "/bpf");
    EXPECT_EQ(p["stateDir"], tmp + "/state");
    EXPECT_EQ(p["mtu"], 1450);
    EXPECT_FALSE(p.contains("logFile"));
    EXPECT_EQ(text, conflist_for(config(), pfx("10.244.1.0/24")));
    AgentConfig with_log = config();
    with_log.cni_log_file = "/var/log/skiff-cni.log";
    EXPECT_EQ(json::parse(conflist_for(with_log, pfx("10.244.1.0/24")))["plugins"][0]["logFile"],
              "/var/log/skiff-cni.log");
    // No temporary files left in the CNI directory (the runtime reads all).
    int files = 0;
    for (const auto& e : std::filesystem::directory_iterator(tmp + "/etc/cni/net.d")) {
        ++files;
        EXPECT_EQ(e.path().filename(), "10-skiff.conflist");
    }
    EXPECT_EQ(files, 1);
}

TEST_F(AgentTest, ConflistRewrittenOnlyWhenPodCidrChanges) {
    make_agent();
    script.snapshot(three_nodes());
    agent->tick();
    struct stat before {};
    ASSERT_EQ(::stat(conflist_path().c_str(), &before), 0);

    // Another pass with the same PodCIDR (a changed remote node, then an identical snapshot).
    script.snapshot(three_nodes("192.168.50.99"));
    agent->tick();
    script.snapshot(three_nodes("192.168.50.99"));
    agent->tick();
    struct stat same {};
    ASSERT_EQ(::stat(conflist_path().c_str(), &same), 0);
    EXPECT_EQ(same.st_ino, before.st_ino);
    EXPECT_EQ(same.st_mtim.tv_sec, before.st_mtim.tv_sec);
    EXPECT_EQ(same.st_mtim.tv_nsec, before.st_mtim.tv_nsec);

    // Our PodCIDR changes: the conflist follows.
    script.snapshot(three_nodes("192.168.50.99", "10.244.11.0/24"));
    agent->tick();
    struct stat after {};
    ASSERT_EQ(::stat(conflist_path().c_str(), &after), 0);
    EXPECT_NE(after.st_ino, before.st_ino) << "rewritten atomically (new inode)";
    std::ifstream f(conflist_path());
    json j = json::parse(f, nullptr, false);
    ASSERT_TRUE(j.is_object());
    EXPECT_EQ(j["plugins"][0]["podCIDR"], "10.244.11.0/24");
    EXPECT_EQ(tables.entries.count(pfx("10.244.1.0/24")), 0u);
    EXPECT_EQ(tables.entries.at(pfx("10.244.11.0/24")).flags, static_cast<uint32_t>(SKIFF_NODE_F_LOCAL));
}

TEST_F(AgentTest, StaleConflistIsReplaced) {
    std::filesystem::create_directories(tmp + "/etc/cni/net.d");
    {
        std::ofstream f(conflist_path());
        f << "{\"cniVersion\": \"0.4.0\", \"name\": \"old\"}\n";
    }
    make_agent();
    script.snapshot(three_nodes());
    agent->tick();
    std::ifstream f(conflist_path());
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text, conflist_for(config(), pfx("10.244.1.0/24")));
}

}  // namespace
}  // namespace skiff::agent
