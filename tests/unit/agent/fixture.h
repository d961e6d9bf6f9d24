// The agent's test bed for its unit tests: a scripted source, in-memory
// node map and route tables whose state lives in the fixture, and helpers
// to read /healthz and /metrics. The Agent owns the fakes.
#pragma once

#include <stdlib.h>

#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/agent.h"
#include "cluster_builders.h"

namespace skiff::agent::testbed {

using nlohmann::json;

// ---- fakes; their state lives in the fixture, the Agent owns the objects ----

struct TablesState {
    std::map<Ipv4Prefix, skiff_node_info> entries;
    std::map<Ipv4Prefix, RouteVia> routes;
    int node_lists = 0, upserts = 0, node_removes = 0;
    int route_lists = 0, replaces = 0, route_removes = 0;
    bool fail_upsert = false, fail_replace = false;
};

class FakeNodeTable final : public NodeTable {
public:
    explicit FakeNodeTable(TablesState& s) : s_(s) {}
    Result<std::map<Ipv4Prefix, skiff_node_info>> list() override {
        ++s_.node_lists;
        return s_.entries;
    }
    Status put(const Ipv4Prefix& cidr, const skiff_node_info& info) override {
        if (s_.fail_upsert) return Error{ENOSPC, "fake node map: full"};
        ++s_.upserts;
        s_.entries[cidr] = info;
        return ok();
    }
    Status remove(const Ipv4Prefix& cidr) override {
        ++s_.node_removes;
        s_.entries.erase(cidr);
        return ok();
    }

private:
    TablesState& s_;
};

class FakeRouteTable final : public RouteTable {
public:
    explicit FakeRouteTable(TablesState& s) : s_(s) {}
    Result<std::map<Ipv4Prefix, RouteVia>> list() override {
        ++s_.route_lists;
        return s_.routes;
    }
    Status put(const Ipv4Prefix& cidr, const RouteVia& via) override {
        if (s_.fail_replace) return Error{ENETUNREACH, "fake routes: unreachable"};
        ++s_.replaces;
        s_.routes[cidr] = via;
        return ok();
    }
    Status remove(const Ipv4Prefix& cidr) override {
        ++s_.route_removes;
        s_.routes.erase(cidr);
        return ok();
    }

private:
    TablesState& s_;
};

// Each poll() pops the next scripted answer; an empty script means "unchanged".
struct SourceScript {
    std::deque<Result<std::optional<ClusterSpec>>> answers;
    int polls = 0;
    void snapshot(ClusterSpec c) { answers.emplace_back(std::optional<ClusterSpec>(std::move(c))); }
    void unchanged() { answers.emplace_back(std::optional<ClusterSpec>{}); }
    void fail(const std::string& msg) { answers.emplace_back(Error{EIO, msg}); }
};

class FakeSource final : public Source {
public:
    explicit FakeSource(SourceScript& s) : s_(s) {}
    Result<std::optional<ClusterSpec>> poll() override {
        ++s_.polls;
        if (s_.answers.empty()) return std::optional<ClusterSpec>{};
        auto r = std::move(s_.answers.front());
        s_.answers.pop_front();
        return r;
    }
    std::string describe() const override { return "fake"; }

private:
    SourceScript& s_;
};

// node-a is us.
inline ClusterSpec three_nodes(const char* c_ip = "192.168.50.13", const char* a_cidr = "10.244.1.0/24") {
    return cluster({node("node-a", "192.168.50.11", {a_cidr}), node("node-b", "192.168.50.12", {"10.244.2.0/24"}),
                    node("node-c", c_ip, {"10.244.3.0/24"})});
}

// What /healthz answers: ready to serve or not.
inline bool healthy(Agent& a) { return a.handle_http("/healthz").status == 200; }

// The value of one metrics line (name including labels), or -1 if absent.
inline double metric(const std::string& text, const std::string& series) {
    size_t pos = 0;
    while ((pos = text.find(series + " ", pos)) != std::string::npos) {
        if (pos == 0 || text[pos - 1] == '\n') return std::stod(text.substr(pos + series.size() + 1));
        pos += series.size();
    }
    return -1;
}

inline const std::string kOk = "skiff_agent_reconciles_total{result=\"ok\"}";
inline const std::string kErr = "skiff_agent_reconciles_total{result=\"error\"}";
inline const std::string kMapUp = "skiff_agent_writes_total{target=\"node_map\",op=\"upsert\"}";
inline const std::string kMapDel = "skiff_agent_writes_total{target=\"node_map\",op=\"delete\"}";
inline const std::string kRouteUp = "skiff_agent_writes_total{target=\"route\",op=\"upsert\"}";
inline const std::string kRouteDel = "skiff_agent_writes_total{target=\"route\",op=\"delete\"}";

class AgentTest : public ::testing::Test {
protected:
    std::string tmp;
    SourceScript script;
    TablesState tables;
    std::unique_ptr<Agent> agent;

    void SetUp() override {
        char tmpl[] = "/tmp/skiff-agent-unit-XXXXXX";
        char* p = ::mkdtemp(tmpl);
        ASSERT_NE(p, nullptr);
        tmp = p;
    }
    void TearDown() override {
        agent.reset();
        std::error_code ec;
        if (!tmp.empty()) std::filesystem::remove_all(tmp, ec);
    }

    AgentConfig config(unsigned resync_seconds = 3600) {
        AgentConfig c;
        c.node_name = "node-a";
        c.node_ip = ip("192.168.50.11");
        c.uplink = "eth0";
        c.cluster_cidr = pfx("10.244.0.0/16");
        c.pin_path = tmp + "/bpf";  // nothing pinned there: no datapath metrics
        c.state_dir = tmp + "/state";
        c.cni_conf_dir = tmp + "/etc/cni/net.d";  // does not exist yet
        c.mtu = 1450;
        c.resync_seconds = resync_seconds;
        c.file_source = tmp + "/cluster.json";
        return c;
    }
    void make_agent(unsigned resync_seconds = 3600) { make_agent_with(config(resync_seconds)); }
    void make_agent_with(AgentConfig c) {
        agent =
            std::make_unique<Agent>(std::move(c), std::make_unique<FakeSource>(script),
                                    std::make_unique<FakeNodeTable>(tables), std::make_unique<FakeRouteTable>(tables));
    }
    std::string conflist_path() const { return tmp + "/etc/cni/net.d/10-skiff.conflist"; }
    json health(const std::string& path, int want_status) {
        HttpResponse r = agent->handle_http(path);
        EXPECT_EQ(r.status, want_status) << path << ": " << r.body;
        EXPECT_EQ(r.content_type, "application/json");
        json j = json::parse(r.body, nullptr, false);
        EXPECT_TRUE(j.is_object()) << r.body;
        return j;
    }
    int writes() const { return tables.upserts + tables.node_removes + tables.replaces + tables.route_removes; }
    int lists() const { return tables.node_lists + tables.route_lists; }
};

}  // namespace skiff::agent::testbed
