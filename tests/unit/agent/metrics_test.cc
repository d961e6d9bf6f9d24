// The /metrics exposition (userspace/agent/agent_metrics.cc): each family
// once, with HELP and TYPE before its samples; labels as Prometheus writes
// them; datapath counters only when they were read.
#include "agent/agent_metrics.h"

#include <gtest/gtest.h>

#include <map>
#include <sstream>

namespace skiff::agent {
namespace {

// series (name with labels) -> value; every family's TYPE line seen first.
std::map<std::string, std::string> parse(const std::string& text) {
    std::map<std::string, std::string> out;
    std::map<std::string, int> typed;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("# TYPE ", 0) == 0) {
            std::string fam = line.substr(7, line.find(' ', 7) - 7);
            EXPECT_EQ(++typed[fam], 1) << "family typed twice: " << fam;
            continue;
        }
        if (line.rfind("# HELP ", 0) == 0) continue;
        auto sp = line.rfind(' ');
        std::string series = line.substr(0, sp);
        std::string name = series.substr(0, series.find('{'));
        bool known = typed.count(name) || (name.size() > 4 && typed.count(name.substr(0, name.size() - 4))) ||
                     (name.size() > 6 && typed.count(name.substr(0, name.size() - 6)));
        EXPECT_TRUE(known) << "sample before its TYPE: " << line;
        out[series] = line.substr(sp + 1);
    }
    return out;
}

TEST(AgentMetricsTest, AgentCountersAreExposedUnderTheirNames) {
    AgentStats s;
    s.reconciles_ok = 3;
    s.reconciles_failed = 1;
    s.total_duration_s = 0.25;
    s.map_writes = 7;
    s.ct_entries = 131072;
    s.over_limit = true;
    s.frontend_conflicts = 2;
    auto m = parse(render_metrics(s, {}));
    EXPECT_EQ(m["skiff_agent_reconciles_total{result=\"ok\"}"], "3");
    EXPECT_EQ(m["skiff_agent_reconciles_total{result=\"error\"}"], "1");
    EXPECT_EQ(m["skiff_agent_reconcile_duration_seconds_count"], "4");
    EXPECT_EQ(m["skiff_agent_reconcile_duration_seconds_sum"], "0.25");
    EXPECT_EQ(m["skiff_agent_writes_total{target=\"node_map\",op=\"upsert\"}"], "7");
    EXPECT_EQ(m["skiff_agent_source_over_limit"], "1");
    EXPECT_EQ(m["skiff_agent_conflicts{kind=\"frontend\"}"], "2");
    EXPECT_EQ(m["skiff_map_entries{map=\"conntrack\"}"], "131072");
    EXPECT_EQ(m.count("skiff_map_entries{map=\"endpoints\"}"), 0u);
    EXPECT_EQ(m.count("skiff_datapath_packets_total{reason=\"fwd-local\",direction=\"egress\"}"), 0u);
}

TEST(AgentMetricsTest, DatapathCountersWhenRead) {
    DatapathStats dp;
    dp.endpoints = 5;
    dp.counts_read = true;
    dp.counts = {{"fwd-tunnel", "egress", 10, 1500}, {"drop-tunnel-spoof", "ingress", 1, 60}};
    std::string text = render_metrics({}, dp);
    auto m = parse(text);
    EXPECT_EQ(m["skiff_map_entries{map=\"endpoints\"}"], "5");
    EXPECT_EQ(m["skiff_datapath_packets_total{reason=\"fwd-tunnel\",direction=\"egress\"}"], "10");
    EXPECT_EQ(m["skiff_datapath_bytes_total{reason=\"fwd-tunnel\",direction=\"egress\"}"], "1500");
    EXPECT_EQ(m["skiff_datapath_packets_total{reason=\"drop-tunnel-spoof\",direction=\"ingress\"}"], "1");
    // Read but empty: the families are still declared.
    dp.counts.clear();
    EXPECT_NE(render_metrics({}, dp).find("# TYPE skiff_datapath_packets_total counter"), std::string::npos);
}

}  // namespace
}  // namespace skiff::agent
