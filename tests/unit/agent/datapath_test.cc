// What the agent keeps and reads of the datapath besides nodes and routes:
// the no-masquerade set it syncs each reconcile and the counters /metrics
// shows, through fakes of SnatTable and DatapathReader (kernel_tables.h).
#include <memory>
#include <set>

#include <gtest/gtest.h>

#include "fixture.h"
#include "fake_gc_tables.h"

namespace skiff::agent {
namespace {

using namespace testbed;

class FakeDatapathReader final : public DatapathReader {
public:
    explicit FakeDatapathReader(DatapathStats s) : s_(std::move(s)) {}
    DatapathStats stats() override { return s_; }
    std::optional<CtDatapathCounts> ct_counts() override { return std::nullopt; }

private:
    DatapathStats s_;
};

TEST_F(AgentTest, TheNoMasqueradeSetFollowsTheClusterAndTheConfig) {
    AgentConfig c = config();
    c.masquerade.non_masquerade = {pfx("172.16.0.0/12")};
    make_agent_with(c);
    auto snat = std::make_unique<fakes::FakeSnatTable>();
    auto* nat = snat.get();
    agent->enable_masquerade(std::move(snat));
    script.snapshot(three_nodes());
    agent->tick();
    // The cluster, the configured range, this node and every other node.
    EXPECT_EQ(nat->nomasq, (std::set<Ipv4Prefix>{pfx("10.244.0.0/16"), pfx("172.16.0.0/12"), pfx("192.168.50.11/32"),
                                                 pfx("192.168.50.12/32"), pfx("192.168.50.13/32")}));
    // node-c goes away and node-b moves: so do their addresses.
    script.snapshot(cluster(
        {node("node-a", "192.168.50.11", {"10.244.1.0/24"}), node("node-b", "192.168.50.22", {"10.244.2.0/24"})}));
    agent->tick();
    EXPECT_EQ(nat->nomasq, (std::set<Ipv4Prefix>{pfx("10.244.0.0/16"), pfx("172.16.0.0/12"), pfx("192.168.50.11/32"),
                                                 pfx("192.168.50.22/32")}));
}

TEST_F(AgentTest, MetricsShowWhatTheDatapathReaderRead) {
    make_agent();
    DatapathStats dp;
    dp.endpoints = 7;
    dp.counts_read = true;
    dp.counts.push_back({"fwd-local", "egress", 10, 1000});
    agent->read_datapath(std::make_unique<FakeDatapathReader>(dp));
    const std::string text = agent->metrics_text();
    EXPECT_EQ(metric(text, "skiff_map_entries{map=\"endpoints\"}"), 7);
    EXPECT_EQ(metric(text, "skiff_datapath_packets_total{reason=\"fwd-local\",direction=\"egress\"}"), 10);
    EXPECT_EQ(metric(text, "skiff_datapath_bytes_total{reason=\"fwd-local\",direction=\"egress\"}"), 1000);
}

TEST_F(AgentTest, WithoutADatapathReaderMetricsLeaveTheDatapathOut) {
    make_agent();
    const std::string text = agent->metrics_text();
    EXPECT_EQ(metric(text, "skiff_map_entries{map=\"endpoints\"}"), -1);
    EXPECT_EQ(text.find("skiff_datapath_packets_total"), std::string::npos);
    EXPECT_NE(text.find("skiff_agent_reconciles_total"), std::string::npos);
}

}  // namespace
}  // namespace skiff::agent
