// Reconciling the node map and routes with a Plan (sync_nodes in
// userspace/agent/node_sync.cc), against in-memory tables.
#include "agent/node_sync.h"

#include <array>
#include <map>
#include <string>

#include <gtest/gtest.h>

namespace skiff::agent {
namespace {

Ipv4 ip(const char* s) { return *Ipv4::parse(s); }
Ipv4Prefix pfx(const char* s) { return *Ipv4Prefix::parse(s); }

class FakeNodeTable final : public NodeTable {
public:
    std::map<Ipv4Prefix, skiff_node_info> entries;
    int list_calls = 0, upserts = 0, removes = 0;
    bool fail_list = false, fail_upsert = false, fail_remove = false;

    Result<std::map<Ipv4Prefix, skiff_node_info>> list() override {
        ++list_calls;
        if (fail_list) return Error{EPERM, "fake node map: list failed"};
        return entries;
    }
    Status put(const Ipv4Prefix& cidr, const skiff_node_info& info) override {
        if (fail_upsert) return Error{ENOSPC, "fake node map: full"};
        ++upserts;
        entries[cidr] = info;
        return ok();
    }
    Status remove(const Ipv4Prefix& cidr) override {
        if (fail_remove) return Error{EBUSY, "fake node map: remove failed"};
        ++removes;
        entries.erase(cidr);
        return ok();
    }
};

class FakeRouteTable final : public RouteTable {
public:
    std::map<Ipv4Prefix, RouteVia> routes;
    int list_calls = 0, replaces = 0, removes = 0;
    bool fail_list = false, fail_replace = false, fail_remove = false;

    Result<std::map<Ipv4Prefix, RouteVia>> list() override {
        ++list_calls;
        if (fail_list) return Error{EACCES, "fake routes: dump failed"};
        return routes;
    }
    Status put(const Ipv4Prefix& cidr, const RouteVia& via) override {
        if (fail_replace) return Error{ENETUNREACH, "fake routes: gateway unreachable"};
        ++replaces;
        routes[cidr] = via;
        return ok();
    }
    Status remove(const Ipv4Prefix& cidr) override {
        if (fail_remove) return Error{EPERM, "fake routes: remove failed"};
        ++removes;
        routes.erase(cidr);
        return ok();
    }
};

NodeRoute nr(const char* node, const char* cidr, const char* addr, bool local = false) {
    return NodeRoute{node, pfx(cidr), ip(addr), local};
}

// node-a (local) 10.244.1.0/24, node-b 10.244.2.0/24, node-c 10.244.3.0/24.
Plan three_nodes() {
    Plan p;
    p.routes = {nr("node-a", "10.244.1.0/24", "192.168.50.11", true), nr("node-b", "10.244.2.0/24", "192.168.50.12"),
                nr("node-c", "10.244.3.0/24", "192.168.50.13")};
    p.local_pod_cidr = pfx("10.244.1.0/24");
    return p;
}

skiff_node_info info(const char* addr, uint32_t flags) {
    skiff_node_info i{};
    i.node_ip = ip(addr).be();
    i.flags = flags;
    return i;
}

void expect_entry(const FakeNodeTable& t, const char* cidr, const char* addr, uint32_t flags) {
    auto it = t.entries.find(pfx(cidr));
    ASSERT_NE(it, t.entries.end()) << "no node map entry for " << cidr;
    EXPECT_EQ(it->second.node_ip, ip(addr).be()) << cidr;
    EXPECT_EQ(Ipv4::from_be(it->second.node_ip), ip(addr)) << cidr;
    EXPECT_EQ(it->second.flags, flags) << cidr;
}

// A pass's writes: {map writes, map deletes, route writes, route deletes}.
using Writes = std::array<unsigned, 4>;
Writes writes(const SyncResult& r) { return {r.map_writes, r.map_deletes, r.route_writes, r.route_deletes}; }

class SyncNodesTest : public ::testing::Test {
protected:
    FakeNodeTable nodes;
    FakeRouteTable routes;

    SyncResult sync(const Plan& p) {
        auto r = sync_nodes(p, nodes, routes);
        if (!r) {
            ADD_FAILURE() << "sync_nodes failed: " << r.error().message;
            return {};
        }
        return *r;
    }
};

TEST_F(SyncNodesTest, FromEmptyWritesEverything) {
    auto r = sync(three_nodes());
    EXPECT_EQ(writes(r), (Writes{3, 0, 2, 0}));
    EXPECT_EQ(r.nodes, 3u);
    ASSERT_EQ(nodes.entries.size(), 3u);
    expect_entry(nodes, "10.244.1.0/24", "192.168.50.11", SKIFF_NODE_F_LOCAL);
    expect_entry(nodes, "10.244.2.0/24", "192.168.50.12", 0);
    expect_entry(nodes, "10.244.3.0/24", "192.168.50.13", 0);
    EXPECT_EQ(routes.routes, (std::map<Ipv4Prefix, RouteVia>{{pfx("10.244.2.0/24"), ip("192.168.50.12")},
                                                             {pfx("10.244.3.0/24"), ip("192.168.50.13")}}));
    EXPECT_EQ(nodes.upserts, 3);
    EXPECT_EQ(routes.replaces, 2);
}

TEST_F(SyncNodesTest, SecondRunWithSamePlanWritesNothing) {
    sync(three_nodes());
    int u = nodes.upserts, rr = routes.replaces;
    auto r = sync(three_nodes());
    EXPECT_EQ(writes(r), (Writes{0, 0, 0, 0}));
    EXPECT_EQ(r.nodes, 3u);
    EXPECT_EQ(nodes.upserts, u);
    EXPECT_EQ(nodes.removes, 0);
    EXPECT_EQ(routes.replaces, rr);
    EXPECT_EQ(routes.removes, 0);
}

TEST_F(SyncNodesTest, RestartWithProgrammedStateWritesNothing) {
    // A fresh agent process finds what the previous one left behind.
    nodes.entries = {{pfx("10.244.1.0/24"), info("192.168.50.11", SKIFF_NODE_F_LOCAL)},
                     {pfx("10.244.2.0/24"), info("192.168.50.12", 0)},
                     {pfx("10.244.3.0/24"), info("192.168.50.13", 0)}};
    routes.routes = {{pfx("10.244.2.0/24"), ip("192.168.50.12")}, {pfx("10.244.3.0/24"), ip("192.168.50.13")}};
    auto r = sync(three_nodes());
    EXPECT_EQ(writes(r), (Writes{0, 0, 0, 0}));
    EXPECT_EQ(nodes.upserts + nodes.removes + routes.replaces + routes.removes, 0);
}

TEST_F(SyncNodesTest, ChangedNodeIpRewritesOneEntryAndOneRoute) {
    sync(three_nodes());
    int u = nodes.upserts, rr = routes.replaces;
    Plan p = three_nodes();
    p.routes[2].node_ip = ip("192.168.50.99");
    auto r = sync(p);
    EXPECT_EQ(writes(r), (Writes{1, 0, 1, 0}));
    EXPECT_EQ(nodes.upserts, u + 1);
    EXPECT_EQ(routes.replaces, rr + 1);
    expect_entry(nodes, "10.244.3.0/24", "192.168.50.99", 0);
    expect_entry(nodes, "10.244.2.0/24", "192.168.50.12", 0);
    EXPECT_EQ(routes.routes.at(pfx("10.244.3.0/24")), ip("192.168.50.99"));
    EXPECT_EQ(routes.routes.at(pfx("10.244.2.0/24")), ip("192.168.50.12"));
}

TEST_F(SyncNodesTest, RemovedNodeDeletesEntryAndRoute) {
    sync(three_nodes());
    Plan p = three_nodes();
    p.routes.pop_back();  // node-c is gone
    auto r = sync(p);
    EXPECT_EQ(writes(r), (Writes{0, 1, 0, 1}));
    EXPECT_EQ(r.nodes, 2u);
    EXPECT_EQ(nodes.entries.count(pfx("10.244.3.0/24")), 0u);
    EXPECT_EQ(routes.routes.count(pfx("10.244.3.0/24")), 0u);
    EXPECT_EQ(nodes.entries.size(), 2u);
    EXPECT_EQ(routes.routes.size(), 1u);
}

TEST_F(SyncNodesTest, EmptyPlanRemovesEverything) {
    sync(three_nodes());
    auto r = sync(Plan{});
    EXPECT_EQ(writes(r), (Writes{0, 3, 0, 2}));
    EXPECT_EQ(r.nodes, 0u);
    EXPECT_TRUE(nodes.entries.empty());
    EXPECT_TRUE(routes.routes.empty());
}

TEST_F(SyncNodesTest, LocalNodeHasMapEntryButNoRoute) {
    Plan p;
    p.routes = {nr("node-a", "10.244.1.0/24", "192.168.50.11", true)};
    // A stale route for our own PodCIDR (e.g. left by an older agent) goes.
    routes.routes = {{pfx("10.244.1.0/24"), ip("192.168.50.11")}};
    auto r = sync(p);
    EXPECT_EQ(writes(r), (Writes{1, 0, 0, 1}));
    expect_entry(nodes, "10.244.1.0/24", "192.168.50.11", SKIFF_NODE_F_LOCAL);
    EXPECT_TRUE(routes.routes.empty());
}

TEST_F(SyncNodesTest, LocalFlagChangeRewritesEntry) {
    nodes.entries = {{pfx("10.244.1.0/24"), info("192.168.50.11", 0)}};
    routes.routes = {{pfx("10.244.1.0/24"), ip("192.168.50.11")}};
    Plan p;
    p.routes = {nr("node-a", "10.244.1.0/24", "192.168.50.11", true)};
    auto r = sync(p);
    EXPECT_EQ(writes(r), (Writes{1, 0, 0, 1}));
    expect_entry(nodes, "10.244.1.0/24", "192.168.50.11", SKIFF_NODE_F_LOCAL);
}

TEST_F(SyncNodesTest, StrayEntriesAndRoutesAreRemoved) {
    nodes.entries = {{pfx("10.244.77.0/24"), info("192.168.50.77", 0)}};
    routes.routes = {{pfx("10.244.78.0/24"), ip("192.168.50.78")}};
    auto r = sync(three_nodes());
    EXPECT_EQ(writes(r), (Writes{3, 1, 2, 1}));
    EXPECT_EQ(nodes.entries.count(pfx("10.244.77.0/24")), 0u);
    EXPECT_EQ(routes.routes.count(pfx("10.244.78.0/24")), 0u);
}

TEST_F(SyncNodesTest, NodeMapListFailurePropagatesAndTouchesNothing) {
    nodes.fail_list = true;
    auto r = sync_nodes(three_nodes(), nodes, routes);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, EPERM);
    EXPECT_NE(r.error().message.find("fake node map"), std::string::npos) << r.error().message;
    EXPECT_EQ(nodes.upserts, 0);
    EXPECT_EQ(routes.replaces, 0);
    EXPECT_EQ(routes.removes, 0);
}

TEST_F(SyncNodesTest, NodeMapWriteFailurePropagates) {
    nodes.fail_upsert = true;
    auto r = sync_nodes(three_nodes(), nodes, routes);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ENOSPC);
    EXPECT_TRUE(nodes.entries.empty());
}

TEST_F(SyncNodesTest, NodeMapDeleteFailurePropagates) {
    sync(three_nodes());
    nodes.fail_remove = true;
    auto r = sync_nodes(Plan{}, nodes, routes);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, EBUSY);
}

TEST_F(SyncNodesTest, RouteFailuresPropagate) {
    {
        FakeNodeTable n;
        FakeRouteTable rt;
        rt.fail_list = true;
        auto r = sync_nodes(three_nodes(), n, rt);
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().code, EACCES);
    }
    {
        FakeNodeTable n;
        FakeRouteTable rt;
        rt.fail_replace = true;
        auto r = sync_nodes(three_nodes(), n, rt);
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().code, ENETUNREACH);
        EXPECT_TRUE(rt.routes.empty());
    }
    {
        FakeNodeTable n;
        FakeRouteTable rt;
        rt.routes = {{pfx("10.244.78.0/24"), ip("192.168.50.78")}};
        rt.fail_remove = true;
        auto r = sync_nodes(Plan{}, n, rt);
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().code, EPERM);
        EXPECT_EQ(rt.routes.size(), 1u);
    }
}

TEST_F(SyncNodesTest, RecoversAfterFailureIsCleared) {
    routes.fail_replace = true;
    ASSERT_FALSE(sync_nodes(three_nodes(), nodes, routes).ok());
    routes.fail_replace = false;
    auto r = sync(three_nodes());
    EXPECT_EQ(r.map_writes, 0u) << "node map entries from the failed pass are already right";
    EXPECT_EQ(r.route_writes, 2u);
    EXPECT_EQ(routes.routes.size(), 2u);
}

// Overlay modes: which nodes are flagged for the tunnel and how the node's
// own traffic is routed to them.
TEST(RoutingTest, EncapToFollowsTheMode) {
    Routing r;
    r.uplink_subnets = {*Ipv4Prefix::parse("192.168.50.11/24", true)};  // the uplink's address, as netlink lists it
    EXPECT_FALSE(r.encap_to(ip("192.168.50.12")));
    EXPECT_FALSE(r.encap_to(ip("10.9.0.1")));
    r.mode = RoutingMode::Vxlan;
    EXPECT_TRUE(r.encap_to(ip("192.168.50.12")));
    EXPECT_TRUE(r.encap_to(ip("10.9.0.1")));
    r.mode = RoutingMode::VxlanCrossSubnet;
    EXPECT_FALSE(r.encap_to(ip("192.168.50.12")));
    EXPECT_FALSE(r.encap_to(ip("192.168.50.254")));
    EXPECT_TRUE(r.encap_to(ip("192.168.51.12")));
    EXPECT_TRUE(r.encap_to(ip("10.9.0.1")));
    r.uplink_subnets.clear();  // an uplink without addresses: every node is across
    EXPECT_TRUE(r.encap_to(ip("192.168.50.12")));
}

TEST_F(SyncNodesTest, VxlanFlagsRemoteNodesAndRoutesIntoTheTunnel) {
    Routing vx{RoutingMode::Vxlan, {*Ipv4Prefix::parse("192.168.50.11/24", true)}};
    auto r = sync_nodes(three_nodes(), nodes, routes, vx);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(nodes.entries.at(pfx("10.244.1.0/24")).flags, SKIFF_NODE_F_LOCAL);
    EXPECT_EQ(nodes.entries.at(pfx("10.244.2.0/24")).flags, SKIFF_NODE_F_ENCAP);
    EXPECT_EQ(nodes.entries.at(pfx("10.244.3.0/24")).flags, SKIFF_NODE_F_ENCAP);
    EXPECT_EQ(nodes.entries.at(pfx("10.244.3.0/24")).node_ip, ip("192.168.50.13").be());
    // The nodes' own addresses too, so pods reach them through the tunnel.
    EXPECT_EQ(nodes.entries.size(), 5u);
    EXPECT_EQ(nodes.entries.at(pfx("192.168.50.12/32")).flags, SKIFF_NODE_F_ENCAP | SKIFF_NODE_F_HOST);
    EXPECT_EQ(nodes.entries.at(pfx("192.168.50.13/32")).node_ip, ip("192.168.50.13").be());
    EXPECT_EQ(routes.routes, (std::map<Ipv4Prefix, RouteVia>{{pfx("10.244.2.0/24"), RouteVia::through_tunnel()},
                                                             {pfx("10.244.3.0/24"), RouteVia::through_tunnel()}}));
}

TEST_F(SyncNodesTest, CrossSubnetEncapsulatesOnlyTowardOtherSubnets) {
    Plan p = three_nodes();
    p.routes[2].node_ip = ip("192.168.60.13");  // node-c behind a router
    Routing cs{RoutingMode::VxlanCrossSubnet, {*Ipv4Prefix::parse("192.168.50.11/24", true)}};
    ASSERT_TRUE(sync_nodes(p, nodes, routes, cs).ok());
    EXPECT_EQ(nodes.entries.at(pfx("10.244.2.0/24")).flags, 0u);
    EXPECT_EQ(nodes.entries.at(pfx("10.244.3.0/24")).flags, SKIFF_NODE_F_ENCAP);
    EXPECT_EQ(routes.routes.at(pfx("10.244.2.0/24")), RouteVia(ip("192.168.50.12")));
    EXPECT_EQ(routes.routes.at(pfx("10.244.3.0/24")), RouteVia::through_tunnel());
    EXPECT_EQ(nodes.entries.count(pfx("192.168.50.12/32")), 0u);
    EXPECT_EQ(nodes.entries.count(pfx("192.168.60.13/32")), 1u);
}

TEST_F(SyncNodesTest, SwitchingModesRewritesFlagsAndRoutesOnly) {
    ASSERT_TRUE(sync_nodes(three_nodes(), nodes, routes).ok());
    int u = nodes.upserts, rr = routes.replaces;
    ASSERT_TRUE(sync_nodes(three_nodes(), nodes, routes, Routing{RoutingMode::Vxlan, {}}).ok());
    EXPECT_EQ(nodes.upserts, u + 4) << "two remote nodes change flags, their addresses join; the local entry stays";
    EXPECT_EQ(routes.replaces, rr + 2);
    EXPECT_EQ(nodes.removes + routes.removes, 0);
    ASSERT_TRUE(sync_nodes(three_nodes(), nodes, routes).ok());  // and back to native
    EXPECT_EQ(nodes.entries.at(pfx("10.244.2.0/24")).flags, 0u);
    EXPECT_EQ(routes.routes.at(pfx("10.244.3.0/24")), RouteVia(ip("192.168.50.13")));
    EXPECT_EQ(nodes.upserts, u + 6);
    EXPECT_EQ(nodes.removes, 2) << "the addresses leave the map";
    EXPECT_EQ(nodes.entries.size(), 3u);
    EXPECT_EQ(routes.replaces, rr + 4);
}

}  // namespace
}  // namespace skiff::agent
